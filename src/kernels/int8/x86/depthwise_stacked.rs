//! Depthwise convolution for AVX-512 VNNI with VBMI, with kernel rows
//! stacked in the bytes of each lane. It runs kernels of depth 1 and at
//! most 3 rows with stride 1 along the height and a stage with a byte form
//! (see [`applies`]). Other depthwise layers run in `depthwise_vnni`.
//!
//! `vpdpbusd` adds the 4 byte products of each int32 lane. A depthwise layer
//! has no sum over channels, so here the 4 bytes of a lane hold one
//! channel's data from 4 consecutive input rows, and the weights hold that
//! channel's kernel rows at bytes 0-2 ([`StackedDepthwiseWeights`]). One
//! `vpdpbusd` then adds a whole kernel column for 16 channels. The same
//! stack, with the weights shifted one byte up, serves the next output row,
//! so each stack serves two output rows.
//!
//! For each pair of output rows, a job first stacks the input rows they
//! read into a per-thread buffer: for each column of the padded input row
//! and each group of 16 channels, one vector (two `vpermt2b` and a blend).
//! Padding rows and columns hold the data domain's zero, so the tiles that
//! follow have no border cases: for each width tap, a tile multiplies the
//! buffer vector of each of its pixels and groups by the group's weight
//! vector. Rows are processed in blocks of pixels that keep the buffer in
//! the first-level cache.
//!
//! Signed data is flipped to unsigned while stacking (`u = s + 128`, zero is
//! 0x80) and each accumulator starts at `-128 · Σ w` of its channel. int32
//! sums wrap, so the result is exact whenever the true dot product fits in
//! int32. Accumulators hold 16 channels in order; the byte form of the stage,
//! specialised per form so that no vector branches, narrows them with
//! [`pack_channels`].

use std::arch::x86_64::*;
use std::cell::RefCell;

use rayon::prelude::*;

use super::depthwise_vnni::{plan_jobs, tap_rows, Job};
use super::pack::{Line, StackedDepthwiseWeights, STACK_GROUP, STACK_ROWS};
use super::stage::{
    first_bytes, store_bytes_fns, ByteRows, LaneForm, StagePlan, StoreBytesFn, TileVectors,
};
use super::SyncPtr;
use crate::kernels::int8::conv::ConvGeometry;

/// Bytes of one vector.
const VECTOR: usize = 64;

/// Groups of one 64-byte load of a pixel's channels; jobs take whole
/// chunks of this many groups.
const CHUNK_GROUPS: usize = VECTOR / STACK_GROUP;

/// Accumulators of the largest tile, and its largest pixel count.
const TILE_ACCUMULATORS: usize = 16;

const TILE_PIXELS: usize = 8;

/// Output pixels of one block: its stack of one chunk takes at most
/// `(32 · stride + kernel span) · 256` bytes.
const BLOCK_PIXELS: usize = 32;

/// Stage values of one group of 16 channels, in channel order.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct GroupStage {
    init: [i32; 16],
    bias: [f32; 16],
    scale: [f32; 16],
}

/// `vpermt2b` orders: order `k` puts byte `16k + i` of the first table at
/// bytes `4i` and `4i + 2`, and byte `16k + i` of the second at bytes
/// `4i + 1` and `4i + 3`.
const STACK_ORDERS: [[u8; 64]; CHUNK_GROUPS] = {
    let mut orders = [[0u8; 64]; CHUNK_GROUPS];
    let mut k = 0;
    while k < CHUNK_GROUPS {
        let mut b = 0;
        while b < 64 {
            orders[k][b] = (16 * k + b / 4 + if b % 2 == 1 { 64 } else { 0 }) as u8;
            b += 1;
        }
        k += 1;
    }
    orders
};

/// Bytes 2 and 3 of every int32 lane.
const HIGH_PAIRS: __mmask64 = 0xCCCC_CCCC_CCCC_CCCC;

