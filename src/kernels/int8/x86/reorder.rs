//! Quantizing f32 to int8 or uint8 bytes on AVX2, bit-exact with
//! `crate::kernels::int8::quantize::quantize`.

use std::arch::x86_64::*;

use super::stage::{narrow_avx2, round_saturate_avx2};
use crate::kernels::int8::isa::{self, Isa};

/// Quantizes `src` into `dst` as int8 (`signed`) or uint8 bytes:
/// `saturate(round_half_even(src[i] · scale))`, NaN to 0. Returns `false`,
/// having done nothing, when the selected tier is below AVX2.
///
/// # Panics
/// When the lengths differ.
pub(crate) fn quantize_bytes(src: &[f32], scale: f32, signed: bool, dst: &mut [u8]) -> bool {
    assert_eq!(src.len(), dst.len(), "quantize: lengths differ");
    if isa::selected() < Isa::Avx2 {
        return false;
    }
    // SAFETY: the CPU runs AVX2 (the selected tier never exceeds the
    // detected one) and the lengths are equal.
    unsafe { quantize_avx2(src, scale, signed, dst) };
    true
}

#[target_feature(enable = "avx2")]
unsafe fn quantize_avx2(src: &[f32], scale: f32, signed: bool, dst: &mut [u8]) {
    let (lo, hi) = if signed {
        (-128.0, 127.0)
    } else {
        (0.0, 255.0)
    };
    let s = _mm256_set1_ps(scale);
    let full = src.len() - src.len() % 8;
    for i in (0..full).step_by(8) {
        // SAFETY: `i + 8 <= full <= len` for both slices.
        unsafe {
            let v = _mm256_mul_ps(_mm256_loadu_ps(src.as_ptr().add(i)), s);
            // The output stage's conversion: NaN to 0, clamp, round half to even.
            let bytes = narrow_avx2(round_saturate_avx2(v, lo, hi), !signed);
            _mm_storel_epi64(dst.as_mut_ptr().add(i).cast(), bytes);
        }
    }
    for (d, &x) in dst[full..].iter_mut().zip(&src[full..]) {
        *d = if signed {
            <i8 as crate::kernels::int8::elem::QuantElem>::saturate(x * scale) as u8
        } else {
            <u8 as crate::kernels::int8::elem::QuantElem>::saturate(x * scale)
        };
    }
}
