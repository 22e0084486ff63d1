//! Depthwise convolution for AVX-512 VNNI: `vpdpbusd` with channels in
//! int32 lanes and up to 4 horizontal taps of one channel in the 4 bytes of
//! its lane.
//!
//! Each job copies the input rows its output rows need to a small tap
//! buffer, one row at a time as the output rows advance. For each padded
//! input row, output column `x` and tap group `g` of the kernel width, the
//! buffer contains one dword per channel whose byte `j` is the input at
//! column `x·sw - pw + (4g + j)·dw` of that row. So one `vpdpbusd` against
//! the packed weights (see [`DepthwiseVnniWeights`]) adds 4 taps of 16
//! channels, and a 3x3 kernel takes 3 per output pixel. Positions outside
//! the input hold the zero of the data domain.
//!
//! Signed data is stored XOR 0x80 (`u = s + 128`, zero is 0x80) and each
//! accumulator starts at `-128 · Σ w` of its channel, as in the implicit
//! GEMM kernel. int32 sums wrap, so the result is exact whenever the true
//! dot product fits in int32.

use std::arch::x86_64::*;
use std::cell::RefCell;
use std::marker::PhantomData;

use rayon::prelude::*;

use super::pack::{DepthwiseVnniWeights, DEPTHWISE_BLOCK, ROW_TAPS};
use super::stage::StagePlan;
use super::{store_tile, SyncPtr};
use crate::kernels::int8::conv::ConvGeometry;
use crate::kernels::int8::isa::Isa;

/// Output pixels of one register tile: 8 accumulators plus one weight and
/// one data vector per `vpdpbusd`.
const TILE_PIXELS: usize = 8;

/// One 64-byte line of the tap buffer, so that 512-bit loads are aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

thread_local! {
    /// This thread's tap buffer, reused across jobs and calls.
    static TAPS: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// Shift correction of unsigned data: accumulators start at 0.
static NO_CORRECTION: [i32; DEPTHWISE_BLOCK] = [0; DEPTHWISE_BLOCK];

/// Input column of each (output column, tap group, tap) of a convolution,
/// or `None` where the tap is outside the input or past the kernel width.
fn tap_columns(geom: &ConvGeometry) -> Vec<Option<usize>> {
    let taps = geom.kernel[2].div_ceil(ROW_TAPS) * ROW_TAPS;
    let mut columns = Vec::with_capacity(geom.output[2] * taps);
    for x in 0..geom.output[2] {
        for tap in 0..taps {
            let at = (x * geom.stride[2] + tap * geom.dilate[2]) as isize - geom.pad[2] as isize;
            let inside = tap < geom.kernel[2] && at >= 0 && at < geom.input[2] as isize;
            columns.push(inside.then_some(at as usize));
        }
    }
    columns
}

/// Channels `first .. first + count` of one input row as the tap buffer
/// stores them.
struct RowSource<'a> {
    /// The input row, `None` for a row of padding.
    row: Option<&'a [u8]>,
    /// Bytes per input column.
    in_channels: usize,
    first: usize,
    count: usize,
    /// The data domain's zero as stored: 0x80 for int8, 0 for uint8.
    zero: u8,
}

/// Stores 16 channels of 4 taps: the 128-bit lane `L` of each of `parts`,
/// which contain channels 0-3, 4-7, 8-11 and 12-15 of that lane.
///
/// # Safety
/// The CPU must support AVX-512 F, and `at` must have room for 64 bytes.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn store_lane<const L: i32>(parts: &[__m512i; 4], at: *mut u8) {
    for (k, &part) in parts.iter().enumerate() {
        // SAFETY: the caller guarantees 64 bytes at `at`.
        unsafe { _mm_storeu_si128(at.add(16 * k).cast(), _mm512_extracti32x4_epi32::<L>(part)) };
    }
}

