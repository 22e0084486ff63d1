//! Symbol JSON against MXNet 1.9.1's golden files: the lists MXNet derives,
//! the text it writes, the files it rejects, and hostile input.
//!
//! Golden files: `tests/fixtures/symbols/<name>.json` with
//! `<name>.expected.json` (MXNet's lists and `tojson()` output),
//! `tests/fixtures/symbols/invalid/` with `manifest.json`, and the model
//! fixtures under `tests/fixtures/{models,ops,quantized}/<name>/`.

use mxnet::format::symbol::{load_file, load_json, save_json};
use mxnet::graph::Graph;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `(symbol file, expected file)` for every golden symbol file.
fn symbol_fixtures() -> Vec<(PathBuf, PathBuf)> {
    let dir = fixtures().join("symbols");
    let mut cases: Vec<(PathBuf, PathBuf)> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name()?.to_str()?.to_string();
            let stem = name.strip_suffix(".json")?;
            if stem.ends_with(".expected") {
                return None;
            }
            let expected = dir.join(format!("{stem}.expected.json"));
            expected.exists().then_some((path, expected))
        })
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no golden symbol files in {}",
        dir.display()
    );
    cases
}

/// `(symbol file, meta file)` for every model fixture directory under `group`.
fn model_fixtures(group: &str) -> Vec<(PathBuf, PathBuf)> {
    let dir = fixtures().join(group);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut cases: Vec<(PathBuf, PathBuf)> = entries
        .filter_map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name()?.to_str()?.to_string();
            let symbol = path.join(format!("{name}-symbol.json"));
            let meta = path.join(format!("{name}-meta.json"));
            (symbol.exists() && meta.exists()).then_some((symbol, meta))
        })
        .collect();
    cases.sort();
    cases
}

/// Removes every `"node_row_ptr": [...]` array. MXNet 1.9.1 built with
/// MKLDNN counts a hidden workspace output for max pooling, which this
/// library does not have, so output counts are compared separately.
fn without_row_ptr(text: &str) -> String {
    let key = "\"node_row_ptr\": [";
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(key) {
        out.push_str(&rest[..start]);
        let after = &rest[start + key.len()..];
        let end = after.find(']').expect("unterminated node_row_ptr");
        out.push_str("\"node_row_ptr\": []");
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Compares the output counts in `node_row_ptr`: they may differ only for
/// max pooling, which has a hidden workspace output in MXNet's MKLDNN build.
fn check_output_counts(ours: &str, mxnet: &str, label: &str) {
    fn counts(graph: &Value) -> Vec<(String, u64)> {
        let row = graph["node_row_ptr"].as_array().unwrap();
        let nodes = graph["nodes"].as_array().unwrap();
        nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let count = row[i + 1].as_u64().unwrap() - row[i].as_u64().unwrap();
                (n["op"].as_str().unwrap().to_string(), count)
            })
            .collect()
    }
    let ours: Value = serde_json::from_str(ours).unwrap();
    let mxnet: Value = serde_json::from_str(mxnet).unwrap();
    for ((op, our_count), (_, mxnet_count)) in counts(&ours).into_iter().zip(counts(&mxnet)) {
        if our_count != mxnet_count {
            assert!(
                op == "Pooling" && our_count == 1 && mxnet_count == 2,
                "{label}: {op} has {our_count} outputs here, {mxnet_count} in MXNet"
            );
        }
    }
}

fn assert_same_graph(a: &Graph, b: &Graph, label: &str) {
    assert_eq!(a.nodes.len(), b.nodes.len(), "{label}: node count");
    for (x, y) in a.nodes.iter().zip(&b.nodes) {
        assert_eq!(x.op, y.op, "{label}: op of {}", x.name);
        assert_eq!(x.name, y.name, "{label}: node name");
        assert_eq!(x.attrs, y.attrs, "{label}: attrs of {}", x.name);
        assert_eq!(x.inputs, y.inputs, "{label}: inputs of {}", x.name);
        assert_eq!(
            x.control_deps, y.control_deps,
            "{label}: control_deps of {}",
            x.name
        );
        assert_eq!(
            x.subgraphs.len(),
            y.subgraphs.len(),
            "{label}: subgraphs of {}",
            x.name
        );
        for (sx, sy) in x.subgraphs.iter().zip(&y.subgraphs) {
            assert_same_graph(sx, sy, &format!("{label}, subgraph of {}", x.name));
        }
    }
    assert_eq!(a.arg_nodes, b.arg_nodes, "{label}: arg_nodes");
    assert_eq!(a.heads, b.heads, "{label}: heads");
}

