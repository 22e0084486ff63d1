//! Intel AMX tiles for convolutions with one group and GEMMs with many
//! rows.
//!
//! One `tdpbusd` (uint8 data) or `tdpbssd` (int8 data) multiplies a tile of
//! 16 data rows by 64 bytes with a tile of 16 weight rows of 64 bytes. A
//! weight row is 16 output channels by 4 input channels, the layout of a
//! VNNI panel step. The 16 x 16 int32 products go to an accumulator tile.
//! Signed data needs no +128 shift: `tdpbssd` multiplies int8 by int8. The
//! sums wrap in int32, so the result is exact whenever the true dot product
//! fits in int32, as on the other tiers.
//!
//! A block is 32 pixels by 32 output channels: 2 data tiles, 2 weight
//! tiles and 4 accumulator tiles, the 8 tile registers. Each data tile row
//! is one pixel's reduction: read in place for a plain 1x1 convolution or a
//! GEMM, or gathered from the taps (see `amx_gather`). The weight tiles
//! come from [`AmxWeights`]. Accumulators go to a buffer of int32 rows and
//! through the same vector output stage as the VNNI tier.
//!
//! Linux hands out the tile registers only on request (`arch_prctl` with
//! `ARCH_REQ_XCOMP_PERM`); [`supported`] asks once, and the tier is only
//! offered when the request succeeds.
//!
//! NOTE: Rust's `asm!` has no operand class for tile registers, so the
//! blocks below cannot declare that they write tmm0-tmm7, and the tiles
//! carry state from one block to the next. This is sound only because
//! the compiler itself never uses tile registers.

use std::arch::asm;
use std::arch::x86_64::__cpuid_count;
use std::cell::RefCell;

use rayon::prelude::*;

use super::amx_gather::Gather;
use super::pack::{Lines, PANEL, STEP_CHANNELS};
use super::stage::StagePlan;
use super::tile::TILE_ROW;
use super::{store_tile, SyncPtr};
use crate::kernels::int8::isa::Isa;

/// Pixels of one block: two data tiles of 16 rows.
const BLOCK_PIXELS: usize = 32;

/// Output channels of one weight tile.
const TILE_CHANNELS: usize = PANEL;

/// Most bytes of one tile row.
const ROW_BYTES: usize = 64;

/// Output channels of one job's column: 2 pairs of weight tiles, which
/// fill the [`TILE_ROW`] int32 values of a result row.
const JOB_CHANNELS: usize = TILE_ROW;

/// Returns whether this CPU has AMX with int8 tiles and the operating
/// system lets this process use them.
pub(crate) fn supported() -> bool {
    let leaf = __cpuid_count(7, 0);
    let tile = (leaf.edx >> 24) & 1 == 1;
    let int8 = (leaf.edx >> 25) & 1 == 1;
    tile && int8 && request_tile_data()
}

/// Asks Linux for the tile data state (`XFEATURE_XTILEDATA`, 18) for this
/// process; every thread of the process may then use the tiles.
#[cfg(target_os = "linux")]
fn request_tile_data() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let status: i64;
    // SAFETY: this system call only changes which extended register state
    // the process may use; it reads and writes no memory of ours. It
    // clobbers rcx and r11, as every x86-64 Linux system call does.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => status,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if status != 0 {
        log::debug!("AMX tile data not granted: arch_prctl returned {status}; int8 kernels use AVX-512 VNNI");
    }
    status == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tile_data() -> bool {
    false
}

/// Weights of a (N, K) GEMM as AMX weight tiles.
///
/// The reduction is cut in chunks of `chunk` bytes of each pixel: all of K
/// (rounded up to a multiple of 4) when that is at most 64, else 64 bytes.
/// Tile `(pair, chunk, half)` contains output channels
/// `(2·pair + half)·16 ..` for that chunk: `chunk / 4` rows of 64 bytes,
/// row `r` holding 4 consecutive input channels per output channel, as a
/// VNNI panel step. Channels past N and K are zero, so a block may read
/// data bytes past a pixel's K (they meet zero weights) and a pair may
/// have a missing half.
#[derive(Clone)]
pub(super) struct AmxWeights {
    pub n: usize,
    /// Reduction bytes per data row.
    pub k: usize,
    chunk: usize,
    chunks: usize,
    lines: Lines,
    /// Sum of each output channel's weights.
    sums: Vec<i32>,
}