/// Writes one row of the tap buffer: for each cell (output column, tap
/// group) with input columns `columns[4·cell ..]`, `padded` channels (a
/// multiple of 16) of 4 taps. Channels past `source.count` get arbitrary
/// bytes, which meet weight 0.
///
/// # Safety
/// The CPU must support AVX-512 BW. `dst` must have room for
/// `columns.len() · padded` bytes, and every column must be inside the row.
// NOTE: this takes 16 128-bit stores per 64 channels of a cell and, in
// perf on MobileNet's 3x3 layers (2-core Xeon, shared), about as much time as
// the `vpdpbusd` tiles. Full-width stores after a 128-bit lane transpose,
// or `vpermb` where AVX-512 VBMI exists, may make it cheaper.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn copy_row(source: &RowSource, columns: &[Option<usize>], padded: usize, dst: &mut [u8]) {
    let len = columns.len() * padded;
    let Some(row) = source.row else {
        dst[..len].fill(source.zero);
        return;
    };
    let flip = _mm512_set1_epi8(source.zero as i8);
    for (cell, taps) in columns.chunks(ROW_TAPS).enumerate() {
        let cell_start = cell * padded * ROW_TAPS;
        for c0 in (0..padded).step_by(4 * DEPTHWISE_BLOCK) {
            let count = source.count - c0;
            let mask: __mmask64 = if count >= 64 {
                u64::MAX
            } else {
                (1u64 << count) - 1
            };
            let tap = |j: usize| match taps[j] {
                // SAFETY: the column is inside the row and the mask keeps
                // the read inside the source's channels of that column.
                Some(column) => unsafe {
                    let p = row
                        .as_ptr()
                        .add(column * source.in_channels + source.first + c0);
                    _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, p.cast()), flip)
                },
                None => flip,
            };
            let blocks = (padded - c0) / DEPTHWISE_BLOCK;
            let at = dst[cell_start + c0 * ROW_TAPS..].as_mut_ptr();
            if blocks < 4 {
                let lanes = [tap(0), tap(1), tap(2), tap(3)];
                // SAFETY: `blocks` blocks of 64 bytes from `at` lie inside the cell.
                unsafe { store_narrow(lanes, blocks, at) };
                continue;
            }
            let (a0, a1, a2, a3) = (tap(0), tap(1), tap(2), tap(3));
            // Within each 128-bit lane: interleave the bytes of taps 0 and
            // 1 and of taps 2 and 3, then interleave those byte pairs.
            let t0 = _mm512_unpacklo_epi8(a0, a1);
            let t1 = _mm512_unpackhi_epi8(a0, a1);
            let t2 = _mm512_unpacklo_epi8(a2, a3);
            let t3 = _mm512_unpackhi_epi8(a2, a3);
            let parts = [
                _mm512_unpacklo_epi16(t0, t2),
                _mm512_unpackhi_epi16(t0, t2),
                _mm512_unpacklo_epi16(t1, t3),
                _mm512_unpackhi_epi16(t1, t3),
            ];
            // SAFETY: the 4 blocks of this chunk are below `padded`, so
            // their 256 bytes lie inside the cell.
            unsafe {
                store_lane::<0>(&parts, at);
                store_lane::<1>(&parts, at.add(64));
                store_lane::<2>(&parts, at.add(128));
                store_lane::<3>(&parts, at.add(192));
            }
        }
    }
}

