//! Every FP32 model under tests/fixtures/models/ (exported by MXNet 1.9.1,
//! see tools/make_fixtures.py) runs through the predictor exactly as
//! `MXPredCreate` builds it, and matches MXNet's outputs within
//! 1e-4 + 1e-3 * max|reference|.

use mxnet::format::params::load_params_file;
use mxnet::predictor::{Predictor, PredictorConfig};
use mxnet::{DType, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn model_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Runs one model; returns a description of the first mismatch, if any.
fn run_model(dir: &Path) -> Result<(), String> {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let file = |suffix: &str| dir.join(format!("{name}{suffix}"));
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(file("-meta.json")).unwrap()).unwrap();
    let json = std::fs::read_to_string(file("-symbol.json")).unwrap();
    let params = std::fs::read(file("-0000.params")).unwrap();
    let io = load_params_file(&file("-io.params")).unwrap();
    let io: HashMap<&str, &Tensor> = io.named().collect();

    let inputs = meta["inputs"].as_object().unwrap();
    let input_shapes = inputs
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect(),
            )
        })
        .collect();
    let input_dtypes = inputs
        .keys()
        .filter_map(|k| io.get(k.as_str()).map(|t| (k.clone(), t.dtype())))
        .filter(|(_, d)| *d != DType::F32)
        .collect();
    let mut p = Predictor::create(&PredictorConfig {
        symbol_json: &json,
        params: &params,
        input_shapes,
        input_dtypes,
        output_keys: Vec::new(),
    })
    .map_err(|e| format!("{name}: create: {e}"))?;

    let outputs: Vec<String> = meta["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    if p.executor.output_names() != outputs.as_slice() {
        return Err(format!(
            "{name}: outputs {:?}, MXNet lists {outputs:?}",
            p.executor.output_names()
        ));
    }
    let arguments: Vec<&str> = p.executor.argument_names().collect();
    let want: Vec<&str> = meta["arguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    if arguments != want {
        return Err(format!(
            "{name}: arguments differ from MXNet's list_arguments"
        ));
    }

    for k in inputs.keys() {
        let t = io
            .get(k.as_str())
            .ok_or_else(|| format!("{name}: io file lacks input {k}"))?;
        p.executor
            .set_argument(k, t.bytes())
            .map_err(|e| format!("{name}: {e}"))?;
    }
    p.executor
        .forward()
        .map_err(|e| format!("{name}: forward: {e}"))?;

    for i in 0..outputs.len() {
        let want = io[format!("output{i}").as_str()];
        let got = p.executor.output(i).unwrap();
        if got.shape() != want.shape() {
            return Err(format!(
                "{name}: output {i} shape {:?}, MXNet {:?}",
                got.shape(),
                want.shape()
            ));
        }
        let (g, w) = (got.to_f32_vec(), want.to_f32_vec());
        let max_ref = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        let tol = 1e-4 + 1e-3 * max_ref;
        if let Some((j, (a, b))) = g
            .iter()
            .zip(&w)
            .enumerate()
            .find(|(_, (a, b))| (*a - *b).abs().is_nan() || (*a - *b).abs() > tol)
        {
            return Err(format!(
                "{name}: output {i}[{j}] = {a}, MXNet {b} (tolerance {tol})"
            ));
        }
        println!(
            "{name}: output {i} matches ({} values, max |ref| {max_ref})",
            g.len()
        );
    }
    Ok(())
}

#[test]
fn fp32_models_match_mxnet() {
    let dirs = model_dirs();
    assert!(
        dirs.len() >= 10,
        "expected the model-zoo fixtures, found {}",
        dirs.len()
    );
    let failures: Vec<String> = dirs.iter().filter_map(|d| run_model(d).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} models failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

/// Binds a model from `dir/name-*` files for one float32 input named `data`.
fn bind_demo(dir: &Path, name: &str, input: &Tensor) -> Predictor {
    let json = std::fs::read_to_string(dir.join(format!("{name}-symbol.json"))).unwrap();
    let params = std::fs::read(dir.join(format!("{name}-0000.params"))).unwrap();
    let mut p = Predictor::create(&PredictorConfig {
        symbol_json: &json,
        params: &params,
        input_shapes: vec![("data".into(), input.shape().to_vec())],
        input_dtypes: Vec::new(),
        output_keys: Vec::new(),
    })
    .unwrap();
    p.executor.set_argument("data", input.bytes()).unwrap();
    p.executor.forward().unwrap();
    p
}

/// The README's first command: the bundled int8 FCN (BatchNorm on its raw
/// input, which MXNet 1.9.1 cannot run) stays close to its FP32 model.
#[test]
fn bundled_int8_demo_tracks_fp32() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fcn-bn");
    let bytes = std::fs::read(dir.join("input.npy")).unwrap();
    let input = mxnet::format::npy::read_npy(&bytes).unwrap();
    let int8 = bind_demo(&dir, "fcn-bn-int8", &input);
    let fp32 = bind_demo(&dir, "fcn-bn", &input);
    let (q, f) = (
        int8.executor.output(0).unwrap().to_f32_vec(),
        fp32.executor.output(0).unwrap().to_f32_vec(),
    );

    // Our FP32 model matches MXNet's FP32 output on the same input.
    let mxnet =
        mxnet::format::npy::read_npy(&std::fs::read(dir.join("fcn-bn-fp32-output.npy")).unwrap())
            .unwrap();
    let m = mxnet.to_f32_vec();
    let max_ref = m.iter().fold(0f32, |a, v| a.max(v.abs()));
    assert!(f
        .iter()
        .zip(&m)
        .all(|(a, b)| (a - b).abs() <= 1e-4 + 1e-3 * max_ref));

    let (num, den) = q.iter().zip(&f).fold((0f64, 0f64), |(n, d), (a, b)| {
        (n + ((a - b) as f64).powi(2), d + (*b as f64).powi(2))
    });
    let drift = (num / den).sqrt();
    println!("int8 drift from FP32: {drift:.4}");
    assert!(drift < 0.05, "relative L2 drift {drift}");
}

/// Every quantized model fixture runs through the predictor as
/// `MXPredCreate` builds it: bit for bit like MXNet where MXNet is the
/// reference, else within the case's tolerance of the FP32 model.
#[test]
fn quantized_models_through_predictor() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quantized");
    let mut checked = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let file = |suffix: &str| dir.join(format!("{name}{suffix}"));
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(file("-meta.json")).unwrap()).unwrap();
        if meta["kind"] != "model" {
            continue;
        }
        let io = load_params_file(&file("-io.params")).unwrap();
        let io: HashMap<&str, &Tensor> = io.named().collect();
        let input = io["data"];
        let mut p = bind_demo(&dir, &name, input);
        let got = p.executor.output(0).unwrap().to_f32_vec();
        if meta["reference"] == "mxnet" {
            let want = io["output0"].to_f32_vec();
            assert!(got == want, "{name}: output 0 differs from MXNet's");
        } else {
            let fp32 = io["fp32_output0"].to_f32_vec();
            let (num, den) = got.iter().zip(&fp32).fold((0f64, 0f64), |(n, d), (a, b)| {
                (n + ((a - b) as f64).powi(2), d + (*b as f64).powi(2))
            });
            let tolerance = meta["fp32_tolerance"].as_f64().unwrap_or(0.05);
            let drift = (num / den.max(f64::MIN_POSITIVE)).sqrt();
            assert!(
                drift <= tolerance,
                "{name}: drift {drift} from FP32 exceeds {tolerance}"
            );
        }
        p.executor.forward().unwrap();
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} quantized models checked");
}
