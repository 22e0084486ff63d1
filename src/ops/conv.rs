//! `Convolution` and `Deconvolution` (transposed convolution) over 1, 2 or 3
//! spatial dimensions in NC(D)(H)W layout, with groups, dilation, padding
//! and stride. Deconvolution also takes `adj` and `target_shape`.

use super::fp32_util::{f32_only, to_sizes, NodeInfo};
use super::{Epilogue, NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::conv::{conv_forward, deconv_forward, ConvShape, DeconvShape};
use crate::kernels::fp32::elementwise::{act, map_inplace};
use crate::kernels::fp32::window::Window;
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("Convolution", |ctx| Ok(Box::new(Conv::new(ctx, false)?)));
    r.implement("Deconvolution", |ctx| Ok(Box::new(Conv::new(ctx, true)?)));
}

/// Attributes shared by both operators, with defaults applied.
#[derive(Debug)]
struct ConvParams {
    kernel: Vec<usize>,
    stride: Vec<usize>,
    dilate: Vec<usize>,
    pad: Vec<usize>,
    num_filter: usize,
    groups: usize,
    no_bias: bool,
    /// Deconvolution only: extra output size at the end of each dimension.
    adj: Vec<usize>,
    /// Deconvolution only: requested output size (0 = not given).
    target_shape: Vec<usize>,
}

struct Conv {
    node: NodeInfo,
    p: ConvParams,
    transposed: bool,
    /// Weights and bias with an absorbed per-channel affine map (a
    /// following BatchNorm) folded in; they replace the weight and bias inputs.
    folded: Option<(Vec<f32>, Vec<f32>)>,
    /// A ReLU or clip absorbed after the convolution.
    activation: Option<Epilogue>,
}

