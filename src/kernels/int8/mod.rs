//! Int8 kernels: quantized convolution, GEMM, pooling and requantization.

pub mod conv;
pub mod elem;
pub mod gemm;
pub mod isa;
pub mod jobs;
pub mod output;
pub mod pool;
pub mod quantize;
#[cfg(target_arch = "x86_64")]
pub mod x86;
