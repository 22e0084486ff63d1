//! `UpSampling` (nearest with one or more inputs, or bilinear through a
//! grouped deconvolution with a learned weight) and
//! `_contrib_BilinearResize2D` with the output-size modes of MXNet 1.9.1.

use super::fp32_util::{f32_only, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::conv::{deconv_forward, DeconvShape};
use crate::kernels::fp32::elementwise::zip;
use crate::kernels::fp32::resize::{bilinear_resize, upsample_nearest};
use crate::kernels::fp32::window::Window;
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("UpSampling", |ctx| Ok(Box::new(UpSampling::new(ctx)?)));
    r.implement("_contrib_BilinearResize2D", |ctx| {
        Ok(Box::new(BilinearResize::new(ctx)?))
    });
}

fn expect_4d(node: &NodeInfo, what: &str, shape: &[usize]) -> Result<()> {
    if shape.len() != 4 {
        return Err(node.shape_err(format!(
            "{what} has shape {shape:?}, expected 4 dimensions (N, C, H, W)"
        )));
    }
    Ok(())
}

struct UpSampling {
    node: NodeInfo,
    scale: usize,
    num_args: usize,
    bilinear: bool,
    sum: bool,
}

impl UpSampling {
    fn new(ctx: &NodeCtx) -> Result<UpSampling> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let scale = r.int("scale")?;
        if scale < 1 {
            return Err(node.attr_err("scale", scale, "must be at least 1"));
        }
        let bilinear = r.choice("sample_type", &["nearest", "bilinear"], "nearest")? == "bilinear";
        // Bilinear upsampling always takes (data, weight) whatever the value
        // of num_args, as in MXNet 1.9.1.
        let num_args = r.int_or("num_args", 1)?;
        if num_args < 1 && !bilinear {
            return Err(node.attr_err("num_args", num_args, "expected at least 1"));
        }
        let sum = r.choice("multi_input_mode", &["concat", "sum"], "concat")? == "sum";
        Ok(UpSampling {
            node,
            scale: scale as usize,
            num_args: if bilinear { 2 } else { num_args as usize },
            bilinear,
            sum,
        })
    }

    /// Kernel, stride and pad of the deconvolution that implements bilinear upsampling.
    fn bilinear_window(&self) -> (usize, usize, usize) {
        let s = self.scale;
        (2 * s - s % 2, s, (s - 1).div_ceil(2))
    }
}