impl Conv {
    fn new(ctx: &NodeCtx, transposed: bool) -> Result<Conv> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let kernel = to_sizes(
            &node,
            "kernel",
            &r.opt_tuple("kernel")?.ok_or_else(|| r.missing("kernel"))?,
        )?;
        let rank = kernel.len();
        if !(1..=3).contains(&rank) || kernel.contains(&0) {
            return Err(node.attr_err(
                "kernel",
                format!("{kernel:?}"),
                "expected 1 to 3 positive sizes",
            ));
        }
        // An absent or empty tuple takes the default for every dimension.
        let per_dim = |key: &str, default: usize| -> Result<Vec<usize>> {
            let v = r.opt_tuple(key)?.unwrap_or_default();
            if v.is_empty() {
                return Ok(vec![default; rank]);
            }
            if v.len() != rank {
                return Err(node.attr_err(
                    key,
                    format!("{v:?}"),
                    format!("expected {rank} values, one per kernel dimension"),
                ));
            }
            to_sizes(&node, key, &v)
        };
        let stride = per_dim("stride", 1)?;
        let dilate = per_dim("dilate", 1)?;
        let pad = per_dim("pad", 0)?;
        let adj = per_dim("adj", 0)?;
        let target_shape = per_dim("target_shape", 0)?;
        for (key, v) in [("stride", &stride), ("dilate", &dilate)] {
            if v.contains(&0) {
                return Err(node.attr_err(key, format!("{v:?}"), "values must be positive"));
            }
        }
        let num_filter = r.int("num_filter")?;
        let groups = r.int_or("num_group", 1)?;
        if num_filter < 1 || groups < 1 {
            return Err(node.attr_err(
                "num_filter",
                num_filter,
                "num_filter and num_group must be positive",
            ));
        }
        let (num_filter, groups) = (num_filter as usize, groups as usize);
        if !num_filter.is_multiple_of(groups) {
            return Err(node.attr_err(
                "num_group",
                groups,
                format!("must divide num_filter ({num_filter})"),
            ));
        }
        let no_bias = r.bool_or("no_bias", transposed)?;
        if let Some(layout) = r.raw("layout").filter(|l| *l != "None") {
            let channels_first = ["NCW", "NCHW", "NCDHW"];
            if !channels_first.contains(&layout) {
                return Err(node.attr_err(
                    "layout",
                    layout,
                    "only channels-first layouts (NCW, NCHW, NCDHW) are supported",
                ));
            }
        }
        let p = ConvParams {
            kernel,
            stride,
            dilate,
            pad,
            num_filter,
            groups,
            no_bias,
            adj,
            target_shape,
        };
        Ok(Conv {
            node,
            p,
            transposed,
            folded: None,
            activation: None,
        })
    }

    fn input_count(&self) -> usize {
        if self.p.no_bias {
            2
        } else {
            3
        }
    }

    fn dilated(&self, i: usize) -> usize {
        self.p.dilate[i] * (self.p.kernel[i] - 1) + 1
    }

    /// Output spatial size of the convolution.
    fn conv_out(&self, spatial: &[usize]) -> Result<Vec<usize>> {
        (0..spatial.len())
            .map(|i| {
                let padded = spatial[i] + 2 * self.p.pad[i];
                if padded < self.dilated(i) {
                    return Err(self.node.shape_err(format!(
                        "dilated kernel size {} exceeds the padded input size {padded} in spatial dimension {i}",
                        self.dilated(i)
                    )));
                }
                Ok((padded - self.dilated(i)) / self.p.stride[i] + 1)
            })
            .collect()
    }

    /// Padding and adjustment of the deconvolution: derived from
    /// `target_shape` when any of its entries is non-zero, from `pad` and
    /// `adj` otherwise (MXNet 1.9.1 `DeconvolutionParam::InferPad`).
    fn deconv_pad_adj(&self, spatial: &[usize]) -> Result<(Vec<usize>, Vec<usize>)> {
        if !self.p.target_shape.iter().any(|&t| t != 0) {
            return Ok((self.p.pad.clone(), self.p.adj.clone()));
        }
        let mut pad = vec![0; spatial.len()];
        let mut adj = vec![0; spatial.len()];
        for i in 0..spatial.len() {
            let full = self.p.stride[i] * (spatial[i].max(1) - 1) + self.dilated(i);
            let target = self.p.target_shape[i];
            if full < target {
                return Err(self.node.shape_err(format!(
                    "target_shape {:?} is larger than the unpadded output size {full} in spatial dimension {i}",
                    self.p.target_shape
                )));
            }
            let total = full - target;
            adj[i] = total % 2;
            pad[i] = total.div_ceil(2);
        }
        Ok((pad, adj))
    }

    fn deconv_out(&self, spatial: &[usize]) -> Result<Vec<usize>> {
        let (pad, adj) = self.deconv_pad_adj(spatial)?;
        let mut out = Vec::with_capacity(spatial.len());
        for i in 0..spatial.len() {
            if adj[i] >= self.p.stride[i] {
                return Err(self.node.shape_err(format!(
                    "adj {} must be smaller than stride {} in spatial dimension {i}",
                    adj[i], self.p.stride[i]
                )));
            }
            let full = self.p.stride[i] * (spatial[i].max(1) - 1) + self.dilated(i) + adj[i];
            if full < 2 * pad[i] || spatial[i] == 0 {
                return Err(self.node.shape_err(format!(
                    "padding {} leaves no output in spatial dimension {i}",
                    pad[i]
                )));
            }
            let o = full - 2 * pad[i];
            if self.p.target_shape[i] > 0 && self.p.target_shape[i] != o {
                return Err(self.node.shape_err(format!(
                    "target_shape {:?} cannot be reached: spatial dimension {i} would be {o}",
                    self.p.target_shape
                )));
            }
            out.push(o);
        }
        Ok(out)
    }
}