/// Interleaves and stores the first `blocks` (1 to 3) 16-channel blocks of
/// 4 taps, as [`copy_row`] does for 4, with 128-bit operations only, so a
/// job of 16 or 32 channels does not pay for 64.
///
/// # Safety
/// The CPU must support AVX-512 BW, and `at` must have room for
/// `64 · blocks` bytes.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn store_narrow(taps: [__m512i; 4], blocks: usize, at: *mut u8) {
    for b in 0..blocks {
        let lane = |v: __m512i| match b {
            0 => _mm512_extracti32x4_epi32::<0>(v),
            1 => _mm512_extracti32x4_epi32::<1>(v),
            _ => _mm512_extracti32x4_epi32::<2>(v),
        };
        let [a0, a1, a2, a3] = taps.map(lane);
        let t0 = _mm_unpacklo_epi8(a0, a1);
        let t1 = _mm_unpackhi_epi8(a0, a1);
        let t2 = _mm_unpacklo_epi8(a2, a3);
        let t3 = _mm_unpackhi_epi8(a2, a3);
        let parts = [
            _mm_unpacklo_epi16(t0, t2),
            _mm_unpackhi_epi16(t0, t2),
            _mm_unpacklo_epi16(t1, t3),
            _mm_unpackhi_epi16(t1, t3),
        ];
        for (k, part) in parts.into_iter().enumerate() {
            // SAFETY: the caller guarantees 64 bytes for block `b`.
            unsafe { _mm_storeu_si128(at.add(64 * b + 16 * k).cast(), part) };
        }
    }
}

/// Computes `P` consecutive output pixels of one 16-channel block.
/// `rows[r]` points to tap vector `r` (depth tap, height tap, tap group) of
/// the tile's first pixel, and pixel `p` is `p · pixel_bytes` further.
/// Writes the accumulators of pixel `p` to `out + p · out_stride`.
///
/// # Safety
/// The CPU must support AVX-512 VNNI. Every `rows[r] + p · pixel_bytes`
/// must be 64 readable, 64-byte aligned bytes, `weights` must contain
/// `rows.len()` aligned vectors, `init` 16 values, and each output 16 values.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const P: usize>(
    rows: &[*const u8],
    pixel_bytes: usize,
    weights: *const u8,
    init: *const i32,
    out: *mut i32,
    out_stride: usize,
) {
    // SAFETY (all loads and stores): guaranteed by the caller.
    let start = unsafe { _mm512_loadu_si512(init.cast()) };
    let mut acc = [start; P];
    for (r, &row) in rows.iter().enumerate() {
        let w = unsafe { _mm512_load_si512(weights.add(64 * r).cast()) };
        for (p, a) in acc.iter_mut().enumerate() {
            let x = unsafe { _mm512_load_si512(row.add(p * pixel_bytes).cast()) };
            *a = _mm512_dpbusd_epi32(*a, x, w);
        }
    }
    for (p, &a) in acc.iter().enumerate() {
        unsafe { _mm512_storeu_si512(out.add(p * out_stride).cast(), a) };
    }
}

type TileFn = unsafe fn(&[*const u8], usize, *const u8, *const i32, *mut i32, usize);

/// Tile kernels by pixel count, 1 to [`TILE_PIXELS`].
const TILES: [TileFn; TILE_PIXELS] = [
    tile::<1>, tile::<2>, tile::<3>, tile::<4>, tile::<5>, tile::<6>, tile::<7>, tile::<8>,
];

/// One unit of parallel work: output rows `rows` of output plane `plane`
/// (image and depth position, flattened), channel blocks `blocks`.
#[derive(Clone, Copy)]
struct Job {
    plane: usize,
    rows: (usize, usize),
    blocks: (usize, usize),
}

/// Splits the work into about 4 jobs per thread: output planes first, then
/// channel blocks, then bands of output rows. Bands come last because each
/// band copies again the input rows its first output row shares with the
/// band before.
fn plan_jobs(geom: &ConvGeometry, blocks: usize) -> Vec<Job> {
    let planes = geom.batch * geom.output[0];
    let height = geom.output[1];
    let target = 4 * rayon::current_num_threads();
    let block_ranges = target.div_ceil(planes).clamp(1, blocks);
    // Jobs of fewer than 4 blocks copy their rows with narrower vectors;
    // split channels that finely only when there are few rows to split.
    let per_range = if height >= target {
        blocks.div_ceil(block_ranges).max(blocks.min(4))
    } else {
        blocks.div_ceil(block_ranges)
    };
    let bands = target
        .div_ceil(planes * blocks.div_ceil(per_range))
        .clamp(1, height);
    let rows_per_band = height.div_ceil(bands);
    let mut jobs = Vec::new();
    for plane in 0..planes {
        for y in (0..height).step_by(rows_per_band) {
            for b in (0..blocks).step_by(per_range) {
                jobs.push(Job {
                    plane,
                    rows: (y, (y + rows_per_band).min(height)),
                    blocks: (b, (b + per_range).min(blocks)),
                });
            }
        }
    }
    jobs
}