impl Op for UpSampling {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), self.num_args)?;
        let Some(first) = inputs[0].clone() else {
            return Ok(None);
        };
        expect_4d(&self.node, "input 0", &first)?;
        let (oh, ow) = (first[2] * self.scale, first[3] * self.scale);
        if self.bilinear {
            let (k, _, _) = self.bilinear_window();
            self.node
                .assign_input(inputs, 1, "weight", vec![first[1], 1, k, k])?;
            return Ok(Some(vec![vec![first[0], first[1], oh, ow]]));
        }
        let mut channels = 0;
        for (i, s) in inputs.iter().enumerate() {
            let Some(s) = s else {
                return Ok(None);
            };
            expect_4d(&self.node, &format!("input {i}"), s)?;
            if s[2] == 0 || s[3] == 0 || !oh.is_multiple_of(s[2]) || !ow.is_multiple_of(s[3]) {
                return Err(self.node.shape_err(format!(
                    "input {i} of shape {s:?} does not divide the output size {oh}×{ow}"
                )));
            }
            if self.sum {
                if i > 0 && s[1] != first[1] {
                    return Err(self.node.shape_err("every input needs the same number of channels when multi_input_mode is sum"));
                }
                channels = s[1];
            } else {
                channels += s[1];
            }
        }
        Ok(Some(vec![vec![first[0], channels, oh, ow]]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let out_shape = outputs[0].shape().to_vec();
        let (n, oc, oh, ow) = (out_shape[0], out_shape[1], out_shape[2], out_shape[3]);
        let out = outputs[0].f32s_mut()?;
        if self.bilinear {
            let d = inputs[0].shape();
            let (k, s, p) = self.bilinear_window();
            let window = Window::new(&[oh, ow], &d[2..], &[k, k], &[s, s], &[1, 1], &[p, p]);
            let shape = DeconvShape {
                batch: n,
                in_channels: d[1],
                out_channels: d[1],
                groups: d[1],
                window,
            };
            deconv_forward(&shape, inputs[0].f32s()?, inputs[1].f32s()?, None, out);
            return Ok(());
        }
        if inputs.len() == 1 {
            let s = inputs[0].shape();
            upsample_nearest(inputs[0].f32s()?, s[2], s[3], self.scale, out);
            return Ok(());
        }
        let plane = oh * ow;
        let mut scratch = Vec::new();
        let mut channel_at = 0;
        for (i, x) in inputs.iter().enumerate() {
            let s = x.shape();
            let scale = oh / s[2];
            let c = s[1];
            if self.sum {
                if i == 0 {
                    upsample_nearest(x.f32s()?, s[2], s[3], scale, out);
                } else {
                    scratch.resize(out.len(), 0.0);
                    upsample_nearest(x.f32s()?, s[2], s[3], scale, &mut scratch);
                    let acc = out.to_vec();
                    zip(&acc, &scratch, out, |a, b| a + b);
                }
                continue;
            }
            // Concatenation along channels: upsample each image into its channel range.
            let image_in = c * s[2] * s[3];
            let mut tmp = vec![0.0f32; c * plane];
            for b in 0..n {
                upsample_nearest(
                    &x.f32s()?[b * image_in..(b + 1) * image_in],
                    s[2],
                    s[3],
                    scale,
                    &mut tmp,
                );
                let start = (b * oc + channel_at) * plane;
                out[start..start + c * plane].copy_from_slice(&tmp);
            }
            channel_at += c;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ResizeMode {
    Size,
    OddScale,
    Like,
    ToEvenDown,
    ToEvenUp,
    ToOddDown,
    ToOddUp,
}

struct BilinearResize {
    node: NodeInfo,
    mode: ResizeMode,
    height: i64,
    width: i64,
    scale_height: Option<f32>,
    scale_width: Option<f32>,
    align_corners: bool,
}

impl BilinearResize {
    fn new(ctx: &NodeCtx) -> Result<BilinearResize> {
        let r = ctx.reader();
        let mode = match r.choice(
            "mode",
            &[
                "size",
                "odd_scale",
                "like",
                "to_even_down",
                "to_even_up",
                "to_odd_down",
                "to_odd_up",
            ],
            "size",
        )? {
            "size" => ResizeMode::Size,
            "odd_scale" => ResizeMode::OddScale,
            "like" => ResizeMode::Like,
            "to_even_down" => ResizeMode::ToEvenDown,
            "to_even_up" => ResizeMode::ToEvenUp,
            "to_odd_down" => ResizeMode::ToOddDown,
            _ => ResizeMode::ToOddUp,
        };
        let node = NodeInfo::new(ctx);
        let op = BilinearResize {
            mode,
            height: r.int_or("height", 1)?,
            width: r.int_or("width", 1)?,
            scale_height: r.opt_f32("scale_height")?,
            scale_width: r.opt_f32("scale_width")?,
            align_corners: r.bool_or("align_corners", true)?,
            node,
        };
        if mode == ResizeMode::OddScale && (op.scale_height.is_none() || op.scale_width.is_none()) {
            return Err(op.node.attr_err(
                "mode",
                "odd_scale",
                "needs both scale_height and scale_width",
            ));
        }
        Ok(op)
    }

    /// Output (height, width) as MXNet 1.9.1 computes it, including two
    /// quirks: in "size" mode the width is scaled only when `scale_height`
    /// is set (so `scale_width` alone is ignored), and sizes pass through a
    /// 16-bit integer.
    fn output_size(&self, h: usize, w: usize, like: Option<&[usize]>) -> Result<(usize, usize)> {
        let to16 = |v: f32| v as i64 as i16 as i64;
        let (h, w) = (h as i64, w as i64);
        let (oh, ow) = match self.mode {
            ResizeMode::Size => match self.scale_height {
                Some(sh) => {
                    let sw = self.scale_width.ok_or_else(|| {
                        self.node.attr_err(
                            "scale_width",
                            "None",
                            "must be set together with scale_height",
                        )
                    })?;
                    (to16(sh * h as f32), to16(sw * w as f32))
                }
                None => (self.height as i16 as i64, self.width as i16 as i64),
            },
            ResizeMode::OddScale => {
                let (sh, sw) = (
                    self.scale_height.unwrap_or(1.0),
                    self.scale_width.unwrap_or(1.0),
                );
                let odd = |len: i64, s: f32| {
                    if len % 2 == 0 {
                        to16(len as f32 * s)
                    } else {
                        to16((len - 1) as f32 * s) + 1
                    }
                };
                (odd(h, sh), odd(w, sw))
            }
            ResizeMode::Like => {
                let like = like.expect("like mode has a second input");
                (like[2] as i64, like[3] as i64)
            }
            ResizeMode::ToEvenDown => (h - h % 2, w - w % 2),
            ResizeMode::ToEvenUp => (h + h % 2, w + w % 2),
            ResizeMode::ToOddDown => (h - 1 + h % 2, w - 1 + w % 2),
            ResizeMode::ToOddUp => (h + 1 - h % 2, w + 1 - w % 2),
        };
        if oh < 1 || ow < 1 {
            return Err(self
                .node
                .shape_err(format!("the output size {oh}×{ow} is empty")));
        }
        Ok((oh as usize, ow as usize))
    }
}

impl Op for BilinearResize {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        let like_mode = self.mode == ResizeMode::Like;
        self.node
            .expect_inputs(inputs.len(), if like_mode { 2 } else { 1 })?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        expect_4d(&self.node, "data", &data)?;
        if data[2] == 0 || data[3] == 0 {
            return Err(self
                .node
                .shape_err(format!("cannot resize the empty image {data:?}")));
        }
        let like = if like_mode {
            match &inputs[1] {
                Some(l) => {
                    expect_4d(&self.node, "like", l)?;
                    Some(l.as_slice())
                }
                None => return Ok(None),
            }
        } else {
            None
        };
        let (oh, ow) = self.output_size(data[2], data[3], like)?;
        Ok(Some(vec![vec![data[0], data[1], oh, ow]]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let d = inputs[0].shape();
        let o = outputs[0].shape().to_vec();
        bilinear_resize(
            inputs[0].f32s()?,
            (d[2], d[3]),
            outputs[0].f32s_mut()?,
            (o[2], o[3]),
            self.align_corners,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn upsampling(pairs: &[(&str, &str)]) -> Box<dyn Op> {
        make(|c| Ok(Box::new(UpSampling::new(c)?)), "UpSampling", pairs).unwrap()
    }

    #[test]
    fn nearest_two_inputs_concat() {
        // Input 0: 1×1×1×2 scaled by 2 → 2×4; input 1: 1×1×2×4 already that size.
        let op = upsampling(&[("scale", "2"), ("num_args", "2")]);
        let out = run(
            op.as_ref(),
            &[
                t(&[1, 1, 1, 2], &[1.0, 2.0]),
                ramp(&[1, 1, 2, 4], 10.0, 1.0),
            ],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[1, 2, 2, 4]);
        assert_close(
            &out[0],
            &[
                1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0,
                17.0,
            ],
        );
    }

    #[test]
    fn nearest_sum_mode() {
        let op = upsampling(&[
            ("scale", "2"),
            ("num_args", "2"),
            ("multi_input_mode", "sum"),
        ]);
        let out = run(
            op.as_ref(),
            &[
                t(&[1, 1, 1, 1], &[1.0]),
                t(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]),
            ],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[1, 1, 2, 2]);
        assert_close(&out[0], &[2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn bilinear_upsampling_weight_shape_and_identity_kernel() {
        // scale 2 → kernel 4, stride 2, pad 1. A kernel with 1 at (1, 1)
        // copies x[i, j] to out[2i, 2j] and leaves the rest 0.
        let op = upsampling(&[
            ("scale", "2"),
            ("sample_type", "bilinear"),
            ("num_filter", "1"),
        ]);
        let mut shapes = vec![Some(vec![1, 1, 2, 2]), None];
        op.infer_shape(&mut shapes).unwrap();
        assert_eq!(shapes[1], Some(vec![1, 1, 4, 4]));
        let mut k = vec![0.0; 16];
        k[5] = 1.0;
        let out = run(
            op.as_ref(),
            &[
                t(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]),
                t(&[1, 1, 4, 4], &k),
            ],
        )
        .unwrap();
        let o = out[0].to_f32_vec();
        assert_eq!((o[0], o[2], o[8], o[10]), (1.0, 2.0, 3.0, 4.0));
        assert_eq!(o.iter().filter(|&&v| v == 0.0).count(), 12);
    }

    fn resize(pairs: &[(&str, &str)], data: &[usize]) -> Result<Shape> {
        let op = make(
            |c| Ok(Box::new(BilinearResize::new(c)?)),
            "_contrib_BilinearResize2D",
            pairs,
        )?;
        let mut shapes = vec![Some(data.to_vec())];
        Ok(op.infer_shape(&mut shapes)?.unwrap().remove(0))
    }

    #[test]
    fn bilinear_resize_rejects_empty_image() {
        assert!(resize(&[("height", "2")], &[1, 1, 0, 3]).is_err());
    }

    #[test]
    fn bilinear_resize_modes() {
        let d = [1, 1, 5, 6];
        assert_eq!(
            resize(&[("height", "7"), ("width", "3")], &d).unwrap(),
            vec![1, 1, 7, 3]
        );
        assert_eq!(
            resize(&[("scale_height", "2"), ("scale_width", "0.5")], &d).unwrap(),
            vec![1, 1, 10, 3]
        );
        // scale_width alone is ignored in size mode.
        assert_eq!(
            resize(&[("scale_width", "2"), ("width", "4")], &d).unwrap(),
            vec![1, 1, 1, 4]
        );
        assert_eq!(
            resize(
                &[
                    ("mode", "odd_scale"),
                    ("scale_height", "2"),
                    ("scale_width", "2")
                ],
                &d
            )
            .unwrap(),
            vec![1, 1, 9, 12]
        );
        assert_eq!(
            resize(&[("mode", "to_even_down")], &d).unwrap(),
            vec![1, 1, 4, 6]
        );
        assert_eq!(
            resize(&[("mode", "to_even_up")], &d).unwrap(),
            vec![1, 1, 6, 6]
        );
        assert_eq!(
            resize(&[("mode", "to_odd_down")], &d).unwrap(),
            vec![1, 1, 5, 5]
        );
        assert_eq!(
            resize(&[("mode", "to_odd_up")], &d).unwrap(),
            vec![1, 1, 5, 7]
        );
    }

    #[test]
    fn bilinear_resize_values_align_corners() {
        let op = make(
            |c| Ok(Box::new(BilinearResize::new(c)?)),
            "_contrib_BilinearResize2D",
            &[("height", "3"), ("width", "3")],
        )
        .unwrap();
        let out = run(op.as_ref(), &[t(&[1, 1, 2, 2], &[0.0, 2.0, 4.0, 6.0])]).unwrap();
        assert_close(&out[0], &[0.0, 1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 5.0, 6.0]);
    }
}
