//! Static facts about the operators MXNet 1.9.1 models use: input names,
//! output names, how many outputs are visible, which inputs are mutated
//! (auxiliary states) and the aliases each operator is known by.
//!
//! The facts come from MXNet 1.9.1 itself: `tools/symbol_op_facts.py`
//! records them into `tests/fixtures/symbols/sym_op_facts.json`, and
//! `tests/op_catalog.rs` checks this file against that record.
//!
//! The name functions read attributes leniently: a value that does not parse
//! counts as absent, so listing a graph never fails on an attribute. The
//! operator implementations report such values when they are instantiated.

use super::attrs::{parse_bool, parse_int};
use super::{all_visible, data_input, single_output, OpDef, Registry};
use crate::graph::Attrs;

/// Registers the facts of every operator in this catalog.
pub fn register(r: &mut Registry) {
    register_layers(r);
    register_normalization(r);
    register_activations(r);
    register_other_layers(r);
    register_shape_ops(r);
    register_losses_and_indexing(r);
    register_elementwise(r);
    register_reductions(r);
    register_quantized(r);
}

/// Builds the facts of an operator with one `data` input, one `output` and
/// no mutated input.
fn op(name: &'static str, aliases: &'static [&'static str]) -> OpDef {
    OpDef {
        name,
        aliases,
        inputs: data_input,
        outputs: single_output,
        visible_outputs: all_visible,
        mutate_inputs: &[],
    }
}

fn to_strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Reads a boolean attribute. An absent or unparsable value gives `default`.
fn flag(attrs: &Attrs, key: &str, default: bool) -> bool {
    attrs
        .get(key)
        .and_then(|v| parse_bool(v))
        .unwrap_or(default)
}

/// Reads a non-negative count attribute. An absent, negative or unparsable
/// value gives `default`.
/// Largest input or output count an attribute may give: far above any real
/// graph, low enough that listing the names cannot exhaust memory.
pub const MAX_COUNT: usize = 1 << 20;

/// Reads a count attribute; a missing, invalid or absurd value gives
/// `default`, and the operator itself rejects the value when it is bound.
fn count(attrs: &Attrs, key: &str, default: usize) -> usize {
    attrs
        .get(key)
        .and_then(|v| parse_int(v))
        .and_then(|v| usize::try_from(v).ok())
        .filter(|&v| v <= MAX_COUNT)
        .unwrap_or(default)
}

/// Returns a string attribute, `None` when it is absent.
fn text<'a>(attrs: &'a Attrs, key: &str) -> Option<&'a str> {
    attrs.get(key).map(|s| s.trim())
}

/// `arg0 … arg{n-1}` for operators with a variable number of inputs.
fn numbered_args(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("arg{i}")).collect()
}

/// `output0 … output{n-1}`, the names MXNet gives outputs of an operator
/// that does not name them itself and has more than one output.
fn numbered_outputs(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("output{i}")).collect()
}

fn lhs_rhs(_: &Attrs) -> Vec<String> {
    to_strings(&["lhs", "rhs"])
}

fn data_label(_: &Attrs) -> Vec<String> {
    to_strings(&["data", "label"])
}

fn num_args_inputs(attrs: &Attrs) -> Vec<String> {
    numbered_args(count(attrs, "num_args", 0))
}

/// `data, weight[, bias]`, with the bias present unless `no_bias` is true.
fn weighted_inputs(attrs: &Attrs, no_bias_default: bool) -> Vec<String> {
    let mut names = to_strings(&["data", "weight"]);
    if !flag(attrs, "no_bias", no_bias_default) {
        names.push("bias".into());
    }
    names
}

/// `output, mean, var` (or `std`) of the normalization operators, where the
/// statistics become visible only with `output_mean_var`.
fn visible_with_mean_var(attrs: &Attrs) -> usize {
    if flag(attrs, "output_mean_var", false) {
        3
    } else {
        1
    }
}

fn one_visible(_: &Attrs) -> usize {
    1
}

