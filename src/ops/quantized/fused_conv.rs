//! `_sg_mkldnn_conv` (MXNet 1.9.1) and `_sg_onednn_conv` (2.0) with
//! `quantized=true`: a convolution with folded BatchNorm, activation,
//! residual sum and post-sum activation, read from the node's FP32
//! subgraph, running on int8 or uint8 data with f32 weights quantized once.
//!
//! Inputs, in order: `data, weight, [bias], [gamma, beta, mean, var], [sum],
//! data_min, data_max, [sum_min, sum_max]`. Calibrated nodes output uint8
//! when the last activation is non-negative, else int8; uncalibrated nodes
//! output int32; `enabled_float_output` (2.0) outputs f32.
//!
//! Weight scales, bias quantization and the f32 operation order follow
//! MXNet 1.9.1. One deliberate difference: the result saturates to the
//! declared output type; MXNet saturates to the residual's type, which
//! loses half the range when an int8 residual meets a uint8 output.

use super::chain::{RowConv, RowFacts, RowPlan};
use super::common::{
    guarded_scale, integer_range, known_type, product_range, range_input_shapes, range_input_types,
    range_of, write_range, Calib, Ident,
};
use super::conv::{pack_weights, run_conv, ConvOrder};
use super::conv_attrs::ConvParams;
use super::subgraph::{channel_weight_scales, fold_batch_norm, parse, BnAttrs};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::int8::conv::{ConvGeometry, PackedConvWeights};
use crate::kernels::int8::elem::QuantElem;
use crate::kernels::int8::output::{Activation, OutputStage, PerChannel};
use crate::ops::{AttrReader, ChannelsLastSupport, NodeCtx, Op, Shape};
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Positions of the optional inputs.
#[derive(Clone, Copy, Debug)]
struct Slots {
    bias: Option<usize>,
    bn: Option<usize>,
    sum: Option<usize>,
    data_range: usize,
    sum_range: Option<usize>,
    count: usize,
}

/// Weights after BatchNorm folding, still f32.
#[derive(Clone)]
struct Folded {
    weights: Vec<f32>,
    bias: Option<Vec<f32>>,
    min: f32,
    max: f32,
}

/// Quantized weights and bias for one data scale.
pub(super) struct Quantized {
    data_scale_bits: u32,
    pub(super) packed: PackedConvWeights,
    weight_scales: Vec<f32>,
    bias: Option<Vec<f32>>,
}

struct FusedConv {
    id: Ident,
    params: ConvParams,
    bn: Option<BnAttrs>,
    act: Option<Activation>,
    post_sum_act: Option<Activation>,
    calib: Option<Calib>,
    float_output: bool,
    dedup_sum: bool,
    slots: Slots,
    folded: Option<Folded>,
    cache: Mutex<Option<Arc<Quantized>>>,
    /// The last output stage built, by the bits of its data and sum scales.
    stages: Mutex<Option<StageKey>>,
    order: ConvOrder,
}

/// An output stage and the data and sum scales (as bits) it was built for.
type StageKey = (u32, Option<u32>, Arc<OutputStage>);

