//! Softmax and log-softmax along one axis of an array viewed as
//! `(outer, axis, inner)`.

use rayon::prelude::*;

/// Applies `softmax(x / temperature)` (or its logarithm) along the middle
/// axis of `input` viewed as `outer × axis × inner`. `length`, when given,
/// holds one valid length per `(outer, inner)` lane; positions at or past it
/// get 0 in the output.
pub fn softmax(
    input: &[f32],
    output: &mut [f32],
    dims: (usize, usize, usize),
    temperature: f32,
    log: bool,
    length: Option<&[usize]>,
) {
    let (outer, axis, inner) = dims;
    assert_eq!(input.len(), outer * axis * inner, "softmax: input length");
    assert_eq!(output.len(), input.len(), "softmax: output length");
    if let Some(l) = length {
        assert_eq!(l.len(), outer * inner, "softmax: length count");
    }
    if input.is_empty() {
        return;
    }
    let block = axis * inner;
    output
        .par_chunks_mut(block)
        .zip(input.par_chunks(block))
        .enumerate()
        .for_each(|(o, (dst, src))| {
            if inner == 1 {
                let valid = length.map_or(axis, |l| l[o].min(axis));
                lane(&src[..valid], &mut dst[..valid], temperature, log);
                dst[valid..].fill(0.0);
            } else {
                let mut buf_in = vec![0.0f32; axis];
                let mut buf_out = vec![0.0f32; axis];
                for i in 0..inner {
                    for (k, b) in buf_in.iter_mut().enumerate() {
                        *b = src[k * inner + i];
                    }
                    let valid = length.map_or(axis, |l| l[o * inner + i].min(axis));
                    lane(&buf_in[..valid], &mut buf_out[..valid], temperature, log);
                    buf_out[valid..].fill(0.0);
                    for (k, b) in buf_out.iter().enumerate() {
                        dst[k * inner + i] = *b;
                    }
                }
            }
        });
}

fn lane(src: &[f32], dst: &mut [f32], temperature: f32, log: bool) {
    if src.is_empty() {
        return;
    }
    let max = src.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    if log {
        for &x in src {
            sum += ((x - max) / temperature).exp();
        }
        let log_sum = sum.ln();
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = (x - max) / temperature - log_sum;
        }
    } else {
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = ((x - max) / temperature).exp();
            sum += *d;
        }
        let scale = 1.0 / sum;
        for d in dst.iter_mut() {
            *d *= scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], t: f32) -> Vec<f32> {
        let e: Vec<f64> = x.iter().map(|&v| (v as f64 / t as f64).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| (v / s) as f32).collect()
    }

    #[test]
    fn softmax_middle_axis() {
        // (2, 3, 2): softmax over the 3.
        let input: Vec<f32> = (0..12).map(|v| (v as f32) * 0.3 - 1.0).collect();
        let mut out = vec![0.0; 12];
        softmax(&input, &mut out, (2, 3, 2), 2.0, false, None);
        for o in 0..2 {
            for i in 0..2 {
                let lane: Vec<f32> = (0..3).map(|k| input[o * 6 + k * 2 + i]).collect();
                let want = naive(&lane, 2.0);
                for k in 0..3 {
                    assert!((out[o * 6 + k * 2 + i] - want[k]).abs() < 1e-6);
                }
            }
        }
    }

    #[test]
    fn log_softmax_last_axis_with_length() {
        let input = [1.0, 2.0, 3.0, 100.0, 0.5, -0.5, 7.0, 7.0];
        let mut out = [9.0; 8];
        softmax(&input, &mut out, (2, 4, 1), 1.0, true, Some(&[3, 2]));
        let want0 = naive(&input[..3], 1.0);
        let want1 = naive(&input[4..6], 1.0);
        for k in 0..3 {
            assert!((out[k] - want0[k].ln()).abs() < 1e-6);
        }
        assert_eq!(out[3], 0.0);
        for k in 0..2 {
            assert!((out[4 + k] - want1[k].ln()).abs() < 1e-6);
        }
        assert_eq!(&out[6..], &[0.0, 0.0]);
    }

    #[test]
    fn softmax_is_stable_for_large_inputs() {
        let input = [1000.0, 1000.0];
        let mut out = [0.0; 2];
        softmax(&input, &mut out, (1, 2, 1), 1.0, false, None);
        assert_eq!(out, [0.5, 0.5]);
    }
}
