//! Chains of quantized convolutions computed band by band.
//!
//! In an inverted residual block (1x1 expansion, 3x3 depthwise, 1x1
//! projection) the expanded tensor is several times larger than the block's
//! input and output. Run as separate steps, each convolution writes its whole
//! output for the batch to memory and the next one reads it back. A chain
//! instead computes each image in bands of output rows: for a band of the
//! last convolution it computes just the rows of each earlier output that
//! the band reads, into small buffers that stay in the cache. Consecutive
//! bands share rows, and each buffer keeps the rows it already holds.
//!
//! Every convolution still runs the same kernel with the same weights and
//! output stage, on a geometry that covers some rows of one image, so the
//! results are the same bits as step by step. Padding rows above and below
//! an image are written as quantized zeros, the value the kernels pad with.

use std::cell::RefCell;
use std::sync::Arc;

use rayon::prelude::*;

use super::conv::quant_slice;
use super::fused_conv::Quantized;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::int8::conv::{conv, ConvGeometry};
use crate::kernels::int8::elem::QuantSlice;
use crate::kernels::int8::jobs;
use crate::kernels::int8::output::OutputStage;
use crate::ops::{Op, Shape};
use crate::tensor::Tensor;

/// A quantized convolution that a [`ConvChain`] can run row by row.
pub trait RowConv: Send + Sync {
    /// Returns the node's geometry along the height, or `None` when it
    /// cannot join a chain (not 2-D, not channels-last, no 8-bit output, weights not
    /// constant, or a residual that repeats its own data input).
    fn row_facts(&self) -> Option<RowFacts>;

    /// Prepares one forward pass from the input ranges, like the node's
    /// own forward does. `inputs[0]` (the data) is not read and may be
    /// absent; `data` gives its dtype and shape.
    fn prepare_rows(
        &self,
        data: (DType, &[usize]),
        inputs: &[Option<&Tensor>],
        out_shape: &[usize],
    ) -> Result<RowPlan>;
}

/// A convolution's geometry along the height, and its residual input.
#[derive(Clone, Copy, Debug)]
pub struct RowFacts {
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    pub dilate: usize,
    /// Input position of the residual sum, if the node has one.
    pub sum: Option<usize>,
}

/// The plan of one convolution of a chain for one forward pass.
pub struct RowPlan {
    pub(super) geom: ConvGeometry,
    pub(super) weights: Arc<Quantized>,
    pub(super) stage: Arc<OutputStage>,
    pub(super) data: DType,
    pub(super) out: DType,
    /// Input position of the residual.
    pub(super) residual: Option<usize>,
    /// The output range to write to outputs 1 and 2.
    pub(super) range: Option<(f32, f32)>,
}

/// The origin of a chain member's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Input `k` of the chain step.
    Input(usize),
    /// Output `k` of the chain step, written by an earlier member.
    Output(usize),
    /// The previous member's output 0, which only the chain reads.
    Chained,
}

/// One convolution of a chain, with its place in the chain step.
pub struct ChainMember {
    /// The node name, for errors.
    pub name: String,
    pub op: Box<dyn Op>,
    pub inputs: Vec<Source>,
    /// Chain output of each node output; `None` for an output 0 that only
    /// the next member reads.
    pub outputs: Vec<Option<usize>>,
    /// Dtype and shape of the data input.
    pub data: (DType, Shape),
    pub out_shape: Shape,
}

/// Convolutions where each member reads the previous one's output 0 and
/// nothing else does: they run as one step, image by image and band by
/// band. Built by the executor after binding; see the module documentation.
pub struct ConvChain {
    members: Vec<ChainMember>,
    /// Maximum bytes of intermediate rows per band (at least one row).
    band_bytes: usize,
}

