//! Axis permutation of dense row-major arrays of any plain element type.

use rayon::prelude::*;

/// Writes `output` with shape `shape[axes[0]], shape[axes[1]], …` so that
/// `output[i_0, …, i_k] = input[j]` where `j` has coordinate `i_m` on axis `axes[m]`.
pub fn transpose<T: Copy + Send + Sync>(
    input: &[T],
    shape: &[usize],
    axes: &[usize],
    output: &mut [T],
) {
    assert_eq!(axes.len(), shape.len(), "transpose: axes rank");
    let numel: usize = shape.iter().product();
    assert!(
        input.len() == numel && output.len() == numel,
        "transpose: length"
    );
    if numel == 0 {
        return;
    }
    let mut in_strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * shape[i + 1];
    }
    // Input stride of each output dimension, dropping size-1 dimensions and
    // merging neighbours that stay contiguous.
    let mut dims: Vec<usize> = vec![];
    let mut strides: Vec<usize> = vec![];
    for &a in axes {
        if shape[a] == 1 {
            continue;
        }
        match (dims.last_mut(), strides.last_mut()) {
            (Some(d), Some(s)) if *s == in_strides[a] * shape[a] => {
                *d *= shape[a];
                *s = in_strides[a];
            }
            _ => {
                dims.push(shape[a]);
                strides.push(in_strides[a]);
            }
        }
    }
    if dims.is_empty() {
        output.copy_from_slice(input);
        return;
    }
    let inner = *dims.last().unwrap();
    let inner_stride = *strides.last().unwrap();
    let outer_dims = &dims[..dims.len() - 1];
    let outer_strides = &strides[..strides.len() - 1];
    let row = |(r, dst): (usize, &mut [T])| {
        let (mut offset, mut rest) = (0, r);
        for k in (0..outer_dims.len()).rev() {
            offset += (rest % outer_dims[k]) * outer_strides[k];
            rest /= outer_dims[k];
        }
        if inner_stride == 1 {
            dst.copy_from_slice(&input[offset..offset + inner]);
        } else {
            for (j, d) in dst.iter_mut().enumerate() {
                *d = input[offset + j * inner_stride];
            }
        }
    };
    if numel < 1 << 15 {
        output.chunks_mut(inner).enumerate().for_each(row);
    } else {
        let min_rows = ((1 << 14) / inner).max(1);
        output
            .par_chunks_mut(inner)
            .enumerate()
            .with_min_len(min_rows)
            .for_each(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(input: &[u32], shape: &[usize], axes: &[usize]) -> Vec<u32> {
        let out_shape: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
        let n: usize = shape.iter().product();
        (0..n)
            .map(|flat| {
                let mut coords = vec![0; shape.len()];
                let mut rest = flat;
                for k in (0..shape.len()).rev() {
                    coords[k] = rest % out_shape[k];
                    rest /= out_shape[k];
                }
                let mut src = vec![0; shape.len()];
                for (m, &a) in axes.iter().enumerate() {
                    src[a] = coords[m];
                }
                src.iter().zip(shape).fold(0, |acc, (&c, &d)| acc * d + c) as u32
            })
            .map(|i| input[i as usize])
            .collect()
    }

    #[test]
    fn transpose_matches_naive() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[2, 3], &[1, 0]),
            (&[2, 3, 4], &[2, 0, 1]),
            (&[2, 3, 4], &[0, 2, 1]),
            (&[2, 1, 4, 3], &[3, 2, 1, 0]),
            (&[5, 6, 7, 2], &[0, 1, 2, 3]),
            (&[1, 1, 3], &[2, 1, 0]),
            (&[4, 5, 6], &[1, 2, 0]),
        ];
        for &(shape, axes) in cases {
            let n: usize = shape.iter().product();
            let input: Vec<u32> = (0..n as u32).map(|v| v * 7 + 1).collect();
            let mut got = vec![0u32; n];
            transpose(&input, shape, axes, &mut got);
            assert_eq!(got, naive(&input, shape, axes), "{shape:?} by {axes:?}");
        }
    }
}
