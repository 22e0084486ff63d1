//! Convolution and transposed convolution in NC(D)(H)W layout: im2col plus
//! GEMM for the general case, a direct kernel for depthwise convolution.

use super::gemm::{matmul, MatMut, MatRef, Threads};
use super::window::Window;
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;

/// Shape of one convolution: channels and groups plus the window, whose
/// image is the convolution input and grid the output.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub groups: usize,
    pub window: Window,
}

impl ConvShape {
    fn check(&self, input: usize, weight: usize, bias: Option<usize>, output: usize) {
        let w = &self.window;
        assert!(
            self.groups > 0
                && self.in_channels.is_multiple_of(self.groups)
                && self.out_channels.is_multiple_of(self.groups)
        );
        assert_eq!(
            input,
            self.batch * self.in_channels * w.image_size(),
            "conv: input length"
        );
        assert_eq!(
            weight,
            self.out_channels * (self.in_channels / self.groups) * w.kernel_size(),
            "conv: weight length"
        );
        assert_eq!(
            output,
            self.batch * self.out_channels * w.grid_size(),
            "conv: output length"
        );
        if let Some(b) = bias {
            assert_eq!(b, self.out_channels, "conv: bias length");
        }
    }

    /// True when each group has one input channel, so the direct depthwise kernel applies.
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.in_channels
    }
}