fn batch_norm_inputs(_: &Attrs) -> Vec<String> {
    to_strings(&["data", "gamma", "beta", "moving_mean", "moving_var"])
}

fn batch_norm_outputs(_: &Attrs) -> Vec<String> {
    to_strings(&["output", "mean", "var"])
}

fn data_gamma_beta(_: &Attrs) -> Vec<String> {
    to_strings(&["data", "gamma", "beta"])
}

fn register_layers(r: &mut Registry) {
    r.add(OpDef {
        inputs: |a| weighted_inputs(a, false),
        ..op("Convolution", &["_npx_convolution"])
    });

    // Deconvolution is the one layer whose bias is off by default.
    r.add(OpDef {
        inputs: |a| weighted_inputs(a, true),
        ..op("Deconvolution", &["_npx_deconvolution"])
    });

    r.add(OpDef {
        inputs: |a| weighted_inputs(a, false),
        ..op(
            "FullyConnected",
            &["_npx_fully_connected", "_sparse_FullyConnected"],
        )
    });
}

/// Registers batch, layer, group and instance normalization and their relatives.
fn register_normalization(r: &mut Registry) {
    r.add(OpDef {
        inputs: batch_norm_inputs,
        outputs: batch_norm_outputs,
        visible_outputs: visible_with_mean_var,
        mutate_inputs: &[3, 4],
        ..op("BatchNorm", &["_npx_batch_norm"])
    });

    r.add(OpDef {
        inputs: batch_norm_inputs,
        outputs: batch_norm_outputs,
        visible_outputs: visible_with_mean_var,
        mutate_inputs: &[3, 4],
        ..op("BatchNorm_v1", &[])
    });

    r.add(OpDef {
        inputs: batch_norm_inputs,
        outputs: batch_norm_outputs,
        visible_outputs: visible_with_mean_var,
        mutate_inputs: &[3, 4],
        ..op("_contrib_SyncBatchNorm", &[])
    });

    // MXNet 1.9.1 reports four outputs for this operator. NOTE: the name of
    // the hidden fourth output cannot be observed from outside MXNet, so
    // `workspace` is a guess.
    r.add(OpDef {
        inputs: batch_norm_inputs,
        outputs: |_| to_strings(&["output", "mean", "var", "workspace"]),
        visible_outputs: visible_with_mean_var,
        mutate_inputs: &[3, 4],
        ..op("_contrib_BatchNormWithReLU", &[])
    });

    r.add(OpDef {
        inputs: data_gamma_beta,
        outputs: |_| to_strings(&["output", "mean", "std"]),
        visible_outputs: visible_with_mean_var,
        ..op("LayerNorm", &["_npx_layer_norm"])
    });

    r.add(OpDef {
        inputs: data_gamma_beta,
        outputs: |_| to_strings(&["output", "mean", "std"]),
        visible_outputs: visible_with_mean_var,
        ..op("GroupNorm", &[])
    });

    r.add(OpDef {
        inputs: data_gamma_beta,
        outputs: batch_norm_outputs,
        visible_outputs: one_visible,
        ..op("InstanceNorm", &[])
    });

    r.add(OpDef {
        outputs: |_| to_strings(&["output", "norm"]),
        visible_outputs: one_visible,
        ..op("L2Normalization", &[])
    });

    r.add(OpDef {
        outputs: |_| to_strings(&["output", "tmp_norm"]),
        visible_outputs: one_visible,
        ..op("LRN", &[])
    });
}

fn register_activations(r: &mut Registry) {
    r.add(op("Activation", &["_npx_activation"]));

    r.add(OpDef {
        inputs: |a| {
            if text(a, "act_type") == Some("prelu") {
                to_strings(&["data", "gamma"])
            } else {
                to_strings(&["data"])
            }
        },
        outputs: |a| {
            if text(a, "act_type") == Some("rrelu") {
                to_strings(&["output", "mask"])
            } else {
                to_strings(&["output"])
            }
        },
        ..op("LeakyReLU", &["_npx_leaky_relu"])
    });
}

