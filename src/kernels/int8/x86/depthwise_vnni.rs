//! Depthwise convolution for AVX-512 VNNI on channels-last data as it is
//! stored: 64 channels (one vector of bytes) at a time, with no copy.
//!
//! `vpdpbusd` adds the 4 products of each int32 lane, and in natural order
//! the 4 bytes of a lane belong to 4 channels. So each tap takes 4
//! `vpdpbusd` with the same data and the 4 phase vectors of the packed
//! weights (see [`DepthwiseVnniWeights`]): accumulator `k` gathers the
//! channels at bytes `4j + k`, and the other 3 products of its lanes meet
//! weight 0. The output stage runs on these 4 accumulators as they are and
//! restores channel order while narrowing to bytes. The two saturating packs
//! put lane `j` of accumulator `k` at byte `16·(j / 4) + 4k + j % 4`. Then
//! one byte shuffle per 128-bit lane moves it to `4j + k`.
//!
//! When the channel count divides 64 and the stride along the width is 1,
//! one vector covers `64 / channels` adjacent pixels, so layers of 16 or 32
//! channels use the full vector width.
//!
//! Signed data is flipped to unsigned on load (`u = s + 128`, zero is 0x80)
//! and each accumulator starts at `-128 · Σ w` of its channel, as in the
//! implicit GEMM kernel. Padding taps add the data domain's zero. int32 sums
//! wrap, so the result is exact whenever the true dot product fits in int32.
//! Stages without a branch-free byte form store the accumulators in channel
//! order and run the general stage.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::pack::{DepthwiseVnniWeights, DEPTHWISE_CHUNK};
use super::stage::{
    dispatch_byte_form, first_bytes, lane_quantize, pack_bytes, LaneForm, StagePlan,
};
use super::{store_tile, SyncPtr};
use crate::kernels::int8::conv::ConvGeometry;
use crate::kernels::int8::isa::Isa;

/// Vectors of one register tile: 4 accumulators each, plus 4 weight
/// vectors, the data vector and the flip constant. `tile` stores at most 6.
const TILE_VECTORS: usize = 6;

/// Per-lane values of one chunk in accumulator order: `[k][j]` belongs to
/// the channel at byte `4j + k`.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Phased<T: Copy>([[T; 16]; 4]);

/// The stage of one chunk: the accumulators' start values and, for the
/// byte form, bias and scale in accumulator order.
#[derive(Clone, Copy)]
struct ChunkStage {
    init: Phased<i32>,
    bias: Phased<f32>,
    scale: Phased<f32>,
}

/// The destination of a tile's results.
#[derive(Clone, Copy)]
enum Sink {
    /// Through the byte form of the stage to the output, vector `v` at
    /// `out + v · step` bytes.
    Bytes {
        store: StoreFn,
        clip: (f32, f32),
        out: *mut u8,
        step: usize,
    },
    /// As int32 accumulators in channel order, vector `v` at `acc + v · step`.
    Accumulators { acc: *mut i32, step: usize },
}

/// The inputs of one tile. For each tap, vector 0 reads the data at
/// `tap + offset`, and vector `v` reads `v · step` bytes further. A null
/// tap is padding.
struct TileInput<'a> {
    taps: &'a [*const u8],
    offset: usize,
    step: usize,
    mask: __mmask64,
    /// The chunk's weights: 4 vectors per tap.
    weights: *const u8,
}

/// Byte order that undoes the packs' interleaving within a 128-bit lane:
/// output byte `4i + k` comes from byte `4k + i`.
const UNPACK_ORDER: [i8; 64] = {
    let mut order = [0i8; 64];
    let mut b = 0;
    while b < 64 {
        let within = b % 16;
        order[b] = ((b / 16) * 16 + 4 * (within % 4) + within / 4) as i8;
        b += 1;
    }
    order
};

/// Accumulators of one tile: 4 per vector, in accumulator order.
type TileAccumulators = [[__m512i; 4]; TILE_VECTORS];

