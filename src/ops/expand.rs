//! Operators that repeat data: `broadcast_to`, `broadcast_axis`,
//! `broadcast_like`, `tile` and `repeat`. Each is a broadcast copy of the
//! input viewed with extra size-1 axes.

use super::fp32_util::{f32_only, numel, to_sizes, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::elementwise::broadcast;
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("broadcast_to", |ctx| {
        let shape = ctx
            .reader()
            .opt_tuple("shape")?
            .ok_or_else(|| ctx.reader().missing("shape"))?;
        Ok(Box::new(Expand::new(ctx, Rule::To(shape))))
    });
    r.implement("broadcast_axis", |ctx| {
        let r = ctx.reader();
        let axes = r.tuple_or("axis", &[])?;
        let sizes = r.tuple_or("size", &[])?;
        if axes.len() != sizes.len() {
            return Err(NodeInfo::new(ctx).attr_err(
                "size",
                format!("{sizes:?}"),
                "needs one size per axis",
            ));
        }
        Ok(Box::new(Expand::new(ctx, Rule::Axis(axes, sizes))))
    });
    r.implement("broadcast_like", |ctx| {
        let r = ctx.reader();
        let lhs = r.opt_tuple("lhs_axes")?;
        let rhs = r.opt_tuple("rhs_axes")?;
        Ok(Box::new(Expand::new(ctx, Rule::Like(lhs, rhs))))
    });
    r.implement("tile", |ctx| {
        let reps = ctx
            .reader()
            .opt_tuple("reps")?
            .ok_or_else(|| ctx.reader().missing("reps"))?;
        let reps = to_sizes(&NodeInfo::new(ctx), "reps", &reps)?;
        Ok(Box::new(Expand::new(ctx, Rule::Tile(reps))))
    });
    r.implement("repeat", |ctx| {
        let r = ctx.reader();
        let repeats = r.int("repeats")?;
        if repeats < 0 {
            return Err(NodeInfo::new(ctx).attr_err("repeats", repeats, "must not be negative"));
        }
        Ok(Box::new(Expand::new(
            ctx,
            Rule::Repeat(repeats as usize, r.opt_int("axis")?),
        )))
    });
}

#[derive(Debug)]
enum Rule {
    /// Target shape; 0 keeps the input dimension.
    To(Vec<i64>),
    /// Axes of size 1 and their new sizes.
    Axis(Vec<i64>, Vec<i64>),
    /// Shape of the second input, on the paired axes or everywhere.
    Like(Option<Vec<i64>>, Option<Vec<i64>>),
    /// numpy's tile: the whole array repeated `reps[i]` times along axis `i`.
    Tile(Vec<usize>),
    /// Each element repeated along `axis` (the flattened array when `None`).
    Repeat(usize, Option<i64>),
}

struct Expand {
    node: NodeInfo,
    rule: Rule,
}

impl Expand {
    fn new(ctx: &NodeCtx, rule: Rule) -> Expand {
        Expand {
            node: NodeInfo::new(ctx),
            rule,
        }
    }

    fn input_count(&self) -> usize {
        if matches!(self.rule, Rule::Like(..)) {
            2
        } else {
            1
        }
    }

    /// Returns the input shape with extra size-1 axes, the shape that view
    /// broadcasts to, and the output shape (the latter with axes merged).
    fn plan(&self, data: &[usize], like: Option<&[usize]>) -> Result<(Shape, Shape, Shape)> {
        let bad = |why: String| {
            self.node
                .shape_err(format!("cannot expand {data:?}: {why}"))
        };
        match &self.rule {
            Rule::To(target) => {
                if target.len() != data.len() {
                    return Err(bad(format!("target shape {target:?} has another rank")));
                }
                let out: Shape = target
                    .iter()
                    .zip(data)
                    .map(|(&t, &d)| {
                        if t == 0 {
                            Ok(d)
                        } else {
                            usize::try_from(t).map_err(|_| bad(format!("negative size {t}")))
                        }
                    })
                    .collect::<Result<_>>()?;
                self.check_broadcast(data, &out)?;
                Ok((data.to_vec(), out.clone(), out))
            }
            Rule::Axis(axes, sizes) => {
                let mut out = data.to_vec();
                for (&a, &s) in axes.iter().zip(sizes) {
                    let i = self.node.axis(a, data.len())?;
                    if data[i] != 1 {
                        return Err(bad(format!("axis {i} has size {}, not 1", data[i])));
                    }
                    out[i] = usize::try_from(s).map_err(|_| bad(format!("negative size {s}")))?;
                }
                Ok((data.to_vec(), out.clone(), out))
            }
            Rule::Like(lhs_axes, rhs_axes) => {
                let like = like.expect("broadcast_like has a second input");
                let out = match (lhs_axes, rhs_axes) {
                    (Some(la), Some(ra)) if !la.is_empty() => {
                        if la.len() != ra.len() {
                            return Err(bad("lhs_axes and rhs_axes differ in length".into()));
                        }
                        let mut out = data.to_vec();
                        for (&l, &r) in la.iter().zip(ra) {
                            out[self.node.axis(l, data.len())?] =
                                like[self.node.axis(r, like.len())?];
                        }
                        out
                    }
                    _ => {
                        if like.len() != data.len() {
                            return Err(bad(format!("{like:?} has another rank")));
                        }
                        like.to_vec()
                    }
                };
                self.check_broadcast(data, &out)?;
                Ok((data.to_vec(), out.clone(), out))
            }
            Rule::Tile(reps) => {
                let rank = data.len().max(reps.len());
                let pad = |v: &[usize]| -> Shape {
                    std::iter::repeat_n(1, rank - v.len())
                        .chain(v.iter().copied())
                        .collect()
                };
                let (d, r) = (pad(data), pad(reps));
                let view: Shape = d.iter().flat_map(|&s| [1, s]).collect();
                let full: Shape = d.iter().zip(&r).flat_map(|(&s, &k)| [k, s]).collect();
                let out: Shape = d.iter().zip(&r).map(|(&s, &k)| s * k).collect();
                Ok((view, full, out))
            }
            Rule::Repeat(k, axis) => match axis {
                None => {
                    let n = numel(data);
                    Ok((vec![n, 1], vec![n, *k], vec![n * k]))
                }
                Some(a) => {
                    let i = self.node.axis(*a, data.len())?;
                    let mut view = data.to_vec();
                    view.insert(i + 1, 1);
                    let mut full = view.clone();
                    full[i + 1] = *k;
                    let mut out = data.to_vec();
                    out[i] *= k;
                    Ok((view, full, out))
                }
            },
        }
    }