fn register_other_layers(r: &mut Registry) {
    // NOTE: MXNet 1.9.1 built with MKLDNN gives max pooling in NCHW-style
    // layouts a hidden second output (a workspace), which shows in the
    // node_row_ptr it writes. This library has no such workspace, so
    // Pooling has one output here.
    r.add(op("Pooling", &["_npx_pooling"]));

    r.add(OpDef {
        inputs: |a| {
            if text(a, "sample_type") == Some("bilinear") {
                to_strings(&["data", "weight"])
            } else {
                num_args_inputs(a)
            }
        },
        ..op("UpSampling", &[])
    });

    r.add(OpDef {
        inputs: |a| {
            if text(a, "mode") == Some("like") {
                to_strings(&["data", "like"])
            } else {
                to_strings(&["data"])
            }
        },
        ..op("_contrib_BilinearResize2D", &[])
    });

    r.add(OpDef {
        inputs: |_| to_strings(&["data", "weight"]),
        ..op("Embedding", &["_npx_embedding", "_sparse_Embedding"])
    });

    r.add(OpDef {
        inputs: |a| {
            let mut names = to_strings(&["data", "parameters", "state"]);
            let lstm = text(a, "mode") == Some("lstm");
            if lstm {
                names.push("state_cell".into());
            }
            if flag(a, "use_sequence_length", false) {
                names.push("sequence_length".into());
            }
            names
        },
        outputs: |a| {
            let mut names = to_strings(&["output"]);
            if flag(a, "state_outputs", false) {
                names.push("state_output".into());
                if text(a, "mode") == Some("lstm") {
                    names.push("statecell_output".into());
                }
            }
            names
        },
        ..op("RNN", &["_npx_rnn"])
    });

    r.add(OpDef {
        outputs: |_| to_strings(&["output", "mask"]),
        visible_outputs: one_visible,
        ..op("Dropout", &["_npx_dropout"])
    });

    r.add(OpDef {
        inputs: |_| to_strings(&["data", "moving_avg"]),
        mutate_inputs: &[1],
        ..op("IdentityAttachKLSparseReg", &[])
    });

    r.add(OpDef {
        inputs: |_| to_strings(&["data", "rois"]),
        outputs: |_| to_strings(&["output", "maxidx"]),
        visible_outputs: one_visible,
        ..op("ROIPooling", &[])
    });
}

fn register_shape_ops(r: &mut Registry) {
    for (name, aliases) in [
        ("Flatten", &["_npx_batch_flatten", "flatten"][..]),
        ("Reshape", &["reshape"]),
        ("transpose", &[]),
        ("SwapAxis", &["_npi_swapaxes", "swapaxes"]),
        ("expand_dims", &["_npi_expand_dims"]),
        ("squeeze", &[]),
        (
            "slice",
            &["_npi_slice", "_npx_slice", "_sparse_slice", "crop"],
        ),
        ("slice_axis", &[]),
        ("Pad", &["pad"]),
        ("Cast", &["_npi_cast", "_npx_cast", "cast"]),
        ("tile", &["_npi_tile"]),
        ("repeat", &["_np_repeat"]),
        ("broadcast_to", &[]),
        ("broadcast_axis", &["broadcast_axes"]),
        ("_copy", &["identity"]),
        ("BlockGrad", &["stop_gradient", "_sparse_stop_gradient"]),
        ("MakeLoss", &[]),
        ("zeros_like", &["_sparse_zeros_like"]),
        ("ones_like", &[]),
        ("SoftmaxActivation", &[]),
        ("argmax", &[]),
        ("argmin", &[]),
        ("argsort", &["_npi_argsort"]),
    ] {
        r.add(op(name, aliases));
    }

    // softmax and log_softmax take a `length` input with use_length.
    for (name, aliases) in [
        ("softmax", &["_npx_softmax"][..]),
        ("log_softmax", &["_npx_log_softmax"]),
    ] {
        r.add(OpDef {
            inputs: |a| {
                if flag(a, "use_length", false) {
                    to_strings(&["data", "length"])
                } else {
                    to_strings(&["data"])
                }
            },
            ..op(name, aliases)
        });
    }

    for (name, aliases) in [
        ("Concat", &["_sparse_concat", "concat"][..]),
        ("stack", &[]),
        ("Crop", &[]),
    ] {
        r.add(OpDef {
            inputs: num_args_inputs,
            ..op(name, aliases)
        });
    }

    r.add(OpDef {
        inputs: |_| to_strings(&["data", "shape_like"]),
        ..op("slice_like", &[])
    });

    r.add(OpDef {
        inputs: lhs_rhs,
        ..op("broadcast_like", &[])
    });

    // SliceChannel names its outputs output0, output1, … even when there is one.
    r.add(OpDef {
        outputs: |a| numbered_outputs(count(a, "num_outputs", 1)),
        ..op("SliceChannel", &["split"])
    });

    r.add(OpDef {
        outputs: |a| {
            if text(a, "ret_typ") == Some("both") {
                numbered_outputs(2)
            } else {
                to_strings(&["output"])
            }
        },
        ..op("topk", &["_npx_topk"])
    });

    r.add(OpDef {
        outputs: |_| numbered_outputs(2),
        visible_outputs: one_visible,
        ..op("sort", &["_npi_sort"])
    });
}