impl AmxWeights {
    /// Packs row-major (N = `n`, K = `k`) int8 weights: for a
    /// convolution, K is taps times input channels, in the reference
    /// `[output channel][tap][input channel]` order.
    pub(super) fn build(weights: &[i8], n: usize, k: usize) -> AmxWeights {
        assert_eq!(
            weights.len(),
            n * k,
            "AMX packing: weight count is not N x K"
        );
        let padded = k.div_ceil(STEP_CHANNELS) * STEP_CHANNELS;
        let (chunk, chunks) = if padded <= ROW_BYTES {
            (padded, 1)
        } else {
            (ROW_BYTES, k.div_ceil(ROW_BYTES))
        };
        let pairs = n.div_ceil(2 * TILE_CHANNELS);
        let tile_bytes = chunk / STEP_CHANNELS * ROW_BYTES;
        let mut lines = Lines::zeroed(pairs * chunks * 2 * tile_bytes);
        let bytes = lines.as_bytes_mut();
        for (o, row) in weights.chunks_exact(k.max(1)).enumerate().take(n) {
            let (tile, lane) = (o / TILE_CHANNELS, o % TILE_CHANNELS);
            let (pair, half) = (tile / 2, tile % 2);
            for (c, piece) in row.chunks(chunk).enumerate() {
                let tile_start = ((pair * chunks + c) * 2 + half) * tile_bytes;
                for (r, quad) in piece.chunks(STEP_CHANNELS).enumerate() {
                    let at = tile_start + r * ROW_BYTES + lane * STEP_CHANNELS;
                    bytes[at..at + quad.len()].copy_from_slice(bytemuck::cast_slice(quad));
                }
            }
        }
        let sums = weights
            .chunks_exact(k.max(1))
            .take(n)
            .map(|row| row.iter().map(|&w| i32::from(w)).sum())
            .collect();
        AmxWeights {
            n,
            k,
            chunk,
            chunks,
            lines,
            sums,
        }
    }

    /// Sum of output channel `channel`'s weights; 0 past the last channel.
    pub(super) fn sum(&self, channel: usize) -> i32 {
        self.sums.get(channel).copied().unwrap_or(0)
    }

    /// For weights of one chunk: the tile of output channels
    /// `16·tile ..`, whose row `s` is the `vpdpbusd` weight vector of
    /// reduction step `s` (4 bytes per channel).
    pub(super) fn vectors_ptr(&self, tile: usize) -> *const u8 {
        assert_eq!(self.chunks, 1, "AMX weights: vectors of several chunks");
        // SAFETY: tile `tile` lies inside pair `tile / 2`, whose two tiles
        // follow each other.
        unsafe { self.pair_ptr(tile / 2).add((tile % 2) * self.tile_bytes()) }
    }

    /// Rows of one weight tile.
    fn tile_rows(&self) -> usize {
        self.chunk / STEP_CHANNELS
    }

    /// Bytes of one weight tile.
    fn tile_bytes(&self) -> usize {
        self.tile_rows() * ROW_BYTES
    }

    /// Bytes one block reads from a pixel's first byte on.
    pub(super) fn reach(&self) -> usize {
        self.chunks * self.chunk
    }

    /// First weight tile of pair `pair` (its first chunk, first half).
    fn pair_ptr(&self, pair: usize) -> *const u8 {
        let offset = pair * self.chunks * 2 * self.tile_bytes();
        // SAFETY: `pair` is below the pair count, so the offset stays
        // inside the buffer.
        unsafe { self.lines.as_ptr().add(offset) }
    }
}

