//! Data movement for any element type: concatenation and splitting of
//! row blocks, and strided gathers (slicing with steps).

use rayon::prelude::*;

/// Below this many output bytes or elements, copies stay on the calling thread.
const PARALLEL_MIN: usize = 1 << 16;

/// Concatenates `outer` rows: output row `r` is the row-`r` block of each
/// input in turn, where input `i` has blocks of `blocks[i]` elements.
pub fn concat<T: Copy + Send + Sync>(
    inputs: &[&[T]],
    blocks: &[usize],
    outer: usize,
    output: &mut [T],
) {
    assert_eq!(inputs.len(), blocks.len(), "concat: input count");
    let row: usize = blocks.iter().sum();
    assert_eq!(output.len(), outer * row, "concat: output length");
    for (x, &b) in inputs.iter().zip(blocks) {
        assert_eq!(x.len(), outer * b, "concat: input length");
    }
    if row == 0 {
        return;
    }
    let fill = |(r, dst): (usize, &mut [T])| {
        let mut at = 0;
        for (x, &b) in inputs.iter().zip(blocks) {
            dst[at..at + b].copy_from_slice(&x[r * b..(r + 1) * b]);
            at += b;
        }
    };
    if output.len() < PARALLEL_MIN {
        output.chunks_mut(row).enumerate().for_each(fill);
    } else {
        output.par_chunks_mut(row).enumerate().for_each(fill);
    }
}

/// Copies the block `[offset, offset + len)` of each of the `outer` rows of
/// `input` (rows of `row` elements) into consecutive rows of `output`.
pub fn take_blocks<T: Copy + Send + Sync>(
    input: &[T],
    row: usize,
    offset: usize,
    len: usize,
    output: &mut [T],
) {
    assert!(offset + len <= row, "take_blocks: block past the row end");
    let outer = input.len().checked_div(row).unwrap_or(0);
    assert_eq!(input.len(), outer * row, "take_blocks: input length");
    assert_eq!(output.len(), outer * len, "take_blocks: output length");
    if len == 0 {
        return;
    }
    let fill = |(r, dst): (usize, &mut [T])| {
        dst.copy_from_slice(&input[r * row + offset..r * row + offset + len])
    };
    if output.len() < PARALLEL_MIN {
        output.chunks_mut(len).enumerate().for_each(fill);
    } else {
        output.par_chunks_mut(len).enumerate().for_each(fill);
    }
}

/// Writes `output[i_0, …, i_k] = input[base + Σ i_d · strides[d]]` for every
/// index of `out_shape`; strides may be negative (slicing with negative steps).
///
/// # Panics
/// If an addressed element falls outside `input`.
pub fn gather_strided<T: Copy + Send + Sync>(
    input: &[T],
    base: usize,
    strides: &[isize],
    out_shape: &[usize],
    output: &mut [T],
) {
    assert_eq!(strides.len(), out_shape.len(), "gather_strided: rank");
    let numel: usize = out_shape.iter().product();
    assert_eq!(output.len(), numel, "gather_strided: output length");
    if numel == 0 {
        return;
    }
    let rank = out_shape.len();
    let (inner, inner_stride) = if rank == 0 {
        (1, 0)
    } else {
        (out_shape[rank - 1], strides[rank - 1])
    };
    let outer_dims = &out_shape[..rank.saturating_sub(1)];
    let row = |(r, dst): (usize, &mut [T])| {
        let (mut offset, mut rest) = (base as isize, r);
        for k in (0..outer_dims.len()).rev() {
            offset += (rest % outer_dims[k]) as isize * strides[k];
            rest /= outer_dims[k];
        }
        if inner_stride == 1 {
            let start = offset as usize;
            dst.copy_from_slice(&input[start..start + inner]);
        } else {
            for (j, d) in dst.iter_mut().enumerate() {
                *d = input[(offset + j as isize * inner_stride) as usize];
            }
        }
    };
    if numel < PARALLEL_MIN {
        output.chunks_mut(inner).enumerate().for_each(row);
    } else {
        output.par_chunks_mut(inner).enumerate().for_each(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_rows() {
        let a = [1, 2, 3, 4];
        let b = [10, 20, 30, 40, 50, 60];
        let mut out = [0; 10];
        concat(&[&a, &b], &[2, 3], 2, &mut out);
        assert_eq!(out, [1, 2, 10, 20, 30, 3, 4, 40, 50, 60]);
    }

    #[test]
    fn take_middle_blocks() {
        let x: Vec<u8> = (0..12).collect();
        let mut out = [0u8; 4];
        take_blocks(&x, 6, 2, 2, &mut out);
        assert_eq!(out, [2, 3, 8, 9]);
    }

    #[test]
    fn gather_negative_steps() {
        // 3×4 matrix, rows reversed and every second column from the last.
        let x: Vec<i32> = (0..12).collect();
        let mut out = [0; 6];
        gather_strided(&x, 11, &[-4, -2], &[3, 2], &mut out);
        assert_eq!(out, [11, 9, 7, 5, 3, 1]);
    }
}
