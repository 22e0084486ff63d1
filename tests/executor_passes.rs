//! Checks of the executor's bind-time passes (channels-last quantized
//! entries, FP32 steps absorbed into convolutions) and of the int8
//! convolution tiers: each compares the optimized path with a reference.

use mxnet::kernels::int8::conv::{conv, conv_reference, ConvGeometry, PackedConvWeights};
use mxnet::kernels::int8::elem::{OutputElem, QuantElem, QuantSlice};
use mxnet::kernels::int8::output::{Activation, OutputStage, PerChannel};

/// A small linear congruential generator, so every case is reproducible.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    fn below(&mut self, n: usize) -> usize {
        self.next() as usize % n.max(1)
    }
    fn unit(&mut self) -> f32 {
        self.next() as f32 / (1u64 << 31) as f32
    }
}

fn random_geometry(rng: &mut Lcg) -> ConvGeometry {
    let dims = 1 + rng.below(3);
    let big = rng.below(4) == 0;
    let (groups, in_per_group, out_per_group) = match rng.below(6) {
        // Depthwise, which has its own AVX2 kernel.
        0 => (1 + rng.below(45), 1, 1),
        1 => (2 + rng.below(3), 1 + rng.below(9), 1 + rng.below(9)),
        _ if big => (1, 1 + rng.below(70), 1 + rng.below(70)),
        _ => (1, 1 + rng.below(19), 1 + rng.below(21)),
    };
    let mut g = ConvGeometry {
        batch: 1 + rng.below(3),
        in_channels: groups * in_per_group,
        out_channels: groups * out_per_group,
        groups,
        input: [1; 3],
        output: [1; 3],
        kernel: [1; 3],
        stride: [1; 3],
        dilate: [1; 3],
        pad: [0; 3],
    };
    for i in (3 - dims)..3 {
        let size = 1 + rng.below(if dims == 3 {
            6
        } else if big {
            24
        } else {
            11
        });
        g.kernel[i] = 1 + rng.below(3.min(size));
        g.stride[i] = 1 + rng.below(3);
        g.dilate[i] = 1 + rng.below(2);
        g.pad[i] = rng.below(g.kernel[i] + 1);
        let reach = (g.kernel[i] - 1) * g.dilate[i] + 1;
        g.input[i] = size.max(1);
        let padded = g.input[i] + 2 * g.pad[i];
        if padded < reach {
            g.input[i] = reach;
        }
        g.output[i] = (g.input[i] + 2 * g.pad[i] - reach) / g.stride[i] + 1;
    }
    g
}

fn random_stage(rng: &mut Lcg, channels: usize, residual: bool) -> OutputStage {
    let per = |rng: &mut Lcg, lo: f32, hi: f32| match rng.below(3) {
        0 => PerChannel::none(),
        1 => PerChannel::uniform(lo + (hi - lo) * rng.unit()),
        _ => PerChannel((0..channels).map(|_| lo + (hi - lo) * rng.unit()).collect()),
    };
    let act = |rng: &mut Lcg| match rng.below(5) {
        0 | 1 => None,
        2 => Some(Activation::Relu),
        3 => Some(Activation::Clip {
            min: 0.0,
            max: 60.0,
        }),
        _ => Some(Activation::Leaky { slope: 0.1 }),
    };
    OutputStage {
        bias: per(rng, -500.0, 500.0),
        scale: per(rng, 0.0005, 0.05),
        activation: act(rng),
        act_scale: (rng.below(4) == 0).then(|| 0.5 + rng.unit()),
        sum_scale: residual.then(|| 0.25 + rng.unit()),
        post_sum_activation: if residual && rng.below(2) == 0 {
            Some(Activation::Relu)
        } else {
            None
        },
    }
}

