//! Per-lane statistics and normalisation for arrays viewed as
//! `(outer, axis, inner)`: lane `o·inner + i` is the `axis` elements
//! `(o, 0..axis, i)`. Also local response normalisation across channels.

use rayon::prelude::*;

/// Mean and biased variance of every lane, by two passes in f32.
pub fn lane_moments(
    input: &[f32],
    (outer, axis, inner): (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(
        input.len(),
        outer * axis * inner,
        "lane_moments: input length"
    );
    let lanes = outer * inner;
    let stats: Vec<(f32, f32)> = (0..lanes)
        .into_par_iter()
        .map(|lane| {
            let (o, i) = (lane / inner, lane % inner);
            let at = |k: usize| input[(o * axis + k) * inner + i];
            let mean = (0..axis).map(at).sum::<f32>() / axis as f32;
            let var = (0..axis)
                .map(|k| (at(k) - mean) * (at(k) - mean))
                .sum::<f32>()
                / axis as f32;
            (mean, var)
        })
        .collect();
    stats.into_iter().unzip()
}

/// Sum of squares of every lane.
pub fn lane_sum_squares(input: &[f32], (outer, axis, inner): (usize, usize, usize)) -> Vec<f32> {
    assert_eq!(
        input.len(),
        outer * axis * inner,
        "lane_sum_squares: input length"
    );
    (0..outer * inner)
        .into_par_iter()
        .map(|lane| {
            let (o, i) = (lane / inner, lane % inner);
            (0..axis)
                .map(|k| input[(o * axis + k) * inner + i])
                .map(|v| v * v)
                .sum()
        })
        .collect()
}

/// `output = (input − mean[lane]) · inv_std[lane] · scale + shift`, where
/// `(scale, shift) = affine(o, k)` for the element at `(o, k, i)`.
pub fn normalize_lanes<F>(
    input: &[f32],
    output: &mut [f32],
    (outer, axis, inner): (usize, usize, usize),
    mean: &[f32],
    inv_std: &[f32],
    affine: F,
) where
    F: Fn(usize, usize) -> (f32, f32) + Sync,
{
    assert_eq!(
        input.len(),
        outer * axis * inner,
        "normalize_lanes: input length"
    );
    assert_eq!(output.len(), input.len(), "normalize_lanes: output length");
    assert!(
        mean.len() == outer * inner && inv_std.len() == outer * inner,
        "normalize_lanes: lane count"
    );
    if input.is_empty() {
        return;
    }
    output
        .par_chunks_mut(axis * inner)
        .zip(input.par_chunks(axis * inner))
        .enumerate()
        .for_each(|(o, (dst, src))| {
            for k in 0..axis {
                let (scale, shift) = affine(o, k);
                let row = k * inner..(k + 1) * inner;
                for ((d, &x), i) in dst[row.clone()].iter_mut().zip(&src[row]).zip(0..inner) {
                    let lane = o * inner + i;
                    *d = (x - mean[lane]) * inv_std[lane] * scale + shift;
                }
            }
        });
}

/// Local response normalisation across channels of `(batch, channels, plane)`:
/// `y = x · (knorm + alpha/size · Σ x²)^(−beta)`, the sum running over the
/// `size` channels centred on the output channel (clipped at the ends).
/// Writes the bracketed denominator base into `scale`.
#[allow(clippy::too_many_arguments)]
pub fn lrn(
    input: &[f32],
    output: &mut [f32],
    scale: &mut [f32],
    (batch, channels, plane): (usize, usize, usize),
    size: usize,
    alpha: f32,
    beta: f32,
    knorm: f32,
) {
    let image = channels * plane;
    assert_eq!(input.len(), batch * image, "lrn: input length");
    assert!(
        output.len() == input.len() && scale.len() == input.len(),
        "lrn: output length"
    );
    if input.is_empty() {
        return;
    }
    let half = size / 2;
    let coeff = alpha / size as f32;
    output
        .par_chunks_mut(image)
        .zip(scale.par_chunks_mut(image))
        .zip(input.par_chunks(image))
        .for_each(|((out, sc), x)| {
            for c in 0..channels {
                let lo = c.saturating_sub(half);
                let hi = (c + half + 1).min(channels);
                let dst = &mut sc[c * plane..(c + 1) * plane];
                dst.fill(0.0);
                for cc in lo..hi {
                    for (d, &v) in dst.iter_mut().zip(&x[cc * plane..(cc + 1) * plane]) {
                        *d += v * v;
                    }
                }
                for ((o, s), &v) in out[c * plane..(c + 1) * plane]
                    .iter_mut()
                    .zip(dst.iter_mut())
                    .zip(&x[c * plane..])
                {
                    *s = knorm + coeff * *s;
                    *o = v * s.powf(-beta);
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_of_strided_lanes() {
        // (1, 3, 2): lanes are columns [0, 2, 4] and [1, 3, 5] scaled.
        let input = [0.0, 1.0, 2.0, 1.0, 4.0, 1.0];
        let (mean, var) = lane_moments(&input, (1, 3, 2));
        assert_eq!(mean, vec![2.0, 1.0]);
        assert!((var[0] - 8.0 / 3.0).abs() < 1e-6);
        assert_eq!(var[1], 0.0);
        assert_eq!(lane_sum_squares(&input, (1, 3, 2)), vec![20.0, 3.0]);
    }

    #[test]
    fn normalize_applies_affine_per_position() {
        let input = [1.0, 3.0, 5.0, 7.0];
        let mut out = [0.0; 4];
        // Two lanes of length 2 (outer 2, inner 1), mean 2 and 6, inv_std 1.
        normalize_lanes(
            &input,
            &mut out,
            (2, 2, 1),
            &[2.0, 6.0],
            &[1.0, 1.0],
            |_, k| (k as f32 + 1.0, 10.0),
        );
        assert_eq!(out, [9.0, 12.0, 9.0, 12.0]);
    }

    #[test]
    fn lrn_by_hand() {
        // One pixel, channels 1..5, size 3, alpha 0.5, beta 0.75, knorm 2.
        let input = [1.0, 2.0, 3.0, 4.0, 5.0];
        let mut out = [0.0; 5];
        let mut scale = [0.0; 5];
        lrn(&input, &mut out, &mut scale, (1, 5, 1), 3, 0.5, 0.75, 2.0);
        let want = [
            0.457_906_45,
            0.665_906_8,
            0.709_817_7,
            0.694_032_3,
            0.975_835_3,
        ];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-6, "{out:?}");
        }
    }
}
