//! 1x1 convolutions with a short reduction (at most 32 input channels) on
//! AVX-512 VNNI registers, with the output stage applied in registers.
//!
//! With so few input channels, AMX tiles wait on their own latency: each
//! block is a load, one or two products and a store of the results before
//! the next block can reuse the registers. Here a tile of pixels by up to 64
//! output channels accumulates in vector registers over the few reduction
//! steps and goes straight through the byte form of the output stage, so no
//! accumulator is stored and read back.
//!
//! The weights are the AMX tiles' (see [`AmxWeights`]): row `s` of the tile
//! of 16 output channels is the `vpdpbusd` operand of reduction step `s` for
//! those channels. Each tile's pixels are first copied to a buffer with one
//! 64-byte row per pixel. There int8 data is flipped to uint8
//! (`u = s + 128`), so the accumulators start at `-128 · Σ w` of their
//! channel.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::amx::AmxWeights;
use super::stage::{first_bytes, store_bytes_fns, ByteRows, LaneForm, StagePlan, TileVectors};
use super::SyncPtr;

/// Most output channels of one tile column: 4 vectors of 16.
const COLUMN: usize = 64;

/// Bytes per staged pixel row.
const ROW: usize = 64;

/// Most input channels this kernel takes. Measured on MobileNet v2's
/// layers at batch 16, one thread, against the AMX blocks: 16, 24 and 32
/// input channels ran 1.11-1.57x faster (32 -> 32 channels equal), 64
/// input channels 0.88x.
const MAX_K: usize = 32;

/// Returns the byte stage form when this kernel runs a 1x1 convolution
/// with `k` input and `n` output channels under `plan`: at most [`MAX_K`] input channels, whole
/// vectors of output channels, and a byte output stage without a residual.
pub(super) fn applies(k: usize, n: usize, plan: &StagePlan) -> Option<LaneForm> {
    let form = plan.lane_form().filter(|f| !f.sum)?;
    (k <= MAX_K && n.is_multiple_of(16) && n > 0).then_some(form)
}

/// Pixels per tile for columns of up to `vectors` vectors: at most 24
/// accumulators.
fn tile_pixels(vectors: usize) -> usize {
    [24, 12, 8, 6][vectors - 1]
}

/// The per-column constants of a tile.
#[derive(Clone, Copy)]
struct Column {
    /// Accumulator start values, 16 per vector.
    init: [__m512i; 4],
    bias: [[f32; 16]; 4],
    scale: [[f32; 16]; 4],
    /// Weight vector of step `s` and vector `v` at `weights[v] + 64·s`.
    weights: [*const u8; 4],
}

// SAFETY: the weight pointers point into packed weights that stay
// borrowed and unchanged for the whole call; jobs only read them.
unsafe impl Sync for Column {}

/// Computes `MR` staged pixels (pixel `m` at `data + 64·m`) by the `NV`
/// vectors of `column`, over `steps` reduction steps, into `out` (pixel
/// `m`, vector `v` at `m·NV + v`).
///
/// # Safety
/// The CPU must support AVX-512 VNNI. `data` must hold `MR` rows of 64
/// bytes and each weight pointer `steps` vectors.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const MR: usize, const NV: usize>(
    data: *const u8,
    steps: usize,
    column: &Column,
    out: &mut TileVectors,
) {
    let mut acc = [[_mm512_setzero_si512(); NV]; MR];
    for row in acc.iter_mut() {
        row.copy_from_slice(&column.init[..NV]);
    }
    for s in 0..steps {
        // SAFETY: the caller guarantees `steps` weight vectors per pointer
        // and 64 readable bytes per staged row.
        unsafe {
            let w: [__m512i; NV] =
                std::array::from_fn(|v| _mm512_loadu_si512(column.weights[v].add(ROW * s).cast()));
            for (m, row) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_epi32(data.add(ROW * m + 4 * s).cast::<i32>().read_unaligned());
                for (a, &wv) in row.iter_mut().zip(&w) {
                    *a = _mm512_dpbusd_epi32(*a, x, wv);
                }
            }
        }
    }
    for (m, row) in acc.iter().enumerate() {
        out[m * NV..(m + 1) * NV].copy_from_slice(row);
    }
}

type TileFn = unsafe fn(*const u8, usize, &Column, &mut TileVectors);

/// Returns the tile kernel for tiles of `pixels` (from [`tile_pixels`])
/// by `vectors` vectors.
fn select(pixels: usize, vectors: usize) -> TileFn {
    match (pixels, vectors) {
        (24, 1) => tile::<24, 1>,
        (12, 1) => tile::<12, 1>,
        (12, 2) => tile::<12, 2>,
        (8, 1) => tile::<8, 1>,
        (8, 2) => tile::<8, 2>,
        (8, 3) => tile::<8, 3>,
        (6, 1) => tile::<6, 1>,
        (6, 2) => tile::<6, 2>,
        (6, 3) => tile::<6, 3>,
        (6, 4) => tile::<6, 4>,
        _ => unreachable!("no short-reduction tile of {pixels} pixels by {vectors} vectors"),
    }
}

