//! Quantized operators: MXNet 1.9.1's `_contrib_quantize*`, `_contrib_quantized_*`
//! and the fused `_sg_mkldnn_*` / `_sg_onednn_*` nodes, with int8 and uint8
//! data everywhere.
//!
//! A quantized tensor travels as three graph entries: the integer data and
//! two f32 tensors of shape (1,) holding its float range (min, max). With
//! `R = max(|min|, |max|)` the real value of an element is `q * R / 127.5`
//! for int8, `q * R / 255.5` for uint8 (zero point 0, `min` is ignored) and
//! `q * R / 2^31` for int32, which are the conventions of MXNet 1.9.1's
//! oneDNN backend (the pip build). Every operator here keeps MXNet's float
//! operation order so that results match it bit for bit where MXNet is
//! correct. `docs/compatibility.md` lists where we deliberately differ.

mod batch_norm;
mod chain;
mod common;
mod concat;
mod conv;
mod conv_attrs;
mod elemwise;
mod embedding;
mod fc;
mod fused_conv;
mod fused_fc;
mod layout;
mod passthrough;
mod pooling;
mod quantize;
mod requantize;
mod subgraph;

use super::Registry;

pub use chain::{ChainMember, ConvChain, RowConv, RowFacts, Source};

/// Registers every quantized operator implementation.
pub fn register(r: &mut Registry) {
    r.implement("_contrib_quantize", quantize::create_quantize);
    r.implement("_contrib_quantize_v2", quantize::create_quantize_v2);
    r.implement("_contrib_dequantize", quantize::create_dequantize);
    r.implement("_contrib_requantize", requantize::create);
    r.implement("_contrib_quantized_conv", conv::create);
    r.implement("_contrib_quantized_fully_connected", fc::create);
    r.implement("_contrib_quantized_pooling", pooling::create);
    r.implement("_contrib_quantized_flatten", passthrough::create_flatten);
    r.implement("_contrib_quantized_act", passthrough::create_act);
    r.implement("_contrib_quantized_concat", concat::create);
    r.implement("_contrib_quantized_elemwise_add", elemwise::create_add);
    r.implement("_contrib_quantized_elemwise_mul", elemwise::create_mul);
    r.implement("_contrib_quantized_batch_norm", batch_norm::create);
    r.implement("_contrib_quantized_embedding", embedding::create);
    r.implement("_sg_mkldnn_conv", fused_conv::create);
    r.implement("_sg_onednn_conv", fused_conv::create);
    r.implement("_sg_mkldnn_fully_connected", fused_fc::create);
    r.implement("_sg_onednn_fully_connected", fused_fc::create);
}

#[cfg(test)]
mod tests;
