//! x86-64 int8 kernels: AMX, AVX-512 VNNI, AVX-512 BW and AVX2 tiers of the
//! quantized convolution and GEMM, bit-exact with the scalar reference.
//!
//! Weights are repacked for a tier ([`ConvPack`], [`GemmPack`]); the kernels
//! take channels-last int8 or uint8 data and run the fused output stage on
//! vectors. `crate::kernels::int8::conv::conv` and `gemm::gemm` call
//! [`conv_selected`] and [`gemm_packed`] first and fall back to the scalar
//! body when these return `false`.

mod amx;
mod amx_gather;
mod depthwise;
mod depthwise_stacked;
mod depthwise_vnni;
mod implicit_gemm;
mod madd;
mod pack;
pub(crate) mod reorder;
mod short_k;
mod stage;
mod tile;
mod vnni;

#[cfg(test)]
mod tests;

use std::any::TypeId;
use std::sync::OnceLock;

use self::amx::{AmxWeights, Rows};
use self::implicit_gemm::{DataCopy, Tiling};
use self::pack::{
    DepthwiseVnniWeights, DepthwiseWeights, Encoding, PanelShape, Panels, StackedDepthwiseWeights,
};
use self::stage::{OutKind, StagePlan};
use super::conv::{ConvGeometry, PackedConvWeights};
use super::elem::{OutputElem, QuantElem, QuantSlice};
use super::isa::{self, Isa};
use super::output::OutputStage;

/// The output pointer shared by the jobs of one call; each job writes its
/// own elements.
#[derive(Clone, Copy)]
struct SyncPtr(*mut u8);

// SAFETY: jobs write disjoint elements and the call waits for all of them
// before the buffer is used again.
unsafe impl Send for SyncPtr {}
// SAFETY: as above.
unsafe impl Sync for SyncPtr {}

/// Stores a tile of `rows` accumulator rows (row `m` at `acc + m·acc_stride`,
/// `n` channels from `channel`) to output elements `index + m·out_stride ..`
/// through the vector stage of `isa`.
///
/// # Safety
/// The CPU must run `isa` (AVX2 or better), and `out` must have elements
/// `index + m·out_stride .. + n` of the plan's kind for every row `m`.
#[allow(clippy::too_many_arguments)]
unsafe fn store_tile(
    isa: Isa,
    plan: &StagePlan,
    acc: &[i32],
    acc_stride: usize,
    rows: usize,
    n: usize,
    channel: usize,
    index: usize,
    out_stride: usize,
    out: SyncPtr,
) {
    assert!(
        rows == 0 || (rows - 1) * acc_stride + n <= acc.len(),
        "store_tile: the tile is larger than its accumulators"
    );
    let store = if isa >= Isa::Avx512Bw {
        stage::store_tile_avx512
    } else {
        stage::store_tile_avx2
    };
    // SAFETY: forwarded from the caller; the accumulator rows were checked.
    unsafe {
        store(
            plan,
            acc.as_ptr(),
            acc_stride,
            rows,
            n,
            channel,
            index,
            out_stride,
            out.0,
        )
    }
}

/// Returns whether this CPU and operating system run the AMX tier.
pub(crate) fn amx_supported() -> bool {
    amx::supported()
}

/// Minimum rows of a fully connected layer, or pixels of a 1x1
/// convolution, for the AMX tiles. Fewer run on VNNI, because a block
/// computes 32 rows whatever the count.
const AMX_MIN_ROWS: usize = 16;

fn tiling(isa: Isa) -> Tiling {
    match isa {
        Isa::Amx | Isa::Avx512Vnni => Tiling {
            pixels: vnni::TILE_PIXELS,
            narrow_pixels: vnni::NARROW_TILE_PIXELS,
            panels: vnni::TILE_PANELS,
            select: vnni::select,
            copy: DataCopy::Bytes,
        },
        Isa::Avx512Bw => Tiling {
            pixels: madd::AVX512_TILE_PIXELS,
            narrow_pixels: madd::AVX512_TILE_PIXELS,
            panels: madd::AVX512_TILE_PANELS,
            select: madd::select_avx512,
            copy: DataCopy::InPlace,
        },
        Isa::Avx2 | Isa::Scalar => Tiling {
            pixels: madd::AVX2_TILE_PIXELS,
            narrow_pixels: madd::AVX2_TILE_PIXELS,
            panels: 1,
            select: madd::select_avx2_pairs,
            copy: DataCopy::Widened,
        },
    }
}

