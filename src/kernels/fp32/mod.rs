//! Float32 kernels.
