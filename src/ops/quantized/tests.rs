//! Operator-level tests through the `Op` trait: MXNet 1.9.1's measured
//! examples (bit-exact) and the cases where we deliberately differ.

// Expected floats are written as numpy printed them from MXNet 1.9.1 outputs.
#![allow(clippy::excessive_precision)]

use crate::dtype::DType;
use crate::graph::{Attrs, Entry, Graph, Node};
use crate::ops::{registry, NodeCtx, Shape};
use crate::tensor::Tensor;

fn attrs(pairs: &[(&str, &str)]) -> Attrs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape, v).unwrap()
}

fn i8s(shape: &[usize], v: &[i8]) -> Tensor {
    Tensor::from_slice(DType::I8, shape, v).unwrap()
}

fn u8s(shape: &[usize], v: &[u8]) -> Tensor {
    Tensor::from_slice(DType::U8, shape, v).unwrap()
}

fn i32s(shape: &[usize], v: &[i32]) -> Tensor {
    Tensor::from_slice(DType::I32, shape, v).unwrap()
}

fn scalar(v: f32) -> Tensor {
    f32s(&[1], &[v])
}

/// Creates `op`, infers shapes and dtypes, prepares it with every input as a
/// constant and runs one forward pass.
fn run_with(op: &str, a: &[(&str, &str)], subgraphs: &[Graph], inputs: &[Tensor]) -> Vec<Tensor> {
    let attrs = attrs(a);
    let ctx = NodeCtx {
        name: "test",
        op,
        attrs: &attrs,
        subgraphs,
    };
    let create = registry().constructor(op).expect("operator is registered");
    let mut instance = create(&ctx).expect("operator accepts the attributes");
    let mut shapes: Vec<Option<Shape>> = inputs.iter().map(|t| Some(t.shape().to_vec())).collect();
    let out_shapes = instance
        .infer_shape(&mut shapes)
        .unwrap()
        .expect("shapes are known");
    let mut types: Vec<Option<DType>> = inputs.iter().map(|t| Some(t.dtype())).collect();
    let out_types = instance.infer_type(&mut types, out_shapes.len()).unwrap();
    let constants: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
    instance.prepare(&constants).unwrap();
    let mut outputs: Vec<Tensor> = out_shapes
        .iter()
        .zip(&out_types)
        .map(|(s, &t)| Tensor::zeros(t, s).unwrap())
        .collect();
    let refs: Vec<&Tensor> = inputs.iter().collect();
    instance.forward(&refs, &mut outputs).unwrap();
    outputs
}

fn run(op: &str, a: &[(&str, &str)], inputs: &[Tensor]) -> Vec<Tensor> {
    run_with(op, a, &[], inputs)
}

fn range(outputs: &[Tensor]) -> (f32, f32) {
    (outputs[1].f32s().unwrap()[0], outputs[2].f32s().unwrap()[0])
}

#[test]
fn quantize_v2_uncalibrated_int8_and_uint8() {
    let x = f32s(&[7], &[-1.0, -0.5, 0.25, 0.5, 1.0, 0.3, 2.0]);
    let out = run(
        "_contrib_quantize_v2",
        &[("out_type", "auto")],
        std::slice::from_ref(&x),
    );
    assert_eq!(
        out[0].as_slice::<i8>().unwrap(),
        &[-64, -32, 16, 32, 64, 19, 127]
    );
    assert_eq!(range(&out), (-2.0, 2.0));

    let out = run("_contrib_quantize_v2", &[("out_type", "uint8")], &[x]);
    assert_eq!(
        out[0].as_slice::<u8>().unwrap(),
        &[0, 0, 32, 64, 128, 38, 255]
    );
    assert_eq!(range(&out), (-1.0, 2.0));
}

#[test]
fn quantize_v2_auto_with_negative_calibration_is_int8() {
    let x = f32s(
        &[10],
        &[0.5, 1.5, 2.5, 254.5, 255.4, 255.5, 300.0, -0.4, -0.6, -3.0],
    );
    let a = [
        ("out_type", "auto"),
        ("min_calib_range", "-0.001"),
        ("max_calib_range", "255.5"),
    ];
    let out = run("_contrib_quantize_v2", &a, &[x]);
    assert_eq!(out[0].dtype(), DType::I8);
    assert_eq!(
        out[0].as_slice::<i8>().unwrap(),
        &[0, 1, 1, 127, 127, 127, 127, 0, 0, -1]
    );
    assert_eq!(range(&out), (-255.5, 255.5));
}