#[derive(Clone)]
enum ConvLayout {
    Panels(Panels),
    Depthwise(DepthwiseWeights),
    DepthwiseVnni(DepthwiseVnniWeights),
    /// Depthwise with kernel rows stacked in the lanes' bytes, on the AMX
    /// tier, whose CPUs have AVX-512 VBMI. Layers it does not apply to use
    /// the VNNI layout.
    DepthwiseStacked {
        stacked: StackedDepthwiseWeights,
        vnni: DepthwiseVnniWeights,
    },
    /// AMX tiles: on the AMX tier, every convolution with one group that
    /// is not depthwise and is not a multi-tap layer of fewer than 4 input
    /// channels. A 1x1 layer also has VNNI panels for calls with fewer than
    /// [`AMX_MIN_ROWS`] pixels (a classifier on pooled features at batch 1
    /// took 0.15 ms on tiles and 0.04 ms on VNNI).
    Tiles {
        tiles: AmxWeights,
        panels: Option<Panels>,
    },
}

/// Convolution weights repacked for one SIMD tier and one group count.
#[derive(Clone)]
pub struct ConvPack {
    isa: Isa,
    groups: usize,
    layout: ConvLayout,
}

impl std::fmt::Debug for ConvPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.layout {
            ConvLayout::Panels(_) => "panels",
            ConvLayout::Depthwise(_) => "depthwise",
            ConvLayout::DepthwiseVnni(_) => "depthwise vnni",
            ConvLayout::DepthwiseStacked { .. } => "depthwise stacked",
            ConvLayout::Tiles { .. } => "tiles",
        };
        write!(f, "ConvPack({}, {kind}, {} groups)", self.isa, self.groups)
    }
}

impl ConvPack {
    /// Repacks `weights` for `isa` and a convolution with `groups` groups.
    /// Returns `None` for the scalar tier, a tier this CPU cannot run, or a
    /// group count that does not divide the output channels.
    pub fn new(isa: Isa, weights: &PackedConvWeights, groups: usize) -> Option<ConvPack> {
        if isa == Isa::Scalar || isa > isa::detected() || groups == 0 {
            return None;
        }
        let out_channels = weights.out_channels();
        if !out_channels.is_multiple_of(groups) {
            return None;
        }
        let taps: usize = weights.kernel().iter().product();
        let in_per_group = weights.in_channels_per_group();
        let out_per_group = out_channels / groups;
        if taps == 0 || in_per_group == 0 || out_per_group == 0 {
            return None;
        }
        let depthwise = in_per_group == 1 && out_per_group == 1;
        // Gathering the taps of a layer with fewer than 4 input channels
        // (an RGB stem) costs more than the tiles save: a 3x3/2 stem took
        // 4.4 ms on tiles and 2.9 ms on VNNI (batch 16, one thread).
        let gathers_well = taps == 1 || in_per_group >= 4;
        let shape = PanelShape {
            groups,
            out_per_group,
            in_per_group,
            taps,
        };
        let panels = || {
            Panels::build(
                encoding(isa),
                shape,
                weights.reference_data(),
                weights.channel_sums(),
            )
        };
        let layout = if isa == Isa::Amx && groups == 1 && !depthwise && gathers_well {
            ConvLayout::Tiles {
                tiles: AmxWeights::build(
                    weights.reference_data(),
                    out_channels,
                    taps * in_per_group,
                ),
                panels: (taps == 1).then(panels),
            }
        } else if depthwise && isa >= Isa::Avx512Vnni {
            let vnni = DepthwiseVnniWeights::build(
                weights.reference_data(),
                weights.channel_sums(),
                out_channels,
                weights.kernel(),
            );
            let stacked = (isa == Isa::Amx && depthwise_stacked::supported())
                .then(|| {
                    StackedDepthwiseWeights::build(
                        weights.reference_data(),
                        weights.channel_sums(),
                        out_channels,
                        weights.kernel(),
                    )
                })
                .flatten();
            match stacked {
                Some(stacked) => ConvLayout::DepthwiseStacked { stacked, vnni },
                None => ConvLayout::DepthwiseVnni(vnni),
            }
        } else if depthwise {
            let block = if isa >= Isa::Avx512Bw { 32 } else { 16 };
            ConvLayout::Depthwise(DepthwiseWeights::build(
                weights.reference_data(),
                out_channels,
                taps,
                block,
            ))
        } else {
            ConvLayout::Panels(panels())
        };
        Some(ConvPack {
            isa,
            groups,
            layout,
        })
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }
}