/// Copies one image row into one grid row: `dst[g] = src[g * stride + offset]`,
/// zero where the source index falls outside `src`.
fn gather_row(dst: &mut [f32], src: &[f32], stride: usize, offset: isize, range: (usize, usize)) {
    let (lo, hi) = range;
    dst[..lo].fill(0.0);
    dst[hi..].fill(0.0);
    if lo < hi {
        let start = (lo as isize * stride as isize + offset) as usize;
        if stride == 1 {
            dst[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
        } else {
            for (d, s) in dst[lo..hi]
                .iter_mut()
                .zip(src[start..].iter().step_by(stride))
            {
                *d = *s;
            }
        }
    }
}

/// Adds one grid row into one image row: `dst[g * stride + offset] += src[g]`.
fn scatter_row(dst: &mut [f32], src: &[f32], stride: usize, offset: isize, range: (usize, usize)) {
    let (lo, hi) = range;
    if lo < hi {
        let start = (lo as isize * stride as isize + offset) as usize;
        if stride == 1 {
            for (d, s) in dst[start..start + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
                *d += *s;
            }
        } else {
            for (d, s) in dst[start..].iter_mut().step_by(stride).zip(&src[lo..hi]) {
                *d += *s;
            }
        }
    }
}

/// Fills the column rows of one image channel for the grid rows
/// `rows.start..rows.end` (flattened over depth and height): row `t` of
/// `out` (a kernel tap) contains, for each of those grid positions, the image
/// value that tap reads, or zero in the padding.
fn im2col_channel(w: &Window, image: &[f32], rows: Range<usize>, out: &mut [f32]) {
    let [_, ih, iw] = w.image;
    let [_, gh, gw] = w.grid;
    let width = rows.len() * gw;
    for (t, row) in out.chunks_exact_mut(width).enumerate() {
        let [kd, kh, kw] = w.tap(t);
        let range_w = w.valid_range(2, kw);
        let offset_w = w.source(2, 0, kw);
        for (j, r) in rows.clone().enumerate() {
            let sd = w.source(0, r / gh, kd);
            let sh = w.source(1, r % gh, kh);
            let dst = &mut row[j * gw..(j + 1) * gw];
            if sd < 0 || sd >= w.image[0] as isize || sh < 0 || sh >= ih as isize {
                dst.fill(0.0);
            } else {
                let base = (sd as usize * ih + sh as usize) * iw;
                gather_row(dst, &image[base..base + iw], w.stride[2], offset_w, range_w);
            }
        }
    }
}

/// Adds the column rows of one image channel back into the image (the
/// adjoint of [`im2col_channel`]).
fn col2im_channel(w: &Window, rows: &[f32], image: &mut [f32]) {
    let [_, ih, iw] = w.image;
    let [gd, gh, gw] = w.grid;
    let grid = w.grid_size();
    for (t, row) in rows.chunks_exact(grid).enumerate() {
        let [kd, kh, kw] = w.tap(t);
        let range_w = w.valid_range(2, kw);
        let offset_w = w.source(2, 0, kw);
        for d in 0..gd {
            let sd = w.source(0, d, kd);
            if sd < 0 || sd >= w.image[0] as isize {
                continue;
            }
            for h in 0..gh {
                let sh = w.source(1, h, kh);
                if sh < 0 || sh >= ih as isize {
                    continue;
                }
                let base = (sd as usize * ih + sh as usize) * iw;
                let src = &row[(d * gh + h) * gw..(d * gh + h + 1) * gw];
                scatter_row(
                    &mut image[base..base + iw],
                    src,
                    w.stride[2],
                    offset_w,
                    range_w,
                );
            }
        }
    }
}

/// Unfolds `channels` consecutive image channels into a
/// `(channels · kernel_size) × (rows.len() · grid_width)` column matrix for
/// the grid rows `rows` (flattened over depth and height).
pub fn im2col(
    w: &Window,
    channels: usize,
    image: &[f32],
    rows: Range<usize>,
    col: &mut [f32],
    threads: Threads,
) {
    let per_channel = w.kernel_size() * rows.len() * w.grid[2];
    let image = &image[..channels * w.image_size()];
    let col = &mut col[..channels * per_channel];
    let run = |(c, out): (usize, &mut [f32])| {
        im2col_channel(
            w,
            &image[c * w.image_size()..(c + 1) * w.image_size()],
            rows.clone(),
            out,
        )
    };
    match threads {
        Threads::Pool => col.par_chunks_mut(per_channel).enumerate().for_each(run),
        Threads::Single => col.chunks_mut(per_channel).enumerate().for_each(run),
    }
}

/// Folds a column matrix back into `channels` image channels, adding every
/// contribution to what `image` already holds.
pub fn col2im_add(w: &Window, channels: usize, col: &[f32], image: &mut [f32], threads: Threads) {
    let per_channel = w.kernel_size() * w.grid_size();
    let image = &mut image[..channels * w.image_size()];
    let run = |(c, plane): (usize, &mut [f32])| {
        col2im_channel(w, &col[c * per_channel..(c + 1) * per_channel], plane)
    };
    match threads {
        Threads::Pool => image
            .par_chunks_mut(w.image_size())
            .enumerate()
            .for_each(run),
        Threads::Single => image.chunks_mut(w.image_size()).enumerate().for_each(run),
    }
}

/// Writes `bias[c]` (or zero) into every element of each output channel plane.
fn fill_bias(out: &mut [f32], plane: usize, bias: Option<&[f32]>) {
    for (c, dst) in out.chunks_exact_mut(plane).enumerate() {
        dst.fill(bias.map_or(0.0, |b| b[c]));
    }
}

/// Upper bound on the column buffer of one im2col tile, in floats (4 MiB),
/// so the tile is still in cache when the GEMM reads it.
const TILE_FLOATS: usize = 1 << 20;

/// Number of grid rows (flattened depth × height) per im2col tile.
fn tile_rows(w: &Window, depth: usize) -> usize {
    (TILE_FLOATS / (depth * w.grid[2]).max(1)).clamp(1, (w.grid[0] * w.grid[1]).max(1))
}

thread_local! {
    /// Column buffer reused across layers by each thread.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a scratch buffer of at least `len` floats: this thread's
/// reusable buffer, or a fresh one when that is already in use (a rayon
/// task stolen while the buffer is borrowed).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// Convolves one group of one image: im2col tile by tile, each tile
/// followed by its GEMM.
fn conv_group(
    w: &Window,
    image: &[f32],
    filters: MatRef<'_>,
    out: &mut [f32],
    cin_g: usize,
    cout_g: usize,
    threads: Threads,
) {
    let depth = filters.cols;
    let grid = w.grid_size();
    if w.is_pointwise() {
        let cols = MatRef::row_major(image, depth, grid);
        return matmul(
            MatMut::row_major(out, cout_g, grid),
            filters,
            cols,
            true,
            threads,
        );
    }
    let grid_rows = w.grid[0] * w.grid[1];
    let per_tile = tile_rows(w, depth);
    let gw = w.grid[2];
    with_scratch(depth * per_tile * gw, |col| {
        for start in (0..grid_rows).step_by(per_tile) {
            let rows = start..(start + per_tile).min(grid_rows);
            let width = rows.len() * gw;
            im2col(w, cin_g, image, rows.clone(), col, threads);
            let cols = MatRef::row_major(&col[..depth * width], depth, width);
            let dst = MatMut {
                data: &mut out[rows.start * gw..],
                rows: cout_g,
                cols: width,
                row_stride: grid,
            };
            matmul(dst, filters, cols, true, threads);
        }
    });
}

/// Convolves one image, one group at a time. With `Threads::Pool`,
/// many groups run in parallel with one GEMM thread each, and few groups
/// run in turn with threaded GEMMs.
fn conv_image(
    shape: &ConvShape,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    threads: Threads,
) {
    let w = &shape.window;
    let cin_g = shape.in_channels / shape.groups;
    let cout_g = shape.out_channels / shape.groups;
    let depth = cin_g * w.kernel_size();
    let grid = w.grid_size();
    fill_bias(out, grid, bias);

    let group = |g: usize, dst: &mut [f32], threads: Threads| {
        let image = &input[g * cin_g * w.image_size()..(g + 1) * cin_g * w.image_size()];
        let filters = MatRef::row_major(
            &weight[g * cout_g * depth..(g + 1) * cout_g * depth],
            cout_g,
            depth,
        );
        conv_group(w, image, filters, dst, cin_g, cout_g, threads);
    };
    let per_group = cout_g * grid;
    if threads == Threads::Pool && shape.groups > 1 && shape.groups >= rayon::current_num_threads()
    {
        out.par_chunks_mut(per_group)
            .enumerate()
            .for_each(|(g, dst)| group(g, dst, Threads::Single));
    } else {
        for (g, dst) in out.chunks_mut(per_group).enumerate() {
            group(g, dst, threads);
        }
    }
}

/// Computes the convolution `output[n, f] = bias[f] + Σ weight[f, c, taps] · input[n, g·C/G + c, window]`.
/// Weight layout is `(out_channels, in_channels / groups, kernel…)`.
pub fn conv_forward(
    shape: &ConvShape,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    shape.check(
        input.len(),
        weight.len(),
        bias.map(|b| b.len()),
        output.len(),
    );
    if shape.batch == 0 || shape.out_channels == 0 {
        return;
    }
    if shape.is_depthwise() {
        return depthwise_forward(shape, input, weight, bias, output);
    }
    let w = &shape.window;
    let in_len = shape.in_channels * w.image_size();
    let out_len = shape.out_channels * w.grid_size();
    let threads = rayon::current_num_threads();
    if shape.batch >= threads && threads > 1 {
        // Enough images to keep every thread busy with its own GEMMs.
        output
            .par_chunks_mut(out_len)
            .zip(input.par_chunks(in_len))
            .for_each(|(out, image)| conv_image(shape, image, weight, bias, out, Threads::Single));
    } else {
        for (out, image) in output.chunks_mut(out_len).zip(input.chunks(in_len)) {
            conv_image(shape, image, weight, bias, out, Threads::Pool);
        }
    }
}

/// Computes a depthwise convolution, where output channel `f` reads input channel
/// `f / (out_channels / in_channels)` only. Each output plane accumulates
/// one kernel tap at a time as a strided multiply-add over output rows.
fn depthwise_forward(
    shape: &ConvShape,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let w = shape.window;
    let multiplier = shape.out_channels / shape.in_channels;
    let taps = w.kernel_size();
    let grid = w.grid_size();
    let image = w.image_size();
    output
        .par_chunks_mut(grid)
        .enumerate()
        .for_each(|(plane, out)| {
            let n = plane / shape.out_channels;
            let f = plane % shape.out_channels;
            let c = f / multiplier;
            let src = &input
                [(n * shape.in_channels + c) * image..(n * shape.in_channels + c + 1) * image];
            let filter = &weight[f * taps..(f + 1) * taps];
            out.fill(bias.map_or(0.0, |b| b[f]));
            if w.stride[2] == 1 {
                depthwise_plane(&w, src, filter, out);
            } else {
                // Split each row into its stride phases so every tap reads
                // a contiguous run instead of a strided one.
                with_scratch(image, |phased| {
                    deinterleave_rows(src, w.image[2], w.stride[2], phased);
                    depthwise_plane(&w, phased, filter, out);
                });
            }
        });
}

/// Reorders every row of `src` (rows of `width`) by phase: the elements at
/// columns `p, p + stride, p + 2·stride, …` become contiguous, phase 0 first.
fn deinterleave_rows(src: &[f32], width: usize, stride: usize, dst: &mut [f32]) {
    if stride == 2 {
        // The common case, written as pairs so that it vectorizes.
        for (row, out) in src.chunks_exact(width).zip(dst.chunks_exact_mut(width)) {
            let (even, odd) = out.split_at_mut(width.div_ceil(2));
            for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(row.chunks_exact(2)) {
                *e = pair[0];
                *o = pair[1];
            }
            if width % 2 == 1 {
                even[width / 2] = row[width - 1];
            }
        }
        return;
    }
    for (row, out) in src.chunks_exact(width).zip(dst.chunks_exact_mut(width)) {
        let mut at = 0;
        for p in 0..stride.min(width) {
            for &v in row[p..].iter().step_by(stride) {
                out[at] = v;
                at += 1;
            }
        }
    }
}

/// Start of phase `p` in a row of `width` deinterleaved by `stride`.
fn phase_start(width: usize, stride: usize, p: usize) -> usize {
    (0..p).map(|q| (width - q).div_ceil(stride)).sum()
}

/// Accumulates one depthwise filter over one plane. With a column stride
/// above 1, `src` rows must be deinterleaved by [`deinterleave_rows`].
/// Output rows are the outer loop and taps the inner one, so each output
/// row stays in the L1 cache while every tap adds to it.
fn depthwise_plane(w: &Window, src: &[f32], filter: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked above).
        return unsafe { depthwise_plane_avx2(w, src, filter, out) };
    }
    depthwise_plane_body(w, src, filter, out)
}