#[test]
fn quantize_v2_nan_and_infinity() {
    let x = f32s(&[4], &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.0]);
    let a = [
        ("out_type", "int8"),
        ("min_calib_range", "-1"),
        ("max_calib_range", "1"),
    ];
    let out = run("_contrib_quantize_v2", &a, std::slice::from_ref(&x));
    assert_eq!(out[0].as_slice::<i8>().unwrap(), &[0, 127, -128, 127]);

    // Without calibration the range skips NaN but includes infinities.
    let finite = f32s(&[3], &[f32::NAN, -2.0, 1.0]);
    let out = run("_contrib_quantize_v2", &[], &[finite]);
    assert_eq!(out[0].as_slice::<i8>().unwrap(), &[0, -128, 64]);
    assert_eq!(range(&out), (-2.0, 2.0));
}

#[test]
fn quantize_v2_zero_ranges_give_zeros() {
    let zeros = f32s(&[3], &[0.0; 3]);
    let out = run("_contrib_quantize_v2", &[], &[zeros]);
    assert_eq!(out[0].as_slice::<i8>().unwrap(), &[0, 0, 0]);
    assert_eq!(range(&out), (0.0, 0.0));

    let x = f32s(&[2], &[5.0, -5.0]);
    let a = [("min_calib_range", "0"), ("max_calib_range", "0")];
    let out = run("_contrib_quantize_v2", &a, &[x]);
    assert_eq!(out[0].as_slice::<i8>().unwrap(), &[0, 0]);
}

#[test]
fn dequantize_examples() {
    let q = i8s(&[7], &[-128, -127, -1, 0, 1, 64, 127]);
    let out = run("_contrib_dequantize", &[], &[q, scalar(-1.0), scalar(1.0)]);
    let expected = [
        -1.0039216f32,
        -0.9960785,
        -0.0078431377,
        0.0,
        0.0078431377,
        0.5019608,
        0.9960785,
    ];
    assert_eq!(out[0].f32s().unwrap(), &expected);

    let q = u8s(&[4], &[0, 1, 128, 255]);
    let out = run("_contrib_dequantize", &[], &[q, scalar(-1.0), scalar(2.0)]);
    assert_eq!(
        out[0].f32s().unwrap(),
        &[0.0, 0.0078277886, 1.0019569, 1.9960861]
    );
}

#[test]
fn requantize_calibrated_and_uncalibrated() {
    let data = i32s(&[11], &[1, 2, 3, -1, -3, 126, 127, 128, -128, -129, 300]);
    let r = 2147483648.0;
    let a = [("min_calib_range", "-254"), ("max_calib_range", "254")];
    let out = run("_contrib_requantize", &a, &[data, scalar(-r), scalar(r)]);
    assert_eq!(
        out[0].as_slice::<i8>().unwrap(),
        &[0, 1, 2, 0, -2, 63, 64, 64, -64, -64, 127]
    );

    let data = i32s(&[4], &[-1000, 0, 500, 2000]);
    let out = run(
        "_contrib_requantize",
        &[],
        &[data, scalar(-4.0), scalar(4.0)],
    );
    assert_eq!(out[0].as_slice::<i8>().unwrap(), &[-64, 0, 32, 127]);
    assert_eq!(range(&out), (-3.7252903e-06, 3.7252903e-06));
}

#[test]
fn requantize_int32_limits_keep_sign() {
    let data = i32s(&[3], &[i32::MAX, i32::MIN, 0]);
    let out = run(
        "_contrib_requantize",
        &[],
        &[data, scalar(-1.0), scalar(1.0)],
    );
    assert_eq!(out[0].as_slice::<i8>().unwrap(), &[127, -127, 0]);
    assert_eq!(range(&out), (-1.0, 1.0));
}