/// Applies the byte form given by the constants (unsigned output,
/// activation code, post-sum ReLU, values inside int32) to the first
/// `vectors` vectors of `acc` and stores their masked-in bytes, vector `v`
/// at `out + v·step`, in channel order. Constant forms leave no branch per
/// vector.
///
/// # Safety
/// The CPU must support AVX-512 BW, and `out` must have room for the
/// vectors' masked-in bytes.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn store_bytes<const U: bool, const A: u8, const P: bool, const I: bool>(
    acc: &TileAccumulators,
    vectors: usize,
    stage: &ChunkStage,
    clip: (f32, f32),
    out: *mut u8,
    step: usize,
    mask: __mmask64,
) {
    let form = LaneForm {
        unsigned: U,
        act: A,
        clip,
        post_relu: P,
        sum: false,
        in_int32: I,
    };
    // SAFETY (all loads): 64-byte aligned arrays of 16 values, and the
    // order is a 64-byte array.
    let order = unsafe { _mm512_loadu_si512(UNPACK_ORDER.as_ptr().cast()) };
    let mut bias = [_mm512_setzero_ps(); 4];
    let mut scale = [_mm512_setzero_ps(); 4];
    for k in 0..4 {
        bias[k] = unsafe { _mm512_load_ps(stage.bias.0[k].as_ptr()) };
        scale[k] = unsafe { _mm512_load_ps(stage.scale.0[k].as_ptr()) };
    }
    for (v, a) in acc.iter().enumerate().take(vectors) {
        let mut q = [_mm512_setzero_si512(); 4];
        for k in 0..4 {
            q[k] = lane_quantize!(a[k], bias[k], scale[k], form);
        }
        let bytes = _mm512_shuffle_epi8(pack_bytes(q, U), order);
        // SAFETY: the caller guarantees room for the masked-in bytes.
        unsafe { _mm512_mask_storeu_epi8(out.add(v * step).cast(), mask, bytes) };
    }
}

type StoreFn =
    unsafe fn(&TileAccumulators, usize, &ChunkStage, (f32, f32), *mut u8, usize, __mmask64);

/// Returns the [`store_bytes`] function of `form`, which has no sum.
fn store_fn(form: LaneForm) -> StoreFn {
    fn pick<const U: bool, const A: u8, const P: bool, const I: bool>() -> StoreFn {
        store_bytes::<U, A, P, I>
    }
    dispatch_byte_form!(form, pick)
}

/// Stores one vector's accumulators as 64 int32 in channel (byte) order.
///
/// # Safety
/// The CPU must support AVX-512 F, and `out` must have room for 64 values.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn store_accumulators(acc: [__m512i; 4], out: *mut i32) {
    // Within each 128-bit lane, a 4x4 transpose of the 4 accumulators puts
    // lane `j` of each next to each other: `u[m]` contains, in 128-bit lane
    // `l`, bytes `16l + 4m .. 16l + 4m + 4`.
    let t0 = _mm512_unpacklo_epi32(acc[0], acc[1]);
    let t1 = _mm512_unpackhi_epi32(acc[0], acc[1]);
    let t2 = _mm512_unpacklo_epi32(acc[2], acc[3]);
    let t3 = _mm512_unpackhi_epi32(acc[2], acc[3]);
    let u0 = _mm512_unpacklo_epi64(t0, t2);
    let u1 = _mm512_unpackhi_epi64(t0, t2);
    let u2 = _mm512_unpacklo_epi64(t1, t3);
    let u3 = _mm512_unpackhi_epi64(t1, t3);
    // A 4x4 transpose of 128-bit lanes then gathers lane `l` of every `u`.
    let s0 = _mm512_shuffle_i32x4::<0x44>(u0, u1);
    let s1 = _mm512_shuffle_i32x4::<0x44>(u2, u3);
    let s2 = _mm512_shuffle_i32x4::<0xEE>(u0, u1);
    let s3 = _mm512_shuffle_i32x4::<0xEE>(u2, u3);
    let rows = [
        _mm512_shuffle_i32x4::<0x88>(s0, s1),
        _mm512_shuffle_i32x4::<0xDD>(s0, s1),
        _mm512_shuffle_i32x4::<0x88>(s2, s3),
        _mm512_shuffle_i32x4::<0xDD>(s2, s3),
    ];
    for (r, row) in rows.into_iter().enumerate() {
        // SAFETY: the caller guarantees 64 values at `out`.
        unsafe { _mm512_storeu_si512(out.add(16 * r).cast(), row) };
    }
}

