//! Microkernels without VNNI: data and weights widened to int16 and
//! multiplied with `vpmaddwd`, which adds two int16 products into an int32
//! lane. Products of int8 or uint8 by int8 are at most 2^15 in magnitude, so
//! nothing saturates (unlike `vpmaddubsw`) and no data shift is needed.
//!
//! The AVX-512 BW kernel broadcasts a 32-bit word of 4 int8 or uint8 input
//! channels and widens it. Lane `2j` of a product vector then sums input
//! channels 0-1 and lane `2j + 1` input channels 2-3 of output channel `j`;
//! the two lanes are added once, after the reduction. The AVX2 kernel reads
//! data widened to int16 before the call, so its broadcast word is one pair
//! of input channels and each lane belongs to one output channel. int32
//! sums wrap, so results are exact whenever the true dot product fits in int32.

use std::arch::x86_64::*;

use super::tile::{TileArgs, TileFn, TILE_ROW};

/// AVX-512 BW register tile: 6 pixels by 2 panels (32 channels) is 24
/// accumulators, 4 weight vectors and 2 temporaries of the 32 registers.
pub(super) const AVX512_TILE_PIXELS: usize = 6;
pub(super) const AVX512_TILE_PANELS: usize = 2;

/// AVX2 register tile: 6 pixels by one panel (16 channels).
pub(super) const AVX2_TILE_PIXELS: usize = 6;

/// Bytes of one reduction step of one panel: 64 int16 weights.
const STEP_BYTES: usize = 128;

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn tile_avx512<const MR: usize, const NV: usize, const SIGNED: bool>(args: &TileArgs) {
    // acc[m][v][h]: pixel m, panel v, output channels 8h..8h+8 (two lanes each).
    let mut acc = [[[_mm512_setzero_si512(); 2]; NV]; MR];
    for (t, &offset) in args.tap_offsets.iter().enumerate() {
        // SAFETY: the caller guarantees every derived address is readable.
        unsafe {
            let weights = args.panels.add(t * args.steps * STEP_BYTES);
            let rows: [*const u8; MR] = std::array::from_fn(|m| args.bases[m].offset(offset));
            for s in 0..args.steps {
                let mut w = [[_mm512_setzero_si512(); 2]; NV];
                for (v, wv) in w.iter_mut().enumerate() {
                    let at = weights.add(v * args.panel_stride + s * STEP_BYTES);
                    wv[0] = _mm512_load_si512(at.cast());
                    wv[1] = _mm512_load_si512(at.add(64).cast());
                }
                for (m, row) in acc.iter_mut().enumerate() {
                    let dword = rows[m].add(4 * s).cast::<i32>().read_unaligned();
                    let bytes = _mm256_set1_epi32(dword);
                    let x = if SIGNED {
                        _mm512_cvtepi8_epi16(bytes)
                    } else {
                        _mm512_cvtepu8_epi16(bytes)
                    };
                    for (a, wv) in row.iter_mut().zip(&w) {
                        a[0] = _mm512_add_epi32(a[0], _mm512_madd_epi16(x, wv[0]));
                        a[1] = _mm512_add_epi32(a[1], _mm512_madd_epi16(x, wv[1]));
                    }
                }
            }
        }
    }
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (m, row) in acc.iter().enumerate() {
        for (v, a) in row.iter().enumerate() {
            let first = _mm512_permutex2var_epi32(a[0], even, a[1]);
            let second = _mm512_permutex2var_epi32(a[0], odd, a[1]);
            let sum = _mm512_add_epi32(first, second);
            // SAFETY: `out` has room for MR rows of TILE_ROW values.
            unsafe { _mm512_storeu_si512(args.out.add(m * TILE_ROW + 16 * v).cast(), sum) };
        }
    }
}