pub fn create(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let id = Ident::new(ctx);
    let r = ctx.reader();
    if !r.bool_or("quantized", false)? {
        return Err(Error::UnsupportedOp {
            op: format!("{} (quantized=false: an FP32 fused convolution)", ctx.op),
            node: ctx.name.to_string(),
        });
    }
    let chain = parse(&id, ctx.subgraphs, "Convolution")?;
    let main = chain.main;
    let params = ConvParams::read(&AttrReader::new(&main.name, &main.op, &main.attrs))?;
    let with_bn = r.bool_or("with_bn", false)?;
    let with_sum = r.bool_or("with_sum", false)?;
    let with_act = r.bool_or("with_act", false)? || r.bool_or("with_relu", false)?;
    let with_post =
        r.bool_or("with_postsum_act", false)? || r.bool_or("with_postsum_relu", false)?;
    let dedup_sum = r.bool_or("dedup_sum", false)?;
    if with_bn && chain.bn.is_none() {
        return Err(id.shape_err("with_bn is set but the subgraph has no BatchNorm"));
    }
    if with_sum && !chain.has_sum {
        return Err(id.shape_err("with_sum is set but the subgraph has no residual add"));
    }
    if with_act && chain.act.is_none() || with_post && chain.post_sum_act.is_none() {
        return Err(id.shape_err(
            "with_act/with_postsum_act is set but the subgraph has no such activation",
        ));
    }
    let float_output = match r.raw("enabled_float_output") {
        None | Some("None") => false,
        Some("float32") => true,
        Some(other) => {
            return Err(Error::Attr {
                node: id.node.clone(),
                op: id.op.clone(),
                key: "enabled_float_output".into(),
                value: other.into(),
                reason: "only float32 output is supported".into(),
            })
        }
    };

    let mut next = 2;
    let mut take = |present: bool, n: usize| {
        let at = present.then_some(next);
        if present {
            next += n;
        }
        at
    };
    let bias = take(!params.no_bias, 1);
    let bn = take(with_bn, 4);
    let sum = take(with_sum && !dedup_sum, 1);
    let data_range = take(true, 2).unwrap();
    let sum_range = take(with_sum && !dedup_sum, 2);
    let slots = Slots {
        bias,
        bn,
        sum,
        data_range,
        sum_range,
        count: next,
    };
    Ok(Box::new(FusedConv {
        id,
        params,
        bn: if with_bn { chain.bn } else { None },
        act: if with_act { chain.act } else { None },
        post_sum_act: if with_post { chain.post_sum_act } else { None },
        calib: Calib::read(&r)?,
        float_output,
        dedup_sum: with_sum && dedup_sum,
        slots,
        folded: None,
        cache: Mutex::new(None),
        stages: Mutex::new(None),
        order: ConvOrder::default(),
    }))
}

impl FusedConv {
    fn with_sum(&self) -> bool {
        self.slots.sum.is_some() || self.dedup_sum
    }

    /// Returns the activation that ends the chain, which decides uint8 vs int8.
    fn last_activation(&self) -> Option<Activation> {
        if self.with_sum() {
            self.post_sum_act
        } else {
            self.act
        }
    }

    fn output_dtype(&self) -> DType {
        if self.float_output {
            DType::F32
        } else if self.calib.is_none() {
            DType::I32
        } else if self.last_activation().is_some_and(|a| a.is_non_negative()) {
            DType::U8
        } else {
            DType::I8
        }
    }

    /// Folds BatchNorm (if any) into f32 weights and bias.
    fn fold(&self, tensors: &[Option<&Tensor>]) -> Result<Folded> {
        let get = |i: usize, what: &str| -> Result<&Tensor> {
            tensors[i].ok_or_else(|| {
                self.id
                    .runtime_err(format!("{what} (input {i}) is missing"))
            })
        };
        let mut weights = get(1, "weight")?.f32s()?.to_vec();
        let mut bias = match self.slots.bias {
            Some(i) => Some(get(i, "bias")?.f32s()?.to_vec()),
            None => None,
        };
        if let (Some(attrs), Some(i)) = (self.bn, self.slots.bn) {
            let p: Vec<&[f32]> = (0..4)
                .map(|k| get(i + k, "BatchNorm parameter")?.f32s())
                .collect::<Result<_>>()?;
            if p.iter().any(|v| v.len() != self.params.num_filter) {
                return Err(self
                    .id
                    .shape_err("BatchNorm parameters do not have num_filter entries"));
            }
            bias = Some(fold_batch_norm(
                &mut weights,
                bias.as_deref(),
                p[0],
                p[1],
                p[2],
                p[3],
                attrs,
            ));
        }
        let min = weights.iter().copied().fold(f32::INFINITY, f32::min);
        let max = weights.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        Ok(Folded {
            weights,
            bias,
            min,
            max,
        })
    }

