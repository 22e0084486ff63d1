//! The strict JSON reader: MXNet's document schema, checked key by key.
//!
//! MXNet 1.9.1 reads symbol JSON with a reader that rejects unknown keys and
//! requires `nodes`, `arg_nodes` and `heads` (and `op`, `name`, `inputs` on
//! each node). Every attribute value must be a string and every entry must
//! have 2 or 3 integers. This reader applies the same rules. Keys are
//! handled in document order because order matters: of `attrs` and `attr`,
//! the one written later replaces the other.
//!
//! The reader only builds the graph; references between nodes are checked
//! afterwards (see `validate.rs`).

use crate::graph::{Attrs, Entry, Graph, Node};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

/// A parsed document: the graph and the `mxnet_version` it declares.
#[derive(Debug)]
pub struct Document {
    pub graph: Graph,
    pub version: Option<i64>,
}

/// The reader's position in the document, for error messages
/// (`node 3 ("fc")`, `subgraph 0, node 2 ("conv")`).
#[derive(Default)]
struct Location {
    frames: RefCell<Vec<String>>,
}

impl Location {
    fn push(&self, frame: String) {
        self.frames.borrow_mut().push(frame);
    }

    fn pop(&self) {
        self.frames.borrow_mut().pop();
    }

    /// Replaces the innermost frame, used once a node's name is known.
    fn rename_top(&self, frame: String) {
        if let Some(top) = self.frames.borrow_mut().last_mut() {
            *top = frame;
        }
    }

    fn describe(&self) -> String {
        self.frames.borrow().join(", ")
    }
}

/// Parses a symbol JSON document. Text after the top-level object is
/// ignored, as MXNet 1.9.1 ignores it.
pub fn parse(text: &str) -> Result<Document, String> {
    let location = Location::default();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = GraphSeed {
        location: &location,
        top_level: true,
    }
    .deserialize(&mut deserializer);
    match result {
        Ok((graph, version)) => {
            if deserializer.end().is_err() {
                log::warn!("ignoring text after the symbol JSON object, as MXNet does");
            }
            Ok(Document { graph, version })
        }
        Err(e) => {
            let place = location.describe();
            Err(if place.is_empty() {
                e.to_string()
            } else {
                format!("{place}: {e}")
            })
        }
    }
}

const GRAPH_KEYS: &[&str] = &["nodes", "arg_nodes", "node_row_ptr", "heads", "attrs"];
const NODE_KEYS: &[&str] = &[
    "op",
    "name",
    "inputs",
    "attrs",
    "attr",
    "param",
    "control_deps",
    "subgraphs",
    "backward_source_id",
];

/// Reads one graph object: the document itself or a node's subgraph.
struct GraphSeed<'a> {
    location: &'a Location,
    top_level: bool,
}

impl<'de> DeserializeSeed<'de> for GraphSeed<'_> {
    type Value = (Graph, Option<i64>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for GraphSeed<'_> {
    type Value = (Graph, Option<i64>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a symbol JSON object with nodes, arg_nodes and heads")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut nodes = None;
        let mut arg_nodes = None;
        let mut heads = None;
        let mut attrs = BTreeMap::new();
        let mut version = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "nodes" => {
                    nodes = Some(map.next_value_seed(NodesSeed {
                        location: self.location,
                    })?)
                }
                "arg_nodes" => arg_nodes = Some(ids(map.next_value::<Vec<u32>>()?)),
                // MXNet recomputes the output counts from the operators.
                "node_row_ptr" => {
                    map.next_value::<Vec<u32>>()?;
                }
                "heads" => heads = Some(map.next_value::<Vec<RawEntry>>()?),
                "attrs" => {
                    let typed = map.next_value::<GraphAttrs>()?;
                    version = typed.version;
                    attrs = typed.others;
                }
                other => return Err(de::Error::unknown_field(other, GRAPH_KEYS)),
            }
        }

        let nodes = nodes.ok_or_else(|| de::Error::missing_field("nodes"))?;
        let arg_nodes = arg_nodes.ok_or_else(|| de::Error::missing_field("arg_nodes"))?;
        let heads = heads.ok_or_else(|| de::Error::missing_field("heads"))?;
        if !self.top_level && version.is_some() {
            log::debug!("ignoring mxnet_version of a subgraph");
        }
        let graph = Graph {
            nodes,
            arg_nodes,
            heads: heads.into_iter().map(|e| e.0).collect(),
            attrs,
        };
        Ok((graph, version))
    }
}

