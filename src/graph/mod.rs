//! The graph IR: nodes, entries and attributes as MXNet's symbol JSON
//! describes them, independent of any operator implementation.

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