/// The fixed facts of one call.
struct Layer<'a> {
    geom: &'a ConvGeometry,
    input: &'a [u8],
    signed: bool,
    weights: &'a StackedDepthwiseWeights,
    plan: &'a StagePlan<'a>,
    form: LaneForm,
    /// The byte stores of `form`, by group count.
    stores: [StoreBytesFn; CHUNK_GROUPS],
    groups: usize,
    /// Input columns `lo..hi` of the padded row that are not padding.
    inside: (usize, usize),
}

impl Layer<'_> {
    /// Returns the stage values of group `group`.
    fn group_stage(&self, group: usize) -> GroupStage {
        let mut s = GroupStage {
            init: [0; 16],
            bias: [0.0; 16],
            scale: [1.0; 16],
        };
        let first = group * STACK_GROUP;
        for (i, c) in (first..(first + STACK_GROUP).min(self.geom.out_channels)).enumerate() {
            if self.signed {
                s.init[i] = self.weights.sum(c).wrapping_mul(-128);
            }
            (s.bias[i], s.scale[i]) = self.plan.bias_scale(c);
        }
        s
    }
}

/// Returns the byte form the kernel stores `plan` with, if it runs `geom`.
/// It runs a kernel of depth 1 and at most 3 rows, with stride and dilation
/// 1 along the height, and a stage with a byte form and no residual sum.
pub(super) fn applies(geom: &ConvGeometry, plan: &StagePlan) -> Option<LaneForm> {
    let shape = geom.kernel[0] == 1
        && geom.kernel[1] < STACK_ROWS
        && geom.stride[1] == 1
        && geom.dilate[1] == 1;
    plan.lane_form().filter(|f| shape && !f.sum)
}

/// The destination of one block's stack: the `G` groups of one chunk from
/// channel `c0`, for padded columns `columns`.
struct StackTarget {
    c0: usize,
    /// Bytes of the chunk's channels (at most 64).
    count: usize,
    columns: (usize, usize),
    /// Group `g` of padded column `col` at `out + ((col - columns.0) · G + g) · 64`.
    out: *mut u8,
}

/// Stacks 4 input rows (`rows`, null for padding) into `target`.
///
/// # Safety
/// The CPU must support AVX-512 VBMI. Non-null rows must be whole input
/// rows of `layer`, and `target.out` must have room for the target's columns.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vbmi")]
unsafe fn stack_rows<const SIGNED: bool, const G: usize>(
    layer: &Layer,
    rows: [*const u8; STACK_ROWS],
    target: &StackTarget,
) {
    let channels = layer.geom.in_channels;
    let flip = _mm512_set1_epi8(if SIGNED { i8::MIN } else { 0 });
    let mut orders = [flip; G];
    for (k, order) in orders.iter_mut().enumerate() {
        // SAFETY: the orders are 64-byte arrays.
        *order = unsafe { _mm512_loadu_si512(STACK_ORDERS[k].as_ptr().cast()) };
    }

    // A padding row loads nothing: a zero mask reads no memory, and its
    // address is the input's start.
    let mask = first_bytes(target.count);
    let masks = rows.map(|row| if row.is_null() { 0 } else { mask });
    let base = rows.map(|row| {
        let row = if row.is_null() {
            layer.input.as_ptr()
        } else {
            row
        };
        row.wrapping_add(target.c0)
    });

    // Padding columns get the data domain's zero, the others the rows' bytes.
    let (lo, hi) = target.columns;
    let (inside_lo, inside_hi) = layer.inside;
    let line_at = |col: usize| target.out.wrapping_add((col - lo) * G * VECTOR);
    for col in (lo..hi).filter(|c| !(inside_lo..inside_hi).contains(c)) {
        for k in 0..G {
            // SAFETY (all stores): the caller guarantees room for every
            // column of the target.
            unsafe { _mm512_storeu_si512(line_at(col).add(k * VECTOR).cast(), flip) };
        }
    }

    for col in lo.max(inside_lo)..hi.min(inside_hi) {
        let offset = (col - inside_lo) * channels;
        let mut r = [flip; STACK_ROWS];
        for t in 0..STACK_ROWS {
            // SAFETY: a masked-in row is whole, so the pixel's masked-in
            // channels are readable.
            r[t] =
                unsafe { _mm512_maskz_loadu_epi8(masks[t], base[t].wrapping_add(offset).cast()) };
        }
        let line = line_at(col);
        for (k, &order) in orders.iter().enumerate() {
            let low = _mm512_permutex2var_epi8(r[0], order, r[1]);
            let high = _mm512_permutex2var_epi8(r[2], order, r[3]);
            let v = _mm512_xor_si512(_mm512_mask_blend_epi8(HIGH_PAIRS, low, high), flip);
            unsafe { _mm512_storeu_si512(line.add(k * VECTOR).cast(), v) };
        }
    }
}