fn ids(raw: Vec<u32>) -> Vec<usize> {
    raw.into_iter().map(|id| id as usize).collect()
}

/// Reads the `nodes` array, giving each node its index for error messages.
struct NodesSeed<'a> {
    location: &'a Location,
}

impl<'de> DeserializeSeed<'de> for NodesSeed<'_> {
    type Value = Vec<Node>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for NodesSeed<'_> {
    type Value = Vec<Node>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of node objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut nodes = Vec::new();
        loop {
            self.location.push(format!("node {}", nodes.len()));
            let node = seq.next_element_seed(NodeSeed {
                location: self.location,
                index: nodes.len(),
            })?;
            self.location.pop();
            match node {
                Some(node) => nodes.push(node),
                None => return Ok(nodes),
            }
        }
    }
}

/// Reads one node object.
struct NodeSeed<'a> {
    location: &'a Location,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a node object with op, name and inputs")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut op = None;
        let mut name = None;
        let mut inputs = None;
        // `attrs` and `attr` fill the same dictionary and each replaces it;
        // `param` entries are merged in at the end without overwriting.
        let mut attrs = Attrs::new();
        let mut param = Attrs::new();
        let mut control_deps = Vec::new();
        let mut subgraphs = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "op" => op = Some(map.next_value::<String>()?),
                "name" => {
                    let value = map.next_value::<String>()?;
                    self.location
                        .rename_top(format!("node {} ({value:?})", self.index));
                    name = Some(value);
                }
                "inputs" => inputs = Some(map.next_value::<Vec<RawEntry>>()?),
                "attrs" | "attr" => attrs = map.next_value::<StringMap>()?.0,
                "param" => param = map.next_value::<StringMap>()?.0,
                "control_deps" => control_deps = ids(map.next_value::<Vec<u32>>()?),
                "subgraphs" => {
                    subgraphs = map.next_value_seed(SubgraphsSeed {
                        location: self.location,
                    })?
                }
                // Written by MXNet before 0.9 and meaningless since.
                "backward_source_id" => {
                    map.next_value::<i64>()?;
                }
                other => return Err(de::Error::unknown_field(other, NODE_KEYS)),
            }
        }

        let op = op.ok_or_else(|| de::Error::missing_field("op"))?;
        let name = name.ok_or_else(|| de::Error::missing_field("name"))?;
        let inputs = inputs.ok_or_else(|| de::Error::missing_field("inputs"))?;
        for (key, value) in param {
            attrs.entry(key).or_insert(value);
        }

        Ok(Node {
            op,
            name,
            attrs,
            inputs: inputs.into_iter().map(|e| e.0).collect(),
            control_deps,
            subgraphs,
        })
    }
}

/// Reads a node's `subgraphs` array.
struct SubgraphsSeed<'a> {
    location: &'a Location,
}

impl<'de> DeserializeSeed<'de> for SubgraphsSeed<'_> {
    type Value = Vec<Graph>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SubgraphsSeed<'_> {
    type Value = Vec<Graph>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of graph objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut graphs = Vec::new();
        loop {
            self.location.push(format!("subgraph {}", graphs.len()));
            let graph = seq.next_element_seed(GraphSeed {
                location: self.location,
                top_level: false,
            })?;
            self.location.pop();
            match graph {
                Some((graph, _)) => graphs.push(graph),
                None => return Ok(graphs),
            }
        }
    }
}

/// An entry `[node, output]` or `[node, output, version]`.
struct RawEntry(Entry);

