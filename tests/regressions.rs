//! Regression tests for bugs found by probing the C API, the file parsers
//! and the command-line tool with invalid input: crashes, aborts, a
//! deadlock and unclear messages, each fixed and kept fixed here.
//!
//! The C API contract checked here: every call returns 0, or -1 with a
//! message from `MXGetLastError` that names the problem. A panic caught at
//! the C boundary shows up as "internal error (please report)" and counts
//! as a failure, and so does a process killed by a signal.

use mxnet::capi::ndarray::MXNDArrayFree;
use mxnet::capi::predict::{
    MXPredCreateEx, MXPredForward, MXPredFree, MXPredGetOutputShape, MXPredSetInput,
    MXPredSetMonitorCallback, PredictorHandle,
};
use mxnet::capi::MXGetLastError;
use mxnet::format::params::{load_params, save_params};
use mxnet::{DType, Tensor};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Returns `tests/fixtures/quantized/<case>/<case>-<suffix>`.
fn quantized_fixture(case: &str, suffix: &str) -> PathBuf {
    root()
        .join("tests/fixtures/quantized")
        .join(case)
        .join(format!("{case}-{suffix}"))
}

fn last_error() -> String {
    // SAFETY: MXGetLastError returns a NUL-terminated per-thread string.
    unsafe { CStr::from_ptr(MXGetLastError()) }
        .to_string_lossy()
        .into_owned()
}

/// One input of a predictor: name, shape and MXNet dtype flag.
struct Input<'a> {
    name: &'a str,
    shape: &'a [u32],
    dtype: DType,
}

/// Creates a predictor with `MXPredCreateEx`, sets every input to zeros and
/// runs one forward pass. Returns the message of the first call that fails.
fn create_and_forward(symbol_json: &str, params: &[u8], inputs: &[Input]) -> Result<(), String> {
    let json = CString::new(symbol_json).unwrap();

    let names: Vec<CString> = inputs
        .iter()
        .map(|i| CString::new(i.name).unwrap())
        .collect();
    let name_ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let mut indptr = vec![0u32];
    let mut dims = Vec::new();
    for input in inputs {
        dims.extend_from_slice(input.shape);
        indptr.push(dims.len() as u32);
    }
    let flags: Vec<c_int> = inputs.iter().map(|i| i.dtype.flag()).collect();

    let mut handle: PredictorHandle = std::ptr::null_mut();
    // SAFETY: every pointer refers to a live buffer of the length passed with it.
    let rc = unsafe {
        MXPredCreateEx(
            json.as_ptr(),
            params.as_ptr().cast(),
            params.len() as c_int,
            1,
            0,
            inputs.len() as u32,
            name_ptrs.as_ptr() as *mut *const c_char,
            indptr.as_ptr(),
            dims.as_ptr(),
            inputs.len() as u32,
            name_ptrs.as_ptr() as *mut *const c_char,
            flags.as_ptr(),
            &mut handle,
        )
    };
    if rc != 0 {
        return Err(last_error());
    }

    let result = set_zero_inputs_and_forward(handle, inputs, &names);
    // SAFETY: `handle` came from MXPredCreateEx and is freed once.
    unsafe { MXPredFree(handle) };
    result
}

fn set_zero_inputs_and_forward(
    handle: PredictorHandle,
    inputs: &[Input],
    names: &[CString],
) -> Result<(), String> {
    for (input, name) in inputs.iter().zip(names) {
        let count: usize = input.shape.iter().map(|&d| d as usize).product();
        let zeros = vec![0u8; count * input.dtype.size()];
        // SAFETY: `zeros` contains `count` elements of the input's dtype.
        let rc =
            unsafe { MXPredSetInput(handle, name.as_ptr(), zeros.as_ptr().cast(), count as u32) };
        if rc != 0 {
            return Err(last_error());
        }
    }
    // SAFETY: `handle` is a live predictor.
    if unsafe { MXPredForward(handle) } != 0 {
        return Err(last_error());
    }
    Ok(())
}

