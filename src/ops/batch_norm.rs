//! `BatchNorm` at inference: `y = (x − moving_mean) / √(moving_var + eps) · γ + β`
//! per channel along `axis`. Inference always uses the moving statistics,
//! whatever `use_global_stats` is set to, and `fix_gamma` (default true) makes
//! γ count as 1. `_contrib_BatchNormWithReLU` adds a ReLU.

use super::fp32_util::{declared_outputs, f32_only, numel, NodeInfo};
use super::{Epilogue, NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::elementwise::map_planes;
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    for name in ["BatchNorm", "BatchNorm_v1", "_contrib_SyncBatchNorm"] {
        r.implement(name, |ctx| Ok(Box::new(BatchNorm::new(ctx, false)?)));
    }
    r.implement("_contrib_BatchNormWithReLU", |ctx| {
        Ok(Box::new(BatchNorm::new(ctx, true)?))
    });
}

struct BatchNorm {
    node: NodeInfo,
    eps: f32,
    fix_gamma: bool,
    axis: i64,
    relu: bool,
    num_outputs: usize,
}

impl BatchNorm {
    fn new(ctx: &NodeCtx, relu: bool) -> Result<BatchNorm> {
        let r = ctx.reader();
        Ok(BatchNorm {
            node: NodeInfo::new(ctx),
            eps: r.float_or("eps", 1e-3)? as f32,
            fix_gamma: r.bool_or("fix_gamma", true)?,
            axis: r.int_or("axis", 1)?,
            relu,
            num_outputs: declared_outputs(ctx, 3),
        })
    }
}

impl BatchNorm {
    /// Per-channel `scale` and `shift` with `y = x · scale + shift`.
    fn scale_shift(
        &self,
        gamma: &[f32],
        beta: &[f32],
        mean: &[f32],
        var: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        (0..mean.len())
            .map(|c| {
                let g = if self.fix_gamma { 1.0 } else { gamma[c] };
                let s = g / (var[c] + self.eps).sqrt();
                (s, beta[c] - mean[c] * s)
            })
            .unzip()
    }
}

impl Op for BatchNorm {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 5)?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        let axis = self.node.axis(self.axis, data.len())?;
        let channels = vec![data[axis]];
        for (i, name) in [
            (1, "gamma"),
            (2, "beta"),
            (3, "moving_mean"),
            (4, "moving_var"),
        ] {
            self.node.assign_input(inputs, i, name, channels.clone())?;
        }
        let mut out = vec![data];
        out.extend((1..self.num_outputs).map(|_| channels.clone()));
        Ok(Some(out))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn as_epilogue(&self, constants: &[Option<&Tensor>]) -> Option<Vec<Epilogue>> {
        if self.axis != 1 {
            return None;
        }
        let param = |i: usize| constants.get(i).copied().flatten()?.f32s().ok();
        let (gamma, beta, mean, var) = (param(1)?, param(2)?, param(3)?, param(4)?);
        let (scale, shift) = self.scale_shift(gamma, beta, mean, var);
        let mut steps = vec![Epilogue::Affine { scale, shift }];
        if self.relu {
            steps.push(Epilogue::Relu);
        }
        Some(steps)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let shape = inputs[0].shape();
        let axis = self.node.axis(self.axis, shape.len())?;
        let channels = shape[axis];
        let inner = numel(&shape[axis + 1..]);
        let gamma = inputs[1].f32s()?;
        let beta = inputs[2].f32s()?;
        let mean = inputs[3].f32s()?;
        let var = inputs[4].f32s()?;

        let (scale, shift) = self.scale_shift(gamma, beta, mean, var);

        if numel(shape) > 0 {
            let relu = self.relu;
            map_planes(
                inputs[0].f32s()?,
                outputs[0].f32s_mut()?,
                channels,
                inner,
                |c, src, dst| {
                    let (s, b) = (scale[c], shift[c]);
                    for (d, &x) in dst.iter_mut().zip(src) {
                        let y = x * s + b;
                        *d = if relu && y < 0.0 { 0.0 } else { y };
                    }
                },
            );
        }

        // The statistics outputs, visible with output_mean_var: MXNet 1.9.1
        // returns the moving mean and 1/√(moving_var + eps) at inference.
        if let Some(o) = outputs.get_mut(1) {
            o.f32s_mut()?.copy_from_slice(mean);
        }
        if let Some(o) = outputs.get_mut(2) {
            let inv_std = o.f32s_mut()?;
            for (d, &v) in inv_std.iter_mut().zip(var) {
                *d = 1.0 / (v + self.eps).sqrt();
            }
        }
        for o in outputs.iter_mut().skip(3) {
            o.f32s_mut()?.fill(0.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn bn(pairs: &[(&str, &str)]) -> Box<dyn Op> {
        make(
            |ctx| Ok(Box::new(BatchNorm::new(ctx, false)?)),
            "BatchNorm",
            pairs,
        )
        .unwrap()
    }

    fn params() -> Vec<Tensor> {
        vec![
            t(&[2], &[2.0, 3.0]),     // gamma
            t(&[2], &[1.0, -1.0]),    // beta
            t(&[2], &[0.5, 10.0]),    // moving_mean
            t(&[2], &[3.999, 0.999]), // moving_var (+ eps 1e-3 → 4 and 1)
        ]
    }

    #[test]
    fn batch_norm_uses_gamma_when_not_fixed() {
        let op = bn(&[("fix_gamma", "False")]);
        let x = t(&[1, 2, 2], &[0.5, 2.5, 10.0, 12.0]);
        let mut ins = vec![x];
        ins.extend(params());
        let out = run(op.as_ref(), &ins).unwrap();
        // c0: (x − 0.5)/2 · 2 + 1; c1: (x − 10)/1 · 3 − 1.
        assert_close(&out[0], &[1.0, 3.0, -1.0, 5.0]);
        assert_eq!(out.len(), 3);
        assert_close(&out[1], &[0.5, 10.0]);
        assert_close(&out[2], &[0.5, 1.0]);
    }

    #[test]
    fn batch_norm_fix_gamma_ignores_gamma() {
        let op = bn(&[]);
        let x = t(&[1, 2, 2], &[0.5, 2.5, 10.0, 12.0]);
        let mut ins = vec![x];
        ins.extend(params());
        let out = run(op.as_ref(), &ins).unwrap();
        assert_close(&out[0], &[1.0, 2.0, -1.0, 1.0]);
    }

    #[test]
    fn batch_norm_last_axis() {
        let op = bn(&[("axis", "-1"), ("fix_gamma", "false"), ("eps", "0.001")]);
        let mut shapes = vec![Some(vec![3, 2]), None, None, None, None];
        let out = op.infer_shape(&mut shapes).unwrap().unwrap();
        assert_eq!(out[0], vec![3, 2]);
        assert_eq!(shapes[4], Some(vec![2]));
        let mut ins = vec![t(&[3, 2], &[0.5, 10.0, 2.5, 11.0, -1.5, 9.0])];
        ins.extend(params());
        let out = run(op.as_ref(), &ins).unwrap();
        assert_close(&out[0], &[1.0, -1.0, 3.0, 2.0, -1.0, -4.0]);
    }
}
