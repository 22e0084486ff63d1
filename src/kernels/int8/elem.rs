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
        v.clamp(Self::LOWEST, Self::HIGHEST).round_ties_even() as i8
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
        v.clamp(Self::LOWEST, Self::HIGHEST).round_ties_even() as u8
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
        v.clamp(Self::LOWEST, Self::HIGHEST).round_ties_even() as i32
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
