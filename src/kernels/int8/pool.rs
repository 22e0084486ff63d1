//! Quantized max and average pooling over (N·C) planes of an NCHW tensor.
//! The output type equals the input type. Averages are exact integer sums
//! divided in f32 as `f32(sum · f32(1 / divisor))` and rounded half to even,
//! which is what MXNet 1.9.1's oneDNN JIT kernel computes.

use super::elem::QuantElem;
use rayon::prelude::*;

/// Geometry of a 2-D pooling window over `planes` independent planes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    pub planes: usize,
    pub input: [usize; 2],
    pub output: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Padding before each dimension; the padding after it is `pad_end`.
    pub pad: [usize; 2],
    pub pad_end: [usize; 2],
}

/// Divisor rule of average pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvgDivisor {
    /// The window's positions inside the padded input (`-pad .. input + pad_end`).
    Padded,
    /// Only the window's positions inside the unpadded input.
    Valid,
}

/// Window bounds along one dimension: (start, end) clipped to the padded
/// extent and (start, end) clipped to the input.
fn bounds(o: usize, dim: usize, g: &PoolGeometry) -> ((isize, isize), (usize, usize)) {
    let start = (o * g.stride[dim]) as isize - g.pad[dim] as isize;
    let end = start + g.kernel[dim] as isize;
    let padded_end = end.min((g.input[dim] + g.pad_end[dim]) as isize);
    // A window can lie wholly outside the input (large padding or stride);
    // its valid range is then empty, clamped to the input.
    let lo = (start.max(0) as usize).min(g.input[dim]);
    let valid = (lo, (end.max(0) as usize).clamp(lo, g.input[dim]));
    ((start, padded_end), valid)
}

/// Max pooling; padded positions never win. A window with no input position
/// (only possible with padding as large as the kernel) yields the type's lowest value.
pub fn max_pool<T: QuantElem + Ord>(g: &PoolGeometry, input: &[T], output: &mut [T]) {
    check(g, input.len(), output.len());
    let (ih, iw) = (g.input[0], g.input[1]);
    let (oh, ow) = (g.output[0], g.output[1]);
    output
        .par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(p, out)| {
            let plane = &input[p * ih * iw..(p + 1) * ih * iw];
            for y in 0..oh {
                let (_, (y0, y1)) = bounds(y, 0, g);
                for x in 0..ow {
                    let (_, (x0, x1)) = bounds(x, 1, g);
                    let mut best = T::saturate(T::LOWEST);
                    for yy in y0..y1 {
                        for &v in &plane[yy * iw + x0..yy * iw + x1] {
                            best = best.max(v);
                        }
                    }
                    out[y * ow + x] = best;
                }
            }
        });
}

/// Average pooling with the given divisor rule.
pub fn avg_pool<T: QuantElem>(
    g: &PoolGeometry,
    divisor: AvgDivisor,
    input: &[T],
    output: &mut [T],
) {
    check(g, input.len(), output.len());
    let (ih, iw) = (g.input[0], g.input[1]);
    let (oh, ow) = (g.output[0], g.output[1]);
    output
        .par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(p, out)| {
            let plane = &input[p * ih * iw..(p + 1) * ih * iw];
            for y in 0..oh {
                let ((py0, py1), (y0, y1)) = bounds(y, 0, g);
                for x in 0..ow {
                    let ((px0, px1), (x0, x1)) = bounds(x, 1, g);
                    let mut sum = 0i64;
                    for yy in y0..y1 {
                        sum += plane[yy * iw + x0..yy * iw + x1]
                            .iter()
                            .map(|v| v.to_i32() as i64)
                            .sum::<i64>();
                    }
                    let count = match divisor {
                        AvgDivisor::Padded => ((py1 - py0).max(0) * (px1 - px0).max(0)) as usize,
                        AvgDivisor::Valid => y1.saturating_sub(y0) * x1.saturating_sub(x0),
                    };
                    out[y * ow + x] = if count == 0 {
                        T::saturate(0.0)
                    } else {
                        T::saturate(sum as f32 * (1.0f32 / count as f32))
                    };
                }
            }
        });
}