fn run_case<X: QuantElem, O: OutputElem + Default + PartialEq + std::fmt::Debug + Copy>(
    rng: &mut Lcg,
    case: usize,
    to_x: fn(u32) -> X,
) {
    let g = random_geometry(rng);
    let input: Vec<X> = (0..g.input_len()).map(|_| to_x(rng.next())).collect();
    let taps: usize = g.kernel.iter().product();
    let icg = g.in_channels_per_group();
    let weights: Vec<i8> = (0..g.out_channels * icg * taps)
        .map(|_| rng.next() as u8 as i8)
        .collect();
    let packed = PackedConvWeights::pack(&weights, g.out_channels, icg, g.kernel);
    let with_residual = rng.below(3) == 0;
    let residual: Vec<i8> = (0..g.output_len())
        .map(|_| rng.next() as u8 as i8)
        .collect();
    let stage = if rng.below(5) == 0 {
        OutputStage::default()
    } else {
        random_stage(rng, g.out_channels, with_residual)
    };
    let res = stage.sum_scale.map(|_| QuantSlice::I8(&residual));
    let mut fast = vec![O::default(); g.output_len()];
    let mut reference = vec![O::default(); g.output_len()];
    conv(&g, &input, &packed, &stage, res, &mut fast);
    conv_reference(&g, &input, &packed, &stage, res, &mut reference);
    if let Some(i) = (0..fast.len()).find(|&i| fast[i] != reference[i]) {
        panic!(
            "case {case}: element {i} differs: fast {:?}, reference {:?}\ngeometry {g:?}\nstage {stage:?}",
            fast[i], reference[i]
        );
    }
}

#[test]
fn int8_conv_tiers_match_reference() {
    assert_eq!(
        mxnet::kernels::int8::isa::selected(),
        mxnet::kernels::int8::isa::detected(),
        "the probe must run the best tier"
    );
    let mut rng = Lcg(0x5eed);
    for case in 0..1500 {
        match case % 8 {
            0 => run_case::<i8, i8>(&mut rng, case, |v| v as u8 as i8),
            1 => run_case::<u8, i8>(&mut rng, case, |v| v as u8),
            2 => run_case::<i8, u8>(&mut rng, case, |v| v as u8 as i8),
            3 => run_case::<u8, u8>(&mut rng, case, |v| v as u8),
            4 => run_case::<i8, i32>(&mut rng, case, |v| v as u8 as i8),
            5 => run_case::<u8, f32>(&mut rng, case, |v| v as u8),
            6 => run_case::<i8, f32>(&mut rng, case, |v| v as u8 as i8),
            _ => run_case::<u8, i32>(&mut rng, case, |v| v as u8),
        }
    }
}

// ---------------------------------------------------------------------
// Graph-level probes.

use mxnet::executor::{BindSpec, Executor};
use mxnet::format::symbol::{load_file, load_json};
use mxnet::graph::{Entry, Graph};
use mxnet::predictor::split_params;
use mxnet::{DType, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Outputs of one forward pass, and every monitored (name, tensor).
struct Run {
    outputs: Vec<Tensor>,
    monitored: Vec<(String, Tensor)>,
    steps: usize,
}

fn bind(graph: Graph, spec: &BindSpec) -> Executor {
    Executor::bind(Arc::new(graph), spec.clone()).expect("bind")
}

fn run_graph(graph: Graph, spec: &BindSpec, inputs: &[(&str, &Tensor)]) -> Run {
    let mut exec = bind(graph, spec);
    for (name, t) in inputs {
        exec.set_argument(name, t.bytes()).expect("set input");
    }
    let seen = Mutex::new(Vec::new());
    let mut monitor =
        |name: &str, t: &Tensor| seen.lock().unwrap().push((name.to_string(), t.clone()));
    exec.forward_monitored(Some(&mut monitor), false)
        .expect("forward");
    let outputs = (0..exec.num_outputs())
        .map(|i| exec.output(i).unwrap().clone())
        .collect();
    Run {
        outputs,
        monitored: seen.into_inner().unwrap(),
        steps: exec.num_steps(),
    }
}

/// Copies `graph` with every visible operator output added as a head after
/// the original heads, so no entry is absorbed or stored channels-last.
fn all_heads(graph: &Graph) -> (Graph, Vec<String>) {
    let mut g = graph.clone();
    let mut names = Vec::new();
    for id in 0..g.nodes.len() {
        if g.nodes[id].is_variable() {
            continue;
        }
        for index in 0..graph.num_visible_outputs(id) {
            let e = Entry {
                node: id,
                index,
                version: 0,
            };
            g.heads.push(e);
            names.push(graph.entry_name(e));
        }
    }
    (g, names)
}

/// Describes the first difference between two tensors, or `None`.
fn differ(a: &Tensor, b: &Tensor, rtol: f32) -> Option<String> {
    if a.shape() != b.shape() || a.dtype() != b.dtype() {
        return Some(format!(
            "{:?} {:?} vs {:?} {:?}",
            a.dtype(),
            a.shape(),
            b.dtype(),
            b.shape()
        ));
    }
    if a.dtype() != DType::F32 {
        let i = a.bytes().iter().zip(b.bytes()).position(|(x, y)| x != y)?;
        return Some(format!("byte {i}: {} vs {}", a.bytes()[i], b.bytes()[i]));
    }
    let (x, y) = (a.to_f32_vec(), b.to_f32_vec());
    let scale = y.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        let bad = if rtol == 0.0 {
            p.to_bits() != q.to_bits()
        } else {
            (p - q).abs() > rtol * scale
        };
        if bad {
            return Some(format!("element {i}: {p} vs {q}"));
        }
    }
    None
}

