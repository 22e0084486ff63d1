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
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = library_dir();
    let out_dir = std::env::temp_dir().join(format!("mxnet-int8-c-tests-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let src = root.join("c_tests").join(source);
    let exe = out_dir.join(source.replace('.', "_"));
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
