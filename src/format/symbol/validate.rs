//! Checks on a parsed graph. Every error names the node involved.
//!
//! [`check_references`] applies MXNet 1.9.1's own load-time checks: node
//! ids in inputs, control dependencies, heads and `arg_nodes` must exist,
//! and `arg_nodes` may list only variables.
//!
//! [`check_executable`] goes further than MXNet, which loads a graph with a
//! cycle or with an output index beyond a node's outputs and then fails or
//! crashes when it lists, binds or saves it. This library rejects such a
//! graph when loading it.

use crate::error::{Error, Result};
use crate::graph::{Entry, Graph};

fn invalid(msg: String) -> Error {
    Error::Symbol(msg)
}

/// `node 3 ("fc")`, the form every message uses to name a node.
fn describe(graph: &Graph, id: usize) -> String {
    format!("node {id} ({:?})", graph.nodes[id].name)
}

/// Attributes that set how many inputs or outputs an operator has.
const COUNT_ATTRIBUTES: [&str; 2] = ["num_outputs", "num_args"];

/// Checks that every id the graph refers to exists, recursively into subgraphs.
pub fn check_references(graph: &Graph) -> Result<()> {
    let count = graph.nodes.len();
    for (id, node) in graph.nodes.iter().enumerate() {
        for key in COUNT_ATTRIBUTES {
            let Some(value) = node.attrs.get(key).filter(|_| !node.is_variable()) else {
                continue;
            };
            let valid = crate::ops::attrs::parse_int(value)
                .is_some_and(|v| (0..=crate::ops::catalog::MAX_COUNT as i64).contains(&v));
            if !valid {
                return Err(invalid(format!(
                    "{}: attribute {key}={value:?} is not a count between 0 and {}",
                    describe(graph, id),
                    crate::ops::catalog::MAX_COUNT
                )));
            }
        }
        for (position, input) in node.inputs.iter().enumerate() {
            if input.node >= count {
                return Err(invalid(format!(
                    "{}: input {position} refers to node {}, but the graph has {count} nodes",
                    describe(graph, id),
                    input.node
                )));
            }
        }
        for &dep in &node.control_deps {
            if dep >= count {
                return Err(invalid(format!(
                    "{}: control dependency refers to node {dep}, but the graph has {count} nodes",
                    describe(graph, id)
                )));
            }
        }
        for (index, sub) in node.subgraphs.iter().enumerate() {
            check_references(sub).map_err(|e| in_subgraph(e, graph, id, index))?;
        }
    }
    for (position, head) in graph.heads.iter().enumerate() {
        if head.node >= count {
            return Err(invalid(format!(
                "head {position} refers to node {}, but the graph has {count} nodes",
                head.node
            )));
        }
    }
    for &id in &graph.arg_nodes {
        if id >= count {
            return Err(invalid(format!(
                "arg_nodes lists node {id}, but the graph has {count} nodes"
            )));
        }
        if !graph.nodes[id].is_variable() {
            return Err(invalid(format!(
                "arg_nodes lists {}, which is an operator ({}), not a variable",
                describe(graph, id),
                graph.nodes[id].op
            )));
        }
    }
    Ok(())
}

/// Checks, for the part of the graph the heads reach, that it has no cycle
/// and that every entry names an output its node has. Recurses into subgraphs.
pub fn check_executable(graph: &Graph) -> Result<()> {
    check_acyclic(graph)?;
    let check_entry = |entry: &Entry, user: &str| -> Result<()> {
        let node = &graph.nodes[entry.node];
        if !node.is_variable() && crate::ops::registry().get(&node.op).is_none() {
            // The output count of an unknown operator is unknown; binding
            // reports the operator as unsupported.
            return Ok(());
        }
        let outputs = graph.num_outputs(entry.node);
        if entry.index >= outputs {
            let kind = if node.is_variable() {
                "a variable".to_string()
            } else {
                format!("operator {}", node.op)
            };
            return Err(invalid(format!(
                "{user} uses output {} of {}, but {kind} has {outputs} output{}",
                entry.index,
                describe(graph, entry.node),
                if outputs == 1 { "" } else { "s" }
            )));
        }
        Ok(())
    };
    for id in graph.post_order() {
        let node = &graph.nodes[id];
        for input in &node.inputs {
            check_entry(input, &describe(graph, id))?;
        }
        for (index, sub) in node.subgraphs.iter().enumerate() {
            check_executable(sub).map_err(|e| in_subgraph(e, graph, id, index))?;
        }
    }
    for (position, head) in graph.heads.iter().enumerate() {
        check_entry(head, &format!("head {position}"))?;
    }
    Ok(())
}

