//! Quantized matrix product for fully connected layers:
//! `out[m, n] = stage(Σ_k x[m, k] · w[n, k])`, with the weights packed once.
//!
//! The scalar body accumulates exactly in i32 for u8 and s8 data. The
//! per-row weight sums are kept for the +128 correction of a VNNI body.

use super::elem::{OutputElem, QuantElem};
use super::output::OutputStage;
use rayon::prelude::*;

/// A weight matrix (N rows of K int8 values), packed for the GEMM body.
#[derive(Clone, Debug)]
pub struct PackedGemmWeights {
    rows: usize,
    depth: usize,
    data: Vec<i8>,
    row_sums: Vec<i32>,
    /// The selected SIMD tier's layout, when it has one.
    #[cfg(target_arch = "x86_64")]
    fast: Option<super::x86::GemmPack>,
}

impl PackedGemmWeights {
    /// Packs a row-major (N, K) matrix.
    pub fn pack(weights: &[i8], rows: usize, depth: usize) -> Self {
        assert_eq!(weights.len(), rows * depth, "GEMM weight size mismatch");
        let row_sums = if depth == 0 {
            vec![0; rows]
        } else {
            weights
                .chunks(depth)
                .map(|r| r.iter().map(|&v| v as i32).sum())
                .collect()
        };
        PackedGemmWeights {
            rows,
            depth,
            data: weights.to_vec(),
            #[cfg(target_arch = "x86_64")]
            fast: super::x86::GemmPack::new(
                super::isa::selected(),
                weights,
                &row_sums,
                rows,
                depth,
            ),
            row_sums,
        }
    }

    /// Number of output columns (N).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Reduction length (K).
    pub fn depth(&self) -> usize {
        self.depth
    }

    pub fn row_sums(&self) -> &[i32] {
        &self.row_sums
    }

    /// The row-major (N, K) matrix.
    pub fn data(&self) -> &[i8] {
        &self.data
    }
}

/// Computes `output` (M, N) from `input` (M, K) and the packed weights,
/// with the SIMD tier the weights were packed for where it has a kernel for
/// these types, else with [`gemm_reference`]. Both give the same bits.
pub fn gemm<X: QuantElem, O: OutputElem>(
    input: &[X],
    weights: &PackedGemmWeights,
    stage: &OutputStage,
    output: &mut [O],
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(pack) = &weights.fast {
        if super::x86::gemm_packed(pack, input, stage, output) {
            return;
        }
    }
    gemm_reference(input, weights, stage, output);
}

/// Runs the scalar body of [`gemm`], the reference of every SIMD tier.
pub fn gemm_reference<X: QuantElem, O: OutputElem>(
    input: &[X],
    weights: &PackedGemmWeights,
    stage: &OutputStage,
    output: &mut [O],
) {
    let (n, k) = (weights.rows, weights.depth);
    assert!(n > 0, "GEMM needs at least one output column");
    let m = output.len() / n;
    assert_eq!(
        output.len(),
        m * n,
        "GEMM output length is not a multiple of N"
    );
    assert_eq!(input.len(), m * k, "GEMM input length does not match M x K");
    output
        .par_chunks_mut(n)
        .enumerate()
        .for_each(|(row, out_row)| {
            let x = &input[row * k..(row + 1) * k];
            let acc: Vec<i32> = (0..n)
                .map(|col| {
                    let w = &weights.data[col * k..(col + 1) * k];
                    x.iter().zip(w).map(|(&a, &b)| a.to_i32() * b as i32).sum()
                })
                .collect();
            stage.store_row(&acc, None, out_row);
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::int8::output::PerChannel;

    #[test]
    fn small_product_with_bias() {
        let w = PackedGemmWeights::pack(&[1, 1, 1, 2, -1, 0], 2, 3);
        let stage = OutputStage {
            bias: PerChannel(vec![1275.0, -1275.0]),
            ..Default::default()
        };
        let mut out = [0i32; 2];
        gemm(&[1i8, 2, 3], &w, &stage, &mut out);
        assert_eq!(out, [1281, -1275]);
    }

    #[test]
    fn u8_extremes_do_not_saturate() {
        let k = 1000;
        let w = PackedGemmWeights::pack(&vec![-128i8; k], 1, k);
        let mut out = [0i32; 1];
        gemm(&vec![255u8; k], &w, &OutputStage::default(), &mut out);
        assert_eq!(out, [-255 * 128 * 1000]);
    }
}
