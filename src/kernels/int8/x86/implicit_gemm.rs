//! Convolution as a register-tiled implicit GEMM on channels-last data.
//!
//! Output pixels (batch and spatial positions flattened) are the GEMM rows
//! and each group's output channels its columns. A tile of up to 6 pixels
//! reads its data in place when every tap of every pixel is inside the
//! input. The AVX-512 VNNI and AVX2 tiers first copy the input, a few
//! images at a time, with the padding written out (see [`DataCopy`]), so
//! every tile reads in place. Elsewhere (the AVX-512 BW tier, and uint8
//! data without padding on the VNNI tier) a tile with a tap outside the
//! input is staged: its taps are copied with the padding filled in, and the
//! microkernel runs on that copy. A 1x1 convolution with stride 1 and a
//! fully connected layer are the plain GEMM case: one tap, pixels one row
//! apart.

use std::cell::RefCell;
use std::thread::LocalKey;

use rayon::prelude::*;

use super::pack::{Panels, PANEL, STEP_CHANNELS};
use super::stage::StagePlan;
use super::tile::{TileArgs, TileFn, MAX_TILE_PIXELS, TILE_ROW};
use super::{store_tile, SyncPtr};
use crate::kernels::int8::conv::ConvGeometry;
use crate::kernels::int8::isa::Isa;

/// The form in which a tier's microkernels read the convolution input.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum DataCopy {
    /// In place, with tiles that touch the padding staged tap by tap.
    InPlace,
    /// From a byte copy of the input with the padding written out. int8
    /// data is stored as uint8 `s + 128` (`s ^ 0x80`, padding 0x80), so the
    /// microkernel only takes uint8 data and starts its accumulators at the
    /// `-128 · Σ w` correction. uint8 data without padding is read in place.
    Bytes,
    /// From a copy of the input widened to int16, with 0 in the padding.
    Widened,
}

/// Register tiling of one tier.
#[derive(Clone, Copy)]
pub(super) struct Tiling {
    pub pixels: usize,
    /// Pixels per tile when a group has at most 2 panels, so that narrow
    /// layers still fill the accumulator registers.
    pub narrow_pixels: usize,
    pub panels: usize,
    /// Returns the microkernel for (pixels, panels, signed). With
    /// [`DataCopy::Bytes`], `signed` means int8 data shifted to uint8.
    pub select: fn(usize, usize, bool) -> TileFn,
    pub copy: DataCopy,
}

