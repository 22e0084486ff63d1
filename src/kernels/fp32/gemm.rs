//! Single-precision matrix multiplication on strided slices, backed by the
//! `gemm` crate (runtime-dispatched AVX2/AVX-512 microkernels, rayon threads).

/// A read-only strided matrix view: element `(r, c)` is
/// `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// Views `data` as a dense row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn fits(&self) -> bool {
        fits(
            self.data.len(),
            self.rows,
            self.cols,
            self.row_stride,
            self.col_stride,
        )
    }
}

/// A mutable dense row-major matrix with a row stride of at least `cols`,
/// so that no two elements share storage.
#[derive(Debug)]
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

impl<'a> MatMut<'a> {
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            row_stride: cols,
        }
    }
}

/// Whether the multiplication may spread over the current rayon pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    Single,
    Pool,
}

fn fits(len: usize, rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (rows - 1).checked_mul(row_stride).and_then(|a| {
        (cols - 1)
            .checked_mul(col_stride)
            .and_then(|b| a.checked_add(b))
    });
    matches!(last, Some(l) if l < len && l <= isize::MAX as usize)
}

/// Computes `c = a · b`, or `c += a · b` when `accumulate` is set.
///
/// # Panics
/// If the dimensions disagree or a view reaches past its slice; both are
/// programming errors in the caller, not data errors.
pub fn matmul(c: MatMut<'_>, a: MatRef<'_>, b: MatRef<'_>, accumulate: bool, threads: Threads) {
    assert_eq!(a.rows, c.rows, "matmul: rows of a and c differ");
    assert_eq!(b.cols, c.cols, "matmul: columns of b and c differ");
    assert_eq!(a.cols, b.rows, "matmul: inner dimensions differ");
    assert!(
        a.fits() && b.fits(),
        "matmul: operand view exceeds its slice"
    );
    assert!(
        c.row_stride >= c.cols && fits(c.data.len(), c.rows, c.cols, c.row_stride, 1),
        "matmul: output view exceeds its slice or overlaps itself"
    );
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                c.data[r * c.row_stride..r * c.row_stride + n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = match threads {
        Threads::Single => gemm::Parallelism::None,
        Threads::Pool => gemm::Parallelism::Rayon(0),
    };
    // SAFETY: the asserts above bound every element each view addresses by
    // its slice length (strides fit in isize), and `c` is exclusively
    // borrowed with distinct addresses for distinct elements. `gemm` computes
    // dst = alpha·dst + beta·lhs·rhs, reading dst only when `read_dst` is set.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.data.as_mut_ptr(),
            1,
            c.row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Naive triple loop with the same contract as [`matmul`]; the reference in tests.
pub fn matmul_reference(c: MatMut<'_>, a: MatRef<'_>, b: MatRef<'_>, accumulate: bool) {
    assert!(a.rows == c.rows && b.cols == c.cols && a.cols == b.rows);
    for i in 0..c.rows {
        for j in 0..c.cols {
            let mut sum = 0.0f64;
            for p in 0..a.cols {
                let x = a.data[i * a.row_stride + p * a.col_stride] as f64;
                let y = b.data[p * b.row_stride + j * b.col_stride] as f64;
                sum += x * y;
            }
            let dst = &mut c.data[i * c.row_stride + j];
            *dst = if accumulate {
                *dst + sum as f32
            } else {
                sum as f32
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn check(m: usize, n: usize, k: usize, transpose_a: bool, transpose_b: bool, accumulate: bool) {
        let a = pseudo_random(m * k, 1);
        let b = pseudo_random(k * n, 2);
        let mut got = pseudo_random(m * n, 3);
        let mut want = got.clone();
        let av = if transpose_a {
            MatRef::row_major(&a, k, m).t()
        } else {
            MatRef::row_major(&a, m, k)
        };
        let bv = if transpose_b {
            MatRef::row_major(&b, n, k).t()
        } else {
            MatRef::row_major(&b, k, n)
        };
        matmul(
            MatMut::row_major(&mut got, m, n),
            av,
            bv,
            accumulate,
            Threads::Pool,
        );
        matmul_reference(MatMut::row_major(&mut want, m, n), av, bv, accumulate);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "m={m} n={n} k={k} element {i}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn matmul_matches_reference_on_odd_shapes() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 65),
            (64, 1, 300),
            (1, 129, 31),
            (70, 70, 0),
        ] {
            for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
                check(m, n, k, ta, tb, false);
                check(m, n, k, ta, tb, true);
            }
        }
    }

    #[test]
    fn matmul_single_thread_agrees() {
        let (m, n, k) = (33, 47, 129);
        let a = pseudo_random(m * k, 4);
        let b = pseudo_random(k * n, 5);
        let mut single = vec![0.0; m * n];
        let mut pooled = vec![0.0; m * n];
        let (av, bv) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
        matmul(
            MatMut::row_major(&mut single, m, n),
            av,
            bv,
            false,
            Threads::Single,
        );
        matmul(
            MatMut::row_major(&mut pooled, m, n),
            av,
            bv,
            false,
            Threads::Pool,
        );
        for (s, p) in single.iter().zip(&pooled) {
            assert!((s - p).abs() < 1e-4);
        }
    }

    #[test]
    #[should_panic(expected = "exceeds its slice")]
    fn matmul_rejects_short_slice() {
        let a = vec![0.0; 5];
        let b = vec![0.0; 6];
        let mut c = vec![0.0; 4];
        let av = MatRef {
            data: &a,
            rows: 2,
            cols: 3,
            row_stride: 3,
            col_stride: 1,
        };
        matmul(
            MatMut::row_major(&mut c, 2, 2),
            av,
            MatRef::row_major(&b, 3, 2),
            false,
            Threads::Single,
        );
    }
}
