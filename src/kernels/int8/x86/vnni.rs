//! AVX-512 VNNI microkernel: `vpdpbusd` on unsigned data bytes and signed
//! weight bytes.
//!
//! The kernel reads uint8 data only. Signed data arrives flipped to uint8
//! by XOR 0x80 (`u = s + 128`), done once while the padded copy of the input
//! is written, so the inner loop has no XOR on the ports `vpdpbusd` uses. The
//! extra `128 · Σ w` is removed by starting each accumulator at
//! `-128 · Σ w`, computed at pack time. All int32 arithmetic wraps, so
//! intermediate sums may overflow: the result is exact whenever the true
//! dot product fits in int32, whatever the reduction length.

use std::arch::x86_64::*;

use super::tile::{TileArgs, TileFn, TILE_ROW};

/// Register tile of this tier: 6 pixels by 4 panels (64 channels) is 24
/// accumulators, 4 weight vectors and 1 data vector of the 32 registers.
/// NOTE: 8x3 and 12x2 tiles (also 24 accumulators) were measured no
/// faster: slower on 3x3 layers with 64 channels at 56x56, whose 4 panels
/// leave a 1-panel block with 3-panel tiles, and within noise on the other
/// ResNet-50 shapes (one run on a shared 2-core AVX-512 VNNI Xeon).
pub(super) const TILE_PIXELS: usize = 6;
pub(super) const TILE_PANELS: usize = 4;

/// Pixels of a tile of 1 or 2 panels: 12 by 2 is 24 accumulators again.
pub(super) const NARROW_TILE_PIXELS: usize = 12;

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const MR: usize, const NV: usize, const SHIFTED: bool>(args: &TileArgs) {
    let mut acc = [[_mm512_setzero_si512(); NV]; MR];
    if SHIFTED {
        for v in 0..NV {
            // SAFETY: `init` has 16 values per panel of the tile.
            let start = unsafe { _mm512_loadu_si512(args.init.add(16 * v).cast()) };
            for row in acc.iter_mut() {
                row[v] = start;
            }
        }
    }
    let step_bytes = 64;
    for (t, &offset) in args.tap_offsets.iter().enumerate() {
        // SAFETY: the caller guarantees every derived address is readable.
        unsafe {
            let weights = args.panels.add(t * args.steps * step_bytes);
            let rows: [*const u8; MR] = std::array::from_fn(|m| args.bases[m].offset(offset));
            for s in 0..args.steps {
                let mut w = [_mm512_setzero_si512(); NV];
                for (v, wv) in w.iter_mut().enumerate() {
                    let at = weights.add(v * args.panel_stride + s * step_bytes);
                    *wv = _mm512_load_si512(at.cast());
                }
                for (m, row) in acc.iter_mut().enumerate() {
                    let dword = rows[m].add(4 * s).cast::<i32>().read_unaligned();
                    let x = _mm512_set1_epi32(dword);
                    for (a, &wv) in row.iter_mut().zip(&w) {
                        *a = _mm512_dpbusd_epi32(*a, x, wv);
                    }
                }
            }
        }
    }
    for (m, row) in acc.iter().enumerate() {
        for (v, &a) in row.iter().enumerate() {
            // SAFETY: `out` has room for MR rows of TILE_ROW values.
            unsafe { _mm512_storeu_si512(args.out.add(m * TILE_ROW + 16 * v).cast(), a) };
        }
    }
}

fn for_pixels<const MR: usize>(panels: usize, shifted: bool) -> TileFn {
    match (panels, shifted) {
        (1, false) => tile::<MR, 1, false>,
        (2, false) => tile::<MR, 2, false>,
        (3, false) => tile::<MR, 3, false>,
        (4, false) => tile::<MR, 4, false>,
        (1, true) => tile::<MR, 1, true>,
        (2, true) => tile::<MR, 2, true>,
        (3, true) => tile::<MR, 3, true>,
        (4, true) => tile::<MR, 4, true>,
        _ => unreachable!("VNNI tiles have 1 to {TILE_PANELS} panels, not {panels}"),
    }
}

/// Tiles of more than [`TILE_PIXELS`] pixels, which have 1 or 2 panels.
fn for_narrow<const MR: usize>(panels: usize, shifted: bool) -> TileFn {
    match (panels, shifted) {
        (1, false) => tile::<MR, 1, false>,
        (2, false) => tile::<MR, 2, false>,
        (1, true) => tile::<MR, 1, true>,
        (2, true) => tile::<MR, 2, true>,
        _ => unreachable!("VNNI tiles of {MR} pixels have 1 or 2 panels, not {panels}"),
    }
}

/// Returns the microkernel for `pixels` (1..=6, or up to 12 with 1 or 2
/// panels) by `panels` (1..=4) on
/// uint8 data. With `shifted`, the data is int8 plus 128 and the
/// accumulators start at the correction in [`TileArgs::init`].
pub(super) fn select(pixels: usize, panels: usize, shifted: bool) -> TileFn {
    match pixels {
        1 => for_pixels::<1>(panels, shifted),
        2 => for_pixels::<2>(panels, shifted),
        3 => for_pixels::<3>(panels, shifted),
        4 => for_pixels::<4>(panels, shifted),
        5 => for_pixels::<5>(panels, shifted),
        6 => for_pixels::<6>(panels, shifted),
        7 => for_narrow::<7>(panels, shifted),
        8 => for_narrow::<8>(panels, shifted),
        9 => for_narrow::<9>(panels, shifted),
        10 => for_narrow::<10>(panels, shifted),
        11 => for_narrow::<11>(panels, shifted),
        12 => for_narrow::<12>(panels, shifted),
        _ => unreachable!("VNNI tiles have 1 to {NARROW_TILE_PIXELS} pixels, not {pixels}"),
    }
}

/// Runs `iterations` rounds of 24 independent `vpdpbusd` chains (64
/// multiply-adds each) and returns a checksum; for measuring the peak.
///
/// # Safety
/// The CPU must support AVX-512 VNNI.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn peak(iterations: u64) -> i32 {
    let a = _mm512_set1_epi32(0x0101_0101);
    let b = _mm512_set1_epi32(0x0102_0304);
    // Distinct starting values keep the optimizer from merging the chains.
    let mut acc: [__m512i; 24] = std::array::from_fn(|i| _mm512_set1_epi32(i as i32));
    for _ in 0..std::hint::black_box(iterations) {
        for x in acc.iter_mut() {
            *x = _mm512_dpbusd_epi32(*x, a, b);
        }
    }
    let mut sum = _mm512_setzero_si512();
    for x in acc {
        sum = _mm512_add_epi32(sum, x);
    }
    _mm512_reduce_add_epi32(sum)
}