/// Max pooling on channels-last data: `g.planes` images of
/// (height, width, `channels`). Same results as [`max_pool`] on the
/// channels-first tensor.
pub fn max_pool_channels_last<T: QuantElem + Ord>(
    g: &PoolGeometry,
    channels: usize,
    input: &[T],
    output: &mut [T],
) {
    check(
        g,
        input.len() / channels.max(1),
        output.len() / channels.max(1),
    );
    let (ih, iw) = (g.input[0], g.input[1]);
    let ow = g.output[1];
    if channels == 0 || output.is_empty() {
        return;
    }
    // One task per output row of one image.
    output
        .par_chunks_mut(ow * channels)
        .enumerate()
        .for_each(|(row, out)| {
            let (image, y) = (row / g.output[0], row % g.output[0]);
            let img = &input[image * ih * iw * channels..(image + 1) * ih * iw * channels];
            let (_, (y0, y1)) = bounds(y, 0, g);
            for (x, px) in out.chunks_mut(channels).enumerate() {
                let (_, (x0, x1)) = bounds(x, 1, g);
                px.fill(T::saturate(T::LOWEST));
                for yy in y0..y1 {
                    for xx in x0..x1 {
                        let at = (yy * iw + xx) * channels;
                        for (best, &v) in px.iter_mut().zip(&img[at..at + channels]) {
                            *best = (*best).max(v);
                        }
                    }
                }
            }
        });
}

/// Windows of at most this many int8 or uint8 values sum in int32 without
/// overflow (255 · 2^23 < 2^31); wider types and windows sum in int64.
const NARROW_WINDOW: usize = 1 << 23;

/// Average pooling on channels-last data, as [`max_pool_channels_last`];
/// the same results as [`avg_pool`] on the channels-first tensor.
pub fn avg_pool_channels_last<T: QuantElem>(
    g: &PoolGeometry,
    divisor: AvgDivisor,
    channels: usize,
    input: &[T],
    output: &mut [T],
) {
    check(
        g,
        input.len() / channels.max(1),
        output.len() / channels.max(1),
    );
    let (ih, iw) = (g.input[0], g.input[1]);
    let ow = g.output[1];
    if channels == 0 || output.is_empty() {
        return;
    }
    output
        .par_chunks_mut(ow * channels)
        .enumerate()
        .for_each(|(row, out)| {
            let (image, y) = (row / g.output[0], row % g.output[0]);
            let img = &input[image * ih * iw * channels..(image + 1) * ih * iw * channels];
            let ((py0, py1), (y0, y1)) = bounds(y, 0, g);
            let mut sums = vec![0i64; channels];
            let mut narrow = vec![0i32; channels];
            for (x, px) in out.chunks_mut(channels).enumerate() {
                let ((px0, px1), (x0, x1)) = bounds(x, 1, g);
                let window = y1.saturating_sub(y0) * x1.saturating_sub(x0);
                if T::HIGHEST <= 255.0 && window <= NARROW_WINDOW {
                    // int32 sums vectorize; they cannot overflow here, and
                    // their f32 conversion equals the int64 one.
                    narrow.fill(0);
                    for yy in y0..y1 {
                        for xx in x0..x1 {
                            let at = (yy * iw + xx) * channels;
                            for (sum, &v) in narrow.iter_mut().zip(&img[at..at + channels]) {
                                *sum += v.to_i32();
                            }
                        }
                    }
                    for (wide, &sum) in sums.iter_mut().zip(&narrow) {
                        *wide = sum as i64;
                    }
                } else {
                    sums.fill(0);
                    for yy in y0..y1 {
                        for xx in x0..x1 {
                            let at = (yy * iw + xx) * channels;
                            for (sum, &v) in sums.iter_mut().zip(&img[at..at + channels]) {
                                *sum += v.to_i32() as i64;
                            }
                        }
                    }
                }
                let count = match divisor {
                    AvgDivisor::Padded => ((py1 - py0).max(0) * (px1 - px0).max(0)) as usize,
                    AvgDivisor::Valid => y1.saturating_sub(y0) * x1.saturating_sub(x0),
                };
                for (o, &sum) in px.iter_mut().zip(&sums) {
                    *o = if count == 0 {
                        T::saturate(0.0)
                    } else {
                        T::saturate(sum as f32 * (1.0f32 / count as f32))
                    };
                }
            }
        });
}

