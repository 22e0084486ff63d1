//! Peak of 512-bit `vpdpbusd` on one thread and on every rayon thread:
//! 24 independent accumulator chains, no memory traffic. Criterion's
//! "elem/s" is int8 operations per second (2 per multiply-add). Prints
//! nothing useful on a CPU without AVX-512 VNNI.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rayon::prelude::*;
use std::hint::black_box;

/// Rounds of 24 chains per measured call.
const ROUNDS: u64 = 100_000;

/// Multiply-adds per round: 24 instructions of 64.
const MACS_PER_ROUND: u64 = 24 * 64;

#[cfg(target_arch = "x86_64")]
fn peak(c: &mut Criterion) {
    use mxnet::kernels::int8::x86::vnni_peak;
    if vnni_peak(1).is_none() {
        eprintln!("vnni_peak: this CPU has no AVX-512 VNNI");
        return;
    }
    let mut group = c.benchmark_group("vpdpbusd zmm peak");
    group.throughput(Throughput::Elements(2 * ROUNDS * MACS_PER_ROUND));
    group.bench_function("1 thread", |b| b.iter(|| vnni_peak(black_box(ROUNDS))));
    let threads = rayon::current_num_threads();
    group.throughput(Throughput::Elements(
        2 * ROUNDS * MACS_PER_ROUND * threads as u64,
    ));
    group.bench_function(format!("{threads} threads"), |b| {
        b.iter(|| {
            (0..threads)
                .into_par_iter()
                .map(|_| vnni_peak(black_box(ROUNDS)).unwrap_or(0))
                .sum::<i32>()
        })
    });
    group.finish();
}

#[cfg(not(target_arch = "x86_64"))]
fn peak(_: &mut Criterion) {
    eprintln!("vnni_peak: x86-64 only");
}

criterion_group!(benches, peak);
criterion_main!(benches);
