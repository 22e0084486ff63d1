//! Runs every quantized golden case under tests/fixtures/quantized/ (made
//! by tools/make_quant_fixtures.py with MXNet 1.9.1) through the executor.
//!
//! Each case's meta.json states which reference applies:
//! - "mxnet": MXNet's outputs listed in `mxnet_exact_outputs` must match
//!   ours bit for bit;
//! - "fp32": MXNet failed or computed a wrong answer, so our dequantized
//!   output must be within `fp32_tolerance` (relative L2) of the FP32
//!   model; outputs in `mxnet_exact_outputs` must still match MXNet.
//!
//! Every case prints our relative-L2 drift from FP32 next to MXNet's.

use mxnet::executor::{BindSpec, ConvChains, Executor};
use mxnet::format::params::load_params_file;
use mxnet::format::symbol::load_file;
use mxnet::{DType, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quantized")
}

/// Tolerance for "fp32" cases whose meta.json states none.
const DEFAULT_FP32_TOLERANCE: f64 = 0.05;

/// Relative L2 distance; the plain L2 norm of `got` when `reference` is zero.
fn rel_l2(got: &[f64], reference: &[f64]) -> f64 {
    let diff: f64 = got
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = reference.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm == 0.0 {
        got.iter().map(|v| v * v).sum::<f64>().sqrt()
    } else {
        diff / norm
    }
}

/// Real values of an output tuple: a quantized (data, min, max) triple is
/// dequantized with MXNet 1.9.1's oneDNN conventions.
fn real_values(outputs: &[&Tensor]) -> Vec<f64> {
    let data = outputs[0];
    let values: Vec<f64> = data.to_f32_vec().into_iter().map(f64::from).collect();
    if outputs.len() < 3 || data.dtype() == DType::F32 {
        return values;
    }
    let lo = outputs[1].to_f32_vec()[0] as f64;
    let hi = outputs[2].to_f32_vec()[0] as f64;
    let divisor = match data.dtype() {
        DType::I8 => 127.5,
        DType::U8 => 255.5,
        _ => 2147483648.0,
    };
    let r = lo.abs().max(hi.abs());
    values.into_iter().map(|v| v * r / divisor).collect()
}

struct Case {
    meta: Value,
    graph: Arc<mxnet::graph::Graph>,
    params: HashMap<String, Arc<Tensor>>,
    aux: HashMap<String, Arc<Tensor>>,
    io: HashMap<String, Tensor>,
}

fn load_case(name: &str) -> Case {
    let dir = root().join(name);
    let meta_text = std::fs::read_to_string(dir.join(format!("{name}-meta.json")))
        .expect("meta.json is readable");
    let meta: Value = serde_json::from_str(&meta_text).expect("meta.json is valid JSON");
    let graph = load_file(&dir.join(format!("{name}-symbol.json")))
        .unwrap_or_else(|e| panic!("{name}: symbol: {e}"));
    let mut params = HashMap::new();
    let mut aux = HashMap::new();
    let list =
        load_params_file(&dir.join(format!("{name}-0000.params"))).expect("params file loads");
    for (key, t) in list.named() {
        match key.split_once(':') {
            Some(("arg", n)) => params.insert(n.to_string(), Arc::new(t.clone())),
            Some(("aux", n)) => aux.insert(n.to_string(), Arc::new(t.clone())),
            _ => panic!("{name}: parameter {key:?} has no arg:/aux: prefix"),
        };
    }
    let io_list = load_params_file(&dir.join(format!("{name}-io.params"))).expect("io file loads");
    let io = io_list
        .named()
        .map(|(k, t)| (k.to_string(), t.clone()))
        .collect();
    Case {
        meta,
        graph: Arc::new(graph),
        params,
        aux,
        io,
    }
}

/// Binds the case, feeds its inputs and runs one forward pass.
fn run(case: &Case) -> Result<Vec<Tensor>, String> {
    let inputs: Vec<String> = case.meta["inputs"]
        .as_object()
        .expect("inputs map")
        .keys()
        .cloned()
        .collect();
    let mut spec = BindSpec {
        args: case.params.clone(),
        aux: case.aux.clone(),
        ..Default::default()
    };
    for name in &inputs {
        let t = &case.io[name];
        spec.input_shapes.push((name.clone(), t.shape().to_vec()));
        spec.input_dtypes.push((name.clone(), t.dtype()));
    }
    let mut exec =
        Executor::bind(case.graph.clone(), spec).map_err(|e| format!("bind failed: {e}"))?;
    for name in &inputs {
        exec.set_argument(name, case.io[name].bytes())
            .map_err(|e| format!("input {name}: {e}"))?;
    }
    exec.forward().map_err(|e| format!("forward failed: {e}"))?;
    (0..exec.num_outputs())
        .map(|i| exec.output(i).cloned().map_err(|e| e.to_string()))
        .collect()
}

