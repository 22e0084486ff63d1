//! Element-wise conversions between f32 and quantized integers ("reorders"):
//! quantize, dequantize and rescale (requantize). Every product is rounded
//! to f32 before saturation and rounding, as oneDNN's reorders do.

use std::any::TypeId;

use rayon::prelude::*;

use super::elem::QuantElem;

/// Elements per parallel task of [`quantize`].
const CHUNK: usize = 1 << 14;

/// `dst[i] = saturate(round_half_even(f32(src[i] * scale)))`; NaN becomes 0,
/// infinities saturate.
pub fn quantize<T: QuantElem>(src: &[f32], scale: f32, dst: &mut [T]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "quantize: source and destination lengths differ"
    );
    if src.len() <= CHUNK {
        return quantize_serial(src, scale, dst);
    }
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| quantize_serial(s, scale, d));
}

/// Runs [`quantize`] on the calling thread, with SIMD where the CPU has it.
fn quantize_serial<T: QuantElem>(src: &[f32], scale: f32, dst: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let signed = TypeId::of::<T>() == TypeId::of::<i8>();
        if signed || TypeId::of::<T>() == TypeId::of::<u8>() {
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(dst);
            if super::x86::reorder::quantize_bytes(src, scale, signed, bytes) {
                return;
            }
        }
    }
    quantize_reference(src, scale, dst);
}

/// Quantizes as [`quantize`] does, in plain Rust: the reference that the
/// SIMD form matches bit for bit.
pub fn quantize_reference<T: QuantElem>(src: &[f32], scale: f32, dst: &mut [T]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = T::saturate(x * scale);
    }
}

/// Pixels per parallel task of [`quantize_channels_last`].
const PIXEL_BLOCK: usize = 256;

/// Quantizes channels-first data (`batch`, `channels`, `spatial`) as
/// [`quantize`] does and writes it channels-last: `dst[(n·spatial + s)·channels + c]` is the
/// quantized `src[(n·channels + c)·spatial + s]`.
///
/// # Panics
/// When the lengths do not match the shape.
pub fn quantize_channels_last<T: QuantElem>(
    src: &[f32],
    batch: usize,
    channels: usize,
    spatial: usize,
    scale: f32,
    dst: &mut [T],
) {
    let image = channels * spatial;
    assert_eq!(src.len(), batch * image, "quantize: source length");
    assert_eq!(dst.len(), batch * image, "quantize: destination length");
    if image == 0 {
        return;
    }
    let blocks = spatial.div_ceil(PIXEL_BLOCK);
    let tasks: Vec<(usize, usize)> = (0..batch)
        .flat_map(|n| (0..blocks).map(move |b| (n, b)))
        .collect();
    let out = SendPtr(dst.as_mut_ptr());
    tasks.par_iter().for_each(|&(n, b)| {
        let s0 = b * PIXEL_BLOCK;
        let width = PIXEL_BLOCK.min(spatial - s0);
        let mut row = [T::zeroed(); PIXEL_BLOCK];
        for c in 0..channels {
            let from = (n * channels + c) * spatial + s0;
            quantize_serial(&src[from..from + width], scale, &mut row[..width]);
            for (s, &q) in row[..width].iter().enumerate() {
                let at = (n * spatial + s0 + s) * channels + c;
                // SAFETY: `at` is inside `dst` (checked lengths), and the
                // tasks write disjoint pixel blocks.
                unsafe { out.at(at).write(q) };
            }
        }
    });
}

/// The destination of [`quantize_channels_last`], shared by its tasks.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);

impl<T> SendPtr<T> {
    /// Element `i`; a method, so closures capture the whole `SendPtr`.
    ///
    /// # Safety
    /// `i` must be inside the buffer.
    unsafe fn at(self, i: usize) -> *mut T {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.add(i) }
    }
}

// SAFETY: the tasks write disjoint elements and the call waits for all of them.
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SendPtr<T> {}

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

    /// Values around every rounding and saturation boundary, NaN and infinities.
    fn awkward_values(n: usize) -> Vec<f32> {
        let special = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            127.5,
            -128.5,
            255.5,
            254.5,
            1e30,
            -1e30,
        ];
        (0..n)
            .map(|i| match i % 3 {
                0 => special[i / 3 % special.len()],
                1 => (i as f32 * 0.25) - 300.0,
                _ => ((i * 7919) % 1000) as f32 * 0.61 - 310.0,
            })
            .collect()
    }

    #[test]
    fn fast_quantize_matches_reference() {
        for len in [0, 1, 7, 8, 9, 31, 1000, CHUNK + 13] {
            let x = awkward_values(len);
            for scale in [1.0f32, 0.37, 2.5] {
                let (mut a, mut b) = (vec![0i8; len], vec![0i8; len]);
                quantize(&x, scale, &mut a);
                quantize_reference(&x, scale, &mut b);
                assert_eq!(a, b, "int8, length {len}, scale {scale}");
                let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
                quantize(&x, scale, &mut a);
                quantize_reference(&x, scale, &mut b);
                assert_eq!(a, b, "uint8, length {len}, scale {scale}");
            }
        }
    }

    #[test]
    fn channels_last_quantize_transposes() {
        for (batch, channels, spatial) in [(1, 3, 300), (2, 5, 257), (3, 1, 1), (1, 16, 512)] {
            let x = awkward_values(batch * channels * spatial);
            let mut flat = vec![0i8; x.len()];
            quantize_reference(&x, 0.8, &mut flat);
            let mut last = vec![0i8; x.len()];
            quantize_channels_last(&x, batch, channels, spatial, 0.8, &mut last);
            for n in 0..batch {
                for c in 0..channels {
                    for s in 0..spatial {
                        assert_eq!(
                            last[(n * spatial + s) * channels + c],
                            flat[(n * channels + c) * spatial + s]
                        );
                    }
                }
            }
        }
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
