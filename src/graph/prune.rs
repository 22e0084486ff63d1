//! Reduction of a graph to what its heads reach, renumbered in DFS order:
//! the node order MXNet gives every graph it loads or saves.

use super::{Entry, Graph, Node};

impl Graph {
    /// Returns a copy with only the nodes the heads reach, in [`Graph::post_order`]
    /// order, with `arg_nodes` listing its variables. Subgraphs are pruned too.
    /// Entries keep their output index and version.
    pub fn pruned(&self) -> Graph {
        let order = self.post_order();
        let mut new_id = vec![usize::MAX; self.nodes.len()];
        for (position, &id) in order.iter().enumerate() {
            new_id[id] = position;
        }
        let renumber = |e: &Entry| Entry {
            node: new_id[e.node],
            ..*e
        };
        let nodes: Vec<Node> = order
            .iter()
            .map(|&id| {
                let node = &self.nodes[id];
                Node {
                    op: node.op.clone(),
                    name: node.name.clone(),
                    attrs: node.attrs.clone(),
                    inputs: node.inputs.iter().map(renumber).collect(),
                    control_deps: node.control_deps.iter().map(|&d| new_id[d]).collect(),
                    subgraphs: node.subgraphs.iter().map(Graph::pruned).collect(),
                }
            })
            .collect();
        let arg_nodes = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_variable())
            .map(|(id, _)| id)
            .collect();
        Graph {
            nodes,
            arg_nodes,
            heads: self.heads.iter().map(renumber).collect(),
            attrs: self.attrs.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_nodes_are_dropped() {
        let var = |name: &str| Node {
            op: "null".into(),
            name: name.into(),
            ..Node::default()
        };
        let g = Graph {
            nodes: vec![
                Node {
                    op: "Activation".into(),
                    name: "act".into(),
                    inputs: vec![Entry {
                        node: 2,
                        index: 0,
                        version: 1,
                    }],
                    ..Node::default()
                },
                var("unused"),
                var("data"),
            ],
            arg_nodes: vec![1, 2],
            heads: vec![Entry {
                node: 0,
                index: 0,
                version: 0,
            }],
            ..Graph::default()
        };
        let p = g.pruned();
        let names: Vec<&str> = p.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["data", "act"]);
        assert_eq!(p.arg_nodes, [0]);
        assert_eq!(p.nodes[1].inputs[0].node, 0);
        assert_eq!(p.nodes[1].inputs[0].version, 1);
        assert_eq!(p.heads[0].node, 1);
    }
}