fn encoding(isa: Isa) -> Encoding {
    match isa {
        Isa::Amx | Isa::Avx512Vnni => Encoding::Bytes,
        Isa::Avx512Bw => Encoding::Words,
        Isa::Avx2 | Isa::Scalar => Encoding::Pairs,
    }
}

/// The [`ConvPack`] of the selected tier, built on first use because the
/// group count is only known then.
#[derive(Clone, Default)]
pub struct ConvCache(OnceLock<Option<ConvPack>>);

impl std::fmt::Debug for ConvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.get() {
            Some(Some(pack)) => write!(f, "{pack:?}"),
            _ => f.write_str("ConvCache(empty)"),
        }
    }
}

/// Data bytes of an int8 (`true`) or uint8 (`false`) slice; `None` for
/// other element types, which the SIMD kernels do not take.
fn data_bytes<X: QuantElem>(input: &[X]) -> Option<(&[u8], bool)> {
    let id = TypeId::of::<X>();
    let signed = if id == TypeId::of::<i8>() {
        true
    } else if id == TypeId::of::<u8>() {
        false
    } else {
        return None;
    };
    Some((bytemuck::cast_slice(input), signed))
}

/// Runs `conv` with the selected tier's kernels, packing `weights` on the
/// first call. Returns `false`, having done nothing, when the selected tier
/// is scalar or the data or output type has no SIMD kernel.
pub(crate) fn conv_selected<X: QuantElem, O: OutputElem>(
    geom: &ConvGeometry,
    input: &[X],
    weights: &PackedConvWeights,
    stage: &OutputStage,
    residual: Option<QuantSlice>,
    output: &mut [O],
) -> bool {
    let isa = isa::selected();
    if isa == Isa::Scalar || data_bytes(input).is_none() || OutKind::of::<O>().is_none() {
        return false;
    }
    let cached = weights
        .fast_cache()
        .0
        .get_or_init(|| ConvPack::new(isa, weights, geom.groups));
    match cached {
        Some(pack) if pack.groups == geom.groups => {
            conv(pack, geom, input, stage, residual, output)
        }
        _ => match ConvPack::new(isa, weights, geom.groups) {
            Some(pack) => conv(&pack, geom, input, stage, residual, output),
            None => false,
        },
    }
}

