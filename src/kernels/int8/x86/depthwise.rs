//! Depthwise convolution (one input and one output channel per group) on
//! channels-last data, with channels in vector lanes.
//!
//! There is no reduction over channels for `vpdpbusd` to use. Instead the
//! data of two taps is interleaved byte by byte (`vpunpcklbw`), widened to
//! int16 and multiplied with `vpmaddwd` against the two taps' weights, so
//! both products that a lane adds belong to one channel. Taps outside the
//! input read as zero. Exact for int8 and uint8 data.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::pack::DepthwiseWeights;
use super::stage::StagePlan;
use super::{store_tile, tap_offsets, SyncPtr};
use crate::kernels::int8::conv::ConvGeometry;
use crate::kernels::int8::isa::Isa;

/// Computes one block of 32 channels of one output pixel. `taps[t]` points
/// to the pixel's channel 0 at tap `t`, or is null for taps outside the input.
///
/// # Safety
/// The CPU must support AVX-512 BW and VL. For non-null taps,
/// `taps[t] + c0 .. taps[t] + c0 + n` must be readable. `weights` must be
/// the block's packed weights and `out` must have room for 32 values.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn block_avx512<const SIGNED: bool>(
    taps: &[*const u8],
    c0: usize,
    n: usize,
    weights: *const u8,
    out: *mut i32,
) {
    let mask: __mmask32 = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
    let load = |p: *const u8| -> __m256i {
        if p.is_null() {
            _mm256_setzero_si256()
        } else {
            // SAFETY: the caller guarantees the n masked-in bytes are readable.
            unsafe { _mm256_maskz_loadu_epi8(mask, p.add(c0).cast()) }
        }
    };
    let mut low = _mm512_setzero_si512();
    let mut high = _mm512_setzero_si512();
    for (pair, chunk) in taps.chunks(2).enumerate() {
        let a = load(chunk[0]);
        let b = chunk.get(1).map_or(_mm256_setzero_si256(), |&p| load(p));
        let (lo, hi) = (_mm256_unpacklo_epi8(a, b), _mm256_unpackhi_epi8(a, b));
        let (x_lo, x_hi) = if SIGNED {
            (_mm512_cvtepi8_epi16(lo), _mm512_cvtepi8_epi16(hi))
        } else {
            (_mm512_cvtepu8_epi16(lo), _mm512_cvtepu8_epi16(hi))
        };
        // SAFETY: the block contains two 64-byte vectors per pair of taps.
        let (w_lo, w_hi) = unsafe {
            let w = weights.add(pair * 128);
            (
                _mm512_load_si512(w.cast()),
                _mm512_load_si512(w.add(64).cast()),
            )
        };
        low = _mm512_add_epi32(low, _mm512_madd_epi16(x_lo, w_lo));
        high = _mm512_add_epi32(high, _mm512_madd_epi16(x_hi, w_hi));
    }
    // `low` contains channels 0-7 and 16-23, `high` 8-15 and 24-31.
    let first = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    let second = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    // SAFETY: `out` has room for 32 values.
    unsafe {
        _mm512_storeu_si512(out.cast(), _mm512_permutex2var_epi32(low, first, high));
        _mm512_storeu_si512(
            out.add(16).cast(),
            _mm512_permutex2var_epi32(low, second, high),
        );
    }
}

/// Computes one block of 16 channels with AVX2, as [`block_avx512`] does for 32.
///
/// # Safety
/// The CPU must support AVX2. Otherwise as [`block_avx512`], with room for
/// 16 values at `out`.
#[target_feature(enable = "avx2")]
unsafe fn block_avx2<const SIGNED: bool>(
    taps: &[*const u8],
    c0: usize,
    n: usize,
    weights: *const u8,
    out: *mut i32,
) {
    let load = |p: *const u8| -> __m128i {
        if p.is_null() {
            _mm_setzero_si128()
        } else if n >= 16 {
            // SAFETY: the caller guarantees 16 bytes are readable.
            unsafe { _mm_loadu_si128(p.add(c0).cast()) }
        } else {
            let mut bytes = [0u8; 16];
            // SAFETY: the caller guarantees n bytes are readable.
            unsafe { std::ptr::copy_nonoverlapping(p.add(c0), bytes.as_mut_ptr(), n) };
            // SAFETY: `bytes` is 16 bytes long.
            unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
        }
    };
    let mut low = _mm256_setzero_si256();
    let mut high = _mm256_setzero_si256();
    for (pair, chunk) in taps.chunks(2).enumerate() {
        let a = load(chunk[0]);
        let b = chunk.get(1).map_or(_mm_setzero_si128(), |&p| load(p));
        let (lo, hi) = (_mm_unpacklo_epi8(a, b), _mm_unpackhi_epi8(a, b));
        let (x_lo, x_hi) = if SIGNED {
            (_mm256_cvtepi8_epi16(lo), _mm256_cvtepi8_epi16(hi))
        } else {
            (_mm256_cvtepu8_epi16(lo), _mm256_cvtepu8_epi16(hi))
        };
        // SAFETY: the block contains two 32-byte vectors per pair of taps.
        let (w_lo, w_hi) = unsafe {
            let w = weights.add(pair * 64);
            (
                _mm256_load_si256(w.cast()),
                _mm256_load_si256(w.add(32).cast()),
            )
        };
        low = _mm256_add_epi32(low, _mm256_madd_epi16(x_lo, w_lo));
        high = _mm256_add_epi32(high, _mm256_madd_epi16(x_hi, w_hi));
    }
    // SAFETY: `out` has room for 16 values.
    unsafe {
        _mm256_storeu_si256(out.cast(), low);
        _mm256_storeu_si256(out.add(8).cast(), high);
    }
}

