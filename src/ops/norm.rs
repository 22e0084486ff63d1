//! Normalisation layers other than BatchNorm: `LayerNorm`, `InstanceNorm`,
//! `GroupNorm`, `L2Normalization` and `LRN`, with MXNet 1.9.1's defaults
//! and hidden statistics outputs.

use super::fp32_util::{declared_outputs, f32_only, numel, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::norm::{lane_moments, lane_sum_squares, lrn, normalize_lanes};
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("LayerNorm", |ctx| {
        Ok(Box::new(Moments::new(ctx, Kind::layer(ctx)?)?))
    });
    r.implement("InstanceNorm", |ctx| {
        Ok(Box::new(Moments::new(ctx, Kind::Instance)?))
    });
    r.implement("GroupNorm", |ctx| {
        Ok(Box::new(Moments::new(ctx, Kind::group(ctx)?)?))
    });
    r.implement("L2Normalization", |ctx| Ok(Box::new(L2Norm::new(ctx)?)));
    r.implement("LRN", |ctx| Ok(Box::new(Lrn::new(ctx)?)));
}

/// Grouping of the elements that share one mean and variance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Along `axis`; γ and β have that axis' length.
    Layer { axis: i64 },
    /// Per (sample, channel) over the spatial axes; γ and β per channel.
    Instance,
    /// Per (sample, group of channels); γ and β per group.
    Group { groups: usize },
}

impl Kind {
    fn layer(ctx: &NodeCtx) -> Result<Kind> {
        Ok(Kind::Layer {
            axis: ctx.reader().int_or("axis", -1)?,
        })
    }

    fn group(ctx: &NodeCtx) -> Result<Kind> {
        let groups = ctx.reader().int_or("num_groups", 1)?;
        if groups < 1 {
            return Err(NodeInfo::new(ctx).attr_err("num_groups", groups, "must be positive"));
        }
        Ok(Kind::Group {
            groups: groups as usize,
        })
    }
}

/// Layer, instance and group normalisation: `(x − mean) / √(var + eps) · γ + β`.
struct Moments {
    node: NodeInfo,
    kind: Kind,
    eps: f32,
    num_outputs: usize,
}

impl Moments {
    fn new(ctx: &NodeCtx, kind: Kind) -> Result<Moments> {
        let default_eps = if kind == Kind::Instance { 1e-3 } else { 1e-5 };
        Ok(Moments {
            node: NodeInfo::new(ctx),
            kind,
            eps: ctx.reader().float_or("eps", default_eps)? as f32,
            num_outputs: declared_outputs(ctx, 3),
        })
    }

    /// Lane layout `(outer, axis, inner)`, γ/β length and statistics shape.
    fn layout(&self, shape: &[usize]) -> Result<((usize, usize, usize), usize, Shape)> {
        match self.kind {
            Kind::Layer { axis } => {
                let a = self.node.axis(axis, shape.len())?;
                let mut stats = shape.to_vec();
                stats[a] = 1;
                Ok((
                    (numel(&shape[..a]), shape[a], numel(&shape[a + 1..])),
                    shape[a],
                    stats,
                ))
            }
            Kind::Instance | Kind::Group { .. } => {
                if shape.len() < 3 {
                    return Err(self.node.shape_err(format!(
                        "data has shape {shape:?}, expected (batch, channel, spatial…) with at least 3 dimensions"
                    )));
                }
                let groups = match self.kind {
                    Kind::Group { groups } => groups,
                    _ => shape[1],
                };
                if !shape[1].is_multiple_of(groups) {
                    return Err(self.node.shape_err(format!(
                        "{} channels do not split into {groups} groups",
                        shape[1]
                    )));
                }
                let lane = numel(&shape[1..]) / groups;
                Ok(((shape[0] * groups, lane, 1), groups, vec![shape[0], groups]))
            }
        }
    }
}