impl Op for Conv {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), self.input_count())?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        let rank = self.p.kernel.len();
        if data.len() != rank + 2 {
            return Err(self.node.shape_err(format!(
                "data has shape {data:?}, expected {} dimensions (batch, channel and {rank} spatial) for a {rank}-D kernel",
                rank + 2
            )));
        }
        let (batch, channels, spatial) = (data[0], data[1], &data[2..]);
        let groups = self.p.groups;
        if !channels.is_multiple_of(groups) {
            return Err(self.node.shape_err(format!(
                "{channels} input channels are not divisible by num_group {groups}"
            )));
        }
        let f = self.p.num_filter;
        let (weight, out_spatial) = if self.transposed {
            (vec![channels, f / groups], self.deconv_out(spatial)?)
        } else {
            (vec![f, channels / groups], self.conv_out(spatial)?)
        };
        let weight: Shape = weight
            .into_iter()
            .chain(self.p.kernel.iter().copied())
            .collect();
        self.node.assign_input(inputs, 1, "weight", weight)?;
        if !self.p.no_bias {
            self.node.assign_input(inputs, 2, "bias", vec![f])?;
        }
        let out: Shape = [batch, f].into_iter().chain(out_spatial).collect();
        Ok(Some(vec![out]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn absorb(&mut self, epilogue: &[Epilogue], constants: &[Option<&Tensor>]) -> Result<bool> {
        if self.transposed || self.activation.is_some() {
            return Ok(false);
        }
        for step in epilogue {
            match step {
                Epilogue::Relu | Epilogue::Clip { .. } => self.activation = Some(step.clone()),
                Epilogue::Affine { .. } if self.activation.is_some() => return Ok(false),
                Epilogue::Affine { scale, shift } => {
                    let Some(folded) = self.fold(scale, shift, constants)? else {
                        return Ok(false);
                    };
                    self.folded = Some(folded);
                }
            }
        }
        Ok(true)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let data = inputs[0];
        let spatial = &data.shape()[2..];
        let (weight, bias) = match &self.folded {
            Some((w, b)) => (w.as_slice(), Some(b.as_slice())),
            None if self.p.no_bias => (inputs[1].f32s()?, None),
            None => (inputs[1].f32s()?, Some(inputs[2].f32s()?)),
        };
        let out_shape = outputs[0].shape().to_vec();
        let out_spatial = &out_shape[2..];
        let out = outputs[0].f32s_mut()?;
        if self.transposed {
            let (pad, _) = self.deconv_pad_adj(spatial)?;
            let window = Window::new(
                out_spatial,
                spatial,
                &self.p.kernel,
                &self.p.stride,
                &self.p.dilate,
                &pad,
            );
            let shape = DeconvShape {
                batch: data.shape()[0],
                in_channels: data.shape()[1],
                out_channels: self.p.num_filter,
                groups: self.p.groups,
                window,
            };
            deconv_forward(&shape, data.f32s()?, weight, bias, out);
        } else {
            let window = Window::new(
                spatial,
                out_spatial,
                &self.p.kernel,
                &self.p.stride,
                &self.p.dilate,
                &self.p.pad,
            );
            let shape = ConvShape {
                batch: data.shape()[0],
                in_channels: data.shape()[1],
                out_channels: self.p.num_filter,
                groups: self.p.groups,
                window,
            };
            conv_forward(&shape, data.f32s()?, weight, bias, out);
            match self.activation {
                Some(Epilogue::Relu) => map_inplace(out, act::relu),
                Some(Epilogue::Clip { lo, hi }) => map_inplace(out, move |v| act::clip(v, lo, hi)),
                _ => {}
            }
        }
        Ok(())
    }
}

impl Conv {
    /// Folds `y = conv(x) · scale + shift` into new weights and bias, when the
    /// weights (and bias) are constants and already hold no folded map.
    fn fold(
        &self,
        scale: &[f32],
        shift: &[f32],
        constants: &[Option<&Tensor>],
    ) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
        let channels = self.p.num_filter;
        let weight = match (&self.folded, constants.get(1).copied().flatten()) {
            (None, Some(w)) => w.f32s()?,
            _ => return Ok(None),
        };
        let bias = match (self.p.no_bias, constants.get(2).copied().flatten()) {
            (true, _) => None,
            (false, Some(b)) => Some(b.f32s()?),
            (false, None) => return Ok(None),
        };
        if scale.len() != channels || shift.len() != channels || weight.len() % channels != 0 {
            return Ok(None);
        }
        let per_channel = weight.len() / channels;
        let mut folded = weight.to_vec();
        for (c, w) in folded.chunks_mut(per_channel).enumerate() {
            for v in w {
                *v *= scale[c];
            }
        }
        let new_bias = (0..channels)
            .map(|c| bias.map_or(0.0, |b| b[c]) * scale[c] + shift[c])
            .collect();
        Ok(Some((folded, new_bias)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn conv(pairs: &[(&str, &str)]) -> Box<dyn Op> {
        make(
            |ctx| Ok(Box::new(Conv::new(ctx, false)?)),
            "Convolution",
            pairs,
        )
        .unwrap()
    }

    fn deconv(pairs: &[(&str, &str)]) -> Box<dyn Op> {
        make(
            |ctx| Ok(Box::new(Conv::new(ctx, true)?)),
            "Deconvolution",
            pairs,
        )
        .unwrap()
    }

    #[test]
    fn conv_infers_weight_bias_and_output() {
        let op = conv(&[
            ("kernel", "(3, 3)"),
            ("num_filter", "8"),
            ("num_group", "2"),
            ("stride", "(2, 2)"),
            ("pad", "(1, 1)"),
        ]);
        let mut shapes = vec![Some(vec![2, 4, 7, 6]), None, None];
        let out = op.infer_shape(&mut shapes).unwrap().unwrap();
        assert_eq!(out, vec![vec![2, 8, 4, 3]]);
        assert_eq!(shapes[1], Some(vec![8, 2, 3, 3]));
        assert_eq!(shapes[2], Some(vec![8]));
    }

    #[test]
    fn conv_rejects_wrong_weight() {
        let op = conv(&[("kernel", "(3,)"), ("num_filter", "2"), ("no_bias", "True")]);
        let mut shapes = vec![Some(vec![1, 3, 9]), Some(vec![2, 3, 5])];
        let err = op.infer_shape(&mut shapes).unwrap_err().to_string();
        assert!(err.contains("weight has shape [2, 3, 5]"), "{err}");
        assert!(err.contains("\"test\""), "{err}");
    }

    #[test]
    fn conv_1x1_by_hand() {
        // Two input channels mixed by weights (1, 2) and (−1, 0.5), bias (0, 10).
        let op = conv(&[("kernel", "(1, 1)"), ("num_filter", "2")]);
        let data = t(&[1, 2, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
        let weight = t(&[2, 2, 1, 1], &[1.0, 2.0, -1.0, 0.5]);
        let bias = t(&[2], &[0.0, 10.0]);
        let out = run(op.as_ref(), &[data, weight, bias]).unwrap();
        assert_eq!(out[0].shape(), &[1, 2, 1, 2]);
        assert_close(&out[0], &[7.0, 10.0, 10.5, 10.0]);
    }

    #[test]
    fn conv_1d_dilated_by_hand() {
        // x = 0..6, kernel (1, 1) dilated by 2: y[i] = x[i] + x[i+2].
        let op = conv(&[
            ("kernel", "(2,)"),
            ("dilate", "(2,)"),
            ("num_filter", "1"),
            ("no_bias", "true"),
        ]);
        let out = run(
            op.as_ref(),
            &[ramp(&[1, 1, 6], 0.0, 1.0), t(&[1, 1, 2], &[1.0, 1.0])],
        )
        .unwrap();
        assert_close(&out[0], &[2.0, 4.0, 6.0, 8.0]);
    }

    #[test]
    fn deconv_shape_with_adj_and_target() {
        let op = deconv(&[
            ("kernel", "(3, 3)"),
            ("num_filter", "4"),
            ("stride", "(2, 2)"),
            ("pad", "(1, 1)"),
            ("adj", "(1, 0)"),
        ]);
        let mut shapes = vec![Some(vec![1, 6, 5, 5]), None];
        let out = op.infer_shape(&mut shapes).unwrap().unwrap();
        assert_eq!(out, vec![vec![1, 4, 10, 9]]);
        assert_eq!(shapes[1], Some(vec![6, 4, 3, 3]));

        let op = deconv(&[
            ("kernel", "(4, 4)"),
            ("num_filter", "2"),
            ("stride", "(2, 2)"),
            ("target_shape", "(10, 11)"),
        ]);
        let mut shapes = vec![Some(vec![1, 3, 5, 5]), None];
        let out = op.infer_shape(&mut shapes).unwrap().unwrap();
        assert_eq!(out, vec![vec![1, 2, 10, 11]]);
    }

    #[test]
    fn deconv_1d_stride_2_by_hand() {
        // x = (1, 2), kernel (1, 10, 100), stride 2: out = (1, 10, 102, 20, 200).
        let op = deconv(&[("kernel", "(3,)"), ("stride", "(2,)"), ("num_filter", "1")]);
        let out = run(
            op.as_ref(),
            &[
                t(&[1, 1, 2], &[1.0, 2.0]),
                t(&[1, 1, 3], &[1.0, 10.0, 100.0]),
            ],
        )
        .unwrap();
        assert_close(&out[0], &[1.0, 10.0, 102.0, 20.0, 200.0]);
    }

    #[test]
    fn deconv_bias_and_pad_by_hand() {
        // Same as above with pad 1 (crop one each side) and bias 0.5.
        let op = deconv(&[
            ("kernel", "(3,)"),
            ("stride", "(2,)"),
            ("pad", "(1,)"),
            ("num_filter", "1"),
            ("no_bias", "false"),
        ]);
        let out = run(
            op.as_ref(),
            &[
                t(&[1, 1, 2], &[1.0, 2.0]),
                t(&[1, 1, 3], &[1.0, 10.0, 100.0]),
                t(&[1], &[0.5]),
            ],
        )
        .unwrap();
        assert_close(&out[0], &[10.5, 102.5, 20.5]);
    }

    #[test]
    fn conv_rejects_nhwc_layout() {
        let err = make(
            |ctx| Ok(Box::new(Conv::new(ctx, false)?)),
            "Convolution",
            &[
                ("kernel", "(3, 3)"),
                ("num_filter", "1"),
                ("layout", "NHWC"),
            ],
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("layout"));
    }
}