impl ConvChain {
    /// Checks that the members form a chain this step can run.
    pub fn new(members: Vec<ChainMember>, band_bytes: usize) -> Result<ConvChain> {
        let bad = |m: &ChainMember, why: &str| {
            Err(Error::Runtime(format!(
                "node {:?} cannot join a convolution chain: {why}",
                m.name
            )))
        };
        if members.len() < 2 {
            return Err(Error::Runtime("a convolution chain needs 2 members".into()));
        }
        for (i, m) in members.iter().enumerate() {
            let Some(facts) = m.op.as_row_conv().and_then(|r| r.row_facts()) else {
                return bad(m, "it is not a row convolution");
            };
            let data_ok = if i == 0 {
                matches!(m.inputs.first(), Some(Source::Input(_)))
            } else {
                m.inputs.first() == Some(&Source::Chained)
            };
            let chained_once =
                m.inputs.iter().filter(|s| **s == Source::Chained).count() == usize::from(i > 0);
            if !data_ok || !chained_once {
                return bad(m, "its data input is not the previous member's output");
            }
            if i == 0 && facts.pad != 0 {
                return bad(m, "the first member pads along the height");
            }
            if let Some(s) = facts.sum {
                if !matches!(m.inputs.get(s), Some(Source::Input(_))) {
                    return bad(m, "its residual is not an input of the chain");
                }
            }
            let last = i + 1 == members.len();
            if m.outputs.first().is_some_and(|o| o.is_some() != last) {
                return bad(m, "only the last member's output 0 leaves the chain");
            }
        }
        Ok(ConvChain {
            members,
            band_bytes,
        })
    }

    /// Node names joined with ` + `.
    pub fn label(&self) -> String {
        let names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        names.join(" + ")
    }

    /// Prepares every member in order, writing their output ranges.
    fn prepare(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<Vec<RowPlan>> {
        let mut plans = Vec::with_capacity(self.members.len());
        for m in &self.members {
            let plan = {
                let ins: Vec<Option<&Tensor>> = m
                    .inputs
                    .iter()
                    .map(|s| match *s {
                        Source::Input(k) => Some(inputs[k]),
                        Source::Output(k) => Some(&outputs[k]),
                        Source::Chained => None,
                    })
                    .collect();
                let row = m.op.as_row_conv().expect("checked in ConvChain::new");
                row.prepare_rows((m.data.0, &m.data.1), &ins, &m.out_shape)
                    .map_err(|e| named(e, &m.name))?
            };
            if let Some((lo, hi)) = plan.range {
                for (slot, v) in [(1, lo), (2, hi)] {
                    if let Some(&Some(k)) = m.outputs.get(slot) {
                        outputs[k].f32s_mut()?.fill(v);
                    }
                }
            }
            plans.push(plan);
        }
        Ok(plans)
    }
}

/// Adds a member's name to an error.
fn named(e: Error, name: &str) -> Error {
    match e {
        Error::InvalidArgument(m) | Error::Runtime(m) => {
            Error::Runtime(format!("node {name:?}: {m}"))
        }
        other => other,
    }
}

impl Op for ConvChain {
    fn infer_shape(&self, _inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        Err(Error::Runtime(
            "a convolution chain is formed after shape inference".into(),
        ))
    }

    fn writes_every_output(&self) -> bool {
        true
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let plans = self.prepare(inputs, outputs)?;
        let residuals = self
            .members
            .iter()
            .zip(&plans)
            .map(|(m, p)| match p.residual.map(|s| m.inputs[s]) {
                Some(Source::Input(k)) => quant_slice(inputs[k], |d| {
                    Error::Runtime(format!(
                        "node {:?}: residual dtype {d} is not supported",
                        m.name
                    ))
                })
                .map(Some),
                Some(_) => Err(Error::Runtime(format!(
                    "node {:?}: the residual is not an input of the chain",
                    m.name
                ))),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        let Some(Source::Input(k)) = self.members[0].inputs.first().copied() else {
            unreachable!("checked in ConvChain::new")
        };
        let input = inputs[k].bytes();
        let last = self.members.last().expect("a chain has members");
        let Some(Some(o)) = last.outputs.first().copied() else {
            unreachable!("checked in ConvChain::new")
        };
        let links: Vec<Link> = plans
            .iter()
            .zip(residuals)
            .map(|(plan, residual)| Link { plan, residual })
            .collect();
        run(&links, input, self.band_bytes, outputs[o].bytes_mut());
        Ok(())
    }
}

/// One member's plan and residual.
struct Link<'a> {
    plan: &'a RowPlan,
    residual: Option<QuantSlice<'a>>,
}

/// A half-open range of rows; rows outside the image are padding.
type Rows = (isize, isize);

impl Link<'_> {
    fn geom(&self) -> &ConvGeometry {
        &self.plan.geom
    }