/// AVX2 microkernel on data widened to int16 beforehand: each broadcast
/// 32-bit word is a pair of input channels, and each `vpmaddwd` lane adds
/// both products of one output channel, so no widening or final add runs in
/// the loop. A step's 4 input channels are done as two pairs, each with 2
/// weight vectors: 12 accumulators, 2 weights, the data and a product fit
/// the 16 registers.
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2_pairs<const MR: usize>(args: &TileArgs) {
    // acc[m][h]: pixel m, output channels 8h..8h + 8.
    let mut acc = [[_mm256_setzero_si256(); 2]; MR];
    for (t, &offset) in args.tap_offsets.iter().enumerate() {
        // SAFETY: the caller guarantees every derived address is readable.
        unsafe {
            let weights = args.panels.add(t * args.steps * STEP_BYTES);
            let rows: [*const u8; MR] = std::array::from_fn(|m| args.bases[m].offset(offset));
            for s in 0..args.steps {
                for pair in 0..2 {
                    let w = weights.add(s * STEP_BYTES + 64 * pair);
                    let w0 = _mm256_load_si256(w.cast());
                    let w1 = _mm256_load_si256(w.add(32).cast());
                    for (m, row) in acc.iter_mut().enumerate() {
                        let at = rows[m].add(8 * s + 4 * pair);
                        let x = _mm256_set1_epi32(at.cast::<i32>().read_unaligned());
                        row[0] = _mm256_add_epi32(row[0], _mm256_madd_epi16(x, w0));
                        row[1] = _mm256_add_epi32(row[1], _mm256_madd_epi16(x, w1));
                    }
                }
            }
        }
    }
    for (m, row) in acc.iter().enumerate() {
        for (h, &a) in row.iter().enumerate() {
            // SAFETY: `out` has room for MR rows of TILE_ROW values.
            unsafe { _mm256_storeu_si256(args.out.add(m * TILE_ROW + 8 * h).cast(), a) };
        }
    }
}

/// Returns the AVX2 microkernel on int16 data for `pixels` (1..=6) by one
/// panel; the data's signedness was handled when it was widened.
pub(super) fn select_avx2_pairs(pixels: usize, panels: usize, _signed: bool) -> TileFn {
    assert_eq!(panels, 1, "AVX2 tiles have one panel");
    match pixels {
        1 => tile_avx2_pairs::<1>,
        2 => tile_avx2_pairs::<2>,
        3 => tile_avx2_pairs::<3>,
        4 => tile_avx2_pairs::<4>,
        5 => tile_avx2_pairs::<5>,
        6 => tile_avx2_pairs::<6>,
        _ => unreachable!("AVX2 tiles have 1 to {AVX2_TILE_PIXELS} pixels, not {pixels}"),
    }
}

fn avx512_for_pixels<const MR: usize>(panels: usize, signed: bool) -> TileFn {
    match (panels, signed) {
        (1, false) => tile_avx512::<MR, 1, false>,
        (2, false) => tile_avx512::<MR, 2, false>,
        (1, true) => tile_avx512::<MR, 1, true>,
        (2, true) => tile_avx512::<MR, 2, true>,
        _ => unreachable!("AVX-512 BW tiles have 1 to {AVX512_TILE_PANELS} panels, not {panels}"),
    }
}

/// Returns the AVX-512 BW microkernel for `pixels` (1..=6) by `panels` (1..=2).
pub(super) fn select_avx512(pixels: usize, panels: usize, signed: bool) -> TileFn {
    match pixels {
        1 => avx512_for_pixels::<1>(panels, signed),
        2 => avx512_for_pixels::<2>(panels, signed),
        3 => avx512_for_pixels::<3>(panels, signed),
        4 => avx512_for_pixels::<4>(panels, signed),
        5 => avx512_for_pixels::<5>(panels, signed),
        6 => avx512_for_pixels::<6>(panels, signed),
        _ => unreachable!("AVX-512 BW tiles have 1 to {AVX512_TILE_PIXELS} pixels, not {pixels}"),
    }
}