/// Finds a cycle among the nodes reachable from the heads, following
/// inputs and control dependencies, with an iterative three-color DFS.
fn check_acyclic(graph: &Graph) -> Result<()> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut mark = vec![Mark::New; graph.nodes.len()];
    for head in &graph.heads {
        if mark[head.node] != Mark::New {
            continue;
        }
        let mut stack = vec![(head.node, 0usize)];
        mark[head.node] = Mark::OnStack;
        while let Some(&mut (id, ref mut next)) = stack.last_mut() {
            let node = &graph.nodes[id];
            let edges = node.inputs.len() + node.control_deps.len();
            if *next == edges {
                mark[id] = Mark::Done;
                stack.pop();
                continue;
            }
            let child = if *next < node.inputs.len() {
                node.inputs[*next].node
            } else {
                node.control_deps[*next - node.inputs.len()]
            };
            *next += 1;
            match mark[child] {
                Mark::New => {
                    mark[child] = Mark::OnStack;
                    stack.push((child, 0));
                }
                Mark::OnStack => {
                    return Err(invalid(format!(
                        "the graph has a cycle: {} depends on {}, which depends on it",
                        describe(graph, id),
                        describe(graph, child)
                    )));
                }
                Mark::Done => {}
            }
        }
    }
    Ok(())
}

fn in_subgraph(error: Error, graph: &Graph, id: usize, index: usize) -> Error {
    match error {
        Error::Symbol(msg) => invalid(format!(
            "subgraph {index} of {}: {msg}",
            describe(graph, id)
        )),
        other => other,
    }
}

/// Logs variables that share a name. MXNet 1.9.1 loads such graphs, but
/// binding arguments by name cannot tell the variables apart.
pub fn warn_duplicate_names(graph: &Graph) {
    let mut seen = std::collections::HashSet::new();
    for id in graph.input_nodes() {
        let name = &graph.nodes[id].name;
        if !seen.insert(name) {
            log::warn!("the symbol has more than one variable named {name:?}; binding by name sees only one of them");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Node;

    fn entry(node: usize, index: usize) -> Entry {
        Entry {
            node,
            index,
            version: 0,
        }
    }

    fn graph(nodes: Vec<(&str, Vec<Entry>)>, heads: Vec<Entry>) -> Graph {
        Graph {
            nodes: nodes
                .into_iter()
                .enumerate()
                .map(|(i, (op, inputs))| Node {
                    op: op.into(),
                    name: format!("n{i}"),
                    inputs,
                    ..Node::default()
                })
                .collect(),
            heads,
            ..Graph::default()
        }
    }

    #[test]
    fn cycle_is_found() {
        let g = graph(
            vec![
                ("null", vec![]),
                ("Activation", vec![entry(2, 0)]),
                ("Activation", vec![entry(1, 0)]),
                ("elemwise_add", vec![entry(0, 0), entry(2, 0)]),
            ],
            vec![entry(3, 0)],
        );
        let err = check_executable(&g).unwrap_err().to_string();
        assert!(err.contains("cycle"), "{err}");
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let g = graph(vec![("Activation", vec![entry(0, 0)])], vec![entry(0, 0)]);
        assert!(check_executable(&g).is_err());
    }

    #[test]
    fn diamond_is_not_a_cycle() {
        let g = graph(
            vec![
                ("null", vec![]),
                ("Activation", vec![entry(0, 0)]),
                ("Activation", vec![entry(0, 0)]),
                ("elemwise_add", vec![entry(1, 0), entry(2, 0)]),
            ],
            vec![entry(3, 0)],
        );
        check_executable(&g).unwrap();
    }

    #[test]
    fn output_index_beyond_count() {
        let g = graph(
            vec![("null", vec![]), ("FullyConnected", vec![entry(0, 0)])],
            vec![entry(1, 1)],
        );
        let err = check_executable(&g).unwrap_err().to_string();
        assert!(
            err.contains("head 0 uses output 1 of node 1 (\"n1\")"),
            "{err}"
        );
    }

    #[test]
    fn dangling_input_names_node() {
        let g = graph(
            vec![("null", vec![]), ("Activation", vec![entry(5, 0)])],
            vec![entry(1, 0)],
        );
        let err = check_references(&g).unwrap_err().to_string();
        assert!(
            err.contains("node 1 (\"n1\"): input 0 refers to node 5"),
            "{err}"
        );
    }
}