/// Copies `rows` pixels of `k` bytes from `input` (pixel `m` at
/// `m·k`) to 64-byte rows of `staged`, flipping int8 to uint8; the other
/// bytes are uint8 zeros.
///
/// # Safety
/// The CPU must support AVX-512 BW; `input` must hold `rows·k` bytes and
/// `staged` `pixels·64` bytes for `rows <= pixels`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn stage_pixels(
    input: *const u8,
    k: usize,
    rows: usize,
    pixels: usize,
    signed: bool,
    staged: *mut u8,
) {
    let mask = if k >= ROW { u64::MAX } else { (1u64 << k) - 1 };
    let flip = _mm512_maskz_set1_epi8(if signed { mask } else { 0 }, i8::MIN);
    for m in 0..pixels {
        // SAFETY: pixel `m < rows` has `k` bytes in the input; every row of
        // `staged` has 64 bytes.
        unsafe {
            let x = if m < rows {
                _mm512_maskz_loadu_epi8(mask, input.add(m * k).cast())
            } else {
                _mm512_setzero_si512()
            };
            _mm512_storeu_si512(staged.add(m * ROW).cast(), _mm512_xor_si512(x, flip));
        }
    }
}

/// Returns `out` advanced by `offset` bytes.
///
/// # Safety
/// The result must stay inside the output buffer.
unsafe fn at(out: &SyncPtr, offset: usize) -> *mut u8 {
    // SAFETY: guaranteed by the caller.
    unsafe { out.0.add(offset) }
}

/// Runs a 1x1 convolution of `pixels` pixels of `k` input bytes each
/// (int8 when `signed`, else uint8) with `weights`, through the byte stage
/// `form` of `plan` into `out` (N bytes per pixel).
///
/// # Safety
/// The CPU must support AVX-512 VNNI, [`applies`] must have returned
/// `form` for these weights and `plan`, `input` must hold `pixels·k` bytes
/// and `out` `pixels·N` bytes written by no one else meanwhile.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn run(
    pixels: usize,
    k: usize,
    input: &[u8],
    signed: bool,
    weights: &AmxWeights,
    plan: &StagePlan,
    form: LaneForm,
    out: SyncPtr,
) {
    let n = weights.n;
    assert_eq!(
        input.len(),
        pixels * k,
        "short reduction: input is not pixels x K"
    );
    let steps = k.div_ceil(4);
    let vectors = n.div_ceil(16).min(4);
    let mr = tile_pixels(vectors);
    let columns: Vec<Column> = (0..n)
        .step_by(COLUMN)
        .map(|c| {
            let width = (n - c).min(COLUMN) / 16;
            let mut column = Column {
                init: [_mm512_setzero_si512(); 4],
                bias: [[0.0; 16]; 4],
                scale: [[1.0; 16]; 4],
                weights: [std::ptr::null(); 4],
            };
            for v in 0..width {
                let channel = c + 16 * v;
                if signed {
                    let sums: [i32; 16] =
                        std::array::from_fn(|i| weights.sum(channel + i).wrapping_mul(-128));
                    // SAFETY: an unaligned load of 16 values of a local array.
                    column.init[v] = unsafe { _mm512_loadu_si512(sums.as_ptr().cast()) };
                }
                for i in 0..16 {
                    (column.bias[v][i], column.scale[v][i]) = plan.bias_scale(channel + i);
                }
                column.weights[v] = weights.vectors_ptr(channel / 16);
            }
            column
        })
        .collect();
    let stores = store_bytes_fns(form);
    let tiles = pixels.div_ceil(mr);
    let per_job = tiles.div_ceil(crate::kernels::int8::jobs::target()).max(1);
    let jobs: Vec<(usize, usize)> = (0..tiles)
        .step_by(per_job)
        .map(|t| (t, (t + per_job).min(tiles)))
        .collect();
    jobs.par_iter().for_each(|&(first, last)| {
        let mut staged = [0u8; 24 * ROW];
        let mut acc: TileVectors = [_mm512_setzero_si512(); 24];
        for t in first..last {
            let p0 = t * mr;
            let rows = (pixels - p0).min(mr);
            // SAFETY: the tile's `rows` pixels lie inside the input, and
            // `staged` has 24 rows.
            unsafe {
                stage_pixels(
                    input[p0 * k..].as_ptr(),
                    k,
                    rows,
                    mr,
                    signed,
                    staged.as_mut_ptr(),
                )
            };
            for (c, column) in columns.iter().enumerate() {
                let width = (n - c * COLUMN).min(COLUMN) / 16;
                let sink = ByteRows {
                    bias: std::array::from_fn(|v| column.bias[v].as_ptr()),
                    scale: std::array::from_fn(|v| column.scale[v].as_ptr()),
                    clip: form.clip,
                    // SAFETY: the tile's pixels lie inside the output.
                    out: unsafe { at(&out, p0 * n + c * COLUMN) },
                    step: n,
                    mask: first_bytes(16 * width),
                };
                // SAFETY: `staged` has `mr` rows and each weight pointer
                // `steps` vectors. The job owns its pixels' output bytes,
                // `width·16` of them from channel `c·64` on.
                unsafe {
                    select(mr, width)(staged.as_ptr(), steps, column, &mut acc);
                    stores[width - 1](&acc, rows, &sink);
                }
            }
        }
    });
}
