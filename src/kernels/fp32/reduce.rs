//! Reductions over any set of axes of a dense row-major f32 array.

use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reducer {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    /// Sum of absolute values.
    L1,
    /// Square root of the sum of squares.
    L2,
}

/// Reduces `input` of `shape` over the axes flagged in `reduced`, writing
/// one value per combination of the kept axes (in their order) to `output`.
/// Empty reductions give 0 for sums and means of nothing give NaN, as 0/0;
/// max and min of nothing give -inf and +inf.
pub fn reduce(
    input: &[f32],
    shape: &[usize],
    reduced: &[bool],
    reducer: Reducer,
    output: &mut [f32],
) {
    assert_eq!(shape.len(), reduced.len(), "reduce: rank");
    assert_eq!(
        input.len(),
        shape.iter().product::<usize>(),
        "reduce: input length"
    );
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let kept: Vec<(usize, usize)> = (0..shape.len())
        .filter(|&i| !reduced[i])
        .map(|i| (shape[i], strides[i]))
        .collect();
    let gone: Vec<(usize, usize)> = (0..shape.len())
        .filter(|&i| reduced[i] && shape[i] != 1)
        .map(|i| (shape[i], strides[i]))
        .collect();
    assert_eq!(
        output.len(),
        kept.iter().map(|k| k.0).product::<usize>(),
        "reduce: output length"
    );
    let count: usize = gone.iter().map(|g| g.0).product();
    let (inner_len, inner_stride) = gone.last().copied().unwrap_or((1, 1));
    let outer_gone = &gone[..gone.len().saturating_sub(1)];
    let outer_count: usize = outer_gone.iter().map(|g| g.0).product();

    let one = |(o, dst): (usize, &mut f32)| {
        let (mut base, mut rest) = (0, o);
        for &(d, s) in kept.iter().rev() {
            base += (rest % d) * s;
            rest /= d;
        }
        let mut acc = match reducer {
            Reducer::Sum | Reducer::Mean | Reducer::L1 | Reducer::L2 => 0.0f32,
            Reducer::Prod => 1.0,
            Reducer::Max => f32::NEG_INFINITY,
            Reducer::Min => f32::INFINITY,
        };
        for r in 0..outer_count.max(usize::from(gone.is_empty())) {
            let (mut offset, mut rest) = (base, r);
            for &(d, s) in outer_gone.iter().rev() {
                offset += (rest % d) * s;
                rest /= d;
            }
            let values = (0..inner_len).map(|j| input[offset + j * inner_stride]);
            acc = match reducer {
                Reducer::Sum | Reducer::Mean => values.fold(acc, |a, v| a + v),
                Reducer::Prod => values.fold(acc, |a, v| a * v),
                Reducer::L1 => values.fold(acc, |a, v| a + v.abs()),
                Reducer::L2 => values.fold(acc, |a, v| a + v * v),
                Reducer::Max => values.fold(acc, |a, v| if v > a || v.is_nan() { v } else { a }),
                Reducer::Min => values.fold(acc, |a, v| if v < a || v.is_nan() { v } else { a }),
            };
        }
        *dst = match reducer {
            Reducer::Mean => acc / count as f32,
            Reducer::L2 => acc.sqrt(),
            _ => acc,
        };
    };
    if input.len() < 1 << 15 {
        output.iter_mut().enumerate().for_each(one);
    } else {
        output.par_iter_mut().enumerate().for_each(one);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_axes_of_3d() {
        // shape (2, 3, 4), values 0..24.
        let input: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let shape = [2, 3, 4];
        let mut out = vec![0.0; 4];
        reduce(&input, &shape, &[true, true, false], Reducer::Sum, &mut out);
        assert_eq!(out, [60.0, 66.0, 72.0, 78.0]);
        let mut out = vec![0.0; 3];
        reduce(&input, &shape, &[true, false, true], Reducer::Max, &mut out);
        assert_eq!(out, [15.0, 19.0, 23.0]);
        let mut out = vec![0.0; 2];
        reduce(
            &input,
            &shape,
            &[false, true, true],
            Reducer::Mean,
            &mut out,
        );
        assert_eq!(out, [5.5, 17.5]);
        let mut out = vec![0.0; 1];
        reduce(&input, &shape, &[true, true, true], Reducer::Min, &mut out);
        assert_eq!(out, [0.0]);
        let mut out = vec![0.0; 2];
        reduce(&input, &shape, &[false, true, true], Reducer::L1, &mut out);
        assert_eq!(out, [66.0, 210.0]);
        let mut out = vec![0.0; 1];
        reduce(&[3.0, -4.0], &[2], &[true], Reducer::L2, &mut out);
        assert_eq!(out, [5.0]);
        let mut out = vec![0.0; 24];
        reduce(
            &input,
            &shape,
            &[false, false, false],
            Reducer::Sum,
            &mut out,
        );
        assert_eq!(out, input);
    }

    #[test]
    fn reduce_propagates_nan_in_max() {
        let input = [1.0, f32::NAN, 3.0];
        let mut out = [0.0];
        reduce(&input, &[3], &[true], Reducer::Max, &mut out);
        assert!(out[0].is_nan());
    }
}
