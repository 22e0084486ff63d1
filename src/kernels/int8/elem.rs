//! Element types of quantized tensors and the conversions every int8 kernel
//! shares: float to integer with saturation and round-half-to-even, as x86's
//! `cvtps2dq` does under the default MXCSR.

/// An integer element type of a quantized tensor (`i8`, `u8` or `i32`).
pub trait QuantElem: bytemuck::Pod + Send + Sync + 'static {
    /// Lowest value, as f32.
    const LOWEST: f32;
    /// Highest value reachable from f32 (for `i32`, the largest f32 below 2^31).
    const HIGHEST: f32;

    fn to_i32(self) -> i32;

    /// Exact for `i8`/`u8`; rounds to nearest even above 2^24 for `i32`.
    fn to_f32(self) -> f32;

    /// Clamps `v` to the type's range and rounds half to even. NaN becomes 0.
    fn saturate(v: f32) -> Self;
}

/// Rounds half to even, like `f32::round_ties_even`, without a libm call.
///
/// The x86-64 baseline has no rounding instruction, so `round_ties_even`
/// compiles to a call to `rintf`. Adding and subtracting 2^23 (with the sign
/// of `v`) rounds to an integer under the default round-to-nearest-even
/// mode, which Rust code always runs in; values of magnitude 2^23 or more
/// are already integers, and NaN passes through.
#[inline(always)]
pub fn round_half_even(v: f32) -> f32 {
    const TWO_POW_23: f32 = 8_388_608.0;
    if v.abs() < TWO_POW_23 {
        let shift = TWO_POW_23.copysign(v);
        (v + shift) - shift
    } else {
        v
    }
}

impl QuantElem for i8 {
    const LOWEST: f32 = -128.0;
    const HIGHEST: f32 = 127.0;
    fn to_i32(self) -> i32 {
        self as i32
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn saturate(v: f32) -> Self {
        // `as` maps NaN to 0; the bounds are integers, so clamping before
        // rounding equals rounding before clamping.
        round_half_even(v.clamp(Self::LOWEST, Self::HIGHEST)) as i8
    }
}

impl QuantElem for u8 {
    const LOWEST: f32 = 0.0;
    const HIGHEST: f32 = 255.0;
    fn to_i32(self) -> i32 {
        self as i32
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn saturate(v: f32) -> Self {
        round_half_even(v.clamp(Self::LOWEST, Self::HIGHEST)) as u8
    }
}

impl QuantElem for i32 {
    const LOWEST: f32 = -2_147_483_648.0;
    /// oneDNN saturates f32 to s32 at 2^31 - 128, the largest f32 below 2^31.
    const HIGHEST: f32 = 2_147_483_520.0;
    fn to_i32(self) -> i32 {
        self
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn saturate(v: f32) -> Self {
        round_half_even(v.clamp(Self::LOWEST, Self::HIGHEST)) as i32
    }
}

/// An element type a fused output stage can write: the quantized integer
/// types, or f32 for a fused dequantize.
pub trait OutputElem: bytemuck::Pod + Send + Sync + 'static {
    /// Converts the stage's f32 result (saturating and rounding for integers).
    fn from_f32(v: f32) -> Self;

    /// Converts an accumulator when the stage does no arithmetic at all.
    fn from_acc(acc: i32) -> Self;
}

impl OutputElem for i8 {
    fn from_f32(v: f32) -> Self {
        i8::saturate(v)
    }
    fn from_acc(acc: i32) -> Self {
        acc.clamp(-128, 127) as i8
    }
}

impl OutputElem for u8 {
    fn from_f32(v: f32) -> Self {
        u8::saturate(v)
    }
    fn from_acc(acc: i32) -> Self {
        acc.clamp(0, 255) as u8
    }
}

impl OutputElem for i32 {
    fn from_f32(v: f32) -> Self {
        i32::saturate(v)
    }
    fn from_acc(acc: i32) -> Self {
        acc
    }
}

impl OutputElem for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
    fn from_acc(acc: i32) -> Self {
        acc as f32
    }
}

/// A read-only quantized slice of any integer element type, for operands
/// whose type is only known at run time (residual inputs).
#[derive(Clone, Copy, Debug)]
pub enum QuantSlice<'a> {
    I8(&'a [i8]),
    U8(&'a [u8]),
    I32(&'a [i32]),
}

impl QuantSlice<'_> {
    pub fn len(&self) -> usize {
        match self {
            QuantSlice::I8(s) => s.len(),
            QuantSlice::U8(s) => s.len(),
            QuantSlice::I32(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` converted to f32 (exactly for 8-bit types).
    #[inline]
    pub fn get_f32(&self, i: usize) -> f32 {
        match self {
            QuantSlice::I8(s) => s[i] as f32,
            QuantSlice::U8(s) => s[i] as f32,
            QuantSlice::I32(s) => s[i] as f32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturate_rounds_half_to_even() {
        let got: Vec<i8> = [
            0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.4, 127.5, -127.5, -128.6,
        ]
        .iter()
        .map(|&v| i8::saturate(v))
        .collect();
        assert_eq!(got, [0, 2, 2, 0, -2, -2, 126, 127, 127, -128, -128]);
    }

    #[test]
    fn saturate_special_values() {
        assert_eq!(i8::saturate(f32::NAN), 0);
        assert_eq!(u8::saturate(f32::NAN), 0);
        assert_eq!(i8::saturate(f32::INFINITY), 127);
        assert_eq!(i8::saturate(f32::NEG_INFINITY), -128);
        assert_eq!(u8::saturate(-0.6), 0);
        assert_eq!(u8::saturate(255.5), 255);
        assert_eq!(i32::saturate(3e9), 2_147_483_520);
        assert_eq!(i32::saturate(-3e9), i32::MIN);
        assert_eq!(i32::saturate(f32::NAN), 0);
    }
}

#[cfg(test)]
mod round_tests {
    use super::round_half_even;

    #[test]
    fn round_half_even_matches_std() {
        let mut values = vec![
            0.5f32,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -2.5,
            0.49999997,
            8_388_607.5,
            -8_388_607.5,
            8_388_608.0,
            16_777_217.0,
            2_147_483_520.0,
            -2_147_483_648.0,
            f32::MIN_POSITIVE,
            -0.0,
            127.5,
            254.5,
        ];
        let mut state = 0x1234_5678u32;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            values.push(f32::from_bits(state) % 1.0e7);
        }
        for v in values.into_iter().filter(|v| v.is_finite()) {
            assert_eq!(round_half_even(v), v.round_ties_even(), "{v}");
        }
        assert!(round_half_even(f32::NAN).is_nan());
        assert_eq!(round_half_even(f32::INFINITY), f32::INFINITY);
    }
}
