//! Weight layouts of the x86 kernels, built once per set of weights.
//!
//! Implicit-GEMM panels hold [`PANEL`] output channels. One reduction step
//! covers 4 input channels of one tap, and its 64 weights are stored as
//! `[16 output channels][4 input channels]`:
//! - as bytes for `vpdpbusd` (one 512-bit vector per step), so each 32-bit
//!   lane reduces 4 consecutive input channels of one output channel;
//! - as int16 for `vpmaddwd` (two 512-bit vectors per step), so each 32-bit
//!   lane reduces 2 input channels and adjacent lanes are added at the end;
//! - as int16 pairs for `vpmaddwd` on data already widened to int16, in four
//!   256-bit vectors per step. They contain input channels 0-1 of output
//!   channels 0-7, then of 8-15, then input channels 2-3 likewise. Each
//!   32-bit lane reduces 2 input channels of one output channel, so no final
//!   add is needed.
//!
//! Missing channels (output channels past the group, input channels past a
//! multiple of 4) hold weight 0, so whatever data the kernel reads for them
//! contributes nothing.

/// Output channels of one packed panel: one 512-bit vector of int32 lanes.
pub(super) const PANEL: usize = 16;

/// Input channels reduced by one step of a panel.
pub(super) const STEP_CHANNELS: usize = 4;

/// One 64-byte cache line, the unit of every packed weight buffer, so that
/// 512-bit loads never split a line.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub(super) struct Line(pub [u8; 64]);

/// A zeroed buffer of cache lines written as int8 or int16 values.
#[derive(Clone)]
pub(super) struct Lines(Vec<Line>);

impl Lines {
    pub(super) fn zeroed(bytes: usize) -> Lines {
        Lines(vec![Line([0; 64]); bytes.div_ceil(64)])
    }

    pub(super) fn set_i8(&mut self, index: usize, value: i8) {
        self.0[index / 64].0[index % 64] = value as u8;
    }

    fn set_i16(&mut self, index: usize, value: i16) {
        let byte = 2 * index;
        let line = &mut self.0[byte / 64].0;
        line[byte % 64..byte % 64 + 2].copy_from_slice(&value.to_le_bytes());
    }

    pub(super) fn as_ptr(&self) -> *const u8 {
        self.0.as_ptr().cast()
    }

    #[cfg(test)]
    pub(super) fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }

    pub(super) fn as_bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.0)
    }
}

/// Storage type of panel weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Encoding {
    /// int8, for `vpdpbusd`.
    Bytes,
    /// int16, for `vpmaddwd` on data widened in the kernel.
    Words,
    /// int16 in channel pairs, for `vpmaddwd` on data widened beforehand.
    Pairs,
}

impl Encoding {
    /// Bytes of one reduction step of one panel.
    pub(super) fn step_bytes(self) -> usize {
        match self {
            Encoding::Bytes => PANEL * STEP_CHANNELS,
            Encoding::Words | Encoding::Pairs => 2 * PANEL * STEP_CHANNELS,
        }
    }
}

/// Dimensions of a grouped convolution seen as one GEMM per group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PanelShape {
    pub groups: usize,
    pub out_per_group: usize,
    pub in_per_group: usize,
    pub taps: usize,
}

impl PanelShape {
    /// Reduction steps per tap: input channels rounded up to a multiple of 4.
    pub(super) fn steps(&self) -> usize {
        self.in_per_group.div_ceil(STEP_CHANNELS)
    }

    pub(super) fn panels_per_group(&self) -> usize {
        self.out_per_group.div_ceil(PANEL)
    }
}

/// Implicit-GEMM weights: panels ordered `[group][panel][tap][step]`, plus
/// the initial accumulator of each panel channel for the +128 data shift.
#[derive(Clone)]
pub(super) struct Panels {
    pub shape: PanelShape,
    pub encoding: Encoding,
    lines: Lines,
    /// `-128 · Σ w` per output channel, in panel order (0 for missing channels).
    shift_correction: Vec<i32>,
}

