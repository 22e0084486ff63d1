//! The load-time upgrade of files written by older MXNet versions.
//!
//! MXNet 1.9.1 reads `mxnet_version` (a missing one counts as 0.8.0, i.e.
//! 800) and runs every step whose threshold is above the file's version, in
//! this order:
//!
//! | threshold | step |
//! |---|---|
//! | 10901 | legacy hidden keys (`lr_mult`, …) become `__lr_mult__`, … |
//! | 900   | inputs missing from a node are added as new variables |
//! | 904   | BatchNorm-style operators give their moving mean/var an `__init__` |
//! | 905   | `axis = -1` is removed from argmax and argmin |
//!
//! Each step visits the nodes the heads reach, in DFS order, as MXNet does.
//! Subgraphs are not upgraded: MXNet does not upgrade them either.

use crate::graph::{Attrs, Entry, Graph, Node};
use crate::ops::registry;

/// The version MXNet assumes for files without `mxnet_version`: 0.8.0.
pub const DEFAULT_VERSION: i64 = 800;

/// Keys that older MXNet versions wrote without the `__` around them.
const LEGACY_HIDDEN_KEYS: &[&str] = &[
    "ctx_group",
    "lr_mult",
    "wd_mult",
    "force_mirroring",
    "mirror_stage",
];

/// Operators whose moving mean and variance (inputs 3 and 4) get an
/// initializer attribute when they are composed.
const MOVING_STATS_OPS: &[&str] = &[
    "BatchNorm",
    "BatchNorm_v1",
    "_contrib_SyncBatchNorm",
    "_contrib_BatchNormWithReLU",
];

/// Runs every upgrade step that applies to a file of `version`.
pub fn upgrade(graph: &mut Graph, version: i64) {
    let current = i64::from(crate::MXNET_VERSION);
    if version < current {
        log::info!(
            "upgrading a symbol saved by MXNet {}",
            version_text(version)
        );
    } else if version > current {
        log::warn!(
            "the symbol was saved by MXNet {}, which is newer than {}; loading it anyway",
            version_text(version),
            version_text(current)
        );
    }
    if version < current {
        fix_hidden_keys(graph);
    }
    if version < 900 {
        add_missing_inputs(graph);
    }
    if version < 904 {
        set_moving_stats_init(graph);
    }
    if version < 905 {
        drop_argmax_axis(graph);
    }
}

/// `10901` → `v1.9.1`.
fn version_text(version: i64) -> String {
    format!(
        "v{}.{}.{}",
        version / 10000,
        version / 100 % 100,
        version % 100
    )
}

/// Input names of an operator node; empty for operators missing from the
/// catalog, whose legacy keys and missing inputs are then left alone.
fn input_names(node: &Node) -> Vec<String> {
    registry()
        .get(&node.op)
        .map(|def| (def.inputs)(&node.attrs))
        .unwrap_or_default()
}

/// Target of a legacy hidden key: the node itself, or the variable feeding
/// the input named by the key's prefix (`weight_lr_mult`).
enum HiddenKey<'a> {
    Own(&'a str),
    Input { input: &'a str, hidden: &'a str },
}

fn classify_hidden_key(key: &str) -> Option<HiddenKey<'_>> {
    for &hidden in LEGACY_HIDDEN_KEYS {
        if key == hidden {
            return Some(HiddenKey::Own(hidden));
        }
        // MXNet drops the one character between the input name and the
        // hidden key without checking that it is an underscore, and needs at
        // least one character of input name.
        if let Some(prefix) = key.strip_suffix(hidden) {
            if prefix.len() >= 2 && prefix.is_char_boundary(prefix.len() - 1) {
                return Some(HiddenKey::Input {
                    input: &prefix[..prefix.len() - 1],
                    hidden,
                });
            }
        }
    }
    None
}