/// Registers the loss layers and the indexing operators.
fn register_losses_and_indexing(r: &mut Registry) {
    r.add(OpDef {
        inputs: |a| {
            if flag(a, "use_sequence_length", false) {
                to_strings(&["data", "sequence_length"])
            } else {
                to_strings(&["data"])
            }
        },
        ..op("SequenceMask", &[])
    });

    for (name, aliases) in [
        ("SoftmaxOutput", &["Softmax"][..]),
        ("LinearRegressionOutput", &[]),
        ("LogisticRegressionOutput", &[]),
        ("MAERegressionOutput", &[]),
        ("SVMOutput", &[]),
    ] {
        r.add(OpDef {
            inputs: data_label,
            ..op(name, aliases)
        });
    }

    r.add(OpDef {
        inputs: |_| to_strings(&["a", "indices"]),
        ..op("take", &["_npi_take"])
    });

    r.add(OpDef {
        inputs: |_| to_strings(&["data", "index"]),
        ..op("pick", &[])
    });

    r.add(OpDef {
        inputs: |_| to_strings(&["indices"]),
        ..op("one_hot", &[])
    });

    r.add(OpDef {
        inputs: |_| to_strings(&["condition", "x", "y"]),
        ..op("where", &["_sparse_where"])
    });
}