/// Asserts that a call sequence failed with a message that names `node`
/// and is not a caught panic.
fn assert_clean_error(result: Result<(), String>, node: &str) {
    let message = result.expect_err("invalid input was accepted and the forward pass succeeded");
    assert!(
        !message.contains("internal error"),
        "a panic reached the C boundary: {message}"
    );
    assert!(
        message.contains(node),
        "the message does not name node {node:?}: {message}"
    );
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Rewrites a `.params` buffer with the array `name` replaced by `tensor`.
fn replace_param(params: &[u8], name: &str, tensor: Tensor) -> Vec<u8> {
    let mut list = load_params(params).expect("fixture parameters load");
    let index = list
        .names
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no parameter {name}"));
    list.arrays[index] = Some(tensor);
    let arrays: Vec<&Tensor> = list.arrays.iter().map(|a| a.as_ref().unwrap()).collect();
    let names: Vec<&str> = list.names.iter().map(String::as_str).collect();
    save_params(&arrays, &names).unwrap()
}

/// Returns a named parameter list with no arrays, so that every weight is
/// zero-filled from its inferred shape.
fn empty_params() -> Vec<u8> {
    save_params(&[], &[]).unwrap()
}

/// Returns the JSON of a graph with one Pooling node named "pool" on input "data".
fn pooling_json(attrs: &str) -> String {
    format!(
        r#"{{"nodes": [{{"op": "null", "name": "data", "inputs": []}},
            {{"op": "Pooling", "name": "pool", "attrs": {attrs}, "inputs": [[0, 0, 0]]}}],
            "arg_nodes": [0], "heads": [[1, 0, 0]]}}"#
    )
}

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mxnet-int8"))
}

/// Runs the command-line tool under a 4 GiB address-space limit, so that an
/// oversized allocation fails at once instead of using the machine's memory.
fn cli_with_memory_limit(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 4194304; exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_mxnet-int8"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("sh runs")
}

fn model_file(name: &str) -> String {
    root()
        .join("models/fcn-bn")
        .join(name)
        .display()
        .to_string()
}

#[test]

fn quantized_conv_wrong_channels() {
    let result = create_and_forward(
        &read_text(&quantized_fixture("quantized_conv_s8", "symbol.json")),
        &read(&quantized_fixture("quantized_conv_s8", "0000.params")),
        &[
            Input {
                name: "data",
                shape: &[2, 7, 8, 8],
                dtype: DType::I8,
            },
            Input {
                name: "min_data",
                shape: &[1],
                dtype: DType::F32,
            },
            Input {
                name: "max_data",
                shape: &[1],
                dtype: DType::F32,
            },
        ],
    );
    assert_clean_error(result, "quantized_conv2");
}

#[test]

fn quantized_fc_wrong_input_width() {
    let result = create_and_forward(
        &read_text(&quantized_fixture("quantized_fc_s8_bias", "symbol.json")),
        &read(&quantized_fixture("quantized_fc_s8_bias", "0000.params")),
        &[
            Input {
                name: "data",
                shape: &[3, 50],
                dtype: DType::I8,
            },
            Input {
                name: "min_data",
                shape: &[1],
                dtype: DType::F32,
            },
            Input {
                name: "max_data",
                shape: &[1],
                dtype: DType::F32,
            },
        ],
    );
    assert_clean_error(result, "quantized_fully_connected0");
}

#[test]

fn fused_conv_wrong_channels() {
    let result = create_and_forward(
        &read_text(&quantized_fixture("sg_conv_bn_naive_int8", "symbol.json")),
        &read(&quantized_fixture("sg_conv_bn_naive_int8", "0000.params")),
        &[Input {
            name: "data",
            shape: &[2, 9, 8, 8],
            dtype: DType::F32,
        }],
    );
    assert_clean_error(result, "quantized_sg_mkldnn_conv_bn_0");
}

#[test]

fn fused_fc_wrong_input_size() {
    let result = create_and_forward(
        &read_text(&quantized_fixture("sg_fc_naive_int8_tensor", "symbol.json")),
        &read(&quantized_fixture("sg_fc_naive_int8_tensor", "0000.params")),
        &[Input {
            name: "data",
            shape: &[3, 2, 3, 5],
            dtype: DType::F32,
        }],
    );
    assert_clean_error(result, "quantized_sg_mkldnn_fully_connected_0");
}

#[test]