/// Rewrites `lr_mult` to `__lr_mult__` on the node, and `<input>_lr_mult` to
/// `__lr_mult__` on the variable feeding `<input>`. A key whose input is not
/// fed by a variable stays as it is.
fn fix_hidden_keys(graph: &mut Graph) {
    for id in graph.post_order() {
        let legacy: Vec<(String, String)> = graph.nodes[id]
            .attrs
            .iter()
            .filter(|(key, _)| classify_hidden_key(key).is_some())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if legacy.is_empty() {
            continue;
        }
        let names = input_names(&graph.nodes[id]);
        for (key, value) in legacy {
            let target = match classify_hidden_key(&key) {
                Some(HiddenKey::Own(hidden)) => Some((id, hidden)),
                Some(HiddenKey::Input { input, hidden }) => {
                    let node = &graph.nodes[id];
                    names
                        .iter()
                        .zip(&node.inputs)
                        .find(|(name, _)| name.as_str() == input)
                        .map(|(_, e)| e.node)
                        .filter(|&source| graph.nodes[source].is_variable())
                        .map(|source| (source, hidden))
                }
                None => None,
            };
            if let Some((target, hidden)) = target {
                graph.nodes[id].attrs.remove(&key);
                graph.nodes[target]
                    .attrs
                    .insert(format!("__{hidden}__"), value);
            } else {
                log::debug!(
                    "node {:?}: attribute {key:?} names no variable input; keeping it as it is",
                    graph.nodes[id].name
                );
            }
        }
    }
}

/// Adds the inputs that 0.8-era files leave out (BatchNorm's moving
/// statistics, a FullyConnected bias, …) as variables named
/// `<node>_<input>` that carry a copy of the node's attributes.
fn add_missing_inputs(graph: &mut Graph) {
    for id in graph.post_order() {
        let node = &graph.nodes[id];
        if node.is_variable() {
            continue;
        }
        let names = input_names(node);
        if node.inputs.len() >= names.len() {
            continue;
        }
        let missing: Vec<String> = names[node.inputs.len()..].to_vec();
        let (prefix, attrs) = (node.name.clone(), node.attrs.clone());
        for input in missing {
            let var = graph.nodes.len();
            graph.nodes.push(Node {
                op: "null".into(),
                name: format!("{prefix}_{input}"),
                attrs: attrs.clone(),
                ..Node::default()
            });
            graph.arg_nodes.push(var);
            graph.nodes[id].inputs.push(Entry {
                node: var,
                index: 0,
                version: 0,
            });
        }
    }
}

/// Gives the moving mean and variance variables of BatchNorm-style
/// operators the initializers MXNet sets when composing them, unless they
/// already have one.
fn set_moving_stats_init(graph: &mut Graph) {
    for id in graph.post_order() {
        let node = &graph.nodes[id];
        let canonical = registry()
            .get(&node.op)
            .map_or(node.op.as_str(), |d| d.name);
        if !MOVING_STATS_OPS.contains(&canonical) {
            continue;
        }
        let inits = [(3, "[\"zero\", {}]"), (4, "[\"one\", {}]")];
        let targets: Vec<(usize, &str)> = inits
            .iter()
            .filter_map(|&(position, init)| node.inputs.get(position).map(|e| (e.node, init)))
            .collect();
        for (var, init) in targets {
            if graph.nodes[var].is_variable() {
                set_if_absent(&mut graph.nodes[var].attrs, "__init__", init);
            }
        }
    }
}

fn set_if_absent(attrs: &mut Attrs, key: &str, value: &str) {
    attrs
        .entry(key.to_string())
        .or_insert_with(|| value.to_string());
}

/// Removes `axis = -1` from argmax and argmin, which meant "no axis" before 0.9.5.
fn drop_argmax_axis(graph: &mut Graph) {
    for id in graph.post_order() {
        let node = &mut graph.nodes[id];
        if matches!(node.op.as_str(), "argmax" | "argmin")
            && node.attrs.get("axis").map(|v| v.trim()) == Some("-1")
        {
            node.attrs.remove("axis");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_key_forms() {
        assert!(matches!(
            classify_hidden_key("lr_mult"),
            Some(HiddenKey::Own("lr_mult"))
        ));
        assert!(matches!(
            classify_hidden_key("weight_lr_mult"),
            Some(HiddenKey::Input {
                input: "weight",
                hidden: "lr_mult"
            })
        ));
        assert!(matches!(
            classify_hidden_key("bias_wd_mult"),
            Some(HiddenKey::Input {
                input: "bias",
                hidden: "wd_mult"
            })
        ));
        // One character of prefix is not enough: MXNet keeps `_lr_mult`.
        assert!(classify_hidden_key("_lr_mult").is_none());
        assert!(classify_hidden_key("num_hidden").is_none());
    }

    #[test]
    fn version_names() {
        assert_eq!(version_text(800), "v0.8.0");
        assert_eq!(version_text(10901), "v1.9.1");
    }
}