thread_local! {
    /// This thread's buffer for data widened to int16, reused across calls.
    static WIDENED: RefCell<Vec<i16>> = const { RefCell::new(Vec::new()) };
    /// This thread's buffer for padded byte copies, reused across calls.
    pub(super) static PADDED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Returns the geometry of the same convolution on its input with the
/// padding written out. It has no padding, and each spatial size is large
/// enough for every tap of every output pixel.
pub(super) fn padded_geometry(geom: &ConvGeometry) -> ConvGeometry {
    let mut padded = *geom;
    for i in 0..3 {
        let reach = if geom.output[i] == 0 {
            0
        } else {
            (geom.output[i] - 1) * geom.stride[i] + (geom.kernel[i] - 1) * geom.dilate[i] + 1
        };
        padded.input[i] = reach.max(geom.pad[i] + geom.input[i]);
        padded.pad[i] = 0;
    }
    padded
}

/// Writes channels-last bytes of `geom` to `out` in the layout of `padded`
/// (from [`padded_geometry`]), each byte through `convert` and `fill` in
/// the padding.
pub(super) fn write_padded<T: Copy + Send + Sync>(
    input: &[u8],
    geom: &ConvGeometry,
    padded: &ConvGeometry,
    out: &mut [T],
    fill: T,
    convert: impl Fn(u8) -> T + Sync,
) {
    let c = geom.in_channels;
    let row = (padded.input[2] * c).max(1);
    // Bands of padded rows (image, depth, height), one per job.
    let rows = out.len() / row;
    let band = rows.div_ceil(crate::kernels::int8::jobs::target()).max(1);
    out.par_chunks_mut(row * band)
        .enumerate()
        .for_each(|(b, rows)| {
            for (i, dst) in rows.chunks_mut(row).enumerate() {
                write_padded_row(input, geom, padded, b * band + i, dst, fill, &convert);
            }
        });
}

/// Writes padded row `r` (image, depth and height flattened) of
/// [`write_padded`] to `dst`.
fn write_padded_row<T: Copy>(
    input: &[u8],
    geom: &ConvGeometry,
    padded: &ConvGeometry,
    r: usize,
    dst: &mut [T],
    fill: T,
    convert: &impl Fn(u8) -> T,
) {
    let c = geom.in_channels;
    let ph = padded.input[1];
    let h = r % ph;
    let d = (r / ph) % padded.input[0];
    let n = r / (ph * padded.input[0]);
    let (sd, sh) = (
        d as isize - geom.pad[0] as isize,
        h as isize - geom.pad[1] as isize,
    );
    let inside =
        (0..geom.input[0] as isize).contains(&sd) && (0..geom.input[1] as isize).contains(&sh);
    if !inside {
        dst.fill(fill);
        return;
    }
    let first = geom.pad[2] * c;
    let width = geom.input[2] * c;
    let at = ((n * geom.input[0] + sd as usize) * geom.input[1] + sh as usize) * width;
    dst[..first].fill(fill);
    for (d, &b) in dst[first..first + width]
        .iter_mut()
        .zip(&input[at..at + width])
    {
        *d = convert(b);
    }
    dst[first + width..].fill(fill);
}

/// Runs `f` on this thread's buffer `buffer`, grown to at least `len`
/// elements. The buffer only grows, so calls on smaller inputs do not
/// zero it again.
pub(super) fn with_buffer<T: Copy + Default>(
    buffer: &'static LocalKey<RefCell<Vec<T>>>,
    len: usize,
    f: impl FnOnce(&mut [T]),
) {
    // Taken out of the cell, so a nested call on this thread (from a
    // rayon task) gets a buffer of its own instead of a borrow error.
    let mut data = buffer.with(|b| std::mem::take(&mut *b.borrow_mut()));
    if data.len() < len {
        data.resize(len, T::default());
    }
    f(&mut data[..len]);
    buffer.with(|b| *b.borrow_mut() = data);
}

/// The input of one convolution and the byte offsets of its taps.
struct Source<'a> {
    geom: &'a ConvGeometry,
    input: &'a [u8],
    /// Bytes per data element: 1, or 2 for widened data.
    elem: usize,
    /// Byte that encodes a data value of 0: 0x80 for int8 data shifted to
    /// uint8, otherwise 0.
    zero: u8,
    /// Input channels per group rounded up to a multiple of 4.
    padded_channels: usize,
    /// Byte offset of each tap from the pixel's first tap, in the input.
    image_offsets: Vec<isize>,
    /// Byte offset of each tap in a staged pixel row.
    staged_offsets: Vec<isize>,
}

impl<'a> Source<'a> {
    fn new(geom: &'a ConvGeometry, input: &'a [u8], elem: usize, zero: u8) -> Self {
        let c = (geom.in_channels * elem) as isize;
        let [_, ih, iw] = geom.input.map(|d| d as isize);
        let padded_channels = geom.in_channels_per_group().div_ceil(STEP_CHANNELS) * STEP_CHANNELS;
        let mut image_offsets = Vec::new();
        for kd in 0..geom.kernel[0] {
            for kh in 0..geom.kernel[1] {
                for kw in 0..geom.kernel[2] {
                    let d = (kd * geom.dilate[0]) as isize;
                    let h = (kh * geom.dilate[1]) as isize;
                    let w = (kw * geom.dilate[2]) as isize;
                    image_offsets.push(((d * ih + h) * iw + w) * c);
                }
            }
        }
        let staged_offsets = (0..image_offsets.len())
            .map(|t| (t * padded_channels * elem) as isize)
            .collect();
        Source {
            geom,
            input,
            elem,
            zero,
            padded_channels,
            image_offsets,
            staged_offsets,
        }
    }

