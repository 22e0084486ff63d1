//! `_contrib_quantized_embedding`: row lookup in an int8 table. Indices of
//! any numeric dtype are truncated toward zero and clipped to
//! `[0, input_dim - 1]`; the output range is the weight's range.

use super::common::{known_type, range_input_shapes, range_input_types, Ident};
use crate::dtype::DType;
use crate::error::Result;
use crate::ops::{NodeCtx, Op, Shape};
use crate::tensor::Tensor;

struct QuantizedEmbedding {
    id: Ident,
    input_dim: usize,
    output_dim: usize,
}

pub fn create(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let r = ctx.reader();
    Ok(Box::new(QuantizedEmbedding {
        id: Ident::new(ctx),
        input_dim: r.int("input_dim")?.max(0) as usize,
        output_dim: r.int("output_dim")?.max(0) as usize,
    }))
}

impl Op for QuantizedEmbedding {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.id.expect_inputs(inputs.len(), 4)?;
        range_input_shapes(&self.id, inputs, [2, 3])?;
        self.id.fill_shape(
            &mut inputs[1],
            vec![self.input_dim, self.output_dim],
            "weight",
        )?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        let mut out = data;
        out.push(self.output_dim);
        Ok(Some(vec![out, vec![1], vec![1]]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], _: usize) -> Result<Vec<DType>> {
        inputs[0].get_or_insert(DType::F32);
        inputs[1].get_or_insert(DType::I8);
        let w = known_type(&self.id, inputs, 1, "weight")?;
        self.id.expect_dtype("weight", w, &[DType::I8, DType::U8])?;
        range_input_types(&self.id, inputs, [2, 3])?;
        Ok(vec![w, DType::F32, DType::F32])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let weight = inputs[1].bytes();
        if self.input_dim == 0 || weight.len() != self.input_dim * self.output_dim {
            return Err(self.id.runtime_err(format!(
                "weight has {} elements; expected input_dim x output_dim = {} x {}",
                weight.len(),
                self.input_dim,
                self.output_dim
            )));
        }
        let indices = inputs[0].to_f32_vec();
        let out = outputs[0].bytes_mut();
        let row = self.output_dim;
        for (i, &x) in indices.iter().enumerate() {
            // `as` truncates toward zero and maps NaN to 0.
            let j = (x as i64).clamp(0, self.input_dim as i64 - 1) as usize;
            out[i * row..(i + 1) * row].copy_from_slice(&weight[j * row..(j + 1) * row]);
        }
        for i in 1..3 {
            outputs[i]
                .bytes_mut()
                .copy_from_slice(inputs[i + 1].bytes());
        }
        Ok(())
    }
}
