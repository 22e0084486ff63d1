//! Int8 kernels: quantized convolution, GEMM, pooling and requantization.