/// Computes and stores `T` vectors of one chunk. `MASKED` loads only the
/// masked-in bytes; otherwise the mask must be full.
///
/// # Safety
/// The CPU must support AVX-512 VNNI. For every non-null tap, the
/// masked-in bytes at `tap + offset + v · step` must be readable for
/// `v < T`. The weights must contain 4 aligned vectors per tap, and the
/// sink must have room for `T` vectors.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const T: usize, const SIGNED: bool, const MASKED: bool>(
    input: &TileInput,
    stage: &ChunkStage,
    sink: Sink,
) {
    let flip = _mm512_set1_epi8(if SIGNED { i8::MIN } else { 0 });
    // SAFETY (all loads and stores): guaranteed by the caller.
    let init: [__m512i; 4] =
        std::array::from_fn(|k| unsafe { _mm512_load_si512(stage.init.0[k].as_ptr().cast()) });
    let mut acc = [init; T];
    for (t, &tap) in input.taps.iter().enumerate() {
        let w: [__m512i; 4] = std::array::from_fn(|k| unsafe {
            _mm512_load_si512(input.weights.add((4 * t + k) * DEPTHWISE_CHUNK).cast())
        });
        if tap.is_null() {
            // Padding: unsigned zero adds nothing; signed zero reads 0x80.
            if SIGNED {
                for a in acc.iter_mut() {
                    for k in 0..4 {
                        a[k] = _mm512_dpbusd_epi32(a[k], flip, w[k]);
                    }
                }
            }
            continue;
        }
        let first = unsafe { tap.add(input.offset) };
        for (v, a) in acc.iter_mut().enumerate() {
            let at = unsafe { first.add(v * input.step) };
            let mut x = if MASKED {
                unsafe { _mm512_maskz_loadu_epi8(input.mask, at.cast()) }
            } else {
                unsafe { _mm512_loadu_si512(at.cast()) }
            };
            if SIGNED {
                // Masked-off bytes become 0x80 and may meet nonzero weights
                // when the weights repeat. Those lanes are never stored.
                x = _mm512_xor_si512(x, flip);
            }
            for k in 0..4 {
                a[k] = _mm512_dpbusd_epi32(a[k], x, w[k]);
            }
        }
    }
    match sink {
        Sink::Bytes {
            store,
            clip,
            out,
            step,
        } => {
            let mut all: TileAccumulators = [[_mm512_setzero_si512(); 4]; TILE_VECTORS];
            all[..T].copy_from_slice(&acc);
            // SAFETY: the caller guarantees room for `T` vectors.
            unsafe { store(&all, T, stage, clip, out, step, input.mask) };
        }
        Sink::Accumulators { acc: out, step } => {
            // Each vector by a constant index: a loop over them may stay
            // rolled, and indexing the accumulators at run time would keep
            // them in memory (stored after every `vpdpbusd`) instead of
            // registers.
            macro_rules! each_vector {
                ($($v:literal)*) => {
                    $(if let Some(&a) = acc.get($v) {
                        unsafe { store_accumulators(a, out.add($v * step)) };
                    })*
                };
            }
            each_vector!(0 1 2 3 4 5);
        }
    }
}

type TileFn = unsafe fn(&TileInput, &ChunkStage, Sink);

/// Tile kernels of 1 to [`TILE_VECTORS`] vectors.
const fn tiles<const SIGNED: bool, const MASKED: bool>() -> [TileFn; TILE_VECTORS] {
    [
        tile::<1, SIGNED, MASKED>,
        tile::<2, SIGNED, MASKED>,
        tile::<3, SIGNED, MASKED>,
        tile::<4, SIGNED, MASKED>,
        tile::<5, SIGNED, MASKED>,
        tile::<6, SIGNED, MASKED>,
    ]
}

