//! Symbol JSON (`*-symbol.json`): every form MXNet 1.x loads, read into a
//! [`Graph`], and the form MXNet 1.9.1 writes.
//!
//! Loading follows MXNet 1.9.1: a strict reader (unknown keys, non-string
//! attribute values and malformed entries are errors), MXNet's reference
//! checks, then the upgrade of files older than 1.9.1. The loaded graph
//! holds only the nodes its heads reach, in DFS order, and canonical
//! operator names in place of aliases, as MXNet's does.
//!
//! Where this loader differs from MXNet 1.9.1:
//! - It rejects graphs with a cycle or with an entry that uses an output
//!   its node does not have. MXNet loads them and then fails or crashes
//!   when it uses them.
//! - It does not parse operator parameters and accepts operators it does not
//!   know. The operator implementations check the parameters they use when
//!   a graph is bound, and graph listing treats an unknown operator as
//!   having one output.
//! - It accepts `\u` escapes in strings, which MXNet's reader rejects.

mod reader;
mod upgrade;
mod validate;
mod writer;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::ops::registry;
use std::path::Path;

/// Parses symbol JSON text into a graph, upgrading legacy files.
pub fn load_json(text: &str) -> Result<Graph> {
    let document = reader::parse(text).map_err(Error::Symbol)?;
    let mut graph = document.graph;
    canonicalize_ops(&mut graph);
    validate::check_references(&graph)?;
    validate::check_executable(&graph)?;
    upgrade::upgrade(
        &mut graph,
        document.version.unwrap_or(upgrade::DEFAULT_VERSION),
    );
    let graph = graph.pruned();
    // The upgrade adds variables and may change attributes, so the graph
    // is checked again in its final form.
    validate::check_executable(&graph)?;
    validate::warn_duplicate_names(&graph);
    Ok(graph)
}

/// Replaces operator aliases (`split`, `ElementWiseSum`, …) with the
/// operator's canonical name, as MXNet's loaded graphs hold them.
/// Operators missing from the catalog keep their name.
fn canonicalize_ops(graph: &mut Graph) {
    for node in &mut graph.nodes {
        if let Some(def) = registry().get(&node.op) {
            if def.name != node.op {
                node.op = def.name.to_string();
            }
        }
        for sub in &mut node.subgraphs {
            canonicalize_ops(sub);
        }
    }
}

/// Reads and parses a symbol JSON file.
pub fn load_file(path: &Path) -> Result<Graph> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_json(&text)
}

/// Serializes the part of `graph` its heads reach as MXNet 1.9.1 writes it,
/// with `"mxnet_version": ["int", 10901]`.
pub fn save_json(graph: &Graph) -> String {
    writer::write(&graph.pruned())
}