fn fc_inputs(data: Tensor, data_range: (f32, f32)) -> Vec<Tensor> {
    vec![
        data,
        i8s(&[2, 3], &[1, 1, 1, 2, -1, 0]),
        i8s(&[2], &[10, -10]),
        scalar(data_range.0),
        scalar(data_range.1),
        scalar(-1.0),
        scalar(1.0),
        scalar(-1.0),
        scalar(1.0),
    ]
}

#[test]
fn quantized_fc_int8_and_uint8_data() {
    let a = [("num_hidden", "2")];
    let out = run(
        "_contrib_quantized_fully_connected",
        &a,
        &fc_inputs(i8s(&[1, 3], &[1, 2, 3]), (-1.0, 1.0)),
    );
    assert_eq!(out[0].as_slice::<i32>().unwrap(), &[1281, -1275]);
    assert_eq!(range(&out), (-133144.25, 133144.25));

    let out = run(
        "_contrib_quantized_fully_connected",
        &a,
        &fc_inputs(u8s(&[1, 3], &[1, 2, 3]), (0.0, 1.0)),
    );
    assert_eq!(out[0].as_slice::<i32>().unwrap(), &[2561, -2555]);
    assert_eq!(range(&out), (-66311.06, 66311.06));
}

#[test]
fn quantized_conv_int8_data_and_rescaled_bias() {
    // 1x1 conv, one channel: acc = 3·x; bias 127 (real 1.0) in accumulator units.
    let a = [("kernel", "(1, 1)"), ("num_filter", "1")];
    let inputs = [
        i8s(&[1, 1, 2, 2], &[10, -20, 127, -128]),
        i8s(&[1, 1, 1, 1], &[3]),
        i8s(&[1], &[127]),
        scalar(-1.0),
        scalar(1.0),
        scalar(-1.0),
        scalar(1.0),
        scalar(-1.0),
        scalar(1.0),
    ];
    let out = run("_contrib_quantized_conv", &a, &inputs);
    // unit = (1/127.5)·(1/127); bias = 127·(1/127)/unit = 16192.5 -> 16192 (half to even).
    assert_eq!(
        out[0].as_slice::<i32>().unwrap(),
        &[16222, 16132, 16573, 15808]
    );
    let m = (1.0f32 / 127.5) * (1.0 / 127.0) * 2147483648.0;
    assert_eq!(range(&out), (-m, m));
}

#[test]
fn quantized_add_examples() {
    let inputs = |cal: bool| -> (Vec<Tensor>, Vec<(&'static str, &'static str)>) {
        let t = vec![
            i8s(&[3], &[100, -50, 127]),
            i8s(&[3], &[20, 30, -128]),
            scalar(-1.0),
            scalar(1.0),
            scalar(-2.0),
            scalar(2.0),
        ];
        let a = if cal {
            vec![("min_calib_range", "-2.5"), ("max_calib_range", "2.5")]
        } else {
            vec![]
        };
        (t, a)
    };
    let (t, a) = inputs(true);
    let out = run("_contrib_quantized_elemwise_add", &a, &t);
    assert_eq!(out[0].as_slice::<i8>().unwrap(), &[56, 4, -52]);
    let (t, a) = inputs(false);
    let out = run("_contrib_quantized_elemwise_add", &a, &t);
    assert_eq!(
        out[0].as_slice::<i32>().unwrap(),
        &[786007104, 56143360, -724249408]
    );
    assert_eq!(range(&out), (-3.0, 3.0));

    let t = [
        u8s(&[3], &[200, 50, 255]),
        u8s(&[3], &[20, 30, 128]),
        scalar(0.0),
        scalar(1.0),
        scalar(0.0),
        scalar(2.0),
    ];
    let a = [("min_calib_range", "0"), ("max_calib_range", "2.5")];
    let out = run("_contrib_quantized_elemwise_add", &a, &t);
    assert_eq!(out[0].as_slice::<u8>().unwrap(), &[96, 44, 204]);
}

