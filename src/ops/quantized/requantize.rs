//! `_contrib_requantize`: int32 accumulators to int8/uint8.

use super::common::{
    known_type, max_abs, range_input_shapes, range_input_types, range_of, with_quant_type,
    write_range, Calib, Ident, OutType, P31,
};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::int8::quantize::{min_max_i32, rescale};
use crate::ops::{NodeCtx, Op, Shape};
use crate::tensor::Tensor;

/// Inputs `data (int32), min_range, max_range`.
struct Requantize {
    id: Ident,
    out: DType,
    calib: Option<Calib>,
}

pub fn create(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let r = ctx.reader();
    let calib = Calib::read(&r)?;
    let out = OutType::read(&r, "int8")?.resolve(calib);
    Ok(Box::new(Requantize {
        id: Ident::new(ctx),
        out,
        calib,
    }))
}

impl Op for Requantize {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.id.expect_inputs(inputs.len(), 3)?;
        range_input_shapes(&self.id, inputs, [1, 2])?;
        Ok(inputs[0].clone().map(|s| vec![s, vec![1], vec![1]]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], _: usize) -> Result<Vec<DType>> {
        inputs[0].get_or_insert(DType::I32);
        let t = known_type(&self.id, inputs, 0, "data")?;
        self.id.expect_dtype("data", t, &[DType::I32])?;
        range_input_types(&self.id, inputs, [1, 2])?;
        Ok(vec![self.out, DType::F32, DType::F32])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let (lo, hi) = range_of(inputs[1], inputs[2], "the input range")?;
        let data: &[i32] = inputs[0].as_slice()?;
        let r_in = max_abs(lo, hi);
        let r_out = match self.calib {
            Some(c) => c.max_abs(),
            None => {
                // MXNet rounds max|data| to f32 and back to int32, which
                // overflows (and flips the sign) from 2147483584 up; the f32
                // value itself is the right magnitude.
                let (dmin, dmax) = min_max_i32(data).unwrap_or((0, 0));
                let m = (dmin as i64).abs().max((dmax as i64).abs()) as f32;
                (m * r_in) / P31
            }
        };
        let target = if self.out == DType::U8 {
            255.0f32
        } else {
            127.0
        };
        let scale = if r_out == 0.0 {
            0.0
        } else {
            (r_in / P31) * (target / r_out)
        };
        with_quant_type!(self.out, self.id, T => rescale::<i32, T>(data, scale, outputs[0].as_mut_slice()?));
        let range = if self.out == DType::U8 {
            (0.0, r_out)
        } else {
            (-r_out, r_out)
        };
        write_range(outputs, 1, range)
    }
}
