//! Reads the FP32 chain inside a fused `_sg_mkldnn_*` / `_sg_onednn_*` node:
//! the main operator (Convolution or FullyConnected), an optional
//! BatchNorm, an optional residual add, and the activations before and
//! after that add.

use super::batch_norm::DEFAULT_EPS;
use super::common::Ident;
use crate::error::Result;
use crate::graph::{Graph, Node};
use crate::kernels::int8::output::Activation;
use crate::ops::AttrReader;

/// BatchNorm attributes that matter for folding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnAttrs {
    pub eps: f64,
    pub fix_gamma: bool,
}

/// The FP32 chain of one fused node.
pub struct Chain<'g> {
    pub main: &'g Node,
    pub bn: Option<BnAttrs>,
    pub has_sum: bool,
    /// Activation between the main operator (or BatchNorm) and the sum.
    pub act: Option<Activation>,
    /// Activation after the sum.
    pub post_sum_act: Option<Activation>,
}

/// Parses an activation node of the chain.
fn activation(id: &Ident, node: &Node) -> Result<Activation> {
    let r = AttrReader::new(&node.name, &node.op, &node.attrs);
    let unsupported = |what: &str| {
        id.dtype_err(format!(
            "fused activation {what} (subgraph node {:?}) is not supported in quantized fused operators",
            node.name
        ))
    };
    Ok(match node.op.as_str() {
        "Activation" => match r.raw("act_type").unwrap_or("relu") {
            "relu" => Activation::Relu,
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "softrelu" => Activation::SoftRelu,
            other => return Err(unsupported(&format!("Activation({other})"))),
        },
        "LeakyReLU" => {
            let slope = r.float_or("slope", 0.25)? as f32;
            match r.raw("act_type").unwrap_or("leaky") {
                "leaky" if slope == 0.0 => Activation::Relu,
                "leaky" => Activation::Leaky { slope },
                "elu" => Activation::Elu { alpha: slope },
                other => return Err(unsupported(&format!("LeakyReLU({other})"))),
            }
        }
        "clip" => Activation::Clip {
            min: r.opt_float("a_min")?.ok_or_else(|| r.missing("a_min"))? as f32,
            max: r.opt_float("a_max")?.ok_or_else(|| r.missing("a_max"))? as f32,
        },
        "relu" => Activation::Relu,
        "sigmoid" => Activation::Sigmoid,
        "tanh" => Activation::Tanh,
        "abs" => Activation::Abs,
        "square" => Activation::Square,
        "sqrt" => Activation::Sqrt,
        "exp" => Activation::Exp,
        other => return Err(unsupported(other)),
    })
}

const ADD_OPS: &[&str] = &[
    "elemwise_add",
    "_Plus",
    "_plus",
    "broadcast_add",
    "_npi_add",
    "broadcast_plus",
];

/// Finds the chain in `subgraphs[0]`; `main_op` is "Convolution" or "FullyConnected".
pub fn parse<'g>(id: &Ident, subgraphs: &'g [Graph], main_op: &str) -> Result<Chain<'g>> {
    let graph = subgraphs.first().ok_or_else(|| {
        id.shape_err("fused node has no subgraph; its JSON must contain \"subgraphs\"")
    })?;
    let mut main = None;
    let mut bn = None;
    let mut has_sum = false;
    let mut act = None;
    let mut post_sum_act = None;
    for node in graph.nodes.iter().filter(|n| !n.is_variable()) {
        let op = node.op.as_str();
        if op == main_op {
            main = Some(node);
        } else if op == "BatchNorm" {
            let r = AttrReader::new(&node.name, &node.op, &node.attrs);
            bn = Some(BnAttrs {
                eps: r.float_or("eps", DEFAULT_EPS)?,
                fix_gamma: r.bool_or("fix_gamma", true)?,
            });
        } else if ADD_OPS.contains(&op) {
            has_sum = true;
        } else if has_sum {
            post_sum_act = Some(activation(id, node)?);
        } else {
            act = Some(activation(id, node)?);
        }
    }
    let main = main.ok_or_else(|| id.shape_err(format!("fused subgraph has no {main_op} node")))?;
    Ok(Chain {
        main,
        bn,
        has_sum,
        act,
        post_sum_act,
    })
}

/// Folds BatchNorm into per-output-channel weights and bias, in MXNet
/// 1.9.1's f32/f64 operation order. `weights` contains `gamma.len()` equal rows.
#[allow(clippy::too_many_arguments)]
pub fn fold_batch_norm(
    weights: &mut [f32],
    bias: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    attrs: BnAttrs,
) -> Vec<f32> {
    let channels = gamma.len();
    let row = weights.len() / channels.max(1);
    let mut folded = Vec::with_capacity(channels);
    for c in 0..channels {
        let g = if attrs.fix_gamma { 1.0f32 } else { gamma[c] };
        let alpha = (g as f64 / (var[c] as f64 + attrs.eps).sqrt()) as f32;
        for w in &mut weights[c * row..(c + 1) * row] {
            *w *= alpha;
        }
        folded.push(match bias {
            Some(b) => beta[c] + alpha * (b[c] - mean[c]),
            None => beta[c] - alpha * mean[c],
        });
    }
    folded
}

/// Per-channel int8 weight scales of the calibrated fused operators:
/// `127.5 / max|W[c]|` (2^31 for an all-zero row), capped so that the
/// quantized bias stays within ±2^30.
pub fn channel_weight_scales(
    weights: &[f32],
    channels: usize,
    bias: Option<&[f32]>,
    data_scale: f32,
) -> Vec<f32> {
    use super::common::{guarded_scale, P31};
    use crate::dtype::DType;
    use rayon::prelude::*;
    let row = weights.len() / channels.max(1);
    (0..channels)
        .into_par_iter()
        .map(|c| {
            let w = &weights[c * row..(c + 1) * row];
            let lo = w.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = w.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut s = if w.is_empty() {
                P31
            } else {
                guarded_scale(DType::I8, lo, hi)
            };
            if let Some(b) = bias {
                if b[c] != 0.0 {
                    let half = if b[c] > 0.0 { P31 / 2.0 } else { -P31 / 2.0 };
                    let cap = (half / b[c]) / data_scale;
                    s = s.min(cap);
                }
            }
            s
        })
        .collect()
}
