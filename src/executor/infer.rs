//! Shape and dtype inference over a whole graph.
//!
//! Shapes are inferred by repeated passes in execution order until nothing
//! changes: each operator sees the shapes known so far, may fill unknown
//! input shapes (weights from data) and produces its output shapes.

use super::BindSpec;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::ops::attrs::parse_tuple;
use crate::ops::{Op, Shape};
use std::collections::HashMap;

/// Entry numbering of a graph: entry id = `entry_base[node] + output index`.
pub(super) struct Layout<'a> {
    pub graph: &'a Graph,
    pub order: &'a [usize],
    pub entry_base: &'a [usize],
    pub total: usize,
}

/// Upper bound on inference passes; each useful pass fixes at least one entry.
const MAX_PASSES: usize = 64;

impl Layout<'_> {
    fn entry_name(&self, e: usize) -> String {
        let node = self.entry_base.partition_point(|&b| b <= e) - 1;
        let n = &self.graph.nodes[node];
        if n.is_variable() {
            n.name.clone()
        } else {
            format!("{} output {}", n.name, e - self.entry_base[node])
        }
    }

    fn seed_shapes(&self, spec: &BindSpec) -> Vec<Option<Shape>> {
        let mut shapes: Vec<Option<Shape>> = vec![None; self.total];
        let given: HashMap<&str, &Shape> = spec
            .input_shapes
            .iter()
            .map(|(n, s)| (n.as_str(), s))
            .collect();
        for &id in self.order {
            let n = &self.graph.nodes[id];
            if !n.is_variable() {
                continue;
            }
            let e = self.entry_base[id];
            let known = given
                .get(n.name.as_str())
                .map(|s| (*s).clone())
                .or_else(|| spec.args.get(&n.name).map(|t| t.shape().to_vec()))
                .or_else(|| spec.aux.get(&n.name).map(|t| t.shape().to_vec()))
                .or_else(|| shape_hint(n.attrs.get("__shape__")));
            // A dimension of 0 means "unknown" in MXNet's legacy shape convention.
            shapes[e] = known.filter(|s| !s.is_empty() && !s.contains(&0));
        }
        shapes
    }

    pub fn infer_shapes(
        &self,
        ops: &HashMap<usize, Box<dyn Op>>,
        spec: &BindSpec,
    ) -> Result<Vec<Shape>> {
        let mut shapes = self.seed_shapes(spec);
        for _ in 0..MAX_PASSES {
            let mut changed = false;
            for &id in self.order {
                let Some(op) = ops.get(&id) else { continue };
                let n = &self.graph.nodes[id];
                let in_ids: Vec<usize> = n
                    .inputs
                    .iter()
                    .map(|e| self.entry_base[e.node] + e.index)
                    .collect();
                let mut ins: Vec<Option<Shape>> =
                    in_ids.iter().map(|&e| shapes[e].clone()).collect();
                let outs = op.infer_shape(&mut ins)?;
                for (&e, s) in in_ids.iter().zip(ins) {
                    changed |= merge(&mut shapes[e], s, &n.name, &n.op, || self.entry_name(e))?;
                }
                if let Some(outs) = outs {
                    let base = self.entry_base[id];
                    for (i, s) in outs.into_iter().enumerate() {
                        if base + i >= self.total
                            || (id + 1 < self.entry_base.len()
                                && base + i >= self.entry_base[id + 1])
                        {
                            return Err(Error::shape(
                                &n.name,
                                &n.op,
                                "operator returned more outputs than it declares",
                            ));
                        }
                        changed |= merge(&mut shapes[base + i], Some(s), &n.name, &n.op, || {
                            self.entry_name(base + i)
                        })?;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        self.require_all(shapes)
    }

    fn require_all(&self, shapes: Vec<Option<Shape>>) -> Result<Vec<Shape>> {
        let mut out = Vec::with_capacity(shapes.len());
        for &id in self.order {
            let n = &self.graph.nodes[id];
            let count = self.entry_count(id);
            for i in 0..count {
                if shapes[self.entry_base[id] + i].is_none() {
                    let what = if n.is_variable() {
                        "input"
                    } else {
                        "output of node"
                    };
                    return Err(Error::shape(
                        &n.name,
                        if n.is_variable() { "null" } else { &n.op },
                        format!(
                            "the shape of {what} {:?} cannot be inferred; give its shape (or the shapes of the inputs it depends on) when binding",
                            n.name
                        ),
                    ));
                }
            }
        }
        // Entries of unreachable nodes stay empty.
        out.extend(shapes.into_iter().map(|s| s.unwrap_or_else(|| vec![0])));
        Ok(out)
    }

    fn entry_count(&self, id: usize) -> usize {
        let end = self.entry_base.get(id + 1).copied().unwrap_or(self.total);
        end - self.entry_base[id]
    }

    pub fn infer_types(
        &self,
        ops: &HashMap<usize, Box<dyn Op>>,
        spec: &BindSpec,
    ) -> Result<Vec<DType>> {
        let mut types: Vec<Option<DType>> = vec![None; self.total];
        let given: HashMap<&str, DType> = spec
            .input_dtypes
            .iter()
            .map(|(n, d)| (n.as_str(), *d))
            .collect();
        for &id in self.order {
            let n = &self.graph.nodes[id];
            if !n.is_variable() {
                continue;
            }
            let hint = n
                .attrs
                .get("__dtype__")
                .and_then(|v| v.trim().parse::<i32>().ok())
                .and_then(|f| DType::from_flag(f).ok());
            let dtype = spec
                .args
                .get(&n.name)
                .or_else(|| spec.aux.get(&n.name))
                .map(|t| t.dtype())
                .or_else(|| given.get(n.name.as_str()).copied())
                .or(hint)
                .unwrap_or(DType::F32);
            types[self.entry_base[id]] = Some(dtype);
        }
        for &id in self.order {
            let Some(op) = ops.get(&id) else { continue };
            let n = &self.graph.nodes[id];
            let in_ids: Vec<usize> = n
                .inputs
                .iter()
                .map(|e| self.entry_base[e.node] + e.index)
                .collect();
            let mut ins: Vec<Option<DType>> = in_ids.iter().map(|&e| types[e]).collect();
            let outs = op.infer_type(&mut ins, self.entry_count(id))?;
            for (&e, t) in in_ids.iter().zip(ins) {
                if let (Some(old), Some(new)) = (types[e], t) {
                    if old != new {
                        return Err(Error::dtype(
                            &n.name,
                            &n.op,
                            format!(
                                "input {} has dtype {old}, the operator needs {new}",
                                self.entry_name(e)
                            ),
                        ));
                    }
                }
            }
            let base = self.entry_base[id];
            for (i, t) in outs.into_iter().enumerate().take(self.entry_count(id)) {
                types[base + i] = Some(t);
            }
        }
        Ok(types.into_iter().map(|t| t.unwrap_or(DType::F32)).collect())
    }
}

/// Parses a `__shape__` hint such as `(1, 3, 224, 224)`.
fn shape_hint(text: Option<&String>) -> Option<Shape> {
    let dims = parse_tuple(text?)?;
    dims.into_iter().map(|d| usize::try_from(d).ok()).collect()
}

/// Records `new` into `slot`; errors when both are known and differ.
fn merge(
    slot: &mut Option<Shape>,
    new: Option<Shape>,
    node: &str,
    op: &str,
    what: impl Fn() -> String,
) -> Result<bool> {
    match (slot.as_ref(), new) {
        (_, None) => Ok(false),
        (None, Some(s)) => {
            *slot = Some(s);
            Ok(true)
        }
        (Some(old), Some(s)) if *old == s => Ok(false),
        (Some(old), Some(s)) => Err(Error::shape(
            node,
            op,
            format!(
                "shape mismatch for {}: known {old:?}, operator infers {s:?}",
                what()
            ),
        )),
    }
}