fn fixture(case: &str) -> (Graph, BindSpec) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/quantized")
        .join(case);
    let graph = load_file(&dir.join(format!("{case}-symbol.json"))).unwrap();
    let bytes = std::fs::read(dir.join(format!("{case}-0000.params"))).unwrap();
    let (args, aux) = split_params(&bytes).unwrap();
    let spec = BindSpec {
        args,
        aux,
        ..Default::default()
    };
    (graph, spec)
}

fn pseudo_input(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Lcg(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.unit() * 4.0 - 2.0).collect();
    Tensor::from_f32(shape, &v).unwrap()
}

/// Monitored entries of the optimized graph against the same entries as
/// heads of the unoptimized one, for batch sizes 1 to 3.
fn check_monitor(case: &str) -> Vec<String> {
    let (graph, base) = fixture(case);
    let (reference_graph, names) = all_heads(&graph);
    let mut problems = Vec::new();
    for batch in 1..=3 {
        let mut spec = base.clone();
        let shape = vec![batch, 3, 32, 32];
        spec.input_shapes.push(("data".into(), shape.clone()));
        let x = pseudo_input(&shape, 7 + batch as u64);
        let fast = run_graph(graph.clone(), &spec, &[("data", &x)]);
        let slow = run_graph(reference_graph.clone(), &spec, &[("data", &x)]);
        let expected: HashMap<&str, &Tensor> = names
            .iter()
            .map(|n| n.as_str())
            .zip(&slow.outputs[graph.heads.len()..])
            .collect();
        if let Some(d) = differ(&fast.outputs[0], &slow.outputs[0], 1e-4) {
            problems.push(format!("{case} batch {batch}: output 0: {d}"));
        }
        let mut seen = std::collections::HashSet::new();
        for (name, t) in &fast.monitored {
            seen.insert(name.clone());
            match expected.get(name.as_str()) {
                // Hidden outputs (BatchNorm statistics) are not heads of the reference.
                None => {}
                Some(e) => {
                    if let Some(d) = differ(t, e, 1e-4) {
                        problems.push(format!("{case} batch {batch}: monitor {name}: {d}"));
                    }
                }
            }
        }
        for n in &names {
            if !seen.contains(n) {
                problems.push(format!("{case} batch {batch}: monitor never reported {n}"));
            }
        }
        eprintln!(
            "{case} batch {batch}: {} steps vs {} unfused",
            fast.steps, slow.steps
        );
    }
    problems
}