/// The tile configuration of `ldtilecfg` (palette 1).
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    /// Bytes per row of each tile register.
    columns: [u16; 16],
    rows: [u8; 16],
}

impl TileConfig {
    /// Registers 0 and 1 hold data (16 pixels by `chunk` bytes), 2 and 3
    /// weights (`chunk / 4` rows of 64 bytes), 4 to 7 accumulators (16 by
    /// 16 int32).
    fn for_chunk(chunk: usize) -> TileConfig {
        let mut config = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            columns: [0; 16],
            rows: [0; 16],
        };
        for t in 0..8 {
            let (columns, rows) = match t {
                0 | 1 => (chunk, 16),
                2 | 3 => (ROW_BYTES, chunk / STEP_CHANNELS),
                _ => (ROW_BYTES, 16),
            };
            config.columns[t] = columns as u16;
            config.rows[t] = rows as u8;
        }
        config
    }
}

/// Loads `config` into the tile registers of this thread, runs `f`, and
/// releases the tiles, also when `f` panics.
///
/// # Safety
/// [`supported`] must have returned `true`.
unsafe fn with_tiles(config: &TileConfig, f: impl FnOnce()) {
    /// Releases the tiles when dropped.
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            // SAFETY: the tiles were configured; this only returns them to
            // their initial state.
            unsafe { asm!("tilerelease", options(nostack, nomem)) };
        }
    }
    // SAFETY: the process may use the tiles (the caller's guarantee), and
    // `config` is a valid palette-1 configuration of 64 bytes.
    unsafe { asm!("ldtilecfg [{}]", in(reg) config, options(nostack, readonly)) };
    let _release = Release;
    f();
}

/// Multiplies one chunk: the data tiles at `$a0` and `$a1` (16 pixels
/// each, `$stride` bytes apart) by the weight tiles at `$b0` and `$b1`,
/// adding to accumulators 4 to 7 with the product instruction `$op`.
macro_rules! chunk_products {
    ($op:literal, $a0:expr, $a1:expr, $b0:expr, $b1:expr, $stride:expr) => {
        asm!(
            "tileloadd tmm0, [{a0} + {s}*1]",
            "tileloadd tmm2, [{b0} + {w}*1]",
            concat!($op, " tmm4, tmm0, tmm2"),
            "tileloadd tmm3, [{b1} + {w}*1]",
            concat!($op, " tmm5, tmm0, tmm3"),
            "tileloadd tmm1, [{a1} + {s}*1]",
            concat!($op, " tmm6, tmm1, tmm2"),
            concat!($op, " tmm7, tmm1, tmm3"),
            a0 = in(reg) $a0, a1 = in(reg) $a1, b0 = in(reg) $b0, b1 = in(reg) $b1,
            s = in(reg) $stride, w = in(reg) ROW_BYTES,
            options(nostack, readonly),
        )
    };
}