type StackFn = unsafe fn(&Layer, [*const u8; STACK_ROWS], &StackTarget);

/// Stacking functions by signedness, then group count.
const STACK_FNS: [[StackFn; CHUNK_GROUPS]; 2] = [
    [
        stack_rows::<false, 1>,
        stack_rows::<false, 2>,
        stack_rows::<false, 3>,
        stack_rows::<false, 4>,
    ],
    [
        stack_rows::<true, 1>,
        stack_rows::<true, 2>,
        stack_rows::<true, 3>,
        stack_rows::<true, 4>,
    ],
];

/// The inputs of one tile of pixels and groups.
struct TileInput {
    /// Buffer vector of the tile's first pixel and group at width tap 0.
    data: *const u8,
    pixel_step: usize,
    tap_step: usize,
    /// The tile's first group's first weight vector.
    weights: *const u8,
    group_weights: usize,
    taps: usize,
    /// The tile's first group's stage values.
    stage: *const GroupStage,
}

/// Accumulators of one tile: pixel `p`, group `g` at `p · G + g`.
type TileAccumulators = TileVectors;

/// Computes the accumulators of `P` pixels of `G` groups into `acc`.
///
/// # Safety
/// The CPU must support AVX-512 VNNI. The buffer, weights and stage values
/// must hold every vector the tile reads.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const P: usize, const G: usize>(input: &TileInput, out: &mut TileAccumulators) {
    // Plain loops over constant bounds, without closures: the compiler
    // unrolls them and keeps the accumulators in registers.
    let zero = _mm512_setzero_si512();
    let mut acc = [[zero; G]; P];
    for g in 0..G {
        // SAFETY (all loads): guaranteed by the caller.
        let init = unsafe { _mm512_load_si512((*input.stage.add(g)).init.as_ptr().cast()) };
        for a in acc.iter_mut() {
            a[g] = init;
        }
    }
    let mut w = [zero; G];
    for k in 0..input.taps {
        for (g, wg) in w.iter_mut().enumerate() {
            *wg = unsafe {
                _mm512_load_si512(
                    input
                        .weights
                        .add(g * input.group_weights + k * VECTOR)
                        .cast(),
                )
            };
        }
        let base = unsafe { input.data.add(k * input.tap_step) };
        for (p, a) in acc.iter_mut().enumerate() {
            let pixel = unsafe { base.add(p * input.pixel_step) };
            for g in 0..G {
                let x = unsafe { _mm512_load_si512(pixel.add(g * VECTOR).cast()) };
                a[g] = _mm512_dpbusd_epi32(a[g], x, w[g]);
            }
        }
    }
    for (p, a) in acc.iter().enumerate() {
        out[p * G..(p + 1) * G].copy_from_slice(a);
    }
}

type TileFn = unsafe fn(&TileInput, &mut TileAccumulators);

macro_rules! tiles_of {
    ($g:literal) => {
        [
            tile::<1, $g>,
            tile::<2, $g>,
            tile::<3, $g>,
            tile::<4, $g>,
            tile::<5, $g>,
            tile::<6, $g>,
            tile::<7, $g>,
            tile::<8, $g>,
        ]
    };
}

