//! Padding of dense row-major f32 arrays along any axes.

use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    /// Fill with a value.
    Constant(f32),
    /// Repeat the border element.
    Edge,
    /// Mirror without repeating the border element (numpy's `reflect`);
    /// each padding must be smaller than its dimension.
    Reflect,
}

/// Maps an output coordinate to the input coordinate it copies, or `None`
/// for constant padding.
fn source(o: usize, before: usize, len: usize, mode: PadMode) -> Option<usize> {
    let i = o as isize - before as isize;
    let n = len as isize;
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    match mode {
        PadMode::Constant(_) => None,
        PadMode::Edge => Some(i.clamp(0, n - 1) as usize),
        PadMode::Reflect => {
            if n == 1 {
                return Some(0);
            }
            // Reflection has period 2(n-1).
            let period = 2 * (n - 1);
            let m = i.rem_euclid(period);
            Some(if m < n { m } else { period - m } as usize)
        }
    }
}

/// Pads `input` of `shape` by `pads[d] = (before, after)` per dimension.
pub fn pad(
    input: &[f32],
    shape: &[usize],
    pads: &[(usize, usize)],
    mode: PadMode,
    output: &mut [f32],
) {
    assert_eq!(shape.len(), pads.len(), "pad: rank");
    assert_eq!(
        input.len(),
        shape.iter().product::<usize>(),
        "pad: input length"
    );
    let out_shape: Vec<usize> = shape
        .iter()
        .zip(pads)
        .map(|(&d, &(b, a))| d + b + a)
        .collect();
    assert_eq!(
        output.len(),
        out_shape.iter().product::<usize>(),
        "pad: output length"
    );
    if output.is_empty() {
        return;
    }
    if input.is_empty() {
        output.fill(match mode {
            PadMode::Constant(v) => v,
            _ => panic!("pad: cannot pad an empty array by edge or reflection"),
        });
        return;
    }
    let rank = shape.len();
    let inner_out = out_shape[rank - 1];
    let inner_in = shape[rank - 1];
    let (before, _) = pads[rank - 1];
    let fill = match mode {
        PadMode::Constant(v) => v,
        _ => 0.0,
    };
    let row = |(r, dst): (usize, &mut [f32])| {
        // Find the input row this output row copies, if any.
        let (mut offset, mut stride, mut rest) = (0usize, inner_in, r);
        for d in (0..rank - 1).rev() {
            let o = rest % out_shape[d];
            rest /= out_shape[d];
            match source(o, pads[d].0, shape[d], mode) {
                Some(i) => offset += i * stride,
                None => {
                    dst.fill(fill);
                    return;
                }
            }
            stride *= shape[d];
        }
        let src = &input[offset..offset + inner_in];
        for (o, d) in dst.iter_mut().enumerate() {
            *d = source(o, before, inner_in, mode).map_or(fill, |i| src[i]);
        }
    };
    if output.len() < 1 << 15 {
        output.chunks_mut(inner_out).enumerate().for_each(row);
    } else {
        output.par_chunks_mut(inner_out).enumerate().for_each(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_modes_1d() {
        let input = [1.0, 2.0, 3.0];
        let mut out = [0.0; 8];
        pad(&input, &[3], &[(3, 2)], PadMode::Reflect, &mut out);
        assert_eq!(out, [2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]);
        pad(&input, &[3], &[(3, 2)], PadMode::Edge, &mut out);
        assert_eq!(out, [1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 3.0, 3.0]);
        pad(&input, &[3], &[(3, 2)], PadMode::Constant(-1.0), &mut out);
        assert_eq!(out, [-1.0, -1.0, -1.0, 1.0, 2.0, 3.0, -1.0, -1.0]);
    }

    #[test]
    fn pad_2d_outer_rows() {
        // [[1, 2], [3, 4]] padded by one row above and one column right.
        let input = [1.0, 2.0, 3.0, 4.0];
        let mut out = [0.0; 9];
        pad(&input, &[2, 2], &[(1, 0), (0, 1)], PadMode::Edge, &mut out);
        assert_eq!(out, [1.0, 2.0, 2.0, 1.0, 2.0, 2.0, 3.0, 4.0, 4.0]);
        pad(
            &input,
            &[2, 2],
            &[(1, 0), (0, 1)],
            PadMode::Reflect,
            &mut out,
        );
        assert_eq!(out, [3.0, 4.0, 3.0, 1.0, 2.0, 1.0, 3.0, 4.0, 3.0]);
        pad(
            &input,
            &[2, 2],
            &[(1, 0), (0, 1)],
            PadMode::Constant(0.5),
            &mut out,
        );
        assert_eq!(out, [0.5, 0.5, 0.5, 1.0, 2.0, 0.5, 3.0, 4.0, 0.5]);
    }
}
