//! `Concat` along one axis, `stack` along a new axis, and `SliceChannel`
//! (`split`) into equal parts, for any dtype.

use super::fp32_util::{declared_outputs, numel, same_as_first, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::copy::{concat, take_blocks};
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("Concat", |ctx| Ok(Box::new(Concat::new(ctx, false)?)));
    r.implement("stack", |ctx| Ok(Box::new(Concat::new(ctx, true)?)));
    r.implement("SliceChannel", |ctx| Ok(Box::new(Split::new(ctx)?)));
}

struct Concat {
    node: NodeInfo,
    axis: i64,
    num_args: usize,
    /// `stack`: insert a new axis of size `num_args` instead of joining an existing one.
    new_axis: bool,
}

impl Concat {
    fn new(ctx: &NodeCtx, new_axis: bool) -> Result<Concat> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let num_args = r.int("num_args")?;
        if num_args < 1 {
            return Err(node.attr_err("num_args", num_args, "must be at least 1"));
        }
        let axis = if new_axis {
            r.int_or("axis", 0)?
        } else {
            r.int_or("dim", 1)?
        };
        Ok(Concat {
            node,
            axis,
            num_args: num_args as usize,
            new_axis,
        })
    }

    /// Axis in the output's coordinates.
    fn out_axis(&self, in_ndim: usize) -> Result<usize> {
        self.node
            .axis(self.axis, in_ndim + usize::from(self.new_axis))
    }
}

impl Op for Concat {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), self.num_args)?;
        let Some(first) = inputs.iter().flatten().next().cloned() else {
            return Ok(None);
        };
        let axis = self.out_axis(first.len())?;
        if self.new_axis {
            for i in 0..inputs.len() {
                self.node
                    .assign_input(inputs, i, &format!("input {i}"), first.clone())?;
            }
            let mut out = first;
            out.insert(axis, self.num_args);
            return Ok(Some(vec![out]));
        }
        let mut total = 0;
        for (i, s) in inputs.iter().enumerate() {
            let Some(s) = s else {
                return Ok(None);
            };
            let same_rank = s.len() == first.len();
            let others_match = same_rank && (0..s.len()).all(|d| d == axis || s[d] == first[d]);
            if !others_match {
                return Err(self.node.shape_err(format!(
                    "input {i} has shape {s:?}, which differs from input shape {first:?} outside axis {axis}"
                )));
            }
            total += s[axis];
        }
        let mut out = first;
        out[axis] = total;
        Ok(Some(vec![out]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        same_as_first(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let shape = inputs[0].shape();
        let axis = self.out_axis(shape.len())?;
        let size = inputs[0].dtype().size();
        let outer = numel(&shape[..axis]);
        let blocks: Vec<usize> = inputs
            .iter()
            .map(|t| numel(&t.shape()[axis..]) * size)
            .collect();
        let bytes: Vec<&[u8]> = inputs.iter().map(|t| t.bytes()).collect();
        concat(&bytes, &blocks, outer, outputs[0].bytes_mut());
        Ok(())
    }
}

struct Split {
    node: NodeInfo,
    parts: usize,
    axis: i64,
    squeeze_axis: bool,
}

impl Split {
    fn new(ctx: &NodeCtx) -> Result<Split> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let parts = r.int("num_outputs")?;
        if parts < 1 {
            return Err(node.attr_err("num_outputs", parts, "must be at least 1"));
        }
        let parts = parts as usize;
        let declared = declared_outputs(ctx, parts);
        if declared != parts {
            return Err(node.attr_err(
                "num_outputs",
                parts,
                format!("the operator catalog declares {declared} outputs"),
            ));
        }
        Ok(Split {
            axis: r.int_or("axis", 1)?,
            squeeze_axis: r.bool_or("squeeze_axis", false)?,
            parts,
            node,
        })
    }
}