/// Rows of the tap buffer of one job: `span` slots per depth tap, each
/// holding one padded input row.
struct Ring<'a> {
    /// First byte of the buffer, which `Ring` borrows mutably for `'a`.
    start: *mut u8,
    row_bytes: usize,
    /// Padded rows per depth tap that one output row reads.
    span: usize,
    /// Padded input row in each slot, `None` while the slot is empty.
    slot_rows: Vec<Option<usize>>,
    buffer: PhantomData<&'a mut [Line]>,
}

impl<'a> Ring<'a> {
    /// Sizes `lines` for the rows of `geom` and returns the empty ring.
    fn new(geom: &ConvGeometry, row_bytes: usize, lines: &'a mut Vec<Line>) -> Ring<'a> {
        // The rows one output row reads lie in a window of `span`
        // consecutive padded rows. So `span` slots per depth tap, indexed by
        // the padded row modulo `span`, never evict a row still needed.
        let span = (geom.kernel[1] - 1) * geom.dilate[1] + 1;
        let slots = geom.kernel[0] * span;
        let count = slots * row_bytes / 64;
        if lines.len() < count {
            lines.resize(count, Line([0; 64]));
        }
        Ring {
            start: lines.as_mut_ptr().cast(),
            row_bytes,
            span,
            slot_rows: vec![None; slots],
            buffer: PhantomData,
        }
    }

    /// Returns the slot of padded row `h` of depth tap `kd`, calling `fill`
    /// on it first unless it already contains that row.
    fn row(&mut self, kd: usize, h: usize, fill: impl FnOnce(&mut [u8])) -> *const u8 {
        let slot = kd * self.span + h % self.span;
        // SAFETY: `slot` is below the slot count, and the buffer has
        // `row_bytes` per slot.
        let start = unsafe { self.start.add(slot * self.row_bytes) };
        if self.slot_rows[slot] != Some(h) {
            // SAFETY: as above, and no other reference to the slot is live.
            fill(unsafe { std::slice::from_raw_parts_mut(start, self.row_bytes) });
            self.slot_rows[slot] = Some(h);
        }
        start
    }
}

/// Runs one job, using `lines` as its tap buffer.
///
/// # Safety
/// As [`run`].
#[allow(clippy::too_many_arguments)]
unsafe fn run_job(
    isa: Isa,
    geom: &ConvGeometry,
    input: &[u8],
    signed: bool,
    weights: &DepthwiseVnniWeights,
    plan: &StagePlan,
    out: SyncPtr,
    columns: &[Option<usize>],
    job: &Job,
    lines: &mut Vec<Line>,
) {
    let channels = geom.out_channels;
    let [od, oh, ow] = geom.output;
    let (first_block, last_block) = job.blocks;
    let first_channel = first_block * DEPTHWISE_BLOCK;
    let padded = (last_block - first_block) * DEPTHWISE_BLOCK;
    let groups = weights.groups();
    let pixel_bytes = groups * padded * ROW_TAPS;
    let mut ring = Ring::new(geom, ow * pixel_bytes, lines);

    let n = job.plane / od;
    let z = job.plane % od;
    let in_row = geom.input[2] * geom.in_channels;
    let mut source = RowSource {
        row: None,
        in_channels: geom.in_channels,
        first: first_channel,
        count: (last_block * DEPTHWISE_BLOCK).min(channels) - first_channel,
        zero: if signed { 0x80 } else { 0 },
    };
    let mut vectors = Vec::with_capacity(weights.vectors());
    let mut shifted = Vec::with_capacity(weights.vectors());
    let mut acc = vec![0i32; ow * padded];

    for y in job.rows.0..job.rows.1 {
        // Tap vectors of the row's first pixel, for channel block 0 of the job.
        vectors.clear();
        for kd in 0..geom.kernel[0] {
            let d = (z * geom.stride[0] + kd * geom.dilate[0]) as isize - geom.pad[0] as isize;
            for kh in 0..geom.kernel[1] {
                let h = y * geom.stride[1] + kh * geom.dilate[1];
                let start = ring.row(kd, h, |dst| {
                    let sh = h as isize - geom.pad[1] as isize;
                    let inside = (0..geom.input[0] as isize).contains(&d)
                        && (0..geom.input[1] as isize).contains(&sh);
                    source.row = inside.then(|| {
                        let r = (n * geom.input[0] + d as usize) * geom.input[1] + sh as usize;
                        &input[r * in_row..(r + 1) * in_row]
                    });
                    // SAFETY: `dst` is one row of `columns.len()` cells,
                    // `columns` lie inside the input row, and the caller
                    // guarantees the tier.
                    unsafe { copy_row(&source, columns, padded, dst) };
                });
                for g in 0..groups {
                    // SAFETY: tap group `g` starts inside the row.
                    vectors.push(unsafe { start.add(g * padded * ROW_TAPS) });
                }
            }
        }

        for b in first_block..last_block {
            let init = if signed {
                weights.correction_ptr(b)
            } else {
                NO_CORRECTION.as_ptr()
            };
            let local = (b - first_block) * DEPTHWISE_BLOCK;
            for x0 in (0..ow).step_by(TILE_PIXELS) {
                let count = TILE_PIXELS.min(ow - x0);
                let offset = x0 * pixel_bytes + local * ROW_TAPS;
                shifted.clear();
                // SAFETY: pixel `x0` and block `b` lie inside the row.
                shifted.extend(vectors.iter().map(|&v| unsafe { v.add(offset) }));
                let at = x0 * padded + local;
                // SAFETY: each ring row has `ow` pixels of `pixel_bytes`,
                // with `padded` dwords per tap group. The ring and those
                // sizes are multiples of 64 bytes. The weights have
                // `vectors()` vectors per block, `acc` has `count` rows of
                // `padded` from `at`, and the caller guarantees the tier.
                unsafe {
                    TILES[count - 1](
                        &shifted,
                        pixel_bytes,
                        weights.block_ptr(b),
                        init,
                        acc[at..].as_mut_ptr(),
                        padded,
                    )
                };
            }
        }

        let first_pixel = (job.plane * oh + y) * ow;
        // SAFETY: the job owns these output elements: its channels of every
        // pixel of the row.
        unsafe {
            store_tile(
                isa,
                plan,
                &acc,
                padded,
                ow,
                source.count,
                first_channel,
                first_pixel * channels + first_channel,
                channels,
                out,
            )
        };
    }
}

/// Runs a depthwise convolution.
///
/// # Safety
/// The CPU must support AVX-512 VNNI, `isa` must be [`Isa::Avx512Vnni`],
/// `weights` must be packed for `geom`, and `out` must point to
/// `geom.output_len()` elements of the plan's kind, written by no one else.
pub(super) unsafe fn run(
    isa: Isa,
    geom: &ConvGeometry,
    input: &[u8],
    signed: bool,
    weights: &DepthwiseVnniWeights,
    plan: &StagePlan,
    out: SyncPtr,
) {
    if geom.output_len() == 0 {
        return;
    }
    let columns = tap_columns(geom);
    let blocks = geom.out_channels.div_ceil(DEPTHWISE_BLOCK);
    let jobs = plan_jobs(geom, blocks);
    jobs.par_iter().for_each(|job| {
        let mut lines = TAPS.with(|t| std::mem::take(&mut *t.borrow_mut()));
        // SAFETY: forwarded from the caller.
        unsafe {
            run_job(
                isa, geom, input, signed, weights, plan, out, &columns, job, &mut lines,
            )
        };
        TAPS.with(|t| *t.borrow_mut() = lines);
    });
}
