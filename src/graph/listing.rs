//! Names MXNet derives from a graph: arguments, auxiliary states, outputs
//! and internals, with MXNet 1.9.1's rules and order.
//!
//! Every list follows [`Graph::post_order`], so nodes that the heads do not
//! reach are left out, as MXNet leaves them out. Operators missing from the
//! catalog count as having one output named `output` and no mutated input.

use super::{Entry, Graph, Node};
use crate::ops::registry;
use std::collections::HashSet;

/// Returns the output names of an operator node, hidden outputs included,
/// or `["output"]` for operators missing from the catalog.
fn op_output_names(node: &Node) -> Vec<String> {
    match registry().get(&node.op) {
        Some(def) => {
            let names = (def.outputs)(&node.attrs);
            if names.is_empty() {
                vec!["output".to_string()]
            } else {
                names
            }
        }
        None => vec!["output".to_string()],
    }
}

/// True for the fused subgraph operators (`_sg_mkldnn_conv`, …), whose
/// inputs bind positionally to the inputs of their nested graph.
fn binds_subgraph_inputs(node: &Node) -> bool {
    node.op.starts_with("_sg_") && !node.subgraphs.is_empty()
}

impl Graph {
    /// Number of outputs of node `id`, hidden ones included. A variable has one.
    pub fn num_outputs(&self, id: usize) -> usize {
        let node = &self.nodes[id];
        if node.is_variable() {
            1
        } else {
            op_output_names(node).len()
        }
    }

    /// Number of outputs of node `id` that users see (in `list_outputs`,
    /// internals and output indices of a symbol).
    pub fn num_visible_outputs(&self, id: usize) -> usize {
        let node = &self.nodes[id];
        let total = self.num_outputs(id);
        if node.is_variable() {
            return total;
        }
        match registry().get(&node.op) {
            Some(def) => (def.visible_outputs)(&node.attrs).min(total),
            None => total,
        }
    }

    /// Returns the name MXNet gives one output: a variable's own name, otherwise
    /// `<node>_<output name>`, or just the output name when the node has
    /// no name.
    pub fn entry_name(&self, entry: Entry) -> String {
        let node = &self.nodes[entry.node];
        if node.is_variable() {
            return node.name.clone();
        }
        let names = op_output_names(node);
        let output = names
            .get(entry.index)
            .cloned()
            .unwrap_or_else(|| format!("output{}", entry.index));
        if node.name.is_empty() {
            output
        } else {
            format!("{}_{}", node.name, output)
        }
    }

    /// Input positions of node `id` that the operator mutates. For a fused
    /// subgraph operator these are the positions bound to auxiliary states
    /// of its nested graph.
    pub fn mutated_inputs(&self, id: usize) -> Vec<usize> {
        let node = &self.nodes[id];
        if node.is_variable() {
            return Vec::new();
        }
        let mut positions: Vec<usize> = registry()
            .get(&node.op)
            .map(|def| def.mutate_inputs.to_vec())
            .unwrap_or_default();
        if binds_subgraph_inputs(node) {
            let sub = &node.subgraphs[0];
            let aux: HashSet<usize> = sub.auxiliary_state_nodes().into_iter().collect();
            for (position, var) in sub.input_nodes().into_iter().enumerate() {
                if aux.contains(&var) && !positions.contains(&position) {
                    positions.push(position);
                }
            }
        }
        positions.retain(|&p| p < node.inputs.len());
        positions
    }

    /// Ids of every variable reachable from the heads, in DFS order.
    pub fn input_nodes(&self) -> Vec<usize> {
        self.post_order()
            .into_iter()
            .filter(|&id| self.nodes[id].is_variable())
            .collect()
    }

    /// Ids of the variables that some reachable operator mutates.
    fn mutated_variables(&self, order: &[usize]) -> HashSet<usize> {
        let mut mutated = HashSet::new();
        for &id in order {
            for position in self.mutated_inputs(id) {
                let source = self.nodes[id].inputs[position].node;
                if self.nodes.get(source).is_some_and(Node::is_variable) {
                    mutated.insert(source);
                }
            }
        }
        mutated
    }

    /// Splits the reachable variables into arguments and auxiliary states,
    /// each in DFS order. A variable is an auxiliary state when at least one
    /// consumer mutates the input it feeds.
    pub fn argument_and_auxiliary_nodes(&self) -> (Vec<usize>, Vec<usize>) {
        let order = self.post_order();
        let mutated = self.mutated_variables(&order);
        order
            .into_iter()
            .filter(|&id| self.nodes[id].is_variable())
            .partition(|id| !mutated.contains(id))
    }

    /// Ids of the argument variables, in DFS order.
    pub fn argument_nodes(&self) -> Vec<usize> {
        self.argument_and_auxiliary_nodes().0
    }

    /// Ids of the auxiliary-state variables, in DFS order.
    pub fn auxiliary_state_nodes(&self) -> Vec<usize> {
        self.argument_and_auxiliary_nodes().1
    }

    /// Names of every reachable variable, arguments and auxiliary states
    /// interleaved as the DFS visits them (`list_inputs`).
    pub fn list_inputs(&self) -> Vec<String> {
        self.names_of(&self.input_nodes())
    }

    /// `list_arguments()`: variables that no operator mutates.
    pub fn list_arguments(&self) -> Vec<String> {
        self.names_of(&self.argument_nodes())
    }

    /// `list_auxiliary_states()`: variables that an operator mutates.
    pub fn list_auxiliary_states(&self) -> Vec<String> {
        self.names_of(&self.auxiliary_state_nodes())
    }