    fn taps(&self) -> usize {
        self.image_offsets.len()
    }

    /// Bytes of one staged pixel row.
    fn staged_row(&self) -> usize {
        self.taps() * self.padded_channels * self.elem
    }

    /// Input position of the first tap of output pixel `pixel`.
    fn origin(&self, pixel: &Pixel) -> [isize; 3] {
        let g = self.geom;
        std::array::from_fn(|i| (pixel.pos[i] * g.stride[i]) as isize - g.pad[i] as isize)
    }

    /// Offset of output pixel `pixel`'s first tap for group `group`, when
    /// every byte the microkernel reads for it lies inside the input.
    fn direct_base(&self, pixel: &Pixel, group: usize) -> Option<usize> {
        let g = self.geom;
        let n = pixel.batch;
        let origin = self.origin(pixel);
        for (i, &start) in origin.iter().enumerate() {
            let last = start + ((g.kernel[i] - 1) * g.dilate[i]) as isize;
            if start < 0 || last >= g.input[i] as isize {
                return None;
            }
        }
        let [d, h, w] = origin.map(|v| v as usize);
        let pixel = ((n * g.input[0] + d) * g.input[1] + h) * g.input[2] + w;
        let base = (pixel * g.in_channels + group * g.in_channels_per_group()) * self.elem;
        // The last step of a tap reads up to 3 channels past the group's
        // channels: harmless (their weights are 0) unless past the input.
        let end = base + *self.image_offsets.last()? as usize + self.padded_channels * self.elem;
        (end <= self.input.len()).then_some(base)
    }

    /// Returns the offset of `pixel`'s first tap for `group` when it and the
    /// next `count - 1` pixels lie on one output row, and every byte the
    /// microkernel reads for the first and last of them lies inside the
    /// input. Then so does every byte for the pixels between.
    fn direct_row(&self, pixel: &Pixel, count: usize, group: usize) -> Option<usize> {
        if count == 0 || pixel.pos[2] + count > self.geom.output[2] {
            return None;
        }
        let mut last = *pixel;
        last.pos[2] += count - 1;
        self.direct_base(&last, group)?;
        self.direct_base(pixel, group)
    }

    /// Copies output pixel `pixel`'s taps for `group` into `row`, with
    /// `self.zero` for taps outside the input and for the channels that pad
    /// each tap to a multiple of 4 (whose weights are 0).
    fn stage(&self, pixel: &Pixel, group: usize, row: &mut [u8]) {
        let g = self.geom;
        let icg = g.in_channels_per_group();
        let n = pixel.batch;
        let origin = self.origin(pixel);
        let tap_bytes = self.padded_channels * self.elem;
        let len = icg * self.elem;
        let mut t = 0;
        for kd in 0..g.kernel[0] {
            for kh in 0..g.kernel[1] {
                for kw in 0..g.kernel[2] {
                    let k = [kd, kh, kw];
                    let pos: [isize; 3] =
                        std::array::from_fn(|i| origin[i] + (k[i] * g.dilate[i]) as isize);
                    let inside = (0..3).all(|i| pos[i] >= 0 && pos[i] < g.input[i] as isize);
                    let tap = &mut row[t * tap_bytes..(t + 1) * tap_bytes];
                    if inside {
                        let [d, h, w] = pos.map(|v| v as usize);
                        let pixel = ((n * g.input[0] + d) * g.input[1] + h) * g.input[2] + w;
                        let start = (pixel * g.in_channels + group * icg) * self.elem;
                        tap[..len].copy_from_slice(&self.input[start..start + len]);
                        tap[len..].fill(self.zero);
                    } else {
                        tap.fill(self.zero);
                    }
                    t += 1;
                }
            }
        }
    }
}