/// Tile kernels by data signedness, then masking, then vector count.
const TILES: [[[TileFn; TILE_VECTORS]; 2]; 2] = [
    [tiles::<false, false>(), tiles::<false, true>()],
    [tiles::<true, false>(), tiles::<true, true>()],
];

/// The fixed facts of one call.
struct Layer<'a> {
    isa: Isa,
    geom: &'a ConvGeometry,
    input: &'a [u8],
    signed: bool,
    weights: &'a DepthwiseVnniWeights,
    plan: &'a StagePlan<'a>,
    form: Option<LaneForm>,
    /// The byte store of `form`.
    store: Option<StoreFn>,
    /// Adjacent pixels per vector (1 unless the channels divide 64 and the
    /// width stride is 1).
    pixels: usize,
    /// Output columns whose taps all lie inside the input row.
    inner: (usize, usize),
}

impl<'a> Layer<'a> {
    fn new(
        isa: Isa,
        geom: &'a ConvGeometry,
        input: &'a [u8],
        signed: bool,
        weights: &'a DepthwiseVnniWeights,
        plan: &'a StagePlan<'a>,
    ) -> Layer<'a> {
        let pixels = if geom.stride[2] == 1 {
            weights.pixels_per_vector()
        } else {
            1
        };
        let form = plan.lane_form().filter(|f| !f.sum);
        Layer {
            isa,
            geom,
            input,
            signed,
            weights,
            plan,
            // The byte form has no residual sum; a sum takes the general stage.
            form,
            store: form.map(store_fn),
            pixels,
            inner: inner_columns(geom),
        }
    }

    fn chunks(&self) -> usize {
        self.geom.out_channels.div_ceil(DEPTHWISE_CHUNK)
    }

    /// Returns the stage values of chunk `chunk` in accumulator order.
    fn chunk_stage(&self, chunk: usize) -> ChunkStage {
        let mut s = ChunkStage {
            init: Phased([[0; 16]; 4]),
            bias: Phased([[0.0; 16]; 4]),
            scale: Phased([[1.0; 16]; 4]),
        };
        for b in 0..DEPTHWISE_CHUNK {
            let Some(c) = self.weights.byte_channel(chunk, b) else {
                continue;
            };
            let (k, j) = (b % 4, b / 4);
            if self.signed {
                s.init.0[k][j] = self.weights.sum(c).wrapping_mul(-128);
            }
            if self.form.is_some() {
                (s.bias.0[k][j], s.scale.0[k][j]) = self.plan.bias_scale(c);
            }
        }
        s
    }
}

/// Returns the output columns `lo..hi` whose taps all lie inside the
/// input row (`lo == hi` when there are none).
fn inner_columns(geom: &ConvGeometry) -> (usize, usize) {
    let (pad, stride) = (geom.pad[2], geom.stride[2]);
    let span = (geom.kernel[2] - 1) * geom.dilate[2];
    let lo = pad.div_ceil(stride).min(geom.output[2]);
    let hi = (geom.input[2] + pad)
        .checked_sub(span + 1)
        .map_or(0, |last| (last / stride + 1).min(geom.output[2]));
    (lo, hi.max(lo))
}

/// Fills `taps` with channel 0 of output column `x`'s data at each tap: one
/// pointer per (row of `rows`, width tap), null where the row is padding or
/// the column lies outside it.
///
/// # Safety
/// Each non-null row must be a whole input row of `geom`.
unsafe fn column_taps(
    geom: &ConvGeometry,
    rows: &[*const u8],
    x: usize,
    taps: &mut Vec<*const u8>,
) {
    taps.clear();
    for &row in rows {
        for kw in 0..geom.kernel[2] {
            let column = (x * geom.stride[2] + kw * geom.dilate[2])
                .checked_sub(geom.pad[2])
                .filter(|&c| c < geom.input[2]);
            taps.push(match column {
                // SAFETY: the column lies inside the row.
                Some(c) if !row.is_null() => unsafe { row.add(c * geom.in_channels) },
                _ => std::ptr::null(),
            });
        }
    }
}

