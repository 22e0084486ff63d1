//! Elementwise maps over f32 slices, numpy-style broadcasting of binary
//! functions, and the scalar activation functions MXNet defines.

use rayon::prelude::*;

/// Below this many elements a map runs on the calling thread only.
const PARALLEL_MIN: usize = 1 << 15;
/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

/// `output[i] = f(input[i])`.
pub fn map<F: Fn(f32) -> f32 + Sync>(input: &[f32], output: &mut [f32], f: F) {
    assert_eq!(input.len(), output.len(), "map: length mismatch");
    let run = |(src, dst): (&[f32], &mut [f32])| {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = f(s);
        }
    };
    if input.len() < PARALLEL_MIN {
        run((input, output));
    } else {
        input
            .par_chunks(CHUNK)
            .zip(output.par_chunks_mut(CHUNK))
            .for_each(run);
    }
}

/// `data[i] = f(data[i])`.
pub fn map_inplace<F: Fn(f32) -> f32 + Sync>(data: &mut [f32], f: F) {
    let run = |chunk: &mut [f32]| {
        for v in chunk {
            *v = f(*v);
        }
    };
    if data.len() < PARALLEL_MIN {
        run(data);
    } else {
        data.par_chunks_mut(CHUNK).for_each(run);
    }
}

/// `output[i] = f(i, input[i])`, for maps that depend on the position (per-channel parameters).
pub fn map_indexed<F: Fn(usize, f32) -> f32 + Sync>(input: &[f32], output: &mut [f32], f: F) {
    assert_eq!(input.len(), output.len(), "map_indexed: length mismatch");
    let run = |(chunk, (src, dst)): (usize, (&[f32], &mut [f32]))| {
        let base = chunk * CHUNK;
        for (i, (d, &s)) in dst.iter_mut().zip(src).enumerate() {
            *d = f(base + i, s);
        }
    };
    if input.len() < PARALLEL_MIN {
        input
            .chunks(CHUNK)
            .zip(output.chunks_mut(CHUNK))
            .enumerate()
            .for_each(run);
    } else {
        input
            .par_chunks(CHUNK)
            .zip(output.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(run);
    }
}

/// `output[i] = f(c, input[i])` where `c` is the channel of element `i` in
/// an array viewed as `outer × channels × inner`.
pub fn map_channels<F: Fn(usize, f32) -> f32 + Sync>(
    input: &[f32],
    output: &mut [f32],
    channels: usize,
    inner: usize,
    f: F,
) {
    map_planes(input, output, channels, inner, |c, src, dst| {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = f(c, s);
        }
    });
}

/// Calls `f(c, src, dst)` for each plane of `inner` elements of an array
/// viewed as `outer × channels × inner`, where `c` is the plane's channel.
/// Per-channel maps written this way keep their parameters in registers.
pub fn map_planes<F: Fn(usize, &[f32], &mut [f32]) + Sync>(
    input: &[f32],
    output: &mut [f32],
    channels: usize,
    inner: usize,
    f: F,
) {
    assert_eq!(input.len(), output.len(), "map_planes: length mismatch");
    assert!(
        channels > 0 && inner > 0 && input.len().is_multiple_of(channels * inner),
        "map_planes: shape"
    );
    let run = |(plane, (src, dst)): (usize, (&[f32], &mut [f32]))| f(plane % channels, src, dst);
    if input.len() < PARALLEL_MIN {
        input
            .chunks(inner)
            .zip(output.chunks_mut(inner))
            .enumerate()
            .for_each(run);
    } else {
        let min_planes = (CHUNK / inner).max(1);
        input
            .par_chunks(inner)
            .zip(output.par_chunks_mut(inner))
            .enumerate()
            .with_min_len(min_planes)
            .for_each(run);
    }
}

/// `output[i] = f(a[i], b[i])` for equal-length inputs.
pub fn zip<F: Fn(f32, f32) -> f32 + Sync>(a: &[f32], b: &[f32], output: &mut [f32], f: F) {
    assert!(
        a.len() == output.len() && b.len() == output.len(),
        "zip: length mismatch"
    );
    let run = |((x, y), dst): ((&[f32], &[f32]), &mut [f32])| {
        for ((d, &p), &q) in dst.iter_mut().zip(x).zip(y) {
            *d = f(p, q);
        }
    };
    if a.len() < PARALLEL_MIN {
        run(((a, b), output));
    } else {
        a.par_chunks(CHUNK)
            .zip(b.par_chunks(CHUNK))
            .zip(output.par_chunks_mut(CHUNK))
            .for_each(run);
    }
}