/// Tile kernels by group count, then pixel count.
const TILES: [[TileFn; TILE_PIXELS]; CHUNK_GROUPS] =
    [tiles_of!(1), tiles_of!(2), tiles_of!(3), tiles_of!(4)];

thread_local! {
    /// This thread's stack buffer.
    static STACKS: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a buffer of at least `lines` cache lines: this thread's,
/// or a fresh one when that is in use.
fn with_stacks<R>(lines: usize, f: impl FnOnce(*mut u8) -> R) -> R {
    STACKS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < lines {
                buffer.resize(lines, Line([0; 64]));
            }
            f(buffer.as_mut_ptr().cast())
        }
        Err(_) => {
            let mut buffer = vec![Line([0; 64]); lines];
            f(buffer.as_mut_ptr().cast())
        }
    })
}

/// One chunk of one job: `groups` groups from group `first`.
#[derive(Clone, Copy)]
struct Chunk {
    first: usize,
    groups: usize,
    /// Output channels of the chunk.
    count: usize,
}

/// Computes and stores the tiles of pixels `x0..x1` of output row `y`, and
/// of row `y + 1` too if `pair`, for `chunk`, from the stack in `buffer`.
///
/// # Safety
/// As [`run`]; the buffer must hold the block's stacked columns.
#[allow(clippy::too_many_arguments)]
unsafe fn block_tiles(
    layer: &Layer,
    stages: &[GroupStage],
    out: SyncPtr,
    (plane, y, pair): (usize, usize, bool),
    chunk: Chunk,
    (x0, x1): (usize, usize),
    buffer: *const u8,
) {
    let geom = layer.geom;
    let channels = geom.out_channels;
    let [_, oh, ow] = geom.output;
    let stride = geom.stride[2];
    let column_bytes = chunk.groups * VECTOR;
    let max_pixels = (TILE_ACCUMULATORS / chunk.groups).min(TILE_PIXELS);
    let c0 = chunk.first * STACK_GROUP;
    let tiles = &TILES[chunk.groups - 1];
    let store = layer.stores[chunk.groups - 1];
    let mut acc: TileAccumulators = [_mm512_setzero_si512(); 24];

    // Bias and scale of the chunk's groups (unused groups repeat the first).
    let group = |g: usize| &stages[chunk.first + if g < chunk.groups { g } else { 0 }];
    let params = (
        std::array::from_fn(|g| group(g).bias.as_ptr()),
        std::array::from_fn(|g| group(g).scale.as_ptr()),
    );

    for (row, shifted) in [(y, false), (y + 1, true)]
        .into_iter()
        .take(1 + usize::from(pair))
    {
        let first_pixel = (plane * oh + row) * ow;
        let mut x = x0;
        while x < x1 {
            let pixels = (x1 - x).min(max_pixels);
            let input = TileInput {
                data: buffer.wrapping_add((x - x0) * stride * column_bytes),
                pixel_step: stride * column_bytes,
                tap_step: geom.dilate[2] * column_bytes,
                weights: layer.weights.group_ptr(chunk.first, shifted),
                group_weights: geom.kernel[2] * VECTOR,
                taps: geom.kernel[2],
                stage: stages[chunk.first..].as_ptr(),
            };
            let sink = ByteRows {
                bias: params.0,
                scale: params.1,
                clip: layer.form.clip,
                out: out.0.wrapping_add((first_pixel + x) * channels + c0),
                step: channels,
                mask: first_bytes(chunk.count),
            };
            // SAFETY: the tile reads the stacked columns of its pixels and
            // the job owns the masked-in channels of these pixels; the
            // caller guarantees the tier.
            unsafe {
                tiles[pixels - 1](&input, &mut acc);
                store(&acc, pixels, &sink);
            }
            x += pixels;
        }
    }
}