/// Runs a quantized convolution with `pack`'s tier: channels-last `input`
/// and `output` as in `crate::kernels::int8::conv::conv`. Returns `false`,
/// having done nothing, when the data type is not int8 or uint8 or the
/// output type is not int8, uint8, int32 or f32.
///
/// # Panics
/// When the buffers or the weights do not match `geom`.
pub fn conv<X: QuantElem, O: OutputElem>(
    pack: &ConvPack,
    geom: &ConvGeometry,
    input: &[X],
    stage: &OutputStage,
    residual: Option<QuantSlice>,
    output: &mut [O],
) -> bool {
    let (Some((bytes, signed)), Some(kind)) = (data_bytes(input), OutKind::of::<O>()) else {
        return false;
    };
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
        pack.groups, geom.groups,
        "conv: weights were packed for another group count"
    );
    if let Some(r) = residual {
        assert_eq!(
            r.len(),
            output.len(),
            "conv: residual length does not match the output"
        );
    }
    if output.is_empty() {
        return true;
    }
    let plan = StagePlan::new(stage, kind, residual, geom.out_channels);
    let out = SyncPtr(output.as_mut_ptr().cast());
    match &pack.layout {
        ConvLayout::Tiles { tiles, panels } => {
            let taps: usize = geom.kernel.iter().product();
            assert_eq!(
                (tiles.n, tiles.k),
                (geom.out_channels, geom.in_channels * taps),
                "conv: weights do not match the geometry"
            );
            let pixels = geom.batch * geom.output.iter().product::<usize>();
            match panels.as_ref().filter(|_| pixels < AMX_MIN_ROWS) {
                // SAFETY: as for `ConvLayout::Panels` below.
                Some(panels) => unsafe {
                    run_panels(pack.isa, geom, bytes, signed, panels, &plan, out)
                },
                // SAFETY: `ConvPack::new` builds tiles only on the AMX tier,
                // which it checked this CPU and system run, and only with one
                // group. `out` has `geom.output_len()` elements of `kind`.
                None => unsafe {
                    let short = short_k::applies(geom.in_channels, geom.out_channels, &plan)
                        .filter(|_| is_plain(geom));
                    if let Some(form) = short {
                        short_k::run(
                            pixels,
                            geom.in_channels,
                            bytes,
                            signed,
                            tiles,
                            &plan,
                            form,
                            out,
                        )
                    } else if is_plain(geom) {
                        // Output pixel `p` multiplies input pixel `p` as it is.
                        let rows = Rows::InPlace {
                            input: bytes,
                            stride: geom.in_channels,
                        };
                        amx::run(pack.isa, pixels, &rows, signed, tiles, &plan, out, 0)
                    } else {
                        amx_gather::run(pack.isa, geom, bytes, signed, tiles, &plan, out)
                    }
                },
            }
        }
        // SAFETY: `pack` was built for `pack.isa`, which `ConvPack::new`
        // checked this CPU runs, with this geometry's shape. `out` has
        // `geom.output_len()` elements of `kind` and `output` is borrowed
        // mutably for the whole call.
        ConvLayout::Panels(panels) => unsafe {
            run_panels(pack.isa, geom, bytes, signed, panels, &plan, out)
        },
        ConvLayout::Depthwise(weights) => {
            let taps: usize = geom.kernel.iter().product();
            assert_eq!(
                (weights.channels, weights.taps, geom.in_channels),
                (geom.out_channels, taps, geom.out_channels),
                "conv: depthwise weights do not match the geometry"
            );
            // SAFETY: as above, with depthwise weights of `pack.isa`'s block width.
            unsafe { depthwise::run(pack.isa, geom, bytes, signed, weights, &plan, out) };
        }
        ConvLayout::DepthwiseVnni(weights) => {
            assert_eq!(
                (weights.channels, weights.kernel, geom.in_channels),
                (geom.out_channels, geom.kernel, geom.out_channels),
                "conv: depthwise weights do not match the geometry"
            );
            // SAFETY: as above; `ConvPack::new` builds this layout only for
            // the AVX-512 VNNI tier.
            unsafe { depthwise_vnni::run(pack.isa, geom, bytes, signed, weights, &plan, out) };
        }
        ConvLayout::DepthwiseStacked { stacked, vnni } => {
            assert_eq!(
                (stacked.channels, stacked.kernel, geom.in_channels),
                (geom.out_channels, geom.kernel, geom.out_channels),
                "conv: depthwise weights do not match the geometry"
            );
            // SAFETY: as above. `ConvPack::new` builds this layout only on
            // the AMX tier of a CPU with VBMI. `applies` checks the geometry
            // and that the stage stores bytes.
            match depthwise_stacked::applies(geom, &plan) {
                Some(form) => unsafe {
                    depthwise_stacked::run(geom, bytes, signed, stacked, &plan, form, out)
                },
                None => unsafe {
                    depthwise_vnni::run(pack.isa, geom, bytes, signed, vnni, &plan, out)
                },
            }
        }
    }
    true
}

/// Runs a convolution on VNNI, AVX-512 BW or AVX2 panels.
///
/// # Safety
/// The CPU must run `isa`, `panels` must be packed for `isa` with the
/// geometry's shape, and `out` must have `geom.output_len()` elements of
/// the plan's kind, written by no one else meanwhile.
unsafe fn run_panels(
    isa: Isa,
    geom: &ConvGeometry,
    bytes: &[u8],
    signed: bool,
    panels: &Panels,
    plan: &StagePlan,
    out: SyncPtr,
) {
    let shape = panels.shape;
    let taps: usize = geom.kernel.iter().product();
    assert_eq!(
        (
            shape.groups * shape.out_per_group,
            shape.in_per_group,
            shape.taps
        ),
        (geom.out_channels, geom.in_channels_per_group(), taps),
        "conv: weights do not match the geometry"
    );
    // SAFETY: forwarded from the caller.
    unsafe { implicit_gemm::run(isa, tiling(isa), geom, bytes, signed, panels, plan, out) };
}

/// Returns the byte offset of each tap of `geom`'s kernel from the first
/// tap, in `[depth][height][width]` order, for an input of
/// `pixel_bytes` bytes per pixel.
fn tap_offsets(geom: &ConvGeometry, pixel_bytes: usize) -> Vec<usize> {
    let [_, ih, iw] = geom.input;
    let mut offsets = Vec::with_capacity(geom.kernel.iter().product());
    for kd in 0..geom.kernel[0] {
        for kh in 0..geom.kernel[1] {
            for kw in 0..geom.kernel[2] {
                let d = kd * geom.dilate[0];
                let h = kh * geom.dilate[1];
                let w = kw * geom.dilate[2];
                offsets.push(((d * ih + h) * iw + w) * pixel_bytes);
            }
        }
    }
    offsets
}