#[test]
fn quantized_monitor_matches_channels_first() {
    let mut problems = Vec::new();
    for case in [
        "resnet_v1_net_auto",
        "mobilenet_v2_net_auto",
        "mobilenet_v1_net_auto",
        "fcn_default_auto",
        "fcn_mkldnn_naive_int8",
        "mobilenet_v2_mkldnn_channel",
    ] {
        problems.extend(check_monitor(case));
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------
// FP32 epilogue fusion.

/// Builds a graph from node JSON objects and head entries `[node, index]`.
fn graph_from(nodes: &[String], heads: &[(usize, usize)]) -> Graph {
    let args: Vec<String> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.contains(r#""op": "null""#))
        .map(|(i, _)| i.to_string())
        .collect();
    let heads: Vec<String> = heads
        .iter()
        .map(|(n, i)| format!("[{n}, {i}, 0]"))
        .collect();
    let json = format!(
        r#"{{"nodes": [{}], "arg_nodes": [{}], "heads": [{}]}}"#,
        nodes.join(",\n"),
        args.join(", "),
        heads.join(", ")
    );
    load_json(&json).unwrap()
}

fn var(name: &str) -> String {
    format!(r#"{{"op": "null", "name": "{name}", "inputs": []}}"#)
}

fn op(kind: &str, name: &str, attrs: &str, inputs: &[usize]) -> String {
    let inputs: Vec<String> = inputs.iter().map(|i| format!("[{i}, 0, 0]")).collect();
    format!(
        r#"{{"op": "{kind}", "name": "{name}", "attrs": {{{attrs}}}, "inputs": [{}]}}"#,
        inputs.join(", ")
    )
}

fn param(shape: &[usize], seed: u64, positive: bool) -> Arc<Tensor> {
    let mut rng = Lcg(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            if positive {
                0.2 + rng.unit()
            } else {
                rng.unit() * 2.0 - 1.0
            }
        })
        .collect();
    Arc::new(Tensor::from_f32(shape, &v).unwrap())
}

/// Runs `graph` and the same graph with every operator output as a head.
/// Returns the differences of the original heads and of the monitored
/// entries, and the step counts of both.
fn compare_fp32(graph: &Graph, spec: &BindSpec, data: &Tensor) -> (Vec<String>, usize, usize) {
    let (reference, names) = all_heads(graph);
    let fast = run_graph(graph.clone(), spec, &[("data", data)]);
    let slow = run_graph(reference, spec, &[("data", data)]);
    let mut problems = Vec::new();
    for i in 0..graph.heads.len() {
        if let Some(d) = differ(&fast.outputs[i], &slow.outputs[i], 1e-5) {
            problems.push(format!("output {i}: {d}"));
        }
    }
    let expected: HashMap<&str, &Tensor> = names
        .iter()
        .map(|n| n.as_str())
        .zip(&slow.outputs[graph.heads.len()..])
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (name, t) in &fast.monitored {
        seen.insert(name.as_str());
        if let Some(e) = expected.get(name.as_str()) {
            if let Some(d) = differ(t, e, 1e-5) {
                problems.push(format!("monitor {name}: {d}"));
            }
        }
    }
    for n in &names {
        if !seen.contains(n.as_str()) {
            problems.push(format!("monitor never reported {n}"));
        }
    }
    (problems, fast.steps, slow.steps)
}

/// data → Convolution → BatchNorm (with `bn_attrs`) → `tail` nodes.
#[allow(clippy::too_many_arguments)]
fn conv_bn_case(
    conv_kind: &str,
    conv_attrs: &str,
    filters: usize,
    weight_shape: &[usize],
    data_shape: &[usize],
    bn_kind: &str,
    bn_attrs: &str,
    bn_channels: usize,
    tail: &[String],
    heads: &[(usize, usize)],
) -> (Vec<String>, usize, usize) {
    let mut nodes = vec![
        var("data"),
        var("w"),
        var("b"),
        op(conv_kind, "conv", conv_attrs, &[0, 1, 2]),
        var("g"),
        var("beta"),
        var("mean"),
        var("var"),
        op(bn_kind, "bn", bn_attrs, &[3, 4, 5, 6, 7]),
    ];
    nodes.extend(tail.iter().cloned());
    let no_bias = conv_attrs.contains(r#""no_bias": "True""#);
    if no_bias {
        // Keep node numbering: the bias variable stays but is not read.
        nodes[3] = op(conv_kind, "conv", conv_attrs, &[0, 1]);
    }
    let graph = graph_from(&nodes, heads);
    let mut spec = BindSpec::default();
    spec.input_shapes.push(("data".into(), data_shape.to_vec()));
    spec.args.insert("w".into(), param(weight_shape, 1, false));
    if !no_bias {
        spec.args.insert("b".into(), param(&[filters], 2, false));
    }
    spec.args
        .insert("g".into(), param(&[bn_channels], 3, false));
    spec.args
        .insert("beta".into(), param(&[bn_channels], 4, false));
    spec.aux
        .insert("mean".into(), param(&[bn_channels], 5, false));
    spec.aux
        .insert("var".into(), param(&[bn_channels], 6, true));
    let data = pseudo_input(data_shape, 9);
    compare_fp32(&graph, &spec, &data)
}

const CONV2D: &str = r#""kernel": "(3, 3)", "num_filter": "4", "pad": "(1, 1)""#;
const BN: &str = r#""fix_gamma": "False", "eps": "0.001""#;

#[test]
fn fp32_conv_batch_norm_cases() {
    let relu = op("Activation", "relu", r#""act_type": "relu""#, &[8]);
    let clip_after_relu = op("clip", "clip", r#""a_min": "-0.1", "a_max": "0.3""#, &[9]);
    let bn2 = op("BatchNorm", "bn2", BN, &[3, 4, 5, 6, 7]);
    let w4 = [4, 3, 3, 3];
    let d4 = [2, 3, 6, 5];
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, (Vec<String>, usize, usize))> = vec![
        (
            "conv-bn-relu",
            conv_bn_case(
                "Convolution",
                CONV2D,
                4,
                &w4,
                &d4,
                "BatchNorm",
                BN,
                4,
                std::slice::from_ref(&relu),
                &[(9, 0)],
            ),
        ),
        (
            "conv-bn-relu-clip",
            conv_bn_case(
                "Convolution",
                CONV2D,
                4,
                &w4,
                &d4,
                "BatchNorm",
                BN,
                4,
                &[relu.clone(), clip_after_relu],
                &[(10, 0)],
            ),
        ),
        (
            "bn head and relu head",
            conv_bn_case(
                "Convolution",
                CONV2D,
                4,
                &w4,
                &d4,
                "BatchNorm",
                BN,
                4,
                std::slice::from_ref(&relu),
                &[(9, 0), (8, 0)],
            ),
        ),
        (
            "conv head and bn",
            conv_bn_case(
                "Convolution",
                CONV2D,
                4,
                &w4,
                &d4,
                "BatchNorm",
                BN,
                4,
                &[],
                &[(8, 0), (3, 0)],
            ),
        ),
        (
            "conv feeds two BN",
            conv_bn_case(
                "Convolution",
                CONV2D,
                4,
                &w4,
                &d4,
                "BatchNorm",
                BN,
                4,
                &[bn2],
                &[(8, 0), (9, 0)],
            ),
        ),
        (
            "output_mean_var all heads",
            conv_bn_case(
                "Convolution",
                CONV2D,
                4,
                &w4,
                &d4,
                "BatchNorm",
                r#""fix_gamma": "False", "output_mean_var": "True""#,
                4,
                &[],
                &[(8, 0), (8, 1), (8, 2)],
            ),
        ),
        (
            "output_mean_var head 0",
            conv_bn_case(
                "Convolution",
                CONV2D,
                4,
                &w4,
                &d4,
                "BatchNorm",
                r#""fix_gamma": "False", "output_mean_var": "True""#,
                4,
                &[],
                &[(8, 0)],
            ),
        ),
        (
            "bn axis 3",
            conv_bn_case(
                "Convolution",
                CONV2D,
                4,
                &w4,
                &d4,
                "BatchNorm",
                r#""fix_gamma": "False", "axis": "3""#,
                5,
                &[],
                &[(8, 0)],
            ),
        ),
        (
            "bn axis -3",
            conv_bn_case(
                "Convolution",
                CONV2D,
                4,
                &w4,
                &d4,
                "BatchNorm",
                r#""fix_gamma": "False", "axis": "-3""#,
                4,
                &[],
                &[(8, 0)],
            ),
        ),
        (
            "fix_gamma no_bias",
            conv_bn_case(
                "Convolution",
                r#""kernel": "(3, 3)", "num_filter": "4", "no_bias": "True""#,
                4,
                &w4,
                &d4,
                "BatchNorm",
                r#""fix_gamma": "True""#,
                4,
                &[],
                &[(8, 0)],
            ),
        ),
        (
            "BatchNormWithReLU",
            conv_bn_case(
                "Convolution",
                CONV2D,
                4,
                &w4,
                &d4,
                "_contrib_BatchNormWithReLU",
                BN,
                4,
                &[],
                &[(8, 0)],
            ),
        ),
        (
            "deconv-bn",
            conv_bn_case(
                "Deconvolution",
                r#""kernel": "(3, 3)", "num_filter": "4", "stride": "(2, 2)", "no_bias": "False""#,
                4,
                &[3, 4, 3, 3],
                &d4,
                "BatchNorm",
                BN,
                4,
                &[],
                &[(8, 0)],
            ),
        ),
        (
            "grouped deconv-bn",
            conv_bn_case(
                "Deconvolution",
                r#""kernel": "(2, 2)", "num_filter": "6", "num_group": "3", "no_bias": "False""#,
                6,
                &[3, 2, 2, 2],
                &d4,
                "BatchNorm",
                BN,
                6,
                &[],
                &[(8, 0)],
            ),
        ),
        (
            "1-D conv-bn",
            conv_bn_case(
                "Convolution",
                r#""kernel": "(3,)", "num_filter": "5", "pad": "(1,)""#,
                5,
                &[5, 3, 3],
                &[3, 3, 7],
                "BatchNorm",
                BN,
                5,
                std::slice::from_ref(&relu),
                &[(9, 0)],
            ),
        ),
        (
            "3-D conv-bn",
            conv_bn_case(
                "Convolution",
                r#""kernel": "(2, 2, 2)", "num_filter": "5""#,
                5,
                &[5, 3, 2, 2, 2],
                &[1, 3, 3, 4, 3],
                "BatchNorm",
                BN,
                5,
                std::slice::from_ref(&relu),
                &[(9, 0)],
            ),
        ),
        (
            "grouped conv-bn",
            conv_bn_case(
                "Convolution",
                r#""kernel": "(3, 3)", "num_filter": "6", "num_group": "3", "pad": "(1, 1)""#,
                6,
                &[6, 1, 3, 3],
                &[1, 3, 5, 5],
                "BatchNorm",
                BN,
                6,
                std::slice::from_ref(&relu),
                &[(9, 0)],
            ),
        ),
        (
            "depthwise conv-bn",
            conv_bn_case(
                "Convolution",
                r#""kernel": "(3, 3)", "num_filter": "3", "num_group": "3", "stride": "(2, 2)", "pad": "(1, 1)""#,
                3,
                &[3, 1, 3, 3],
                &[2, 3, 9, 7],
                "BatchNorm",
                BN,
                3,
                std::slice::from_ref(&relu),
                &[(9, 0)],
            ),
        ),
    ];
    let mut all = Vec::new();
    for (name, (problems, fast, slow)) in cases {
        eprintln!("{name}: {fast} steps, {slow} unfused");
        for p in problems {
            all.push(format!("{name}: {p}"));
        }
    }
    assert!(
        all.is_empty(),
        "{} problems:\n{}",
        all.len(),
        all.join("\n")
    );
}

// ---------------------------------------------------------------------
// Tier comparison: run with PROBE_DUMP=FILE under two MXNET_INT8_ISA
// values and compare the files byte for byte.

#[test]
fn set_input_on_key_also_in_params() {
    use mxnet::format::params::save_params;
    use mxnet::predictor::{Predictor, PredictorConfig};
    let nodes = vec![
        var("data"),
        var("w"),
        op(
            "FullyConnected",
            "fc",
            r#""num_hidden": "2", "no_bias": "True""#,
            &[0, 1],
        ),
    ];
    let graph = graph_from(&nodes, &[(2, 0)]);
    let json = mxnet::format::symbol::save_json(&graph);
    let w = param(&[2, 3], 1, false);
    let saved_data = Tensor::from_f32(&[1, 3], &[0.0; 3]).unwrap();
    let params = save_params(&[&w, &saved_data], &["arg:w", "arg:data"]).unwrap();
    let config = PredictorConfig {
        symbol_json: &json,
        params: &params,
        input_shapes: vec![("data".into(), vec![1, 3])],
        ..Default::default()
    };
    let mut p = Predictor::create(&config).expect("create");
    let x = Tensor::from_f32(&[1, 3], &[1.0, 2.0, 3.0]).unwrap();
    p.executor
        .set_argument("data", x.bytes())
        .expect("set the input key");
}

/// Steps run one by one after a reshape give the same outputs as a forward pass.
#[test]
fn partial_forward_after_reshape() {
    for case in ["resnet_v1_net_auto", "mobilenet_v2_net_auto"] {
        let (graph, mut spec) = fixture(case);
        spec.input_shapes.push(("data".into(), vec![1, 3, 32, 32]));
        let exec = bind(graph, &spec);
        let mut resized = exec
            .reshape(vec![("data".into(), vec![3, 3, 32, 32])])
            .unwrap();
        let x = pseudo_input(&[3, 3, 32, 32], 5);
        resized.set_argument("data", x.bytes()).unwrap();
        resized.forward().unwrap();
        let whole = resized.output(0).unwrap().clone();
        for round in 0..2 {
            for i in 0..resized.num_steps() {
                resized.forward_step(i).unwrap();
            }
            let stepped = resized.output(0).unwrap();
            assert!(
                differ(stepped, &whole, 0.0).is_none(),
                "{case} round {round}"
            );
        }
    }
}

/// A convolution (weight `w`, bias `b`) absorbing a BatchNorm, bound with
/// parameters, as the predictor binds it.
fn conv_bn_executor() -> Executor {
    let nodes = vec![
        var("data"),
        var("w"),
        var("b"),
        op(
            "Convolution",
            "conv",
            r#""kernel": "(1, 1)", "num_filter": "2""#,
            &[0, 1, 2],
        ),
        var("g"),
        var("beta"),
        var("mean"),
        var("var"),
        op(
            "BatchNorm",
            "bn",
            r#""fix_gamma": "False""#,
            &[3, 4, 5, 6, 7],
        ),
    ];
    let graph = graph_from(&nodes, &[(8, 0)]);
    let mut spec = BindSpec::default();
    spec.input_shapes.push(("data".into(), vec![1, 3, 2, 2]));
    spec.args.insert("w".into(), param(&[2, 3, 1, 1], 1, false));
    spec.args.insert("b".into(), param(&[2], 2, false));
    spec.args.insert("g".into(), param(&[2], 3, true));
    spec.args.insert("beta".into(), param(&[2], 4, false));
    spec.aux.insert("mean".into(), param(&[2], 5, false));
    spec.aux.insert("var".into(), param(&[2], 6, true));
    bind(graph, &spec)
}

#[test]
fn set_parameter_rebinds_with_value() {
    let mut exec = conv_bn_executor();
    assert_eq!(exec.num_steps(), 1, "BatchNorm is absorbed");
    let data = pseudo_input(&[1, 3, 2, 2], 7);
    exec.set_argument("data", data.bytes()).unwrap();
    exec.forward().unwrap();
    let before = exec.output(0).unwrap().to_f32_vec();

    // With zero weights every pixel of a channel gets the same value.
    let zeros = Tensor::from_f32(&[2, 3, 1, 1], &[0.0; 6]).unwrap();
    exec.set_argument("w", zeros.bytes()).unwrap();
    exec.forward().unwrap();
    let after = exec.output(0).unwrap().to_f32_vec();
    assert_ne!(before, after);
    assert!(after[..4].iter().all(|&v| v == after[0]), "{after:?}");
    assert!(after[4..].iter().all(|&v| v == after[4]), "{after:?}");
    assert_eq!(exec.num_steps(), 1, "the new binding absorbs BatchNorm too");
}

#[test]
fn set_parameter_wrong_size_rejected() {
    let mut exec = conv_bn_executor();
    let err = exec.set_argument("w", &[0u8; 8]).unwrap_err().to_string();
    assert!(
        err.contains("memory size does not match for input \"w\": 8 bytes given, 24 expected"),
        "{err}"
    );
}

/// Forward passes of separate executors on several threads at once (as
/// with predictors from `MXPredCreateMultiThread`) finish, and each gives
/// the output of a pass run alone. One pass at a time keeps the pool's
/// workers polling; the others must neither wait on it forever nor change
/// its results.
#[test]
fn concurrent_passes_match_single_pass() {
    use std::sync::mpsc;
    use std::time::Duration;

    let (graph, mut spec) = fixture("resnet_v1_net_auto");
    spec.input_shapes.push(("data".into(), vec![2, 3, 32, 32]));
    let x = pseudo_input(&[2, 3, 32, 32], 11);
    let mut alone = bind(graph.clone(), &spec);
    alone.set_argument("data", x.bytes()).unwrap();
    alone.forward().unwrap();
    let want = alone.output(0).unwrap().clone();

    let (done, finished) = mpsc::channel();
    for t in 0..4 {
        let (graph, spec, x, want, done) = (
            graph.clone(),
            spec.clone(),
            x.clone(),
            want.clone(),
            done.clone(),
        );
        std::thread::spawn(move || {
            let mut exec = bind(graph, &spec);
            exec.set_argument("data", x.bytes()).unwrap();
            for round in 0..20 {
                exec.forward().unwrap();
                let got = exec.output(0).unwrap();
                assert!(
                    differ(got, &want, 0.0).is_none(),
                    "thread {t} round {round}"
                );
            }
            done.send(t).unwrap();
        });
    }
    for _ in 0..4 {
        finished
            .recv_timeout(Duration::from_secs(120))
            .expect("a thread failed or its passes did not finish within 120 s");
    }
}
