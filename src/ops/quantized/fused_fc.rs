//! `_sg_mkldnn_fully_connected` (MXNet 1.9.1) and `_sg_onednn_fully_connected`
//! (2.0) with `quantized=true`: FullyConnected with an optional fused
//! element-wise activation, fused requantize (calibration range) or fused
//! dequantize (`enable_float_output`).
//!
//! Tensor-wise inputs: `data, weight (int8), [bias (int8)], min_data,
//! max_data, min_weight, max_weight, [min_bias, max_bias]`.
//! Channel-wise (`channel_wise_quantize=true`) inputs: `data, weight (f32),
//! [bias (f32)], min_data, max_data`; the weights are quantized per output
//! row once per data scale.
//!
//! Differences from MXNet 1.9.1: a calibrated FC whose activation can be
//! negative (LeakyReLU with a slope, ELU, tanh) outputs int8, where MXNet
//! outputs uint8 and drops every negative value. And when the bias-overflow
//! guard rescales the weights, the rescaled weights are used (MXNet's
//! symbolic executor keeps the original weights with the rescaled scale).

use super::common::{
    guarded_scale, integer_range, known_type, max_abs, product_range, range_input_shapes,
    range_input_types, range_of, write_range, Calib, Ident,
};
use super::fc::{run_gemm, FcParams};
use super::subgraph::{channel_weight_scales, parse};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::int8::elem::QuantElem;
use crate::kernels::int8::gemm::PackedGemmWeights;
use crate::kernels::int8::output::{Activation, OutputStage, PerChannel};
use crate::ops::{AttrReader, NodeCtx, Op, Shape};
use crate::tensor::Tensor;
use std::sync::{Arc, Mutex};

/// Weights, bias and scales ready for one data scale.
struct Prepared {
    data_scale_bits: u32,
    packed: PackedGemmWeights,
    /// Bias in accumulator units.
    bias: Option<Vec<f32>>,
    /// Weight scale per output row (one entry when tensor-wise).
    weight_scales: Vec<f32>,
}

struct FusedFc {
    id: Ident,
    params: FcParams,
    act: Option<Activation>,
    calib: Option<Calib>,
    float_output: bool,
    channel_wise: bool,
    cache: Mutex<Option<Arc<Prepared>>>,
}

pub fn create(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let id = Ident::new(ctx);
    let r = ctx.reader();
    if !r.bool_or("quantized", false)? {
        return Err(Error::UnsupportedOp {
            op: format!(
                "{} (quantized=false: an FP32 fused fully connected layer)",
                ctx.op
            ),
            node: ctx.name.to_string(),
        });
    }
    let chain = parse(&id, ctx.subgraphs, "FullyConnected")?;
    let params = FcParams::read(&AttrReader::new(
        &chain.main.name,
        &chain.main.op,
        &chain.main.attrs,
    ))?;
    let with_eltwise = r.bool_or("with_eltwise", false)? || r.bool_or("with_relu", false)?;
    if with_eltwise && chain.act.is_none() {
        return Err(id.shape_err("with_eltwise is set but the subgraph has no activation"));
    }
    let float_output = r.bool_or("enable_float_output", false)?
        || matches!(r.raw("enabled_float_output"), Some("float32"));
    let channel_wise = r.opt_bool("channel_wise_quantize")?.unwrap_or(false);
    let calib = Calib::read(&r)?;
    if channel_wise && calib.is_none() && !float_output {
        return Err(id.shape_err(
            "channel-wise quantized FullyConnected needs a calibration range or enable_float_output",
        ));
    }
    Ok(Box::new(FusedFc {
        id,
        params,
        act: if with_eltwise { chain.act } else { None },
        calib,
        float_output,
        channel_wise,
        cache: Mutex::new(None),
    }))
}

impl FusedFc {
    fn bias_index(&self) -> Option<usize> {
        (!self.params.no_bias).then_some(2)
    }

    fn data_range_index(&self) -> usize {
        if self.params.no_bias {
            2
        } else {
            3
        }
    }

    fn input_count(&self) -> usize {
        let ranges = if self.channel_wise {
            2
        } else if self.params.no_bias {
            4
        } else {
            6
        };
        self.data_range_index() + ranges
    }

    fn output_dtype(&self) -> DType {
        if self.float_output {
            DType::F32
        } else if self.calib.is_none() {
            DType::I32
        } else if self.act.is_some_and(|a| a.is_non_negative()) {
            DType::U8
        } else {
            DType::I8
        }
    }

    fn prepare_tensor_wise(&self, inputs: &[&Tensor], ds: f32) -> Result<Prepared> {
        let dr = self.data_range_index();
        let w_range = range_of(inputs[dr + 2], inputs[dr + 3], "weight")?;
        let w = inputs[1];
        let mut weights: Vec<i8> = w.as_slice::<i8>()?.to_vec();
        let mut ws = guarded_scale(DType::I8, w_range.0, w_range.1);
        let mut bias = None;
        if let Some(bi) = self.bias_index() {
            let b_range = range_of(inputs[dr + 4], inputs[dr + 5], "bias")?;
            let bs = guarded_scale(DType::I8, b_range.0, b_range.1);
            let mut rescale = (ds * ws) / bs;
            let b_max = max_abs(b_range.0, b_range.1);
            if b_max > 0.0 {
                // Keep |bias| in accumulator units within 2^30 by shrinking the weights.
                let cap = (1_073_741_823i32 as f32 / b_max) / bs;
                if rescale > cap {
                    let factor = ((cap * bs) / ds) / ws;
                    for v in &mut weights {
                        *v = (*v as f32 * factor).round() as i8;
                    }
                    ws *= factor;
                    rescale = cap;
                }
            }
            // Round half away from zero, as MXNet's fused FC does.
            bias = Some(
                inputs[bi]
                    .as_slice::<i8>()?
                    .iter()
                    .map(|&b| (b as f32 * rescale).round())
                    .collect(),
            );
        }
        Ok(Prepared {
            data_scale_bits: ds.to_bits(),
            packed: PackedGemmWeights::pack(&weights, w.shape()[0], w.shape()[1]),
            bias,
            weight_scales: vec![ws],
        })
    }