#[test]
fn quantized_add_mixed_uncalibrated_is_exact() {
    // int8 1.0 (127.5 of range 1) + uint8 2.0 (255.5 of range 2) = 3.0 of range 3.
    let t = [
        i8s(&[1], &[127]),
        u8s(&[1], &[255]),
        scalar(-1.0),
        scalar(1.0),
        scalar(0.0),
        scalar(2.0),
    ];
    let out = run("_contrib_quantized_elemwise_add", &[], &t);
    let real = out[0].as_slice::<i32>().unwrap()[0] as f64 * 3.0 / 2147483648.0;
    let expected = 127.0 / 127.5 + 2.0 * 255.0 / 255.5;
    assert!((real - expected).abs() < 1e-6, "{real} != {expected}");
}

#[test]
fn quantized_mul_examples() {
    let t = || {
        [
            i8s(&[4], &[100, -50, 127, 10]),
            i8s(&[4], &[20, 30, -128, 3]),
            scalar(-1.0),
            scalar(1.0),
            scalar(-2.0),
            scalar(2.0),
        ]
    };
    let out = run("_contrib_quantized_elemwise_mul", &[], &t());
    assert_eq!(
        out[0].as_slice::<i32>().unwrap(),
        &[2000, -1500, -16256, 30]
    );
    assert_eq!(range(&out), (-266288.5, 266288.5));

    let out = run(
        "_contrib_quantized_elemwise_mul",
        &[("enable_float_output", "true")],
        &t(),
    );
    assert_eq!(
        &out[0].f32s().unwrap()[..3],
        &[0.24605921, -0.1845444, -1.9999692]
    );

    // MXNet truncates and wraps to [62, -47, 3, 0]; we round and saturate.
    let a = [("min_calib_range", "-0.5"), ("max_calib_range", "0.5")];
    let out = run("_contrib_quantized_elemwise_mul", &a, &t());
    assert_eq!(out[0].as_slice::<i8>().unwrap(), &[63, -47, -128, 1]);
}

fn bn_inputs() -> Vec<Tensor> {
    vec![
        i8s(&[1, 2, 1, 1], &[-100, 50]),
        f32s(&[2], &[2.0, 0.5]),
        f32s(&[2], &[0.5, -0.5]),
        f32s(&[2], &[0.1, 0.2]),
        f32s(&[2], &[1.0, 0.25]),
        scalar(-2.0),
        scalar(2.0),
    ]
}

#[test]
fn quantized_batch_norm_example_and_fix_gamma() {
    let a = [
        ("eps", "0.001"),
        ("fix_gamma", "False"),
        ("min_calib_range", "-4"),
        ("max_calib_range", "4"),
    ];
    let out = run("_contrib_quantized_batch_norm", &a, &bn_inputs());
    assert_eq!(out[0].as_slice::<i8>().unwrap(), &[-90, 3]);
    assert_eq!(range(&out), (-4.0, 4.0));

    // fix_gamma=true: gamma is 1. Channel 0: (-100/127.5·2 - 0.1)/1 + 0.5 = -1.1686 -> -37.
    let a = [
        ("eps", "0.001"),
        ("fix_gamma", "True"),
        ("min_calib_range", "-4"),
        ("max_calib_range", "4"),
    ];
    let out = run("_contrib_quantized_batch_norm", &a, &bn_inputs());
    assert_eq!(out[0].as_slice::<i8>().unwrap()[0], -37);
}

#[test]
fn quantized_concat_rescales_inputs() {
    let q = [10i8, -20, 127, -128];
    let t = [
        i8s(&[1, 4], &q),
        i8s(&[1, 4], &q),
        scalar(-1.0),
        scalar(1.0),
        scalar(-0.5),
        scalar(3.0),
    ];
    let out = run(
        "_contrib_quantized_concat",
        &[("num_args", "2"), ("dim", "1")],
        &t,
    );
    assert_eq!(
        out[0].as_slice::<i8>().unwrap(),
        &[3, -7, 42, -43, 10, -20, 127, -128]
    );
    assert_eq!(range(&out), (-1.0, 3.0));

    let t = [
        i8s(&[1, 4], &q),
        u8s(&[1, 4], &[10, 200, 255, 0]),
        scalar(-1.0),
        scalar(1.0),
        scalar(0.0),
        scalar(2.0),
    ];
    let out = run("_contrib_quantized_concat", &[("num_args", "2")], &t);
    assert_eq!(
        out[0].as_slice::<i8>().unwrap(),
        &[5, -10, 64, -64, 5, 100, 127, 0]
    );
}

