//! `transpose` (axes, reversed by default) and `SwapAxis`, for any dtype.

use super::fp32_util::{same_as_first, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::transpose::transpose;
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("transpose", |ctx| {
        let axes = ctx.reader().opt_tuple("axes")?.unwrap_or_default();
        Ok(Box::new(Permute::new(ctx, Order::Axes(axes))))
    });
    r.implement("SwapAxis", |ctx| {
        let r = ctx.reader();
        Ok(Box::new(Permute::new(
            ctx,
            Order::Swap(r.int_or("dim1", 0)?, r.int_or("dim2", 0)?),
        )))
    });
}

#[derive(Debug)]
enum Order {
    /// An explicit permutation; empty reverses the axes.
    Axes(Vec<i64>),
    Swap(i64, i64),
}

struct Permute {
    node: NodeInfo,
    order: Order,
}

impl Permute {
    fn new(ctx: &NodeCtx, order: Order) -> Permute {
        Permute {
            node: NodeInfo::new(ctx),
            order,
        }
    }

    fn axes(&self, ndim: usize) -> Result<Vec<usize>> {
        match &self.order {
            Order::Axes(a) if a.is_empty() => Ok((0..ndim).rev().collect()),
            Order::Axes(a) => {
                if a.len() != ndim {
                    return Err(self.node.shape_err(format!(
                        "axes {a:?} do not match the {ndim} dimensions of the data"
                    )));
                }
                let axes: Vec<usize> = a
                    .iter()
                    .map(|&x| self.node.axis(x, ndim))
                    .collect::<Result<_>>()?;
                let mut seen = vec![false; ndim];
                for &x in &axes {
                    if std::mem::replace(&mut seen[x], true) {
                        return Err(self.node.shape_err(format!("axes {a:?} repeat axis {x}")));
                    }
                }
                Ok(axes)
            }
            Order::Swap(d1, d2) => {
                let mut axes: Vec<usize> = (0..ndim).collect();
                axes.swap(self.node.axis(*d1, ndim)?, self.node.axis(*d2, ndim)?);
                Ok(axes)
            }
        }
    }
}

/// Transposes tensors of any element size by moving same-sized plain integers.
fn transpose_tensor(input: &Tensor, axes: &[usize], output: &mut Tensor) -> Result<()> {
    let shape = input.shape().to_vec();
    match input.dtype().size() {
        1 => transpose(
            input.as_slice::<u8>()?,
            &shape,
            axes,
            output.as_mut_slice::<u8>()?,
        ),
        2 => transpose(
            input.as_slice::<u16>()?,
            &shape,
            axes,
            output.as_mut_slice::<u16>()?,
        ),
        4 => transpose(
            input.as_slice::<u32>()?,
            &shape,
            axes,
            output.as_mut_slice::<u32>()?,
        ),
        _ => transpose(
            input.as_slice::<u64>()?,
            &shape,
            axes,
            output.as_mut_slice::<u64>()?,
        ),
    }
    Ok(())
}

impl Op for Permute {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        let Some(data) = &inputs[0] else {
            return Ok(None);
        };
        let axes = self.axes(data.len())?;
        Ok(Some(vec![axes.iter().map(|&a| data[a]).collect()]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        same_as_first(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let axes = self.axes(inputs[0].ndim())?;
        transpose_tensor(inputs[0], &axes, &mut outputs[0])
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn transpose_op(axes: Option<&str>) -> Box<dyn Op> {
        let pairs: Vec<(&str, &str)> = axes.map(|a| ("axes", a)).into_iter().collect();
        make(
            |c| {
                Ok(Box::new(Permute::new(
                    c,
                    Order::Axes(c.reader().opt_tuple("axes")?.unwrap_or_default()),
                )))
            },
            "transpose",
            &pairs,
        )
        .unwrap()
    }

    #[test]
    fn transpose_default_reverses() {
        let out = run(transpose_op(None).as_ref(), &[ramp(&[2, 3], 0.0, 1.0)]).unwrap();
        assert_eq!(out[0].shape(), &[3, 2]);
        assert_close(&out[0], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn transpose_explicit_axes() {
        // (2, 2, 2) with axes (1, 0, 2) swaps the outer two.
        let out = run(
            transpose_op(Some("(1, 0, -1)")).as_ref(),
            &[ramp(&[2, 2, 2], 0.0, 1.0)],
        )
        .unwrap();
        assert_close(&out[0], &[0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
        let mut shapes = vec![Some(vec![2, 2, 2])];
        assert!(transpose_op(Some("(0, 0, 1)"))
            .infer_shape(&mut shapes)
            .is_err());
    }

    #[test]
    fn swap_axis_int8() {
        let op = make(
            |c| Ok(Box::new(Permute::new(c, Order::Swap(0, 1)))),
            "SwapAxis",
            &[("dim1", "0"), ("dim2", "1")],
        )
        .unwrap();
        let x = Tensor::from_slice(DType::I8, &[1, 3], &[1i8, 2, 3]).unwrap();
        let out = run(op.as_ref(), &[x]).unwrap();
        assert_eq!(out[0].shape(), &[3, 1]);
        assert_eq!(out[0].dtype(), DType::I8);
    }
}
