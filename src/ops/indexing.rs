//! Index-driven operators: `take`, `pick`, `one_hot`, `where`, `argmax`
//! and `argmin`. Indices may be float or integer tensors; floats truncate
//! toward zero as in MXNet.

use super::fp32_util::{f32_only, numel, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

pub fn register(r: &mut Registry) {
    r.implement("take", |ctx| Ok(Box::new(Take::new(ctx, false)?)));
    r.implement("pick", |ctx| Ok(Box::new(Take::new(ctx, true)?)));
    r.implement("one_hot", |ctx| Ok(Box::new(OneHot::new(ctx)?)));
    r.implement("where", |ctx| {
        Ok(Box::new(Where {
            node: NodeInfo::new(ctx),
        }))
    });
    r.implement("argmax", |ctx| Ok(Box::new(ArgExtreme::new(ctx, true)?)));
    r.implement("argmin", |ctx| Ok(Box::new(ArgExtreme::new(ctx, false)?)));
}

/// Treatment of out-of-range indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IndexMode {
    Clip,
    Wrap,
    Raise,
}

impl IndexMode {
    fn read(ctx: &NodeCtx) -> Result<IndexMode> {
        Ok(
            match ctx
                .reader()
                .choice("mode", &["clip", "wrap", "raise"], "clip")?
            {
                "clip" => IndexMode::Clip,
                "wrap" => IndexMode::Wrap,
                _ => IndexMode::Raise,
            },
        )
    }

    /// Resolves a raw index against a dimension of length `n` (> 0).
    fn resolve(self, node: &NodeInfo, raw: f32, n: usize) -> Result<usize> {
        let i = raw.trunc();
        let last = (n - 1) as f32;
        match self {
            IndexMode::Clip => Ok(i.clamp(0.0, last) as usize),
            IndexMode::Wrap => Ok((i as i64).rem_euclid(n as i64) as usize),
            IndexMode::Raise => {
                if (0.0..=last).contains(&i) {
                    Ok(i as usize)
                } else {
                    Err(node.shape_err(format!(
                        "index {raw} is out of range for a dimension of size {n}"
                    )))
                }
            }
        }
    }
}

/// `take` gathers whole slices along `axis`; `pick` picks one element per
/// lane along `axis`, with one index per lane.
struct Take {
    node: NodeInfo,
    axis: i64,
    mode: IndexMode,
    pick: bool,
    keepdims: bool,
}

impl Take {
    fn new(ctx: &NodeCtx, pick: bool) -> Result<Take> {
        let r = ctx.reader();
        Ok(Take {
            node: NodeInfo::new(ctx),
            axis: r.int_or("axis", if pick { -1 } else { 0 })?,
            mode: IndexMode::read(ctx)?,
            pick,
            keepdims: r.bool_or("keepdims", false)?,
        })
    }

    fn out_shape(&self, data: &[usize], indices: &[usize]) -> Result<Shape> {
        let a = self.node.axis(self.axis, data.len())?;
        if data[a] == 0 {
            return Err(self
                .node
                .shape_err(format!("cannot index the empty axis {a} of {data:?}")));
        }
        if !self.pick {
            return Ok(data[..a]
                .iter()
                .chain(indices)
                .chain(&data[a + 1..])
                .copied()
                .collect());
        }
        let mut lanes = data.to_vec();
        lanes[a] = 1;
        let mut squeezed = data.to_vec();
        squeezed.remove(a);
        if indices != lanes.as_slice() && indices != squeezed.as_slice() {
            return Err(self.node.shape_err(format!(
                "index shape {indices:?} does not match data {data:?} without axis {a}"
            )));
        }
        Ok(if self.keepdims { lanes } else { squeezed })
    }
}