impl Op for Split {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        let Some(data) = &inputs[0] else {
            return Ok(None);
        };
        let axis = self.node.axis(self.axis, data.len())?;
        if !data[axis].is_multiple_of(self.parts) {
            return Err(self.node.shape_err(format!(
                "axis {axis} of size {} does not split into {} equal parts",
                data[axis], self.parts
            )));
        }
        let mut part = data.clone();
        part[axis] /= self.parts;
        if self.squeeze_axis {
            if part[axis] != 1 {
                return Err(self.node.shape_err(format!(
                    "squeeze_axis needs parts of size 1 along axis {axis}, got {}",
                    part[axis]
                )));
            }
            part.remove(axis);
        }
        Ok(Some(vec![part; self.parts]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        same_as_first(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let shape = inputs[0].shape();
        let axis = self.node.axis(self.axis, shape.len())?;
        let size = inputs[0].dtype().size();
        let row = numel(&shape[axis..]) * size;
        let block = row / self.parts;
        for (k, out) in outputs.iter_mut().enumerate() {
            take_blocks(inputs[0].bytes(), row, k * block, block, out.bytes_mut());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    #[test]
    fn concat_dim_1() {
        let op = make(
            |c| Ok(Box::new(Concat::new(c, false)?)),
            "Concat",
            &[("num_args", "2")],
        )
        .unwrap();
        let a = ramp(&[2, 1, 2], 0.0, 1.0);
        let b = ramp(&[2, 2, 2], 10.0, 1.0);
        let out = run(op.as_ref(), &[a, b]).unwrap();
        assert_eq!(out[0].shape(), &[2, 3, 2]);
        assert_close(
            &out[0],
            &[
                0.0, 1.0, 10.0, 11.0, 12.0, 13.0, 2.0, 3.0, 14.0, 15.0, 16.0, 17.0,
            ],
        );
    }

    #[test]
    fn concat_rejects_mismatch() {
        let op = make(
            |c| Ok(Box::new(Concat::new(c, false)?)),
            "Concat",
            &[("num_args", "2"), ("dim", "0")],
        )
        .unwrap();
        let mut shapes = vec![Some(vec![2, 3]), Some(vec![2, 4])];
        assert!(op.infer_shape(&mut shapes).is_err());
        let mut shapes = vec![Some(vec![2, 3]), Some(vec![5, 3])];
        assert_eq!(
            op.infer_shape(&mut shapes).unwrap().unwrap(),
            vec![vec![7, 3]]
        );
    }

    #[test]
    fn stack_new_axis() {
        let op = make(
            |c| Ok(Box::new(Concat::new(c, true)?)),
            "stack",
            &[("num_args", "2"), ("axis", "1")],
        )
        .unwrap();
        let out = run(
            op.as_ref(),
            &[ramp(&[2, 2], 0.0, 1.0), ramp(&[2, 2], 4.0, 1.0)],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[2, 2, 2]);
        assert_close(&out[0], &[0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
    }

    #[test]
    fn split_with_squeeze() {
        let op = make(
            |c| Ok(Box::new(Split::new(c)?)),
            "SliceChannel",
            &[("num_outputs", "3"), ("axis", "-1"), ("squeeze_axis", "1")],
        )
        .unwrap();
        let out = run(op.as_ref(), &[ramp(&[2, 3], 0.0, 1.0)]).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].shape(), &[2]);
        assert_close(&out[0], &[0.0, 3.0]);
        assert_close(&out[2], &[2.0, 5.0]);
    }

    #[test]
    fn split_axis_1() {
        let op = make(
            |c| Ok(Box::new(Split::new(c)?)),
            "SliceChannel",
            &[("num_outputs", "2")],
        )
        .unwrap();
        let out = run(op.as_ref(), &[ramp(&[1, 4, 2], 0.0, 1.0)]).unwrap();
        assert_eq!(out[0].shape(), &[1, 2, 2]);
        assert_close(&out[1], &[4.0, 5.0, 6.0, 7.0]);
        let mut bad = vec![Some(vec![1, 3, 2])];
        assert!(op.infer_shape(&mut bad).is_err());
    }
}
