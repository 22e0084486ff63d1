//! Every SIMD tier this CPU runs against the scalar reference, bit for bit.

use super::*;
use crate::kernels::int8::conv::conv_reference;
use crate::kernels::int8::gemm::{gemm_reference, PackedGemmWeights};
use crate::kernels::int8::output::{Activation, PerChannel};

/// SplitMix64: small, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn bytes<T: bytemuck::Pod>(&mut self, n: usize) -> Vec<T> {
        let raw: Vec<u8> = (0..n).map(|_| self.next() as u8).collect();
        raw.iter()
            .map(|&b| bytemuck::cast::<[u8; 1], T>([b]))
            .collect()
    }
}

/// Tiers above scalar that this CPU runs.
fn simd_tiers() -> Vec<Isa> {
    isa::supported().filter(|&i| i != Isa::Scalar).collect()
}

/// Bitwise equality; all NaNs are equal (see the stage module on payloads).
trait Bits: Copy + std::fmt::Debug {
    fn same(self, other: Self) -> bool;
}

impl Bits for i8 {
    fn same(self, other: Self) -> bool {
        self == other
    }
}

impl Bits for u8 {
    fn same(self, other: Self) -> bool {
        self == other
    }
}

impl Bits for i32 {
    fn same(self, other: Self) -> bool {
        self == other
    }
}

impl Bits for f32 {
    fn same(self, other: Self) -> bool {
        self.to_bits() == other.to_bits() || (self.is_nan() && other.is_nan())
    }
}

fn assert_same<T: Bits>(got: &[T], want: &[T], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| !got[i].same(want[i])) {
        panic!(
            "{what}: element {i} is {:?}, reference {:?}",
            got[i], want[i]
        );
    }
}

/// Builds the output stage variants every kernel is checked with.
fn stages(rng: &mut Rng, channels: usize, typical: f32) -> Vec<(&'static str, OutputStage)> {
    let per_channel = |rng: &mut Rng, lo: f32, hi: f32| {
        PerChannel((0..channels).map(|_| lo + (hi - lo) * rng.unit()).collect())
    };
    // Scales that map typical accumulators to roughly -300..300, so every
    // output type saturates somewhere.
    let s = 300.0 / typical.max(1.0);
    let mut list = vec![
        ("identity", OutputStage::default()),
        (
            "bias uniform",
            OutputStage {
                bias: PerChannel::uniform(-3.0),
                ..Default::default()
            },
        ),
        (
            "bias and scale per channel, relu",
            OutputStage {
                bias: per_channel(rng, -typical, typical),
                scale: per_channel(rng, 0.2 * s, s),
                activation: Some(Activation::Relu),
                ..Default::default()
            },
        ),
        (
            "negative scale, leaky",
            OutputStage {
                scale: per_channel(rng, -s, s),
                activation: Some(Activation::Leaky { slope: 0.1 }),
                ..Default::default()
            },
        ),
        (
            "relu6 clip, act scale",
            OutputStage {
                scale: PerChannel::uniform(6.0 / typical.max(1.0)),
                activation: Some(Activation::Clip { min: 0.0, max: 6.0 }),
                act_scale: Some(21.1),
                ..Default::default()
            },
        ),
        (
            "scale per channel only",
            OutputStage {
                scale: per_channel(rng, -s, s),
                ..Default::default()
            },
        ),
        (
            // Values far past the int32 range: the conversion would overflow.
            "huge scale, relu",
            OutputStage {
                bias: PerChannel::uniform(0.5),
                scale: per_channel(rng, 1e3, 1e4),
                activation: Some(Activation::Relu),
                ..Default::default()
            },
        ),
        (
            "post-sum relu without a sum",
            OutputStage {
                scale: per_channel(rng, -s, s),
                post_sum_activation: Some(Activation::Relu),
                ..Default::default()
            },
        ),
        (
            "negative scale through clip",
            OutputStage {
                scale: PerChannel::uniform(-s),
                activation: Some(Activation::Clip {
                    min: 0.0,
                    max: 100.0,
                }),
                ..Default::default()
            },
        ),
    ];
    for act in [
        Activation::Elu { alpha: 0.5 },
        Activation::Abs,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::SoftRelu,
        Activation::Square,
        Activation::Sqrt,
        Activation::Exp,
    ] {
        list.push((
            "transcendental or other activation",
            OutputStage {
                scale: PerChannel::uniform(4.0 / typical.max(1.0)),
                activation: Some(act),
                act_scale: Some(30.0),
                ..Default::default()
            },
        ));
    }
    list
}

/// Stages with a fused residual sum.
fn residual_stages(typical: f32) -> Vec<(&'static str, OutputStage)> {
    vec![
        (
            "sum",
            OutputStage {
                scale: PerChannel::uniform(100.0 / typical.max(1.0)),
                sum_scale: Some(0.75),
                ..Default::default()
            },
        ),
        (
            "relu, sum, post relu",
            OutputStage {
                bias: PerChannel::uniform(5.0),
                scale: PerChannel::uniform(150.0 / typical.max(1.0)),
                activation: Some(Activation::Relu),
                sum_scale: Some(1.5),
                post_sum_activation: Some(Activation::Relu),
                ..Default::default()
            },
        ),
        (
            "negative scale, sum, post relu",
            OutputStage {
                scale: PerChannel::uniform(-120.0 / typical.max(1.0)),
                sum_scale: Some(-2.0),
                post_sum_activation: Some(Activation::Relu),
                ..Default::default()
            },
        ),
        (
            "relu6 clip, sum",
            OutputStage {
                bias: PerChannel::uniform(-7.5),
                scale: PerChannel::uniform(8.0 / typical.max(1.0)),
                activation: Some(Activation::Clip { min: 0.0, max: 6.0 }),
                sum_scale: Some(0.5),
                ..Default::default()
            },
        ),
        (
            // Large enough that a value may overflow to infinity, so the
            // stage must keep its NaN handling.
            "huge scale, sum",
            OutputStage {
                scale: PerChannel::uniform(3e35),
                sum_scale: Some(-3e38),
                post_sum_activation: Some(Activation::Relu),
                ..Default::default()
            },
        ),
    ]
}