/// Runs one job: for each pair of output rows (or last single row), chunk
/// and block of pixels, stacks the block's columns, then computes its tiles.
///
/// # Safety
/// As [`run`].
unsafe fn run_job(layer: &Layer, stages: &[GroupStage], out: SyncPtr, job: &Job) {
    let geom = layer.geom;
    let channels = geom.out_channels;
    let ow = geom.output[2];
    let stride = geom.stride[2];
    let span = (geom.kernel[2] - 1) * geom.dilate[2] + 1;
    let stack_bytes = ((BLOCK_PIXELS - 1) * stride + span) * CHUNK_GROUPS * VECTOR;
    let mut rows: Vec<*const u8> = Vec::with_capacity(STACK_ROWS);
    let mut next: Vec<*const u8> = Vec::with_capacity(STACK_ROWS);
    let stacks = &STACK_FNS[usize::from(layer.signed)];
    with_stacks(stack_bytes / VECTOR, |buffer| {
        let mut y = job.rows.0;
        while y < job.rows.1 {
            let pair = y + 1 < job.rows.1;
            tap_rows(geom, layer.input, job.plane, y, &mut rows);
            if pair {
                // The next row reads one more row below.
                tap_rows(geom, layer.input, job.plane, y + 1, &mut next);
                rows.push(*next.last().expect("a kernel has rows"));
            }
            let four = std::array::from_fn(|t| rows.get(t).copied().unwrap_or(std::ptr::null()));
            for chunk in job.chunks.0..job.chunks.1 {
                let first = chunk * CHUNK_GROUPS;
                let groups = (layer.groups - first).min(CHUNK_GROUPS);
                let c0 = first * STACK_GROUP;
                let chunk = Chunk {
                    first,
                    groups,
                    count: (groups * STACK_GROUP).min(channels - c0),
                };
                for x0 in (0..ow).step_by(BLOCK_PIXELS) {
                    let x1 = (x0 + BLOCK_PIXELS).min(ow);
                    let target = StackTarget {
                        c0,
                        count: chunk.count,
                        columns: (x0 * stride, (x1 - 1) * stride + span),
                        out: buffer,
                    };
                    // SAFETY: `tap_rows` gives whole rows, the buffer has
                    // room for a block's columns of one chunk, and the
                    // caller guarantees the tier.
                    unsafe {
                        stacks[groups - 1](layer, four, &target);
                        block_tiles(
                            layer,
                            stages,
                            out,
                            (job.plane, y, pair),
                            chunk,
                            (x0, x1),
                            buffer,
                        );
                    }
                }
            }
            y += 1 + usize::from(pair);
        }
    });
}

/// Returns whether this CPU runs [`run`].
pub(super) fn supported() -> bool {
    is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vbmi")
}

/// Runs a depthwise convolution that [`applies`] gives `form` for.
///
/// # Safety
/// The CPU must support AVX-512 VNNI and VBMI ([`supported`]), `weights`
/// must be packed for `geom`, and `out` must point to `geom.output_len()`
/// bytes of the plan's kind, written by no one else.
pub(super) unsafe fn run(
    geom: &ConvGeometry,
    input: &[u8],
    signed: bool,
    weights: &StackedDepthwiseWeights,
    plan: &StagePlan,
    form: LaneForm,
    out: SyncPtr,
) {
    if geom.output_len() == 0 {
        return;
    }
    let pad = geom.pad[2];
    let layer = Layer {
        geom,
        input,
        signed,
        weights,
        plan,
        form,
        stores: store_bytes_fns(form),
        groups: geom.out_channels.div_ceil(STACK_GROUP),
        inside: (pad, pad + geom.input[2]),
    };
    let stages: Vec<GroupStage> = (0..layer.groups).map(|g| layer.group_stage(g)).collect();
    let jobs = plan_jobs(geom, layer.groups.div_ceil(CHUNK_GROUPS));
    jobs.par_iter().for_each(|job| {
        // SAFETY: forwarded from the caller.
        unsafe { run_job(&layer, &stages, out, job) };
    });
}
