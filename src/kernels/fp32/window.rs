//! Sliding-window geometry shared by convolution, deconvolution and pooling,
//! with every rank (1, 2 or 3 spatial dimensions) stored as three dimensions
//! padded with leading 1s.

/// How a window slides over an image: the image is the larger (padded) side,
/// the grid is the set of window positions. For convolution and pooling the
/// image is the input and the grid the output; for deconvolution it is the
/// other way round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Image extent (depth, height, width).
    pub image: [usize; 3],
    /// Number of window positions along each dimension.
    pub grid: [usize; 3],
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub dilate: [usize; 3],
    /// Padding before each dimension. Padding after it is implied by `grid`.
    pub pad: [usize; 3],
}

impl Window {
    /// Builds a window from per-dimension lists of equal rank (1 to 3), left-padding to rank 3.
    pub fn new(
        image: &[usize],
        grid: &[usize],
        kernel: &[usize],
        stride: &[usize],
        dilate: &[usize],
        pad: &[usize],
    ) -> Window {
        let lift = |v: &[usize], fill: usize| -> [usize; 3] {
            assert!(v.len() <= 3, "window rank {} exceeds 3", v.len());
            let mut out = [fill; 3];
            out[3 - v.len()..].copy_from_slice(v);
            out
        };
        Window {
            image: lift(image, 1),
            grid: lift(grid, 1),
            kernel: lift(kernel, 1),
            stride: lift(stride, 1),
            dilate: lift(dilate, 1),
            pad: lift(pad, 0),
        }
    }

    pub fn image_size(&self) -> usize {
        self.image.iter().product()
    }

    pub fn grid_size(&self) -> usize {
        self.grid.iter().product()
    }

    pub fn kernel_size(&self) -> usize {
        self.kernel.iter().product()
    }

    /// True when every window position reads exactly one image element at
    /// the same index (1×1 kernel, stride 1, no padding).
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1; 3]
            && self.stride == [1; 3]
            && self.pad == [0; 3]
            && self.image == self.grid
    }

    /// Splits a flat kernel tap index into (depth, height, width) taps.
    pub fn tap(&self, t: usize) -> [usize; 3] {
        let [_, kh, kw] = self.kernel;
        [t / (kh * kw), (t / kw) % kh, t % kw]
    }

    /// Image coordinate read by grid position `g` and kernel tap `k` along
    /// dimension `dim`; negative or past the end when it falls in the padding.
    pub fn source(&self, dim: usize, g: usize, k: usize) -> isize {
        (g * self.stride[dim]) as isize - self.pad[dim] as isize + (k * self.dilate[dim]) as isize
    }

    /// Grid positions along `dim` whose tap `k` lands inside the image, as a
    /// half-open range.
    pub fn valid_range(&self, dim: usize, k: usize) -> (usize, usize) {
        let offset = (k * self.dilate[dim]) as isize - self.pad[dim] as isize;
        let stride = self.stride[dim] as isize;
        let len = self.image[dim] as isize;
        let grid = self.grid[dim] as isize;
        // First g with g*stride + offset >= 0.
        let lo = if offset >= 0 {
            0
        } else {
            (-offset + stride - 1) / stride
        };
        // First g with g*stride + offset >= len.
        let hi = if len - offset <= 0 {
            0
        } else {
            (len - offset + stride - 1) / stride
        };
        let lo = lo.min(grid);
        let hi = hi.clamp(lo, grid);
        (lo as usize, hi as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_range_matches_brute_force() {
        for &(len, grid, stride, dilate, pad, k) in &[
            (5, 5, 1, 1, 1, 0),
            (5, 5, 1, 1, 1, 2),
            (7, 3, 2, 1, 0, 2),
            (7, 4, 2, 2, 3, 1),
            (3, 6, 1, 1, 4, 0),
            (1, 1, 1, 1, 0, 0),
            (4, 3, 3, 1, 2, 0),
        ] {
            let w = Window::new(&[len], &[grid], &[k + 1], &[stride], &[dilate], &[pad]);
            let (lo, hi) = w.valid_range(2, k);
            let want: Vec<usize> = (0..grid)
                .filter(|&g| {
                    let s = w.source(2, g, k);
                    s >= 0 && s < len as isize
                })
                .collect();
            let got: Vec<usize> = (lo..hi).collect();
            assert_eq!(
                got, want,
                "len={len} grid={grid} stride={stride} pad={pad} k={k}"
            );
        }
    }

    #[test]
    fn new_pads_rank() {
        let w = Window::new(&[9], &[4], &[3], &[2], &[1], &[1]);
        assert_eq!(w.image, [1, 1, 9]);
        assert_eq!(w.kernel, [1, 1, 3]);
        assert_eq!(w.pad, [0, 0, 1]);
    }
}