/// Runs `pack`'s tier and the reference with one output type and compares.
#[allow(clippy::too_many_arguments)]
fn check_conv_as<X: QuantElem, O: OutputElem + Bits + Default>(
    pack: &ConvPack,
    geom: &ConvGeometry,
    x: &[X],
    w: &PackedConvWeights,
    stage: &OutputStage,
    residual: Option<QuantSlice>,
    what: &str,
) {
    let mut want = vec![O::default(); geom.output_len()];
    conv_reference(geom, x, w, stage, residual, &mut want);
    let mut got = vec![O::default(); geom.output_len()];
    assert!(
        conv(pack, geom, x, stage, residual, &mut got),
        "{what}: no SIMD kernel"
    );
    assert_same(&got, &want, what);
}

/// Compares every SIMD tier with the reference on one convolution, for
/// all stages and output types.
fn check_conv<X: QuantElem>(
    rng: &mut Rng,
    geom: &ConvGeometry,
    x: &[X],
    weights: &[i8],
    label: &str,
) {
    let w = PackedConvWeights::pack(
        weights,
        geom.out_channels,
        geom.in_channels_per_group(),
        geom.kernel,
    );
    let depth = geom.in_channels_per_group() * geom.kernel.iter().product::<usize>();
    let typical = 64.0 * (depth as f32).sqrt() * 16.0;
    let stage_list = stages(rng, geom.out_channels, typical);
    let res_i8: Vec<i8> = rng.bytes(geom.output_len());
    let res_u8: Vec<u8> = rng.bytes(geom.output_len());
    let res_i32: Vec<i32> = (0..geom.output_len())
        .map(|_| rng.next() as i32 >> rng.range(0, 31))
        .collect();
    for isa in simd_tiers() {
        let pack = ConvPack::new(isa, &w, geom.groups).expect("tier runs on this CPU");
        for (k, (name, stage)) in stage_list.iter().enumerate() {
            let what = format!("{label}, {isa}, {name} ({k})");
            check_conv_as::<X, i8>(&pack, geom, x, &w, stage, None, &what);
            check_conv_as::<X, u8>(&pack, geom, x, &w, stage, None, &what);
            check_conv_as::<X, i32>(&pack, geom, x, &w, stage, None, &what);
            check_conv_as::<X, f32>(&pack, geom, x, &w, stage, None, &what);
        }
        for (name, stage) in residual_stages(typical) {
            let what = format!("{label}, {isa}, {name}");
            let r8 = Some(QuantSlice::I8(&res_i8));
            check_conv_as::<X, i8>(&pack, geom, x, &w, &stage, r8, &what);
            let ru8 = Some(QuantSlice::U8(&res_u8));
            check_conv_as::<X, u8>(&pack, geom, x, &w, &stage, ru8, &what);
            let r32 = Some(QuantSlice::I32(&res_i32));
            check_conv_as::<X, f32>(&pack, geom, x, &w, &stage, r32, &what);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn geometry(
    batch: usize,
    in_channels: usize,
    out_channels: usize,
    groups: usize,
    input: [usize; 3],
    kernel: [usize; 3],
    stride: [usize; 3],
    dilate: [usize; 3],
    pad: [usize; 3],
) -> ConvGeometry {
    let output = std::array::from_fn(|i| {
        let span = (kernel[i] - 1) * dilate[i] + 1;
        (input[i] + 2 * pad[i]).saturating_sub(span) / stride[i] + 1
    });
    ConvGeometry {
        batch,
        in_channels,
        out_channels,
        groups,
        input,
        output,
        kernel,
        stride,
        dilate,
        pad,
    }
}

fn random_geometry(rng: &mut Rng, depthwise: bool) -> ConvGeometry {
    let groups = if depthwise {
        rng.range(1, 70)
    } else {
        [1, 1, 2, 3][rng.range(0, 3)]
    };
    let (icg, ocg) = if depthwise {
        (1, 1)
    } else {
        (rng.range(1, 37), rng.range(1, 70))
    };
    let dims = rng.range(1, 3);
    let mut input = [1; 3];
    let mut kernel = [1; 3];
    let mut stride = [1; 3];
    let mut dilate = [1; 3];
    let mut pad = [0; 3];
    for i in 3 - dims..3 {
        kernel[i] = rng.range(1, 3);
        stride[i] = rng.range(1, 2);
        dilate[i] = rng.range(1, 2);
        let span = (kernel[i] - 1) * dilate[i] + 1;
        pad[i] = rng.range(0, span / 2 + 1);
        input[i] = rng.range(
            span.saturating_sub(2 * pad[i]).max(1),
            if dims == 3 { 5 } else { 9 },
        );
    }
    geometry(
        rng.range(1, 2),
        groups * icg,
        groups * ocg,
        groups,
        input,
        kernel,
        stride,
        dilate,
        pad,
    )
}

fn random_case(rng: &mut Rng, depthwise: bool, case: usize) {
    let geom = random_geometry(rng, depthwise);
    let weight_count =
        geom.out_channels * geom.in_channels_per_group() * geom.kernel.iter().product::<usize>();
    let weights: Vec<i8> = rng.bytes(weight_count);
    let label = format!("case {case} {geom:?}");
    if case.is_multiple_of(2) {
        let x: Vec<i8> = rng.bytes(geom.input_len());
        check_conv(rng, &geom, &x, &weights, &format!("{label}, int8 data"));
    } else {
        let x: Vec<u8> = rng.bytes(geom.input_len());
        check_conv(rng, &geom, &x, &weights, &format!("{label}, uint8 data"));
    }
}

#[test]
fn conv_random_shapes_match_reference() {
    let mut rng = Rng(1);
    for case in 0..24 {
        random_case(&mut rng, false, case);
    }
}

#[test]
fn depthwise_random_shapes_match_reference() {
    let mut rng = Rng(2);
    for case in 0..16 {
        random_case(&mut rng, true, case);
    }
}

/// Builds a depthwise geometry with `dims` spatial dimensions (the last
/// ones) and a random stride 1-3, dilation 1-2 and padding 0-3 in each.
fn depthwise_geometry(
    rng: &mut Rng,
    batch: usize,
    channels: usize,
    kernel: [usize; 3],
    dims: usize,
) -> ConvGeometry {
    let mut input = [1; 3];
    let mut stride = [1; 3];
    let mut dilate = [1; 3];
    let mut pad = [0; 3];
    for i in 3 - dims..3 {
        stride[i] = rng.range(1, 3);
        dilate[i] = rng.range(1, 2);
        pad[i] = rng.range(0, 3);
        let span = (kernel[i] - 1) * dilate[i] + 1;
        let largest = span.max(if dims == 3 { 6 } else { 12 });
        input[i] = rng.range(span.saturating_sub(2 * pad[i]).max(1), largest);
    }
    geometry(
        batch, channels, channels, channels, input, kernel, stride, dilate, pad,
    )
}

fn depthwise_case(rng: &mut Rng, channels: usize, kernel: [usize; 3], dims: usize, case: usize) {
    let batch = rng.range(1, 3);
    let geom = depthwise_geometry(rng, batch, channels, kernel, dims);
    let weights: Vec<i8> = rng.bytes(channels * kernel.iter().product::<usize>());
    let label = format!("case {case} {geom:?}");
    if case.is_multiple_of(2) {
        let x: Vec<i8> = rng.bytes(geom.input_len());
        check_conv(rng, &geom, &x, &weights, &format!("{label}, int8 data"));
    } else {
        let x: Vec<u8> = rng.bytes(geom.input_len());
        check_conv(rng, &geom, &x, &weights, &format!("{label}, uint8 data"));
    }
}

#[test]
fn depthwise_kernels_and_channels_match_reference() {
    let mut rng = Rng(8);
    let mut case = 0;
    for channels in [1, 3, 16, 17, 32, 33, 40] {
        for kernel in [[1, 1, 1], [1, 3, 3], [1, 5, 5], [1, 3, 1], [1, 7, 7]] {
            depthwise_case(&mut rng, channels, kernel, 2, case);
            case += 1;
        }
    }
}

#[test]
fn depthwise_wide_rows_match_reference() {
    // Channel counts that divide 64 put several pixels in one vector when
    // the width stride is 1; wide rows give tiles of every vector count,
    // leftover pixels inside the row and both borders.
    let mut rng = Rng(11);
    let mut case = 0;
    for channels in [1, 2, 8, 16, 17, 32, 64, 96, 144] {
        for (stride, width) in [(1, 70 + rng.range(0, 60)), (2, 41)] {
            let geom = geometry(
                1,
                channels,
                channels,
                channels,
                [1, 9 + rng.range(0, 10), width],
                [1, 3, 3],
                [1, 1, stride],
                [1, 1, 1],
                [0, 1, 1],
            );
            let weights: Vec<i8> = rng.bytes(channels * 9);
            let label = format!("case {case} {geom:?}");
            if case % 2 == 0 {
                let x: Vec<i8> = rng.bytes(geom.input_len());
                check_conv(
                    &mut rng,
                    &geom,
                    &x,
                    &weights,
                    &format!("{label}, int8 data"),
                );
            } else {
                let x: Vec<u8> = rng.bytes(geom.input_len());
                check_conv(
                    &mut rng,
                    &geom,
                    &x,
                    &weights,
                    &format!("{label}, uint8 data"),
                );
            }
            case += 1;
        }
    }
}

#[test]
fn depthwise_1d_and_3d_match_reference() {
    let mut rng = Rng(9);
    let mut case = 0;
    for channels in [1, 17, 40] {
        for kernel in [[1, 1, 3], [1, 1, 5], [1, 1, 9]] {
            depthwise_case(&mut rng, channels, kernel, 1, case);
            case += 1;
        }
        for kernel in [[3, 3, 3], [2, 1, 3], [3, 1, 1], [1, 3, 5]] {
            depthwise_case(&mut rng, channels, kernel, 3, case);
            case += 1;
        }
    }
}

#[test]
fn depthwise_uses_vnni_layout() {
    if isa::detected() < Isa::Avx512Vnni {
        return;
    }
    let w = PackedConvWeights::pack(&[1; 18], 2, 1, [1, 3, 3]);
    let pack = ConvPack::new(Isa::Avx512Vnni, &w, 2).expect("VNNI runs here");
    assert!(matches!(pack.layout, ConvLayout::DepthwiseVnni(_)));
    let pack = ConvPack::new(Isa::Avx512Bw, &w, 2).expect("AVX-512 BW runs here");
    assert!(matches!(pack.layout, ConvLayout::Depthwise(_)));
    if isa::detected() == Isa::Amx {
        // Stacked rows for kernels of at most 3 rows, VNNI for the others.
        let pack = ConvPack::new(Isa::Amx, &w, 2).expect("AMX runs here");
        assert!(matches!(pack.layout, ConvLayout::DepthwiseStacked { .. }));
        let w = PackedConvWeights::pack(&[1; 50], 2, 1, [1, 5, 5]);
        let pack = ConvPack::new(Isa::Amx, &w, 2).expect("AMX runs here");
        assert!(matches!(pack.layout, ConvLayout::DepthwiseVnni(_)));
    }
}

#[test]
fn depthwise_extreme_values_match_reference() {
    // 40 channels (a partial block) with kernels of one, two and three tap
    // groups per row, the padding all around.
    let mut rng = Rng(10);
    let shapes = [
        ([1, 9, 11], [1, 5, 5], [0, 2, 2], [1, 1, 1]),
        ([1, 9, 11], [1, 7, 7], [0, 3, 3], [1, 2, 1]),
        ([1, 1, 11], [1, 1, 9], [0, 0, 4], [1, 1, 2]),
        ([4, 5, 6], [3, 3, 3], [1, 1, 1], [1, 1, 1]),
    ];
    for (input, kernel, pad, dilate) in shapes {
        let dw = geometry(2, 40, 40, 40, input, kernel, [1, 1, 1], dilate, pad);
        let n = 40 * kernel.iter().product::<usize>();
        for (wname, w) in [("-128", vec![-128i8; n]), ("127", vec![127i8; n])] {
            for (xname, x) in [
                ("-128", vec![-128i8; dw.input_len()]),
                ("127", vec![127i8; dw.input_len()]),
            ] {
                let what = format!("depthwise {kernel:?}, int8 data {xname}, weights {wname}");
                check_conv(&mut rng, &dw, &x, &w, &what);
            }
            let what = format!("depthwise {kernel:?}, uint8 data 255, weights {wname}");
            check_conv(&mut rng, &dw, &vec![255u8; dw.input_len()], &w, &what);
        }
    }
}

#[test]
fn conv_extreme_values_match_reference() {
    let mut rng = Rng(3);
    // 67 input channels: 16 full steps of 4 and a partial one.
    let geom = geometry(
        1,
        67,
        35,
        1,
        [1, 5, 6],
        [1, 3, 3],
        [1, 1, 1],
        [1, 1, 1],
        [0, 1, 1],
    );
    let n = 35 * 67 * 9;
    for (wname, w) in [("-128", vec![-128i8; n]), ("127", vec![127i8; n])] {
        for (xname, x) in [
            ("-128", vec![-128i8; geom.input_len()]),
            ("127", vec![127i8; geom.input_len()]),
        ] {
            check_conv(
                &mut rng,
                &geom,
                &x,
                &w,
                &format!("int8 data {xname}, weights {wname}"),
            );
        }
        let x = vec![255u8; geom.input_len()];
        check_conv(
            &mut rng,
            &geom,
            &x,
            &w,
            &format!("uint8 data 255, weights {wname}"),
        );
    }
    let dw = geometry(
        1,
        37,
        37,
        37,
        [1, 4, 5],
        [1, 3, 3],
        [1, 1, 1],
        [1, 1, 1],
        [0, 1, 1],
    );
    for w in [vec![-128i8; 37 * 9], vec![127i8; 37 * 9]] {
        check_conv(
            &mut rng,
            &dw,
            &vec![-128i8; dw.input_len()],
            &w,
            "depthwise int8 -128",
        );
        check_conv(
            &mut rng,
            &dw,
            &vec![127i8; dw.input_len()],
            &w,
            "depthwise int8 127",
        );
        check_conv(
            &mut rng,
            &dw,
            &vec![255u8; dw.input_len()],
            &w,
            "depthwise uint8 255",
        );
    }
}

#[test]
fn channel_multiplier_matches_reference() {
    // One input channel and two output channels per group: not the
    // depthwise kernel's case, so it runs as a grouped implicit GEMM.
    let mut rng = Rng(7);
    let geom = geometry(
        1,
        13,
        26,
        13,
        [1, 5, 7],
        [1, 3, 3],
        [1, 2, 1],
        [1, 1, 2],
        [0, 1, 2],
    );
    let w: Vec<i8> = rng.bytes(26 * 9);
    let x: Vec<i8> = rng.bytes(geom.input_len());
    check_conv(&mut rng, &geom, &x, &w, "multiplier 2, int8 data");
    let x: Vec<u8> = rng.bytes(geom.input_len());
    check_conv(&mut rng, &geom, &x, &w, "multiplier 2, uint8 data");
}

#[test]
fn long_reduction_wraps_back_exactly() {
    // 3x3 over 8,000 channels: 72,000 products, past the 65,792 where
    // u8 · s8 sums of the shifted VNNI data may leave int32 on the way.
    let mut rng = Rng(4);
    let geom = geometry(
        1,
        8000,
        3,
        1,
        [1, 3, 3],
        [1, 3, 3],
        [1, 1, 1],
        [1, 1, 1],
        [0, 0, 0],
    );
    let n = 3 * 8000 * 9;
    let w = vec![-128i8; n];
    check_conv(
        &mut rng,
        &geom,
        &vec![-128i8; geom.input_len()],
        &w,
        "int8 -128",
    );
    check_conv(
        &mut rng,
        &geom,
        &vec![127i8; geom.input_len()],
        &w,
        "int8 127",
    );
    // uint8 data needs no shift; 255 · -128 · 72,000 would not fit int32,
    // so alternate the weights' signs.
    let alternating: Vec<i8> = (0..n)
        .map(|i| if i % 2 == 0 { -128 } else { 127 })
        .collect();
    check_conv(
        &mut rng,
        &geom,
        &vec![255u8; geom.input_len()],
        &alternating,
        "uint8 255",
    );
}

#[test]
fn gemm_matches_reference() {
    let mut rng = Rng(5);
    for (m, k, n) in [
        (1, 1, 1),
        (1, 37, 100),
        (3, 5, 17),
        (7, 1001, 33),
        (13, 64, 70),
        (2, 300, 1),
    ] {
        let weights: Vec<i8> = rng.bytes(n * k);
        let packed = PackedGemmWeights::pack(&weights, n, k);
        let xs: Vec<i8> = rng.bytes(m * k);
        let xu: Vec<u8> = rng.bytes(m * k);
        let typical = 64.0 * (k as f32).sqrt() * 16.0;
        for isa in simd_tiers() {
            let pack = GemmPack::new(isa, packed.data(), packed.row_sums(), n, k).expect("tier");
            for (name, stage) in stages(&mut rng, n, typical) {
                let what = format!("GEMM {m}x{k}x{n}, {isa}, {name}");
                let mut want = vec![0i8; m * n];
                gemm_reference(&xs, &packed, &stage, &mut want);
                let mut got = vec![0i8; m * n];
                assert!(gemm_packed(&pack, &xs, &stage, &mut got));
                assert_same(&got, &want, &format!("{what}, int8 data"));
                let mut want = vec![0f32; m * n];
                gemm_reference(&xu, &packed, &stage, &mut want);
                let mut got = vec![0f32; m * n];
                assert!(gemm_packed(&pack, &xu, &stage, &mut got));
                assert_same(&got, &want, &format!("{what}, uint8 data"));
            }
        }
    }
}

/// Geometries whose taps reach the padding at every border, with strides
/// 1-3, dilation, groups, batches 1-3 and channel counts that are not
/// multiples of 4, plus layers without padding (copied for int8 data, read
/// in place for uint8).
fn padded_geometries() -> Vec<(&'static str, ConvGeometry)> {
    vec![
        (
            "stem 7x7/2, 3 channels",
            geometry(
                1,
                3,
                20,
                1,
                [1, 11, 13],
                [1, 7, 7],
                [1, 2, 2],
                [1, 1, 1],
                [0, 3, 3],
            ),
        ),
        (
            "3x3/3, 5 channels, batch 2",
            geometry(
                2,
                5,
                17,
                1,
                [1, 7, 6],
                [1, 3, 3],
                [1, 3, 3],
                [1, 1, 1],
                [0, 1, 1],
            ),
        ),
        (
            "3x3 dilated 2, 17 channels, batch 3",
            geometry(
                3,
                17,
                33,
                1,
                [1, 5, 5],
                [1, 3, 3],
                [1, 1, 1],
                [1, 2, 2],
                [0, 2, 2],
            ),
        ),
        (
            "3x3/2, 70 channels, 2 groups",
            geometry(
                1,
                70,
                70,
                2,
                [1, 6, 5],
                [1, 3, 3],
                [1, 2, 2],
                [1, 1, 1],
                [0, 1, 1],
            ),
        ),
        (
            "3x3, 5 groups of 2 channels, batch 2",
            geometry(
                2,
                10,
                15,
                5,
                [1, 4, 7],
                [1, 3, 3],
                [1, 1, 1],
                [1, 1, 1],
                [0, 1, 1],
            ),
        ),
        (
            "3x3x3/(1,2,1), padding in depth too",
            geometry(
                1,
                5,
                9,
                1,
                [3, 4, 5],
                [3, 3, 3],
                [1, 2, 1],
                [1, 1, 1],
                [1, 1, 1],
            ),
        ),
        (
            "1x3/2 over width only, batch 2",
            geometry(
                2,
                17,
                20,
                1,
                [1, 1, 9],
                [1, 1, 3],
                [1, 1, 2],
                [1, 1, 1],
                [0, 0, 1],
            ),
        ),
        (
            "3x3 with padding 2: taps wholly in the padding",
            geometry(
                1,
                3,
                5,
                1,
                [1, 4, 4],
                [1, 3, 3],
                [1, 1, 1],
                [1, 1, 1],
                [0, 2, 2],
            ),
        ),
        (
            "1x1 with padding: pixels wholly in the padding",
            geometry(
                1,
                5,
                7,
                1,
                [1, 3, 3],
                [1, 1, 1],
                [1, 1, 1],
                [1, 1, 1],
                [0, 1, 1],
            ),
        ),
        (
            "1x1/2 without padding, batch 3",
            geometry(
                3,
                70,
                19,
                1,
                [1, 5, 7],
                [1, 1, 1],
                [1, 2, 2],
                [1, 1, 1],
                [0, 0, 0],
            ),
        ),
        (
            "1x1 without padding, 17 channels",
            geometry(
                1,
                17,
                65,
                1,
                [1, 3, 5],
                [1, 1, 1],
                [1, 1, 1],
                [1, 1, 1],
                [0, 0, 0],
            ),
        ),
    ]
}

#[test]
fn padded_borders_match_reference() {
    let mut rng = Rng(8);
    for (label, geom) in padded_geometries() {
        let taps: usize = geom.kernel.iter().product();
        let n = geom.out_channels * geom.in_channels_per_group() * taps;
        let len = geom.input_len();
        let weights: Vec<i8> = rng.bytes(n);
        let x: Vec<i8> = rng.bytes(len);
        check_conv(
            &mut rng,
            &geom,
            &x,
            &weights,
            &format!("{label}, int8 data"),
        );
        let x: Vec<u8> = rng.bytes(len);
        check_conv(
            &mut rng,
            &geom,
            &x,
            &weights,
            &format!("{label}, uint8 data"),
        );
    }
}

#[test]
fn padded_borders_extreme_values_match_reference() {
    // The padding must stay the zero of the data: -128 (shifted to 0x00)
    // and 127 (0xff) sit next to a padding byte of 0x80 for int8 data.
    let mut rng = Rng(9);
    for (label, geom) in padded_geometries() {
        let taps: usize = geom.kernel.iter().product();
        let n = geom.out_channels * geom.in_channels_per_group() * taps;
        let len = geom.input_len();
        for wv in [-128i8, 127] {
            let w = vec![wv; n];
            for xv in [-128i8, 127] {
                let what = format!("{label}, int8 data {xv}, weights {wv}");
                check_conv(&mut rng, &geom, &vec![xv; len], &w, &what);
            }
            for xv in [0u8, 255] {
                let what = format!("{label}, uint8 data {xv}, weights {wv}");
                check_conv(&mut rng, &geom, &vec![xv; len], &w, &what);
            }
        }
    }
}

/// Compares every SIMD tier's GEMM with the reference for all stages and
/// output types.
fn check_gemm<X: QuantElem>(rng: &mut Rng, m: usize, x: &[X], weights: &[i8], label: &str) {
    fn compare<X: QuantElem, O: OutputElem + Bits + Default>(
        pack: &GemmPack,
        packed: &PackedGemmWeights,
        x: &[X],
        stage: &OutputStage,
        len: usize,
        what: &str,
    ) {
        let mut want = vec![O::default(); len];
        gemm_reference(x, packed, stage, &mut want);
        let mut got = vec![O::default(); len];
        assert!(
            gemm_packed(pack, x, stage, &mut got),
            "{what}: no SIMD kernel"
        );
        assert_same(&got, &want, what);
    }
    let k = x.len() / m;
    let n = weights.len() / k;
    let packed = PackedGemmWeights::pack(weights, n, k);
    let typical = 64.0 * (k as f32).sqrt() * 16.0;
    for isa in simd_tiers() {
        let pack = GemmPack::new(isa, packed.data(), packed.row_sums(), n, k).expect("tier");
        for (name, stage) in stages(rng, n, typical) {
            let what = format!("{label}, {isa}, {name}");
            compare::<X, i8>(&pack, &packed, x, &stage, m * n, &what);
            compare::<X, u8>(&pack, &packed, x, &stage, m * n, &what);
            compare::<X, i32>(&pack, &packed, x, &stage, m * n, &what);
            compare::<X, f32>(&pack, &packed, x, &stage, m * n, &what);
        }
    }
}

#[test]
fn gemm_extreme_values_match_reference() {
    let mut rng = Rng(10);
    for (m, k, n) in [(1, 3, 5), (7, 17, 70), (13, 70, 17), (6, 5, 64)] {
        for wv in [-128i8, 127] {
            let w = vec![wv; n * k];
            for xv in [-128i8, 127] {
                let label = format!("GEMM {m}x{k}x{n}, int8 data {xv}, weights {wv}");
                check_gemm(&mut rng, m, &vec![xv; m * k], &w, &label);
            }
            for xv in [0u8, 255] {
                let label = format!("GEMM {m}x{k}x{n}, uint8 data {xv}, weights {wv}");
                check_gemm(&mut rng, m, &vec![xv; m * k], &w, &label);
            }
        }
        let w: Vec<i8> = rng.bytes(n * k);
        let xs: Vec<i8> = rng.bytes(m * k);
        check_gemm(
            &mut rng,
            m,
            &xs,
            &w,
            &format!("GEMM {m}x{k}x{n}, int8 data"),
        );
    }
}

#[test]
fn public_entry_points_match_reference() {
    // Whatever tier `MXNET_INT8_ISA` and this CPU select, twice, so the
    // second call runs on the cached pack.
    let mut rng = Rng(6);
    let geom = geometry(
        2,
        21,
        19,
        1,
        [1, 6, 7],
        [1, 3, 3],
        [1, 2, 2],
        [1, 1, 1],
        [0, 1, 1],
    );
    let weights: Vec<i8> = rng.bytes(19 * 21 * 9);
    let w = PackedConvWeights::pack(&weights, 19, 21, [1, 3, 3]);
    let x: Vec<i8> = rng.bytes(geom.input_len());
    let stage = OutputStage {
        scale: PerChannel::uniform(0.01),
        activation: Some(Activation::Relu),
        ..Default::default()
    };
    let mut want = vec![0u8; geom.output_len()];
    conv_reference(&geom, &x, &w, &stage, None, &mut want);
    for _ in 0..2 {
        let mut got = vec![0u8; geom.output_len()];
        crate::kernels::int8::conv::conv(&geom, &x, &w, &stage, None, &mut got);
        assert_eq!(got, want);
    }
    let packed = PackedGemmWeights::pack(&weights, 19, 189);
    let xs: Vec<i8> = rng.bytes(5 * 189);
    let mut want = vec![0i32; 5 * 19];
    gemm_reference(&xs, &packed, &OutputStage::default(), &mut want);
    let mut got = vec![0i32; 5 * 19];
    crate::kernels::int8::gemm::gemm(&xs, &packed, &OutputStage::default(), &mut got);
    assert_eq!(got, want);
}

#[test]
fn unsupported_types_fall_back() {
    let w = PackedConvWeights::pack(&[1, 2, 3], 1, 3, [1, 1, 1]);
    let geom = geometry(
        1,
        3,
        1,
        1,
        [1, 1, 2],
        [1, 1, 1],
        [1, 1, 1],
        [1, 1, 1],
        [0, 0, 0],
    );
    for isa in simd_tiers() {
        let pack = ConvPack::new(isa, &w, 1).expect("tier");
        let mut out = [0i32; 2];
        assert!(!conv(
            &pack,
            &geom,
            &[1i32; 6],
            &OutputStage::default(),
            None,
            &mut out
        ));
    }
    assert!(ConvPack::new(Isa::Scalar, &w, 1).is_none());
}

#[test]
fn vnni_peak_runs() {
    if let Some(sum) = vnni_peak(3) {
        // Chain i starts at i and adds 3 · (1 + 2 + 3 + 4) per lane.
        let per_lane: i32 = (0..24).sum::<i32>() + 24 * 3 * 10;
        assert_eq!(sum, 16 * per_lane);
    }
}

/// Returns a 1x1 convolution with stride 1 and no padding over `pixels`
/// pixels in one row: the plain GEMM case that the AMX tier runs on tiles.
fn plain_1x1(batch: usize, pixels: usize, k: usize, n: usize) -> ConvGeometry {
    geometry(
        batch,
        k,
        n,
        1,
        [1, 1, pixels],
        [1, 1, 1],
        [1, 1, 1],
        [1, 1, 1],
        [0, 0, 0],
    )
}

#[test]
fn plain_1x1_shapes_match_reference() {
    // Pixel counts below the 16-row minimum (VNNI panels), around it and
    // around the 32-pixel block,
    // reductions below, at and past one 64-byte chunk (some not multiples
    // of 4), channel counts that leave half a pair of weight tiles, and
    // runs of 64 pixels for the wide blocks.
    let mut rng = Rng(11);
    for (batch, pixels, k, n) in [
        (1, 1, 40, 50),
        (2, 3, 70, 33),
        (1, 16, 1, 1),
        (1, 17, 3, 16),
        (2, 16, 16, 17),
        (1, 32, 32, 33),
        (1, 33, 63, 64),
        (3, 21, 64, 65),
        (1, 100, 65, 100),
        (1, 49, 130, 48),
        (1, 64, 256, 31),
        // Wide blocks of 64 pixels (one chunk, at most 32 channels).
        (4, 784, 16, 32),
        (2, 300, 24, 16),
        (1, 130, 61, 20),
        (1, 200, 3, 8),
        // Short reductions on vector registers: 1 to 4 vectors per
        // column, several columns, ragged last tiles.
        (1, 50, 1, 16),
        (2, 37, 5, 48),
        (1, 101, 31, 80),
        (3, 29, 32, 144),
        (1, 70, 17, 96),
    ] {
        let geom = plain_1x1(batch, pixels, k, n);
        let weights: Vec<i8> = rng.bytes(n * k);
        let label = format!("1x1 {batch}x{pixels} pixels, K {k}, N {n}");
        let x: Vec<i8> = rng.bytes(geom.input_len());
        check_conv(
            &mut rng,
            &geom,
            &x,
            &weights,
            &format!("{label}, int8 data"),
        );
        let x: Vec<u8> = rng.bytes(geom.input_len());
        check_conv(
            &mut rng,
            &geom,
            &x,
            &weights,
            &format!("{label}, uint8 data"),
        );
    }
}

#[test]
fn plain_1x1_extreme_values_match_reference() {
    let mut rng = Rng(12);
    // 8,200 channels: 128 full chunks and a partial one; -128 · -128 · 8,200
    // still fits int32.
    for (pixels, k, n) in [(40, 130, 35), (17, 8200, 3)] {
        let geom = plain_1x1(1, pixels, k, n);
        for wv in [-128i8, 127] {
            let w = vec![wv; n * k];
            for xv in [-128i8, 127] {
                let x = vec![xv; geom.input_len()];
                let label = format!("1x1 K {k}, int8 data {xv}, weights {wv}");
                check_conv(&mut rng, &geom, &x, &w, &label);
            }
            let x = vec![255u8; geom.input_len()];
            let w: Vec<i8> = (0..n * k)
                .map(|i| if i % 2 == 0 { wv } else { -wv.max(-127) })
                .collect();
            let label = format!("1x1 K {k}, uint8 data 255, weights ±{wv}");
            check_conv(&mut rng, &geom, &x, &w, &label);
        }
    }
}

#[test]
fn gemm_with_many_rows_matches_reference() {
    let mut rng = Rng(13);
    for (m, k, n) in [(16, 37, 33), (40, 130, 70), (33, 512, 17)] {
        let w: Vec<i8> = rng.bytes(n * k);
        let xs: Vec<i8> = rng.bytes(m * k);
        check_gemm(
            &mut rng,
            m,
            &xs,
            &w,
            &format!("GEMM {m}x{k}x{n}, int8 data"),
        );
        let xu: Vec<u8> = rng.bytes(m * k);
        check_gemm(
            &mut rng,
            m,
            &xu,
            &w,
            &format!("GEMM {m}x{k}x{n}, uint8 data"),
        );
    }
}

#[test]
fn gathered_convolutions_match_reference() {
    // Shapes the AMX tier runs by gathering each block's taps: short runs of
    // 4 and 5 channels, padding, strides, dilation, 3-D kernels, reductions of
    // several chunks, and layers without padding read where they are.
    let mut rng = Rng(14);
    let cases = [
        (
            "3x3/2 RGB stem",
            geometry(
                2,
                3,
                32,
                1,
                [1, 23, 19],
                [1, 3, 3],
                [1, 2, 2],
                [1, 1, 1],
                [0, 1, 1],
            ),
        ),
        (
            "3x3 RGB, 48 outputs, no padding",
            geometry(
                1,
                3,
                48,
                1,
                [1, 12, 13],
                [1, 3, 3],
                [1, 1, 1],
                [1, 1, 1],
                [0, 0, 0],
            ),
        ),
        (
            "2x2 dilated 2 channels, 80 outputs",
            geometry(
                3,
                2,
                80,
                1,
                [1, 9, 11],
                [1, 2, 2],
                [1, 1, 1],
                [1, 2, 2],
                [0, 1, 1],
            ),
        ),
        (
            "3x3/2 4 channels",
            geometry(
                2,
                4,
                32,
                1,
                [1, 15, 17],
                [1, 3, 3],
                [1, 2, 2],
                [1, 1, 1],
                [0, 1, 1],
            ),
        ),
        (
            "7x7/2 5 channels",
            geometry(
                1,
                5,
                20,
                1,
                [1, 20, 20],
                [1, 7, 7],
                [1, 2, 2],
                [1, 1, 1],
                [0, 3, 3],
            ),
        ),
        (
            "3x3 64-40",
            geometry(
                1,
                64,
                40,
                1,
                [1, 9, 9],
                [1, 3, 3],
                [1, 1, 1],
                [1, 1, 1],
                [0, 1, 1],
            ),
        ),
        (
            "1x1/2 65-33",
            geometry(
                1,
                65,
                33,
                1,
                [1, 11, 11],
                [1, 1, 1],
                [1, 2, 2],
                [1, 1, 1],
                [0, 0, 0],
            ),
        ),
        (
            "dilated 3x3",
            geometry(
                1,
                5,
                17,
                1,
                [1, 8, 10],
                [1, 3, 3],
                [1, 1, 1],
                [1, 2, 2],
                [0, 2, 2],
            ),
        ),
        (
            "3-D 2x3x3",
            geometry(
                1,
                4,
                16,
                1,
                [3, 6, 6],
                [2, 3, 3],
                [1, 1, 1],
                [1, 1, 1],
                [1, 1, 1],
            ),
        ),
        (
            "3x3 unpadded",
            geometry(
                3,
                7,
                9,
                1,
                [1, 9, 9],
                [1, 3, 3],
                [1, 1, 1],
                [1, 1, 1],
                [0, 0, 0],
            ),
        ),
    ];
    // No padding, but an output one column wider than the input gives:
    // the last column's taps past the input are zeros.
    let implied = ConvGeometry {
        output: [1, 4, 3],
        ..geometry(
            1,
            8,
            20,
            1,
            [1, 6, 4],
            [1, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [0, 0, 0],
        )
    };
    for (name, geom) in cases.into_iter().chain([("implied padding", implied)]) {
        let taps: usize = geom.kernel.iter().product();
        let weights: Vec<i8> = rng.bytes(geom.out_channels * geom.in_channels * taps);
        let x: Vec<i8> = rng.bytes(geom.input_len());
        check_conv(&mut rng, &geom, &x, &weights, &format!("{name}, int8 data"));
        let x: Vec<u8> = rng.bytes(geom.input_len());
        check_conv(
            &mut rng,
            &geom,
            &x,
            &weights,
            &format!("{name}, uint8 data"),
        );
        let x = vec![-128i8; geom.input_len()];
        let w = vec![-128i8; weights.len()];
        check_conv(
            &mut rng,
            &geom,
            &x,
            &w,
            &format!("{name}, int8 data and weights -128"),
        );
    }
}

#[test]
fn amx_tier_packs_tiles_for_one_group() {
    if isa::detected() < Isa::Amx {
        return;
    }
    let tiles = |w: &PackedConvWeights, isa: Isa, groups: usize| {
        let pack = ConvPack::new(isa, w, groups).expect("tier runs here");
        matches!(pack.layout, ConvLayout::Tiles { .. })
    };

    let one = PackedConvWeights::pack(&[1; 6], 2, 3, [1, 1, 1]);
    assert!(tiles(&one, Isa::Amx, 1));
    assert!(!tiles(&one, Isa::Avx512Vnni, 1));
    let four = PackedConvWeights::pack(&[1; 72], 2, 4, [1, 3, 3]);
    assert!(tiles(&four, Isa::Amx, 1));
    let rgb = PackedConvWeights::pack(&[1; 54], 2, 3, [1, 3, 3]);
    assert!(!tiles(&rgb, Isa::Amx, 1));
    let grouped = PackedConvWeights::pack(&[1; 36], 4, 1, [1, 3, 3]);
    assert!(!tiles(&grouped, Isa::Amx, 2));
    assert!(!tiles(&grouped, Isa::Amx, 4));
    let gemm = GemmPack::new(Isa::Amx, &[1; 6], &[3, 3], 2, 3).unwrap();
    assert!(gemm.amx.is_some());
}

#[test]
fn lane_form_needs_finite_bounded_parameters() {
    use super::stage::{OutKind, StagePlan};
    let with = |bias: Vec<f32>, scale: Vec<f32>| OutputStage {
        bias: PerChannel(bias),
        scale: PerChannel(scale),
        ..Default::default()
    };
    let form = |stage: &OutputStage| {
        StagePlan::new(stage, OutKind::I8, None, 3)
            .lane_form()
            .map(|f| f.in_int32)
    };
    // Accumulators up to 2^31 times a scale below 0.99 stay inside int32.
    assert_eq!(
        form(&with(vec![1.0, -2.0, 0.5], vec![0.5, -0.98, 0.1])),
        Some(true)
    );
    assert_eq!(
        form(&with(vec![1.0, -2.0, 0.5], vec![0.5, -1.5, 0.1])),
        Some(false)
    );
    // Any NaN or infinity, in any channel and of either sign, has no lane form.
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN] {
        assert_eq!(
            form(&with(vec![1.0, 2.0, bad], vec![0.5; 3])),
            None,
            "bias {bad}"
        );
        assert_eq!(
            form(&with(vec![1.0; 3], vec![bad, 0.5, 0.5])),
            None,
            "scale {bad}"
        );
    }
    // Finite but huge: an overflow to infinity is possible.
    assert_eq!(form(&with(vec![0.0; 3], vec![1e30, 0.5, 0.5])), None);
}