fn fused_conv_weight_of_one_element() {
    let params = replace_param(
        &read(&quantized_fixture("sg_conv_bn_naive_int8", "0000.params")),
        "arg:fbn_conv0_weight",
        Tensor::zeros(DType::F32, &[1]).unwrap(),
    );
    let result = create_and_forward(
        &read_text(&quantized_fixture("sg_conv_bn_naive_int8", "symbol.json")),
        &params,
        &[Input {
            name: "data",
            shape: &[2, 5, 8, 8],
            dtype: DType::F32,
        }],
    );
    assert_clean_error(result, "quantized_sg_mkldnn_conv_bn_0");
}

#[test]

fn quantized_fc_flattened_weight() {
    let params = read(&quantized_fixture("quantized_fc_s8_bias", "0000.params"));
    let list = load_params(&params).unwrap();
    let weight = list
        .named()
        .find(|(name, _)| *name == "arg:weight")
        .map(|(_, t)| t.clone())
        .expect("fixture has arg:weight");
    let mut flat = weight.clone();
    flat.reshape(&[weight.numel()]).unwrap();
    let result = create_and_forward(
        &read_text(&quantized_fixture("quantized_fc_s8_bias", "symbol.json")),
        &replace_param(&params, "arg:weight", flat),
        &[
            Input {
                name: "data",
                shape: &[3, 37],
                dtype: DType::I8,
            },
            Input {
                name: "min_data",
                shape: &[1],
                dtype: DType::F32,
            },
            Input {
                name: "max_data",
                shape: &[1],
                dtype: DType::F32,
            },
        ],
    );
    assert_clean_error(result, "quantized_fully_connected0");
}

#[test]

