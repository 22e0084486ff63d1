//! Helpers shared by the FP32 operator implementations: node identity for
//! error messages, input-count and shape checks, axis normalisation and the
//! common dtype rules.

use super::{lookup, NodeCtx, Shape};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Name and operator of the node an op instance belongs to; every error
/// an op raises names both.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub name: String,
    pub op: String,
}

impl NodeInfo {
    pub fn new(ctx: &NodeCtx) -> NodeInfo {
        NodeInfo {
            name: ctx.name.to_string(),
            op: ctx.op.to_string(),
        }
    }

    pub fn shape_err(&self, reason: impl Into<String>) -> Error {
        Error::shape(&self.name, &self.op, reason)
    }

    pub fn dtype_err(&self, reason: impl Into<String>) -> Error {
        Error::dtype(&self.name, &self.op, reason)
    }

    /// An attribute error for a value that parsed but is out of range.
    pub fn attr_err(&self, key: &str, value: impl ToString, reason: impl Into<String>) -> Error {
        Error::Attr {
            node: self.name.clone(),
            op: self.op.clone(),
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Fails unless exactly `expected` inputs are connected.
    pub fn expect_inputs(&self, got: usize, expected: usize) -> Result<()> {
        if got != expected {
            return Err(self.shape_err(format!("expected {expected} inputs, the node has {got}")));
        }
        Ok(())
    }

    /// Stores `shape` as input `i` when unknown, or checks that it agrees.
    pub fn assign_input(
        &self,
        inputs: &mut [Option<Shape>],
        i: usize,
        what: &str,
        shape: Shape,
    ) -> Result<()> {
        match &inputs[i] {
            None => {
                inputs[i] = Some(shape);
                Ok(())
            }
            Some(known) if *known == shape => Ok(()),
            Some(known) => {
                Err(self.shape_err(format!("{what} has shape {known:?}, expected {shape:?}")))
            }
        }
    }

    /// Maps a possibly negative axis onto `0..ndim`.
    pub fn axis(&self, axis: i64, ndim: usize) -> Result<usize> {
        let a = if axis < 0 { axis + ndim as i64 } else { axis };
        if a < 0 || a >= ndim as i64 {
            return Err(
                self.shape_err(format!("axis {axis} is out of range for {ndim} dimensions"))
            );
        }
        Ok(a as usize)
    }
}

/// Number of outputs the catalog declares for the node (hidden ones
/// included), or `fallback` for an operator the catalog does not list.
pub fn declared_outputs(ctx: &NodeCtx, fallback: usize) -> usize {
    lookup(ctx.op).map_or(fallback, |d| (d.outputs)(ctx.attrs).len().max(1))
}

/// Dtype rule of float32-only operators: unknown inputs become float32 and
/// any other dtype is an error.
pub fn f32_only(
    node: &NodeInfo,
    inputs: &mut [Option<DType>],
    num_outputs: usize,
) -> Result<Vec<DType>> {
    for (i, t) in inputs.iter_mut().enumerate() {
        match *t {
            None => *t = Some(DType::F32),
            Some(DType::F32) => {}
            Some(other) => {
                return Err(node.dtype_err(format!(
                    "input {i} is {other}, but this operator supports float32 only"
                )))
            }
        }
    }
    Ok(vec![DType::F32; num_outputs])
}

/// Dtype rule of data-movement operators: every output has the dtype of
/// input 0, and the other inputs must match it.
pub fn same_as_first(
    node: &NodeInfo,
    inputs: &mut [Option<DType>],
    num_outputs: usize,
) -> Result<Vec<DType>> {
    let dtype = inputs
        .iter()
        .flatten()
        .next()
        .copied()
        .unwrap_or(DType::F32);
    for (i, t) in inputs.iter_mut().enumerate() {
        match *t {
            None => *t = Some(dtype),
            Some(d) if d == dtype => {}
            Some(other) => {
                return Err(node.dtype_err(format!("input {i} is {other}, input 0 is {dtype}")))
            }
        }
    }
    Ok(vec![dtype; num_outputs])
}

/// Copies the bytes of `input` into `output`; both must hold the same number of bytes.
pub fn copy_bytes(node: &NodeInfo, input: &Tensor, output: &mut Tensor) -> Result<()> {
    if input.bytes().len() != output.bytes().len() || input.dtype() != output.dtype() {
        return Err(node.shape_err(format!(
            "cannot copy a {} {:?} tensor into a {} {:?} tensor",
            input.dtype(),
            input.shape(),
            output.dtype(),
            output.shape()
        )));
    }
    output.bytes_mut().copy_from_slice(input.bytes());
    Ok(())
}

/// Converts signed attribute values to sizes, rejecting negatives.
pub fn to_sizes(node: &NodeInfo, key: &str, values: &[i64]) -> Result<Vec<usize>> {
    values
        .iter()
        .map(|&v| {
            usize::try_from(v).map_err(|_| {
                node.attr_err(key, format!("{values:?}"), "values must not be negative")
            })
        })
        .collect()
}

/// Product of dimensions.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

#[cfg(test)]
pub mod testing {
    //! Drives ops through the `Op` trait without an executor.

    use super::super::{CreateFn, NodeCtx, Op, Shape};
    use crate::dtype::DType;
    use crate::error::Result;
    use crate::graph::Attrs;
    use crate::tensor::Tensor;

    /// Builds attributes from `key=value` pairs.
    pub fn attrs(pairs: &[(&str, &str)]) -> Attrs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Instantiates `op` with `create` for a node named `test`.
    pub fn make(create: CreateFn, op: &str, pairs: &[(&str, &str)]) -> Result<Box<dyn Op>> {
        let a = attrs(pairs);
        let ctx = NodeCtx {
            name: "test",
            op,
            attrs: &a,
            subgraphs: &[],
        };
        create(&ctx)
    }

    /// Infers shapes and dtypes from the given inputs, allocates the outputs
    /// and runs forward; returns the outputs.
    pub fn run(op: &dyn Op, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let mut shapes: Vec<Option<Shape>> =
            inputs.iter().map(|t| Some(t.shape().to_vec())).collect();
        let out_shapes = op
            .infer_shape(&mut shapes)?
            .expect("shapes are inferable from known inputs");
        let mut types: Vec<Option<DType>> = inputs.iter().map(|t| Some(t.dtype())).collect();
        let out_types = op.infer_type(&mut types, out_shapes.len())?;
        let mut outputs: Vec<Tensor> = out_shapes
            .iter()
            .zip(&out_types)
            .map(|(s, &t)| Tensor::zeros(t, s))
            .collect::<Result<_>>()?;
        // Poison the outputs so a forward that skips elements is caught.
        for o in &mut outputs {
            if o.dtype() == DType::F32 {
                o.f32s_mut()?.fill(f32::NAN);
            }
        }
        let refs: Vec<&Tensor> = inputs.iter().collect();
        op.forward(&refs, &mut outputs)?;
        Ok(outputs)
    }

    /// A float32 tensor.
    pub fn t(shape: &[usize], values: &[f32]) -> Tensor {
        Tensor::from_f32(shape, values).unwrap()
    }

    /// A float32 tensor of `0, 1, 2, …` scaled by `step` and shifted by `start`.
    pub fn ramp(shape: &[usize], start: f32, step: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| start + step * i as f32).collect();
        t(shape, &v)
    }

    /// Deterministic pseudo-random values in [-1, 1].
    pub fn noise(shape: &[usize], seed: u32) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 20001) as f32 / 10000.0 - 1.0
            })
            .collect();
        t(shape, &v)
    }

    /// Asserts elementwise closeness within `1e-5 + 1e-5·|want|`.
    pub fn assert_close(got: &Tensor, want: &[f32]) {
        let g = got.to_f32_vec();
        assert_eq!(g.len(), want.len(), "element count");
        for (i, (a, b)) in g.iter().zip(want).enumerate() {
            let ok = (a - b).abs() <= 1e-5 + 1e-5 * b.abs() || (a.is_nan() && b.is_nan());
            assert!(ok, "element {i}: got {a}, want {b}");
        }
    }
}
