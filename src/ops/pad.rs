//! `Pad`: constant, edge or reflect padding with a `pad_width` of two
//! values (before, after) per axis.

use super::fp32_util::{f32_only, to_sizes, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::pad::{pad, PadMode};
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("Pad", |ctx| Ok(Box::new(Pad::new(ctx)?)));
}

struct Pad {
    node: NodeInfo,
    mode: PadMode,
    widths: Vec<(usize, usize)>,
}

impl Pad {
    fn new(ctx: &NodeCtx) -> Result<Pad> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let mode = match r.raw("mode").ok_or_else(|| r.missing("mode"))? {
            "constant" => PadMode::Constant(r.float_or("constant_value", 0.0)? as f32),
            "edge" => PadMode::Edge,
            "reflect" => PadMode::Reflect,
            other => {
                return Err(node.attr_err("mode", other, "expected one of constant, edge, reflect"))
            }
        };
        let flat = to_sizes(
            &node,
            "pad_width",
            &r.opt_tuple("pad_width")?
                .ok_or_else(|| r.missing("pad_width"))?,
        )?;
        if flat.len() % 2 != 0 {
            return Err(node.attr_err(
                "pad_width",
                format!("{flat:?}"),
                "expected two values (before, after) per axis",
            ));
        }
        let widths = flat.chunks(2).map(|p| (p[0], p[1])).collect();
        Ok(Pad { node, mode, widths })
    }
}

impl Op for Pad {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        let Some(data) = &inputs[0] else {
            return Ok(None);
        };
        if data.len() != self.widths.len() {
            return Err(self.node.shape_err(format!(
                "pad_width has {} pairs, the data {data:?} has {} axes",
                self.widths.len(),
                data.len()
            )));
        }
        for (i, (&d, &(before, after))) in data.iter().zip(&self.widths).enumerate() {
            if self.mode == PadMode::Reflect && (before >= d || after >= d) {
                return Err(self.node.shape_err(format!(
                    "reflect padding ({before}, {after}) must be smaller than axis {i} of size {d}"
                )));
            }
            if self.mode == PadMode::Edge && d == 0 && before + after > 0 {
                return Err(self
                    .node
                    .shape_err(format!("cannot edge-pad the empty axis {i}")));
            }
        }
        let out = data
            .iter()
            .zip(&self.widths)
            .map(|(&d, &(b, a))| d + b + a)
            .collect();
        Ok(Some(vec![out]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        pad(
            inputs[0].f32s()?,
            inputs[0].shape(),
            &self.widths,
            self.mode,
            outputs[0].f32s_mut()?,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn pad_op(pairs: &[(&str, &str)]) -> Box<dyn Op> {
        make(|c| Ok(Box::new(Pad::new(c)?)), "Pad", pairs).unwrap()
    }

    #[test]
    fn pad_constant_4d() {
        let op = pad_op(&[
            ("mode", "constant"),
            ("pad_width", "(0, 0, 0, 0, 1, 0, 0, 1)"),
            ("constant_value", "-1"),
        ]);
        let out = run(op.as_ref(), &[ramp(&[1, 1, 2, 2], 1.0, 1.0)]).unwrap();
        assert_eq!(out[0].shape(), &[1, 1, 3, 3]);
        assert_close(&out[0], &[-1.0, -1.0, -1.0, 1.0, 2.0, -1.0, 3.0, 4.0, -1.0]);
    }

    #[test]
    fn pad_reflect_and_edge_4d() {
        let x = ramp(&[1, 1, 1, 3], 1.0, 1.0);
        let widths = ("pad_width", "(0, 0, 0, 0, 0, 0, 2, 1)");
        let out = run(
            pad_op(&[("mode", "reflect"), widths]).as_ref(),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_close(&out[0], &[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]);
        let out = run(pad_op(&[("mode", "edge"), widths]).as_ref(), &[x]).unwrap();
        assert_close(&out[0], &[1.0, 1.0, 1.0, 2.0, 3.0, 3.0]);
    }

    #[test]
    fn pad_rejects_bad_widths() {
        let op = pad_op(&[("mode", "reflect"), ("pad_width", "(0, 0, 0, 3)")]);
        assert!(op.infer_shape(&mut [Some(vec![1, 3])]).is_err());
        assert!(op.infer_shape(&mut [Some(vec![1, 2, 3])]).is_err());
        assert!(make(
            |c| Ok(Box::new(Pad::new(c)?)),
            "Pad",
            &[("mode", "wrap"), ("pad_width", "(0, 0)")]
        )
        .is_err());
    }
}