impl Panels {
    /// Packs `weights` laid out `[output channel][tap][input channel of the
    /// group]`; `sums[o]` is the sum of output channel `o`'s weights.
    pub(super) fn build(
        encoding: Encoding,
        shape: PanelShape,
        weights: &[i8],
        sums: &[i32],
    ) -> Panels {
        let PanelShape {
            groups,
            out_per_group,
            in_per_group,
            taps,
        } = shape;
        assert_eq!(
            weights.len(),
            groups * out_per_group * taps * in_per_group,
            "panel packing: weight count does not match the shape"
        );
        let steps = shape.steps();
        let panels = groups * shape.panels_per_group();
        let bytes_per_value = encoding.step_bytes() / (PANEL * STEP_CHANNELS);
        let stride = Panels::stride_of(encoding, shape);
        let values_per_panel = stride / bytes_per_value;
        let mut lines = Lines::zeroed(panels * stride);
        let mut shift_correction = vec![0i32; panels * PANEL];
        for g in 0..groups {
            for local in 0..out_per_group {
                let oc = g * out_per_group + local;
                let panel = g * shape.panels_per_group() + local / PANEL;
                let lane = local % PANEL;
                shift_correction[panel * PANEL + lane] = sums[oc].wrapping_mul(-128);
                for t in 0..taps {
                    let src = &weights[(oc * taps + t) * in_per_group..][..in_per_group];
                    for (ic, &w) in src.iter().enumerate() {
                        let step = t * steps + ic / STEP_CHANNELS;
                        let within = match encoding {
                            Encoding::Bytes | Encoding::Words => {
                                lane * STEP_CHANNELS + ic % STEP_CHANNELS
                            }
                            Encoding::Pairs => {
                                let (pair, half) = (ic % STEP_CHANNELS / 2, lane / 8);
                                ((pair * 2 + half) * 8 + lane % 8) * 2 + ic % 2
                            }
                        };
                        let index =
                            panel * values_per_panel + step * PANEL * STEP_CHANNELS + within;
                        match encoding {
                            Encoding::Bytes => lines.set_i8(index, w),
                            Encoding::Words | Encoding::Pairs => lines.set_i16(index, w as i16),
                        }
                    }
                }
            }
        }
        Panels {
            shape,
            encoding,
            lines,
            shift_correction,
        }
    }

    /// Bytes between the starts of two consecutive panels.
    pub(super) fn panel_stride(&self) -> usize {
        Panels::stride_of(self.encoding, self.shape)
    }

    /// The panel bytes, plus one 64-byte line when they are an even number
    /// of lines. Kernels read the same step of several consecutive panels
    /// together. With an odd number of lines between them, those reads fall
    /// in different sets of the 4 KiB-periodic L1 cache instead of one.
    fn stride_of(encoding: Encoding, shape: PanelShape) -> usize {
        let bytes = shape.taps * shape.steps() * encoding.step_bytes();
        if (bytes / 64).is_multiple_of(2) {
            bytes + 64
        } else {
            bytes
        }
    }

    /// First byte of panel `panel` of group `group`.
    pub(super) fn panel_ptr(&self, group: usize, panel: usize) -> *const u8 {
        let index = group * self.shape.panels_per_group() + panel;
        // SAFETY: `index` is below the panel count, so the offset stays
        // inside the buffer (or one past it for an empty shape).
        unsafe { self.lines.as_ptr().add(index * self.panel_stride()) }
    }

    /// Shift corrections of panel `panel` of group `group`, [`PANEL`] values
    /// per panel and consecutive for consecutive panels.
    pub(super) fn correction_ptr(&self, group: usize, panel: usize) -> *const i32 {
        let index = group * self.shape.panels_per_group() + panel;
        self.shift_correction[index * PANEL..].as_ptr()
    }
}

/// Depthwise weights (one input and one output channel per group), as int16
/// pairs of taps for `vpmaddwd` with channels in lanes.
///
/// For each block of `block` channels and each pair of taps `(2j, 2j + 1)`
/// there are two vectors, "low" and "high", of `block / 2` int32 lanes. Each
/// lane contains the two taps' weights of one channel, and which channel
/// follows the byte interleave the kernel uses (see [`Self::channel`]).
#[derive(Clone)]
pub(super) struct DepthwiseWeights {
    pub channels: usize,
    pub taps: usize,
    /// Channels per block: 32 for 512-bit kernels, 16 for 256-bit ones.
    pub block: usize,
    lines: Lines,
}

impl DepthwiseWeights {
    /// Packs `weights` laid out `[channel][tap]`.
    pub(super) fn build(weights: &[i8], channels: usize, taps: usize, block: usize) -> Self {
        assert!(
            block == 16 || block == 32,
            "depthwise block must be 16 or 32"
        );
        assert_eq!(
            weights.len(),
            channels * taps,
            "depthwise packing: weight count does not match the shape"
        );
        let blocks = channels.div_ceil(block);
        let pairs = taps.div_ceil(2);
        let mut lines = Lines::zeroed(blocks * pairs * block * 2 * 2);
        for b in 0..blocks {
            for pair in 0..pairs {
                for half in 0..2 {
                    for lane in 0..block / 2 {
                        let c = b * block + Self::channel(block, half, lane);
                        if c >= channels {
                            continue;
                        }
                        for k in 0..2 {
                            let t = 2 * pair + k;
                            if t < taps {
                                let index = ((b * pairs + pair) * 2 + half) * block + 2 * lane + k;
                                lines.set_i16(index, weights[c * taps + t] as i16);
                            }
                        }
                    }
                }
            }
        }
        DepthwiseWeights {
            channels,
            taps,
            block,
            lines,
        }
    }