#[test]
fn quantized_act_keeps_uint8() {
    let t = [
        u8s(&[6], &[0, 1, 127, 128, 200, 255]),
        scalar(0.0),
        scalar(1.0),
    ];
    let out = run("_contrib_quantized_act", &[("act_type", "relu")], &t);
    assert_eq!(out[0].dtype(), DType::U8);
    assert_eq!(
        out[0].as_slice::<u8>().unwrap(),
        &[0, 1, 127, 128, 200, 255]
    );

    let t = [i8s(&[5], &[-128, -1, 0, 1, 127]), scalar(-2.0), scalar(3.0)];
    let out = run("_contrib_quantized_act", &[("act_type", "relu")], &t);
    assert_eq!(out[0].as_slice::<i8>().unwrap(), &[0, 0, 0, 1, 127]);
    assert_eq!(range(&out), (-2.0, 3.0));
}

#[test]
fn quantized_embedding_truncates_and_clips() {
    let w = i8s(&[5, 1], &[10, 11, 12, 13, 14]);
    let t = [
        f32s(&[5], &[0.0, 4.7, -1.0, 7.0, 2.2]),
        w,
        scalar(-1.0),
        scalar(1.0),
    ];
    let out = run(
        "_contrib_quantized_embedding",
        &[("input_dim", "5"), ("output_dim", "1")],
        &t,
    );
    assert_eq!(out[0].as_slice::<i8>().unwrap(), &[10, 14, 10, 14, 12]);
}

/// Builds a fused-node subgraph: variables `vars`, then the chain of `ops`.
fn chain(vars: &[&str], ops: &[(&str, &[(&str, &str)])]) -> Graph {
    let mut g = Graph::default();
    for v in vars {
        g.arg_nodes.push(g.nodes.len());
        g.nodes.push(Node {
            op: "null".into(),
            name: v.to_string(),
            ..Default::default()
        });
    }
    for (i, (op, a)) in ops.iter().enumerate() {
        let prev = g.nodes.len() - 1;
        g.nodes.push(Node {
            op: op.to_string(),
            name: format!("node{i}"),
            attrs: attrs(a),
            inputs: vec![Entry {
                node: prev,
                index: 0,
                version: 0,
            }],
            ..Default::default()
        });
    }
    g.heads.push(Entry {
        node: g.nodes.len() - 1,
        index: 0,
        version: 0,
    });
    g
}

const CONV: (&str, &[(&str, &str)]) = ("Convolution", &[("kernel", "(1, 1)"), ("num_filter", "2")]);

fn conv_inputs() -> Vec<Tensor> {
    vec![
        i8s(&[1, 1, 2, 2], &[-128, -64, 64, 127]),
        f32s(&[2, 1, 1, 1], &[0.5, -0.25]),
        f32s(&[2], &[0.1, 0.2]),
    ]
}

#[test]
fn fused_conv_relu_calibrated_and_not() {
    let graph = chain(
        &["data", "weight", "bias"],
        &[CONV, ("Activation", &[("act_type", "relu")])],
    );
    let mut inputs = conv_inputs();
    inputs.extend([scalar(-1.0), scalar(1.0)]);
    let a = [
        ("quantized", "true"),
        ("with_act", "true"),
        ("min_calib_range", "0"),
        ("max_calib_range", "2"),
    ];
    let out = run_with("_sg_mkldnn_conv", &a, std::slice::from_ref(&graph), &inputs);
    assert_eq!(
        out[0].as_slice::<u8>().unwrap(),
        &[0, 0, 45, 76, 58, 42, 9, 0]
    );

    let a = [("quantized", "true"), ("with_act", "true")];
    let out = run_with("_sg_onednn_conv", &a, &[graph], &inputs);
    assert_eq!(
        out[0].as_slice::<i32>().unwrap(),
        &[0, 0, 11379, 19380, 14694, 10598, 2406, 0]
    );
    assert_eq!(range(&out), (-66572.125, 66572.125));
}