    /// Quantizes the folded weights and bias for data scale `ds`.
    fn quantize(&self, folded: &Folded, ds: f32, in_channels: usize) -> Quantized {
        let channels = self.params.num_filter;
        let weight_scales = if self.calib.is_some() || self.float_output {
            channel_weight_scales(&folded.weights, channels, folded.bias.as_deref(), ds)
        } else {
            vec![guarded_scale(DType::I8, folded.min, folded.max); channels]
        };
        let row = folded.weights.len() / channels;
        let mut wq = vec![0i8; folded.weights.len()];
        if row > 0 {
            wq.par_chunks_mut(row)
                .zip(folded.weights.par_chunks(row))
                .zip(&weight_scales)
                .for_each(|((dst, src), &scale)| {
                    for (q, &w) in dst.iter_mut().zip(src) {
                        *q = i8::saturate(w * scale);
                    }
                });
        }
        let bias = folded.bias.as_ref().map(|b| {
            b.iter()
                .zip(&weight_scales)
                .map(|(&v, &ws)| i32::saturate(v * (ws * ds)) as f32)
                .collect()
        });
        Quantized {
            data_scale_bits: ds.to_bits(),
            packed: pack_weights(&self.params, &wq, in_channels),
            weight_scales,
            bias,
        }
    }

    fn quantized_for(
        &self,
        inputs: &[Option<&Tensor>],
        ds: f32,
        in_channels: usize,
    ) -> Result<Arc<Quantized>> {
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| self.id.runtime_err("weight cache lock is poisoned"))?;
        if let Some(q) = cache.as_ref() {
            if q.data_scale_bits == ds.to_bits() {
                return Ok(q.clone());
            }
        }
        let folded_now;
        let folded = match &self.folded {
            Some(f) => f,
            None => {
                folded_now = self.fold(inputs)?;
                &folded_now
            }
        };
        let q = Arc::new(self.quantize(folded, ds, in_channels));
        *cache = Some(q.clone());
        Ok(q)
    }

    /// Returns the output stage for these scales, built again only when they
    /// change (they stay the same between forward passes of a calibrated model).
    fn stage_for(
        &self,
        q: &Quantized,
        ds: f32,
        sum_scale: Option<f32>,
    ) -> Result<Arc<OutputStage>> {
        let key = (ds.to_bits(), sum_scale.map(f32::to_bits));
        let mut cached = self
            .stages
            .lock()
            .map_err(|_| self.id.runtime_err("output stage cache lock is poisoned"))?;
        if let Some((d, s, stage)) = cached.as_ref() {
            if (*d, *s) == key {
                return Ok(stage.clone());
            }
        }
        let stage = Arc::new(self.stage(q, ds, sum_scale)?);
        *cached = Some((key.0, key.1, stage.clone()));
        Ok(stage)
    }

    /// Builds the output stage: bias, per-channel scale and activations in
    /// the output's units.
    fn stage(&self, q: &Quantized, ds: f32, sum_scale: Option<f32>) -> Result<OutputStage> {
        let mut stage = OutputStage {
            bias: q.bias.clone().map(PerChannel).unwrap_or_default(),
            ..Default::default()
        };
        let out_type = self.output_dtype();
        // Real value of one output step per channel (`out_unit`), and the
        // scale from accumulator units to output units.
        let real_scale: Vec<f32> = q
            .weight_scales
            .iter()
            .map(|&ws| ((1.0f64 / ds as f64) as f32) / ws)
            .collect();
        let (os, scale) = match (self.float_output, self.calib) {
            (true, _) => (1.0, Some(real_scale.clone())),
            (false, Some(c)) => {
                let os = guarded_scale(out_type, c.min, c.max);
                (
                    os,
                    Some(q.weight_scales.iter().map(|&ws| (os / ds) / ws).collect()),
                )
            }
            (false, None) => (ds * q.weight_scales[0], None),
        };
        match self.act {
            None => stage.scale = scale.map(PerChannel).unwrap_or_default(),
            Some(a @ (Activation::Relu | Activation::Leaky { .. })) => {
                stage.scale = scale.map(PerChannel).unwrap_or_default();
                stage.activation = Some(a);
            }
            Some(Activation::Clip { min, max }) => {
                stage.scale = scale.map(PerChannel).unwrap_or_default();
                stage.activation = Some(Activation::Clip {
                    min: min * os,
                    max: max * os,
                });
            }
            Some(a) => {
                // Non-homogeneous activations see real values, then scale to output units.
                stage.scale = PerChannel(real_scale);
                stage.activation = Some(a);
                stage.act_scale = Some(os);
            }
        }
        stage.sum_scale = sum_scale.map(|si| if si == 0.0 { 0.0 } else { os / si });
        stage.post_sum_activation = match self.post_sum_act {
            None => None,
            Some(a @ (Activation::Relu | Activation::Leaky { .. })) => Some(a),
            Some(Activation::Clip { min, max }) => Some(Activation::Clip { min: min * os, max: max * os }),
            Some(a) if self.float_output => Some(a),
            Some(a) => {
                return Err(self.id.dtype_err(format!(
                    "post-sum activation {a:?} needs real values; only ReLU, LeakyReLU and clip are supported after a quantized sum"
                )))
            }
        };
        Ok(stage)
    }
}

