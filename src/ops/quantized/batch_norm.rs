//! `_contrib_quantized_batch_norm`: inputs `data, gamma, beta, moving_mean,
//! moving_var, min_data, max_data`; int8 output with the calibration range.
//!
//! The per-channel multiplier and offset follow MXNet 1.9.1's oneDNN path,
//! including the extra `1/sqrt(1 + eps)` factor its oneDNN call applies, and
//! uint8 data is first requantized to int8 (one bit lost) as MXNet does.
//! Unlike MXNet, `fix_gamma=true` (BatchNorm's default) uses gamma = 1.

use super::common::{
    known_type, max_abs, range_input_shapes, range_input_types, range_of, write_range, Calib,
    Ident, INT8_RANGE, UINT8_RANGE,
};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::int8::elem::QuantElem;
use crate::ops::{NodeCtx, Op, Shape};
use crate::tensor::Tensor;

/// BatchNorm's `eps` when the attribute is absent: the float literal 1e-3f
/// widened to double, as MXNet's parameter default is.
pub(super) const DEFAULT_EPS: f64 = 1e-3f32 as f64;

struct QuantizedBatchNorm {
    id: Ident,
    eps: f64,
    fix_gamma: bool,
    axis: i64,
    calib: Calib,
}

pub fn create(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let r = ctx.reader();
    let calib = Calib::read(&r)?.ok_or_else(|| Error::Attr {
        node: ctx.name.into(),
        op: ctx.op.into(),
        key: "min_calib_range/max_calib_range".into(),
        value: String::new(),
        reason: "quantized BatchNorm needs a calibrated output range; quantize the model with calibration".into(),
    })?;
    Ok(Box::new(QuantizedBatchNorm {
        id: Ident::new(ctx),
        eps: r.float_or("eps", DEFAULT_EPS)?,
        fix_gamma: r.bool_or("fix_gamma", true)?,
        axis: r.int_or("axis", 1)?,
        calib,
    }))
}

impl QuantizedBatchNorm {
    fn axis(&self, ndim: usize) -> Result<usize> {
        let a = if self.axis < 0 {
            self.axis + ndim as i64
        } else {
            self.axis
        };
        if a < 0 || a as usize >= ndim {
            return Err(self.id.shape_err(format!(
                "axis {} is out of range for {ndim}-D data",
                self.axis
            )));
        }
        Ok(a as usize)
    }
}

impl Op for QuantizedBatchNorm {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.id.expect_inputs(inputs.len(), 7)?;
        range_input_shapes(&self.id, inputs, [5, 6])?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        let c = data[self.axis(data.len())?];
        for slot in &mut inputs[1..5] {
            match slot {
                None => *slot = Some(vec![c]),
                Some(s) if *s == [c] => {}
                Some(s) => {
                    return Err(self
                        .id
                        .shape_err(format!("parameter shape {s:?} does not match {c} channels")))
                }
            }
        }
        Ok(Some(vec![data, vec![1], vec![1]]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], _: usize) -> Result<Vec<DType>> {
        let t = known_type(&self.id, inputs, 0, "data")?;
        self.id.expect_dtype("data", t, &[DType::I8, DType::U8])?;
        range_input_types(&self.id, inputs, 1..7)?;
        Ok(vec![DType::I8, DType::F32, DType::F32])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let data = inputs[0];
        let (gamma, beta, mean, var) = (
            inputs[1].f32s()?,
            inputs[2].f32s()?,
            inputs[3].f32s()?,
            inputs[4].f32s()?,
        );
        let (lo, hi) = range_of(inputs[5], inputs[6], "data")?;
        let r_data = max_abs(lo, hi);
        let r_out = self.calib.max_abs();

        // Data as int8 values; uint8 is requantized at scale 127.5/255.5 first.
        let q: Vec<f32> = match data.dtype() {
            DType::I8 => data.as_slice::<i8>()?.iter().map(|&v| v as f32).collect(),
            _ => {
                let k = INT8_RANGE / UINT8_RANGE;
                data.as_slice::<u8>()?
                    .iter()
                    .map(|&v| i8::saturate(v as f32 * k) as f32)
                    .collect()
            }
        };

        // oneDNN normalizes with variance 1 and the same eps, hence 1/sqrt(1 + eps).
        let root = (1.0f32 + self.eps as f32).sqrt();
        let channels = gamma.len();
        let mut mult = vec![0f32; channels];
        let mut offset = vec![0f32; channels];
        for c in 0..channels {
            let g = if self.fix_gamma { 1.0 } else { gamma[c] };
            let inv = (1.0 / (var[c] as f64 + self.eps).sqrt()) as f32;
            let (w, b) = if r_out == 0.0 {
                (0.0, 0.0)
            } else {
                (
                    ((g * inv) * r_data) / r_out,
                    ((beta[c] - (mean[c] * g) * inv) * INT8_RANGE) / r_out,
                )
            };
            mult[c] = w / root;
            offset[c] = b;
        }

        let shape = data.shape();
        let axis = self.axis(shape.len())?;
        let inner: usize = shape[axis + 1..].iter().product();
        let out: &mut [i8] = outputs[0].as_mut_slice()?;
        for (i, (o, &x)) in out.iter_mut().zip(&q).enumerate() {
            let c = (i / inner) % channels;
            // The NHWC oneDNN kernel fuses multiply and add (one rounding).
            *o = i8::saturate(mult[c].mul_add(x, offset[c]));
        }
        write_range(outputs, 1, (self.calib.min, self.calib.max))
    }
}