/// Computes one block: 32 pixels from `data` (pixel `m` at
/// `data + m·stride`) by the 32 output channels of the weight tiles from
/// `weights`, storing int32 row `m` at `out + m·TILE_ROW`.
///
/// # Safety
/// The tiles must be configured by [`TileConfig::for_chunk`] for the
/// weights' chunk. `weights.reach()` bytes from every pixel must be
/// readable. `out` must have room for 32 rows of [`TILE_ROW`] values.
unsafe fn block<const SIGNED: bool>(
    data: *const u8,
    stride: usize,
    weights: &AmxWeights,
    pair: usize,
    out: *mut i32,
) {
    let tile_bytes = weights.tile_bytes();
    let mut b = weights.pair_ptr(pair);
    let mut a0 = data;
    // SAFETY: pixel 16 is inside the block of 32 pixels.
    let mut a1 = unsafe { data.add(16 * stride) };
    // SAFETY: the tiles are configured (the caller's guarantee).
    unsafe {
        asm!(
            "tilezero tmm4",
            "tilezero tmm5",
            "tilezero tmm6",
            "tilezero tmm7",
            options(nostack, nomem)
        )
    };
    for _ in 0..weights.chunks {
        // SAFETY: each data tile reads 16 rows of `chunk` bytes inside the
        // readable reach of its pixels, each weight tile one packed tile.
        // The loads interleave with the products that need them: the tile
        // registers are not renamed, so a load waits for the products
        // still reading its register.
        unsafe {
            let b1 = b.add(tile_bytes);
            if SIGNED {
                chunk_products!("tdpbssd", a0, a1, b, b1, stride);
            } else {
                chunk_products!("tdpbusd", a0, a1, b, b1, stride);
            }
            a0 = a0.add(weights.chunk);
            a1 = a1.add(weights.chunk);
            b = b.add(2 * tile_bytes);
        }
    }
    let row = TILE_ROW * 4;
    // SAFETY: `out` has room for 32 rows of TILE_ROW int32 values, and each
    // store writes 16 rows of 16 values.
    unsafe {
        asm!(
            "tilestored [{c0} + {r}*1], tmm4",
            "tilestored [{c1} + {r}*1], tmm5",
            "tilestored [{c2} + {r}*1], tmm6",
            "tilestored [{c3} + {r}*1], tmm7",
            c0 = in(reg) out,
            c1 = in(reg) out.add(TILE_CHANNELS),
            c2 = in(reg) out.add(16 * TILE_ROW),
            c3 = in(reg) out.add(16 * TILE_ROW + TILE_CHANNELS),
            r = in(reg) row,
            options(nostack),
        )
    };
}

/// Pixels of a wide block: 4 data tiles of 16 rows, for weights of one
/// chunk (see [`wide_block`]).
const WIDE_PIXELS: usize = 64;

/// Computes one wide block: 64 pixels from `data` (pixel `m` at
/// `data + m·stride`) by the 32 output channels of pair `pair`, whose
/// weights are one chunk, storing int32 row `m` at `out + m·TILE_ROW`.
///
/// The weight tiles load once. Tile registers are not renamed, so with one
/// set of data and accumulator tiles each group of 16 pixels would wait
/// for the previous group's stores. The 4 groups alternate between two
/// sets, so that one group's products can run while the other stores.
///
/// # Safety
/// The tiles must be configured by [`TileConfig::for_chunk`] for the
/// weights' chunk, and the weights must have one chunk. `weights.reach()`
/// bytes from each of the 64 pixels must be readable. `out` must have room
/// for 64 rows of [`TILE_ROW`] values.
unsafe fn wide_block<const SIGNED: bool>(
    data: *const u8,
    stride: usize,
    weights: &AmxWeights,
    pair: usize,
    out: *mut i32,
) {
    let b0 = weights.pair_ptr(pair);
    // SAFETY: the pair's second tile follows its first.
    let b1 = unsafe { b0.add(weights.tile_bytes()) };

    // SAFETY (pointer arithmetic): pixels 16, 32 and 48 are inside the
    // block, and the rows of 16 pixels of results inside `out`.
    let a = |g: usize| unsafe { data.add(16 * g * stride) };
    let c = |g: usize| unsafe { out.add(16 * g * TILE_ROW) };

    macro_rules! wide {
        ($op:literal) => {
            asm!(
                "tileloadd tmm2, [{b0} + {w}*1]",
                "tileloadd tmm3, [{b1} + {w}*1]",
                "tileloadd tmm0, [{a0} + {s}*1]",
                "tilezero tmm4",
                "tilezero tmm5",
                concat!($op, " tmm4, tmm0, tmm2"),
                concat!($op, " tmm5, tmm0, tmm3"),
                "tileloadd tmm1, [{a1} + {s}*1]",
                "tilezero tmm6",
                "tilezero tmm7",
                concat!($op, " tmm6, tmm1, tmm2"),
                concat!($op, " tmm7, tmm1, tmm3"),
                "tilestored [{c0} + {r}*1], tmm4",
                "tilestored [{c0} + {r}*1 + 64], tmm5",
                "tileloadd tmm0, [{a2} + {s}*1]",
                "tilezero tmm4",
                "tilezero tmm5",
                concat!($op, " tmm4, tmm0, tmm2"),
                concat!($op, " tmm5, tmm0, tmm3"),
                "tilestored [{c1} + {r}*1], tmm6",
                "tilestored [{c1} + {r}*1 + 64], tmm7",
                "tileloadd tmm1, [{a3} + {s}*1]",
                "tilezero tmm6",
                "tilezero tmm7",
                concat!($op, " tmm6, tmm1, tmm2"),
                concat!($op, " tmm7, tmm1, tmm3"),
                "tilestored [{c2} + {r}*1], tmm4",
                "tilestored [{c2} + {r}*1 + 64], tmm5",
                "tilestored [{c3} + {r}*1], tmm6",
                "tilestored [{c3} + {r}*1 + 64], tmm7",
                b0 = in(reg) b0, b1 = in(reg) b1, w = in(reg) ROW_BYTES,
                a0 = in(reg) a(0), a1 = in(reg) a(1), a2 = in(reg) a(2), a3 = in(reg) a(3),
                s = in(reg) stride,
                c0 = in(reg) c(0), c1 = in(reg) c(1), c2 = in(reg) c(2), c3 = in(reg) c(3),
                r = in(reg) TILE_ROW * 4,
                options(nostack),
            )
        };
    }
    // SAFETY: the tiles are configured and every load and store stays
    // inside the reads and writes the caller guarantees. The second half of
    // a pair's results starts 16 int32 (64 bytes) into each row.
    unsafe {
        if SIGNED {
            wide!("tdpbssd");
        } else {
            wide!("tdpbusd");
        }
    }
}

