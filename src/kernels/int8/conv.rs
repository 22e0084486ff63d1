//! Quantized convolution, channels-last (N, D, H, W, C), with weights packed
//! once and the output stage fused.
//!
//! The scalar body computes every dot product exactly in i32 (both u8 and s8
//! data against s8 weights); padded taps contribute nothing. A SIMD body
//! (VNNI `vpdpbusd` on s8 data shifted by +128) needs the per-channel weight
//! sums that [`PackedConvWeights`] already stores for the correction term.

use super::elem::{OutputElem, QuantElem, QuantSlice};
use super::output::OutputStage;
use rayon::prelude::*;

/// Geometry of one grouped convolution. Spatial sizes are (depth, height,
/// width); 1-D and 2-D convolutions use leading 1s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub groups: usize,
    pub input: [usize; 3],
    pub output: [usize; 3],
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub dilate: [usize; 3],
    /// Padding before each spatial dimension; the padding after it is implied by `output`.
    pub pad: [usize; 3],
}

impl ConvGeometry {
    pub fn in_channels_per_group(&self) -> usize {
        self.in_channels / self.groups
    }

    pub fn out_channels_per_group(&self) -> usize {
        self.out_channels / self.groups
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.input.iter().product::<usize>() * self.in_channels
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.output.iter().product::<usize>() * self.out_channels
    }

    fn taps(&self) -> usize {
        self.kernel.iter().product()
    }
}

/// Convolution weights packed at bind: for each output channel, its taps in
/// (kd, kh, kw) order, each tap holding the group's input channels.
#[derive(Clone, Debug)]
pub struct PackedConvWeights {
    out_channels: usize,
    in_channels_per_group: usize,
    kernel: [usize; 3],
    data: Vec<i8>,
    /// Sum of each output channel's weights (the +128 shift correction of a VNNI body).
    channel_sums: Vec<i32>,
    /// The SIMD tier's layout, built on first use (it depends on the group count).
    #[cfg(target_arch = "x86_64")]
    fast: super::x86::ConvCache,
}

