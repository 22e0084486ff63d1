//! `_contrib_quantized_concat`: inputs `arg0 .. arg{n-1}`, then the ranges
//! `arg0_min, arg0_max, arg1_min, ...`. The output is int8 if any input is
//! int8, else uint8, with range `(min(0, mins), max(0, maxes))`. Each input
//! is rescaled to the output scale unless its scale already equals it.

use super::common::{
    data_scale, known_type, range_input_shapes, range_input_types, range_of, with_quant_type,
    write_range, Ident,
};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::int8::elem::QuantElem;
use crate::kernels::int8::quantize::rescale;
use crate::ops::{NodeCtx, Op, Shape};
use crate::tensor::Tensor;

struct QuantizedConcat {
    id: Ident,
    num_args: usize,
    dim: i64,
}

pub fn create(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let r = ctx.reader();
    Ok(Box::new(QuantizedConcat {
        id: Ident::new(ctx),
        num_args: r.int("num_args")?.max(1) as usize,
        dim: r.int_or("dim", 1)?,
    }))
}

impl QuantizedConcat {
    fn axis(&self, ndim: usize) -> Result<usize> {
        let d = if self.dim < 0 {
            self.dim + ndim as i64
        } else {
            self.dim
        };
        if d < 0 || d as usize >= ndim {
            return Err(self.id.shape_err(format!(
                "dim {} is out of range for {ndim}-D inputs",
                self.dim
            )));
        }
        Ok(d as usize)
    }
}

impl Op for QuantizedConcat {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        let n = self.num_args;
        self.id.expect_inputs(inputs.len(), 3 * n)?;
        range_input_shapes(&self.id, inputs, n..3 * n)?;
        if inputs[..n].iter().any(|s| s.is_none()) {
            return Ok(None);
        }
        let first = inputs[0].clone().unwrap();
        let axis = self.axis(first.len())?;
        let mut out = first.clone();
        out[axis] = 0;
        for s in inputs[..n].iter().flatten() {
            let same_rank = s.len() == first.len();
            let same_rest = same_rank && (0..s.len()).all(|i| i == axis || s[i] == first[i]);
            if !same_rest {
                return Err(self.id.shape_err(format!(
                    "cannot concatenate {s:?} with {first:?} along axis {axis}"
                )));
            }
            out[axis] += s[axis];
        }
        Ok(Some(vec![out, vec![1], vec![1]]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], _: usize) -> Result<Vec<DType>> {
        let n = self.num_args;
        let mut any_int8 = false;
        for i in 0..n {
            let t = known_type(&self.id, inputs, i, "data")?;
            self.id.expect_dtype("data", t, &[DType::I8, DType::U8])?;
            any_int8 |= t == DType::I8;
        }
        range_input_types(&self.id, inputs, n..3 * n)?;
        let out = if any_int8 { DType::I8 } else { DType::U8 };
        Ok(vec![out, DType::F32, DType::F32])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let n = self.num_args;
        let mut ranges = Vec::with_capacity(n);
        for i in 0..n {
            ranges.push(range_of(
                inputs[n + 2 * i],
                inputs[n + 2 * i + 1],
                "an input",
            )?);
        }
        let lo = ranges.iter().fold(0.0f32, |m, r| m.min(r.0));
        let hi = ranges.iter().fold(0.0f32, |m, r| m.max(r.1));
        let out_type = outputs[0].dtype();
        let so = data_scale(out_type, lo, hi);

        let shape = outputs[0].shape().to_vec();
        let axis = self.axis(shape.len())?;
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let out_row = shape[axis] * inner;
        let mut offset = 0usize;
        for (i, input) in inputs[..n].iter().enumerate() {
            let si = data_scale(input.dtype(), ranges[i].0, ranges[i].1);
            // Equal scales copy; a zero input range means all-zero data.
            let factor = if si == so {
                1.0
            } else if si == 0.0 {
                0.0
            } else {
                so / si
            };
            let row = input.shape()[axis] * inner;
            with_quant_type!(out_type, self.id, O => {
                with_quant_type!(input.dtype(), self.id, I => {
                    let src = input.as_slice::<I>()?;
                    let mut converted = vec![O::saturate(0.0); src.len()];
                    rescale::<I, O>(src, factor, &mut converted);
                    let dst = outputs[0].as_mut_slice::<O>()?;
                    for o in 0..outer {
                        dst[o * out_row + offset..o * out_row + offset + row]
                            .copy_from_slice(&converted[o * row..(o + 1) * row]);
                    }
                })
            });
            offset += row;
        }
        write_range(outputs, 1, (lo, hi))
    }
}
