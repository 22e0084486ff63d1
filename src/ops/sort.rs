//! `topk`, `sort` and `argsort` along one axis (or the flattened array for
//! `topk` with `axis=None`). Ties keep their original order, as MXNet's
//! stable sort does; indices are returned as float32.

use super::fp32_util::{declared_outputs, f32_only, numel, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("topk", |ctx| Ok(Box::new(Sort::new(ctx, Kind::TopK)?)));
    r.implement("sort", |ctx| Ok(Box::new(Sort::new(ctx, Kind::Sort)?)));
    r.implement("argsort", |ctx| {
        Ok(Box::new(Sort::new(ctx, Kind::ArgSort)?))
    });
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    TopK,
    Sort,
    ArgSort,
}

/// Output kind of `topk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Returns {
    Indices,
    Values,
    Both,
    /// 1 at the selected positions, 0 elsewhere, in the input's shape.
    Mask,
}

struct Sort {
    node: NodeInfo,
    kind: Kind,
    axis: Option<i64>,
    k: usize,
    ascending: bool,
    returns: Returns,
    num_outputs: usize,
}

impl Sort {
    fn new(ctx: &NodeCtx, kind: Kind) -> Result<Sort> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        if let Some(d) = r.raw("dtype").filter(|d| *d != "float32") {
            return Err(node.attr_err("dtype", d, "only float32 indices are supported"));
        }
        let returns = match r.choice("ret_typ", &["indices", "value", "both", "mask"], "indices")? {
            "indices" => Returns::Indices,
            "value" => Returns::Values,
            "both" => Returns::Both,
            _ => Returns::Mask,
        };
        // MXNet treats k < 1 as the whole axis; 0 marks that here.
        let k = r.int_or("k", 1)?.max(0);
        let default_outputs = if kind == Kind::Sort || returns == Returns::Both {
            2
        } else {
            1
        };
        Ok(Sort {
            kind,
            axis: match r.raw("axis") {
                None => Some(-1),
                Some(_) => r.opt_int("axis")?,
            },
            k: k as usize,
            ascending: r.bool_or("is_ascend", kind != Kind::TopK)?,
            returns: if kind == Kind::TopK {
                returns
            } else {
                Returns::Indices
            },
            num_outputs: declared_outputs(ctx, default_outputs),
            node,
        })
    }

    /// `(outer, axis, inner)` view, the number of kept positions and the
    /// shape of the values or indices output.
    fn plan(&self, shape: &[usize]) -> Result<((usize, usize, usize), usize, Shape)> {
        let (dims, mut out) = match self.axis {
            None => ((1, numel(shape), 1), vec![numel(shape)]),
            Some(a) => {
                let a = self.node.axis(a, shape.len())?;
                (
                    (numel(&shape[..a]), shape[a], numel(&shape[a + 1..])),
                    shape.to_vec(),
                )
            }
        };
        let axis_pos = match self.axis {
            None => 0,
            Some(a) => self.node.axis(a, shape.len())?,
        };
        let kept = match self.kind {
            Kind::TopK if self.k > dims.1 => {
                return Err(self
                    .node
                    .shape_err(format!("k = {} exceeds the axis length {}", self.k, dims.1)));
            }
            Kind::TopK if self.k == 0 => dims.1,
            Kind::TopK => self.k,
            Kind::Sort | Kind::ArgSort => dims.1,
        };
        out[axis_pos] = kept;
        Ok((dims, kept, out))
    }
}