/// One unit of parallel work: output rows `rows` of output plane `plane`
/// (image and depth position, flattened), chunks `chunks`.
#[derive(Clone, Copy)]
pub(super) struct Job {
    pub plane: usize,
    pub rows: (usize, usize),
    pub chunks: (usize, usize),
}

/// Splits the work into about 4 jobs per thread: output planes first, then
/// bands of output rows, then chunks.
pub(super) fn plan_jobs(geom: &ConvGeometry, chunks: usize) -> Vec<Job> {
    let planes = geom.batch * geom.output[0];
    let height = geom.output[1];
    let target = crate::kernels::int8::jobs::target();
    let bands = target.div_ceil(planes).clamp(1, height);
    let rows_per_band = height.div_ceil(bands);
    let bands = height.div_ceil(rows_per_band);
    let per_range = chunks.div_ceil(target.div_ceil(planes * bands).clamp(1, chunks));
    let mut jobs = Vec::new();
    for plane in 0..planes {
        for y in (0..height).step_by(rows_per_band) {
            for c in (0..chunks).step_by(per_range) {
                jobs.push(Job {
                    plane,
                    rows: (y, (y + rows_per_band).min(height)),
                    chunks: (c, (c + per_range).min(chunks)),
                });
            }
        }
    }
    jobs
}

/// Fills `rows` with the input rows that output row `y` reads: one per
/// (depth tap, height tap), null for a row of padding.
pub(super) fn tap_rows(
    geom: &ConvGeometry,
    input: &[u8],
    plane: usize,
    y: usize,
    rows: &mut Vec<*const u8>,
) {
    let [id, ih, iw] = geom.input;
    let (n, z) = (plane / geom.output[0], plane % geom.output[0]);
    let row_bytes = iw * geom.in_channels;
    rows.clear();
    for kd in 0..geom.kernel[0] {
        let d = (z * geom.stride[0] + kd * geom.dilate[0]).checked_sub(geom.pad[0]);
        for kh in 0..geom.kernel[1] {
            let h = (y * geom.stride[1] + kh * geom.dilate[1]).checked_sub(geom.pad[1]);
            rows.push(match (d, h) {
                (Some(d), Some(h)) if d < id && h < ih => {
                    let r = (n * id + d) * ih + h;
                    input[r * row_bytes..(r + 1) * row_bytes].as_ptr()
                }
                _ => std::ptr::null(),
            });
        }
    }
}

/// Returns the output columns outside the inner range, left then right.
fn border_columns(layer: &Layer) -> impl Iterator<Item = usize> {
    (0..layer.inner.0).chain(layer.inner.1..layer.geom.output[2])
}