    /// Returns the channel (within its block) of int32 lane `lane` of the
    /// low (`half` 0) or high (`half` 1) vector. Byte unpacking works within
    /// 128-bit lanes, so a 512-bit kernel's low vector contains channels 0-7
    /// and 16-23 and its high vector channels 8-15 and 24-31.
    pub(super) fn channel(block: usize, half: usize, lane: usize) -> usize {
        if block == 16 {
            half * 8 + lane
        } else {
            (lane / 8) * 16 + half * 8 + lane % 8
        }
    }

    pub(super) fn pairs(&self) -> usize {
        self.taps.div_ceil(2)
    }

    /// First byte of block `b`'s weights.
    pub(super) fn block_ptr(&self, b: usize) -> *const u8 {
        let bytes = self.pairs() * self.block * 2 * 2;
        // SAFETY: `b` is below the block count, so the offset stays inside the buffer.
        unsafe { self.lines.as_ptr().add(b * bytes) }
    }
}

/// Channels of one VNNI depthwise chunk: the bytes of one 512-bit vector.
pub(super) const DEPTHWISE_CHUNK: usize = 64;

/// Depthwise weights for `vpdpbusd` on data in its natural channels-last
/// order, 64 channels (one vector of bytes) per chunk.
///
/// `vpdpbusd` adds the 4 products of each int32 lane, and the 4 bytes of a
/// lane hold 4 different channels. So each (chunk, tap) has 4 vectors, one
/// per phase `k`: vector `k` contains the weight of the channel at byte `b` for
/// the bytes with `b % 4 == k` and 0 elsewhere. With them, accumulator `k`
/// gathers in lane `j` the channel at byte `4j + k`.
///
/// When the channel count divides 64, the pattern of the channels repeats
/// across the vector, so one vector covers `64 / channels` adjacent pixels.
/// Otherwise bytes past the last channel hold weight 0. Vectors are ordered
/// chunk, tap (depth, height, width), phase.
#[derive(Clone)]
pub(super) struct DepthwiseVnniWeights {
    pub channels: usize,
    pub kernel: [usize; 3],
    lines: Lines,
    /// Sum of each channel's weights.
    sums: Vec<i32>,
}

impl DepthwiseVnniWeights {
    /// Packs `weights` laid out `[channel][kd][kh][kw]`; `sums[c]` is the
    /// sum of channel `c`'s weights.
    pub(super) fn build(weights: &[i8], sums: &[i32], channels: usize, kernel: [usize; 3]) -> Self {
        let taps: usize = kernel.iter().product();
        assert_eq!(
            weights.len(),
            channels * taps,
            "depthwise packing: weight count does not match the shape"
        );
        assert_eq!(
            sums.len(),
            channels,
            "depthwise packing: one weight sum per channel expected"
        );
        let mut packed = DepthwiseVnniWeights {
            channels,
            kernel,
            lines: Lines::zeroed(0),
            sums: sums.to_vec(),
        };
        let chunks = channels.div_ceil(DEPTHWISE_CHUNK);
        let mut lines = Lines::zeroed(chunks * taps * 4 * DEPTHWISE_CHUNK);
        for chunk in 0..chunks {
            for b in 0..DEPTHWISE_CHUNK {
                let Some(c) = packed.byte_channel(chunk, b) else {
                    continue;
                };
                for tap in 0..taps {
                    let vector = (chunk * taps + tap) * 4 + b % 4;
                    lines.set_i8(vector * DEPTHWISE_CHUNK + b, weights[c * taps + tap]);
                }
            }
        }
        packed.lines = lines;
        packed
    }

    /// Adjacent pixels one vector covers: `64 / channels` when that
    /// divides evenly, else 1.
    pub(super) fn pixels_per_vector(&self) -> usize {
        if self.channels > 0 && DEPTHWISE_CHUNK.is_multiple_of(self.channels) {
            DEPTHWISE_CHUNK / self.channels
        } else {
            1
        }
    }