/// [`depthwise_plane_body`] compiled for AVX2: 8 floats per vector instead of
/// SSE2's 4. Rust never contracts a multiply and an add into an FMA, so the
/// results are the same bits.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn depthwise_plane_avx2(w: &Window, src: &[f32], filter: &[f32], out: &mut [f32]) {
    depthwise_plane_body(w, src, filter, out)
}

#[inline(always)]
fn depthwise_plane_body(w: &Window, src: &[f32], filter: &[f32], out: &mut [f32]) {
    let [_, ih, iw] = w.image;
    let [gd, gh, gw] = w.grid;
    let sw = w.stride[2];
    // Per tap: weight, (kd, kh), valid output columns and the first source column.
    let mut taps = Vec::with_capacity(filter.len());
    for (t, &k) in filter.iter().enumerate() {
        let [kd, kh, kw] = w.tap(t);
        let (lo, hi) = w.valid_range(2, kw);
        if lo >= hi {
            continue;
        }
        let first = (lo as isize * sw as isize + w.source(2, 0, kw)) as usize;
        let start = if sw == 1 {
            first
        } else {
            phase_start(iw, sw, first % sw) + first / sw
        };
        taps.push((k, kd, kh, lo, hi, start));
    }
    for d in 0..gd {
        for h in 0..gh {
            let out_row = &mut out[(d * gh + h) * gw..(d * gh + h + 1) * gw];
            for &(k, kd, kh, lo, hi, start) in &taps {
                let sd = w.source(0, d, kd);
                let sh = w.source(1, h, kh);
                if sd < 0 || sd >= w.image[0] as isize || sh < 0 || sh >= ih as isize {
                    continue;
                }
                let at = (sd as usize * ih + sh as usize) * iw;
                let row = &src[at + start..at + start + (hi - lo)];
                for (o, x) in out_row[lo..hi].iter_mut().zip(row) {
                    *o += k * *x;
                }
            }
        }
    }
}