type BlockFn = unsafe fn(&[*const u8], usize, usize, *const u8, *mut i32);

fn select(isa: Isa, signed: bool) -> BlockFn {
    match (isa >= Isa::Avx512Bw, signed) {
        (true, true) => block_avx512::<true>,
        (true, false) => block_avx512::<false>,
        (false, true) => block_avx2::<true>,
        (false, false) => block_avx2::<false>,
    }
}

/// Points `taps[t]` to channel 0 of tap `t` of the pixel whose first tap is
/// at `origin` in image `n`, or sets it to null when the tap is outside.
fn locate_taps(
    geom: &ConvGeometry,
    n: usize,
    origin: [isize; 3],
    input: &[u8],
    taps: &mut [*const u8],
) {
    let mut t = 0;
    for kd in 0..geom.kernel[0] {
        for kh in 0..geom.kernel[1] {
            for kw in 0..geom.kernel[2] {
                let k = [kd, kh, kw];
                let at: [isize; 3] =
                    std::array::from_fn(|i| origin[i] + (k[i] * geom.dilate[i]) as isize);
                let inside = (0..3).all(|i| at[i] >= 0 && at[i] < geom.input[i] as isize);
                taps[t] = if inside {
                    let [d, h, w] = at.map(|v| v as usize);
                    let pixel = ((n * geom.input[0] + d) * geom.input[1] + h) * geom.input[2] + w;
                    input[pixel * geom.in_channels..].as_ptr()
                } else {
                    std::ptr::null()
                };
                t += 1;
            }
        }
    }
}

/// Runs a depthwise convolution.
///
/// # Safety
/// The CPU must run `isa` (AVX2 or better), `weights` must be packed with
/// the block width of `isa` for `geom`, and `out` must point to
/// `geom.output_len()` elements of the plan's kind, written by no one else.
pub(super) unsafe fn run(
    isa: Isa,
    geom: &ConvGeometry,
    input: &[u8],
    signed: bool,
    weights: &DepthwiseWeights,
    plan: &StagePlan,
    out: SyncPtr,
) {
    let channels = geom.out_channels;
    let block = weights.block;
    let blocks = channels.div_ceil(block);
    let rows = geom.batch * geom.output[0] * geom.output[1];
    // About 4 jobs per thread: output rows first, then channel blocks.
    let target = crate::kernels::int8::jobs::target();
    let block_ranges = target.div_ceil(rows).clamp(1, blocks);
    let per_range = blocks.div_ceil(block_ranges);
    let kernel = select(isa, signed);
    // Byte offset of each tap from the first, for pixels away from the border.
    let offsets: Vec<isize> = tap_offsets(geom, channels)
        .into_iter()
        .map(|o| o as isize)
        .collect();
    let jobs: Vec<(usize, usize)> = (0..rows)
        .flat_map(|r| (0..blocks).step_by(per_range).map(move |b| (r, b)))
        .collect();
    jobs.par_iter().for_each(|&(row, first_block)| {
        let last_block = (first_block + per_range).min(blocks);
        let first_channel = first_block * block;
        let width = (last_block * block).min(channels) - first_channel;
        let oh = row % geom.output[1];
        let od = (row / geom.output[1]) % geom.output[0];
        let n = row / (geom.output[1] * geom.output[0]);
        let mut taps = vec![std::ptr::null::<u8>(); weights.taps];
        // Accumulators of the whole output row for this job's channels; a
        // block kernel writes a full block, so the last one has slack.
        let mut acc = vec![0i32; geom.output[2] * width + block];
        for ow in 0..geom.output[2] {
            let pos = [od, oh, ow];
            let origin: [isize; 3] =
                std::array::from_fn(|i| (pos[i] * geom.stride[i]) as isize - geom.pad[i] as isize);
            let interior = (0..3).all(|i| {
                let last = origin[i] + ((geom.kernel[i] - 1) * geom.dilate[i]) as isize;
                origin[i] >= 0 && last < geom.input[i] as isize
            });
            if interior {
                let [d, h, w] = origin.map(|v| v as usize);
                let pixel = ((n * geom.input[0] + d) * geom.input[1] + h) * geom.input[2] + w;
                let base = input[pixel * channels..].as_ptr();
                for (tap, &offset) in taps.iter_mut().zip(&offsets) {
                    // SAFETY: every tap of an interior pixel is inside the input.
                    *tap = unsafe { base.offset(offset) };
                }
            } else {
                locate_taps(geom, n, origin, input, &mut taps);
            }
            for b in first_block..last_block {
                let c0 = b * block;
                let count = block.min(channels - c0);
                let at = ow * width + (c0 - first_channel);
                // SAFETY: non-null taps point to a whole pixel of `channels`
                // bytes, and the kernel reads only `c0..c0 + count` of it.
                // `acc` has room for a whole block from `at`. The caller
                // guarantees the tier.
                unsafe {
                    kernel(
                        &taps,
                        c0,
                        count,
                        weights.block_ptr(b),
                        acc[at..].as_mut_ptr(),
                    )
                };
            }
        }
        let first_pixel = row * geom.output[2];
        // SAFETY: the job owns these output elements: its channels of every
        // pixel of the row.
        unsafe {
            store_tile(
                isa,
                plan,
                &acc,
                width,
                geom.output[2],
                width,
                first_channel,
                first_pixel * channels + first_channel,
                channels,
                out,
            )
        };
    });
}
