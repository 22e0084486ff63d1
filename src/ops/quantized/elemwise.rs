//! `_contrib_quantized_elemwise_add` and `_contrib_quantized_elemwise_mul`:
//! inputs `lhs, rhs, lhs_min, lhs_max, rhs_min, rhs_max`, same shapes.

use super::common::{
    data_scale, integer_range, known_type, max_abs, product_range, range_constant,
    range_input_shapes, range_input_types, range_of, with_quant_type, write_range, Calib, Ident,
    P31,
};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::int8::elem::QuantElem;
use crate::ops::{NodeCtx, Op, Shape};
use crate::tensor::Tensor;

fn same_shapes(id: &Ident, inputs: &mut [Option<Shape>]) -> Result<Option<Shape>> {
    id.expect_inputs(inputs.len(), 6)?;
    range_input_shapes(id, inputs, 2..6)?;
    match (inputs[0].clone(), inputs[1].clone()) {
        (Some(a), Some(b)) if a != b => {
            Err(id.shape_err(format!("operand shapes {a:?} and {b:?} differ")))
        }
        (Some(a), None) => {
            inputs[1] = Some(a.clone());
            Ok(Some(a))
        }
        (None, Some(b)) => {
            inputs[0] = Some(b.clone());
            Ok(Some(b))
        }
        (a, _) => Ok(a),
    }
}

/// Converts a quantized tensor to f32 values (exact for 8-bit types).
fn as_f32(id: &Ident, t: &Tensor) -> Result<Vec<f32>> {
    with_quant_type!(t.dtype(), id, T => Ok(t.as_slice::<T>()?.iter().map(|v| v.to_f32()).collect()))
}

/// Addition. Calibrated: the output has the inputs' dtype (int8 when they
/// differ) and the calibration range. Uncalibrated: exact-scale int32 with
/// range `±(Ra + Rb)`.
struct QuantizedAdd {
    id: Ident,
    calib: Option<Calib>,
}

pub fn create_add(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(QuantizedAdd {
        id: Ident::new(ctx),
        calib: Calib::read(&ctx.reader())?,
    }))
}

impl Op for QuantizedAdd {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        Ok(same_shapes(&self.id, inputs)?.map(|s| vec![s, vec![1], vec![1]]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], _: usize) -> Result<Vec<DType>> {
        let a = known_type(&self.id, inputs, 0, "lhs")?;
        let b = known_type(&self.id, inputs, 1, "rhs")?;
        self.id.expect_dtype("lhs", a, &[DType::I8, DType::U8])?;
        self.id.expect_dtype("rhs", b, &[DType::I8, DType::U8])?;
        range_input_types(&self.id, inputs, 2..6)?;
        let out = match self.calib {
            None => DType::I32,
            Some(_) if a == b => a,
            Some(_) => DType::I8,
        };
        Ok(vec![out, DType::F32, DType::F32])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let (lhs, rhs) = (inputs[0], inputs[1]);
        let ra = range_of(inputs[2], inputs[3], "lhs")?;
        let rb = range_of(inputs[4], inputs[5], "rhs")?;
        let sa = data_scale(lhs.dtype(), ra.0, ra.1);
        let sb = data_scale(rhs.dtype(), rb.0, rb.1);
        let a = as_f32(&self.id, lhs)?;
        let b = as_f32(&self.id, rhs)?;
        let out_type = outputs[0].dtype();

        let Some(calib) = self.calib else {
            // int32 sum: each operand scaled so that real = out * Rsum / 2^31.
            // With equal dtypes this is MXNet's arithmetic; MXNet breaks for mixed dtypes.
            let (ma, mb) = (max_abs(ra.0, ra.1), max_abs(rb.0, rb.1));
            let r_sum = ma + mb;
            let factor = |m: f32, t: DType| {
                if r_sum == 0.0 {
                    0.0
                } else {
                    (m * P31) / (r_sum * range_constant(t))
                }
            };
            let (ka, kb) = (factor(ma, lhs.dtype()), factor(mb, rhs.dtype()));
            let out: &mut [i32] = outputs[0].as_mut_slice()?;
            for ((o, &x), &y) in out.iter_mut().zip(&a).zip(&b) {
                *o = i32::saturate(ka * x + kb * y);
            }
            return write_range(outputs, 1, (-r_sum, r_sum));
        };

