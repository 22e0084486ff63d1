//! Conversions between MXNet's channels-first tensors (N, C, spatial...) and
//! the channels-last order the int8 convolution kernels use.
// TODO: keep activations channels-last between quantized operators instead
// of converting around every convolution (needs layout tracking in the executor).

/// (N, C, S) to (N, S, C), where S is the flattened spatial size.
pub fn to_channels_last<T: Copy + Default>(
    src: &[T],
    batch: usize,
    channels: usize,
    spatial: usize,
) -> Vec<T> {
    let mut dst = vec![T::default(); src.len()];
    for n in 0..batch {
        let base = n * channels * spatial;
        for c in 0..channels {
            for s in 0..spatial {
                dst[base + s * channels + c] = src[base + c * spatial + s];
            }
        }
    }
    dst
}

/// (N, S, C) to (N, C, S), writing into `dst`.
pub fn to_channels_first<T: Copy>(
    src: &[T],
    batch: usize,
    channels: usize,
    spatial: usize,
    dst: &mut [T],
) {
    for n in 0..batch {
        let base = n * channels * spatial;
        for s in 0..spatial {
            for c in 0..channels {
                dst[base + c * spatial + s] = src[base + s * channels + c];
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
}
