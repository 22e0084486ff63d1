//! `Pooling` over 1, 2 or 3 spatial dimensions (NC(D)(H)W): max, avg, sum
//! and lp, with global pooling and the valid, full and same conventions.

use super::fp32_util::{f32_only, to_sizes, NodeInfo};
use super::{all_visible, data_input, single_output, NodeCtx, Op, OpDef, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::pool::{adaptive_avg_pool, pool_forward, PoolKind};
use crate::kernels::fp32::window::Window;
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    // The catalog does not list this contrib operator; its facts are plain.
    if r.get("_contrib_AdaptiveAvgPooling2D").is_none() {
        r.add(OpDef {
            name: "_contrib_AdaptiveAvgPooling2D",
            aliases: &[],
            inputs: data_input,
            outputs: single_output,
            visible_outputs: all_visible,
            mutate_inputs: &[],
        });
    }
    r.implement("Pooling", |ctx| Ok(Box::new(Pooling::new(ctx)?)));
    r.implement("_contrib_AdaptiveAvgPooling2D", |ctx| {
        Ok(Box::new(AdaptiveAvgPool::new(ctx)?))
    });
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Convention {
    /// `out = (in + 2·pad − kernel) / stride + 1`, rounding down.
    Valid,
    /// Same, rounding up; the last window may hang past the padded input.
    Full,
    /// `out = ⌈(in + 2·pad) / stride⌉`; MXNet allows it for 1-D pooling only.
    Same,
}

struct Pooling {
    node: NodeInfo,
    kind: PoolKind,
    global: bool,
    convention: Convention,
    kernel: Vec<usize>,
    stride: Vec<usize>,
    pad: Vec<usize>,
}

impl Pooling {
    fn new(ctx: &NodeCtx) -> Result<Pooling> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let global = r.bool_or("global_pool", false)?;
        let kernel = to_sizes(&node, "kernel", &r.tuple_or("kernel", &[])?)?;
        if !global && (kernel.is_empty() || kernel.len() > 3 || kernel.contains(&0)) {
            return Err(node.attr_err(
                "kernel",
                format!("{kernel:?}"),
                "expected 1 to 3 positive sizes unless global_pool is set",
            ));
        }
        let per_dim = |key: &str, default: usize| -> Result<Vec<usize>> {
            let v = r.opt_tuple(key)?.unwrap_or_default();
            if v.is_empty() {
                return Ok(vec![default; kernel.len()]);
            }
            if !global && v.len() != kernel.len() {
                return Err(node.attr_err(
                    key,
                    format!("{v:?}"),
                    format!("expected {} values, one per kernel dimension", kernel.len()),
                ));
            }
            to_sizes(&node, key, &v)
        };
        let stride = per_dim("stride", 1)?;
        let pad = per_dim("pad", 0)?;
        if stride.contains(&0) {
            return Err(node.attr_err("stride", format!("{stride:?}"), "values must be positive"));
        }
        let convention =
            match r.choice("pooling_convention", &["valid", "full", "same"], "valid")? {
                "valid" => Convention::Valid,
                "full" => Convention::Full,
                _ => Convention::Same,
            };
        let kind = match r.choice("pool_type", &["max", "avg", "sum", "lp"], "max")? {
            "max" => PoolKind::Max,
            "avg" => PoolKind::Avg {
                count_include_pad: r.opt_bool("count_include_pad")?.unwrap_or(true),
            },
            "sum" => PoolKind::Sum,
            _ => {
                let p = r.opt_int("p_value")?.ok_or_else(|| r.missing("p_value"))?;
                if !(1..=3).contains(&p) {
                    return Err(node.attr_err("p_value", p, "lp pooling supports p = 1, 2 or 3"));
                }
                PoolKind::Lp(p as u32)
            }
        };
        if let Some(layout) = r.raw("layout").filter(|l| *l != "None") {
            if !["NCW", "NCHW", "NCDHW"].contains(&layout) {
                return Err(node.attr_err(
                    "layout",
                    layout,
                    "only channels-first layouts (NCW, NCHW, NCDHW) are supported",
                ));
            }
        }
        Ok(Pooling {
            node,
            kind,
            global,
            convention,
            kernel,
            stride,
            pad,
        })
    }

    /// Window geometry (kernel, stride, pad, output size) for an input's spatial dimensions.
    fn window(&self, spatial: &[usize]) -> Result<Window> {
        let rank = spatial.len();
        if self.global {
            let ones = vec![1; rank];
            return Ok(Window::new(
                spatial,
                &ones,
                spatial,
                &ones,
                &ones,
                &vec![0; rank],
            ));
        }
        if rank != self.kernel.len() {
            return Err(self.node.shape_err(format!(
                "a {}-D kernel needs data with {} dimensions, got {}",
                self.kernel.len(),
                self.kernel.len() + 2,
                rank + 2
            )));
        }
        if self.convention == Convention::Same && (rank != 1 || self.pad.iter().any(|&p| p != 0)) {
            return Err(self
                .node
                .shape_err("pooling_convention 'same' supports 1-D pooling without padding only"));
        }
        let mut grid = Vec::with_capacity(rank);
        for (i, &len) in spatial.iter().enumerate() {
            let padded = len + 2 * self.pad[i];
            if self.pad[i] > 0 && self.pad[i] >= self.kernel[i] {
                // MXNet 1.9.1 rejects this too ("pad_l[0] < kernel[0]").
                return Err(self.node.shape_err(format!(
                    "pad {} must be smaller than the kernel size {} in spatial dimension {i}",
                    self.pad[i], self.kernel[i]
                )));
            }
            if self.kernel[i] > padded {
                return Err(self.node.shape_err(format!(
                    "kernel size {} exceeds the input size {len} padded to {padded} in spatial dimension {i}",
                    self.kernel[i]
                )));
            }
            let s = self.stride[i];
            grid.push(match self.convention {
                Convention::Valid => (padded - self.kernel[i]) / s + 1,
                Convention::Full => (padded - self.kernel[i]).div_ceil(s) + 1,
                Convention::Same => padded.div_ceil(s),
            });
        }
        Ok(Window::new(
            spatial,
            &grid,
            &self.kernel,
            &self.stride,
            &vec![1; rank],
            &self.pad,
        ))
    }
}