fn register_elementwise(r: &mut Registry) {
    for (name, aliases) in [
        (
            "elemwise_add",
            &["_Plus", "_add", "_plus", "_sparse_elemwise_add"][..],
        ),
        (
            "elemwise_sub",
            &["_Minus", "_minus", "_sub", "_sparse_elemwise_sub"],
        ),
        ("elemwise_mul", &["_Mul", "_mul", "_sparse_elemwise_mul"]),
        ("elemwise_div", &["_Div", "_div", "_sparse_elemwise_div"]),
        ("_maximum", &["_Maximum"]),
        ("_minimum", &["_Minimum"]),
        (
            "broadcast_add",
            &[
                "broadcast_plus",
                "_sparse_broadcast_add",
                "_sparse_broadcast_plus",
            ],
        ),
        (
            "broadcast_sub",
            &[
                "broadcast_minus",
                "_sparse_broadcast_sub",
                "_sparse_broadcast_minus",
            ],
        ),
        ("broadcast_mul", &["_sparse_broadcast_mul"]),
        ("broadcast_div", &["_sparse_broadcast_div"]),
        ("broadcast_maximum", &["_npi_maximum"]),
        ("broadcast_minimum", &["_npi_minimum"]),
        ("broadcast_power", &[]),
        ("broadcast_equal", &[]),
        ("broadcast_not_equal", &[]),
        ("broadcast_greater", &[]),
        ("broadcast_greater_equal", &[]),
        ("broadcast_lesser", &[]),
        ("broadcast_lesser_equal", &[]),
        ("dot", &["_sparse_dot"]),
        ("batch_dot", &["_npx_batch_dot"]),
    ] {
        r.add(OpDef {
            inputs: lhs_rhs,
            ..op(name, aliases)
        });
    }

    r.add(OpDef {
        inputs: num_args_inputs,
        ..op(
            "add_n",
            &["ElementWiseSum", "_sparse_ElementWiseSum", "_sparse_add_n"],
        )
    });

    for (name, aliases) in [
        ("_plus_scalar", &["_PlusScalar"][..]),
        ("_minus_scalar", &["_MinusScalar"]),
        ("_rminus_scalar", &["_RMinusScalar"]),
        ("_mul_scalar", &["_MulScalar"]),
        ("_div_scalar", &["_DivScalar"]),
        ("_rdiv_scalar", &["_RDivScalar"]),
        ("_power_scalar", &["_PowerScalar"]),
        ("_rpower_scalar", &["_RPowerScalar"]),
        (
            "_maximum_scalar",
            &["_MaximumScalar", "_npi_maximum_scalar"],
        ),
        (
            "_minimum_scalar",
            &["_MinimumScalar", "_npi_minimum_scalar"],
        ),
        ("_equal_scalar", &["_EqualScalar"]),
        ("_not_equal_scalar", &["_NotEqualScalar"]),
        ("_greater_scalar", &["_GreaterScalar"]),
        ("_greater_equal_scalar", &["_GreaterEqualScalar"]),
        ("_lesser_scalar", &["_LesserScalar"]),
        ("_lesser_equal_scalar", &["_LesserEqualScalar"]),
        ("clip", &["_npi_clip", "_sparse_clip"]),
        ("relu", &["_sparse_relu"]),
        ("sigmoid", &["_sparse_sigmoid"]),
        ("hard_sigmoid", &[]),
        ("softsign", &[]),
        ("tanh", &["_sparse_tanh"]),
        ("exp", &["_sparse_exp"]),
        ("log", &["_sparse_log"]),
        ("sqrt", &["_sparse_sqrt"]),
        ("rsqrt", &[]),
        ("square", &["_sparse_square"]),
        ("abs", &["_sparse_abs"]),
        ("negative", &["_sparse_negative"]),
        ("reciprocal", &[]),
        ("erf", &["_npx_erf"]),
        ("floor", &["_sparse_floor"]),
        ("ceil", &["_sparse_ceil"]),
        ("round", &["_sparse_round"]),
        ("sign", &["_sparse_sign"]),
    ] {
        r.add(op(name, aliases));
    }
}

fn register_reductions(r: &mut Registry) {
    for (name, aliases) in [
        ("mean", &["_sparse_mean"][..]),
        ("sum", &["_sparse_sum", "sum_axis"]),
        ("max", &["max_axis"]),
        ("min", &["min_axis"]),
        ("prod", &[]),
        ("norm", &["_sparse_norm"]),
    ] {
        r.add(op(name, aliases));
    }
}

/// `output, min_output, max_output`: the outputs of the quantized operators.
fn quantized_outputs(_: &Attrs) -> Vec<String> {
    to_strings(&["output", "min_output", "max_output"])
}

fn numbered_three(_: &Attrs) -> Vec<String> {
    numbered_outputs(3)
}

fn data_min_max(_: &Attrs) -> Vec<String> {
    to_strings(&["data", "min_data", "max_data"])
}

fn data_range(_: &Attrs) -> Vec<String> {
    to_strings(&["data", "min_range", "max_range"])
}

/// Quantized convolution and fully connected inputs: the tensors first,
/// then a `min_`/`max_` pair for each of them.
fn quantized_weighted_inputs(attrs: &Attrs) -> Vec<String> {
    let tensors = weighted_inputs(attrs, false);
    let mut names = tensors.clone();
    for t in &tensors {
        names.push(format!("min_{t}"));
        names.push(format!("max_{t}"));
    }
    names
}

