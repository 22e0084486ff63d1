//! The JSON writer, laid out as MXNet 1.9.1's `tojson()` lays it out.
//!
//! The layout rules, measured on MXNet 1.9.1's output:
//! - two spaces of indentation per level, `", "` between items (so a line
//!   that continues ends in a space) and `": "` after keys;
//! - the graph and node objects always span several lines;
//! - a string dictionary spans several lines only with more than one entry;
//! - an array spans several lines when it contains objects (nodes, subgraphs)
//!   or more than 10 items, and an entry `[node, output, version]` is one line;
//! - node keys come in the order `op, name, attrs, inputs, control_deps,
//!   subgraphs`, where `attrs` (sorted by key), `control_deps` and
//!   `subgraphs` appear only when not empty;
//! - subgraphs have no `attrs`, the top level has only `mxnet_version`.

use crate::graph::{Entry, Graph, Node};

/// Arrays of plain values longer than this span several lines.
const INLINE_ARRAY_MAX: usize = 10;

/// Serializes `graph` (already pruned to the reachable nodes).
pub fn write(graph: &Graph) -> String {
    let mut w = Writer::default();
    write_graph(&mut w, graph, true);
    w.out
}

/// A JSON text builder that tracks, per open container, whether it spans
/// several lines and how many items it has.
#[derive(Default)]
struct Writer {
    out: String,
    scopes: Vec<(bool, usize)>,
}

impl Writer {
    fn open(&mut self, bracket: char, multi_line: bool) {
        self.out.push(bracket);
        self.scopes.push((multi_line, 0));
    }

    fn close(&mut self, bracket: char) {
        let (multi_line, count) = self.scopes.pop().unwrap_or((false, 0));
        if multi_line && count > 0 {
            self.newline();
        }
        self.out.push(bracket);
    }

    /// Starts the next item of the innermost container.
    fn item(&mut self) {
        let Some(scope) = self.scopes.last_mut() else {
            return;
        };
        let (multi_line, count) = *scope;
        scope.1 += 1;
        if count > 0 {
            self.out.push_str(", ");
        }
        if multi_line {
            self.newline();
        }
    }

    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.scopes.len() {
            self.out.push_str("  ");
        }
    }

    fn key(&mut self, key: &str) {
        self.item();
        self.string(key);
        self.out.push_str(": ");
    }

    /// Writes a JSON string. `"`, `\` and the control characters are
    /// escaped; everything else, non-ASCII included, is written as it is.
    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                // NOTE: MXNet writes these bytes raw, which is not valid
                // JSON; the \u form reads back here but MXNet rejects it.
                c if (c as u32) < 0x20 => self.out.push_str(&format!("\\u{:04x}", c as u32)),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    fn number(&mut self, n: impl std::fmt::Display) {
        self.out.push_str(&n.to_string());
    }

    fn numbers(&mut self, values: &[usize]) {
        self.open('[', values.len() > INLINE_ARRAY_MAX);
        for &v in values {
            self.item();
            self.number(v);
        }
        self.close(']');
    }

    fn entries(&mut self, entries: &[Entry]) {
        self.open('[', entries.len() > INLINE_ARRAY_MAX);
        for e in entries {
            self.item();
            self.open('[', false);
            for v in [e.node, e.index, e.version as usize] {
                self.item();
                self.number(v);
            }
            self.close(']');
        }
        self.close(']');
    }
}

fn write_graph(w: &mut Writer, graph: &Graph, top_level: bool) {
    w.open('{', true);
    w.key("nodes");
    w.open('[', true);
    for node in &graph.nodes {
        w.item();
        write_node(w, node);
    }
    w.close(']');

    w.key("arg_nodes");
    w.numbers(&graph.arg_nodes);

    w.key("node_row_ptr");
    let mut row_ptr = Vec::with_capacity(graph.nodes.len() + 1);
    let mut total = 0;
    row_ptr.push(total);
    for id in 0..graph.nodes.len() {
        total += graph.num_outputs(id);
        row_ptr.push(total);
    }
    w.numbers(&row_ptr);

    w.key("heads");
    w.entries(&graph.heads);

    if top_level {
        w.key("attrs");
        w.open('{', false);
        w.key("mxnet_version");
        w.open('[', false);
        w.item();
        w.string("int");
        w.item();
        w.number(crate::MXNET_VERSION);
        w.close(']');
        w.close('}');
    }
    w.close('}');
}

fn write_node(w: &mut Writer, node: &Node) {
    w.open('{', true);
    w.key("op");
    w.string(&node.op);
    w.key("name");
    w.string(&node.name);
    if !node.attrs.is_empty() {
        w.key("attrs");
        w.open('{', node.attrs.len() > 1);
        for (key, value) in &node.attrs {
            w.key(key);
            w.string(value);
        }
        w.close('}');
    }
    w.key("inputs");
    w.entries(&node.inputs);
    if !node.control_deps.is_empty() {
        w.key("control_deps");
        w.numbers(&node.control_deps);
    }
    if !node.subgraphs.is_empty() {
        w.key("subgraphs");
        w.open('[', true);
        for sub in &node.subgraphs {
            w.item();
            write_graph(w, sub, false);
        }
        w.close(']');
    }
    w.close('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_graph_layout() {
        let expected = "{\n  \"nodes\": [], \n  \"arg_nodes\": [], \n  \"node_row_ptr\": [0], \n  \"heads\": [], \n  \"attrs\": {\"mxnet_version\": [\"int\", 10901]}\n}";
        assert_eq!(write(&Graph::default()), expected);
    }

    #[test]
    fn strings_are_escaped() {
        let mut w = Writer::default();
        w.string("a\"b\\c\nd\te\u{1}é");
        assert_eq!(w.out, "\"a\\\"b\\\\c\\nd\\te\\u0001é\"");
    }

    #[test]
    fn long_arrays_span_lines() {
        let mut w = Writer::default();
        w.numbers(&(0..11).collect::<Vec<_>>());
        assert!(w.out.starts_with("[\n  0, \n  1, "), "{}", w.out);
        let mut w = Writer::default();
        w.numbers(&(0..10).collect::<Vec<_>>());
        assert_eq!(w.out, "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]");
    }
}
