//! The operator catalog against the facts MXNet 1.9.1 reports, recorded by
//! `tools/symbol_op_facts.py` in `tests/fixtures/symbols/sym_op_facts.json`.

use mxnet::graph::Attrs;
use mxnet::ops::registry;
use serde_json::Value;
use std::path::Path;

fn facts() -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/symbols/sym_op_facts.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn catalog_matches_mxnet_cases() {
    let facts = facts();
    let cases = facts["cases"].as_array().unwrap();
    assert!(cases.len() > 100, "only {} cases recorded", cases.len());
    for case in cases {
        let op = case["op"].as_str().unwrap();
        let attrs: Attrs = case["attrs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let label = format!("{op} {attrs:?}");
        let def = registry()
            .get(op)
            .unwrap_or_else(|| panic!("{label}: not in the catalog"));
        assert_eq!(
            def.name,
            case["canonical"].as_str().unwrap(),
            "{label}: canonical name"
        );

        let inputs = (def.inputs)(&attrs);
        assert_eq!(inputs, strings(&case["inputs"]), "{label}: inputs");

        let outputs = (def.outputs)(&attrs);
        let total = case["total_outputs"].as_u64().unwrap() as usize;
        assert_eq!(outputs.len(), total, "{label}: output count");
        let visible = (def.visible_outputs)(&attrs).min(outputs.len());
        assert_eq!(
            outputs[..visible].to_vec(),
            strings(&case["visible_outputs"]),
            "{label}: visible outputs"
        );

        let aux: Vec<String> = def
            .mutate_inputs
            .iter()
            .filter_map(|&i| inputs.get(i).cloned())
            .collect();
        assert_eq!(aux, strings(&case["aux"]), "{label}: auxiliary states");
    }
}

/// Every canonical name and alias in the catalog is one MXNet registers for
/// that operator. The `_sg_onednn_*` names belong to later MXNet versions.
#[test]
fn catalog_names_are_mxnet_names() {
    let facts = facts();
    let registered = facts["names"].as_object().unwrap();
    for name in registry().names() {
        if name.starts_with("_sg_onednn_") {
            continue;
        }
        let def = registry().get(name).unwrap();
        let names = registered
            .get(def.name)
            .unwrap_or_else(|| panic!("{} is not an MXNet 1.9.1 operator", def.name));
        assert!(
            strings(names).iter().any(|n| n == name),
            "{name} is not a name of MXNet's {}",
            def.name
        );
    }
}