fn quantized_binary_inputs(_: &Attrs) -> Vec<String> {
    to_strings(&["lhs", "rhs", "lhs_min", "lhs_max", "rhs_min", "rhs_max"])
}

fn register_quantized(r: &mut Registry) {
    r.add(OpDef {
        inputs: data_range,
        outputs: numbered_three,
        ..op("_contrib_quantize", &[])
    });

    r.add(OpDef {
        outputs: numbered_three,
        ..op("_contrib_quantize_v2", &[])
    });

    r.add(OpDef {
        outputs: |_| to_strings(&["output", "scale", "shift"]),
        ..op("_contrib_quantize_asym", &[])
    });

    r.add(OpDef {
        inputs: data_range,
        ..op("_contrib_dequantize", &[])
    });

    r.add(OpDef {
        inputs: data_range,
        outputs: numbered_three,
        ..op("_contrib_requantize", &[])
    });

    r.add(OpDef {
        inputs: quantized_weighted_inputs,
        outputs: quantized_outputs,
        ..op("_contrib_quantized_conv", &[])
    });

    r.add(OpDef {
        inputs: quantized_weighted_inputs,
        outputs: quantized_outputs,
        ..op("_contrib_quantized_fully_connected", &[])
    });

    for name in [
        "_contrib_quantized_pooling",
        "_contrib_quantized_flatten",
        "_contrib_quantized_act",
    ] {
        r.add(OpDef {
            inputs: data_min_max,
            outputs: quantized_outputs,
            ..op(name, &[])
        });
    }

    r.add(OpDef {
        inputs: |a| {
            let n = count(a, "num_args", 0);
            let mut names = numbered_args(n);
            for i in 0..n {
                names.push(format!("arg{i}_min"));
                names.push(format!("arg{i}_max"));
            }
            names
        },
        outputs: quantized_outputs,
        ..op("_contrib_quantized_concat", &[])
    });

    r.add(OpDef {
        inputs: quantized_binary_inputs,
        outputs: quantized_outputs,
        ..op("_contrib_quantized_elemwise_add", &[])
    });

    // With enable_float_output the product is dequantized and has no range outputs.
    r.add(OpDef {
        inputs: quantized_binary_inputs,
        outputs: |a| {
            if flag(a, "enable_float_output", false) {
                to_strings(&["output"])
            } else {
                quantized_outputs(a)
            }
        },
        ..op("_contrib_quantized_elemwise_mul", &[])
    });

    r.add(OpDef {
        inputs: |_| {
            to_strings(&[
                "data",
                "gamma",
                "beta",
                "moving_mean",
                "moving_var",
                "min_data",
                "max_data",
            ])
        },
        outputs: quantized_outputs,
        mutate_inputs: &[3, 4],
        ..op("_contrib_quantized_batch_norm", &[])
    });

    r.add(OpDef {
        inputs: |_| to_strings(&["data", "weight", "min_weight", "max_weight"]),
        outputs: quantized_outputs,
        ..op("_contrib_quantized_embedding", &[])
    });

    r.add(OpDef {
        inputs: |a| {
            let mut names = to_strings(&["data", "parameters", "state"]);
            if text(a, "mode") == Some("lstm") {
                names.push("state_cell".into());
            }
            names.push("min_data".into());
            names.push("max_data".into());
            names
        },
        ..op("_contrib_quantized_rnn", &[])
    });

    register_fused(r);
}