    /// `list_outputs()`: the name of each head.
    pub fn list_outputs(&self) -> Vec<String> {
        self.heads.iter().map(|&e| self.entry_name(e)).collect()
    }

    /// Builds the internals symbol (`get_internals()`): the same nodes, with a head
    /// for every reachable variable and every visible output of every
    /// reachable operator, in DFS order.
    pub fn internals(&self) -> Graph {
        let mut heads = Vec::new();
        for id in self.post_order() {
            for index in 0..self.num_visible_outputs(id) {
                heads.push(Entry {
                    node: id,
                    index,
                    version: 0,
                });
            }
        }
        Graph {
            heads,
            ..self.clone()
        }
    }

    fn names_of(&self, ids: &[usize]) -> Vec<String> {
        ids.iter().map(|&id| self.nodes[id].name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Attrs;

    fn attrs(pairs: &[(&str, &str)]) -> Attrs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn entry(node: usize, index: usize) -> Entry {
        Entry {
            node,
            index,
            version: 0,
        }
    }

    fn var(name: &str) -> Node {
        Node {
            op: "null".into(),
            name: name.into(),
            ..Node::default()
        }
    }

    fn apply(op: &str, name: &str, a: Attrs, inputs: Vec<Entry>) -> Node {
        Node {
            op: op.into(),
            name: name.into(),
            attrs: a,
            inputs,
            ..Node::default()
        }
    }

    /// data → BatchNorm(bn0) → SoftmaxOutput(softmax), as MXNet composes it.
    fn bn_graph() -> Graph {
        let nodes = vec![
            var("data"),
            var("bn0_gamma"),
            var("bn0_beta"),
            var("bn0_moving_mean"),
            var("bn0_moving_var"),
            apply(
                "BatchNorm",
                "bn0",
                Attrs::new(),
                (0..5).map(|i| entry(i, 0)).collect(),
            ),
            var("softmax_label"),
            apply(
                "SoftmaxOutput",
                "softmax",
                Attrs::new(),
                vec![entry(5, 0), entry(6, 0)],
            ),
        ];
        Graph {
            nodes,
            arg_nodes: vec![0, 1, 2, 3, 4, 6],
            heads: vec![entry(7, 0)],
            ..Graph::default()
        }
    }

    #[test]
    fn batch_norm_statistics_are_aux() {
        let g = bn_graph();
        assert_eq!(
            g.list_arguments(),
            ["data", "bn0_gamma", "bn0_beta", "softmax_label"]
        );
        assert_eq!(
            g.list_auxiliary_states(),
            ["bn0_moving_mean", "bn0_moving_var"]
        );
        assert_eq!(g.list_inputs().len(), 6);
        assert_eq!(g.list_outputs(), ["softmax_output"]);
    }

    #[test]
    fn internals_skip_hidden_outputs() {
        let g = bn_graph();
        let names = g.internals().list_outputs();
        assert_eq!(
            names,
            [
                "data",
                "bn0_gamma",
                "bn0_beta",
                "bn0_moving_mean",
                "bn0_moving_var",
                "bn0_output",
                "softmax_label",
                "softmax_output"
            ]
        );
    }

    #[test]
    fn unknown_op_has_one_output() {
        let g = Graph {
            nodes: vec![
                var("x"),
                apply("NotInCatalog", "n", Attrs::new(), vec![entry(0, 0)]),
            ],
            heads: vec![entry(1, 0)],
            ..Graph::default()
        };
        assert_eq!(g.num_outputs(1), 1);
        assert_eq!(g.list_outputs(), ["n_output"]);
        assert!(g.mutated_inputs(1).is_empty());
    }

    #[test]
    fn empty_node_name_gives_output_name() {
        let g = Graph {
            nodes: vec![
                var("x"),
                apply(
                    "SliceChannel",
                    "",
                    attrs(&[("num_outputs", "2")]),
                    vec![entry(0, 0)],
                ),
            ],
            heads: vec![entry(1, 1)],
            ..Graph::default()
        };
        assert_eq!(g.list_outputs(), ["output1"]);
    }

    #[test]
    fn fused_op_marks_subgraph_aux_inputs() {
        // The nested graph: conv(data0, w0) → BatchNorm with its own variables.
        let sub = Graph {
            nodes: vec![
                var("data0"),
                var("w0"),
                apply(
                    "Convolution",
                    "conv",
                    attrs(&[("no_bias", "True")]),
                    vec![entry(0, 0), entry(1, 0)],
                ),
                var("g0"),
                var("b0"),
                var("mean0"),
                var("var0"),
                apply(
                    "BatchNorm",
                    "bn",
                    Attrs::new(),
                    vec![
                        entry(2, 0),
                        entry(3, 0),
                        entry(4, 0),
                        entry(5, 0),
                        entry(6, 0),
                    ],
                ),
            ],
            heads: vec![entry(7, 0)],
            ..Graph::default()
        };
        let mut fused = apply(
            "_sg_mkldnn_conv",
            "fused",
            attrs(&[("with_bn", "true")]),
            (0..6).map(|i| entry(i, 0)).collect(),
        );
        fused.subgraphs = vec![sub];
        let g = Graph {
            nodes: vec![
                var("data"),
                var("w"),
                var("g"),
                var("b"),
                var("mean"),
                var("var"),
                fused,
            ],
            heads: vec![entry(6, 0)],
            ..Graph::default()
        };
        assert_eq!(g.mutated_inputs(6), [4, 5]);
        assert_eq!(g.list_arguments(), ["data", "w", "g", "b"]);
        assert_eq!(g.list_auxiliary_states(), ["mean", "var"]);
    }
}