    /// Returns the channel at byte `b` of chunk `chunk`'s vectors, `None`
    /// past the last channel.
    pub(super) fn byte_channel(&self, chunk: usize, b: usize) -> Option<usize> {
        let c = if self.pixels_per_vector() > 1 {
            b % self.channels
        } else {
            chunk * DEPTHWISE_CHUNK + b
        };
        (c < self.channels).then_some(c)
    }

    /// Sum of channel `c`'s weights.
    pub(super) fn sum(&self, c: usize) -> i32 {
        self.sums[c]
    }

    /// First of the `4 · taps` weight vectors of chunk `chunk`.
    pub(super) fn chunk_ptr(&self, chunk: usize) -> *const u8 {
        let taps: usize = self.kernel.iter().product();
        // SAFETY: `chunk` is below the chunk count, so the offset stays inside the buffer.
        unsafe { self.lines.as_ptr().add(chunk * taps * 4 * DEPTHWISE_CHUNK) }
    }
}

/// Channels of one group of the stacked depthwise layout: the int32 lanes
/// of one 512-bit vector.
pub(super) const STACK_GROUP: usize = 16;

/// Kernel rows whose taps one lane of the stacked depthwise layout adds.
pub(super) const STACK_ROWS: usize = 4;

/// Depthwise weights of a kernel of depth 1 and at most 3 rows, for data
/// whose lanes hold one channel from 4 consecutive input rows (see
/// `depthwise_stacked`).
///
/// For each group of 16 channels and width tap `kw`, one vector contains at
/// byte `4i + kh` the weight of channel `16·group + i` at kernel row `kh` and
/// width tap `kw`, and 0 past the last channel or row. A shifted copy contains
/// kernel row `kh` at byte `4i + kh + 1`: with it, a stack of the rows that
/// two adjacent output rows read serves the second row. Vectors are ordered
/// group, width tap.
#[derive(Clone)]
pub(super) struct StackedDepthwiseWeights {
    pub channels: usize,
    pub kernel: [usize; 3],
    lines: Lines,
    shifted: Lines,
    /// Sum of each channel's weights.
    sums: Vec<i32>,
}

impl StackedDepthwiseWeights {
    /// Packs `weights` laid out `[channel][kh][kw]`; `sums[c]` is the sum of
    /// channel `c`'s weights. Returns `None` for a kernel deeper than 1 or of more
    /// than 3 rows.
    pub(super) fn build(
        weights: &[i8],
        sums: &[i32],
        channels: usize,
        kernel: [usize; 3],
    ) -> Option<Self> {
        let [depth, rows, width] = kernel;
        if depth != 1 || rows >= STACK_ROWS {
            return None;
        }
        assert_eq!(
            weights.len(),
            channels * rows * width,
            "depthwise packing: weight count does not match the shape"
        );
        assert_eq!(
            sums.len(),
            channels,
            "depthwise packing: one weight sum per channel expected"
        );
        let pack = |shift: usize| {
            let groups = channels.div_ceil(STACK_GROUP);
            let mut lines = Lines::zeroed(groups * width * 64);
            for c in 0..channels {
                let (group, i) = (c / STACK_GROUP, c % STACK_GROUP);
                for row in 0..rows {
                    for kw in 0..width {
                        let vector = group * width + kw;
                        let value = weights[(c * rows + row) * width + kw];
                        lines.set_i8(vector * 64 + STACK_ROWS * i + row + shift, value);
                    }
                }
            }
            lines
        };
        Some(StackedDepthwiseWeights {
            channels,
            kernel,
            lines: pack(0),
            shifted: pack(1),
            sums: sums.to_vec(),
        })
    }

    /// Sum of channel `c`'s weights.
    pub(super) fn sum(&self, c: usize) -> i32 {
        self.sums[c]
    }

