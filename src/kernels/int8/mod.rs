//! Int8 kernels: quantized convolution, GEMM, pooling and requantization.

pub mod conv;
pub mod elem;
pub mod gemm;
pub mod output;
pub mod pool;
pub mod quantize;