    fn prepare_channel_wise(&self, inputs: &[&Tensor], ds: f32) -> Result<Prepared> {
        let w = inputs[1];
        let rows = w.shape()[0];
        let weights = w.f32s()?;
        let bias_f32 = match self.bias_index() {
            Some(bi) => Some(inputs[bi].f32s()?),
            None => None,
        };
        let scales = channel_weight_scales(weights, rows, bias_f32, ds);
        let depth = w.shape()[1];
        let wq: Vec<i8> = weights
            .iter()
            .enumerate()
            .map(|(i, &v)| i8::saturate(v * scales[i / depth]))
            .collect();
        let bias = bias_f32.map(|b| {
            b.iter()
                .zip(&scales)
                .map(|(&v, &s)| i32::saturate(v * (s * ds)) as f32)
                .collect()
        });
        Ok(Prepared {
            data_scale_bits: ds.to_bits(),
            packed: PackedGemmWeights::pack(&wq, rows, depth),
            bias,
            weight_scales: scales,
        })
    }

    fn prepared_for(&self, inputs: &[&Tensor], ds: f32) -> Result<Arc<Prepared>> {
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| self.id.runtime_err("weight cache lock is poisoned"))?;
        if let Some(p) = cache.as_ref() {
            if p.data_scale_bits == ds.to_bits() {
                return Ok(p.clone());
            }
        }
        let p = Arc::new(if self.channel_wise {
            self.prepare_channel_wise(inputs, ds)?
        } else {
            self.prepare_tensor_wise(inputs, ds)?
        });
        *cache = Some(p.clone());
        Ok(p)
    }

    fn stage(&self, p: &Prepared, ds: f32) -> OutputStage {
        let mut stage = OutputStage {
            bias: p.bias.clone().map(PerChannel).unwrap_or_default(),
            ..Default::default()
        };
        // From accumulator units to real values: f32(f32(1.0 / ds) / ws), the division by ds in f64.
        let real: Vec<f32> = p
            .weight_scales
            .iter()
            .map(|&ws| ((1.0f64 / ds as f64) as f32) / ws)
            .collect();
        match (self.float_output, self.calib) {
            (true, _) => {
                stage.scale = PerChannel(real);
                stage.activation = self.act;
            }
            (false, Some(c)) => {
                let os = guarded_scale(self.output_dtype(), c.min, c.max);
                if self.act.is_some() {
                    stage.scale = PerChannel(real);
                    stage.activation = self.act;
                    stage.act_scale = Some(os);
                } else {
                    stage.scale =
                        PerChannel(p.weight_scales.iter().map(|&ws| (os / ds) / ws).collect());
                }
            }
            (false, None) => match self.act {
                None => {}
                Some(a @ (Activation::Relu | Activation::Leaky { .. })) => {
                    stage.activation = Some(a)
                }
                Some(a) => {
                    // Other activations need real values: scale down, apply, scale back.
                    stage.scale = PerChannel(real);
                    stage.activation = Some(a);
                    stage.act_scale = Some(ds * p.weight_scales[0]);
                }
            },
        }
        stage
    }
}

impl Op for FusedFc {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.id.expect_inputs(inputs.len(), self.input_count())?;
        range_input_shapes(&self.id, inputs, self.data_range_index()..inputs.len())?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        let out = self.params.output_shape(&self.id, &data)?;
        self.id.fill_shape(
            &mut inputs[1],
            vec![self.params.num_hidden, self.params.depth(&data)],
            "weight",
        )?;
        if let Some(b) = self.bias_index() {
            self.id
                .fill_shape(&mut inputs[b], vec![self.params.num_hidden], "bias")?;
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
        let param_type = if self.channel_wise {
            DType::F32
        } else {
            DType::I8
        };
        let end = self.data_range_index();
        for slot in &mut inputs[1..end] {
            let t = *slot.get_or_insert(param_type);
            self.id.expect_dtype("weight/bias", t, &[param_type])?;
        }
        range_input_types(&self.id, inputs, self.data_range_index()..inputs.len())?;
        let out = self.output_dtype();
        Ok(if self.float_output {
            vec![out]
        } else {
            vec![out, DType::F32, DType::F32]
        })
    }

    fn prepare(&mut self, _constants: &[Option<&Tensor>]) -> Result<()> {
        // Quantization needs the data scale, so it happens on the first
        // forward pass and is cached until the data range changes.
        Ok(())
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let data = inputs[0];
        let dr = self.data_range_index();
        let d_range = range_of(inputs[dr], inputs[dr + 1], "data")?;
        let ds = guarded_scale(data.dtype(), d_range.0, d_range.1);
        let p = self.prepared_for(inputs, ds)?;
        let stage = self.stage(&p, ds);
        run_gemm(&self.id, data, &p.packed, &stage, &mut outputs[0])?;
        if self.float_output {
            return Ok(());
        }
        let range = match self.calib {
            Some(c) => (c.min, c.max),
            None => {
                let w_range = range_of(inputs[dr + 2], inputs[dr + 3], "weight")?;
                product_range(d_range, 127.0, w_range, integer_range(data.dtype()))
            }
        };
        write_range(outputs, 1, range)
    }
}