thread_local! {
    /// This thread's buffer for the data rows of gathered or staged blocks.
    static STAGED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The source of a block's data rows.
pub(super) enum Rows<'a> {
    /// Pixel `p`'s reduction bytes start at `input[p · stride]`, as in a
    /// 1x1 convolution with stride 1 and no padding or a GEMM. A block
    /// whose reads would pass the input's end is copied first.
    InPlace { input: &'a [u8], stride: usize },
    /// Each block's rows are gathered from the taps of a convolution.
    Gathered(Gather<'a>),
}

impl Rows<'_> {
    /// Returns the first data row of the block of `rows` pixels from `p0`
    /// and the bytes between rows. The `reach` bytes of all 32 rows are
    /// readable. The rows may be copied to `staging` first.
    fn block(
        &self,
        p0: usize,
        rows: usize,
        reach: usize,
        staging: &mut Vec<u8>,
    ) -> (*const u8, usize) {
        match self {
            Rows::InPlace { input, stride } => {
                let stride = *stride;
                let last_read = (p0 + BLOCK_PIXELS - 1) * stride + reach;
                if last_read <= input.len() {
                    return (input[p0 * stride..].as_ptr(), stride);
                }
                staging.clear();
                staging.resize((BLOCK_PIXELS - 1) * stride + reach, 0);
                staging[..rows * stride].copy_from_slice(&input[p0 * stride..][..rows * stride]);
                (staging.as_ptr(), stride)
            }
            Rows::Gathered(gather) => {
                let stride = gather.row_bytes();
                let len = (BLOCK_PIXELS - 1) * stride + reach;
                if staging.len() < len {
                    staging.resize(len, 0);
                }
                gather.fill(p0, rows, staging);
                (staging.as_ptr(), stride)
            }
        }
    }
}

/// One unit of parallel work: a range of 64-channel columns over a range
/// of blocks.
#[derive(Clone, Copy)]
struct Job {
    columns: (usize, usize),
    blocks: (usize, usize),
}

/// Splits the work into about 4 jobs per thread. With `split_columns`, it
/// splits by channel columns first, then by pixels. Otherwise every job has
/// all columns, so that no two jobs write parts of the same output rows.
fn plan_jobs(columns: usize, blocks: usize, split_columns: bool) -> Vec<Job> {
    let target = crate::kernels::int8::jobs::target();
    let (column_step, ranges) = if split_columns {
        (1, target.div_ceil(columns))
    } else {
        (columns.max(1), target)
    };
    let ranges = ranges.clamp(1, blocks.max(1));
    let per_range = blocks.div_ceil(ranges).max(1);
    let mut jobs = Vec::new();
    for start in (0..blocks).step_by(per_range) {
        for column in (0..columns).step_by(column_step) {
            jobs.push(Job {
                columns: (column, (column + column_step).min(columns)),
                blocks: (start, (start + per_range).min(blocks)),
            });
        }
    }
    jobs
}

/// The arguments of [`run`] that every job shares.
struct Gemm<'a> {
    isa: Isa,
    pixels: usize,
    rows: &'a Rows<'a>,
    weights: &'a AmxWeights,
    plan: &'a StagePlan<'a>,
    kernel: BlockFn,
    /// The wide kernel, for weights of one chunk.
    wide: BlockFn,
    out: SyncPtr,
    /// Output pixel of the first data row.
    first_pixel: usize,
}