/// An output pixel's batch index and (depth, height, width) position,
/// advanced without divisions.
#[derive(Clone, Copy, Default)]
pub(super) struct Pixel {
    pub batch: usize,
    pub pos: [usize; 3],
}

impl Pixel {
    /// Locates the pixel at flat index `p` (batch and positions in row-major order).
    pub(super) fn at(geom: &ConvGeometry, p: usize) -> Pixel {
        let [d, h, w] = geom.output;
        Pixel {
            batch: p / (d * h * w),
            pos: [(p / (h * w)) % d, (p / w) % h, p % w],
        }
    }

    /// Moves `count` pixels on in row-major order.
    fn advance_by(&mut self, geom: &ConvGeometry, count: usize) {
        if count > 0 && self.pos[2] + count < geom.output[2] {
            self.pos[2] += count;
            return;
        }
        for _ in 0..count {
            self.advance(geom);
        }
    }

    /// Moves to the next pixel in row-major order.
    pub(super) fn advance(&mut self, geom: &ConvGeometry) {
        for i in (0..3).rev() {
            self.pos[i] += 1;
            if self.pos[i] < geom.output[i] {
                return;
            }
            self.pos[i] = 0;
        }
        self.batch += 1;
    }
}

/// Pixels split into tiles whose sizes differ by at most one, so a layer
/// with few pixels (49 at 7x7) gets no 1-pixel tail tile, whose few
/// independent accumulators cannot hide the latency of the multiply-adds.
#[derive(Clone, Copy)]
struct TileSplit {
    /// Pixels of the smaller tiles.
    base: usize,
    /// Tiles, counted from the first, that have one pixel more than `base`.
    larger: usize,
}

impl TileSplit {
    fn new(pixels: usize, tiles: usize) -> TileSplit {
        let tiles = tiles.max(1);
        TileSplit {
            base: pixels / tiles,
            larger: pixels % tiles,
        }
    }

    /// First pixel of tile `tile` (the pixel count for `tile == tiles`).
    fn start(&self, tile: usize) -> usize {
        tile * self.base + tile.min(self.larger)
    }
}

/// One unit of parallel work: a block of output channels of one group over
/// a range of pixel tiles.
#[derive(Clone, Copy)]
struct Job {
    group: usize,
    /// First panel of the block within the group.
    panel: usize,
    panels: usize,
    tiles: (usize, usize),
}

/// Splits the work into about 4 jobs per thread, first by channel blocks,
/// then by pixel ranges.
fn plan_jobs(groups: usize, panels_per_group: usize, tiling: Tiling, tiles: usize) -> Vec<Job> {
    let blocks = panels_per_group.div_ceil(tiling.panels);
    let columns = groups * blocks;
    let target = crate::kernels::int8::jobs::target();
    let ranges = target.div_ceil(columns).clamp(1, tiles.max(1));
    let per_range = tiles.div_ceil(ranges).max(1);
    let mut jobs = Vec::with_capacity(columns * ranges);
    for start in (0..tiles).step_by(per_range) {
        let tile_range = (start, (start + per_range).min(tiles));
        for group in 0..groups {
            for b in 0..blocks {
                let panel = b * tiling.panels;
                jobs.push(Job {
                    group,
                    panel,
                    panels: tiling.panels.min(panels_per_group - panel),
                    tiles: tile_range,
                });
            }
        }
    }
    jobs
}

/// Bytes of padded input copied and then convolved at a time. Large images
/// go one at a time, so the copy stays in cache while the convolution
/// reads it (256 KiB is a fraction of the 1-2 MiB per-core L2 of AVX-512
/// CPUs). Small images are grouped, so they share the fork-join costs of
/// one copy and one convolution. Tests use a tiny budget, so that their
/// small shapes run both cases.
pub(super) const COPY_BUDGET: usize = if cfg!(test) { 1024 } else { 256 * 1024 };