impl Op for Moments {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 3)?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        let (_, params, stats) = self.layout(&data)?;
        self.node.assign_input(inputs, 1, "gamma", vec![params])?;
        self.node.assign_input(inputs, 2, "beta", vec![params])?;
        let mut out = vec![data];
        out.extend((1..self.num_outputs).map(|_| stats.clone()));
        Ok(Some(out))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let shape = inputs[0].shape();
        let (dims, params, _) = self.layout(shape)?;
        let x = inputs[0].f32s()?;
        let (gamma, beta) = (inputs[1].f32s()?, inputs[2].f32s()?);
        let (mean, var) = lane_moments(x, dims);
        let std: Vec<f32> = var.iter().map(|v| (v + self.eps).sqrt()).collect();
        let inv: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
        let per_axis = matches!(self.kind, Kind::Layer { .. });
        normalize_lanes(x, outputs[0].f32s_mut()?, dims, &mean, &inv, |o, k| {
            let p = if per_axis { k } else { o % params };
            (gamma[p], beta[p])
        });
        // Hidden outputs: the mean, then the standard deviation √(var + eps)
        // (LayerNorm, GroupNorm) or the variance (InstanceNorm).
        if let Some(o) = outputs.get_mut(1) {
            o.f32s_mut()?.copy_from_slice(&mean);
        }
        if let Some(o) = outputs.get_mut(2) {
            o.f32s_mut()?
                .copy_from_slice(if self.kind == Kind::Instance {
                    &var
                } else {
                    &std
                });
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum L2Mode {
    /// Over everything but the batch axis.
    Instance,
    /// Over the channel axis, per spatial position.
    Channel,
    /// Over the spatial axes, per (sample, channel).
    Spatial,
}

/// `L2Normalization`: `x / √(Σx² + eps)`.
struct L2Norm {
    node: NodeInfo,
    mode: L2Mode,
    eps: f32,
    num_outputs: usize,
}

impl L2Norm {
    fn new(ctx: &NodeCtx) -> Result<L2Norm> {
        let r = ctx.reader();
        let mode = match r.choice("mode", &["instance", "channel", "spatial"], "instance")? {
            "instance" => L2Mode::Instance,
            "channel" => L2Mode::Channel,
            _ => L2Mode::Spatial,
        };
        Ok(L2Norm {
            node: NodeInfo::new(ctx),
            mode,
            eps: r.float_or("eps", 1e-10)? as f32,
            num_outputs: declared_outputs(ctx, 2),
        })
    }

    /// Lane layout and the shape of the hidden norm output.
    fn layout(&self, shape: &[usize]) -> Result<((usize, usize, usize), Shape)> {
        if shape.is_empty() || (self.mode != L2Mode::Instance && shape.len() < 3) {
            return Err(self.node.shape_err(format!(
                "data has shape {shape:?}, which this mode cannot normalise"
            )));
        }
        Ok(match self.mode {
            L2Mode::Instance => ((shape[0], numel(&shape[1..]), 1), vec![shape[0]]),
            L2Mode::Channel => {
                let mut norm = shape.to_vec();
                norm[1] = 1;
                ((shape[0], shape[1], numel(&shape[2..])), norm)
            }
            L2Mode::Spatial => (
                (shape[0] * shape[1], numel(&shape[2..]), 1),
                vec![shape[0], shape[1]],
            ),
        })
    }
}

impl Op for L2Norm {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        let (_, norm) = self.layout(&data)?;
        let mut out = vec![data];
        out.extend((1..self.num_outputs).map(|_| norm.clone()));
        Ok(Some(out))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let (dims, _) = self.layout(inputs[0].shape())?;
        let x = inputs[0].f32s()?;
        let norm: Vec<f32> = lane_sum_squares(x, dims)
            .iter()
            .map(|s| (s + self.eps).sqrt())
            .collect();
        let inv: Vec<f32> = norm.iter().map(|n| 1.0 / n).collect();
        let zeros = vec![0.0; norm.len()];
        normalize_lanes(x, outputs[0].f32s_mut()?, dims, &zeros, &inv, |_, _| {
            (1.0, 0.0)
        });
        if let Some(o) = outputs.get_mut(1) {
            o.f32s_mut()?.copy_from_slice(&norm);
        }
        Ok(())
    }
}

/// `LRN` across channels.
struct Lrn {
    node: NodeInfo,
    size: usize,
    alpha: f32,
    beta: f32,
    knorm: f32,
    num_outputs: usize,
}

impl Lrn {
    fn new(ctx: &NodeCtx) -> Result<Lrn> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let size = r.int("nsize")?;
        if size < 1 {
            return Err(node.attr_err("nsize", size, "must be positive"));
        }
        Ok(Lrn {
            size: size as usize,
            alpha: r.float_or("alpha", 1e-4)? as f32,
            beta: r.float_or("beta", 0.75)? as f32,
            knorm: r.float_or("knorm", 2.0)? as f32,
            num_outputs: declared_outputs(ctx, 2),
            node,
        })
    }
}

