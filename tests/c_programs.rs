//! Compiles the C programs in `c_tests/` against `include/` and the built
//! `libmxnet.so`, runs them, and fails if any check inside them fails.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Directory holding the `libmxnet.so` built for this test run.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    for dir in [deps.clone(), deps.parent().unwrap().to_path_buf()] {
        if dir.join("libmxnet.so").exists() {
            return dir;
        }
    }
    panic!("libmxnet.so not found next to {}", exe.display());
}

/// Builds `c_tests/<name>.c` (or `.cpp`) and runs it with `args`; returns its stdout.
pub fn build_and_run(source: &str, args: &[&str]) -> String {
    build_and_run_with_env(&format!("c_tests/{source}"), args, &[])
}

/// Builds the C or C++ file at `source` (relative to the crate root) and runs it.
fn build_and_run_with_env(source: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = library_dir();
    let out_dir = std::env::temp_dir().join(format!("mxnet-int8-c-tests-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let src = root.join(source);
    let exe = out_dir.join(source.replace(['.', '/'], "_"));
    let compiler = if source.ends_with(".cpp") {
        "g++"
    } else {
        "gcc"
    };
    let status = Command::new(compiler)
        .args(
            ["-std=c99", "-Wall", "-Werror", "-O1"]
                .iter()
                .filter(|f| compiler == "gcc" || **f != "-std=c99"),
        )
        .arg("-I")
        .arg(root.join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&lib)
        .arg("-lmxnet")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lm", "-lpthread"])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(status.success(), "compiling {source} failed");
    let output = Command::new(&exe)
        .args(args)
        .env("OMP_NUM_THREADS", "2")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{source} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

fn fixtures() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .display()
        .to_string()
}

#[test]
fn c_ndarray_api() {
    let tmp = std::env::temp_dir();
    let out = build_and_run("ndarray.c", &[&fixtures(), tmp.to_str().unwrap()]);
    assert!(out.contains("all checks passed"), "{out}");
}

fn model_dir(name: &str) -> String {
    format!("{}/models/{name}", fixtures())
}

#[test]
fn c_predict_api() {
    let out = build_and_run("predict.c", &[&model_dir("resnet18_v1"), "resnet18_v1"]);
    assert!(out.contains("all checks passed"), "{out}");
}

/// Parses the `output[i] = value` lines the examples print with MXNET_EXAMPLE_DUMP.
fn dumped_outputs(stdout: &str) -> Vec<f32> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("output["))
        .map(|l| l.split(" = ").nth(1).unwrap().trim().parse().unwrap())
        .collect()
}

fn reference_output(model: &str) -> Vec<f32> {
    let path = format!("{}/{model}-io.params", model_dir(model));
    let list = mxnet::format::params::load_params_file(Path::new(&path)).unwrap();
    let (_, t) = list.named().find(|(n, _)| *n == "output0").unwrap();
    t.to_f32_vec()
}

fn assert_matches_mxnet(stdout: &str, model: &str) {
    let got = dumped_outputs(stdout);
    let want = reference_output(model);
    assert_eq!(got.len(), want.len(), "{stdout}");
    let max_ref = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in got.iter().zip(&want) {
        assert!(
            (a - b).abs() <= 1e-4 + 1e-3 * max_ref,
            "{a} vs {b}\n{stdout}"
        );
    }
    assert!(stdout.contains("top-5"), "{stdout}");
}

fn example_args(model: &str) -> Vec<String> {
    let dir = model_dir(model);
    ["-symbol.json", "-0000.params", "-io.params"]
        .iter()
        .map(|s| format!("{dir}/{model}{s}"))
        .collect()
}

/// Every model fixture (model zoo and segmentation heads).
fn all_models() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("{}/models", fixtures()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn c_example_classifies_every_model() {
    for model in all_models() {
        let args = example_args(&model);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = build_and_run_with_env(
            "examples/c/classify.c",
            &args,
            &[("MXNET_EXAMPLE_DUMP", "1")],
        );
        assert_matches_mxnet(&out, &model);
    }
}

#[test]
fn cpp_example_classifies() {
    let args = example_args("resnet50_v1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = build_and_run_with_env(
        "examples/cpp/classify.cpp",
        &args,
        &[("MXNET_EXAMPLE_DUMP", "1")],
    );
    assert_matches_mxnet(&out, "resnet50_v1");
}

#[test]
fn python_ctypes_example_classifies_every_model() {
    let lib = library_dir().join("libmxnet.so");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/classify.py");
    for model in all_models() {
        let mut args = vec![script.display().to_string(), lib.display().to_string()];
        args.extend(example_args(&model));
        let output = Command::new("python3")
            .args(&args)
            .env("MXNET_EXAMPLE_DUMP", "1")
            .output()
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{model}: {stdout}\n{stderr}");
        assert_matches_mxnet(&stdout, &model);
    }
}

fn quantized_dir(name: &str) -> String {
    format!("{}/quantized/{name}", fixtures())
}

#[test]
fn c_predict_with_int8_input() {
    let out = build_and_run(
        "predict_int8.c",
        &[
            &quantized_dir("quantized_conv_s8"),
            "quantized_conv_s8",
            "5",
        ],
    );
    assert!(out.contains("all checks passed"), "{out}");
}

#[test]
fn c_predict_with_uint8_input() {
    let case = "quantized_conv_u8_bias_odd";
    let out = build_and_run("predict_int8.c", &[&quantized_dir(case), case, "3"]);
    assert!(out.contains("all checks passed"), "{out}");
}

/// The names after `label:` on one line of the C program's output.
fn listed<'a>(stdout: &'a str, label: &str) -> Vec<&'a str> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{label}:")))
        .unwrap_or_else(|| panic!("no {label} line in:\n{stdout}"));
    line.split_whitespace().skip(1).collect()
}

#[test]
fn c_symbol_lists_match_mxnet() {
    for model in ["resnet50_v2", "inception_v3", "psp_resnet50"] {
        let dir = model_dir(model);
        let out = build_and_run("symbol.c", &[&format!("{dir}/{model}-symbol.json")]);
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{dir}/{model}-meta.json")).unwrap(),
        )
        .unwrap();
        for (label, key) in [
            ("arguments", "arguments"),
            ("aux", "aux"),
            ("outputs", "outputs"),
        ] {
            let want: Vec<&str> = meta[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(listed(&out, label), want, "{model}: {label}");
        }
        let count = listed(&out, "arguments").len();
        assert!(
            out.contains(&format!("reloaded arguments: {count}")),
            "{out}"
        );
    }
}
