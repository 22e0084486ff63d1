//! Helpers shared by the quantized operators: quantized types and their
//! scale constants, range arithmetic, attribute parsing for calibration and
//! output types, and access to the (1,) min/max tensors.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::{AttrReader, NodeCtx, Shape};
use crate::tensor::Tensor;

/// `float(INT32_MAX)` as MXNet computes it, which rounds to 2^31.
pub const P31: f32 = 2_147_483_648.0;

/// oneDNN's "quantized range" of int8 data in MXNet 1.9.1.
pub const INT8_RANGE: f32 = 127.5;
/// oneDNN's "quantized range" of uint8 data in MXNet 1.9.1.
pub const UINT8_RANGE: f32 = 255.5;

/// Node name and operator, for error messages.
#[derive(Clone, Debug)]
pub struct Ident {
    pub node: String,
    pub op: String,
}

impl Ident {
    pub fn new(ctx: &NodeCtx) -> Self {
        Ident {
            node: ctx.name.to_string(),
            op: ctx.op.to_string(),
        }
    }

    pub fn dtype_err(&self, reason: impl Into<String>) -> Error {
        Error::dtype(&self.node, &self.op, reason)
    }

    /// Fills an unknown input shape with `expected`, or checks a known one
    /// against it: weights from a `.params` file must have exactly the shape
    /// the node's attributes and data imply.
    pub fn fill_shape(&self, slot: &mut Option<Shape>, expected: Shape, what: &str) -> Result<()> {
        match slot {
            None => {
                *slot = Some(expected);
                Ok(())
            }
            Some(known) if *known == expected => Ok(()),
            Some(known) => Err(self.shape_err(format!(
                "{what} has shape {known:?}, but the attributes and the data shape require {expected:?}"
            ))),
        }
    }

    pub fn shape_err(&self, reason: impl Into<String>) -> Error {
        Error::shape(&self.node, &self.op, reason)
    }

    pub fn runtime_err(&self, reason: impl AsRef<str>) -> Error {
        Error::Runtime(format!(
            "node {:?} (op {}): {}",
            self.node,
            self.op,
            reason.as_ref()
        ))
    }

    /// Fails unless `t` has one of `allowed` dtypes.
    pub fn expect_dtype(&self, what: &str, t: DType, allowed: &[DType]) -> Result<()> {
        if allowed.contains(&t) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|d| d.name()).collect();
        Err(self.dtype_err(format!(
            "{what} has dtype {t}; expected {}",
            names.join(" or ")
        )))
    }

    /// Checks the input count against the operator's signature.
    pub fn expect_inputs(&self, got: usize, expected: usize) -> Result<()> {
        if got != expected {
            return Err(self.shape_err(format!("expected {expected} inputs, got {got}")));
        }
        Ok(())
    }
}

/// `max(|a|, |b|)` in f32: the symmetric range of a (min, max) pair.
pub fn max_abs(a: f32, b: f32) -> f32 {
    a.abs().max(b.abs())
}

/// Returns the oneDNN range constant of a quantized dtype: 127.5 (int8), 255.5
/// (uint8) or 2^31 (int32 accumulators).
pub fn range_constant(dtype: DType) -> f32 {
    match dtype {
        DType::U8 => UINT8_RANGE,
        DType::I32 => P31,
        _ => INT8_RANGE,
    }
}

/// Returns the "integer range" constant used by MXNet's int32 range formulas and
/// offline weight quantization: 127 for int8, 255 for uint8.
pub fn integer_range(dtype: DType) -> f32 {
    if dtype == DType::U8 {
        255.0
    } else {
        127.0
    }
}

/// Scale from real values to `dtype`: `f32(range_constant / max_abs(lo, hi))`.
/// A zero range gives 0, so every value quantizes to 0 (MXNet 1.9.1 divides
/// by zero here and outputs 127 for int8).
pub fn data_scale(dtype: DType, lo: f32, hi: f32) -> f32 {
    let r = max_abs(lo, hi);
    if r == 0.0 {
        0.0
    } else {
        range_constant(dtype) / r
    }
}

/// Scale as the fused oneDNN operators compute it: a zero range gives 2^31.
pub fn guarded_scale(dtype: DType, lo: f32, hi: f32) -> f32 {
    let r = max_abs(lo, hi);
    if r == 0.0 {
        P31
    } else {
        range_constant(dtype) / r
    }
}

/// Computes the float range `(-m, m)` of an int32 product of operands A and B
/// (MXNet's `QuantizationRangeForMultiplication`): `m = f32(f32(fa·fb)·2^31)`
/// with `fa = MaxAbs(a)/ra`, `fb = MaxAbs(b)/rb`.
pub fn product_range(a: (f32, f32), ra: f32, b: (f32, f32), rb: f32) -> (f32, f32) {
    let fa = max_abs(a.0, a.1) / ra;
    let fb = max_abs(b.0, b.1) / rb;
    let m = (fa * fb) * P31;
    (-m, m)
}

/// Reads the single f32 value of a (1,) range tensor.
pub fn scalar(t: &Tensor, what: &str) -> Result<f32> {
    let v = t
        .f32s()
        .map_err(|e| Error::invalid(format!("{what}: {e}")))?;
    v.first()
        .copied()
        .ok_or_else(|| Error::invalid(format!("{what} is empty; expected one float32 value")))
}