#[test]
fn symbol_lists_match_mxnet() {
    for (path, expected_path) in symbol_fixtures() {
        let expected = read_json(&expected_path);
        let label = path.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(
            expected["mxnet_load"], "ok",
            "{label}: MXNet failed to load it"
        );
        let g = load_file(&path).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(
            g.list_arguments(),
            strings(&expected["arguments"]),
            "{label}: arguments"
        );
        assert_eq!(
            g.list_auxiliary_states(),
            strings(&expected["auxiliary_states"]),
            "{label}: auxiliary states"
        );
        assert_eq!(
            g.list_inputs(),
            strings(&expected["inputs"]),
            "{label}: inputs"
        );
        assert_eq!(
            g.list_outputs(),
            strings(&expected["outputs"]),
            "{label}: outputs"
        );
        assert_eq!(
            g.internals().list_outputs(),
            strings(&expected["internals"]),
            "{label}: internals"
        );
    }
}

#[test]
fn symbol_save_matches_mxnet_text() {
    for (path, expected_path) in symbol_fixtures() {
        let expected = read_json(&expected_path);
        let label = path.file_name().unwrap().to_string_lossy().to_string();
        let mxnet_text = expected["tojson"].as_str().expect("tojson");
        let ours = save_json(&load_file(&path).unwrap());
        assert_eq!(
            without_row_ptr(&ours),
            without_row_ptr(mxnet_text),
            "{label}: saved text differs from MXNet's"
        );
        check_output_counts(&ours, mxnet_text, &label);
        // MXNet's own output loads to the same graph as ours.
        let from_mxnet = load_json(mxnet_text).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_same_graph(&load_json(&ours).unwrap(), &from_mxnet, &label);
    }
}

#[test]
fn save_then_load_is_stable() {
    let mut paths: Vec<PathBuf> = symbol_fixtures().into_iter().map(|(p, _)| p).collect();
    for group in ["models", "ops", "quantized"] {
        paths.extend(model_fixtures(group).into_iter().map(|(s, _)| s));
    }
    for path in paths {
        let label = path.display().to_string();
        let first = load_file(&path).unwrap_or_else(|e| panic!("{label}: {e}"));
        let text = save_json(&first);
        let second = load_json(&text).unwrap_or_else(|e| panic!("{label}: reloading: {e}"));
        assert_same_graph(&first, &second, &label);
        assert_eq!(save_json(&second), text, "{label}: second save differs");
        assert_eq!(first.list_arguments(), second.list_arguments(), "{label}");
        assert_eq!(
            first.list_auxiliary_states(),
            second.list_auxiliary_states(),
            "{label}"
        );
        assert_eq!(first.list_outputs(), second.list_outputs(), "{label}");
    }
}

/// Invalid files that MXNet rejects while parsing operator parameters or
/// looking operators up. This library does neither at load time, so it loads
/// them; the operator implementations report bad parameters at bind.
const ACCEPTED_PARAMETER_ERRORS: &[&str] = &[
    "unknown_op.json",
    "bad_enum_value.json",
    "unknown_parameter.json",
    "bad_int_parameter.json",
    "missing_required_parameter.json",
];

#[test]
fn invalid_symbols_are_rejected() {
    let dir = fixtures().join("symbols/invalid");
    let manifest = read_json(&dir.join("manifest.json"));
    let entries = manifest.as_array().expect("manifest is an array");
    assert!(!entries.is_empty());
    for entry in entries {
        let file = entry["file"].as_str().unwrap();
        let text = String::from_utf8_lossy(&fs::read(dir.join(file)).unwrap()).into_owned();
        let result = load_without_panic_result(&text, file);
        if ACCEPTED_PARAMETER_ERRORS.contains(&file) {
            assert!(result.is_ok(), "{file}: {:?}", result.err());
            continue;
        }
        // MXNet loads some of these ("ok") only to fail or crash when the
        // graph is used. This loader may reject those; the cases it must
        // reject are checked by invalid_symbol_errors_name_the_problem.
        if entry["mxnet_load"] == "ok" {
            continue;
        }
        let error = result.err().unwrap_or_else(|| {
            panic!(
                "{file}: loaded, expected an error ({})",
                entry["description"]
            )
        });
        assert!(!error.is_empty(), "{file}: empty error message");
    }
}