    fn in_row_bytes(&self) -> usize {
        self.geom().input[2] * self.geom().in_channels
    }

    fn out_row_bytes(&self) -> usize {
        self.geom().output[2] * self.geom().out_channels
    }

    /// Input rows that output rows `rows` (not empty) read.
    fn rows_in(&self, rows: Rows) -> Rows {
        let g = self.geom();
        let (s, p) = (g.stride[1] as isize, g.pad[1] as isize);
        let span = ((g.kernel[1] - 1) * g.dilate[1]) as isize;
        (rows.0 * s - p, (rows.1 - 1) * s - p + span + 1)
    }

    /// Computes output rows `rows` (inside the image) of image `n` into
    /// `dst`. `src` contains the input rows from row `src_first` on.
    fn run_rows(
        &self,
        n: usize,
        rows: (usize, usize),
        src: &[u8],
        src_first: isize,
        dst: &mut [u8],
    ) {
        let g = self.geom();
        let (lo, hi) = self.rows_in((rows.0 as isize, rows.1 as isize));
        let in_row = self.in_row_bytes();
        let start = (lo - src_first) as usize * in_row;
        let len = (hi - lo) as usize * in_row;

        // The same convolution on these rows of one image, with the height
        // padding already in `src` as rows of zeros.
        let sub = ConvGeometry {
            batch: 1,
            input: [1, (hi - lo) as usize, g.input[2]],
            output: [1, rows.1 - rows.0, g.output[2]],
            pad: [0, 0, g.pad[2]],
            ..*g
        };

        let out_row = self.out_row_bytes();
        let first = (n * g.output[1] + rows.0) * out_row;
        let span = first..first + (rows.1 - rows.0) * out_row;
        let residual = self.residual.map(|r| match r {
            QuantSlice::I8(s) => QuantSlice::I8(&s[span.clone()]),
            QuantSlice::U8(s) => QuantSlice::U8(&s[span.clone()]),
            QuantSlice::I32(s) => QuantSlice::I32(&s[span.clone()]),
        });

        let src = &src[start..start + len];
        let (w, st) = (&self.plan.weights.packed, &*self.plan.stage);
        use bytemuck::{cast_slice, cast_slice_mut};
        match (self.plan.data, self.plan.out) {
            (DType::U8, DType::U8) => conv::<u8, u8>(&sub, src, w, st, residual, dst),
            (DType::U8, DType::I8) => {
                conv::<u8, i8>(&sub, src, w, st, residual, cast_slice_mut(dst))
            }
            (DType::I8, DType::U8) => conv::<i8, u8>(&sub, cast_slice(src), w, st, residual, dst),
            (DType::I8, DType::I8) => {
                conv::<i8, i8>(&sub, cast_slice(src), w, st, residual, cast_slice_mut(dst))
            }
            (d, o) => unreachable!("row convolutions have 8-bit data and output, not {d} and {o}"),
        }
    }
}

/// Rows of the last member's output per band: the most whose rows in
/// every intermediate buffer fit in `budget` bytes, at least 1.
fn band_rows(links: &[Link], budget: usize) -> usize {
    let last = links.len() - 1;
    let height = links[last].geom().output[1];
    let bytes = |rows: usize| -> usize {
        let mut need: Rows = (0, rows as isize);
        let mut total = 0;
        for i in (1..=last).rev() {
            need = links[i].rows_in(need);
            total += (need.1 - need.0) as usize * links[i - 1].out_row_bytes();
        }
        total
    };
    let mut rows = 1;
    while rows < height && bytes(rows + 1) <= budget {
        rows += 1;
    }
    rows
}

thread_local! {
    /// This thread's intermediate row buffers.
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Runs the chain over the batch: each job computes a range of the last
/// output's rows of one image.
fn run(links: &[Link], input: &[u8], band_bytes: usize, output: &mut [u8]) {
    let last = links.last().expect("a chain has members");
    let (batch, height) = (last.geom().batch, last.geom().output[1]);
    let out_row = last.out_row_bytes();
    let image_in = links[0].geom().input[1] * links[0].in_row_bytes();
    if batch == 0 || height == 0 || out_row == 0 {
        return;
    }
    let parts = rayon::current_num_threads()
        .div_ceil(batch)
        .clamp(1, height);
    let rows_per_part = height.div_ceil(parts);
    let band = band_rows(links, band_bytes);
    output
        .par_chunks_mut(height * out_row)
        .enumerate()
        .flat_map(|(n, image)| {
            image
                .par_chunks_mut(rows_per_part * out_row)
                .enumerate()
                .map(move |(p, part)| (n, p * rows_per_part, part))
        })
        .for_each(|(n, first, part)| {
            let rows = (first, first + part.len() / out_row);
            let input = &input[n * image_in..(n + 1) * image_in];
            let mut buffers = BUFFERS.with(|b| std::mem::take(&mut *b.borrow_mut()));
            jobs::serially(|| run_part(links, n, input, rows, band, part, &mut buffers));
            BUFFERS.with(|b| *b.borrow_mut() = buffers);
        });
}

/// Computes rows `rows` of image `n`'s last output into `out`, `band` rows
/// at a time. `input` is the image's input to the first member.
fn run_part(
    links: &[Link],
    n: usize,
    input: &[u8],
    rows: (usize, usize),
    band: usize,
    out: &mut [u8],
    buffers: &mut Vec<Vec<u8>>,
) {
    let last = links.len() - 1;
    buffers.resize_with(last, Vec::new);
    // Rows of member `j`'s output that buffer `j` holds.
    let mut stored: Vec<Rows> = vec![(0, 0); last];
    let mut need: Vec<Rows> = vec![(0, 0); links.len()];
    let out_row = links[last].out_row_bytes();
    let mut y = rows.0;
    while y < rows.1 {
        let end = (y + band).min(rows.1);
        need[last] = (y as isize, end as isize);
        for i in (1..=last).rev() {
            need[i - 1] = links[i].rows_in(need[i]);
        }
        for j in 0..last {
            let (before, rest) = buffers.split_at_mut(j);
            let src: (&[u8], isize) = match before.last() {
                Some(b) => (b, stored[j - 1].0),
                None => (input, 0),
            };
            fill_rows(&links[j], n, src, need[j], &mut stored[j], &mut rest[0]);
        }
        let src: (&[u8], isize) = match buffers.last() {
            Some(b) => (b, stored[last - 1].0),
            None => (input, 0),
        };
        let dst = &mut out[(y - rows.0) * out_row..(end - rows.0) * out_row];
        links[last].run_rows(n, (y, end), src.0, src.1, dst);
        y = end;
    }
}

/// Fills `buffer` with rows `need` of `link`'s output. Rows it already
/// contains from `need.0` on move to the front, and the others are computed
/// from `src` (input rows from `src.1` on). Rows outside the image are
/// quantized zeros.
fn fill_rows(
    link: &Link,
    n: usize,
    src: (&[u8], isize),
    need: Rows,
    stored: &mut Rows,
    buffer: &mut Vec<u8>,
) {
    let row = link.out_row_bytes();
    let kept_to = if stored.0 <= need.0 && need.0 < stored.1 {
        stored.1.min(need.1)
    } else {
        need.0
    };
    if kept_to > need.0 {
        let from = (need.0 - stored.0) as usize * row;
        buffer.copy_within(from..from + (kept_to - need.0) as usize * row, 0);
    }
    let len = (need.1 - need.0) as usize * row;
    if buffer.len() < len {
        buffer.resize(len, 0);
    }
    let height = link.geom().output[1] as isize;
    let real = (kept_to.max(0), need.1.min(height));
    let at = |r: isize| (r - need.0) as usize * row;
    for r in kept_to..need.1 {
        if r < real.0 || r >= real.1 {
            buffer[at(r)..at(r + 1)].fill(0);
        }
    }
    if real.0 < real.1 {
        let rows = (real.0 as usize, real.1 as usize);
        link.run_rows(n, rows, src.0, src.1, &mut buffer[at(real.0)..at(real.1)]);
    }
    *stored = need;
}
