//! Throughput of the int8 kernels per family and tier, on layer shapes of
//! ResNet-50, MobileNet and ResNeXt at batch 1 (and one batch-16 FC).
//! Criterion's "elem/s" is int8 operations per second (2 per multiply-add).
//!
//! `cargo bench --bench int8_kernels -- TIER` runs one tier (`scalar`,
//! `avx2`, `avx512bw`, `avx512_vnni`, `amx`); the scalar reference is slow.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mxnet::kernels::int8::conv::{conv_reference, ConvGeometry, PackedConvWeights};
use mxnet::kernels::int8::gemm::{gemm_reference, PackedGemmWeights};
use mxnet::kernels::int8::isa::{self, Isa};
use mxnet::kernels::int8::output::{Activation, OutputStage, PerChannel};
use std::hint::black_box;
use std::time::Duration;

/// A 2-D convolution layer at batch 1.
struct Layer {
    name: &'static str,
    channels: usize,
    filters: usize,
    groups: usize,
    size: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
}

const LAYERS: &[Layer] = &[
    Layer {
        name: "stem 7x7/2 3-64 224",
        channels: 3,
        filters: 64,
        groups: 1,
        size: 224,
        kernel: 7,
        stride: 2,
        pad: 3,
    },
    Layer {
        name: "stem 3x3/2 3-32 224",
        channels: 3,
        filters: 32,
        groups: 1,
        size: 224,
        kernel: 3,
        stride: 2,
        pad: 1,
    },
    Layer {
        name: "3x3 64-64 56",
        channels: 64,
        filters: 64,
        groups: 1,
        size: 56,
        kernel: 3,
        stride: 1,
        pad: 1,
    },
    Layer {
        name: "1x1 256-64 56",
        channels: 256,
        filters: 64,
        groups: 1,
        size: 56,
        kernel: 1,
        stride: 1,
        pad: 0,
    },
    Layer {
        name: "1x1 64-256 56",
        channels: 64,
        filters: 256,
        groups: 1,
        size: 56,
        kernel: 1,
        stride: 1,
        pad: 0,
    },
    Layer {
        name: "3x3 256-256 14",
        channels: 256,
        filters: 256,
        groups: 1,
        size: 14,
        kernel: 3,
        stride: 1,
        pad: 1,
    },
    Layer {
        name: "1x1 512-2048 7",
        channels: 512,
        filters: 2048,
        groups: 1,
        size: 7,
        kernel: 1,
        stride: 1,
        pad: 0,
    },
    Layer {
        name: "1x1 32-64 112",
        channels: 32,
        filters: 64,
        groups: 1,
        size: 112,
        kernel: 1,
        stride: 1,
        pad: 0,
    },
    Layer {
        name: "depthwise 3x3 32 112",
        channels: 32,
        filters: 32,
        groups: 32,
        size: 112,
        kernel: 3,
        stride: 1,
        pad: 1,
    },
    Layer {
        name: "depthwise 3x3 144 56",
        channels: 144,
        filters: 144,
        groups: 144,
        size: 56,
        kernel: 3,
        stride: 1,
        pad: 1,
    },
    Layer {
        name: "depthwise 3x3 512 14",
        channels: 512,
        filters: 512,
        groups: 512,
        size: 14,
        kernel: 3,
        stride: 1,
        pad: 1,
    },
    Layer {
        name: "grouped 3x3 g32 128-128 56",
        channels: 128,
        filters: 128,
        groups: 32,
        size: 56,
        kernel: 3,
        stride: 1,
        pad: 1,
    },
];

impl Layer {
    fn geometry(&self) -> ConvGeometry {
        let out = (self.size + 2 * self.pad - self.kernel) / self.stride + 1;
        ConvGeometry {
            batch: 1,
            in_channels: self.channels,
            out_channels: self.filters,
            groups: self.groups,
            input: [1, self.size, self.size],
            output: [1, out, out],
            kernel: [1, self.kernel, self.kernel],
            stride: [1, self.stride, self.stride],
            dilate: [1, 1, 1],
            pad: [0, self.pad, self.pad],
        }
    }

    fn operations(&self) -> u64 {
        let g = self.geometry();
        let macs = g.output_len() * g.in_channels_per_group() * self.kernel * self.kernel;
        2 * macs as u64
    }
}

/// Deterministic bytes in -128..=127.
fn pattern(n: usize, seed: usize) -> Vec<i8> {
    (0..n)
        .map(|i| ((i * 7919 + seed * 104_729) % 251) as i8)
        .collect()
}

/// Requantize to int8 with ReLU: the common fused stage.
fn requantize_relu() -> OutputStage {
    OutputStage {
        scale: PerChannel::uniform(0.002),
        activation: Some(Activation::Relu),
        ..Default::default()
    }
}

fn tiers() -> Vec<Isa> {
    isa::supported().collect()
}

fn conv_layers(c: &mut Criterion) {
    let mut group = c.benchmark_group("int8 conv");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let stage = requantize_relu();
    for layer in LAYERS {
        let geom = layer.geometry();
        let taps = layer.kernel * layer.kernel;
        let weights = pattern(geom.out_channels * geom.in_channels_per_group() * taps, 1);
        let packed = PackedConvWeights::pack(
            &weights,
            geom.out_channels,
            geom.in_channels_per_group(),
            geom.kernel,
        );
        let input = pattern(geom.input_len(), 2);
        let mut output = vec![0i8; geom.output_len()];
        group.throughput(Throughput::Elements(layer.operations()));
        for isa in tiers() {
            let id = BenchmarkId::new(layer.name, isa);
            if isa == Isa::Scalar {
                group.bench_function(id, |b| {
                    b.iter(|| {
                        conv_reference(&geom, black_box(&input), &packed, &stage, None, &mut output)
                    })
                });
                continue;
            }
            #[cfg(target_arch = "x86_64")]
            {
                use mxnet::kernels::int8::x86;
                let pack = x86::ConvPack::new(isa, &packed, geom.groups).expect("tier runs here");
                group.bench_function(id, |b| {
                    b.iter(|| x86::conv(&pack, &geom, black_box(&input), &stage, None, &mut output))
                });
            }
        }
    }
    group.finish();
}

fn fully_connected(c: &mut Criterion) {
    let mut group = c.benchmark_group("int8 fully connected");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let stage = requantize_relu();
    let (n, k) = (1000, 2048);
    let weights = pattern(n * k, 3);
    let packed = PackedGemmWeights::pack(&weights, n, k);
    for batch in [1, 16] {
        let input = pattern(batch * k, 4);
        let mut output = vec![0i8; batch * n];
        group.throughput(Throughput::Elements(2 * (batch * n * k) as u64));
        let name = format!("{k}-{n} batch {batch}");
        for isa in tiers() {
            let id = BenchmarkId::new(&name, isa);
            if isa == Isa::Scalar {
                group.bench_function(id, |b| {
                    b.iter(|| gemm_reference(black_box(&input), &packed, &stage, &mut output))
                });
                continue;
            }
            #[cfg(target_arch = "x86_64")]
            {
                use mxnet::kernels::int8::x86;
                let pack = x86::GemmPack::new(isa, packed.data(), packed.row_sums(), n, k)
                    .expect("tier runs here");
                group.bench_function(id, |b| {
                    b.iter(|| x86::gemm_packed(&pack, black_box(&input), &stage, &mut output))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, conv_layers, fully_connected);
criterion_main!(benches);
