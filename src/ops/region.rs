//! Spatial cropping: the legacy `Crop` operator and `ROIPooling`, which
//! max-pools each region of interest into a fixed grid.

use super::fp32_util::{declared_outputs, f32_only, to_sizes, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("Crop", |ctx| Ok(Box::new(Crop::new(ctx)?)));
    r.implement("ROIPooling", |ctx| Ok(Box::new(RoiPooling::new(ctx)?)));
}

fn expect_4d(node: &NodeInfo, what: &str, shape: &[usize]) -> Result<()> {
    if shape.len() != 4 {
        return Err(node.shape_err(format!(
            "{what} has shape {shape:?}, expected 4 dimensions (N, C, H, W)"
        )));
    }
    Ok(())
}

/// `Crop`: cuts an `(h, w)` window out of NCHW data, sized by `h_w` or by
/// the second input, placed at `offset` or centred with `center_crop`.
struct Crop {
    node: NodeInfo,
    num_args: usize,
    offset: (usize, usize),
    size: (usize, usize),
    center: bool,
}

impl Crop {
    fn new(ctx: &NodeCtx) -> Result<Crop> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let num_args = r.int("num_args")?;
        if !(1..=2).contains(&num_args) {
            return Err(node.attr_err("num_args", num_args, "expected 1 or 2"));
        }
        let pair = |key: &str| -> Result<(usize, usize)> {
            let v = to_sizes(&node, key, &r.tuple_or(key, &[0, 0])?)?;
            match v[..] {
                [a, b] => Ok((a, b)),
                _ => Err(node.attr_err(key, format!("{v:?}"), "expected two values (y, x)")),
            }
        };
        Ok(Crop {
            num_args: num_args as usize,
            offset: pair("offset")?,
            size: pair("h_w")?,
            center: r.bool_or("center_crop", false)?,
            node,
        })
    }

    /// Output (h, w) and top-left corner for data of `(h, w)` = `image`.
    fn window(
        &self,
        image: (usize, usize),
        like: Option<&[usize]>,
    ) -> Result<((usize, usize), (usize, usize))> {
        let size = match like {
            Some(l) => (l[2], l[3]),
            None => self.size,
        };
        if size.0 > image.0 || size.1 > image.1 {
            return Err(self.node.shape_err(format!(
                "crop size {size:?} exceeds the input size {image:?}"
            )));
        }
        let corner = if self.center {
            ((image.0 - size.0) / 2, (image.1 - size.1) / 2)
        } else {
            self.offset
        };
        if corner.0 + size.0 > image.0 || corner.1 + size.1 > image.1 {
            return Err(self.node.shape_err(format!(
                "crop at {corner:?} of size {size:?} leaves the input {image:?}"
            )));
        }
        Ok((size, corner))
    }
}

impl Op for Crop {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), self.num_args)?;
        let Some(data) = &inputs[0] else {
            return Ok(None);
        };
        expect_4d(&self.node, "data", data)?;
        let like = match inputs.get(1) {
            Some(Some(l)) => {
                expect_4d(&self.node, "crop_like", l)?;
                Some(l.as_slice())
            }
            Some(None) => return Ok(None),
            None => None,
        };
        let ((h, w), _) = self.window((data[2], data[3]), like)?;
        Ok(Some(vec![vec![data[0], data[1], h, w]]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        if inputs.len() > 1 {
            inputs[1].get_or_insert(DType::F32);
        }
        f32_only(&self.node, &mut inputs[..1], num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let d = inputs[0].shape();
        let ((h, w), (y0, x0)) = self.window((d[2], d[3]), inputs.get(1).map(|t| t.shape()))?;
        let x = inputs[0].f32s()?;
        let out = outputs[0].f32s_mut()?;
        let plane = d[2] * d[3];
        for (p, dst) in out
            .chunks_exact_mut((h * w).max(1))
            .enumerate()
            .take(d[0] * d[1])
        {
            for row in 0..h {
                let src = p * plane + (y0 + row) * d[3] + x0;
                dst[row * w..(row + 1) * w].copy_from_slice(&x[src..src + w]);
            }
        }
        Ok(())
    }
}

/// `ROIPooling` with MXNet 1.9.1's rounding. Each region `[batch, x1, y1,
/// x2, y2]` is scaled by `spatial_scale`, rounded, and split into
/// `pooled_size` bins, and the bin maxima form the output. Empty bins give 0.
struct RoiPooling {
    node: NodeInfo,
    pooled: (usize, usize),
    scale: f32,
    num_outputs: usize,
}

impl RoiPooling {
    fn new(ctx: &NodeCtx) -> Result<RoiPooling> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let pooled = to_sizes(
            &node,
            "pooled_size",
            &r.opt_tuple("pooled_size")?
                .ok_or_else(|| r.missing("pooled_size"))?,
        )?;
        let pooled = match pooled[..] {
            [h, w] if h > 0 && w > 0 => (h, w),
            _ => {
                return Err(node.attr_err(
                    "pooled_size",
                    format!("{pooled:?}"),
                    "expected two positive sizes (h, w)",
                ))
            }
        };
        let scale = r
            .opt_float("spatial_scale")?
            .ok_or_else(|| r.missing("spatial_scale"))? as f32;
        Ok(RoiPooling {
            node,
            pooled,
            scale,
            num_outputs: declared_outputs(ctx, 2),
        })
    }
}