#[test]
fn fused_conv_folds_batch_norm() {
    let bn = ("BatchNorm", &[("eps", "0.001"), ("fix_gamma", "False")][..]);
    let graph = chain(
        &["data", "weight", "bias", "gamma", "beta", "mean", "var"],
        &[CONV, bn],
    );
    let mut inputs = conv_inputs();
    inputs.extend([
        f32s(&[2], &[2.0, 0.5]),
        f32s(&[2], &[0.1, -0.1]),
        f32s(&[2], &[0.2, 0.0]),
        f32s(&[2], &[0.25, 4.0]),
        scalar(-1.0),
        scalar(1.0),
    ]);
    let a = [
        ("quantized", "true"),
        ("with_bn", "true"),
        ("min_calib_range", "-3"),
        ("max_calib_range", "3"),
    ];
    let out = run_with("_sg_mkldnn_conv", &a, &[graph], &inputs);
    assert_eq!(
        out[0].as_slice::<i8>().unwrap(),
        &[-98, -55, 30, 71, 1, -1, -3, -5]
    );
}

fn fc_fused_inputs() -> Vec<Tensor> {
    vec![
        i8s(&[1, 4], &[10, -20, 30, 127]),
        i8s(&[2, 4], &[127, -64, 32, 0, -127, 100, 1, 50]),
        i8s(&[2], &[64, -127]),
        scalar(-2.0),
        scalar(2.0),
        scalar(-0.5),
        scalar(0.5),
        scalar(-0.1),
        scalar(0.1),
    ]
}

#[test]
fn fused_fc_output_kinds() {
    let fc = ("FullyConnected", &[("num_hidden", "2")][..]);
    let plain = chain(&["data", "weight", "bias"], &[fc]);
    let relu = chain(
        &["data", "weight", "bias"],
        &[fc, ("Activation", &[("act_type", "relu")])],
    );
    let inputs = fc_fused_inputs();
    let op = "_sg_mkldnn_fully_connected";

    let a = [
        ("quantized", "True"),
        ("with_eltwise", "True"),
        ("min_calib_range", "0"),
        ("max_calib_range", "1.5"),
    ];
    let out = run_with(op, &a, std::slice::from_ref(&relu), &inputs);
    assert_eq!(out[0].as_slice::<u8>().unwrap(), &[45, 16]);

    let a = [
        ("quantized", "True"),
        ("min_calib_range", "-1"),
        ("max_calib_range", "1.5"),
    ];
    let out = run_with(op, &a, std::slice::from_ref(&plain), &inputs);
    assert_eq!(out[0].as_slice::<i8>().unwrap(), &[23, 8]);

    let a = [("quantized", "True"), ("enable_float_output", "True")];
    let out = run_with(op, &a, std::slice::from_ref(&plain), &inputs);
    assert_eq!(out[0].f32s().unwrap(), &[0.26611307, 0.091718577]);

    let out = run_with(op, &[("quantized", "True")], &[plain], &inputs);
    assert_eq!(out[0].as_slice::<i32>().unwrap(), &[4326, 1491]);
    assert_eq!(range(&out), (-133144.25, 133144.25));
}

#[test]
fn fused_fc_leaky_relu_keeps_negatives() {
    let fc = ("FullyConnected", &[("num_hidden", "2")][..]);
    let leaky = chain(
        &["data", "weight", "bias"],
        &[
            fc,
            ("LeakyReLU", &[("act_type", "leaky"), ("slope", "0.1")]),
        ],
    );
    let mut inputs = fc_fused_inputs();
    inputs[0] = i8s(&[1, 4], &[10, -20, 30, -127]);
    let a = [
        ("quantized", "True"),
        ("with_eltwise", "True"),
        ("min_calib_range", "-1.5"),
        ("max_calib_range", "1.5"),
    ];
    let out = run_with("_sg_mkldnn_fully_connected", &a, &[leaky], &inputs);
    assert_eq!(out[0].dtype(), DType::I8);
    let values = out[0].as_slice::<i8>().unwrap();
    assert!(
        values.iter().any(|&v| v < 0),
        "negative outputs were dropped: {values:?}"
    );
}
