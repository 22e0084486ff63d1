//! Element-wise conversions between f32 and quantized integers ("reorders"):
//! quantize, dequantize and rescale (requantize). Every product is rounded
//! to f32 before saturation and rounding, as oneDNN's reorders do.

use super::elem::QuantElem;

/// `dst[i] = saturate(round_half_even(f32(src[i] * scale)))`; NaN becomes 0,
/// infinities saturate.
pub fn quantize<T: QuantElem>(src: &[f32], scale: f32, dst: &mut [T]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "quantize: source and destination lengths differ"
    );
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = T::saturate(x * scale);
    }
}

/// `dst[i] = f32(f32(src[i]) * scale)`.
pub fn dequantize<T: QuantElem>(src: &[T], scale: f32, dst: &mut [f32]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "dequantize: source and destination lengths differ"
    );
    for (d, &q) in dst.iter_mut().zip(src) {
        *d = q.to_f32() * scale;
    }
}

/// Converts between quantized types: `dst[i] = saturate(round(f32(f32(src[i]) * scale)))`.
/// An `i32` source above 2^24 is rounded to f32 first, as MXNet's requantize does.
pub fn rescale<S: QuantElem, T: QuantElem>(src: &[S], scale: f32, dst: &mut [T]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "rescale: source and destination lengths differ"
    );
    for (d, &q) in dst.iter_mut().zip(src) {
        *d = T::saturate(q.to_f32() * scale);
    }
}

/// Copies and widens or narrows with saturation but no scaling.
pub fn convert<S: QuantElem, T: QuantElem>(src: &[S], dst: &mut [T]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "convert: source and destination lengths differ"
    );
    for (d, &q) in dst.iter_mut().zip(src) {
        *d = T::saturate(q.to_i32() as f32);
    }
}

/// Smallest and largest value of a non-empty slice, ignoring NaN. Returns
/// `None` when the slice is empty or every element is NaN.
pub fn min_max_f32(values: &[f32]) -> Option<(f32, f32)> {
    let mut iter = values.iter().copied().filter(|v| !v.is_nan());
    let first = iter.next()?;
    Some(iter.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
}

/// Smallest and largest value of a non-empty integer slice.
pub fn min_max_i32(values: &[i32]) -> Option<(i32, i32)> {
    let first = *values.first()?;
    Some(
        values
            .iter()
            .fold((first, first), |(lo, hi), &v| (lo.min(v), hi.max(v))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_int8_scale_one() {
        let x = [
            0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.4, 127.5, -127.5, -128.0, -200.0, 200.0,
        ];
        let mut q = [0i8; 13];
        quantize(&x, 1.0, &mut q);
        assert_eq!(
            q,
            [0, 2, 2, 0, -2, -2, 126, 127, 127, -128, -128, -128, 127]
        );
    }

    #[test]
    fn quantize_uint8_clamps_negatives() {
        let x = [
            0.5f32, 1.5, 2.5, 254.5, 255.4, 255.5, 300.0, -0.4, -0.6, -3.0,
        ];
        let mut q = [0u8; 10];
        quantize(&x, 1.0, &mut q);
        assert_eq!(q, [0, 2, 2, 254, 255, 255, 255, 0, 0, 0]);
    }

    #[test]
    fn rescale_int32_rounds_through_f32() {
        // 16777217 is not representable in f32 and becomes 16777216 first.
        let src = [16_777_217i32, -3, 3];
        let mut dst = [0i32; 3];
        rescale(&src, 0.5, &mut dst);
        assert_eq!(dst, [8_388_608, -2, 2]);
    }

    #[test]
    fn min_max_skips_nan() {
        assert_eq!(min_max_f32(&[f32::NAN, 2.0, -1.0]), Some((-1.0, 2.0)));
        assert_eq!(min_max_f32(&[f32::NAN]), None);
        assert_eq!(min_max_i32(&[]), None);
    }
}