impl PackedConvWeights {
    /// Packs weights given in MXNet's (O, I/groups, kd, kh, kw) order.
    pub fn pack(
        weights: &[i8],
        out_channels: usize,
        in_channels_per_group: usize,
        kernel: [usize; 3],
    ) -> Self {
        let taps: usize = kernel.iter().product();
        assert_eq!(
            weights.len(),
            out_channels * in_channels_per_group * taps,
            "packed weight size mismatch"
        );
        let mut data = vec![0i8; weights.len()];
        let per_channel = in_channels_per_group * taps;
        if per_channel > 0 {
            data.par_chunks_mut(per_channel)
                .zip(weights.par_chunks(per_channel))
                .for_each(|(dst, src)| {
                    for ic in 0..in_channels_per_group {
                        for t in 0..taps {
                            dst[t * in_channels_per_group + ic] = src[ic * taps + t];
                        }
                    }
                });
        }
        let channel_sums = data
            .chunks(per_channel.max(1))
            .map(|w| w.iter().map(|&v| v as i32).sum())
            .collect();
        PackedConvWeights {
            out_channels,
            in_channels_per_group,
            kernel,
            data,
            channel_sums,
            #[cfg(target_arch = "x86_64")]
            fast: Default::default(),
        }
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    pub fn channel_sums(&self) -> &[i32] {
        &self.channel_sums
    }

    pub fn in_channels_per_group(&self) -> usize {
        self.in_channels_per_group
    }

    pub fn kernel(&self) -> [usize; 3] {
        self.kernel
    }

    /// Weights in the scalar body's order: `[out channel][tap][in channel of the group]`.
    pub fn reference_data(&self) -> &[i8] {
        &self.data
    }

    #[cfg(target_arch = "x86_64")]
    pub(crate) fn fast_cache(&self) -> &super::x86::ConvCache {
        &self.fast
    }
}

/// Runs a quantized convolution over channels-last `input` into
/// channels-last `output`, applying `stage` to every accumulator.
/// `residual`, when the stage fuses a sum, has the output's layout and size.
/// Uses the SIMD tier of [`super::isa::selected`] where it has a kernel for
/// these types, else [`conv_reference`]. Both give the same bits.
pub fn conv<X: QuantElem, O: OutputElem>(
    geom: &ConvGeometry,
    input: &[X],
    weights: &PackedConvWeights,
    stage: &OutputStage,
    residual: Option<QuantSlice>,
    output: &mut [O],
) {
    #[cfg(target_arch = "x86_64")]
    if super::x86::conv_selected(geom, input, weights, stage, residual, output) {
        return;
    }
    conv_reference(geom, input, weights, stage, residual, output);
}

/// Runs the scalar body of [`conv`], the reference of every SIMD tier.
pub fn conv_reference<X: QuantElem, O: OutputElem>(
    geom: &ConvGeometry,
    input: &[X],
    weights: &PackedConvWeights,
    stage: &OutputStage,
    residual: Option<QuantSlice>,
    output: &mut [O],
) {
    assert_eq!(
        input.len(),
        geom.input_len(),
        "conv: input length does not match the geometry"
    );
    assert_eq!(
        output.len(),
        geom.output_len(),
        "conv: output length does not match the geometry"
    );
    assert_eq!(
        weights.out_channels, geom.out_channels,
        "conv: weights have another output channel count"
    );
    assert_eq!(
        weights.in_channels_per_group,
        geom.in_channels_per_group(),
        "conv: weights have another input channel count"
    );
    assert_eq!(
        weights.kernel, geom.kernel,
        "conv: weights have another kernel size"
    );
    if let Some(r) = residual {
        assert_eq!(
            r.len(),
            output.len(),
            "conv: residual length does not match the output"
        );
    }
    if output.is_empty() {
        return;
    }
    let oc_total = geom.out_channels;
    let row = geom.output[2] * oc_total;
    // One task per output row (n, od, oh).
    output
        .par_chunks_mut(row)
        .enumerate()
        .for_each(|(row_index, out_row)| {
            let oh = row_index % geom.output[1];
            let od = (row_index / geom.output[1]) % geom.output[0];
            let n = row_index / (geom.output[1] * geom.output[0]);
            let mut acc = vec![0i32; oc_total];
            for ow in 0..geom.output[2] {
                accumulate_pixel(geom, input, weights, n, [od, oh, ow], &mut acc);
                let offset = row_index * row + ow * oc_total;
                let res = residual.map(|r| (r, offset));
                stage.store_row(&acc, res, &mut out_row[ow * oc_total..(ow + 1) * oc_total]);
            }
        });
}

/// Exact i32 dot products of one output pixel for every output channel.
fn accumulate_pixel<X: QuantElem>(
    geom: &ConvGeometry,
    input: &[X],
    weights: &PackedConvWeights,
    n: usize,
    out_pos: [usize; 3],
    acc: &mut [i32],
) {
    let icg = geom.in_channels_per_group();
    let ocg = geom.out_channels_per_group();
    let taps = geom.taps();
    acc.fill(0);
    let mut tap = 0usize;
    for kd in 0..geom.kernel[0] {
        let id =
            (out_pos[0] * geom.stride[0] + kd * geom.dilate[0]) as isize - geom.pad[0] as isize;
        for kh in 0..geom.kernel[1] {
            let ih =
                (out_pos[1] * geom.stride[1] + kh * geom.dilate[1]) as isize - geom.pad[1] as isize;
            for kw in 0..geom.kernel[2] {
                let iw = (out_pos[2] * geom.stride[2] + kw * geom.dilate[2]) as isize
                    - geom.pad[2] as isize;
                let t = tap;
                tap += 1;
                let inside = (0..geom.input[0] as isize).contains(&id)
                    && (0..geom.input[1] as isize).contains(&ih)
                    && (0..geom.input[2] as isize).contains(&iw);
                if !inside {
                    continue;
                }
                let pixel = ((n * geom.input[0] + id as usize) * geom.input[1] + ih as usize)
                    * geom.input[2]
                    + iw as usize;
                let px = &input[pixel * geom.in_channels..(pixel + 1) * geom.in_channels];
                for g in 0..geom.groups {
                    let xs = &px[g * icg..(g + 1) * icg];
                    for (oc, a) in acc.iter_mut().enumerate().skip(g * ocg).take(ocg) {
                        let w = &weights.data[(oc * taps + t) * icg..(oc * taps + t + 1) * icg];
                        let dot: i32 = xs.iter().zip(w).map(|(&x, &w)| x.to_i32() * w as i32).sum();
                        *a += dot;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::int8::output::PerChannel;

    fn geom_2d(
        c: usize,
        oc: usize,
        hw: [usize; 2],
        k: usize,
        pad: usize,
        groups: usize,
    ) -> ConvGeometry {
        let out = [hw[0] + 2 * pad + 1 - k, hw[1] + 2 * pad + 1 - k];
        ConvGeometry {
            batch: 1,
            in_channels: c,
            out_channels: oc,
            groups,
            input: [1, hw[0], hw[1]],
            output: [1, out[0], out[1]],
            kernel: [1, k, k],
            stride: [1, 1, 1],
            dilate: [1, 1, 1],
            pad: [0, pad, pad],
        }
    }

    #[test]
    fn one_by_one_with_bias() {
        // 1x1x2x2 u8 data, one 1x1 filter of 3, bias 5 (accumulator units).
        let g = geom_2d(1, 1, [2, 2], 1, 0, 1);
        let w = PackedConvWeights::pack(&[3], 1, 1, [1, 1, 1]);
        let stage = OutputStage {
            bias: PerChannel::uniform(5.0),
            ..Default::default()
        };
        let mut out = [0i32; 4];
        conv(&g, &[10u8, 20, 30, 40], &w, &stage, None, &mut out);
        assert_eq!(out, [35, 65, 95, 125]);
    }

    #[test]
    fn extremes_accumulate_exactly() {
        // 64 channels of -128 against weights of -128 over 3x3: 576 * 16384.
        let g = geom_2d(64, 2, [3, 3], 3, 0, 1);
        let w = PackedConvWeights::pack(&vec![-128i8; 2 * 64 * 9], 2, 64, [1, 3, 3]);
        let x = vec![-128i8; 64 * 9];
        let mut out = [0i32; 2];
        conv(&g, &x, &w, &OutputStage::default(), None, &mut out);
        assert_eq!(out, [576 * 16384, 576 * 16384]);
    }

    #[test]
    fn padding_contributes_zero_and_groups_split_channels() {
        // Depthwise 3x3 with pad 1 on a 2x2 image of ones: every output covers 4 taps.
        let g = geom_2d(2, 2, [2, 2], 3, 1, 2);
        let w = PackedConvWeights::pack(&[1i8; 18], 2, 1, [1, 3, 3]);
        let x = [1i8, -1, 1, -1, 1, -1, 1, -1];
        let mut out = [0i32; 8];
        conv(&g, &x, &w, &OutputStage::default(), None, &mut out);
        assert_eq!(out, [4, -4, 4, -4, 4, -4, 4, -4]);
    }

    #[test]
    fn packed_sums_per_channel() {
        let w = PackedConvWeights::pack(&[1, 2, 3, -4, -5, -6], 2, 3, [1, 1, 1]);
        assert_eq!(w.channel_sums(), &[6, -15]);
    }
}