/// Shape of one transposed convolution. The window's image is the
/// deconvolution *output* and its grid the deconvolution *input*, so the
/// operation is the adjoint of the convolution with the same window.
#[derive(Clone, Copy, Debug)]
pub struct DeconvShape {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub groups: usize,
    pub window: Window,
}

/// Computes the transposed convolution with weight layout `(in_channels, out_channels / groups, kernel…)`:
/// every input element scatters `input · weight[c, f, taps]` into the output
/// window it maps to, plus `bias[f]` everywhere.
pub fn deconv_forward(
    shape: &DeconvShape,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let w = &shape.window;
    let groups = shape.groups;
    assert!(
        groups > 0
            && shape.in_channels.is_multiple_of(groups)
            && shape.out_channels.is_multiple_of(groups)
    );
    let cin_g = shape.in_channels / groups;
    let cout_g = shape.out_channels / groups;
    let depth = cout_g * w.kernel_size();
    let grid = w.grid_size();
    assert_eq!(
        input.len(),
        shape.batch * shape.in_channels * grid,
        "deconv: input length"
    );
    assert_eq!(
        weight.len(),
        shape.in_channels * depth,
        "deconv: weight length"
    );
    assert_eq!(
        output.len(),
        shape.batch * shape.out_channels * w.image_size(),
        "deconv: output length"
    );
    if let Some(b) = bias {
        assert_eq!(b.len(), shape.out_channels, "deconv: bias length");
    }
    let in_len = shape.in_channels * grid;
    let out_len = shape.out_channels * w.image_size();
    let plane_len = cout_g * w.image_size();
    // One group: col = W_gᵀ · x_g, then fold the columns into the output planes.
    let group = |g: usize, x: &[f32], planes: &mut [f32], col: &mut [f32], threads: Threads| {
        let filters = MatRef::row_major(
            &weight[g * cin_g * depth..(g + 1) * cin_g * depth],
            cin_g,
            depth,
        )
        .t();
        let src = MatRef::row_major(&x[g * cin_g * grid..(g + 1) * cin_g * grid], cin_g, grid);
        matmul(
            MatMut::row_major(col, depth, grid),
            filters,
            src,
            false,
            threads,
        );
        col2im_add(w, cout_g, col, planes, threads);
    };
    let parallel_groups = groups > 1 && groups >= rayon::current_num_threads();
    let mut col = vec![0.0f32; depth * grid];
    for (out, x) in output.chunks_mut(out_len).zip(input.chunks(in_len)) {
        fill_bias(out, w.image_size(), bias);
        if parallel_groups {
            out.par_chunks_mut(plane_len).enumerate().for_each_init(
                || vec![0.0f32; depth * grid],
                |col, (g, planes)| group(g, x, planes, col, Threads::Single),
            );
        } else {
            for (g, planes) in out.chunks_mut(plane_len).enumerate() {
                group(g, x, planes, &mut col, Threads::Pool);
            }
        }
    }
}