/// Output shape of numpy broadcasting, or `None` when a pair of dimensions
/// differs and neither is 1.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        if i + s.len() >= rank {
            s[i + s.len() - rank]
        } else {
            1
        }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Strides of `shape` (row-major) aligned to `out` from the right, with 0
/// for broadcast dimensions.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; out.len()];
    let mut stride = 1;
    for i in (0..shape.len()).rev() {
        let o = i + out.len() - shape.len();
        strides[o] = if shape[i] == 1 && out[o] != 1 {
            0
        } else {
            stride
        };
        stride *= shape[i];
    }
    strides
}

/// Merges adjacent dimensions that both operands traverse contiguously, so
/// the inner loop runs as long as possible.
fn collapse(out: &[usize], sa: &[usize], sb: &[usize]) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (mut dims, mut da, mut db): (Vec<usize>, Vec<usize>, Vec<usize>) = (vec![], vec![], vec![]);
    for i in 0..out.len() {
        if out[i] == 1 {
            continue;
        }
        if let (Some(&last), Some(&la), Some(&lb)) = (dims.last(), da.last(), db.last()) {
            if la == sa[i] * out[i] && lb == sb[i] * out[i] {
                *dims.last_mut().unwrap() = last * out[i];
                *da.last_mut().unwrap() = sa[i];
                *db.last_mut().unwrap() = sb[i];
                continue;
            }
        }
        dims.push(out[i]);
        da.push(sa[i]);
        db.push(sb[i]);
    }
    if dims.is_empty() {
        (vec![1], vec![0], vec![0])
    } else {
        (dims, da, db)
    }
}

/// `output = f(a, b)` with numpy broadcasting of `a_shape` and `b_shape` to `out_shape`.
pub fn broadcast<F: Fn(f32, f32) -> f32 + Sync>(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    output: &mut [f32],
    out_shape: &[usize],
    f: F,
) {
    let numel: usize = out_shape.iter().product();
    assert_eq!(output.len(), numel, "broadcast: output length");
    assert_eq!(
        a.len(),
        a_shape.iter().product::<usize>(),
        "broadcast: a length"
    );
    assert_eq!(
        b.len(),
        b_shape.iter().product::<usize>(),
        "broadcast: b length"
    );
    assert!(
        a_shape.len() <= out_shape.len(),
        "broadcast: a has a higher rank than the output"
    );
    assert!(
        b_shape.len() <= out_shape.len(),
        "broadcast: b has a higher rank than the output"
    );
    if numel == 0 {
        return;
    }
    if a_shape == out_shape && b_shape == out_shape {
        return zip(a, b, output, f);
    }
    let (dims, sa, sb) = collapse(
        out_shape,
        &broadcast_strides(a_shape, out_shape),
        &broadcast_strides(b_shape, out_shape),
    );
    let inner = *dims.last().unwrap();
    let (ia, ib) = (*sa.last().unwrap(), *sb.last().unwrap());
    let outer = &dims[..dims.len() - 1];
    let row = |(r, dst): (usize, &mut [f32])| {
        // Unravel the row index over the outer dimensions.
        let (mut oa, mut ob, mut rest) = (0, 0, r);
        for k in (0..outer.len()).rev() {
            let idx = rest % outer[k];
            rest /= outer[k];
            oa += idx * sa[k];
            ob += idx * sb[k];
        }
        match (ia, ib) {
            (1, 1) => {
                for ((d, &x), &y) in dst
                    .iter_mut()
                    .zip(&a[oa..oa + inner])
                    .zip(&b[ob..ob + inner])
                {
                    *d = f(x, y);
                }
            }
            (1, 0) => {
                let y = b[ob];
                for (d, &x) in dst.iter_mut().zip(&a[oa..oa + inner]) {
                    *d = f(x, y);
                }
            }
            (0, 1) => {
                let x = a[oa];
                for (d, &y) in dst.iter_mut().zip(&b[ob..ob + inner]) {
                    *d = f(x, y);
                }
            }
            _ => {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = f(a[oa + j * ia], b[ob + j * ib]);
                }
            }
        }
    };
    if numel < PARALLEL_MIN {
        output.chunks_mut(inner).enumerate().for_each(row);
    } else {
        let min_rows = (CHUNK / inner).max(1);
        output
            .par_chunks_mut(inner)
            .enumerate()
            .with_min_len(min_rows)
            .for_each(row);
    }
}

/// Scalar activation functions with MXNet's definitions.
pub mod act {
    /// MXNet's `clip`: `hi` above `hi`, else `lo` below `lo`, else `x` (NaN
    /// stays NaN). Written as selects so loops over it vectorize.
    pub fn clip(x: f32, lo: f32, hi: f32) -> f32 {
        let below = if x < lo { lo } else { x };
        if x > hi {
            hi
        } else {
            below
        }
    }