impl<'de> de::Deserialize<'de> for RawEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = RawEntry;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an entry [node, output] or [node, output, version] of unsigned integers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let too_short = || {
            de::Error::custom(
                "an entry needs 2 or 3 integers: [node, output] or [node, output, version]",
            )
        };
        let node = seq.next_element::<u32>()?.ok_or_else(too_short)?;
        let index = seq.next_element::<u32>()?.ok_or_else(too_short)?;
        let version = seq.next_element::<u32>()?.unwrap_or(0);
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(
                "an entry has more than 3 elements; expected [node, output, version]",
            ));
        }
        Ok(RawEntry(Entry {
            node: node as usize,
            index: index as usize,
            version,
        }))
    }
}

/// An object whose values must all be strings (operator attributes).
struct StringMap(Attrs);

impl<'de> de::Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StringMapVisitor)
    }
}

struct StringMapVisitor;

impl<'de> Visitor<'de> for StringMapVisitor {
    type Value = StringMap;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of string attributes")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut attrs = Attrs::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Value>()?;
            match value {
                Value::String(s) => {
                    attrs.insert(key, s);
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "attribute {key:?} has the value {other}; attribute values must be JSON strings, e.g. \"{}\"",
                        other.to_string().replace('"', "")
                    )))
                }
            }
        }
        Ok(StringMap(attrs))
    }
}

/// The graph-level `attrs` object: `name: [type, value]` pairs.
struct GraphAttrs {
    version: Option<i64>,
    others: BTreeMap<String, Value>,
}

impl<'de> de::Deserialize<'de> for GraphAttrs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(GraphAttrsVisitor)
    }
}

struct GraphAttrsVisitor;

impl<'de> Visitor<'de> for GraphAttrsVisitor {
    type Value = GraphAttrs;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of typed values such as {\"mxnet_version\": [\"int\", 10901]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut attrs = GraphAttrs {
            version: None,
            others: BTreeMap::new(),
        };
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Value>()?;
            let (tag, inner) = typed_value(&key, &value).map_err(de::Error::custom)?;
            if key == "mxnet_version" {
                if tag != "int" {
                    return Err(de::Error::custom(format!(
                        "mxnet_version has type {tag:?}; expected [\"int\", N]"
                    )));
                }
                attrs.version = inner.as_i64();
            } else {
                attrs.others.insert(key, value);
            }
        }
        Ok(attrs)
    }
}