/// Registers the MKLDNN fused subgraph operators. Their real inputs are the
/// inputs of the nested graph (in its DFS order) followed by the
/// quantization ranges. Graph listing reads the nested graph, so the input
/// names below are only what the outer attributes allow one to infer.
///
/// The `_sg_onednn_*` names are how later MXNet versions spell the same
/// operators; MXNet 1.9.1 does not register them, this library accepts them.
fn register_fused(r: &mut Registry) {
    r.add(OpDef {
        // NOTE: the outer node does not carry the convolution's `no_bias`, so
        // `bias` is listed even for convolutions without one.
        inputs: |a| {
            let mut names = to_strings(&["data", "weight", "bias"]);
            if flag(a, "with_bn", false) {
                names.extend(to_strings(&["gamma", "beta", "moving_mean", "moving_var"]));
            }
            let with_sum = flag(a, "with_sum", false);
            if with_sum {
                names.push("sum".into());
            }
            if flag(a, "quantized", false) {
                names.extend(to_strings(&["data_min", "data_max"]));
                if with_sum {
                    names.extend(to_strings(&["sum_min", "sum_max"]));
                }
            }
            names
        },
        // Measured with MXNet 1.9.1: a quantized convolution without float
        // output names its ranges output_min and output_max.
        outputs: |a| {
            if flag(a, "quantized", false) && !flag(a, "enable_float_output", false) {
                to_strings(&["output", "output_min", "output_max"])
            } else {
                to_strings(&["output"])
            }
        },
        ..op("_sg_mkldnn_conv", &["_sg_onednn_conv"])
    });

    r.add(OpDef {
        inputs: |a| {
            let mut names = to_strings(&["data", "weight", "bias"]);
            if flag(a, "quantized", false) {
                names.extend(to_strings(&["data_min", "data_max"]));
            }
            names
        },
        // Measured with MXNet 1.9.1: the fully connected fusion names its
        // ranges min_output and max_output, unlike the convolution fusion.
        outputs: |a| {
            if flag(a, "quantized", false) && !flag(a, "enable_float_output", false) {
                quantized_outputs(a)
            } else {
                to_strings(&["output"])
            }
        },
        ..op(
            "_sg_mkldnn_fully_connected",
            &["_sg_onednn_fully_connected"],
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Attrs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn catalog() -> Registry {
        let mut r = Registry {
            ops: Default::default(),
            impls: Default::default(),
        };
        register(&mut r);
        r
    }

    #[test]
    fn aliases_resolve_to_canonical() {
        let r = catalog();
        assert_eq!(r.get("identity").unwrap().name, "_copy");
        assert_eq!(r.get("ElementWiseSum").unwrap().name, "add_n");
        assert_eq!(r.get("split").unwrap().name, "SliceChannel");
        assert_eq!(r.get("_sg_onednn_conv").unwrap().name, "_sg_mkldnn_conv");
    }

    #[test]
    fn convolution_bias_follows_no_bias() {
        let r = catalog();
        let conv = r.get("Convolution").unwrap();
        assert_eq!((conv.inputs)(&attrs(&[])), ["data", "weight", "bias"]);
        assert_eq!(
            (conv.inputs)(&attrs(&[("no_bias", "True")])),
            ["data", "weight"]
        );
        let deconv = r.get("Deconvolution").unwrap();
        assert_eq!((deconv.inputs)(&attrs(&[])), ["data", "weight"]);
    }

    #[test]
    fn batch_norm_hides_statistics() {
        let r = catalog();
        let bn = r.get("BatchNorm").unwrap();
        assert_eq!((bn.outputs)(&attrs(&[])).len(), 3);
        assert_eq!((bn.visible_outputs)(&attrs(&[])), 1);
        assert_eq!((bn.visible_outputs)(&attrs(&[("output_mean_var", "1")])), 3);
        assert_eq!(bn.mutate_inputs, &[3, 4]);
    }

    #[test]
    fn quantized_concat_interleaves_ranges() {
        let r = catalog();
        let concat = r.get("_contrib_quantized_concat").unwrap();
        assert_eq!(
            (concat.inputs)(&attrs(&[("num_args", "2")])),
            ["arg0", "arg1", "arg0_min", "arg0_max", "arg1_min", "arg1_max"]
        );
    }

    #[test]
    fn unparsable_attribute_uses_default() {
        let r = catalog();
        let fc = r.get("FullyConnected").unwrap();
        assert_eq!(
            (fc.inputs)(&attrs(&[("no_bias", "maybe")])),
            ["data", "weight", "bias"]
        );
        let split = r.get("SliceChannel").unwrap();
        assert_eq!(
            (split.outputs)(&attrs(&[("num_outputs", "-2")])),
            ["output0"]
        );
    }
}