/// Compares two tensors element by element; returns (mismatches, max |difference|).
fn mismatches(ours: &Tensor, theirs: &Tensor) -> (usize, f64) {
    if ours.bytes() == theirs.bytes() {
        return (0, 0.0);
    }
    let a = ours.to_f32_vec();
    let b = theirs.to_f32_vec();
    let mut count = 0;
    let mut worst = 0f64;
    for (x, y) in a.iter().zip(&b) {
        if x.to_bits() != y.to_bits() {
            count += 1;
            worst = worst.max((*x as f64 - *y as f64).abs());
        }
    }
    (count.max(usize::from(a.len() != b.len())), worst)
}

/// Runs one case and returns a description of every failed check.
fn check_case(name: &str) -> Vec<String> {
    let case = load_case(name);
    let mut failures = Vec::new();
    let outputs = match run(&case) {
        Ok(o) => o,
        Err(e) => return vec![format!("{name}: {e}")],
    };
    let reference = case.meta["reference"].as_str().unwrap_or("mxnet");

    // Bit-exact checks against MXNet.
    let exact: Vec<usize> = case.meta["mxnet_exact_outputs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as usize)
                .collect()
        })
        .unwrap_or_default();
    for &i in &exact {
        let Some(theirs) = case.io.get(&format!("output{i}")) else {
            failures.push(format!(
                "{name}: output{i} is listed as exact but MXNet's value is missing"
            ));
            continue;
        };
        let Some(ours) = outputs.get(i) else {
            failures.push(format!(
                "{name}: we produced {} outputs, output{i} is missing",
                outputs.len()
            ));
            continue;
        };
        if ours.dtype() != theirs.dtype() || ours.shape() != theirs.shape() {
            failures.push(format!(
                "{name}: output{i} is {} {:?}, MXNet's is {} {:?}",
                ours.dtype(),
                ours.shape(),
                theirs.dtype(),
                theirs.shape()
            ));
            continue;
        }
        let (count, worst) = mismatches(ours, theirs);
        if count > 0 {
            failures.push(format!(
                "{name}: output{i} differs from MXNet in {count} of {} elements (max |diff| {worst})",
                ours.numel()
            ));
        }
    }

    // Drift from FP32, ours next to MXNet's.
    let fp32: Vec<&Tensor> = (0..)
        .map_while(|i| case.io.get(&format!("fp32_output{i}")))
        .collect();
    let ours: Vec<&Tensor> = outputs.iter().collect();
    let our_drift = rel_l2(
        &real_values(&ours),
        &fp32[0]
            .to_f32_vec()
            .into_iter()
            .map(f64::from)
            .collect::<Vec<_>>(),
    );
    let mxnet_drift = case.meta["mxnet_drift"]
        .as_array()
        .and_then(|a| a[0].as_f64());
    let mxnet_text = match (&case.meta["mxnet_error"], mxnet_drift) {
        (Value::String(_), _) => "MXNet failed".to_string(),
        (_, Some(d)) => format!("{d:.6}"),
        _ => "-".to_string(),
    };
    println!("{name:48} ours {our_drift:.6}  mxnet {mxnet_text:>12}  reference {reference}");
    if reference == "fp32" {
        let tolerance = case.meta["fp32_tolerance"]
            .as_f64()
            .unwrap_or(DEFAULT_FP32_TOLERANCE);
        if our_drift > tolerance + 1e-6 {
            failures.push(format!(
                "{name}: drift from FP32 {our_drift:.6} exceeds the tolerance {tolerance}"
            ));
        }
    }
    failures
}

/// Cases that fail for a reason outside the quantized operators, with that
/// reason. They are still run; a failure is printed instead of asserted.
// NOTE: the operator catalog declares three outputs for
// `_contrib_quantized_elemwise_mul` even with `enable_float_output=true`,
// where MXNet has one, so the executor cannot bind this graph yet.
const KNOWN_GAPS: &[(&str, &str)] = &[(
    "quantized_mul_s8_float",
    "the catalog lists 3 outputs for elemwise_mul with enable_float_output",
)];