/// Runs one job.
///
/// # Safety
/// As [`run`].
unsafe fn run_job(layer: &Layer, stages: &[ChunkStage], out: SyncPtr, job: &Job) {
    let geom = layer.geom;
    let channels = geom.out_channels;
    let [_, oh, ow] = geom.output;
    let pixels = layer.pixels;
    let (inner_lo, inner_hi) = layer.inner;
    let column_bytes = geom.stride[2] * channels;
    let kernel_taps: usize = geom.kernel.iter().product();
    // Channel-order accumulators of one row and chunk, for the general stage.
    let width = if pixels > 1 {
        channels
    } else {
        DEPTHWISE_CHUNK
    };
    let mut acc_row = if layer.form.is_some() {
        Vec::new()
    } else {
        vec![0i32; ow * width + DEPTHWISE_CHUNK]
    };
    let mut rows: Vec<*const u8> = Vec::with_capacity(geom.kernel[0] * geom.kernel[1]);
    let mut inner_taps: Vec<*const u8> = Vec::with_capacity(kernel_taps);
    let borders = inner_lo + (ow - inner_hi);
    let mut border_taps: Vec<*const u8> = Vec::with_capacity(borders * kernel_taps);
    let mut column: Vec<*const u8> = Vec::with_capacity(kernel_taps);
    let tiles = &TILES[usize::from(layer.signed)];

    for y in job.rows.0..job.rows.1 {
        tap_rows(geom, layer.input, job.plane, y, &mut rows);
        // Tap pointers of channel 0: the chunk's offset is added per tile.
        if inner_lo < inner_hi {
            // SAFETY: every tap of column `inner_lo` lies inside the row.
            unsafe { column_taps(geom, &rows, inner_lo, &mut inner_taps) };
        }
        border_taps.clear();
        for x in border_columns(layer) {
            // SAFETY: `column_taps` checks each tap against the row.
            unsafe { column_taps(geom, &rows, x, &mut column) };
            border_taps.extend_from_slice(&column);
        }
        let first_pixel = (job.plane * oh + y) * ow;
        let job_stages = &stages[job.chunks.0..job.chunks.1];
        for (chunk, stage) in (job.chunks.0..job.chunks.1).zip(job_stages) {
            let c0 = chunk * DEPTHWISE_CHUNK;
            let count = if pixels > 1 {
                channels
            } else {
                (channels - c0).min(DEPTHWISE_CHUNK)
            };
            let single_mask = first_bytes(count);
            let full_mask = if pixels > 1 { u64::MAX } else { single_mask };
            let weights = layer.weights.chunk_ptr(chunk);
            let mut x = 0;
            let mut border = 0;
            while x < ow {
                // A tile of whole vectors inside the row, or a single pixel.
                let (input, vectors, covered) = if (inner_lo..inner_hi).contains(&x) {
                    let vectors = ((inner_hi - x) / pixels).min(TILE_VECTORS);
                    let input = TileInput {
                        taps: &inner_taps,
                        offset: (x - inner_lo) * column_bytes + c0,
                        step: pixels * column_bytes,
                        mask: if vectors > 0 { full_mask } else { single_mask },
                        weights,
                    };
                    (input, vectors.max(1), (vectors * pixels).max(1))
                } else {
                    let taps = &border_taps[border * kernel_taps..(border + 1) * kernel_taps];
                    border += 1;
                    let input = TileInput {
                        taps,
                        offset: c0,
                        step: 0,
                        mask: single_mask,
                        weights,
                    };
                    (input, 1, 1)
                };
                let sink = match layer.form.zip(layer.store) {
                    Some((form, store)) => Sink::Bytes {
                        store,
                        clip: form.clip,
                        // SAFETY: pixel `x` of the row lies inside the output.
                        out: unsafe { out.0.add((first_pixel + x) * channels + c0) },
                        step: pixels * channels,
                    },
                    // A single pixel of a multi-pixel vector writes all 64
                    // values, over the next pixels' slots. That is harmless
                    // because `x` only grows, so later tiles rewrite them,
                    // and the last pixel's extra values land in the slack.
                    None => Sink::Accumulators {
                        acc: acc_row[x * width..].as_mut_ptr(),
                        step: DEPTHWISE_CHUNK,
                    },
                };
                let masked = input.mask != u64::MAX;
                // SAFETY: tiles of several vectors lie inside the row, where
                // every tap reads `pixels` whole pixels per vector; a
                // single pixel reads its masked-in channels. The output
                // (or `acc_row`, which has a vector of slack) has room for
                // the vectors, and the caller guarantees the tier.
                unsafe { tiles[usize::from(masked)][vectors - 1](&input, stage, sink) };
                x += covered;
            }
            if layer.form.is_none() {
                // SAFETY: the job owns these output elements: its channels
                // of every pixel of the row.
                unsafe {
                    store_tile(
                        layer.isa,
                        layer.plan,
                        &acc_row,
                        width,
                        ow,
                        count,
                        c0,
                        first_pixel * channels + c0,
                        channels,
                        out,
                    )
                };
            }
        }
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
    let layer = Layer::new(isa, geom, input, signed, weights, plan);
    let stages: Vec<ChunkStage> = (0..layer.chunks()).map(|c| layer.chunk_stage(c)).collect();
    let jobs = plan_jobs(geom, layer.chunks());
    jobs.par_iter().for_each(|job| {
        // SAFETY: forwarded from the caller.
        unsafe { run_job(&layer, &stages, out, job) };
    });
}
