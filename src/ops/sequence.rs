//! `SequenceMask`: with `use_sequence_length`, replaces the steps at or past
//! each sequence's length by `value`; without it, passes data through.

use super::fp32_util::{f32_only, numel, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("SequenceMask", |ctx| Ok(Box::new(SequenceMask::new(ctx)?)));
}

struct SequenceMask {
    node: NodeInfo,
    use_length: bool,
    value: f32,
    /// 0 for `(time, batch, …)` data, 1 for `(batch, time, …)`.
    axis: usize,
}

impl SequenceMask {
    fn new(ctx: &NodeCtx) -> Result<SequenceMask> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let axis = r.int_or("axis", 0)?;
        if axis != 0 && axis != 1 {
            return Err(node.attr_err("axis", axis, "expected 0 (time first) or 1 (batch first)"));
        }
        Ok(SequenceMask {
            use_length: r.bool_or("use_sequence_length", false)?,
            value: r.float_or("value", 0.0)? as f32,
            axis: axis as usize,
            node,
        })
    }
}

impl Op for SequenceMask {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node
            .expect_inputs(inputs.len(), if self.use_length { 2 } else { 1 })?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        if data.len() < 2 {
            return Err(self.node.shape_err(format!(
                "data has shape {data:?}, expected at least (time, batch)"
            )));
        }
        if self.use_length {
            self.node
                .assign_input(inputs, 1, "sequence_length", vec![data[1 - self.axis]])?;
        }
        Ok(Some(vec![data]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        if inputs.len() > 1 {
            inputs[1].get_or_insert(DType::F32);
        }
        f32_only(&self.node, &mut inputs[..1], num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let shape = inputs[0].shape();
        let out = outputs[0].f32s_mut()?;
        out.copy_from_slice(inputs[0].f32s()?);
        if !self.use_length {
            return Ok(());
        }
        let lengths = inputs[1].to_f32_vec();
        let (steps, batch) = if self.axis == 0 {
            (shape[0], shape[1])
        } else {
            (shape[1], shape[0])
        };
        let inner = numel(&shape[2..]);
        for (b, &length) in lengths.iter().enumerate().take(batch) {
            let len = length.max(0.0) as usize;
            for t in len.min(steps)..steps {
                let row = if self.axis == 0 {
                    t * batch + b
                } else {
                    b * steps + t
                };
                out[row * inner..(row + 1) * inner].fill(self.value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    #[test]
    fn sequence_mask_time_major() {
        let op = make(
            |c| Ok(Box::new(SequenceMask::new(c)?)),
            "SequenceMask",
            &[("use_sequence_length", "True"), ("value", "-1")],
        )
        .unwrap();
        let out = run(
            op.as_ref(),
            &[ramp(&[3, 2, 1], 1.0, 0.0), t(&[2], &[1.0, 2.0])],
        )
        .unwrap();
        assert_close(&out[0], &[1.0, 1.0, -1.0, 1.0, -1.0, -1.0]);
    }

    #[test]
    fn sequence_mask_batch_major() {
        let op = make(
            |c| Ok(Box::new(SequenceMask::new(c)?)),
            "SequenceMask",
            &[("use_sequence_length", "1"), ("axis", "1")],
        )
        .unwrap();
        let out = run(
            op.as_ref(),
            &[ramp(&[2, 3], 1.0, 0.0), t(&[2], &[1.0, 3.0])],
        )
        .unwrap();
        assert_close(&out[0], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    }
}