    /// `ln(1 + e^x)`, returning `x` itself above 20 as MXNet does to avoid overflow.
    pub fn softrelu(x: f32) -> f32 {
        if x > 20.0 {
            x
        } else {
            x.exp().ln_1p()
        }
    }

    pub fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + (-x).exp())
    }

    pub fn softsign(x: f32) -> f32 {
        x / (1.0 + x.abs())
    }

    pub fn relu(x: f32) -> f32 {
        if x > 0.0 {
            x
        } else {
            0.0
        }
    }

    /// ELU with slope `alpha` below zero.
    pub fn elu(x: f32, alpha: f32) -> f32 {
        if x > 0.0 {
            x
        } else {
            alpha * x.exp_m1()
        }
    }

    /// SELU constants from Klambauer et al., "Self-Normalizing Neural Networks" (2017).
    pub const SELU_ALPHA: f32 = 1.673_263_2;
    pub const SELU_LAMBDA: f32 = 1.050_701;

    pub fn selu(x: f32) -> f32 {
        SELU_LAMBDA * if x > 0.0 { x } else { SELU_ALPHA * x.exp_m1() }
    }

    /// GELU in its exact form `x/2 · (1 + erf(x/√2))`.
    pub fn gelu(x: f32) -> f32 {
        0.5 * x * (1.0 + libm::erff(x / std::f32::consts::SQRT_2))
    }

    pub fn leaky(x: f32, slope: f32) -> f32 {
        if x > 0.0 {
            x
        } else {
            slope * x
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_broadcast(
        a: &[f32],
        sa: &[usize],
        b: &[f32],
        sb: &[usize],
        out: &[usize],
    ) -> Vec<f32> {
        let n: usize = out.iter().product();
        let index = |shape: &[usize], coords: &[usize]| {
            let off = out.len() - shape.len();
            shape.iter().enumerate().fold(0, |acc, (i, &d)| {
                acc * d + if d == 1 { 0 } else { coords[i + off] }
            })
        };
        (0..n)
            .map(|flat| {
                let mut coords = vec![0; out.len()];
                let mut rest = flat;
                for k in (0..out.len()).rev() {
                    coords[k] = rest % out[k];
                    rest /= out[k];
                }
                a[index(sa, &coords)] * 10.0 + b[index(sb, &coords)]
            })
            .collect()
    }

    #[test]
    fn broadcast_matches_naive() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[2, 3, 4], &[2, 3, 4]),
            (&[2, 3, 4], &[4]),
            (&[2, 3, 4], &[3, 1]),
            (&[2, 1, 4], &[1, 3, 1]),
            (&[1], &[5, 7]),
            (&[5, 1, 1, 2], &[1, 3, 4, 1]),
            (&[], &[3]),
            (&[300, 1], &[1, 257]),
        ];
        for &(sa, sb) in cases {
            let out = broadcast_shape(sa, sb).unwrap();
            let a: Vec<f32> = (0..sa.iter().product::<usize>())
                .map(|v| v as f32)
                .collect();
            let b: Vec<f32> = (0..sb.iter().product::<usize>())
                .map(|v| v as f32 * 0.5)
                .collect();
            let mut got = vec![0.0; out.iter().product()];
            broadcast(&a, sa, &b, sb, &mut got, &out, |x, y| x * 10.0 + y);
            assert_eq!(
                got,
                naive_broadcast(&a, sa, &b, sb, &out),
                "{sa:?} with {sb:?}"
            );
        }
    }

    #[test]
    fn broadcast_shape_rejects_mismatch() {
        assert_eq!(broadcast_shape(&[2, 3], &[4, 3]), None);
        assert_eq!(broadcast_shape(&[2, 1], &[4]), Some(vec![2, 4]));
    }

    #[test]
    fn activations_match_definitions() {
        assert_eq!(act::softrelu(30.0), 30.0);
        assert!((act::softrelu(0.0) - 2f32.ln()).abs() < 1e-7);
        assert!((act::gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((act::gelu(-2.0) - -0.045_500_26).abs() < 1e-6);
        assert!((act::selu(-1.0) - -1.111_330_7).abs() < 1e-6);
        assert_eq!(act::softsign(-3.0), -0.75);
        assert_eq!(act::leaky(-2.0, 0.25), -0.5);
    }

    #[test]
    fn map_indexed_sees_positions_past_one_chunk() {
        let n = PARALLEL_MIN + 17;
        let input = vec![1.0f32; n];
        let mut out = vec![0.0; n];
        map_indexed(&input, &mut out, |i, x| x + i as f32);
        assert_eq!(out[n - 1], n as f32);
        assert_eq!(out[CHUNK + 1], CHUNK as f32 + 2.0);
    }
}
