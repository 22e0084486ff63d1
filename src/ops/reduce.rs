//! Reductions `sum`, `mean`, `max`, `min`, `prod` and `norm` (L1 or L2) over
//! `axis` (all axes when absent or empty), with `keepdims` and `exclude`.

use super::fp32_util::{f32_only, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::fp32::reduce::{reduce, Reducer};
use crate::tensor::Tensor;

const NAMES: &[(&str, Reducer)] = &[
    ("sum", Reducer::Sum),
    ("mean", Reducer::Mean),
    ("max", Reducer::Max),
    ("min", Reducer::Min),
    ("prod", Reducer::Prod),
    ("norm", Reducer::L2),
];

pub fn register(r: &mut Registry) {
    for &(name, _) in NAMES {
        r.implement(name, |ctx| Ok(Box::new(Reduce::new(ctx)?)));
    }
}

struct Reduce {
    node: NodeInfo,
    reducer: Reducer,
    axes: Vec<i64>,
    keepdims: bool,
    exclude: bool,
}

impl Reduce {
    fn new(ctx: &NodeCtx) -> Result<Reduce> {
        let canonical = super::lookup(ctx.op).map_or(ctx.op, |d| d.name);
        let reducer = NAMES
            .iter()
            .find(|(n, _)| *n == canonical || *n == ctx.op)
            .map(|(_, f)| *f)
            .ok_or_else(|| Error::UnsupportedOp {
                op: ctx.op.to_string(),
                node: ctx.name.to_string(),
            })?;
        let r = ctx.reader();
        let node = NodeInfo::new(ctx);
        let reducer = match (reducer, r.int_or("ord", 2)?) {
            (Reducer::L2, 1) => Reducer::L1,
            (Reducer::L2, 2) => Reducer::L2,
            (Reducer::L2, ord) => {
                return Err(node.attr_err("ord", ord, "norm supports ord 1 or 2"))
            }
            (other, _) => other,
        };
        Ok(Reduce {
            node,
            reducer,
            axes: r.opt_tuple("axis")?.unwrap_or_default(),
            keepdims: r.bool_or("keepdims", false)?,
            exclude: r.bool_or("exclude", false)?,
        })
    }

    /// Flags the reduced axes and computes the output shape as MXNet 1.9.1's
    /// `ReduceAxesShapeImpl` does.
    fn plan(&self, shape: &[usize]) -> Result<(Vec<bool>, Shape)> {
        let ndim = shape.len();
        if self.axes.is_empty() {
            let out = if self.keepdims {
                vec![1; ndim]
            } else {
                vec![1]
            };
            return Ok((vec![true; ndim], out));
        }
        let mut listed = vec![false; ndim];
        for &a in &self.axes {
            let i = self.node.axis(a, ndim)?;
            if std::mem::replace(&mut listed[i], true) {
                return Err(self
                    .node
                    .shape_err(format!("reduction axes {:?} repeat axis {i}", self.axes)));
            }
        }
        let reduced: Vec<bool> = listed.iter().map(|&l| l != self.exclude).collect();
        let out: Shape = if self.keepdims {
            shape
                .iter()
                .zip(&reduced)
                .map(|(&d, &r)| if r { 1 } else { d })
                .collect()
        } else {
            let kept: Shape = shape
                .iter()
                .zip(&reduced)
                .filter(|(_, &r)| !r)
                .map(|(&d, _)| d)
                .collect();
            if kept.is_empty() {
                vec![1]
            } else {
                kept
            }
        };
        Ok((reduced, out))
    }
}

impl Op for Reduce {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        match &inputs[0] {
            None => Ok(None),
            Some(data) => Ok(Some(vec![self.plan(data)?.1])),
        }
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let shape = inputs[0].shape();
        let (reduced, _) = self.plan(shape)?;
        reduce(
            inputs[0].f32s()?,
            shape,
            &reduced,
            self.reducer,
            outputs[0].f32s_mut()?,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn reduce_op(op: &str, pairs: &[(&str, &str)]) -> Box<dyn Op> {
        make(|c| Ok(Box::new(Reduce::new(c)?)), op, pairs).unwrap()
    }

    fn shape(op: &dyn Op, data: &[usize]) -> Shape {
        op.infer_shape(&mut [Some(data.to_vec())])
            .unwrap()
            .unwrap()
            .remove(0)
    }

    #[test]
    fn reduce_shapes() {
        assert_eq!(shape(reduce_op("sum", &[]).as_ref(), &[2, 3]), vec![1]);
        assert_eq!(
            shape(reduce_op("sum", &[("keepdims", "1")]).as_ref(), &[2, 3]),
            vec![1, 1]
        );
        assert_eq!(
            shape(
                reduce_op("mean", &[("axis", "(2, 3)")]).as_ref(),
                &[2, 3, 4, 5]
            ),
            vec![2, 3]
        );
        assert_eq!(
            shape(
                reduce_op("mean", &[("axis", "1"), ("exclude", "true")]).as_ref(),
                &[2, 3, 4]
            ),
            vec![3]
        );
        assert_eq!(
            shape(
                reduce_op(
                    "max",
                    &[("axis", "-1"), ("keepdims", "True"), ("exclude", "True")]
                )
                .as_ref(),
                &[2, 3, 4]
            ),
            vec![1, 1, 4]
        );
        assert!(reduce_op("min", &[("axis", "(0, 0)")])
            .infer_shape(&mut [Some(vec![2, 3])])
            .is_err());
    }

    #[test]
    fn reduce_values() {
        let x = ramp(&[2, 3], 1.0, 1.0);
        let sum = run(
            reduce_op("sum", &[("axis", "1")]).as_ref(),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_close(&sum[0], &[6.0, 15.0]);
        let mean = run(
            reduce_op("mean", &[("axis", "0"), ("keepdims", "1")]).as_ref(),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_close(&mean[0], &[2.5, 3.5, 4.5]);
        let max = run(reduce_op("max", &[]).as_ref(), std::slice::from_ref(&x)).unwrap();
        assert_close(&max[0], &[6.0]);
        let prod = run(
            reduce_op("prod", &[("axis", "0")]).as_ref(),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_close(&prod[0], &[4.0, 10.0, 18.0]);
        let l1 = run(
            reduce_op("norm", &[("ord", "1"), ("axis", "1")]).as_ref(),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_close(&l1[0], &[6.0, 15.0]);
        let l2 = run(reduce_op("norm", &[]).as_ref(), &[x]).unwrap();
        assert_close(&l2[0], &[91f32.sqrt()]);
    }
}
