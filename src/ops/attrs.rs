//! Typed access to operator attributes, parsed with MXNet's text rules:
//! tuples as `(3, 3)`, `[3,3]`, `(3L, 3L)` or a bare `3`; booleans as
//! `true`/`false`/`1`/`0` in any case; optional values as `None`.

use crate::error::{Error, Result};
use crate::graph::Attrs;

/// Attribute reader for one node; errors name the node, op and key.
pub struct AttrReader<'a> {
    pub node: &'a str,
    pub op: &'a str,
    pub attrs: &'a Attrs,
}

impl<'a> AttrReader<'a> {
    pub fn new(node: &'a str, op: &'a str, attrs: &'a Attrs) -> Self {
        AttrReader { node, op, attrs }
    }

    fn err(&self, key: &str, value: &str, reason: impl Into<String>) -> Error {
        Error::Attr {
            node: self.node.to_string(),
            op: self.op.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Raw string value, if present.
    pub fn raw(&self, key: &str) -> Option<&'a str> {
        self.attrs.get(key).map(|s| s.as_str())
    }

    /// Error for a required attribute that is absent.
    pub fn missing(&self, key: &str) -> Error {
        self.err(key, "", "required attribute is missing")
    }

    pub fn int_or(&self, key: &str, default: i64) -> Result<i64> {
        self.opt_int(key).map(|v| v.unwrap_or(default))
    }

    pub fn int(&self, key: &str) -> Result<i64> {
        self.opt_int(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn opt_int(&self, key: &str) -> Result<Option<i64>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) if is_none(v) => Ok(None),
            Some(v) => parse_int(v)
                .map(Some)
                .ok_or_else(|| self.err(key, v, "expected an integer")),
        }
    }

    pub fn float_or(&self, key: &str, default: f64) -> Result<f64> {
        self.opt_float(key).map(|v| v.unwrap_or(default))
    }

    pub fn opt_float(&self, key: &str) -> Result<Option<f64>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) if is_none(v) => Ok(None),
            Some(v) => parse_float(v)
                .map(Some)
                .ok_or_else(|| self.err(key, v, "expected a number")),
        }
    }

    /// An `optional<float>` read in single precision, as MXNet stores calibration ranges.
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) if is_none(v) => Ok(None),
            Some(v) => v
                .trim()
                .parse::<f32>()
                .map(Some)
                .map_err(|_| self.err(key, v, "expected a number")),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| self.err(key, v, "expected true or false")),
        }
    }

    /// An `optional<bool>`: absent or `None` gives `None`.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) if is_none(v) => Ok(None),
            Some(v) => parse_bool(v)
                .map(Some)
                .ok_or_else(|| self.err(key, v, "expected true or false")),
        }
    }

    /// A tuple of integers; absent gives `None`.
    pub fn opt_tuple(&self, key: &str) -> Result<Option<Vec<i64>>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) if is_none(v) => Ok(None),
            Some(v) => parse_tuple(v)
                .map(Some)
                .ok_or_else(|| self.err(key, v, "expected a tuple of integers such as (3, 3)")),
        }
    }

    pub fn tuple_or(&self, key: &str, default: &[i64]) -> Result<Vec<i64>> {
        Ok(self.opt_tuple(key)?.unwrap_or_else(|| default.to_vec()))
    }

    /// A tuple of floats such as `(0.5, 1.0)`.
    pub fn opt_float_tuple(&self, key: &str) -> Result<Option<Vec<f64>>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) if is_none(v) => Ok(None),
            Some(v) => tuple_items(v)
                .and_then(|items| items.iter().map(|s| parse_float(s)).collect())
                .map(Some)
                .ok_or_else(|| self.err(key, v, "expected a tuple of numbers")),
        }
    }

    /// One of `choices` (case-sensitive, as MXNet's enum parameters); absent gives `default`.
    pub fn choice(&self, key: &str, choices: &[&'a str], default: &'a str) -> Result<&'a str> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => {
                choices.iter().copied().find(|c| *c == v).ok_or_else(|| {
                    self.err(key, v, format!("expected one of {}", choices.join(", ")))
                })
            }
        }
    }
}

fn is_none(v: &str) -> bool {
    v.trim() == "None"
}

/// Parses a decimal integer, accepting Python's `L` suffix.
pub fn parse_int(v: &str) -> Option<i64> {
    let t = v.trim();
    let t = t.strip_suffix('L').unwrap_or(t);
    t.parse().ok()
}

/// Parses a float the way C's `strtod` family accepts it (`inf`, `nan`, `1e-3`).
pub fn parse_float(v: &str) -> Option<f64> {
    let t = v.trim();
    t.parse::<f64>()
        .ok()
        .or_else(|| match t.to_ascii_lowercase().as_str() {
            "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
            "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
            "nan" => Some(f64::NAN),
            _ => None,
        })
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn tuple_items(v: &str) -> Option<Vec<String>> {
    let t = v.trim();
    let inner =
        if (t.starts_with('(') && t.ends_with(')')) || (t.starts_with('[') && t.ends_with(']')) {
            &t[1..t.len() - 1]
        } else {
            t
        };
    Some(
        inner
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// Parses `(3, 3)`, `[3,3]`, `(3,)`, `(3L, 3L)`, `()` or a bare `3`.
pub fn parse_tuple(v: &str) -> Option<Vec<i64>> {
    tuple_items(v)?.iter().map(|s| parse_int(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_forms() {
        assert_eq!(parse_tuple("(3, 3)"), Some(vec![3, 3]));
        assert_eq!(parse_tuple("[3,3]"), Some(vec![3, 3]));
        assert_eq!(parse_tuple("(3,)"), Some(vec![3]));
        assert_eq!(parse_tuple("(3L, 4L)"), Some(vec![3, 4]));
        assert_eq!(parse_tuple("()"), Some(vec![]));
        assert_eq!(parse_tuple("7"), Some(vec![7]));
        assert_eq!(parse_tuple("(a, 3)"), None);
    }

    #[test]
    fn bool_forms() {
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }
}