impl Op for FusedConv {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.id.expect_inputs(inputs.len(), self.slots.count)?;
        let mut ranges = vec![self.slots.data_range, self.slots.data_range + 1];
        if let Some(s) = self.slots.sum_range {
            ranges.extend([s, s + 1]);
        }
        range_input_shapes(&self.id, inputs, ranges)?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        let out = self.params.output_shape(&self.id, &data)?;
        self.id
            .fill_shape(&mut inputs[1], self.params.weight_shape(data[1]), "weight")?;
        let channel = vec![self.params.num_filter];
        for i in self
            .slots
            .bias
            .into_iter()
            .chain(self.slots.bn.into_iter().flat_map(|b| b..b + 4))
        {
            self.id
                .fill_shape(&mut inputs[i], channel.clone(), "per-channel parameter")?;
        }
        if let Some(s) = self.slots.sum {
            self.id
                .fill_shape(&mut inputs[s], out.clone(), "residual sum input")?;
        }
        Ok(Some(if self.float_output {
            vec![out]
        } else {
            vec![out, vec![1], vec![1]]
        }))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], _: usize) -> Result<Vec<DType>> {
        let data = known_type(&self.id, inputs, 0, "data")?;
        self.id
            .expect_dtype("data", data, &[DType::I8, DType::U8])?;
        let params_end = self.slots.sum.unwrap_or(self.slots.data_range);
        range_input_types(&self.id, inputs, 1..params_end)?;
        if let Some(s) = self.slots.sum {
            let t = known_type(&self.id, inputs, s, "sum")?;
            self.id
                .expect_dtype("sum", t, &[DType::I8, DType::U8, DType::I32])?;
        }
        range_input_types(&self.id, inputs, self.slots.data_range..self.slots.count)?;
        let out = self.output_dtype();
        Ok(if self.float_output {
            vec![out]
        } else {
            vec![out, DType::F32, DType::F32]
        })
    }

    fn prepare(&mut self, constants: &[Option<&Tensor>]) -> Result<()> {
        let end = self.slots.sum.unwrap_or(self.slots.data_range);
        if (1..end).all(|i| constants.get(i).copied().flatten().is_some()) {
            self.folded = Some(self.fold(constants)?);
        }
        Ok(())
    }

    fn channels_last_support(&self) -> ChannelsLastSupport {
        ChannelsLastSupport {
            inputs: std::iter::once(0).chain(self.slots.sum).collect(),
            outputs: vec![0],
        }
    }

    /// Returns true: the convolution writes every output element, and the
    /// range outputs are filled whole.
    fn writes_every_output(&self) -> bool {
        true
    }

    fn set_channels_last(&mut self, inputs: &[bool], outputs: &[bool]) -> Result<()> {
        let data = inputs[0];
        self.order = ConvOrder {
            data,
            // A deduplicated sum reads the data input itself.
            sum: self.slots.sum.map_or(data && self.dedup_sum, |s| inputs[s]),
            out: outputs[0],
        };
        Ok(())
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let data = inputs[0];
        let all: Vec<Option<&Tensor>> = inputs.iter().map(|t| Some(*t)).collect();
        let p = self.prepare_forward((data.dtype(), data.shape()), &all, outputs[0].shape())?;
        run_conv(
            &self.id,
            &p.geom,
            data,
            &p.quantized.packed,
            &p.stage,
            p.residual.map(|s| inputs[s]),
            self.order,
            &mut outputs[0],
        )?;
        match p.range {
            Some(range) => write_range(outputs, 1, range),
            None => Ok(()),
        }
    }

    fn as_row_conv(&self) -> Option<&dyn RowConv> {
        Some(self)
    }
}

