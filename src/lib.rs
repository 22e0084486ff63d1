//! mxnet-int8: a drop-in replacement for Apache MXNet 1.x's `libmxnet.so`
//! for inference. It reads the files MXNet writes (`*-symbol.json`,
//! `*.params`), runs FP32 and quantized graphs with signed int8 activations,
//! and exports MXNet's C API (`c_api.h`, `c_predict_api.h`).

pub mod capi;
pub mod dtype;
pub mod error;
pub mod executor;
pub mod format;
pub mod graph;
pub mod kernels;
pub mod ops;
pub mod predictor;
pub mod tensor;

pub use dtype::DType;
pub use error::{Error, Result};
pub use tensor::Tensor;

/// MXNet version this library reports through `MXGetVersion` (1.9.1).
pub const MXNET_VERSION: i32 = 10901;