/// Checks a typed graph attribute `[tag, value]` against the type tags
/// MXNet 1.9.1 registers and returns the tag and the value.
fn typed_value<'v>(key: &str, value: &'v Value) -> Result<(&'v str, &'v Value), String> {
    let pair = match value.as_array() {
        Some(items) if items.len() == 2 => items,
        _ => {
            return Err(format!(
                "graph attribute {key:?} is {value}; expected a [type, value] pair such as [\"int\", 10901]"
            ))
        }
    };
    let tag = pair[0]
        .as_str()
        .ok_or_else(|| format!("graph attribute {key:?} has a type tag that is not a string"))?;
    let inner = &pair[1];
    let is_int = |v: &Value| v.as_i64().is_some_and(|n| i32::try_from(n).is_ok());
    let is_str = |v: &Value| v.is_string();
    let all = |v: &Value, check: &dyn Fn(&Value) -> bool| {
        v.as_array().is_some_and(|items| items.iter().all(check))
    };
    let valid = match tag {
        "int" => is_int(inner),
        "size_t" => inner.is_i64() || inner.is_u64(),
        "str" => is_str(inner),
        "list_int" => all(inner, &is_int),
        "list_str" | "list_layout" => all(inner, &is_str),
        "list_shape" => all(inner, &|shape| all(shape, &|d| d.is_i64())),
        "dict_str_int" => inner
            .as_object()
            .is_some_and(|m| m.values().all(is_int)),
        other => {
            return Err(format!(
                "graph attribute {key:?} has type {other:?}, which MXNet does not register; \
                 known types are int, size_t, str, list_int, list_str, list_shape, list_layout, dict_str_int"
            ))
        }
    };
    if valid {
        Ok((tag, inner))
    } else {
        Err(format!(
            "graph attribute {key:?} has the value {inner}, which is not a valid {tag}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_attrs(node_json: &str) -> Result<Attrs, String> {
        let text = format!(r#"{{"nodes": [{node_json}], "arg_nodes": [], "heads": [[0, 0, 0]]}}"#);
        parse(&text).map(|d| d.graph.nodes[0].attrs.clone())
    }

    #[test]
    fn later_attr_key_replaces_earlier() {
        let attrs = node_attrs(
            r#"{"op": "Activation", "name": "a", "attrs": {"act_type": "relu", "x": "1"},
                "attr": {"act_type": "tanh"}, "inputs": []}"#,
        )
        .unwrap();
        assert_eq!(attrs.get("act_type").unwrap(), "tanh");
        assert!(!attrs.contains_key("x"));
    }

    #[test]
    fn param_fills_only_missing_keys() {
        let attrs = node_attrs(
            r#"{"op": "Activation", "name": "a", "param": {"act_type": "relu", "y": "2"},
                "attr": {"act_type": "tanh"}, "inputs": []}"#,
        )
        .unwrap();
        assert_eq!(attrs.get("act_type").unwrap(), "tanh");
        assert_eq!(attrs.get("y").unwrap(), "2");
    }

    #[test]
    fn non_string_attribute_is_rejected() {
        let err = node_attrs(
            r#"{"op": "FullyConnected", "name": "fc", "attrs": {"num_hidden": 4}, "inputs": []}"#,
        )
        .unwrap_err();
        assert!(err.contains("num_hidden"), "{err}");
        assert!(err.contains("node 0 (\"fc\")"), "{err}");
    }

    #[test]
    fn entry_lengths() {
        let entry = |e: &str| {
            parse(&format!(
                r#"{{"nodes": [{{"op": "null", "name": "x", "inputs": []}}], "arg_nodes": [0], "heads": [{e}]}}"#
            ))
        };
        assert_eq!(entry("[0, 0]").unwrap().graph.heads[0].version, 0);
        assert_eq!(entry("[0, 0, 2]").unwrap().graph.heads[0].version, 2);
        assert!(entry("[0]").is_err());
        assert!(entry("[0, 0, 0, 0]").is_err());
        assert!(entry("[0, 0.5]").is_err());
        assert!(entry("[-1, 0]").is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = parse(r#"{"nodes": [], "arg_nodes": [], "heads": [], "foo": 1}"#).unwrap_err();
        assert!(err.contains("foo"), "{err}");
        let err =
            node_attrs(r#"{"op": "null", "name": "x", "inputs": [], "bar": "x"}"#).unwrap_err();
        assert!(err.contains("bar"), "{err}");
    }

    #[test]
    fn required_keys() {
        assert!(parse(r#"{"nodes": [], "arg_nodes": []}"#).is_err());
        assert!(node_attrs(r#"{"op": "null", "name": "x"}"#).is_err());
        assert!(node_attrs(r#"{"op": null, "name": "x", "inputs": []}"#).is_err());
    }

    #[test]
    fn version_must_be_typed_int() {
        let doc = |attrs: &str| {
            parse(&format!(
                r#"{{"nodes": [], "arg_nodes": [], "heads": [], "attrs": {attrs}}}"#
            ))
        };
        assert_eq!(
            doc(r#"{"mxnet_version": ["int", 10600]}"#).unwrap().version,
            Some(10600)
        );
        assert!(doc(r#"{"mxnet_version": 10901}"#).is_err());
        assert!(doc(r#"{"mxnet_version": ["str", "10901"]}"#).is_err());
        assert!(doc(r#"{"extra": ["float", 1.5]}"#).is_err());
        assert!(doc(r#"{"extra": ["list_shape", [[1, 2], [3]]]}"#).is_ok());
    }

    #[test]
    fn trailing_text_is_ignored() {
        assert!(parse(r#"{"nodes": [], "arg_nodes": [], "heads": []} trailing"#).is_ok());
    }
}