    /// First of the kernel width's weight vectors of group `group`, of the
    /// shifted copy if `shifted`.
    pub(super) fn group_ptr(&self, group: usize, shifted: bool) -> *const u8 {
        assert!(
            group <= self.channels.div_ceil(STACK_GROUP),
            "stacked depthwise weights: group {group} out of range"
        );
        let lines = if shifted { &self.shifted } else { &self.lines };
        // SAFETY: groups up to the count (one past the end) stay inside
        // or at the end of the buffer.
        unsafe { lines.as_ptr().add(group * self.kernel[2] * 64) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacked_depthwise_rows_and_shift() {
        // 17 channels (a second group of one), 3x2 kernel: weight of
        // channel c, row r, column k is 6c + 2r + k.
        let w: Vec<i8> = (0..17 * 6).map(|i| i as i8).collect();
        let p = StackedDepthwiseWeights::build(&w, &[0; 17], 17, [1, 3, 2]).expect("3 rows");
        let vector = |group: usize, shifted: bool, kw: usize| {
            // SAFETY: each group has 2 vectors of 64 bytes.
            unsafe { std::slice::from_raw_parts(p.group_ptr(group, shifted).add(64 * kw), 64) }
        };
        assert_eq!(&vector(0, false, 0)[..8], &[0, 2, 4, 0, 6, 8, 10, 0]);
        assert_eq!(&vector(0, false, 1)[..4], &[1, 3, 5, 0]);
        assert_eq!(&vector(0, true, 0)[..8], &[0, 0, 2, 4, 0, 6, 8, 10]);
        assert_eq!(&vector(1, false, 1)[..8], &[97, 99, 101, 0, 0, 0, 0, 0]);
        assert!(vector(1, true, 0)[8..].iter().all(|&b| b == 0));
        assert!(StackedDepthwiseWeights::build(&[0; 16], &[0], 1, [1, 4, 4]).is_none());
        assert!(StackedDepthwiseWeights::build(&[0; 18], &[0, 0], 2, [3, 3, 1]).is_none());
    }

    #[test]
    fn panel_layout_and_corrections() {
        // 2 output channels, 5 input channels, 1 tap: steps of 4 channels.
        let shape = PanelShape {
            groups: 1,
            out_per_group: 2,
            in_per_group: 5,
            taps: 1,
        };
        let w: Vec<i8> = (1..=10).collect();
        let p = Panels::build(Encoding::Bytes, shape, &w, &[15, 40]);
        // 2 lines of steps and one of padding.
        assert_eq!(p.panel_stride(), 3 * 64);
        // SAFETY: the buffer contains one panel of 2 steps of 64 bytes.
        let bytes = unsafe { std::slice::from_raw_parts(p.panel_ptr(0, 0), 128) };
        assert_eq!(&bytes[..8], &[1, 2, 3, 4, 6, 7, 8, 9]);
        assert_eq!(&bytes[64..72], &[5, 0, 0, 0, 10, 0, 0, 0]);
        // SAFETY: one panel has PANEL corrections.
        let corr = unsafe { std::slice::from_raw_parts(p.correction_ptr(0, 0), 3) };
        assert_eq!(corr, &[-1920, -5120, 0]);
    }

    #[test]
    fn depthwise_vnni_phases() {
        // 70 channels, 2 taps: chunk 1 contains channels 64-69.
        let w: Vec<i8> = (0..140).map(|i| (i % 251 - 100) as i8).collect();
        let sums: Vec<i32> = (0..70)
            .map(|c| w[2 * c] as i32 + w[2 * c + 1] as i32)
            .collect();
        let p = DepthwiseVnniWeights::build(&w, &sums, 70, [1, 1, 2]);
        assert_eq!(p.pixels_per_vector(), 1);
        // SAFETY: chunk 1 contains 2 taps of 4 vectors of 64 bytes.
        let chunk = unsafe { std::slice::from_raw_parts(p.chunk_ptr(1), 8 * 64) };
        for (v, vector) in chunk.chunks(64).enumerate() {
            let (tap, phase) = (v / 4, v % 4);
            for (b, &byte) in vector.iter().enumerate() {
                let c = 64 + b;
                let want = if b % 4 == phase && c < 70 {
                    w[2 * c + tap] as u8
                } else {
                    0
                };
                assert_eq!(byte, want, "tap {tap}, phase {phase}, byte {b}");
            }
        }
        assert_eq!(p.byte_channel(1, 5), Some(69));
        assert_eq!(p.byte_channel(1, 6), None);
    }

    #[test]
    fn depthwise_vnni_repeats_small_channel_counts() {
        let w: Vec<i8> = (0..16).map(|i| i as i8 + 1).collect();
        let p = DepthwiseVnniWeights::build(&w, &[0; 16], 16, [1, 1, 1]);
        assert_eq!(p.pixels_per_vector(), 4);
        // SAFETY: one chunk of one tap: 4 vectors of 64 bytes.
        let vectors = unsafe { std::slice::from_raw_parts(p.chunk_ptr(0), 4 * 64) };
        for b in 0..64 {
            assert_eq!(vectors[(b % 4) * 64 + b], (b % 16) as u8 + 1, "byte {b}");
            assert_eq!(p.byte_channel(0, b), Some(b % 16));
        }
    }

    #[test]
    fn depthwise_lanes_cover_each_channel_once() {
        for block in [16, 32] {
            let mut seen = vec![0; block];
            for half in 0..2 {
                for lane in 0..block / 2 {
                    seen[DepthwiseWeights::channel(block, half, lane)] += 1;
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "block {block}: {seen:?}");
        }
    }
}