impl Op for Pooling {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        if !(3..=5).contains(&data.len()) {
            return Err(self.node.shape_err(format!(
                "data has shape {data:?}, expected 3 to 5 dimensions (N, C, spatial…)"
            )));
        }
        let window = self.window(&data[2..])?;
        let rank = data.len() - 2;
        let out: Shape = data[..2]
            .iter()
            .copied()
            .chain(window.grid[3 - rank..].iter().copied())
            .collect();
        Ok(Some(vec![out]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let window = self.window(&inputs[0].shape()[2..])?;
        pool_forward(
            &window,
            self.kind,
            inputs[0].f32s()?,
            outputs[0].f32s_mut()?,
        );
        Ok(())
    }
}

/// `_contrib_AdaptiveAvgPooling2D`: average pooling of NCHW data to a fixed
/// `output_size` (one value for both sides, two for (height, width), 1×1 when absent).
struct AdaptiveAvgPool {
    node: NodeInfo,
    size: Option<(usize, usize)>,
}

impl AdaptiveAvgPool {
    fn new(ctx: &NodeCtx) -> Result<AdaptiveAvgPool> {
        let node = NodeInfo::new(ctx);
        let sizes = to_sizes(
            &node,
            "output_size",
            &ctx.reader().tuple_or("output_size", &[])?,
        )?;
        // MXNet 1.9.1 falls back to 1×1 for more than two values as well.
        let size = match sizes[..] {
            [s] => Some((s, s)),
            [h, w] => Some((h, w)),
            _ => None,
        };
        if matches!(size, Some((0, _)) | Some((_, 0))) {
            return Err(node.attr_err(
                "output_size",
                format!("{sizes:?}"),
                "sizes must be positive",
            ));
        }
        Ok(AdaptiveAvgPool { node, size })
    }
}

impl Op for AdaptiveAvgPool {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        let Some(data) = &inputs[0] else {
            return Ok(None);
        };
        if data.len() != 4 {
            return Err(self.node.shape_err(format!(
                "data has shape {data:?}, expected 4 dimensions (N, C, H, W)"
            )));
        }
        let (h, w) = self.size.unwrap_or((1, 1));
        Ok(Some(vec![vec![data[0], data[1], h, w]]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let d = inputs[0].shape();
        let o = outputs[0].shape().to_vec();
        if d[2] == 0 || d[3] == 0 {
            return Err(self
                .node
                .shape_err(format!("cannot pool the empty input {d:?}")));
        }
        adaptive_avg_pool(
            inputs[0].f32s()?,
            (d[2], d[3]),
            outputs[0].f32s_mut()?,
            (o[2], o[3]),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn pool(pairs: &[(&str, &str)]) -> Box<dyn Op> {
        make(|c| Ok(Box::new(Pooling::new(c)?)), "Pooling", pairs).unwrap()
    }

    fn out_shape(op: &dyn Op, data: &[usize]) -> Result<Vec<usize>> {
        let mut shapes = vec![Some(data.to_vec())];
        Ok(op.infer_shape(&mut shapes)?.unwrap().remove(0))
    }

    #[test]
    fn pooling_conventions_shapes() {
        let valid = pool(&[("kernel", "(3, 3)"), ("stride", "(2, 2)")]);
        assert_eq!(
            out_shape(valid.as_ref(), &[1, 2, 8, 7]).unwrap(),
            vec![1, 2, 3, 3]
        );
        let full = pool(&[
            ("kernel", "(3, 3)"),
            ("stride", "(2, 2)"),
            ("pooling_convention", "full"),
        ]);
        assert_eq!(
            out_shape(full.as_ref(), &[1, 2, 8, 7]).unwrap(),
            vec![1, 2, 4, 3]
        );
        let same = pool(&[
            ("kernel", "(3,)"),
            ("stride", "(2,)"),
            ("pooling_convention", "same"),
        ]);
        assert_eq!(out_shape(same.as_ref(), &[1, 2, 7]).unwrap(), vec![1, 2, 4]);
        assert!(out_shape(same.as_ref(), &[1, 2, 7, 7]).is_err());
        let global = pool(&[("global_pool", "True"), ("pool_type", "avg")]);
        assert_eq!(
            out_shape(global.as_ref(), &[2, 3, 5, 4]).unwrap(),
            vec![2, 3, 1, 1]
        );
        assert!(out_shape(valid.as_ref(), &[1, 1, 2, 2]).is_err());
    }

    #[test]
    fn global_avg_and_max() {
        let x = ramp(&[1, 2, 2, 2], 0.0, 1.0);
        let avg = run(
            pool(&[
                ("global_pool", "true"),
                ("pool_type", "avg"),
                ("kernel", "(1, 1)"),
            ])
            .as_ref(),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_close(&avg[0], &[1.5, 5.5]);
        let max = run(pool(&[("global_pool", "true")]).as_ref(), &[x]).unwrap();
        assert_close(&max[0], &[3.0, 7.0]);
    }

    #[test]
    fn max_pool_2d_with_pad_by_hand() {
        // 3×3 ramp, kernel 2, stride 2, pad 1 → windows pick the top-left corners.
        let x = ramp(&[1, 1, 3, 3], 1.0, 1.0);
        let out = run(
            pool(&[
                ("kernel", "(2, 2)"),
                ("stride", "(2, 2)"),
                ("pad", "(1, 1)"),
            ])
            .as_ref(),
            &[x],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[1, 1, 2, 2]);
        assert_close(&out[0], &[1.0, 3.0, 7.0, 9.0]);
    }

    #[test]
    fn avg_pool_count_include_pad_flag() {
        let x = t(&[1, 1, 3], &[3.0, 6.0, 9.0]);
        let incl = run(
            pool(&[("kernel", "(2,)"), ("pad", "(1,)"), ("pool_type", "avg")]).as_ref(),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_close(&incl[0], &[1.5, 4.5, 7.5, 4.5]);
        let excl = run(
            pool(&[
                ("kernel", "(2,)"),
                ("pad", "(1,)"),
                ("pool_type", "avg"),
                ("count_include_pad", "False"),
            ])
            .as_ref(),
            &[x],
        )
        .unwrap();
        assert_close(&excl[0], &[3.0, 4.5, 7.5, 9.0]);
    }

    #[test]
    fn adaptive_avg_pool_sizes() {
        let create: super::super::CreateFn = |c| Ok(Box::new(AdaptiveAvgPool::new(c)?));
        let shape = |pairs: &[(&str, &str)]| {
            let op = make(create, "_contrib_AdaptiveAvgPooling2D", pairs).unwrap();
            op.infer_shape(&mut [Some(vec![2, 3, 7, 9])])
                .unwrap()
                .unwrap()
                .remove(0)
        };
        assert_eq!(shape(&[]), vec![2, 3, 1, 1]);
        assert_eq!(shape(&[("output_size", "3")]), vec![2, 3, 3, 3]);
        assert_eq!(shape(&[("output_size", "(2, 6)")]), vec![2, 3, 2, 6]);
        let op = make(
            create,
            "_contrib_AdaptiveAvgPooling2D",
            &[("output_size", "(1, 2)")],
        )
        .unwrap();
        let out = run(op.as_ref(), &[ramp(&[1, 1, 2, 4], 0.0, 1.0)]).unwrap();
        assert_close(&out[0], &[2.5, 4.5]);
    }

    #[test]
    fn lp_pool_needs_p_value() {
        assert!(make(
            |c| Ok(Box::new(Pooling::new(c)?)),
            "Pooling",
            &[("kernel", "(2,)"), ("pool_type", "lp")]
        )
        .is_err());
        let x = t(&[1, 1, 2], &[3.0, 4.0]);
        let out = run(
            pool(&[("kernel", "(2,)"), ("pool_type", "lp"), ("p_value", "2")]).as_ref(),
            &[x],
        )
        .unwrap();
        assert_close(&out[0], &[5.0]);
    }
}