/// Computes the convolution with direct loops, as the reference for tests.
pub fn conv_reference(
    shape: &ConvShape,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    shape.check(
        input.len(),
        weight.len(),
        bias.map(|b| b.len()),
        output.len(),
    );
    let w = &shape.window;
    let cin_g = shape.in_channels / shape.groups;
    let cout_g = shape.out_channels / shape.groups;
    let taps = w.kernel_size();
    let [gd, gh, gw] = w.grid;
    let [id, ih, iw] = w.image;
    for n in 0..shape.batch {
        for f in 0..shape.out_channels {
            let g = f / cout_g;
            for od in 0..gd {
                for oh in 0..gh {
                    for ow in 0..gw {
                        let mut sum = bias.map_or(0.0, |b| b[f] as f64);
                        for c in 0..cin_g {
                            for t in 0..taps {
                                let [kd, kh, kw] = w.tap(t);
                                let (sd, sh, sw) = (
                                    w.source(0, od, kd),
                                    w.source(1, oh, kh),
                                    w.source(2, ow, kw),
                                );
                                if sd < 0
                                    || sh < 0
                                    || sw < 0
                                    || sd >= id as isize
                                    || sh >= ih as isize
                                    || sw >= iw as isize
                                {
                                    continue;
                                }
                                let cin = g * cin_g + c;
                                let x = input[(((n * shape.in_channels + cin) * id + sd as usize)
                                    * ih
                                    + sh as usize)
                                    * iw
                                    + sw as usize];
                                let k = weight[(f * cin_g + c) * taps + t];
                                sum += x as f64 * k as f64;
                            }
                        }
                        output[(((n * shape.out_channels + f) * gd + od) * gh + oh) * gw + ow] =
                            sum as f32;
                    }
                }
            }
        }
    }
}