/// Loads `text`, turning a panic into a test failure, and returns the
/// error message on failure.
fn load_without_panic_result(text: &str, label: &str) -> Result<Graph, String> {
    match std::panic::catch_unwind(|| load_json(text)) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => panic!("{label}: load_json panicked"),
    }
}

#[test]
fn invalid_symbol_errors_name_the_problem() {
    let dir = fixtures().join("symbols/invalid");
    let cases = [
        ("dangling_input.json", "refers to node 99"),
        ("head_out_of_range.json", "head 0 refers to node 7"),
        (
            "head_output_index_out_of_range.json",
            "uses output 5 of node 3 (\"fc\")",
        ),
        ("cycle.json", "cycle"),
        ("unknown_top_level_key.json", "foo"),
        ("unknown_node_key.json", "bar"),
        ("non_string_attr_value.json", "num_hidden"),
        ("arg_node_not_variable.json", "node 3 (\"fc\")"),
        ("missing_heads.json", "heads"),
        ("version_not_typed.json", "mxnet_version"),
        ("unregistered_attr_type.json", "float"),
    ];
    for (file, needle) in cases {
        let text = fs::read_to_string(dir.join(file)).unwrap();
        let error = load_json(&text).expect_err(file).to_string();
        assert!(error.contains(needle), "{file}: {error:?} lacks {needle:?}");
    }
}

fn check_model_meta(group: &str) -> usize {
    let cases = model_fixtures(group);
    for (symbol, meta_path) in &cases {
        let meta = read_json(meta_path);
        let label = symbol.display().to_string();
        let g = load_file(symbol).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(
            g.list_arguments(),
            strings(&meta["arguments"]),
            "{label}: arguments"
        );
        assert_eq!(
            g.list_auxiliary_states(),
            strings(&meta["aux"]),
            "{label}: aux"
        );
        assert_eq!(
            g.list_outputs(),
            strings(&meta["outputs"]),
            "{label}: outputs"
        );
    }
    cases.len()
}

#[test]
fn model_lists_match_meta() {
    let checked = check_model_meta("models") + check_model_meta("ops");
    assert!(checked > 0, "no model fixtures found");
}

/// The quantized fixtures record their parameter names (not MXNet's list
/// order): every recorded argument must be an argument, and the auxiliary
/// states must be exactly the recorded ones. Most of them contain fused
/// `_sg_mkldnn_*` nodes, whose auxiliary states come from their subgraphs.
#[test]
fn quantized_model_aux_states_match_meta() {
    let cases = model_fixtures("quantized");
    for (symbol, meta_path) in &cases {
        let meta = read_json(meta_path);
        let label = symbol.display().to_string();
        let g = load_file(symbol).unwrap_or_else(|e| panic!("{label}: {e}"));
        let arguments = g.list_arguments();
        for name in strings(&meta["arguments"]) {
            assert!(
                arguments.contains(&name),
                "{label}: {name} is not an argument"
            );
        }
        if meta.get("aux").is_some() {
            let mut aux = g.list_auxiliary_states();
            let mut expected = strings(&meta["aux"]);
            aux.sort();
            expected.sort();
            assert_eq!(aux, expected, "{label}: auxiliary states");
        }
    }
}

/// Loads `text`, turning a panic into a test failure that shows the input.
fn load_without_panic(text: &str, label: &str) -> bool {
    match std::panic::catch_unwind(|| load_json(text)) {
        Ok(result) => result.is_ok(),
        Err(_) => panic!("{label}: load_json panicked on {text:?}"),
    }
}