    fn check_broadcast(&self, data: &[usize], out: &[usize]) -> Result<()> {
        for (i, (&d, &o)) in data.iter().zip(out).enumerate() {
            if d != o && d != 1 {
                return Err(self.node.shape_err(format!(
                    "axis {i} of {data:?} has size {d} and cannot broadcast to {o}"
                )));
            }
        }
        Ok(())
    }
}

impl Op for Expand {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), self.input_count())?;
        let Some(data) = &inputs[0] else {
            return Ok(None);
        };
        let like = match self.rule {
            Rule::Like(..) => match &inputs[1] {
                Some(l) => Some(l.as_slice()),
                None => return Ok(None),
            },
            _ => None,
        };
        Ok(Some(vec![self.plan(data, like)?.2]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        // broadcast_like reads only the shape of its second input.
        if inputs.len() > 1 {
            inputs[1].get_or_insert(DType::F32);
        }
        f32_only(&self.node, &mut inputs[..1], num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let (view, full, _) = self.plan(inputs[0].shape(), inputs.get(1).map(|t| t.shape()))?;
        broadcast(
            inputs[0].f32s()?,
            &view,
            &[0.0],
            &[],
            outputs[0].f32s_mut()?,
            &full,
            |x, _| x,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn expand(rule: Rule, inputs: &[Tensor]) -> Result<Tensor> {
        let op = Expand {
            node: NodeInfo {
                name: "test".into(),
                op: "expand".into(),
            },
            rule,
        };
        Ok(run(&op, inputs)?.remove(0))
    }

    #[test]
    fn tile_numpy_rules() {
        let x = t(&[1, 2], &[1.0, 2.0]);
        let out = expand(Rule::Tile(vec![2]), std::slice::from_ref(&x)).unwrap();
        assert_eq!(out.shape(), &[1, 4]);
        assert_close(&out, &[1.0, 2.0, 1.0, 2.0]);
        let out = expand(Rule::Tile(vec![2, 1, 1]), &[x]).unwrap();
        assert_eq!(out.shape(), &[2, 1, 2]);
    }

    #[test]
    fn repeat_axis_and_flat() {
        let x = t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let out = expand(Rule::Repeat(2, None), std::slice::from_ref(&x)).unwrap();
        assert_close(&out, &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]);
        let out = expand(Rule::Repeat(2, Some(0)), &[x]).unwrap();
        assert_eq!(out.shape(), &[4, 2]);
        assert_close(&out, &[1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0]);
    }

    #[test]
    fn broadcast_to_and_like() {
        let x = t(&[1, 3], &[1.0, 2.0, 3.0]);
        let out = expand(Rule::To(vec![2, 0]), std::slice::from_ref(&x)).unwrap();
        assert_close(&out, &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
        assert!(expand(Rule::To(vec![2, 4]), std::slice::from_ref(&x)).is_err());
        let out = expand(
            Rule::Like(Some(vec![0]), Some(vec![0])),
            &[x.clone(), ramp(&[2, 5], 0.0, 0.0)],
        )
        .unwrap();
        assert_eq!(out.shape(), &[2, 3]);
        let out = expand(Rule::Axis(vec![0], vec![3]), &[x]).unwrap();
        assert_eq!(out.shape(), &[3, 3]);
    }
}