/// The arguments of [`run`] that stay the same for every part of the batch.
#[derive(Clone, Copy)]
struct Call<'a> {
    isa: Isa,
    tiling: Tiling,
    /// The data the microkernels read is int8, or for [`DataCopy::Bytes`]
    /// int8 shifted to uint8.
    signed: bool,
    panels: &'a Panels,
    plan: &'a StagePlan<'a>,
    out: SyncPtr,
}

/// Runs the convolution on `input`, int8 (`signed`) or uint8 bytes.
///
/// # Safety
/// The CPU must run `isa`, `panels` must be packed for `tiling`'s
/// encoding and `geom`, and `out` must point to `geom.output_len()`
/// elements of the plan's output kind, written by no one else meanwhile.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn run(
    isa: Isa,
    tiling: Tiling,
    geom: &ConvGeometry,
    input: &[u8],
    signed: bool,
    panels: &Panels,
    plan: &StagePlan,
    out: SyncPtr,
) {
    let call = Call {
        isa,
        tiling,
        signed,
        panels,
        plan,
        out,
    };
    let copy = match tiling.copy {
        // uint8 data without padding is already what the kernel reads:
        // 1x1 stride-1 layers and GEMMs on it pay no copy.
        DataCopy::Bytes if !signed && geom.pad == [0; 3] => DataCopy::InPlace,
        copy => copy,
    };
    let elem = if copy == DataCopy::Widened { 2 } else { 1 };
    let image = ConvGeometry { batch: 1, ..*geom };
    let image_bytes = padded_geometry(&image).input_len() * elem;
    let per_copy = (COPY_BUDGET / image_bytes.max(1)).clamp(1, geom.batch.max(1));
    let in_len = image.input_len();
    let out_pixels: usize = geom.output.iter().product();
    // The last step of a tap reads up to 3 channels past the group's
    // channels, so each copy is followed by that many spare elements (any
    // value: they meet zero weights). Then no tile of a copy needs staging.
    let spare = STEP_CHANNELS - 1;
    let largest = padded_geometry(&ConvGeometry {
        batch: per_copy,
        ..*geom
    });
    let len = largest.input_len() + spare;
    // Each part: its first image, its images' input and its padded geometry.
    let parts: Vec<(usize, &[u8], ConvGeometry)> = (0..geom.batch)
        .step_by(per_copy)
        .map(|first| {
            let batch = per_copy.min(geom.batch - first);
            let part = ConvGeometry { batch, ..*geom };
            (first, &input[first * in_len..][..batch * in_len], part)
        })
        .collect();
    // Copies the part's input with its padding, then convolves it.
    let run_part = |&(first, src, part): &(usize, &[u8], ConvGeometry)| {
        let padded = padded_geometry(&part);
        let copy_len = padded.input_len();
        match copy {
            DataCopy::InPlace => unreachable!("in-place data is not copied"),
            DataCopy::Bytes => with_buffer(&PADDED, len, |buffer| {
                let copy = &mut buffer[..copy_len];
                if signed {
                    write_padded(src, &part, &padded, copy, 0x80, |b| b ^ 0x80);
                } else {
                    write_padded(src, &part, &padded, copy, 0, |b| b);
                }
                let zero = if signed { 0x80 } else { 0 };
                let data = &buffer[..copy_len + spare];
                // SAFETY: forwarded from the caller. The copy contains the
                // convolution input of images `first..` for `padded`,
                // shifted to uint8 when `signed`, as the kernel for
                // `signed` expects it.
                unsafe { run_on(&call, &padded, data, 1, zero, first * out_pixels) };
            }),
            DataCopy::Widened => with_buffer(&WIDENED, len, |buffer| {
                let copy = &mut buffer[..copy_len];
                if signed {
                    write_padded(src, &part, &padded, copy, 0, |b| b as i8 as i16);
                } else {
                    write_padded(src, &part, &padded, copy, 0, |b| b as i16);
                }
                let data: &[u8] = bytemuck::cast_slice(&buffer[..copy_len + spare]);
                // SAFETY: forwarded from the caller. The copy contains the
                // convolution input of images `first..` for `padded`, 2
                // bytes per element.
                unsafe { run_on(&call, &padded, data, 2, 0, first * out_pixels) };
            }),
        }
    };
    if copy == DataCopy::InPlace {
        // SAFETY: forwarded from the caller.
        unsafe { run_on(&call, geom, input, 1, 0, 0) };
    } else if parts.len() > 1 && parts.len() >= crate::kernels::int8::jobs::target() {
        // Enough parts for every job: each job copies and convolves whole
        // parts on its own thread, with no fork and join per part (an RGB
        // stem at batch 16 on 2 threads: 1.4 ms, against 1.6-1.8 ms part by
        // part).
        parts
            .par_iter()
            .for_each(|part| crate::kernels::int8::jobs::serially(|| run_part(part)));
    } else {
        parts.iter().for_each(run_part);
    }
}

