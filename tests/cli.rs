//! The `mxnet-int8` command line on every model fixture: `run` writes the
//! output as .npy, which must match MXNet's golden output.

use mxnet::format::npy::read_npy;
use mxnet::format::params::load_params_file;
use std::path::Path;
use std::process::Command;

#[test]
fn cli_run_matches_mxnet_on_every_model() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models");
    let out_dir = std::env::temp_dir().join(format!("mxnet-int8-cli-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut models: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    models.sort();
    for model in models {
        let prefix = root.join(&model).join(&model);
        let file = |suffix: &str| format!("{}{suffix}", prefix.display());
        let output = out_dir.join(format!("{model}.npy"));
        let result = Command::new(env!("CARGO_BIN_EXE_mxnet-int8"))
            .args([
                "run",
                &file("-symbol.json"),
                &file("-0000.params"),
                "--input",
                &file("-io.params"),
            ])
            .arg("--output")
            .arg(&output)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&result.stdout);
        assert!(
            result.status.success(),
            "{model}: {stdout}\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
        assert!(stdout.contains("forward"), "{model}: {stdout}");

        let ours = read_npy(&std::fs::read(&output).unwrap()).unwrap();
        let io = load_params_file(Path::new(&file("-io.params"))).unwrap();
        let (_, want) = io.named().find(|(n, _)| *n == "output0").unwrap();
        assert_eq!(ours.shape(), want.shape(), "{model}");
        let (a, b) = (ours.to_f32_vec(), want.to_f32_vec());
        let max_ref = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() <= 1e-4 + 1e-3 * max_ref,
                "{model}: {x} vs {y}"
            );
        }
    }
}

#[test]
fn cli_reports_bad_input_clearly() {
    let result = Command::new(env!("CARGO_BIN_EXE_mxnet-int8"))
        .args([
            "run",
            "/nonexistent-symbol.json",
            "/nonexistent.params",
            "--shape",
            "1,3,8,8",
        ])
        .output()
        .unwrap();
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("nonexistent-symbol.json"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn cli_bench_profile_lists_steps() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fcn-bn");
    let result = Command::new(env!("CARGO_BIN_EXE_mxnet-int8"))
        .arg("bench")
        .arg(root.join("fcn-bn-int8-symbol.json"))
        .arg(root.join("fcn-bn-int8-0000.params"))
        .args([
            "--shape",
            "1,3,32,32",
            "--runs",
            "2",
            "--warmup",
            "0",
            "--profile",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{stdout}");
    assert!(stdout.contains("bind + first forward"), "{stdout}");
    assert!(
        stdout.contains("operators by mean time over 2 runs:"),
        "{stdout}"
    );
    assert!(stdout.contains("(_contrib_quantized_conv)"), "{stdout}");
    assert!(stdout.contains("GMAC/s"), "{stdout}");
}