impl FusedConv {
    /// Prepares one forward pass from the input ranges: the geometry, the
    /// weights quantized for the data scale, the output stage, where the
    /// residual comes from and the output range. `inputs[0]` (the data) is
    /// not read and may be absent.
    fn prepare_forward(
        &self,
        data: (DType, &[usize]),
        inputs: &[Option<&Tensor>],
        out_shape: &[usize],
    ) -> Result<Prepared> {
        let get = |i: usize, what: &str| -> Result<&Tensor> {
            inputs[i].ok_or_else(|| {
                self.id
                    .runtime_err(format!("{what} (input {i}) is missing"))
            })
        };
        let dr = self.slots.data_range;
        let d_range = range_of(get(dr, "data min")?, get(dr + 1, "data max")?, "data")?;
        let ds = guarded_scale(data.0, d_range.0, d_range.1);
        let quantized = self.quantized_for(inputs, ds, data.1[1])?;
        let (residual, sum_scale) = match (self.slots.sum, self.slots.sum_range) {
            (Some(s), Some(sr)) => {
                let r = range_of(get(sr, "sum min")?, get(sr + 1, "sum max")?, "sum")?;
                (
                    Some(s),
                    Some(guarded_scale(get(s, "sum")?.dtype(), r.0, r.1)),
                )
            }
            _ if self.dedup_sum => (Some(0), Some(ds)),
            _ => (None, None),
        };
        let stage = self.stage_for(&quantized, ds, sum_scale)?;
        let range = match (self.float_output, self.calib) {
            (true, _) => None,
            (false, Some(c)) => Some((c.min, c.max)),
            (false, None) => {
                let (wmin, wmax) = match self.folded.as_ref() {
                    Some(f) => (f.min, f.max),
                    None => {
                        let f = self.fold(inputs)?;
                        (f.min, f.max)
                    }
                };
                Some(product_range(
                    (wmin, wmax),
                    127.0,
                    d_range,
                    integer_range(data.0),
                ))
            }
        };
        Ok(Prepared {
            geom: self.params.geometry(data.1, out_shape),
            quantized,
            stage,
            residual,
            range,
        })
    }
}

impl RowConv for FusedConv {
    fn row_facts(&self) -> Option<RowFacts> {
        let eight_bit = matches!(self.output_dtype(), DType::I8 | DType::U8);
        let order = self.order;
        let laid_out = order.data && order.out && (self.slots.sum.is_none() || order.sum);
        let kernel = &self.params.kernel;
        if !eight_bit || !laid_out || self.dedup_sum || self.folded.is_none() || kernel.len() != 2 {
            return None;
        }
        Some(RowFacts {
            kernel: kernel[0],
            stride: self.params.stride[0],
            pad: self.params.pad[0],
            dilate: self.params.dilate[0],
            sum: self.slots.sum,
        })
    }

    fn prepare_rows(
        &self,
        data: (DType, &[usize]),
        inputs: &[Option<&Tensor>],
        out_shape: &[usize],
    ) -> Result<RowPlan> {
        let p = self.prepare_forward(data, inputs, out_shape)?;
        p.stage
            .validate(p.geom.out_channels)
            .map_err(|m| self.id.runtime_err(m))?;
        Ok(RowPlan {
            geom: p.geom,
            weights: p.quantized,
            stage: p.stage,
            data: data.0,
            out: self.output_dtype(),
            residual: p.residual,
            range: p.range,
        })
    }
}

/// The inputs of one forward pass's kernel call; see
/// [`FusedConv::prepare_forward`].
struct Prepared {
    geom: ConvGeometry,
    quantized: Arc<Quantized>,
    stage: Arc<OutputStage>,
    /// Input position of the residual (0 for a sum of the data with itself).
    residual: Option<usize>,
    /// Output range, for 8-bit and int32 outputs.
    range: Option<(f32, f32)>,
}
