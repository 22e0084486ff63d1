//! Every single-operator case under tests/fixtures/ops/ (written by MXNet
//! 1.9.1, see tools/make_fixtures.py) runs through the predictor and must
//! match MXNet's outputs within 1e-4 + 1e-3 · max|reference| per output.

use mxnet::format::params::load_params_file;
use mxnet::predictor::{Predictor, PredictorConfig};
use mxnet::{DType, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn case_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ops");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn shape_of(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("a shape is a JSON array")
        .iter()
        .map(|d| d.as_u64().expect("a dimension is a non-negative integer") as usize)
        .collect()
}

/// Runs one case; returns a description of the first mismatch, if any.
fn run_case(dir: &Path) -> Result<usize, String> {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let file = |suffix: &str| dir.join(format!("{name}{suffix}"));
    let read = |suffix: &str| {
        std::fs::read(file(suffix)).map_err(|e| format!("{name}: cannot read {suffix}: {e}"))
    };
    let meta: Value = serde_json::from_slice(&read("-meta.json")?)
        .map_err(|e| format!("{name}: invalid meta.json: {e}"))?;
    let json = String::from_utf8(read("-symbol.json")?).map_err(|e| format!("{name}: {e}"))?;
    let params = read("-0000.params")?;
    let io = load_params_file(&file("-io.params")).map_err(|e| format!("{name}: {e}"))?;
    let io: HashMap<&str, &Tensor> = io.named().collect();

    let inputs = meta["inputs"].as_object().cloned().unwrap_or_default();
    let input_shapes = inputs
        .iter()
        .map(|(k, v)| (k.clone(), shape_of(v)))
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

    for k in inputs.keys() {
        let t = io
            .get(k.as_str())
            .ok_or_else(|| format!("{name}: the io file lacks input {k}"))?;
        p.executor
            .set_argument(k, t.bytes())
            .map_err(|e| format!("{name}: input {k}: {e}"))?;
    }
    p.executor
        .forward()
        .map_err(|e| format!("{name}: forward: {e}"))?;

    let count = meta["outputs"].as_array().map_or(0, |o| o.len());
    if p.executor.num_outputs() != count {
        return Err(format!(
            "{name}: {} outputs, MXNet has {count}",
            p.executor.num_outputs()
        ));
    }
    for i in 0..count {
        let want = io
            .get(format!("output{i}").as_str())
            .ok_or_else(|| format!("{name}: the io file lacks output{i}"))?;
        let got = p.executor.output(i).map_err(|e| format!("{name}: {e}"))?;
        if got.shape() != want.shape() {
            return Err(format!(
                "{name}: output {i} has shape {:?}, MXNet {:?}",
                got.shape(),
                want.shape()
            ));
        }
        if got.dtype() != want.dtype() {
            return Err(format!(
                "{name}: output {i} is {}, MXNet {}",
                got.dtype(),
                want.dtype()
            ));
        }
        let (g, w) = (got.to_f32_vec(), want.to_f32_vec());
        let max_ref = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        let tol = 1e-4 + 1e-3 * max_ref;
        let bad = g
            .iter()
            .zip(&w)
            .enumerate()
            .find(|(_, (a, b))| !((*a - *b).abs() <= tol || (a.is_nan() && b.is_nan())));
        if let Some((j, (a, b))) = bad {
            return Err(format!(
                "{name}: output {i}[{j}] = {a}, MXNet {b} (tolerance {tol})"
            ));
        }
    }
    Ok(count)
}

#[test]
fn fp32_ops_match_mxnet() {
    let dirs = case_dirs();
    assert!(
        dirs.len() >= 100,
        "expected the operator fixtures, found {} cases",
        dirs.len()
    );
    let mut failures = Vec::new();
    for d in &dirs {
        match run_case(d) {
            Ok(n) => println!(
                "{}: {n} outputs match",
                d.file_name().unwrap().to_string_lossy()
            ),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} operator cases failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}