/// Truncates and corrupts every golden symbol file at many offsets: each
/// truncated text must give an error, and no input may panic.
#[test]
fn truncated_or_corrupted_json_never_panics() {
    let replacements = [
        "",
        "}",
        "]",
        "\"",
        "0",
        "-1",
        "99999999999",
        "x",
        ",",
        "[",
        "{",
        "null",
        "\\",
    ];
    let mut inputs = 0;
    for (path, _) in symbol_fixtures() {
        let text = fs::read_to_string(&path).unwrap();
        let label = path.file_name().unwrap().to_string_lossy().to_string();
        let boundaries: Vec<usize> = (0..text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        let step = (boundaries.len() / 400).max(1);
        for &cut in boundaries.iter().step_by(step) {
            let truncated = &text[..cut];
            if truncated.trim_end() == text.trim_end() {
                continue;
            }
            assert!(
                !load_without_panic(truncated, &label),
                "{label}: truncated at byte {cut} and still loaded"
            );
            inputs += 1;
        }
        let step = (boundaries.len() / 150).max(1);
        for (n, &at) in boundaries.iter().step_by(step).enumerate() {
            let replacement = replacements[n % replacements.len()];
            let end = boundaries
                .iter()
                .copied()
                .find(|&b| b > at)
                .unwrap_or(text.len());
            let corrupted = format!("{}{}{}", &text[..at], replacement, &text[end..]);
            load_without_panic(&corrupted, &label);
            inputs += 1;
        }
    }
    assert!(inputs > 1000, "only {inputs} inputs were tried");
}

/// Structurally odd but valid graphs built by hand: these must load or fail
/// cleanly, and whatever loads must list and save without panicking.
#[test]
fn hostile_graphs_list_without_panic() {
    let cases = [
        // A head on a variable's second output.
        r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}], "arg_nodes": [0], "heads": [[0, 1, 0]]}"#,
        // A BatchNorm with fewer inputs than the mutated positions, current version.
        r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "BatchNorm", "name": "bn", "inputs": [[0, 0, 0]]}],
            "arg_nodes": [0], "heads": [[1, 0, 0]], "attrs": {"mxnet_version": ["int", 10901]}}"#,
        // A fused node whose subgraph has more inputs than the node.
        r#"{"nodes": [{"op": "null", "name": "x", "inputs": []},
            {"op": "_sg_mkldnn_conv", "name": "f", "inputs": [[0, 0, 0]], "subgraphs": [
              {"nodes": [{"op": "null", "name": "a", "inputs": []}, {"op": "null", "name": "b", "inputs": []},
                         {"op": "null", "name": "c", "inputs": []}, {"op": "null", "name": "m", "inputs": []},
                         {"op": "null", "name": "v", "inputs": []},
                         {"op": "BatchNorm", "name": "bn", "inputs": [[0,0,0],[1,0,0],[2,0,0],[3,0,0],[4,0,0]]}],
               "arg_nodes": [0, 1, 2, 3, 4], "heads": [[5, 0, 0]]}]}],
            "arg_nodes": [0], "heads": [[1, 0, 0]], "attrs": {"mxnet_version": ["int", 10901]}}"#,
        // A subgraph with a dangling input.
        r#"{"nodes": [{"op": "null", "name": "x", "inputs": []},
            {"op": "_sg_mkldnn_conv", "name": "f", "inputs": [[0, 0, 0]], "subgraphs": [
              {"nodes": [{"op": "Activation", "name": "a", "inputs": [[4, 0, 0]]}], "arg_nodes": [], "heads": [[0, 0, 0]]}]}],
            "arg_nodes": [0], "heads": [[1, 0, 0]]}"#,
        // A variable that has inputs, and an empty node name.
        r#"{"nodes": [{"op": "null", "name": "x", "inputs": []}, {"op": "null", "name": "", "inputs": [[0, 0, 0]]},
            {"op": "Activation", "name": "", "attrs": {"act_type": "relu"}, "inputs": [[1, 0, 0]]}],
            "arg_nodes": [0, 1], "heads": [[2, 0, 0]]}"#,
        // Deeply nested arrays.
        &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
    ];
    for (n, text) in cases.iter().enumerate() {
        let label = format!("case {n}");
        if let Ok(g) = std::panic::catch_unwind(|| load_json(text))
            .unwrap_or_else(|_| panic!("{label}: panicked"))
        {
            let _ = (
                g.list_arguments(),
                g.list_auxiliary_states(),
                g.list_outputs(),
            );
            let _ = g.internals().list_outputs();
            load_json(&save_json(&g)).unwrap_or_else(|e| panic!("{label}: reload: {e}"));
        }
    }
}