        let so = data_scale(out_type, calib.min, calib.max);
        let factor = |s: f32| if s == 0.0 { 0.0 } else { so / s };
        let (mut ka, mut kb) = (factor(sa), factor(sb));
        let (mut a, mut b) = (a, b);
        // Mixed dtypes (int8 output): MXNet first requantizes the uint8
        // operand to int8 at the output scale, then adds it with factor 1.
        if lhs.dtype() != rhs.dtype() {
            let (u, k) = if lhs.dtype() == DType::U8 {
                (&mut a, &mut ka)
            } else {
                (&mut b, &mut kb)
            };
            for v in u.iter_mut() {
                *v = i8::saturate(*v * *k) as f32;
            }
            *k = 1.0;
        }
        with_quant_type!(out_type, self.id, O => {
            let out = outputs[0].as_mut_slice::<O>()?;
            for ((o, &x), &y) in out.iter_mut().zip(&a).zip(&b) {
                *o = O::saturate(ka * x + kb * y);
            }
        });
        write_range(outputs, 1, (calib.min, calib.max))
    }
}

/// Multiplication. Uncalibrated: exact int32 products. Calibrated: int8,
/// rounded half to even and saturated (MXNet 1.9.1 truncates and wraps).
/// `enable_float_output`: one f32 output.
struct QuantizedMul {
    id: Ident,
    calib: Option<Calib>,
    float_output: bool,
}

pub fn create_mul(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let r = ctx.reader();
    Ok(Box::new(QuantizedMul {
        id: Ident::new(ctx),
        calib: Calib::read(&r)?,
        float_output: r.bool_or("enable_float_output", false)?,
    }))
}

impl Op for QuantizedMul {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        let s = same_shapes(&self.id, inputs)?;
        Ok(s.map(|s| {
            if self.float_output {
                vec![s]
            } else {
                vec![s, vec![1], vec![1]]
            }
        }))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], _: usize) -> Result<Vec<DType>> {
        for (i, what) in [(0, "lhs"), (1, "rhs")] {
            let t = known_type(&self.id, inputs, i, what)?;
            self.id.expect_dtype(what, t, &[DType::I8, DType::U8])?;
        }
        range_input_types(&self.id, inputs, 2..6)?;
        Ok(if self.float_output {
            vec![DType::F32]
        } else if self.calib.is_some() {
            vec![DType::I8, DType::F32, DType::F32]
        } else {
            vec![DType::I32, DType::F32, DType::F32]
        })
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let (lhs, rhs) = (inputs[0], inputs[1]);
        let ra = range_of(inputs[2], inputs[3], "lhs")?;
        let rb = range_of(inputs[4], inputs[5], "rhs")?;
        let a = as_f32(&self.id, lhs)?;
        let b = as_f32(&self.id, rhs)?;
        // |a·b| <= 255·128, so every product is exact in f32 and i32.
        let products = a.iter().zip(&b).map(|(&x, &y)| x * y);
        let sa = data_scale(lhs.dtype(), ra.0, ra.1);
        let sb = data_scale(rhs.dtype(), rb.0, rb.1);

        if self.float_output {
            let k = if sa == 0.0 || sb == 0.0 {
                0.0
            } else {
                (1.0f64 / sa as f64 / sb as f64) as f32
            };
            let out = outputs[0].f32s_mut()?;
            for (o, p) in out.iter_mut().zip(products) {
                *o = p * k;
            }
            return Ok(());
        }
        if let Some(c) = self.calib {
            let sc = data_scale(DType::I8, c.min, c.max);
            let k = if sa == 0.0 || sb == 0.0 {
                0.0
            } else {
                (sc / sa) / sb
            };
            let out: &mut [i8] = outputs[0].as_mut_slice()?;
            for (o, p) in out.iter_mut().zip(products) {
                *o = i8::saturate(p * k);
            }
            return write_range(outputs, 1, (c.min, c.max));
        }
        let out: &mut [i32] = outputs[0].as_mut_slice()?;
        for (o, p) in out.iter_mut().zip(products) {
            *o = p as i32;
        }
        let range = product_range(
            ra,
            integer_range(lhs.dtype()),
            rb,
            integer_range(rhs.dtype()),
        );
        write_range(outputs, 1, range)
    }
}
