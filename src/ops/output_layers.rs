//! Training heads that are plain maps at inference: the regression outputs
//! (`LinearRegressionOutput`, `MAERegressionOutput` pass data through,
//! `LogisticRegressionOutput` applies a sigmoid), `SVMOutput` (identity)
//! and `IdentityAttachKLSparseReg` (identity with an unused auxiliary state).

use super::fp32_util::{f32_only, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::elementwise::{act, map};
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("LinearRegressionOutput", |ctx| {
        Ok(Box::new(Head::new(ctx, HeadKind::Regression, false)))
    });
    r.implement("MAERegressionOutput", |ctx| {
        Ok(Box::new(Head::new(ctx, HeadKind::Regression, false)))
    });
    r.implement("LogisticRegressionOutput", |ctx| {
        Ok(Box::new(Head::new(ctx, HeadKind::Regression, true)))
    });
    r.implement("SVMOutput", |ctx| {
        Ok(Box::new(Head::new(ctx, HeadKind::Svm, false)))
    });
    r.implement("IdentityAttachKLSparseReg", |ctx| {
        Ok(Box::new(Head::new(ctx, HeadKind::SparseReg, false)))
    });
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeadKind {
    /// Label of the data's shape, or `(N,)` for `(N, 1)` data.
    Regression,
    /// Label `(N,)` of class indices.
    Svm,
    /// Second input is the `moving_avg` auxiliary state, one value per channel.
    SparseReg,
}

struct Head {
    node: NodeInfo,
    kind: HeadKind,
    sigmoid: bool,
}

impl Head {
    fn new(ctx: &NodeCtx, kind: HeadKind, sigmoid: bool) -> Head {
        Head {
            node: NodeInfo::new(ctx),
            kind,
            sigmoid,
        }
    }
}

impl Op for Head {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 2)?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        if data.is_empty() {
            return Err(self.node.shape_err("data must have at least one dimension"));
        }
        let second = match self.kind {
            HeadKind::Regression if data.len() == 2 && data[1] == 1 => vec![data[0]],
            HeadKind::Regression => data.clone(),
            HeadKind::Svm => vec![data[0]],
            HeadKind::SparseReg => vec![*data.get(1).unwrap_or(&1)],
        };
        let what = if self.kind == HeadKind::SparseReg {
            "moving_avg"
        } else {
            "label"
        };
        self.node.assign_input(inputs, 1, what, second)?;
        Ok(Some(vec![data]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let (x, y) = (inputs[0].f32s()?, outputs[0].f32s_mut()?);
        if self.sigmoid {
            map(x, y, act::sigmoid);
        } else {
            y.copy_from_slice(x);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    #[test]
    fn regression_label_shapes() {
        let op = make(
            |c| Ok(Box::new(Head::new(c, HeadKind::Regression, false))),
            "LinearRegressionOutput",
            &[],
        )
        .unwrap();
        let mut shapes = vec![Some(vec![3, 1]), None];
        op.infer_shape(&mut shapes).unwrap();
        assert_eq!(shapes[1], Some(vec![3]));
        let mut shapes = vec![Some(vec![3, 2]), None];
        op.infer_shape(&mut shapes).unwrap();
        assert_eq!(shapes[1], Some(vec![3, 2]));
    }

    #[test]
    fn logistic_applies_sigmoid() {
        let op = make(
            |c| Ok(Box::new(Head::new(c, HeadKind::Regression, true))),
            "LogisticRegressionOutput",
            &[],
        )
        .unwrap();
        let out = run(
            op.as_ref(),
            &[t(&[2, 1], &[0.0, 2.0]), t(&[2], &[0.0, 1.0])],
        )
        .unwrap();
        assert_close(&out[0], &[0.5, 1.0 / (1.0 + (-2f32).exp())]);
    }

    #[test]
    fn sparse_reg_infers_moving_avg() {
        let op = make(
            |c| Ok(Box::new(Head::new(c, HeadKind::SparseReg, false))),
            "IdentityAttachKLSparseReg",
            &[],
        )
        .unwrap();
        let mut shapes = vec![Some(vec![3, 4, 5]), None];
        op.infer_shape(&mut shapes).unwrap();
        assert_eq!(shapes[1], Some(vec![4]));
    }
}
