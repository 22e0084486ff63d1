//! Compute on raw slices, with no knowledge of graphs or attributes.
//! SIMD and `unsafe` live here, each fast path beside a scalar reference.

pub mod fp32;
pub mod int8;
