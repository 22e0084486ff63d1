//! Convolutions other than the plain 1x1 on AMX tiles: each block's data
//! rows are gathered from the pixels' taps into a small buffer, so that the
//! block multiplies them as a GEMM.
//!
//! A gathered row holds a pixel's taps one after the other, all input
//! channels of each, which is the reference weight order
//! `[tap][input channel]`. Taps that are adjacent in the input (the width
//! taps of one kernel row, without dilation) are adjacent in the row too,
//! so they are copied as one run of bytes. Padding is written out first, as
//! for the VNNI tier, with the byte 0: the tiles multiply int8 and uint8
//! data as they are, so 0 is the value zero for both.

use std::arch::x86_64::*;

use super::amx::{self, AmxWeights, Rows};
use super::implicit_gemm::{
    padded_geometry, with_buffer, write_padded, Pixel, COPY_BUDGET, PADDED,
};
use super::stage::StagePlan;
use super::{tap_offsets, SyncPtr};
use crate::kernels::int8::conv::ConvGeometry;
use crate::kernels::int8::isa::Isa;

/// The data rows of a convolution without padding (written out or absent).
/// It exists only on the AMX tier, whose CPUs have AVX-512 BW, which
/// [`Gather::fill`] uses.
pub(super) struct Gather<'a> {
    geom: ConvGeometry,
    data: &'a [u8],
    /// Each run of bytes of a gathered row: its offset in the input from
    /// the pixel's first tap, and its length. Runs follow each other in
    /// the row.
    runs: Vec<(usize, usize)>,
}

impl<'a> Gather<'a> {
    /// Gathers from `data`, laid out as `geom`'s input, which must have no
    /// padding and one group.
    pub(super) fn new(geom: &ConvGeometry, data: &'a [u8]) -> Gather<'a> {
        assert_eq!(geom.pad, [0; 3], "gathering needs the padding written out");
        assert_eq!(geom.groups, 1, "gathering takes one group");
        assert!(
            data.len() >= geom.input_len(),
            "gathering: data is shorter than the geometry's input"
        );
        let c = geom.in_channels;
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for offset in tap_offsets(geom, c) {
            match runs.last_mut() {
                Some((start, len)) if *start + *len == offset => *len += c,
                _ => runs.push((offset, c)),
            }
        }
        Gather {
            geom: *geom,
            data,
            runs,
        }
    }

    /// Bytes of one gathered row: taps times input channels.
    pub(super) fn row_bytes(&self) -> usize {
        self.runs.iter().map(|&(_, len)| len).sum()
    }

    /// Writes the rows of the `rows` (at most 32) output pixels from `p0`
    /// to `staging`, one every [`Self::row_bytes`] bytes.
    pub(super) fn fill(&self, p0: usize, rows: usize, staging: &mut [u8]) {
        let g = &self.geom;
        let row = self.row_bytes();
        assert!(staging.len() >= rows * row, "gathering: staging too short");
        let last = self.runs.last().map_or(0, |&(o, len)| o + len);
        let mut bases = [0usize; 32];
        let mut pixel = Pixel::at(g, p0);
        for base in bases.iter_mut().take(rows) {
            let [d, h, w] = std::array::from_fn(|i| pixel.pos[i] * g.stride[i]);
            let first = ((pixel.batch * g.input[0] + d) * g.input[1] + h) * g.input[2] + w;
            *base = first * g.in_channels;
            // Every tap of an output pixel lies inside an input without
            // padding, so each run ends inside the data.
            assert!(*base + last <= self.data.len(), "gathering past the input");
            pixel.advance(g);
        }
        // SAFETY: each row reads `data[base + offset..][..len]` for its
        // runs, inside the data (checked above), and writes `row` bytes of
        // `staging` (checked above). This module only runs on the AMX tier,
        // which `isa` offers only with AVX-512 BW.
        unsafe {
            gather_rows(
                self.data.as_ptr(),
                &bases[..rows],
                &self.runs,
                staging.as_mut_ptr(),
                row,
            )
        };
    }
}

/// For each `base` of `bases`, copies each run `(offset, len)` from
/// `src + base + offset` to the next `len` bytes of row `m` (the `m`-th
/// base) at `dst + m·row`.
///
/// # Safety
/// The CPU must support AVX-512 F and BW; the runs must be readable from
/// every base and `bases.len()` rows writable from `dst`.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn gather_rows(
    src: *const u8,
    bases: &[usize],
    runs: &[(usize, usize)],
    dst: *mut u8,
    row: usize,
) {
    for (m, &base) in bases.iter().enumerate() {
        let mut at = m * row;
        for &(offset, len) in runs {
            let full = len - len % 64;
            let tail: __mmask64 = (1u64 << (len % 64)).wrapping_sub(1);
            // SAFETY: the caller guarantees both ranges; the masked tail
            // touches only the run's last `len % 64` bytes.
            unsafe {
                let (s, d) = (src.add(base + offset), dst.add(at));
                for i in (0..full).step_by(64) {
                    let v = _mm512_loadu_si512(s.add(i).cast());
                    _mm512_storeu_si512(d.add(i).cast(), v);
                }
                if tail != 0 {
                    let v = _mm512_maskz_loadu_epi8(tail, s.add(full).cast());
                    _mm512_mask_storeu_epi8(d.add(full).cast(), tail, v);
                }
            }
            at += len;
        }
    }
}

/// Runs a convolution with one group on AMX tiles, `weights` packed with
/// K = taps · input channels.
///
/// # Safety
/// As [`amx::run`], for `geom.output_len()` output elements.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn run(
    isa: Isa,
    geom: &ConvGeometry,
    input: &[u8],
    signed: bool,
    weights: &AmxWeights,
    plan: &StagePlan,
    out: SyncPtr,
) {
    let out_pixels: usize = geom.output.iter().product();
    // Without padding, written or implied by the output size, every tap of
    // every output pixel lies inside the input, which is gathered in place.
    if geom.pad == [0; 3] && padded_geometry(geom).input == geom.input {
        let rows = Rows::Gathered(Gather::new(geom, input));
        // SAFETY: forwarded from the caller.
        unsafe {
            amx::run(
                isa,
                geom.batch * out_pixels,
                &rows,
                signed,
                weights,
                plan,
                out,
                0,
            )
        };
        return;
    }
    // The padding is written out a few images at a time, as for VNNI.
    let image = ConvGeometry { batch: 1, ..*geom };
    let image_bytes = padded_geometry(&image).input_len();
    let per_copy = (COPY_BUDGET / image_bytes.max(1)).clamp(1, geom.batch.max(1));
    let largest = padded_geometry(&ConvGeometry {
        batch: per_copy,
        ..*geom
    });
    let in_len = image.input_len();
    with_buffer(&PADDED, largest.input_len(), |buffer| {
        for first in (0..geom.batch).step_by(per_copy) {
            let batch = per_copy.min(geom.batch - first);
            let part = ConvGeometry { batch, ..*geom };
            let padded = padded_geometry(&part);
            let copy = &mut buffer[..padded.input_len()];
            let src = &input[first * in_len..][..batch * in_len];
            write_padded(src, &part, &padded, copy, 0, |b| b);
            let rows = Rows::Gathered(Gather::new(&padded, copy));
            // SAFETY: forwarded from the caller; these images' output
            // pixels start at `first · out_pixels`.
            unsafe {
                amx::run(
                    isa,
                    batch * out_pixels,
                    &rows,
                    signed,
                    weights,
                    plan,
                    out,
                    first * out_pixels,
                )
            };
        }
    });
}