/// Reads a (min, max) pair from two range tensors.
pub fn range_of(min: &Tensor, max: &Tensor, what: &str) -> Result<(f32, f32)> {
    Ok((
        scalar(min, &format!("min of {what}"))?,
        scalar(max, &format!("max of {what}"))?,
    ))
}

/// Writes a (min, max) pair into two output tensors.
pub fn write_range(outputs: &mut [Tensor], first: usize, range: (f32, f32)) -> Result<()> {
    for (t, v) in outputs[first..first + 2].iter_mut().zip([range.0, range.1]) {
        let s = t.f32s_mut()?;
        s.fill(v);
    }
    Ok(())
}

/// The calibration range of a node (`min_calib_range`, `max_calib_range`);
/// present only when both attributes are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calib {
    pub min: f32,
    pub max: f32,
}

impl Calib {
    pub fn read(r: &AttrReader) -> Result<Option<Calib>> {
        let lo = r.opt_f32("min_calib_range")?;
        let hi = r.opt_f32("max_calib_range")?;
        Ok(match (lo, hi) {
            (Some(min), Some(max)) => Some(Calib { min, max }),
            _ => None,
        })
    }

    pub fn max_abs(&self) -> f32 {
        max_abs(self.min, self.max)
    }
}

/// The `out_type` attribute of quantize_v2 / requantize.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutType {
    Int8,
    Uint8,
    Auto,
}

impl OutType {
    pub fn read(r: &AttrReader, default: &'static str) -> Result<OutType> {
        Ok(
            match r.choice("out_type", &["auto", "int8", "uint8"], default)? {
                "int8" => OutType::Int8,
                "uint8" => OutType::Uint8,
                _ => OutType::Auto,
            },
        )
    }

    /// Resolves `auto`: uint8 iff a calibration range is present and its
    /// minimum is `>= 0`, else int8.
    pub fn resolve(self, calib: Option<Calib>) -> DType {
        match self {
            OutType::Int8 => DType::I8,
            OutType::Uint8 => DType::U8,
            OutType::Auto => match calib {
                Some(c) if c.min >= 0.0 => DType::U8,
                _ => DType::I8,
            },
        }
    }
}

/// Fills unknown range-input shapes with (1,) and checks known ones.
pub fn range_input_shapes(
    id: &Ident,
    inputs: &mut [Option<Shape>],
    indices: impl IntoIterator<Item = usize>,
) -> Result<()> {
    for i in indices {
        match &inputs[i] {
            None => inputs[i] = Some(vec![1]),
            Some(s) if s.iter().product::<usize>() == 1 => {}
            Some(s) => {
                return Err(id.shape_err(format!("range input {i} has shape {s:?}; expected (1,)")))
            }
        }
    }
    Ok(())
}

/// Sets unknown range-input dtypes to f32 and rejects other dtypes.
pub fn range_input_types(
    id: &Ident,
    inputs: &mut [Option<DType>],
    indices: impl IntoIterator<Item = usize>,
) -> Result<()> {
    for i in indices {
        match inputs[i] {
            None => inputs[i] = Some(DType::F32),
            Some(DType::F32) => {}
            Some(t) => {
                return Err(id.dtype_err(format!("range input {i} has dtype {t}; expected float32")))
            }
        }
    }
    Ok(())
}

/// The dtype of input `i`, which must already be known.
pub fn known_type(id: &Ident, inputs: &[Option<DType>], i: usize, what: &str) -> Result<DType> {
    inputs[i].ok_or_else(|| id.dtype_err(format!("the dtype of {what} (input {i}) is unknown")))
}

/// Runs `$body` with `$T` bound to the Rust type of a quantized dtype
/// (`i8`, `u8`; and `i32` in the three-type form).
macro_rules! with_quant_type {
    ($dtype:expr, $id:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::dtype::DType::I8 => {
                type $T = i8;
                $body
            }
            $crate::dtype::DType::U8 => {
                type $T = u8;
                $body
            }
            other => {
                return Err($id.dtype_err(format!(
                    "quantized data has dtype {other}; expected int8 or uint8"
                )));
            }
        }
    };
    ($dtype:expr, $id:expr, $T:ident => $body:expr, with_i32) => {
        match $dtype {
            $crate::dtype::DType::I8 => {
                type $T = i8;
                $body
            }
            $crate::dtype::DType::U8 => {
                type $T = u8;
                $body
            }
            $crate::dtype::DType::I32 => {
                type $T = i32;
                $body
            }
            other => {
                return Err($id.dtype_err(format!(
                    "quantized data has dtype {other}; expected int8, uint8 or int32"
                )));
            }
        }
    };
}
pub(crate) use with_quant_type;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_range_matches_mxnet_example() {
        // Quantized FC, u8 data range (0, 1), weight (-1, 1): 66311.06.
        let (lo, hi) = product_range((0.0, 1.0), 127.0, (-1.0, 1.0), 255.0);
        assert_eq!(hi, 66311.06);
        assert_eq!(lo, -hi);
    }

    #[test]
    fn zero_range_scales() {
        assert_eq!(data_scale(DType::I8, 0.0, -0.0), 0.0);
        assert_eq!(guarded_scale(DType::I8, 0.0, 0.0), P31);
        assert_eq!(data_scale(DType::U8, -1.0, 2.0), 255.5 / 2.0);
    }
}