/// A block kernel for int8 or uint8 data.
type BlockFn = unsafe fn(*const u8, usize, &AmxWeights, usize, *mut i32);

/// Computes `pixels` rows of the GEMM of the data `rows` (int8 when
/// `signed`, else uint8) by the weights, through the output stage into
/// `out` from output pixel `first_pixel` on (N elements per pixel).
///
/// # Safety
/// [`supported`] must have returned `true`, and the CPU must run `isa`
/// (AVX-512 or better, for the output stage and gathering). `out` must
/// have the elements of these pixels, of the plan's kind, written by no one
/// else meanwhile.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn run(
    isa: Isa,
    pixels: usize,
    rows: &Rows,
    signed: bool,
    weights: &AmxWeights,
    plan: &StagePlan,
    out: SyncPtr,
    first_pixel: usize,
) {
    if let Rows::InPlace { input, stride } = rows {
        assert_eq!(
            input.len(),
            pixels * stride,
            "AMX GEMM: input is not pixels x stride"
        );
    }
    let gemm = Gemm {
        isa,
        pixels,
        rows,
        weights,
        plan,
        kernel: if signed {
            block::<true>
        } else {
            block::<false>
        },
        wide: if signed {
            wide_block::<true>
        } else {
            wide_block::<false>
        },
        out,
        first_pixel,
    };
    let blocks = pixels.div_ceil(BLOCK_PIXELS);
    let columns = weights.n.div_ceil(JOB_CHANNELS);
    let jobs = plan_jobs(columns, blocks, weights.n.is_multiple_of(JOB_CHANNELS));
    let config = TileConfig::for_chunk(weights.chunk);
    jobs.par_iter().for_each(|job| {
        let mut staging = STAGED.with(|s| std::mem::take(&mut *s.borrow_mut()));
        // SAFETY: forwarded from the caller.
        unsafe { with_tiles(&config, || run_job(&gemm, job, &mut staging)) };
        STAGED.with(|s| *s.borrow_mut() = staging);
    });
}

