//! The graph IR: nodes, entries and attributes as MXNet's symbol JSON
//! describes them, independent of any operator implementation.

pub mod listing;
pub mod prune;

use std::collections::BTreeMap;

/// Operator parameters and hidden `__x__` attributes of one node, as strings.
pub type Attrs = BTreeMap<String, String>;

/// One output of one node: `(node id, output index)`; `version` is kept for
/// serialisation only (MXNet bumps it on mutated aux inputs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    pub node: usize,
    pub index: usize,
    pub version: u32,
}

/// A node: either a variable (`op == "null"`) or an operator application.
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub op: String,
    pub name: String,
    pub attrs: Attrs,
    pub inputs: Vec<Entry>,
    pub control_deps: Vec<usize>,
    /// Nested graphs of fused subgraph operators (`_sg_mkldnn_conv`, …).
    pub subgraphs: Vec<Graph>,
}

impl Node {
    /// True for variable nodes (arguments and auxiliary states).
    pub fn is_variable(&self) -> bool {
        self.op == "null"
    }
}

/// A whole symbol: nodes indexed by id, the ids of variable nodes, and the
/// graph outputs (`heads`).
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub arg_nodes: Vec<usize>,
    pub heads: Vec<Entry>,
    /// Graph-level attributes other than `mxnet_version`, as raw JSON values.
    pub attrs: BTreeMap<String, serde_json::Value>,
}

impl Graph {
    /// Node ids reachable from the heads in MXNet's order: iterative
    /// post-order DFS from each head in turn, visiting a node's inputs in
    /// order and then its control dependencies, each node once.
    pub fn post_order(&self) -> Vec<usize> {
        let mut visited = vec![false; self.nodes.len()];
        let mut order = Vec::new();
        for head in &self.heads {
            if head.node >= self.nodes.len() || visited[head.node] {
                continue;
            }
            // Stack of (node, next child position).
            let mut stack = vec![(head.node, 0usize)];
            visited[head.node] = true;
            while let Some(&mut (id, ref mut pos)) = stack.last_mut() {
                let node = &self.nodes[id];
                let children = node.inputs.len() + node.control_deps.len();
                if *pos < children {
                    let child = if *pos < node.inputs.len() {
                        node.inputs[*pos].node
                    } else {
                        node.control_deps[*pos - node.inputs.len()]
                    };
                    *pos += 1;
                    if child < self.nodes.len() && !visited[child] {
                        visited[child] = true;
                        stack.push((child, 0));
                    }
                } else {
                    order.push(id);
                    stack.pop();
                }
            }
        }
        order
    }
}