impl Op for Take {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 2)?;
        if self.pick {
            if let Some(data) = &inputs[0] {
                if inputs[1].is_none() {
                    let mut lanes = data.clone();
                    lanes.remove(self.node.axis(self.axis, data.len())?);
                    inputs[1] = Some(lanes);
                }
            }
        }
        let (Some(data), Some(indices)) = (&inputs[0], &inputs[1]) else {
            return Ok(None);
        };
        Ok(Some(vec![self.out_shape(data, indices)?]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        inputs[1].get_or_insert(DType::F32);
        f32_only(&self.node, &mut inputs[..1], num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let shape = inputs[0].shape();
        let a = self.node.axis(self.axis, shape.len())?;
        let (outer, n, inner) = (numel(&shape[..a]), shape[a], numel(&shape[a + 1..]));
        let data = inputs[0].f32s()?;
        let raw = inputs[1].to_f32_vec();
        let index: Vec<usize> = raw
            .iter()
            .map(|&i| self.mode.resolve(&self.node, i, n))
            .collect::<Result<_>>()?;
        let out = outputs[0].f32s_mut()?;

        if self.pick {
            // out[o, i] = data[o, index[o, i], i]
            for (lane, o) in out.iter_mut().enumerate() {
                let (p, i) = (lane / inner, lane % inner);
                *o = data[(p * n + index[lane]) * inner + i];
            }
            return Ok(());
        }
        let block = index.len() * inner;
        if block == 0 {
            return Ok(());
        }
        out.par_chunks_mut(block).enumerate().for_each(|(o, dst)| {
            for (j, &k) in index.iter().enumerate() {
                let src = &data[(o * n + k) * inner..(o * n + k + 1) * inner];
                dst[j * inner..(j + 1) * inner].copy_from_slice(src);
            }
        });
        debug_assert_eq!(out.len(), outer * block);
        Ok(())
    }
}

struct OneHot {
    node: NodeInfo,
    depth: usize,
    on: f32,
    off: f32,
}

impl OneHot {
    fn new(ctx: &NodeCtx) -> Result<OneHot> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let depth = r.int("depth")?;
        if depth < 0 {
            return Err(node.attr_err("depth", depth, "must not be negative"));
        }
        if let Some(d) = r.raw("dtype").filter(|d| *d != "float32") {
            return Err(node.attr_err("dtype", d, "only a float32 output is supported"));
        }
        Ok(OneHot {
            depth: depth as usize,
            on: r.float_or("on_value", 1.0)? as f32,
            off: r.float_or("off_value", 0.0)? as f32,
            node,
        })
    }
}

impl Op for OneHot {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        Ok(inputs[0].as_ref().map(|s| {
            let mut out = s.clone();
            out.push(self.depth);
            vec![out]
        }))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        inputs[0].get_or_insert(DType::F32);
        Ok(vec![DType::F32; num_outputs])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let indices = inputs[0].to_f32_vec();
        let out = outputs[0].f32s_mut()?;
        out.fill(self.off);
        if self.depth == 0 {
            return Ok(());
        }
        for (row, &i) in out.chunks_exact_mut(self.depth).zip(&indices) {
            // Out-of-range indices leave the row at off_value.
            let i = i.trunc();
            if i >= 0.0 && (i as usize) < self.depth {
                row[i as usize] = self.on;
            }
        }
        Ok(())
    }
}

/// `where(condition, x, y)`: `x` where the condition is non-zero, else `y`.
/// The condition has the shape of `x`, or is a vector selecting whole rows.
struct Where {
    node: NodeInfo,
}

