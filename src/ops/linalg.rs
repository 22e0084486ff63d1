//! `dot` (contracting the last axis of `lhs` with the first of `rhs`, or
//! the other ends with `transpose_a` / `transpose_b`) and `batch_dot`.

use super::fp32_util::{f32_only, numel, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::gemm::{matmul, MatMut, MatRef, Threads};
use crate::tensor::Tensor;
use rayon::prelude::*;

pub fn register(r: &mut Registry) {
    r.implement("dot", |ctx| Ok(Box::new(Dot::new(ctx, false)?)));
    r.implement("batch_dot", |ctx| Ok(Box::new(Dot::new(ctx, true)?)));
}

struct Dot {
    node: NodeInfo,
    transpose_a: bool,
    transpose_b: bool,
    batched: bool,
}

/// One product: the batch count, `m × k` times `k × n`, and the output shape.
struct Plan {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    out: Shape,
}

impl Dot {
    fn new(ctx: &NodeCtx, batched: bool) -> Result<Dot> {
        let r = ctx.reader();
        Ok(Dot {
            node: NodeInfo::new(ctx),
            transpose_a: r.bool_or("transpose_a", false)?,
            transpose_b: r.bool_or("transpose_b", false)?,
            batched,
        })
    }

    fn plan(&self, a: &[usize], b: &[usize]) -> Result<Plan> {
        let mismatch = || {
            self.node
                .shape_err(format!("cannot multiply shapes {a:?} and {b:?}"))
        };
        if self.batched {
            if a.len() < 3 || a.len() != b.len() || a[..a.len() - 2] != b[..b.len() - 2] {
                return Err(self.node.shape_err(format!(
                    "batch_dot needs operands of equal rank ≥ 3 with equal batch dimensions, got {a:?} and {b:?}"
                )));
            }
            let r = a.len();
            let (m, ka) = if self.transpose_a {
                (a[r - 1], a[r - 2])
            } else {
                (a[r - 2], a[r - 1])
            };
            let (kb, n) = if self.transpose_b {
                (b[r - 1], b[r - 2])
            } else {
                (b[r - 2], b[r - 1])
            };
            if ka != kb {
                return Err(mismatch());
            }
            let mut out = a[..r - 2].to_vec();
            out.extend([m, n]);
            return Ok(Plan {
                batch: numel(&a[..r - 2]),
                m,
                k: ka,
                n,
                out,
            });
        }
        if a.is_empty() || b.is_empty() {
            return Err(mismatch());
        }
        let (ka, a_rest) = if self.transpose_a {
            (a[0], &a[1..])
        } else {
            (a[a.len() - 1], &a[..a.len() - 1])
        };
        let (kb, b_rest) = if self.transpose_b {
            (b[b.len() - 1], &b[..b.len() - 1])
        } else {
            (b[0], &b[1..])
        };
        if ka != kb {
            return Err(mismatch());
        }
        let mut out: Shape = a_rest.iter().chain(b_rest).copied().collect();
        // Two vectors give a one-element result.
        if out.is_empty() {
            out.push(1);
        }
        Ok(Plan {
            batch: 1,
            m: numel(a_rest),
            k: ka,
            n: numel(b_rest),
            out,
        })
    }
}

/// Views `x` as a `rows × cols` operand that is stored transposed when `transposed` is set.
fn operand(x: &[f32], rows: usize, cols: usize, transposed: bool) -> MatRef<'_> {
    if transposed {
        MatRef::row_major(x, cols, rows).t()
    } else {
        MatRef::row_major(x, rows, cols)
    }
}

impl Op for Dot {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 2)?;
        let (Some(a), Some(b)) = (&inputs[0], &inputs[1]) else {
            return Ok(None);
        };
        Ok(Some(vec![self.plan(a, b)?.out]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let p = self.plan(inputs[0].shape(), inputs[1].shape())?;
        let (a, b) = (inputs[0].f32s()?, inputs[1].f32s()?);
        let (ta, tb) = (self.transpose_a, self.transpose_b);
        let (m, k, n) = (p.m, p.k, p.n);
        let lhs = |x| operand(x, m, k, ta);
        let rhs = |x| operand(x, k, n, tb);
        let out = outputs[0].f32s_mut()?;
        if p.batch == 1 {
            matmul(
                MatMut::row_major(out, m, n),
                lhs(a),
                rhs(b),
                false,
                Threads::Pool,
            );
            return Ok(());
        }
        if m * n * k == 0 {
            out.fill(0.0);
            return Ok(());
        }
        out.par_chunks_mut(m * n)
            .zip(a.par_chunks(m * k))
            .zip(b.par_chunks(k * n))
            .for_each(|((o, x), y)| {
                matmul(
                    MatMut::row_major(o, m, n),
                    lhs(x),
                    rhs(y),
                    false,
                    Threads::Single,
                )
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn dot(pairs: &[(&str, &str)], batched: bool) -> Box<dyn Op> {
        let name = if batched { "batch_dot" } else { "dot" };
        if batched {
            make(|c| Ok(Box::new(Dot::new(c, true)?)), name, pairs).unwrap()
        } else {
            make(|c| Ok(Box::new(Dot::new(c, false)?)), name, pairs).unwrap()
        }
    }

    fn out_shape(op: &dyn Op, a: &[usize], b: &[usize]) -> Result<Shape> {
        Ok(op
            .infer_shape(&mut [Some(a.to_vec()), Some(b.to_vec())])?
            .unwrap()
            .remove(0))
    }

    #[test]
    fn dot_shapes() {
        assert_eq!(
            out_shape(dot(&[], false).as_ref(), &[2, 3, 4], &[4, 5, 6]).unwrap(),
            vec![2, 3, 5, 6]
        );
        let ta = dot(&[("transpose_a", "True")], false);
        assert_eq!(
            out_shape(ta.as_ref(), &[4, 2, 3], &[4, 5]).unwrap(),
            vec![2, 3, 5]
        );
        assert_eq!(
            out_shape(dot(&[], false).as_ref(), &[3], &[3]).unwrap(),
            vec![1]
        );
        assert!(out_shape(dot(&[], false).as_ref(), &[2, 3], &[2, 3]).is_err());
        let tb = dot(&[("transpose_b", "true")], true);
        assert_eq!(
            out_shape(tb.as_ref(), &[2, 3, 4], &[2, 5, 4]).unwrap(),
            vec![2, 3, 5]
        );
        assert!(out_shape(tb.as_ref(), &[2, 3, 4], &[3, 5, 4]).is_err());
    }

    #[test]
    fn dot_transpose_b_by_hand() {
        let op = dot(&[("transpose_b", "1")], false);
        let a = t(&[1, 2], &[1.0, 2.0]);
        let b = t(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        let out = run(op.as_ref(), &[a, b]).unwrap();
        assert_close(&out[0], &[1.0, 2.0, 3.0]);
    }

    #[test]
    fn batch_dot_by_hand() {
        // Batch 0: identity times b0; batch 1: 2·identity times b1.
        let a = t(&[2, 2, 2], &[1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 2.0]);
        let b = ramp(&[2, 2, 1], 1.0, 1.0);
        let out = run(dot(&[], true).as_ref(), &[a, b]).unwrap();
        assert_close(&out[0], &[1.0, 2.0, 6.0, 8.0]);
    }
}
