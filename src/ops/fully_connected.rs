//! `FullyConnected`: `y = x · Wᵀ + b`, with `x` flattened to two dimensions
//! (`flatten=true`, the default) or applied to the last axis only.

use super::fp32_util::{f32_only, numel, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::gemm::{matmul, MatMut, MatRef, Threads};
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("FullyConnected", |ctx| {
        Ok(Box::new(FullyConnected::new(ctx)?))
    });
}

struct FullyConnected {
    node: NodeInfo,
    num_hidden: usize,
    no_bias: bool,
    flatten: bool,
}

impl FullyConnected {
    fn new(ctx: &NodeCtx) -> Result<FullyConnected> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let num_hidden = r.int("num_hidden")?;
        if num_hidden < 1 {
            return Err(node.attr_err("num_hidden", num_hidden, "must be positive"));
        }
        Ok(FullyConnected {
            num_hidden: num_hidden as usize,
            no_bias: r.bool_or("no_bias", false)?,
            flatten: r.bool_or("flatten", true)?,
            node,
        })
    }

    /// (rows, features) of the data viewed as a matrix.
    fn matrix_dims(&self, data: &[usize]) -> (usize, usize) {
        if self.flatten {
            (data[0], numel(&data[1..]))
        } else {
            (numel(&data[..data.len() - 1]), data[data.len() - 1])
        }
    }
}

impl Op for FullyConnected {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node
            .expect_inputs(inputs.len(), if self.no_bias { 2 } else { 3 })?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        if data.is_empty() {
            return Err(self.node.shape_err("data must have at least one dimension"));
        }
        let (_, features) = self.matrix_dims(&data);
        self.node
            .assign_input(inputs, 1, "weight", vec![self.num_hidden, features])?;
        if !self.no_bias {
            self.node
                .assign_input(inputs, 2, "bias", vec![self.num_hidden])?;
        }
        let out = if self.flatten {
            vec![data[0], self.num_hidden]
        } else {
            let mut s = data.clone();
            *s.last_mut().unwrap() = self.num_hidden;
            s
        };
        Ok(Some(vec![out]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let (rows, features) = self.matrix_dims(inputs[0].shape());
        let n = self.num_hidden;
        let out = outputs[0].f32s_mut()?;
        let accumulate = !self.no_bias;
        if accumulate {
            let bias = inputs[2].f32s()?;
            for row in out.chunks_exact_mut(n) {
                row.copy_from_slice(bias);
            }
        }
        matmul(
            MatMut::row_major(out, rows, n),
            MatRef::row_major(inputs[0].f32s()?, rows, features),
            MatRef::row_major(inputs[1].f32s()?, n, features).t(),
            accumulate,
            Threads::Pool,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn fc(pairs: &[(&str, &str)]) -> Box<dyn Op> {
        make(
            |ctx| Ok(Box::new(FullyConnected::new(ctx)?)),
            "FullyConnected",
            pairs,
        )
        .unwrap()
    }

    #[test]
    fn fc_flatten_by_hand() {
        // x (2, 1, 3) flattens to (2, 3); W (2, 3); b (2).
        let op = fc(&[("num_hidden", "2")]);
        let x = t(&[2, 1, 3], &[1.0, 2.0, 3.0, -1.0, 0.0, 1.0]);
        let w = t(&[2, 3], &[1.0, 0.0, -1.0, 0.5, 0.5, 0.5]);
        let b = t(&[2], &[10.0, 20.0]);
        let out = run(op.as_ref(), &[x, w, b]).unwrap();
        assert_eq!(out[0].shape(), &[2, 2]);
        assert_close(&out[0], &[8.0, 23.0, 8.0, 20.0]);
    }

    #[test]
    fn fc_no_flatten_keeps_leading_axes() {
        let op = fc(&[
            ("num_hidden", "1"),
            ("flatten", "False"),
            ("no_bias", "True"),
        ]);
        let mut shapes = vec![Some(vec![2, 3, 4]), None];
        assert_eq!(
            op.infer_shape(&mut shapes).unwrap().unwrap(),
            vec![vec![2, 3, 1]]
        );
        assert_eq!(shapes[1], Some(vec![1, 4]));
        let out = run(
            op.as_ref(),
            &[
                ramp(&[2, 3, 4], 0.0, 1.0),
                t(&[1, 4], &[1.0, 1.0, 1.0, 1.0]),
            ],
        )
        .unwrap();
        assert_close(&out[0], &[6.0, 22.0, 38.0, 54.0, 70.0, 86.0]);
    }

    #[test]
    fn fc_checks_input_count() {
        let op = fc(&[("num_hidden", "3")]);
        let mut shapes = vec![Some(vec![1, 2]), None];
        assert!(op.infer_shape(&mut shapes).is_err());
    }
}