/// Computes the transposed convolution by direct scattering, as the reference for tests.
pub fn deconv_reference(
    shape: &DeconvShape,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let w = &shape.window;
    let cin_g = shape.in_channels / shape.groups;
    let cout_g = shape.out_channels / shape.groups;
    let taps = w.kernel_size();
    let [gd, gh, gw] = w.grid;
    let [id, ih, iw] = w.image;
    let mut acc = vec![0.0f64; output.len()];
    for n in 0..shape.batch {
        for f in 0..shape.out_channels {
            let plane = (n * shape.out_channels + f) * w.image_size();
            for v in &mut acc[plane..plane + w.image_size()] {
                *v = bias.map_or(0.0, |b| b[f] as f64);
            }
        }
        for c in 0..shape.in_channels {
            let g = c / cin_g;
            for od in 0..gd {
                for oh in 0..gh {
                    for ow in 0..gw {
                        let x = input[(((n * shape.in_channels + c) * gd + od) * gh + oh) * gw + ow]
                            as f64;
                        for fl in 0..cout_g {
                            let f = g * cout_g + fl;
                            for t in 0..taps {
                                let [kd, kh, kw] = w.tap(t);
                                let (sd, sh, sw) = (
                                    w.source(0, od, kd),
                                    w.source(1, oh, kh),
                                    w.source(2, ow, kw),
                                );
                                if sd < 0
                                    || sh < 0
                                    || sw < 0
                                    || sd >= id as isize
                                    || sh >= ih as isize
                                    || sw >= iw as isize
                                {
                                    continue;
                                }
                                let k = weight[(c * cout_g + fl) * taps + t] as f64;
                                acc[(((n * shape.out_channels + f) * id + sd as usize) * ih
                                    + sh as usize)
                                    * iw
                                    + sw as usize] += x * k;
                            }
                        }
                    }
                }
            }
        }
    }
    for (o, a) in output.iter_mut().zip(acc) {
        *o = a as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(747796405).wrapping_add(2891336453);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn out_dim(len: usize, k: usize, s: usize, d: usize, p: usize) -> usize {
        (len + 2 * p - (d * (k - 1) + 1)) / s + 1
    }

    struct Case {
        batch: usize,
        cin: usize,
        cout: usize,
        groups: usize,
        image: Vec<usize>,
        kernel: Vec<usize>,
        stride: Vec<usize>,
        dilate: Vec<usize>,
        pad: Vec<usize>,
    }

    fn run_conv(c: &Case, with_bias: bool) {
        let grid: Vec<usize> = (0..c.image.len())
            .map(|i| out_dim(c.image[i], c.kernel[i], c.stride[i], c.dilate[i], c.pad[i]))
            .collect();
        let window = Window::new(&c.image, &grid, &c.kernel, &c.stride, &c.dilate, &c.pad);
        let shape = ConvShape {
            batch: c.batch,
            in_channels: c.cin,
            out_channels: c.cout,
            groups: c.groups,
            window,
        };
        let input = values(c.batch * c.cin * window.image_size(), 1);
        let weight = values(c.cout * c.cin / c.groups * window.kernel_size(), 2);
        let bias = values(c.cout, 3);
        let bias = with_bias.then_some(&bias[..]);
        let len = c.batch * c.cout * window.grid_size();
        let mut got = vec![f32::NAN; len];
        let mut want = vec![0.0; len];
        conv_forward(&shape, &input, &weight, bias, &mut got);
        conv_reference(&shape, &input, &weight, bias, &mut want);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() < 1e-4 * (1.0 + w.abs()),
                "element {i}: {g} vs {w}"
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn case(
        batch: usize,
        cin: usize,
        cout: usize,
        groups: usize,
        image: &[usize],
        kernel: &[usize],
        stride: &[usize],
        dilate: &[usize],
        pad: &[usize],
    ) -> Case {
        Case {
            batch,
            cin,
            cout,
            groups,
            image: image.to_vec(),
            kernel: kernel.to_vec(),
            stride: stride.to_vec(),
            dilate: dilate.to_vec(),
            pad: pad.to_vec(),
        }
    }

    #[test]
    fn conv_2d_matches_reference() {
        run_conv(
            &case(1, 3, 4, 1, &[7, 6], &[3, 3], &[1, 1], &[1, 1], &[1, 1]),
            true,
        );
        run_conv(
            &case(2, 4, 6, 2, &[9, 8], &[3, 2], &[2, 3], &[1, 1], &[1, 0]),
            false,
        );
        run_conv(
            &case(3, 5, 7, 1, &[11, 10], &[3, 3], &[2, 1], &[2, 3], &[2, 3]),
            true,
        );
        run_conv(
            &case(1, 8, 5, 1, &[4, 5], &[1, 1], &[1, 1], &[1, 1], &[0, 0]),
            true,
        );
        run_conv(
            &case(2, 6, 6, 3, &[5, 5], &[1, 1], &[2, 2], &[1, 1], &[0, 0]),
            true,
        );
        // One image with several non-depthwise groups runs the groups in parallel.
        run_conv(
            &case(1, 8, 4, 4, &[6, 5], &[3, 3], &[1, 1], &[1, 1], &[1, 1]),
            true,
        );
    }

    #[test]
    fn conv_spans_several_tiles() {
        // 16 channels × 3×3 taps over a 100×100 grid needs about 1.4 M
        // column floats, more than one tile holds.
        let c = case(1, 16, 2, 1, &[100, 100], &[3, 3], &[1, 1], &[1, 1], &[1, 1]);
        let window = Window::new(&[100, 100], &[100, 100], &[3, 3], &[1, 1], &[1, 1], &[1, 1]);
        assert!(tile_rows(&window, 16 * 9) < 100);
        run_conv(&c, true);
    }

    #[test]
    fn deinterleave_rows_groups_phases() {
        let src: Vec<f32> = (0..7).map(|v| v as f32).collect();
        let mut dst = vec![0.0; 7];
        deinterleave_rows(&src, 7, 3, &mut dst);
        assert_eq!(dst, [0.0, 3.0, 6.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(phase_start(7, 3, 1), 3);
        assert_eq!(phase_start(7, 3, 2), 5);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn depthwise_avx2_build_matches_baseline_bits() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        for stride in [1, 2] {
            let grid = [(13 - 1) / stride + 1, (29 - 1) / stride + 1];
            let (k, s, d, p) = ([3, 3], [stride, stride], [1, 1], [1, 1]);
            let w = Window::new(&[13, 29], &grid, &k, &s, &d, &p);
            let src = values(13 * 29, 3);
            let filter = values(9, 4);
            let mut base = vec![0.25f32; w.grid_size()];
            let mut fast = base.clone();
            depthwise_plane_body(&w, &src, &filter, &mut base);
            // SAFETY: AVX2 is supported (checked above).
            unsafe { depthwise_plane_avx2(&w, &src, &filter, &mut fast) };
            let same = base
                .iter()
                .zip(&fast)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "stride {stride}");
        }
    }

    #[test]
    fn conv_depthwise_matches_reference() {
        run_conv(
            &case(1, 3, 3, 3, &[9, 11], &[3, 3], &[2, 3], &[1, 2], &[1, 2]),
            true,
        );
        run_conv(
            &case(1, 4, 4, 4, &[7, 9], &[3, 3], &[1, 1], &[1, 1], &[1, 1]),
            true,
        );
        run_conv(
            &case(2, 3, 6, 3, &[8, 7], &[3, 3], &[2, 2], &[1, 1], &[1, 1]),
            false,
        );
        run_conv(
            &case(1, 5, 5, 5, &[6, 6], &[5, 3], &[1, 2], &[2, 1], &[4, 0]),
            true,
        );
    }

    #[test]
    fn conv_1d_and_3d_match_reference() {
        run_conv(&case(2, 3, 4, 1, &[13], &[4], &[3], &[1], &[2]), true);
        run_conv(&case(1, 4, 4, 4, &[10], &[3], &[1], &[2], &[2]), true);
        run_conv(
            &case(
                1,
                2,
                3,
                1,
                &[4, 5, 6],
                &[2, 3, 3],
                &[1, 2, 1],
                &[1, 1, 2],
                &[1, 1, 2],
            ),
            true,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn run_deconv(
        batch: usize,
        cin: usize,
        cout: usize,
        groups: usize,
        grid: &[usize],
        kernel: &[usize],
        stride: &[usize],
        dilate: &[usize],
        pad: &[usize],
        adj: &[usize],
    ) {
        let image: Vec<usize> = (0..grid.len())
            .map(|i| {
                stride[i] * (grid[i] - 1) + dilate[i] * (kernel[i] - 1) + 1 - 2 * pad[i] + adj[i]
            })
            .collect();
        let window = Window::new(&image, grid, kernel, stride, dilate, pad);
        let shape = DeconvShape {
            batch,
            in_channels: cin,
            out_channels: cout,
            groups,
            window,
        };
        let input = values(batch * cin * window.grid_size(), 4);
        let weight = values(cin * cout / groups * window.kernel_size(), 5);
        let bias = values(cout, 6);
        let len = batch * cout * window.image_size();
        let mut got = vec![f32::NAN; len];
        let mut want = vec![0.0; len];
        deconv_forward(&shape, &input, &weight, Some(&bias), &mut got);
        deconv_reference(&shape, &input, &weight, Some(&bias), &mut want);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() < 1e-4 * (1.0 + w.abs()),
                "element {i}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn deconv_matches_reference() {
        run_deconv(
            1,
            3,
            2,
            1,
            &[4, 5],
            &[3, 3],
            &[2, 2],
            &[1, 1],
            &[1, 1],
            &[1, 0],
        );
        run_deconv(
            2,
            4,
            6,
            2,
            &[3, 3],
            &[4, 4],
            &[2, 2],
            &[1, 1],
            &[1, 1],
            &[0, 0],
        );
        run_deconv(1, 2, 3, 1, &[7], &[3], &[3], &[2], &[2], &[2]);
        run_deconv(
            1,
            3,
            3,
            3,
            &[5, 4],
            &[2, 3],
            &[1, 2],
            &[2, 1],
            &[0, 1],
            &[0, 1],
        );
    }

    #[test]
    fn deconv_is_adjoint_of_conv() {
        // <conv(x), y> == <x, deconv(y)> for the same window and bias-free weights.
        let window = Window::new(&[6, 7], &[3, 4], &[3, 3], &[2, 2], &[1, 1], &[1, 1]);
        let conv = ConvShape {
            batch: 1,
            in_channels: 2,
            out_channels: 3,
            groups: 1,
            window,
        };
        let deconv = DeconvShape {
            batch: 1,
            in_channels: 3,
            out_channels: 2,
            groups: 1,
            window,
        };
        let x = values(2 * 42, 7);
        let y = values(3 * 12, 8);
        // Conv weight (3, 2, 3, 3) equals deconv weight (3 in, 2 out, 3, 3) read the same way.
        let weight = values(3 * 2 * 9, 9);
        let mut cx = vec![0.0; 3 * 12];
        let mut dy = vec![0.0; 2 * 42];
        conv_forward(&conv, &x, &weight, None, &mut cx);
        deconv_forward(&deconv, &y, &weight, None, &mut dy);
        let lhs: f32 = cx.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&dy).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-3, "{lhs} vs {rhs}");
    }
}