impl Op for Where {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 3)?;
        let Some(x) = inputs[1].clone().or_else(|| inputs[2].clone()) else {
            return Ok(None);
        };
        self.node.assign_input(inputs, 1, "x", x.clone())?;
        self.node.assign_input(inputs, 2, "y", x.clone())?;
        if let Some(c) = &inputs[0] {
            let rows = x.first().copied().unwrap_or(1);
            if *c != x && *c != vec![rows] {
                return Err(self.node.shape_err(format!(
                    "condition has shape {c:?}, expected {x:?} or ({rows},)"
                )));
            }
        }
        Ok(Some(vec![x]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        inputs[0].get_or_insert(DType::F32);
        f32_only(&self.node, &mut inputs[1..], num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let cond = inputs[0].to_f32_vec();
        let (x, y) = (inputs[1].f32s()?, inputs[2].f32s()?);
        let out = outputs[0].f32s_mut()?;
        let per = if cond.len() == x.len() {
            1
        } else {
            x.len() / cond.len().max(1)
        };
        for (i, o) in out.iter_mut().enumerate() {
            *o = if cond[i / per.max(1)] != 0.0 {
                x[i]
            } else {
                y[i]
            };
        }
        Ok(())
    }
}

struct ArgExtreme {
    node: NodeInfo,
    axis: Option<i64>,
    keepdims: bool,
    max: bool,
}

impl ArgExtreme {
    fn new(ctx: &NodeCtx, max: bool) -> Result<ArgExtreme> {
        let r = ctx.reader();
        Ok(ArgExtreme {
            node: NodeInfo::new(ctx),
            axis: r.opt_int("axis")?,
            keepdims: r.bool_or("keepdims", false)?,
            max,
        })
    }

    /// `(outer, axis, inner)` view and the output shape.
    fn plan(&self, shape: &[usize]) -> Result<((usize, usize, usize), Shape)> {
        match self.axis {
            None => {
                let out = if self.keepdims {
                    vec![1; shape.len()]
                } else {
                    vec![1]
                };
                Ok(((1, numel(shape), 1), out))
            }
            Some(axis) => {
                let a = self.node.axis(axis, shape.len())?;
                let mut out = shape.to_vec();
                if self.keepdims {
                    out[a] = 1;
                } else {
                    out.remove(a);
                }
                Ok(((numel(&shape[..a]), shape[a], numel(&shape[a + 1..])), out))
            }
        }
    }
}

impl Op for ArgExtreme {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        match &inputs[0] {
            None => Ok(None),
            Some(s) => Ok(Some(vec![self.plan(s)?.1])),
        }
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let ((_, n, inner), _) = self.plan(inputs[0].shape())?;
        let x = inputs[0].f32s()?;
        let max = self.max;
        for (lane, o) in outputs[0].f32s_mut()?.iter_mut().enumerate() {
            let (p, i) = (lane / inner, lane % inner);
            let mut best = 0;
            for k in 1..n {
                let (v, b) = (x[(p * n + k) * inner + i], x[(p * n + best) * inner + i]);
                // The first NaN wins, as in MXNet; otherwise the first extreme.
                let better = if max { v > b } else { v < b };
                if !b.is_nan() && (better || v.is_nan()) {
                    best = k;
                }
            }
            *o = best as f32;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    #[test]
    fn take_modes() {
        let a = t(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let idx = t(&[3], &[4.0, -1.0, 1.7]);
        let clip = make(|c| Ok(Box::new(Take::new(c, false)?)), "take", &[]).unwrap();
        let out = run(clip.as_ref(), &[a.clone(), idx.clone()]).unwrap();
        assert_eq!(out[0].shape(), &[3, 2]);
        assert_close(&out[0], &[5.0, 6.0, 1.0, 2.0, 3.0, 4.0]);
        let wrap = make(
            |c| Ok(Box::new(Take::new(c, false)?)),
            "take",
            &[("mode", "wrap")],
        )
        .unwrap();
        let out = run(wrap.as_ref(), &[a.clone(), t(&[2], &[4.0, -1.0])]).unwrap();
        assert_close(&out[0], &[3.0, 4.0, 5.0, 6.0]);
        let axis1 = make(
            |c| Ok(Box::new(Take::new(c, false)?)),
            "take",
            &[("axis", "1")],
        )
        .unwrap();
        let out = run(axis1.as_ref(), &[a, t(&[1, 1], &[1.0])]).unwrap();
        assert_eq!(out[0].shape(), &[3, 1, 1]);
        assert_close(&out[0], &[2.0, 4.0, 6.0]);
    }

    #[test]
    fn pick_per_lane() {
        let op = make(|c| Ok(Box::new(Take::new(c, true)?)), "pick", &[]).unwrap();
        let out = run(
            op.as_ref(),
            &[ramp(&[2, 3], 0.0, 1.0), t(&[2], &[2.0, 0.0])],
        )
        .unwrap();
        assert_close(&out[0], &[2.0, 3.0]);
    }

    #[test]
    fn one_hot_out_of_range_rows() {
        let op = make(
            |c| Ok(Box::new(OneHot::new(c)?)),
            "one_hot",
            &[("depth", "3"), ("on_value", "5")],
        )
        .unwrap();
        let out = run(op.as_ref(), &[t(&[4], &[1.0, 5.0, -1.0, 1.7])]).unwrap();
        assert_eq!(out[0].shape(), &[4, 3]);
        assert_close(
            &out[0],
            &[0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0],
        );
    }

    #[test]
    fn where_with_row_condition() {
        let op = Where {
            node: NodeInfo {
                name: "w".into(),
                op: "where".into(),
            },
        };
        let x = t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let y = t(&[2, 2], &[5.0, 6.0, 7.0, 8.0]);
        let out = run(&op, &[t(&[2], &[1.0, 0.0]), x.clone(), y.clone()]).unwrap();
        assert_close(&out[0], &[1.0, 2.0, 7.0, 8.0]);
        let out = run(&op, &[t(&[2, 2], &[0.0, 1.0, 1.0, 0.0]), x, y]).unwrap();
        assert_close(&out[0], &[5.0, 2.0, 3.0, 8.0]);
    }

    #[test]
    fn argmax_ties_and_nan() {
        let op = make(
            |c| Ok(Box::new(ArgExtreme::new(c, true)?)),
            "argmax",
            &[("axis", "1")],
        )
        .unwrap();
        let out = run(
            op.as_ref(),
            &[t(&[2, 3], &[3.0, 1.0, 3.0, 1.0, f32::NAN, 3.0])],
        )
        .unwrap();
        assert_close(&out[0], &[0.0, 1.0]);
        let all = make(|c| Ok(Box::new(ArgExtreme::new(c, false)?)), "argmin", &[]).unwrap();
        let out = run(all.as_ref(), &[t(&[2, 2], &[4.0, 1.0, 1.0, 2.0])]).unwrap();
        assert_eq!(out[0].shape(), &[1]);
        assert_close(&out[0], &[1.0]);
    }
}