/// [`run`] on `input` with `elem` bytes per element and `zero` as the byte
/// of a zero data value, writing the output pixels of `geom` from output
/// pixel `first_pixel` on.
///
/// # Safety
/// As [`run`], with `call.signed` matching the data in `input`.
unsafe fn run_on(
    call: &Call,
    geom: &ConvGeometry,
    input: &[u8],
    elem: usize,
    zero: u8,
    first_pixel: usize,
) {
    let Call {
        isa,
        tiling,
        signed,
        panels,
        plan,
        out,
    } = *call;
    let source = Source::new(geom, input, elem, zero);
    let pixels = geom.batch * geom.output.iter().product::<usize>();
    let shape = panels.shape;
    let tile_size = if shape.panels_per_group() <= 2 {
        tiling.narrow_pixels
    } else {
        tiling.pixels
    };
    let tiles = pixels.div_ceil(tile_size);
    let split = TileSplit::new(pixels, tiles);
    let jobs = plan_jobs(shape.groups, shape.panels_per_group(), tiling, tiles);
    // A 1x1, stride-1, unpadded geometry reads pixel `p` at `p` input pixels
    // from the start, which needs no per-pixel position arithmetic.
    let plain = (0..3).all(|i| {
        geom.kernel[i] == 1
            && geom.stride[i] == 1
            && geom.pad[i] == 0
            && geom.input[i] == geom.output[i]
    });
    let pixel_bytes = geom.in_channels * elem;
    jobs.par_iter().for_each(|job| {
        let mut staging = Vec::new();
        let mut result = [0i32; STRIP_TILES * MAX_TILE_PIXELS * TILE_ROW];
        let first_channel = job.panel * PANEL;
        let channels = (shape.out_per_group - first_channel).min(job.panels * PANEL);
        let group_offset = job.group * shape.in_per_group * elem;
        let mut cursor = Pixel::at(geom, split.start(job.tiles.0));
        let mut tile_pixels = [Pixel::default(); MAX_TILE_PIXELS];
        let channel = job.group * shape.out_per_group + first_channel;
        for strip in (job.tiles.0..job.tiles.1).step_by(STRIP_TILES) {
            let strip_end = (strip + STRIP_TILES).min(job.tiles.1);
            let strip_p0 = split.start(strip);
            for tile in strip..strip_end {
                let p0 = split.start(tile);
                let mr = split.start(tile + 1) - p0;
                let mut bases = [std::ptr::null::<u8>(); MAX_TILE_PIXELS];
                let mut direct = true;
                if plain {
                    for (m, base) in bases.iter_mut().enumerate().take(mr) {
                        let offset = (p0 + m) * pixel_bytes + group_offset;
                        // SAFETY: the pixel is inside the input, and its last
                        // step reads at most 3 channels past the group, which
                        // `direct_base` allows only inside the input: checked
                        // below for the tile's last pixel.
                        *base = unsafe { input.as_ptr().add(offset) };
                    }
                    let last = (p0 + mr - 1) * pixel_bytes + group_offset;
                    direct = last + source.padded_channels * elem <= input.len();
                } else if let Some(first) = source.direct_row(&cursor, mr, job.group) {
                    // One output row whose first and last pixels read only
                    // inside the input: so do those between, at even steps.
                    let step = geom.stride[2] * pixel_bytes;
                    for (m, base) in bases.iter_mut().enumerate().take(mr) {
                        // SAFETY: `direct_row` checked the row's last pixel.
                        *base = unsafe { input.as_ptr().add(first + m * step) };
                    }
                    cursor.advance_by(geom, mr);
                } else {
                    for m in 0..mr {
                        tile_pixels[m] = cursor;
                        cursor.advance(geom);
                        match source.direct_base(&tile_pixels[m], job.group) {
                            // SAFETY: `direct_base` returns offsets inside the input.
                            Some(offset) => bases[m] = unsafe { input.as_ptr().add(offset) },
                            None => direct = false,
                        }
                    }
                }
                let tap_offsets = if direct {
                    &source.image_offsets
                } else {
                    if plain {
                        let mut at = Pixel::at(geom, p0);
                        for pixel in tile_pixels.iter_mut().take(mr) {
                            *pixel = at;
                            at.advance(geom);
                        }
                    }
                    let row = source.staged_row();
                    staging.resize(tile_size * row, 0);
                    for m in 0..mr {
                        let dst = &mut staging[m * row..(m + 1) * row];
                        source.stage(&tile_pixels[m], job.group, dst);
                        bases[m] = dst.as_ptr();
                    }
                    &source.staged_offsets
                };
                let args = TileArgs {
                    bases,
                    tap_offsets,
                    steps: shape.steps(),
                    panels: panels.panel_ptr(job.group, job.panel),
                    panel_stride: panels.panel_stride(),
                    init: panels.correction_ptr(job.group, job.panel),
                    // SAFETY: the strip's pixels before this tile fill fewer
                    // than `STRIP_TILES · MAX_TILE_PIXELS` rows of `result`.
                    out: unsafe { result.as_mut_ptr().add((p0 - strip_p0) * TILE_ROW) },
                };
                let kernel = (tiling.select)(mr, job.panels, signed);
                // SAFETY: the caller guarantees the tier. Every base points to a
                // pixel whose taps and steps stay inside the input or the staging
                // rows, as `direct_base` checks and `staged_row` sizes them. The
                // panel pointers address `job.panels` packed panels, and `result`
                // has room for this tile's rows.
                unsafe { kernel(&args) };
            }
            let rows = split.start(strip_end) - strip_p0;
            // SAFETY: the job owns these output elements, which lie inside
            // the output buffer of `geom.output_len()` elements.
            unsafe {
                store_tile(
                    isa,
                    plan,
                    &result,
                    TILE_ROW,
                    rows,
                    channels,
                    channel,
                    (first_pixel + strip_p0) * geom.out_channels + channel,
                    geom.out_channels,
                    out,
                )
            };
        }
    });
}

/// Tiles computed before one call of the output stage, which then handles
/// all their rows at once.
const STRIP_TILES: usize = 4;

#[cfg(test)]
mod tests {
    use super::TileSplit;

    #[test]
    fn tile_split_sizes_differ_by_one() {
        for pixels in 1..200usize {
            let tiles = pixels.div_ceil(6);
            let split = TileSplit::new(pixels, tiles);
            assert_eq!(split.start(0), 0, "{pixels} pixels: first start");
            assert_eq!(split.start(tiles), pixels, "{pixels} pixels: end");
            let sizes: Vec<usize> = (0..tiles)
                .map(|t| split.start(t + 1) - split.start(t))
                .collect();
            let (min, max) = (sizes.iter().min(), sizes.iter().max());
            assert!(max <= Some(&6), "{pixels} pixels: tile sizes {sizes:?}");
            assert!(
                max.zip(min).is_some_and(|(a, b)| a - b <= 1),
                "{pixels} pixels: tile sizes {sizes:?}"
            );
        }
    }
}
