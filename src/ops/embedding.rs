//! `Embedding`: looks rows of `weight` (`input_dim × output_dim`) up by
//! index. Indices arrive as floats (or integers), are truncated toward
//! zero and clamped to `0..input_dim`, as MXNet does.

use super::fp32_util::{numel, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

pub fn register(r: &mut Registry) {
    r.implement("Embedding", |ctx| Ok(Box::new(Embedding::new(ctx)?)));
}

struct Embedding {
    node: NodeInfo,
    input_dim: usize,
    output_dim: usize,
}

impl Embedding {
    fn new(ctx: &NodeCtx) -> Result<Embedding> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let input_dim = r.int("input_dim")?;
        let output_dim = r.int("output_dim")?;
        if input_dim < 1 || output_dim < 1 {
            return Err(node.attr_err(
                "input_dim",
                input_dim,
                "input_dim and output_dim must be positive",
            ));
        }
        if let Some(d) = r.raw("dtype").filter(|d| *d != "float32") {
            return Err(node.attr_err("dtype", d, "only float32 weights are supported"));
        }
        Ok(Embedding {
            node,
            input_dim: input_dim as usize,
            output_dim: output_dim as usize,
        })
    }
}

impl Op for Embedding {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 2)?;
        self.node
            .assign_input(inputs, 1, "weight", vec![self.input_dim, self.output_dim])?;
        let Some(data) = &inputs[0] else {
            return Ok(None);
        };
        let mut out = data.clone();
        out.push(self.output_dim);
        Ok(Some(vec![out]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        inputs[0].get_or_insert(DType::F32);
        match inputs[1] {
            None | Some(DType::F32) => inputs[1] = Some(DType::F32),
            Some(other) => {
                return Err(self
                    .node
                    .dtype_err(format!("weight is {other}, expected float32")))
            }
        }
        Ok(vec![DType::F32; num_outputs])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let indices = inputs[0].to_f32_vec();
        let weight = inputs[1].f32s()?;
        let dim = self.output_dim;
        let last = (self.input_dim - 1) as f32;
        let out = outputs[0].f32s_mut()?;
        debug_assert_eq!(out.len(), numel(inputs[0].shape()) * dim);
        out.par_chunks_mut(dim)
            .zip(indices.par_iter())
            .for_each(|(row, &idx)| {
                // Truncate, then clamp; NaN maps to row 0.
                let i = idx.trunc().clamp(0.0, last) as usize;
                row.copy_from_slice(&weight[i * dim..(i + 1) * dim]);
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    #[test]
    fn embedding_lookup_clamps() {
        let op = make(
            |c| Ok(Box::new(Embedding::new(c)?)),
            "Embedding",
            &[("input_dim", "3"), ("output_dim", "2")],
        )
        .unwrap();
        let mut shapes = vec![Some(vec![2, 2]), None];
        assert_eq!(
            op.infer_shape(&mut shapes).unwrap().unwrap(),
            vec![vec![2, 2, 2]]
        );
        assert_eq!(shapes[1], Some(vec![3, 2]));
        let idx = t(&[2, 2], &[0.0, 2.9, -4.0, 7.0]);
        let w = ramp(&[3, 2], 0.0, 1.0);
        let out = run(op.as_ref(), &[idx, w]).unwrap();
        assert_close(&out[0], &[0.0, 1.0, 4.0, 5.0, 0.0, 1.0, 4.0, 5.0]);
    }

    #[test]
    fn embedding_integer_indices() {
        let op = make(
            |c| Ok(Box::new(Embedding::new(c)?)),
            "Embedding",
            &[("input_dim", "2"), ("output_dim", "1")],
        )
        .unwrap();
        let idx = Tensor::from_slice(DType::I32, &[3], &[1i32, 0, 1]).unwrap();
        let out = run(op.as_ref(), &[idx, t(&[2, 1], &[5.0, 6.0])]).unwrap();
        assert_close(&out[0], &[6.0, 5.0, 6.0]);
    }
}
