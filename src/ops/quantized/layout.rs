//! Conversions between MXNet's channels-first tensors (N, C, spatial...) and
//! the channels-last order the int8 convolution kernels use, and reusable
//! per-thread scratch buffers for the converted copies.
//! The executor keeps entries between quantized operators channels-last
//! (see `executor::layout`), so these run only where a chain of them starts
//! or ends, or next to an operator that reads only channels-first data.

use bytemuck::Pod;
use rayon::prelude::*;
use std::cell::RefCell;

/// Spatial positions (or channels) handled per block: a block of the
/// transposed tensor stays in L1/L2 while it is written.
const BLOCK: usize = 64;

thread_local! {
    /// Free scratch buffers of this thread, as u64 words so any element type fits.
    static SCRATCH: RefCell<Vec<Vec<u64>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a scratch slice of `len` elements of `T`, reusing memory
/// between calls on the same thread. The contents on entry are unspecified.
pub fn with_scratch<T: Pod, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let words = (len * std::mem::size_of::<T>()).div_ceil(8);
    let mut buf = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < words {
        buf.resize(words, 0);
    }
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf[..words]);
    let result = f(bytemuck::cast_slice_mut(
        &mut bytes[..len * std::mem::size_of::<T>()],
    ));
    SCRATCH.with(|s| s.borrow_mut().push(buf));
    result
}

/// (N, C, S) to (N, S, C), where S is the flattened spatial size.
pub fn to_channels_last_into<T: Pod + Send + Sync>(
    src: &[T],
    batch: usize,
    channels: usize,
    spatial: usize,
    dst: &mut [T],
) {
    let image = channels * spatial;
    if image == 0 {
        return;
    }
    for (src, dst) in src.chunks(image).zip(dst.chunks_mut(image)).take(batch) {
        // Each chunk holds BLOCK spatial positions with all their channels.
        dst.par_chunks_mut(BLOCK * channels)
            .enumerate()
            .for_each(|(block, out)| {
                let s0 = block * BLOCK;
                let width = out.len() / channels;
                for c in 0..channels {
                    let row = &src[c * spatial + s0..c * spatial + s0 + width];
                    for (s, &v) in row.iter().enumerate() {
                        out[s * channels + c] = v;
                    }
                }
            });
    }
}

/// (N, C, S) to (N, S, C) in a new vector.
pub fn to_channels_last<T: Pod + Send + Sync>(
    src: &[T],
    batch: usize,
    channels: usize,
    spatial: usize,
) -> Vec<T> {
    let mut dst = vec![T::zeroed(); src.len()];
    to_channels_last_into(src, batch, channels, spatial, &mut dst);
    dst
}

/// (N, S, C) to (N, C, S), writing into `dst`.
pub fn to_channels_first<T: Pod + Send + Sync>(
    src: &[T],
    batch: usize,
    channels: usize,
    spatial: usize,
    dst: &mut [T],
) {
    let image = channels * spatial;
    if image == 0 {
        return;
    }
    for (src, dst) in src.chunks(image).zip(dst.chunks_mut(image)).take(batch) {
        // Each chunk holds BLOCK spatial positions of every channel row: the
        // rows are split by spatial block so each task reads a contiguous
        // range of the channels-last source.
        let blocks = spatial.div_ceil(BLOCK);
        let columns: Vec<Vec<T>> = (0..blocks)
            .into_par_iter()
            .map(|block| {
                let s0 = block * BLOCK;
                let width = BLOCK.min(spatial - s0);
                let mut tile = vec![T::zeroed(); width * channels];
                for s in 0..width {
                    let pixel = &src[(s0 + s) * channels..(s0 + s + 1) * channels];
                    for (c, &v) in pixel.iter().enumerate() {
                        tile[c * width + s] = v;
                    }
                }
                tile
            })
            .collect();
        for (block, tile) in columns.iter().enumerate() {
            let s0 = block * BLOCK;
            let width = tile.len() / channels.max(1);
            for c in 0..channels {
                dst[c * spatial + s0..c * spatial + s0 + width]
                    .copy_from_slice(&tile[c * width..(c + 1) * width]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let x: Vec<i8> = (0..24).collect();
        let last = to_channels_last(&x, 2, 3, 4);
        assert_eq!(&last[..6], &[0, 4, 8, 1, 5, 9]);
        let mut back = vec![0i8; 24];
        to_channels_first(&last, 2, 3, 4, &mut back);
        assert_eq!(back, x);
    }

    #[test]
    fn round_trip_many_blocks() {
        let (batch, channels, spatial) = (2, 37, 3 * BLOCK + 5);
        let x: Vec<i32> = (0..(batch * channels * spatial) as i32).collect();
        let last = to_channels_last(&x, batch, channels, spatial);
        for n in 0..batch {
            for c in 0..channels {
                for s in 0..spatial {
                    let want = x[(n * channels + c) * spatial + s];
                    assert_eq!(last[(n * spatial + s) * channels + c], want);
                }
            }
        }
        let mut back = vec![0; x.len()];
        to_channels_first(&last, batch, channels, spatial, &mut back);
        assert_eq!(back, x);
    }

    #[test]
    fn scratch_is_reused_and_sized() {
        let first = with_scratch::<i32, _>(1000, |s| {
            s.fill(7);
            s.as_ptr() as usize
        });
        let second = with_scratch::<i32, _>(10, |s| {
            assert_eq!(s.len(), 10);
            s.as_ptr() as usize
        });
        assert_eq!(first, second);
    }
}