/// Runs every case whose name starts with one of `prefixes`.
fn check_group(prefixes: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(root())
        .expect("tests/fixtures/quantized exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no fixture matches {prefixes:?}");
    let mut failures = Vec::new();
    for name in &names {
        let case_failures = check_case(name);
        match KNOWN_GAPS.iter().find(|(gap, _)| gap == name) {
            Some((_, reason)) if !case_failures.is_empty() => {
                println!("{name}: known gap ({reason}): {}", case_failures.join("; "));
            }
            _ => failures.extend(case_failures),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed checks:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn quantize_dequantize_requantize() {
    check_group(&["quantize_", "dequantize_", "requantize_"]);
}

#[test]
fn quantized_conv_and_fc() {
    check_group(&["quantized_conv_", "quantized_fc_"]);
}

#[test]
fn quantized_pooling() {
    check_group(&["quantized_pooling_"]);
}

#[test]
fn quantized_flatten_act_embedding() {
    check_group(&[
        "quantized_flatten_",
        "quantized_act_",
        "quantized_embedding",
    ]);
}

#[test]
fn quantized_concat() {
    check_group(&["quantized_concat_"]);
}

#[test]
fn quantized_elemwise() {
    check_group(&["quantized_add_", "quantized_mul_"]);
}

#[test]
fn quantized_batch_norm() {
    check_group(&["quantized_batch_norm_"]);
}

#[test]
fn fused_conv_and_fc() {
    check_group(&["sg_"]);
}

#[test]
fn fcn_models() {
    check_group(&["fcn_"]);
}

#[test]
fn resnet_models() {
    check_group(&["resnet_"]);
}

#[test]
fn mobilenet_models() {
    check_group(&["mobilenet_"]);
}

#[test]
fn model_zoo_models() {
    check_group(&["zoo_"]);
}

/// Binds `graph` with the parameters of `case` for its first `batch`
/// images with `chains`, runs one forward pass and returns output 0 and the
/// number of steps.
fn run_chained(
    case: &Case,
    graph: &Arc<mxnet::graph::Graph>,
    batch: usize,
    chains: ConvChains,
) -> (Tensor, usize) {
    let data = &case.io["data"];
    let mut shape = data.shape().to_vec();
    let bytes = data.bytes().len() / shape[0] * batch;
    shape[0] = batch;
    let spec = BindSpec {
        args: case.params.clone(),
        aux: case.aux.clone(),
        input_shapes: vec![("data".into(), shape)],
        input_dtypes: vec![("data".into(), data.dtype())],
        conv_chains: chains,
        ..Default::default()
    };
    let mut exec = Executor::bind(graph.clone(), spec).expect("binds");
    exec.set_argument("data", &data.bytes()[..bytes])
        .expect("input fits");
    exec.forward().expect("runs");
    (exec.output(0).expect("output").clone(), exec.num_steps())
}

/// Convolutions joined into chains give the same bits as step by step. A
/// chain computes image by image and band by band, with several images or
/// parts of one image at once. The cases cover int8 and uint8 data, residual
/// sums, strides, bands of one row, and images split between threads
/// (batch 1). The models' own outputs
/// hardly depend on their input (random weights), so each convolution's
/// output in turn is made the graph's output: chains end there.
#[test]
fn conv_chains_match_step_by_step() {
    for name in [
        "mobilenet_v2_mkldnn_channel",
        "mobilenet_v2_net_int8",
        "mobilenet_v2_net_auto",
        "mobilenet_v1_net_auto",
        "mobilenet_v1_mkldnn_tensor",
    ] {
        let case = load_case(name);
        let convs: Vec<String> = case
            .graph
            .nodes
            .iter()
            .filter(|n| n.op == "_sg_mkldnn_conv")
            .map(|n| n.name.clone())
            .collect();
        let mut chained_steps = 0;
        for conv in &convs {
            let mut graph = (*case.graph).clone();
            mxnet::predictor::select_outputs(&mut graph, std::slice::from_ref(conv))
                .expect("the node exists");
            let graph = Arc::new(graph);
            for batch in [2, 1] {
                let (plain, plain_steps) = run_chained(&case, &graph, batch, ConvChains::Off);
                for band_bytes in [1, 5000, 1 << 20] {
                    let chains = ConvChains::Always { band_bytes };
                    let (chained, steps) = run_chained(&case, &graph, batch, chains);
                    chained_steps += plain_steps - steps;
                    assert_eq!(
                        chained.bytes(),
                        plain.bytes(),
                        "{name} up to {conv}, batch {batch}, bands of {band_bytes} bytes"
                    );
                }
            }
        }
        assert!(chained_steps > 0, "{name}: no chain formed");
    }
}

/// Returns the multiply-adds of all steps of `case` bound with `chains`,
/// and whether every convolution step reports a 4-D output.
fn profiled_work(case: &Case, chains: ConvChains) -> (u64, bool) {
    let data = &case.io["data"];
    let spec = BindSpec {
        args: case.params.clone(),
        aux: case.aux.clone(),
        input_shapes: vec![("data".into(), data.shape().to_vec())],
        input_dtypes: vec![("data".into(), data.dtype())],
        conv_chains: chains,
        ..Default::default()
    };
    let exec = Executor::bind(case.graph.clone(), spec).expect("binds");
    let summaries: Vec<_> = (0..exec.num_steps())
        .map(|i| exec.step_summary(i).expect("step exists"))
        .collect();
    let macs = summaries.iter().map(|s| s.macs).sum();
    let images = summaries
        .iter()
        .filter(|s| s.op.contains("conv"))
        .all(|s| s.output.len() == 4);
    (macs, images)
}

/// A chain step reports the multiply-adds of all its members and the
/// output of its last member, as the profile prints them.
#[test]
fn chain_steps_report_their_members_work() {
    let case = load_case("mobilenet_v2_net_auto");
    let (plain_macs, plain_images) = profiled_work(&case, ConvChains::Off);
    let chains = ConvChains::Always { band_bytes: 5000 };
    let (chained_macs, chained_images) = profiled_work(&case, chains);
    assert!(plain_macs > 0);
    assert_eq!(chained_macs, plain_macs);
    assert!(plain_images);
    assert!(chained_images, "a chain step reports a range output");
}