/// Runs one job with the tiles configured for the weights' chunk.
///
/// # Safety
/// As [`run`], on a thread whose tiles are configured.
unsafe fn run_job(gemm: &Gemm, job: &Job, staging: &mut Vec<u8>) {
    let end = (job.blocks.1 * BLOCK_PIXELS).min(gemm.pixels);
    let mut p0 = job.blocks.0 * BLOCK_PIXELS;
    let mut result = [0i32; WIDE_PIXELS * TILE_ROW];
    // Wide blocks read their rows in place, so they need one chunk of
    // weights and all 64 pixels' reach inside the input. They only pay
    // with one pair of weight tiles: with more, blocks of 32 pixels were
    // faster (16 -> 96 channels: 3.5-3.8 ms against 4.2-4.4 ms on
    // 16 x 112 x 112 pixels, one thread).
    let one_pair = gemm.weights.n <= 2 * TILE_CHANNELS;
    if let (1, true, Rows::InPlace { input, stride }) = (gemm.weights.chunks, one_pair, gemm.rows) {
        let reach = gemm.weights.reach();
        while p0 + WIDE_PIXELS <= end && (p0 + WIDE_PIXELS - 1) * stride + reach <= input.len() {
            let data = input[p0 * stride..].as_ptr();
            // SAFETY: the 64 rows' reach lies inside the input (checked
            // above); the rest is forwarded from the caller.
            unsafe {
                run_columns(
                    gemm,
                    job,
                    gemm.wide,
                    data,
                    *stride,
                    p0,
                    WIDE_PIXELS,
                    &mut result,
                )
            };
            p0 += WIDE_PIXELS;
        }
    }
    while p0 < end {
        let rows = (end - p0).min(BLOCK_PIXELS);
        let (data, stride) = gemm.rows.block(p0, rows, gemm.weights.reach(), staging);
        // SAFETY: `Rows::block` makes the reach of all 32 rows readable;
        // the rest is forwarded from the caller.
        unsafe { run_columns(gemm, job, gemm.kernel, data, stride, p0, rows, &mut result) };
        p0 += rows;
    }
}

/// Computes the job's columns for the block of `rows` pixels from `p0`
/// whose data rows start at `data`, with `kernel` (32 or 64 pixels), and
/// stores them through the output stage.
///
/// # Safety
/// As [`run_job`]; the kernel's pixels must have their reach readable.
#[allow(clippy::too_many_arguments)]
unsafe fn run_columns(
    gemm: &Gemm,
    job: &Job,
    kernel: BlockFn,
    data: *const u8,
    stride: usize,
    p0: usize,
    rows: usize,
    result: &mut [i32; WIDE_PIXELS * TILE_ROW],
) {
    let n = gemm.weights.n;
    let pairs_per_column = JOB_CHANNELS / (2 * TILE_CHANNELS);
    for column in job.columns.0..job.columns.1 {
        let first_channel = column * JOB_CHANNELS;
        let channels = (n - first_channel).min(JOB_CHANNELS);
        for pair in 0..channels.div_ceil(2 * TILE_CHANNELS) {
            // SAFETY: the caller guarantees the rows' reach; the pair's 32
            // columns lie inside `result`'s rows.
            unsafe {
                kernel(
                    data,
                    stride,
                    gemm.weights,
                    column * pairs_per_column + pair,
                    result.as_mut_ptr().add(pair * 2 * TILE_CHANNELS),
                )
            };
        }
        // SAFETY: the job owns these output elements; the CPU runs
        // `gemm.isa` (the caller's guarantee).
        unsafe {
            store_tile(
                gemm.isa,
                gemm.plan,
                &result[..],
                TILE_ROW,
                rows,
                channels,
                first_channel,
                (gemm.first_pixel + p0) * n + first_channel,
                n,
                gemm.out,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_tiles_hold_each_weight_once() {
        for (n, k) in [(1, 1), (17, 5), (40, 64), (33, 130), (64, 27)] {
            let weights: Vec<i8> = (0..n * k).map(|i| (i % 97) as i8 + 1).collect();
            let packed = AmxWeights::build(&weights, n, k);
            let bytes = packed.lines.as_bytes();
            let mut seen = 0;
            for o in 0..n {
                for i in 0..k {
                    let (tile, lane) = (o / 16, o % 16);
                    let (c, within) = (i / packed.chunk, i % packed.chunk);
                    let at = ((tile / 2 * packed.chunks + c) * 2 + tile % 2) * packed.tile_bytes()
                        + within / 4 * 64
                        + lane * 4
                        + within % 4;
                    assert_eq!(
                        bytes[at] as i8,
                        weights[o * k + i],
                        "n {n} k {k}: ({o}, {i})"
                    );
                    seen += 1;
                }
            }
            let nonzero = bytes.iter().filter(|&&b| b != 0).count();
            assert_eq!(nonzero, seen, "n {n} k {k}: only the weights are nonzero");
        }
    }
}