impl Op for RoiPooling {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 2)?;
        let (Some(data), Some(rois)) = (&inputs[0], &inputs[1]) else {
            return Ok(None);
        };
        expect_4d(&self.node, "data", data)?;
        if rois.len() != 2 || rois[1] != 5 {
            return Err(self
                .node
                .shape_err(format!("rois has shape {rois:?}, expected (num_rois, 5)")));
        }
        let out = vec![rois[0], data[1], self.pooled.0, self.pooled.1];
        Ok(Some(vec![out; self.num_outputs]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let d = inputs[0].shape().to_vec();
        let (batch, channels, height, width) = (d[0], d[1], d[2] as i64, d[3] as i64);
        let (ph_count, pw_count) = self.pooled;
        let x = inputs[0].f32s()?;
        let rois = inputs[1].f32s()?;
        let mut values = vec![0.0f32; outputs[0].numel()];
        let mut argmax = vec![-1.0f32; values.len()];
        let plane = (height * width) as usize;
        for (n, roi) in rois.chunks_exact(5).enumerate() {
            let coord = |v: f32| (v * self.scale).round() as i64;
            let (x1, y1, x2, y2) = (coord(roi[1]), coord(roi[2]), coord(roi[3]), coord(roi[4]));
            let b = roi[0] as i64;
            let valid_batch = b >= 0 && (b as usize) < batch;
            // Malformed regions become 1×1.
            let roi_h = (y2 - y1 + 1).max(1) as f32;
            let roi_w = (x2 - x1 + 1).max(1) as f32;
            let (bin_h, bin_w) = (roi_h / ph_count as f32, roi_w / pw_count as f32);
            for c in 0..channels {
                let base = (b.max(0) as usize * channels + c) * plane;
                for ph in 0..ph_count {
                    let h0 = ((ph as f32 * bin_h).floor() as i64 + y1).clamp(0, height);
                    let h1 = (((ph + 1) as f32 * bin_h).ceil() as i64 + y1).clamp(0, height);
                    for pw in 0..pw_count {
                        let w0 = ((pw as f32 * bin_w).floor() as i64 + x1).clamp(0, width);
                        let w1 = (((pw + 1) as f32 * bin_w).ceil() as i64 + x1).clamp(0, width);
                        let o = ((n * channels + c) * ph_count + ph) * pw_count + pw;
                        if !valid_batch || h1 <= h0 || w1 <= w0 {
                            continue;
                        }
                        let (mut best, mut at) = (f32::MIN, -1.0f32);
                        for h in h0..h1 {
                            for w in w0..w1 {
                                let i = (h * width + w) as usize;
                                if x[base + i] > best {
                                    best = x[base + i];
                                    at = (base + i) as f32;
                                }
                            }
                        }
                        values[o] = best;
                        argmax[o] = at;
                    }
                }
            }
        }
        outputs[0].f32s_mut()?.copy_from_slice(&values);
        if let Some(o) = outputs.get_mut(1) {
            o.f32s_mut()?.copy_from_slice(&argmax);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn crop(pairs: &[(&str, &str)], inputs: &[Tensor]) -> Tensor {
        let op = make(|c| Ok(Box::new(Crop::new(c)?)), "Crop", pairs).unwrap();
        run(op.as_ref(), inputs).unwrap().remove(0)
    }

    #[test]
    fn crop_center_and_offset() {
        let x = ramp(&[1, 1, 4, 4], 0.0, 1.0);
        let out = crop(
            &[
                ("num_args", "1"),
                ("h_w", "(2, 2)"),
                ("center_crop", "True"),
            ],
            std::slice::from_ref(&x),
        );
        assert_close(&out, &[5.0, 6.0, 9.0, 10.0]);
        let out = crop(
            &[("num_args", "1"), ("h_w", "(2, 3)"), ("offset", "(1, 1)")],
            std::slice::from_ref(&x),
        );
        assert_close(&out, &[5.0, 6.0, 7.0, 9.0, 10.0, 11.0]);
        let out = crop(&[("num_args", "2")], &[x, ramp(&[1, 1, 1, 2], 0.0, 0.0)]);
        assert_close(&out, &[0.0, 1.0]);
    }

    #[test]
    fn roi_pooling_by_hand() {
        // One 4×4 plane, ROI covering columns 0..=1 and rows 0..=3 at scale 1,
        // pooled to 2×1: maxima of rows 0–1 and rows 2–3 over those columns.
        let op = make(
            |c| Ok(Box::new(RoiPooling::new(c)?)),
            "ROIPooling",
            &[("pooled_size", "(2, 1)"), ("spatial_scale", "1.0")],
        )
        .unwrap();
        let x = ramp(&[1, 1, 4, 4], 0.0, 1.0);
        let rois = t(&[2, 5], &[0.0, 0.0, 0.0, 1.0, 3.0, 3.0, 0.0, 0.0, 1.0, 1.0]);
        let out = run(op.as_ref(), &[x, rois]).unwrap();
        assert_eq!(out[0].shape(), &[2, 1, 2, 1]);
        // The second ROI names batch 3, which does not exist, so it pools to 0.
        assert_close(&out[0], &[5.0, 13.0, 0.0, 0.0]);
        assert_close(&out[1], &[5.0, 13.0, -1.0, -1.0]);
    }
}
