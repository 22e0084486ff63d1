//! Pooling over NC(D)(H)W planes with MXNet 1.9.1's CPU semantics. Max
//! pooling ignores padding. Average pooling divides by the window clipped
//! to the padded image, or to the image itself without `count_include_pad`.
//! Lp pooling sums `x^p` without taking absolute values, then takes the
//! p-th root.

use super::window::Window;
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PoolKind {
    Max,
    Avg {
        count_include_pad: bool,
    },
    Sum,
    /// Lp pooling with p = 1, 2 or 3.
    Lp(u32),
}

/// Pools each of the `input.len() / image_size` planes of `input` into the
/// matching plane of `output`. The window's dilation must be 1.
pub fn pool_forward(w: &Window, kind: PoolKind, input: &[f32], output: &mut [f32]) {
    let planes = input.len() / w.image_size().max(1);
    assert_eq!(input.len(), planes * w.image_size(), "pool: input length");
    assert_eq!(output.len(), planes * w.grid_size(), "pool: output length");
    if w.grid_size() == 0 {
        return;
    }
    output
        .par_chunks_mut(w.grid_size())
        .zip(input.par_chunks(w.image_size().max(1)))
        .for_each(|(out, src)| pool_plane(w, kind, src, out));
}

/// Adaptive average pooling of each `in_h × in_w` plane to `out_h × out_w`:
/// output cell `(y, x)` averages input rows `⌊y·H/OH⌋ .. ⌈(y+1)·H/OH⌉` and
/// the columns found the same way.
pub fn adaptive_avg_pool(
    input: &[f32],
    (in_h, in_w): (usize, usize),
    output: &mut [f32],
    (out_h, out_w): (usize, usize),
) {
    let planes = input.len() / (in_h * in_w).max(1);
    assert_eq!(
        input.len(),
        planes * in_h * in_w,
        "adaptive pool: input length"
    );
    assert_eq!(
        output.len(),
        planes * out_h * out_w,
        "adaptive pool: output length"
    );
    if output.is_empty() {
        return;
    }
    let span = |o: usize, out: usize, len: usize| (o * len / out, ((o + 1) * len).div_ceil(out));
    let rows: Vec<(usize, usize)> = (0..out_h).map(|y| span(y, out_h, in_h)).collect();
    let cols: Vec<(usize, usize)> = (0..out_w).map(|x| span(x, out_w, in_w)).collect();
    output
        .par_chunks_mut(out_h * out_w)
        .zip(input.par_chunks(in_h * in_w))
        .for_each(|(dst, src)| {
            for (y, &(r0, r1)) in rows.iter().enumerate() {
                for (x, &(c0, c1)) in cols.iter().enumerate() {
                    let mut sum = 0.0f32;
                    for r in r0..r1 {
                        sum += src[r * in_w + c0..r * in_w + c1].iter().sum::<f32>();
                    }
                    dst[y * out_w + x] = sum / (c1 - c0) as f32 / (r1 - r0) as f32;
                }
            }
        });
}

/// Clipped window bounds along one dimension: (start, end) inside the
/// image and the extent used as the average's divisor with padding counted.
fn bounds(w: &Window, dim: usize, g: usize) -> (usize, usize, usize) {
    let start = (g * w.stride[dim]) as isize - w.pad[dim] as isize;
    let end_padded = (start + w.kernel[dim] as isize).min((w.image[dim] + w.pad[dim]) as isize);
    let padded_extent = (end_padded - start).max(0) as usize;
    // A window can lie wholly outside the image (large padding or stride);
    // its range is then empty, clamped to the image.
    let lo = (start.max(0) as usize).min(w.image[dim]);
    let hi = (end_padded.min(w.image[dim] as isize)).max(lo as isize) as usize;
    (lo, hi, padded_extent)
}

fn pool_plane(w: &Window, kind: PoolKind, src: &[f32], out: &mut [f32]) {
    match kind {
        PoolKind::Max => fold_windows(
            w,
            src,
            out,
            f32::MIN,
            |m, row| row.iter().fold(m, |m, &v| if v > m { v } else { m }),
            |m, _, _| m,
        ),
        PoolKind::Avg { count_include_pad } => fold_windows(
            w,
            src,
            out,
            0.0,
            |s, row| s + row.iter().sum::<f32>(),
            // An empty window divides 0 by 0 in MXNet too, giving NaN.
            |s, padded, valid| s / if count_include_pad { padded } else { valid } as f32,
        ),
        PoolKind::Sum => fold_windows(
            w,
            src,
            out,
            0.0,
            |s, row| s + row.iter().sum::<f32>(),
            |s, _, _| s,
        ),
        PoolKind::Lp(p) => fold_windows(
            w,
            src,
            out,
            0.0,
            |s, row| s + row.iter().map(|&v| v.powi(p as i32)).sum::<f32>(),
            |s, _, _| match p {
                1 => s,
                2 => s.sqrt(),
                3 => s.cbrt(),
                _ => s.powf(1.0 / p as f32),
            },
        ),
    }
}

