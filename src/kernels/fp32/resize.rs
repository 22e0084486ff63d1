//! Spatial resizing of NCHW planes: nearest-neighbour upsampling by an
//! integer factor and bilinear interpolation.

use rayon::prelude::*;

/// Nearest-neighbour upsampling of `planes` planes of `in_h × in_w` by
/// `scale` in both directions: `out[y][x] = in[y / scale][x / scale]`.
pub fn upsample_nearest(input: &[f32], in_h: usize, in_w: usize, scale: usize, output: &mut [f32]) {
    let (out_h, out_w) = (in_h * scale, in_w * scale);
    let planes = input.len() / (in_h * in_w).max(1);
    assert_eq!(input.len(), planes * in_h * in_w, "upsample: input length");
    assert_eq!(
        output.len(),
        planes * out_h * out_w,
        "upsample: output length"
    );
    if output.is_empty() {
        return;
    }
    output
        .par_chunks_mut(out_h * out_w)
        .zip(input.par_chunks(in_h * in_w))
        .for_each(|(dst, src)| {
            for y in 0..out_h {
                let row = &src[(y / scale) * in_w..(y / scale + 1) * in_w];
                for (x, d) in dst[y * out_w..(y + 1) * out_w].iter_mut().enumerate() {
                    *d = row[x / scale];
                }
            }
        });
}

/// Source position and weights along one axis for MXNet 1.9.1's
/// `BilinearResize2D`: with `align_corners` the corners map onto each other
/// (`src = dst · (in-1)/(out-1)`), otherwise pixel centres do
/// (`src = (dst + 0.5) · in/out − 0.5`, clamped at 0). Returns
/// `(index, next_offset, weight_of_next)` per output position.
fn axis_taps(in_len: usize, out_len: usize, align_corners: bool) -> Vec<(usize, usize, f32)> {
    let scale = if out_len > 1 {
        if align_corners {
            (in_len as f32 - 1.0) / (out_len as f32 - 1.0)
        } else {
            in_len as f32 / out_len as f32
        }
    } else {
        0.0
    };
    (0..out_len)
        .map(|o| {
            let src = if align_corners {
                scale * o as f32
            } else {
                (scale * (o as f32 + 0.5) - 0.5).max(0.0)
            };
            let index = (src as usize).min(in_len - 1);
            let next = usize::from(index < in_len - 1);
            (index, next, src - index as f32)
        })
        .collect()
}

/// Bilinear resize of each `in_h × in_w` plane to `out_h × out_w`.
pub fn bilinear_resize(
    input: &[f32],
    (in_h, in_w): (usize, usize),
    output: &mut [f32],
    (out_h, out_w): (usize, usize),
    align_corners: bool,
) {
    let planes = input.len() / (in_h * in_w).max(1);
    assert_eq!(input.len(), planes * in_h * in_w, "bilinear: input length");
    assert_eq!(
        output.len(),
        planes * out_h * out_w,
        "bilinear: output length"
    );
    if output.is_empty() {
        return;
    }
    if in_h == out_h && in_w == out_w {
        output.copy_from_slice(input);
        return;
    }
    let ys = axis_taps(in_h, out_h, align_corners);
    let xs = axis_taps(in_w, out_w, align_corners);
    output
        .par_chunks_mut(out_h * out_w)
        .zip(input.par_chunks(in_h * in_w))
        .for_each(|(dst, src)| {
            for (y, &(iy, dy, ly)) in ys.iter().enumerate() {
                let top = &src[iy * in_w..(iy + 1) * in_w];
                let bottom = &src[(iy + dy) * in_w..(iy + dy + 1) * in_w];
                for (x, &(ix, dx, lx)) in xs.iter().enumerate() {
                    let upper = (1.0 - lx) * top[ix] + lx * top[ix + dx];
                    let lower = (1.0 - lx) * bottom[ix] + lx * bottom[ix + dx];
                    dst[y * out_w + x] = (1.0 - ly) * upper + ly * lower;
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_repeats_pixels() {
        let input = [1.0, 2.0, 3.0, 4.0];
        let mut out = [0.0; 16];
        upsample_nearest(&input, 2, 2, 2, &mut out);
        assert_eq!(
            out,
            [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0]
        );
    }

    #[test]
    fn bilinear_align_corners_1d() {
        // 1×3 → 1×5 with corners aligned: sources 0, 0.5, 1, 1.5, 2.
        let input = [0.0, 10.0, 30.0];
        let mut out = [0.0; 5];
        bilinear_resize(&input, (1, 3), &mut out, (1, 5), true);
        assert_eq!(out, [0.0, 5.0, 10.0, 20.0, 30.0]);
    }

    #[test]
    fn bilinear_half_pixel_1d() {
        // 1×2 → 1×4 without aligned corners: sources -0.25→0, 0.25, 0.75, 1.25.
        let input = [0.0, 8.0];
        let mut out = [0.0; 4];
        bilinear_resize(&input, (1, 2), &mut out, (1, 4), false);
        assert_eq!(out, [0.0, 2.0, 6.0, 8.0]);
    }

    #[test]
    fn bilinear_2d_downsample() {
        // 4×4 ramp → 2×2 without aligned corners: sources 0.5 and 2.5 per axis.
        let input: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut out = [0.0; 4];
        bilinear_resize(&input, (4, 4), &mut out, (2, 2), false);
        assert_eq!(out, [2.5, 4.5, 10.5, 12.5]);
    }
}