impl Op for Sort {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        let (_, _, out) = self.plan(&data)?;
        let first = if self.returns == Returns::Mask {
            data
        } else {
            out.clone()
        };
        let mut shapes = vec![first];
        shapes.extend((1..self.num_outputs).map(|_| out.clone()));
        Ok(Some(shapes))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let ((outer, n, inner), kept, _) = self.plan(inputs[0].shape())?;
        let x = inputs[0].f32s()?;
        let mut values = vec![0.0f32; outer * kept * inner];
        let mut indices = vec![0.0f32; outer * kept * inner];
        let mut mask = vec![
            0.0f32;
            if self.returns == Returns::Mask {
                x.len()
            } else {
                0
            }
        ];
        let mut order: Vec<usize> = Vec::with_capacity(n);
        for lane in 0..outer * inner {
            let (o, i) = (lane / inner, lane % inner);
            let at = |k: usize| x[(o * n + k) * inner + i];
            order.clear();
            order.extend(0..n);
            // A stable sort keeps tied elements in index order; NaN sorts as largest.
            if self.ascending {
                order.sort_by(|&a, &b| at(a).total_cmp(&at(b)));
            } else {
                order.sort_by(|&a, &b| at(b).total_cmp(&at(a)));
            }
            for (j, &k) in order[..kept].iter().enumerate() {
                let dst = (o * kept + j) * inner + i;
                values[dst] = at(k);
                indices[dst] = k as f32;
                if let Some(m) = mask.get_mut((o * n + k) * inner + i) {
                    *m = 1.0;
                }
            }
        }
        let results: Vec<&[f32]> = match (self.kind, self.returns) {
            (Kind::Sort, _) => vec![&values, &indices],
            (Kind::ArgSort, _) | (Kind::TopK, Returns::Indices) => vec![&indices],
            (Kind::TopK, Returns::Values) => vec![&values],
            (Kind::TopK, Returns::Both) => vec![&values, &indices],
            (Kind::TopK, Returns::Mask) => vec![&mask],
        };
        for (out, src) in outputs.iter_mut().zip(results) {
            out.f32s_mut()?.copy_from_slice(src);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn sort_op(kind: Kind, pairs: &[(&str, &str)]) -> Box<dyn Op> {
        let name = match kind {
            Kind::TopK => "topk",
            Kind::Sort => "sort",
            Kind::ArgSort => "argsort",
        };
        match kind {
            Kind::TopK => make(|c| Ok(Box::new(Sort::new(c, Kind::TopK)?)), name, pairs).unwrap(),
            Kind::Sort => make(|c| Ok(Box::new(Sort::new(c, Kind::Sort)?)), name, pairs).unwrap(),
            Kind::ArgSort => {
                make(|c| Ok(Box::new(Sort::new(c, Kind::ArgSort)?)), name, pairs).unwrap()
            }
        }
    }

    #[test]
    fn topk_return_types() {
        let x = t(&[1, 4], &[1.0, 3.0, 3.0, 2.0]);
        let out = run(
            sort_op(Kind::TopK, &[("k", "2")]).as_ref(),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_close(&out[0], &[1.0, 2.0]);
        let out = run(
            sort_op(Kind::TopK, &[("k", "2"), ("ret_typ", "value")]).as_ref(),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_close(&out[0], &[3.0, 3.0]);
        let out = run(
            sort_op(Kind::TopK, &[("k", "2"), ("ret_typ", "mask")]).as_ref(),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_close(&out[0], &[0.0, 1.0, 1.0, 0.0]);
        let out = run(
            sort_op(Kind::TopK, &[("k", "3"), ("is_ascend", "true")]).as_ref(),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_close(&out[0], &[0.0, 3.0, 1.0]);
        let out = run(
            sort_op(Kind::TopK, &[("k", "2"), ("ret_typ", "both")]).as_ref(),
            &[x],
        )
        .unwrap();
        assert_close(&out[0], &[3.0, 3.0]);
        assert_close(&out[1], &[1.0, 2.0]);
    }

    #[test]
    fn topk_flattened() {
        let op = sort_op(Kind::TopK, &[("k", "2"), ("axis", "None")]);
        let out = run(op.as_ref(), &[t(&[2, 2], &[1.0, 5.0, 3.0, 2.0])]).unwrap();
        assert_eq!(out[0].shape(), &[2]);
        assert_close(&out[0], &[1.0, 2.0]);
    }

    #[test]
    fn sort_and_argsort_are_stable() {
        let x = t(&[1, 4], &[1.0, 3.0, 3.0, 2.0]);
        let out = run(sort_op(Kind::Sort, &[]).as_ref(), std::slice::from_ref(&x)).unwrap();
        assert_close(&out[0], &[1.0, 2.0, 3.0, 3.0]);
        let out = run(
            sort_op(Kind::ArgSort, &[]).as_ref(),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_close(&out[0], &[0.0, 3.0, 1.0, 2.0]);
        let out = run(
            sort_op(Kind::ArgSort, &[("is_ascend", "False")]).as_ref(),
            &[x],
        )
        .unwrap();
        assert_close(&out[0], &[1.0, 2.0, 3.0, 0.0]);
    }
}