fn pooling_pad_not_below_kernel() {
    let json = pooling_json(r#"{"kernel": "(3, 3)", "pool_type": "max", "pad": "(4, 4)"}"#);
    let result = create_and_forward(
        &json,
        &empty_params(),
        &[Input {
            name: "data",
            shape: &[1, 1, 5, 5],
            dtype: DType::F32,
        }],
    );
    assert_clean_error(result, "pool");
}

#[test]

fn pooling_full_convention_large_stride() {
    let json = pooling_json(
        r#"{"kernel": "(2, 2)", "pool_type": "max", "stride": "(50, 50)", "pooling_convention": "full"}"#,
    );
    let result = create_and_forward(
        &json,
        &empty_params(),
        &[Input {
            name: "data",
            shape: &[1, 1, 5, 5],
            dtype: DType::F32,
        }],
    );
    // MXNet 1.9.1 runs this graph and writes -FLT_MAX for windows that lie
    // entirely in the padding; a clean error would also be acceptable.
    if let Err(message) = result {
        assert!(
            !message.contains("internal error"),
            "a panic reached the C boundary: {message}"
        );
    }
}

#[test]

fn unknown_input_key_is_named() {
    let json = read_text(&root().join("models/fcn-bn/fcn-bn-int8-symbol.json"));
    let result = create_and_forward(
        &json,
        &read(&root().join("models/fcn-bn/fcn-bn-int8-0000.params")),
        &[Input {
            name: "not_an_input",
            shape: &[1, 3, 16, 16],
            dtype: DType::F32,
        }],
    );
    let message = result.expect_err("binding without the data input must fail");
    assert!(
        message.contains("not_an_input"),
        "the message does not name the key the caller gave: {message}"
    );
}

#[test]

fn huge_input_shape_fails_cleanly() {
    let output = cli_with_memory_limit(&[
        "run",
        &model_file("fcn-bn-int8-symbol.json"),
        &model_file("fcn-bn-int8-0000.params"),
        "--shape",
        "100000,3,1000,1000",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit code 1 with an error message, got {:?}: {stderr}",
        output.status
    );
    assert!(stderr.contains("error:"), "no error message: {stderr}");
}

#[test]

fn compare_with_other_output_shape() {
    let resnet = root().join("tests/fixtures/models/resnet18_v1/resnet18_v1");
    let output = cli()
        .args([
            "run",
            &model_file("fcn-bn-int8-symbol.json"),
            &model_file("fcn-bn-int8-0000.params"),
            "--shape",
            "1,3,16,16",
            "--compare",
            &format!("{}-symbol.json", resnet.display()),
            &format!("{}-0000.params", resnet.display()),
        ])
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "outputs of shape [1, 8, 8, 8] and [1, 10] were compared: {stdout}"
    );
}

#[test]

fn inspect_lists_unknown_multi_output_op() {
    let text = read_text(&root().join("models/fcn-bn/fcn-bn-int8-symbol.json"));
    let mut symbol: serde_json::Value = serde_json::from_str(&text).unwrap();
    let node = symbol["nodes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|n| n["op"] == "_contrib_quantize_v2")
        .expect("the model quantizes its input");
    node["op"] = "_contrib_quantize_v3".into();
    let path = std::env::temp_dir().join(format!(
        "mxnet-int8-regression-{}-symbol.json",
        std::process::id()
    ));
    std::fs::write(&path, symbol.to_string()).unwrap();
    let output = cli().arg("inspect").arg(&path).output().unwrap();
    std::fs::remove_file(&path).ok();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "inspect failed: {stderr}");
    assert!(
        stdout.contains("_contrib_quantize_v3"),
        "inspect does not list the unknown operator: {stdout}"
    );
}

/// Queries the output shape of the predictor passed as the user pointer,
/// from inside a monitor callback, then frees the array it received.
unsafe extern "C" fn query_predictor_in_monitor(
    _name: *const c_char,
    array: *mut c_void,
    predictor: *mut c_void,
) {
    let mut shape: *mut u32 = std::ptr::null_mut();
    let mut ndim = 0u32;
    // SAFETY: `predictor` is the live handle registered with this callback,
    // and the callback owns `array`.
    unsafe {
        MXPredGetOutputShape(predictor, 0, &mut shape, &mut ndim);
        MXNDArrayFree(array);
    }
}

#[test]

fn monitor_callback_reentry() {
    let (done, finished) = mpsc::channel();
    // The predictor runs on its own thread so that a deadlock fails the test
    // after a timeout instead of hanging it. A deadlocked thread stays blocked
    // until the test process exits.
    std::thread::spawn(move || {
        let json =
            read_text(&root().join("tests/fixtures/ops/conv_3x3_pad/conv_3x3_pad-symbol.json"));
        let params = read(&root().join("tests/fixtures/ops/conv_3x3_pad/conv_3x3_pad-0000.params"));
        let json = CString::new(json).unwrap();
        let key = CString::new("data").unwrap();
        let keys = [key.as_ptr()];
        let indptr = [0u32, 4];
        let shape = [2u32, 3, 5, 7];
        let mut handle: PredictorHandle = std::ptr::null_mut();
        // SAFETY: every pointer refers to a live buffer of the length passed with it.
        let rc = unsafe {
            mxnet::capi::predict::MXPredCreate(
                json.as_ptr(),
                params.as_ptr().cast(),
                params.len() as c_int,
                1,
                0,
                1,
                keys.as_ptr() as *mut *const c_char,
                indptr.as_ptr(),
                shape.as_ptr(),
                &mut handle,
            )
        };
        assert_eq!(rc, 0, "{}", last_error());

        // SAFETY: `handle` stays live while the callback can run.
        let rc = unsafe {
            MXPredSetMonitorCallback(handle, Some(query_predictor_in_monitor), handle, false)
        };
        assert_eq!(rc, 0, "{}", last_error());

        // SAFETY: `handle` is a live predictor.
        let rc = unsafe { MXPredForward(handle) };
        done.send(rc).unwrap();
        // SAFETY: `handle` came from MXPredCreate and is freed once.
        unsafe { MXPredFree(handle) };
    });
    let rc = finished
        .recv_timeout(Duration::from_secs(5))
        .expect("MXPredForward did not return within 5 s: the monitor callback deadlocked");
    assert_eq!(rc, 0, "MXPredForward failed");
}

#[test]

fn symbol_huge_num_outputs() {
    let json = r#"{"nodes": [{"op": "null", "name": "data", "inputs": []},
        {"op": "SliceChannel", "name": "sl", "attrs": {"num_outputs": "4294967297"},
         "inputs": [[0, 0, 0]]}], "arg_nodes": [0], "heads": [[1, 0, 0]]}"#;
    let path = std::env::temp_dir().join(format!(
        "mxnet-int8-regression-split-{}-symbol.json",
        std::process::id()
    ));
    std::fs::write(&path, json).unwrap();
    let output = cli_with_memory_limit(&["inspect", &path.display().to_string()]);
    std::fs::remove_file(&path).ok();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit code 1 with an error message, got {:?}: {stderr}",
        output.status
    );
    assert!(
        stderr.contains("sl"),
        "the message does not name node sl: {stderr}"
    );
}