/// Returns whether `geom` is a 1x1 convolution with stride 1 and no
/// padding: then output pixel `p` reads input pixel `p` only.
fn is_plain(geom: &ConvGeometry) -> bool {
    (0..3).all(|i| {
        geom.kernel[i] == 1
            && geom.stride[i] == 1
            && geom.pad[i] == 0
            && geom.input[i] == geom.output[i]
    })
}

/// A fully connected layer's weights repacked for one SIMD tier: the
/// panels of a 1x1 convolution with one group.
#[derive(Clone)]
pub struct GemmPack {
    isa: Isa,
    rows: usize,
    depth: usize,
    panels: Panels,
    /// The same weights as AMX tiles, on the AMX tier.
    amx: Option<AmxWeights>,
}

impl std::fmt::Debug for GemmPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GemmPack({}, {}x{})", self.isa, self.rows, self.depth)
    }
}

impl GemmPack {
    /// Repacks a row-major (N = `rows`, K = `depth`) matrix whose row sums
    /// are `row_sums`. Returns `None` for the scalar tier, a tier this CPU
    /// cannot run, or an empty matrix.
    pub fn new(
        isa: Isa,
        weights: &[i8],
        row_sums: &[i32],
        rows: usize,
        depth: usize,
    ) -> Option<GemmPack> {
        if isa == Isa::Scalar || isa > isa::detected() || rows == 0 || depth == 0 {
            return None;
        }
        let shape = PanelShape {
            groups: 1,
            out_per_group: rows,
            in_per_group: depth,
            taps: 1,
        };
        Some(GemmPack {
            isa,
            rows,
            depth,
            panels: Panels::build(encoding(isa), shape, weights, row_sums),
            amx: (isa == Isa::Amx).then(|| AmxWeights::build(weights, rows, depth)),
        })
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }
}

/// Computes `output` (M, N) from `input` (M, K) as in
/// `crate::kernels::int8::gemm::gemm`, with `pack`'s tier. Returns `false`,
/// having done nothing, for data or output types without SIMD kernels.
///
/// # Panics
/// When the buffer lengths do not match the packed (N, K).
pub fn gemm_packed<X: QuantElem, O: OutputElem>(
    pack: &GemmPack,
    input: &[X],
    stage: &OutputStage,
    output: &mut [O],
) -> bool {
    let (Some((bytes, signed)), Some(kind)) = (data_bytes(input), OutKind::of::<O>()) else {
        return false;
    };
    let m = output.len() / pack.rows;
    assert_eq!(
        output.len(),
        m * pack.rows,
        "GEMM output length is not a multiple of N"
    );
    assert_eq!(
        input.len(),
        m * pack.depth,
        "GEMM input length does not match M x K"
    );
    if m == 0 {
        return true;
    }
    let plan = StagePlan::new(stage, kind, None, pack.rows);
    let out = SyncPtr(output.as_mut_ptr().cast());
    if let Some(amx) = pack.amx.as_ref().filter(|_| m >= AMX_MIN_ROWS) {
        // SAFETY: the pack has AMX weights only on the AMX tier, which this
        // CPU and system run, and `out` has M x N elements of `kind`.
        let rows = Rows::InPlace {
            input: bytes,
            stride: pack.depth,
        };
        unsafe { amx::run(pack.isa, m, &rows, signed, amx, &plan, out, 0) };
        return true;
    }
    let geom = ConvGeometry {
        batch: 1,
        in_channels: pack.depth,
        out_channels: pack.rows,
        groups: 1,
        input: [1, 1, m],
        output: [1, 1, m],
        kernel: [1, 1, 1],
        stride: [1, 1, 1],
        dilate: [1, 1, 1],
        pad: [0, 0, 0],
    };
    // SAFETY: the pack was built for `pack.isa`, which this CPU runs, as the
    // panels of this 1x1 geometry, and `out` has M x N elements of `kind`.
    unsafe {
        implicit_gemm::run(
            pack.isa,
            tiling(pack.isa),
            &geom,
            bytes,
            signed,
            &pack.panels,
            &plan,
            out,
        )
    };
    true
}

/// Runs `iterations` rounds of 24 independent 512-bit `vpdpbusd` chains
/// (1,536 multiply-adds per round) to measure the VNNI peak. Returns `None`
/// when this CPU has no AVX-512 VNNI.
pub fn vnni_peak(iterations: u64) -> Option<i32> {
    if isa::detected() < Isa::Avx512Vnni {
        return None;
    }
    // SAFETY: the CPU supports AVX-512 VNNI (checked above).
    Some(unsafe { vnni::peak(iterations) })
}
