//! The one error type of the library. Every message names what failed and,
//! where there is one, the node, record or argument involved.

use thiserror::Error;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors returned by every layer; the C API turns them into `MXGetLastError` text.
#[derive(Debug, Error)]
pub enum Error {
    /// A file or buffer is not a valid `.params` (NDArray list) file.
    #[error("invalid NDArray file: {0}")]
    Params(String),

    /// A symbol JSON document is malformed or describes an invalid graph.
    #[error("invalid symbol JSON: {0}")]
    Symbol(String),

    /// An operator attribute could not be parsed.
    #[error("invalid attribute {key}={value:?} of node {node:?} (op {op}): {reason}")]
    Attr {
        node: String,
        op: String,
        key: String,
        value: String,
        reason: String,
    },

    /// The graph uses an operator the library does not implement.
    #[error("unsupported operator {op} in node {node:?}")]
    UnsupportedOp { op: String, node: String },

    /// Shape inference failed or two shapes disagree.
    #[error("shape error in node {node:?} (op {op}): {reason}")]
    Shape {
        node: String,
        op: String,
        reason: String,
    },

    /// Dtype inference failed or a dtype is not supported where it is used.
    #[error("dtype error in node {node:?} (op {op}): {reason}")]
    DType {
        node: String,
        op: String,
        reason: String,
    },

    /// A caller passed an invalid argument (null pointer, wrong size, bad index).
    #[error("{0}")]
    InvalidArgument(String),

    /// An operating-system I/O error, with the path involved.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A numeric failure or an internal invariant that does not hold at run time.
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    /// Builds an `InvalidArgument` error from anything printable.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// Builds a shape error for `node`.
    pub fn shape(node: &str, op: &str, reason: impl Into<String>) -> Self {
        Error::Shape {
            node: node.to_string(),
            op: op.to_string(),
            reason: reason.into(),
        }
    }

    /// Builds a dtype error for `node`.
    pub fn dtype(node: &str, op: &str, reason: impl Into<String>) -> Self {
        Error::DType {
            node: node.to_string(),
            op: op.to_string(),
            reason: reason.into(),
        }
    }
}