impl Op for Lrn {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        if data.len() < 2 {
            return Err(self.node.shape_err(format!(
                "data has shape {data:?}, expected (batch, channel, …)"
            )));
        }
        Ok(Some(vec![data; self.num_outputs]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let shape = inputs[0].shape();
        let dims = (shape[0], shape[1], numel(&shape[2..]));
        let mut scale = vec![0.0f32; inputs[0].numel()];
        let x = inputs[0].f32s()?;
        lrn(
            x,
            outputs[0].f32s_mut()?,
            &mut scale,
            dims,
            self.size,
            self.alpha,
            self.beta,
            self.knorm,
        );
        if let Some(o) = outputs.get_mut(1) {
            o.f32s_mut()?.copy_from_slice(&scale);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    #[test]
    fn layer_norm_last_axis() {
        let op = make(
            |c| Ok(Box::new(Moments::new(c, Kind::layer(c)?)?)),
            "LayerNorm",
            &[("eps", "0")],
        )
        .unwrap();
        // Rows (1, 3) and (5, 7): means 2 and 6, standard deviations 1.
        let x = t(&[2, 2], &[1.0, 3.0, 5.0, 7.0]);
        let out = run(
            op.as_ref(),
            &[x, t(&[2], &[1.0, 2.0]), t(&[2], &[0.0, 1.0])],
        )
        .unwrap();
        assert_close(&out[0], &[-1.0, 3.0, -1.0, 3.0]);
        assert_eq!(out[1].shape(), &[2, 1]);
        assert_close(&out[1], &[2.0, 6.0]);
        assert_close(&out[2], &[1.0, 1.0]);
    }

    #[test]
    fn instance_and_group_norm() {
        // (1, 2, 2): channel planes (0, 2) and (4, 8).
        let x = t(&[1, 2, 2], &[0.0, 2.0, 4.0, 8.0]);
        let inst = make(
            |c| Ok(Box::new(Moments::new(c, Kind::Instance)?)),
            "InstanceNorm",
            &[("eps", "0")],
        )
        .unwrap();
        let out = run(
            inst.as_ref(),
            &[x.clone(), t(&[2], &[1.0, 3.0]), t(&[2], &[0.0, -1.0])],
        )
        .unwrap();
        assert_close(&out[0], &[-1.0, 1.0, -4.0, 2.0]);
        // One group over all four values: mean 3.5, variance 8.75.
        let group = make(
            |c| Ok(Box::new(Moments::new(c, Kind::group(c)?)?)),
            "GroupNorm",
            &[("eps", "0")],
        )
        .unwrap();
        let mut shapes = vec![Some(vec![1, 2, 2]), None, None];
        group.infer_shape(&mut shapes).unwrap();
        assert_eq!(shapes[1], Some(vec![1]));
        let out = run(group.as_ref(), &[x, t(&[1], &[1.0]), t(&[1], &[0.0])]).unwrap();
        let s = 8.75f32.sqrt();
        assert_close(&out[0], &[-3.5 / s, -1.5 / s, 0.5 / s, 4.5 / s]);
    }

    #[test]
    fn l2_normalization_modes() {
        let x = t(&[1, 2, 2], &[3.0, 0.0, 4.0, 1.0]);
        let l2 = |mode: &str| {
            let op = make(
                |c| Ok(Box::new(L2Norm::new(c)?)),
                "L2Normalization",
                &[("mode", mode), ("eps", "0")],
            )
            .unwrap();
            run(op.as_ref(), std::slice::from_ref(&x)).unwrap()
        };
        let out = l2("channel");
        assert_close(&out[0], &[0.6, 0.0, 0.8, 1.0]);
        let out = l2("spatial");
        assert_close(&out[0], &[1.0, 0.0, 4.0 / 17f32.sqrt(), 1.0 / 17f32.sqrt()]);
        let out = l2("instance");
        assert_close(
            &out[0],
            &[
                3.0 / 26f32.sqrt(),
                0.0,
                4.0 / 26f32.sqrt(),
                1.0 / 26f32.sqrt(),
            ],
        );
    }

    #[test]
    fn lrn_needs_nsize() {
        assert!(make(|c| Ok(Box::new(Lrn::new(c)?)), "LRN", &[]).is_err());
    }
}