fn check(g: &PoolGeometry, input: usize, output: usize) {
    assert_eq!(
        input,
        g.planes * g.input[0] * g.input[1],
        "pooling: input length does not match the geometry"
    );
    assert_eq!(
        output,
        g.planes * g.output[0] * g.output[1],
        "pooling: output length does not match the geometry"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 2],
        output: [usize; 2],
    ) -> PoolGeometry {
        PoolGeometry {
            planes: 1,
            input,
            output,
            kernel,
            stride,
            pad,
            pad_end: pad,
        }
    }

    #[test]
    fn avg_rounds_half_to_even() {
        let g = geom([2, 4], [1, 2], [1, 2], [0, 0], [2, 2]);
        let x = [1i8, 2, 3, 4, -1, -2, -3, -4];
        let mut out = [0i8; 4];
        avg_pool(&g, AvgDivisor::Padded, &x, &mut out);
        assert_eq!(out, [2, 4, -2, -4]);
        let mut out = [0i8; 4];
        max_pool(&g, &x, &mut out);
        assert_eq!(out, [2, 4, -1, -3]);
    }

    #[test]
    fn include_and_exclude_padding() {
        let x: Vec<u8> = (1..=16).collect();
        let g = geom([4, 4], [3, 3], [1, 1], [1, 1], [4, 4]);
        let mut out = [0u8; 16];
        avg_pool(&g, AvgDivisor::Padded, &x, &mut out);
        assert_eq!(&out[..4], &[2, 3, 3, 2]);
        avg_pool(&g, AvgDivisor::Valid, &x, &mut out);
        assert_eq!(&out[..4], &[4, 4, 5, 6]);
    }

    #[test]
    fn multiply_by_reciprocal_rounds_like_the_jit_kernel() {
        // -1771 / 14 = -126.5 exactly, but -1771 * f32(1/14) rounds to -126.50001.
        let g = geom([1, 14], [1, 14], [1, 14], [0, 0], [1, 1]);
        let mut x = [-127i8; 14];
        x[0] = -120;
        assert_eq!(x.iter().map(|&v| v as i32).sum::<i32>(), -1771);
        let mut out = [0i8; 1];
        avg_pool(&g, AvgDivisor::Padded, &x, &mut out);
        assert_eq!(out, [-127]);
    }

    /// Channels-last pooling of a random tensor equals channels-first
    /// pooling, transposed.
    #[test]
    fn channels_last_matches_channels_first() {
        let (n, c, h, w) = (2, 5, 7, 6);
        let x: Vec<i8> = (0..n * c * h * w)
            .map(|i| ((i * 7919 + 13) % 256) as i32 as u8 as i8)
            .collect();
        let mut g = geom([h, w], [3, 3], [2, 2], [1, 1], [4, 3]);
        g.planes = n * c;
        let mut last_in = vec![0i8; x.len()];
        for b in 0..n {
            for ch in 0..c {
                for p in 0..h * w {
                    last_in[(b * h * w + p) * c + ch] = x[(b * c + ch) * h * w + p];
                }
            }
        }
        let out_len = n * c * 12;
        for which in 0..3 {
            let mut first = vec![0i8; out_len];
            let mut last = vec![0i8; out_len];
            let mut gl = g;
            gl.planes = n;
            match which {
                0 => {
                    max_pool(&g, &x, &mut first);
                    max_pool_channels_last(&gl, c, &last_in, &mut last);
                }
                1 => {
                    avg_pool(&g, AvgDivisor::Padded, &x, &mut first);
                    avg_pool_channels_last(&gl, AvgDivisor::Padded, c, &last_in, &mut last);
                }
                _ => {
                    avg_pool(&g, AvgDivisor::Valid, &x, &mut first);
                    avg_pool_channels_last(&gl, AvgDivisor::Valid, c, &last_in, &mut last);
                }
            }
            for b in 0..n {
                for ch in 0..c {
                    for p in 0..12 {
                        assert_eq!(
                            last[(b * 12 + p) * c + ch],
                            first[(b * c + ch) * 12 + p],
                            "case {which}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn max_ignores_padding_for_negative_planes() {
        let g = geom([2, 2], [3, 3], [1, 1], [1, 1], [2, 2]);
        let mut out = [0i8; 4];
        max_pool(&g, &[-5i8, -6, -7, -8], &mut out);
        assert_eq!(out, [-5, -5, -5, -5]);
    }
}