/// Writes [`save_json`]'s text to a file.
pub fn save_file(graph: &Graph, path: &Path) -> Result<()> {
    std::fs::write(path, save_json(graph)).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"{
        "nodes": [
            {"op": "null", "name": "data", "inputs": []},
            {"op": "null", "name": "fc_weight", "inputs": []},
            {"op": "null", "name": "fc_bias", "inputs": []},
            {"op": "FullyConnected", "name": "fc", "attrs": {"num_hidden": "4"},
             "inputs": [[0, 0, 0], [1, 0, 0], [2, 0, 0]]},
            {"op": "Activation", "name": "relu", "attrs": {"act_type": "relu"}, "inputs": [[3, 0, 0]]}
        ],
        "arg_nodes": [0, 1, 2],
        "heads": [[4, 0, 0]],
        "attrs": {"mxnet_version": ["int", 10901]}
    }"#;

    #[test]
    fn round_trip_keeps_graph() {
        let g = load_json(SMALL).unwrap();
        let text = save_json(&g);
        let again = load_json(&text).unwrap();
        assert_eq!(save_json(&again), text);
        assert_eq!(again.list_arguments(), ["data", "fc_weight", "fc_bias"]);
        assert_eq!(again.list_outputs(), ["relu_output"]);
    }

    #[test]
    fn legacy_batch_norm_gets_moving_stats() {
        let text = r#"{
            "nodes": [
                {"op": "null", "name": "data", "inputs": []},
                {"op": "null", "name": "bn_gamma", "inputs": []},
                {"op": "null", "name": "bn_beta", "inputs": []},
                {"op": "BatchNorm", "name": "bn", "param": {"eps": "0.001"},
                 "inputs": [[0, 0], [1, 0], [2, 0]], "backward_source_id": -1}
            ],
            "arg_nodes": [0, 1, 2],
            "heads": [[3, 0]]
        }"#;
        let g = load_json(text).unwrap();
        assert_eq!(g.list_arguments(), ["data", "bn_gamma", "bn_beta"]);
        assert_eq!(
            g.list_auxiliary_states(),
            ["bn_moving_mean", "bn_moving_var"]
        );
        let mean = g.nodes.iter().find(|n| n.name == "bn_moving_mean").unwrap();
        assert_eq!(mean.attrs.get("eps").unwrap(), "0.001");
        assert_eq!(mean.attrs.get("__init__").unwrap(), "[\"zero\", {}]");
    }

    #[test]
    fn hidden_keys_move_to_inputs() {
        let text = r#"{
            "nodes": [
                {"op": "null", "name": "data", "attr": {"lr_mult": "0.5"}, "inputs": []},
                {"op": "null", "name": "w", "inputs": []},
                {"op": "FullyConnected", "name": "fc",
                 "attr": {"num_hidden": "2", "no_bias": "True", "weight_lr_mult": "2", "wd_mult": "0"},
                 "inputs": [[0, 0], [1, 0]]}
            ],
            "arg_nodes": [0, 1],
            "heads": [[2, 0]],
            "attrs": {"mxnet_version": ["int", 10600]}
        }"#;
        let g = load_json(text).unwrap();
        let attrs = |name: &str| {
            g.nodes
                .iter()
                .find(|n| n.name == name)
                .unwrap()
                .attrs
                .clone()
        };
        assert_eq!(attrs("data").get("__lr_mult__").unwrap(), "0.5");
        assert_eq!(attrs("w").get("__lr_mult__").unwrap(), "2");
        assert_eq!(attrs("fc").get("__wd_mult__").unwrap(), "0");
        assert!(!attrs("fc").contains_key("weight_lr_mult"));
    }

    #[test]
    fn current_version_keeps_legacy_keys() {
        let text = r#"{
            "nodes": [{"op": "null", "name": "data", "attrs": {"lr_mult": "0.5"}, "inputs": []}],
            "arg_nodes": [0], "heads": [[0, 0, 0]],
            "attrs": {"mxnet_version": ["int", 10901]}
        }"#;
        let g = load_json(text).unwrap();
        assert_eq!(g.nodes[0].attrs.get("lr_mult").unwrap(), "0.5");
    }

    #[test]
    fn argmax_axis_dropped_before_0_9_5() {
        let text = |version: i64| {
            format!(
                r#"{{"nodes": [{{"op": "null", "name": "x", "inputs": []}},
                    {{"op": "argmax", "name": "a", "attrs": {{"axis": "-1"}}, "inputs": [[0, 0]]}}],
                   "arg_nodes": [0], "heads": [[1, 0]],
                   "attrs": {{"mxnet_version": ["int", {version}]}}}}"#
            )
        };
        assert!(load_json(&text(904)).unwrap().nodes[1].attrs.is_empty());
        assert_eq!(load_json(&text(905)).unwrap().nodes[1].attrs.len(), 1);
    }

    #[test]
    fn aliases_become_canonical_names() {
        let text = SMALL.replace("\"op\": \"Activation\"", "\"op\": \"identity\"");
        let g = load_json(&text).unwrap();
        assert_eq!(g.nodes[4].op, "_copy");
        assert!(save_json(&g).contains("\"op\": \"_copy\""));
    }

    #[test]
    fn arg_nodes_must_be_variables() {
        let text = SMALL.replace("\"arg_nodes\": [0, 1, 2]", "\"arg_nodes\": [0, 3]");
        let err = load_json(&text).unwrap_err().to_string();
        assert!(err.contains("node 3 (\"fc\")"), "{err}");
    }

    #[test]
    fn missing_file_names_path() {
        let err = load_file(Path::new("/nonexistent/model-symbol.json")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/model-symbol.json"));
    }
}