/// Folds every window of one plane row by row: `fold(acc, row)` over the
/// clipped rows, then `finish(acc, padded_count, valid_count)`.
fn fold_windows(
    w: &Window,
    src: &[f32],
    out: &mut [f32],
    init: f32,
    fold: impl Fn(f32, &[f32]) -> f32,
    finish: impl Fn(f32, usize, usize) -> f32,
) {
    let [_, ih, iw] = w.image;
    let [gd, gh, gw] = w.grid;
    let wbounds: Vec<(usize, usize, usize)> = (0..gw).map(|g| bounds(w, 2, g)).collect();
    for d in 0..gd {
        let (d0, d1, dn) = bounds(w, 0, d);
        for h in 0..gh {
            let (h0, h1, hn) = bounds(w, 1, h);
            let dst = &mut out[(d * gh + h) * gw..(d * gh + h + 1) * gw];
            for (o, &(w0, w1, wn)) in dst.iter_mut().zip(&wbounds) {
                let mut acc = init;
                for z in d0..d1 {
                    for y in h0..h1 {
                        let base = (z * ih + y) * iw;
                        acc = fold(acc, &src[base + w0..base + w1]);
                    }
                }
                let valid = (d1 - d0) * (h1 - h0) * (w1 - w0);
                *o = finish(acc, dn * hn * wn, valid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_ignores_padding() {
        // 1×3×3 image, 2×2 window, stride 2, pad 1 → 2×2 grid.
        let input = [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0, -9.0];
        let w = Window::new(&[3, 3], &[2, 2], &[2, 2], &[2, 2], &[1, 1], &[1, 1]);
        let mut out = [0.0; 4];
        pool_forward(&w, PoolKind::Max, &input, &mut out);
        assert_eq!(out, [-1.0, -2.0, -4.0, -5.0]);
    }

    #[test]
    fn avg_pool_divisors() {
        // 1-D: [1 2 3 4 5], kernel 3, stride 2, pad 1 → windows [-1,2), [1,4), [3,6).
        let input = [1.0, 2.0, 3.0, 4.0, 5.0];
        let w = Window::new(&[5], &[3], &[3], &[2], &[1], &[1]);
        let mut out = [0.0; 3];
        pool_forward(
            &w,
            PoolKind::Avg {
                count_include_pad: true,
            },
            &input,
            &mut out,
        );
        assert_eq!(out, [3.0 / 3.0, 9.0 / 3.0, 9.0 / 3.0]);
        pool_forward(
            &w,
            PoolKind::Avg {
                count_include_pad: false,
            },
            &input,
            &mut out,
        );
        assert_eq!(out, [3.0 / 2.0, 9.0 / 3.0, 9.0 / 2.0]);
    }

    #[test]
    fn avg_pool_full_convention_clips_to_padded_image() {
        // [1 2 3 4], kernel 3, stride 2, no pad, "full" → 2 windows: [0,3), [2,5)→[2,4).
        let input = [1.0, 2.0, 3.0, 4.0];
        let w = Window::new(&[4], &[2], &[3], &[2], &[1], &[0]);
        let mut out = [0.0; 2];
        pool_forward(
            &w,
            PoolKind::Avg {
                count_include_pad: true,
            },
            &input,
            &mut out,
        );
        assert_eq!(out, [2.0, 3.5]);
    }

    #[test]
    fn sum_and_lp_pool() {
        let input = [1.0, -2.0, 3.0, 4.0];
        let w = Window::new(&[2, 2], &[1, 1], &[2, 2], &[1, 1], &[1, 1], &[0, 0]);
        let mut out = [0.0; 1];
        pool_forward(&w, PoolKind::Sum, &input, &mut out);
        assert_eq!(out, [6.0]);
        pool_forward(&w, PoolKind::Lp(2), &input, &mut out);
        assert!((out[0] - 30f32.sqrt()).abs() < 1e-6);
        pool_forward(&w, PoolKind::Lp(1), &input, &mut out);
        assert_eq!(out, [6.0]);
        pool_forward(&w, PoolKind::Lp(3), &input, &mut out);
        assert!((out[0] - 84f32.cbrt()).abs() < 1e-5);
    }

    #[test]
    fn adaptive_avg_pool_overlapping_cells() {
        // 1×5 → 1×3: columns [0, 2), [1, 4), [3, 5).
        let input = [1.0, 2.0, 3.0, 4.0, 5.0];
        let mut out = [0.0; 3];
        adaptive_avg_pool(&input, (1, 5), &mut out, (1, 3));
        assert_eq!(out, [1.5, 3.0, 4.5]);
        // 4×4 → 2×2 is plain 2×2 average pooling.
        let input: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut out = [0.0; 4];
        adaptive_avg_pool(&input, (4, 4), &mut out, (2, 2));
        assert_eq!(out, [2.5, 4.5, 10.5, 12.5]);
    }

    #[test]
    fn pool_3d_planes() {
        // Two planes of 2×2×2, global max and average.
        let input: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let w = Window::new(
            &[2, 2, 2],
            &[1, 1, 1],
            &[2, 2, 2],
            &[1, 1, 1],
            &[1, 1, 1],
            &[0, 0, 0],
        );
        let mut out = [0.0; 2];
        pool_forward(&w, PoolKind::Max, &input, &mut out);
        assert_eq!(out, [7.0, 15.0]);
        pool_forward(
            &w,
            PoolKind::Avg {
                count_include_pad: true,
            },
            &input,
            &mut out,
        );
        assert_eq!(out, [3.5, 11.5]);
    }
}
