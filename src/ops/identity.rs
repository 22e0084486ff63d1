//! Operators that pass data through or fill it at inference: `_copy`
//! (`identity`), `BlockGrad`, `MakeLoss`, `Dropout`, `zeros_like`,
//! `ones_like` and `Cast`. All accept any dtype.

use super::fp32_util::{copy_bytes, declared_outputs, same_as_first, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;
use half::{bf16, f16};

pub fn register(r: &mut Registry) {
    for name in ["_copy", "BlockGrad", "MakeLoss"] {
        r.implement(name, |ctx| {
            Ok(Box::new(PassThrough::new(ctx, Fill::Copy, 1)))
        });
    }
    // Dropout is the identity at inference; its hidden mask output is all ones.
    // NOTE: mode="always" drops at inference in MXNet too, randomly; this
    // library still passes the data through unchanged.
    r.implement("Dropout", |ctx| {
        Ok(Box::new(PassThrough::new(
            ctx,
            Fill::Copy,
            declared_outputs(ctx, 2),
        )))
    });
    r.implement("zeros_like", |ctx| {
        Ok(Box::new(PassThrough::new(ctx, Fill::Value(0.0), 1)))
    });
    r.implement("ones_like", |ctx| {
        Ok(Box::new(PassThrough::new(ctx, Fill::Value(1.0), 1)))
    });
    r.implement("Cast", |ctx| Ok(Box::new(Cast::new(ctx)?)));
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fill {
    Copy,
    Value(f64),
}

struct PassThrough {
    node: NodeInfo,
    fill: Fill,
    num_outputs: usize,
}

impl PassThrough {
    fn new(ctx: &NodeCtx, fill: Fill, num_outputs: usize) -> PassThrough {
        PassThrough {
            node: NodeInfo::new(ctx),
            fill,
            num_outputs,
        }
    }
}

impl Op for PassThrough {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        Ok(inputs[0].clone().map(|s| vec![s; self.num_outputs]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        same_as_first(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        match self.fill {
            Fill::Copy => copy_bytes(&self.node, inputs[0], &mut outputs[0])?,
            Fill::Value(v) => fill(&mut outputs[0], v)?,
        }
        for mask in outputs.iter_mut().skip(1) {
            fill(mask, 1.0)?;
        }
        Ok(())
    }
}

/// Reads every element as f64.
fn read_values(t: &Tensor) -> Result<Vec<f64>> {
    Ok(match t.dtype() {
        DType::F32 => t.as_slice::<f32>()?.iter().map(|&v| v as f64).collect(),
        DType::F64 => t.as_slice::<f64>()?.to_vec(),
        DType::F16 => t.as_slice::<f16>()?.iter().map(|&v| f64::from(v)).collect(),
        DType::BF16 => t
            .as_slice::<bf16>()?
            .iter()
            .map(|&v| f64::from(v))
            .collect(),
        DType::U8 | DType::Bool => t.bytes().iter().map(|&v| v as f64).collect(),
        DType::I8 => t.as_slice::<i8>()?.iter().map(|&v| v as f64).collect(),
        DType::I32 => t.as_slice::<i32>()?.iter().map(|&v| v as f64).collect(),
        DType::I64 => t.as_slice::<i64>()?.iter().map(|&v| v as f64).collect(),
    })
}

/// Writes `value(i)` into every element. Floats truncate toward zero into
/// integers and out-of-range values keep their low bits (MXNet 1.9.1 casts
/// -204.9 to int8 as 52); any non-zero value is `true` as a bool.
fn write_values(t: &mut Tensor, value: impl Fn(usize) -> f64) -> Result<()> {
    fn put<T: bytemuck::Pod>(
        t: &mut Tensor,
        value: impl Fn(usize) -> f64,
        conv: impl Fn(f64) -> T,
    ) -> Result<()> {
        for (i, d) in t.as_mut_slice::<T>()?.iter_mut().enumerate() {
            *d = conv(value(i));
        }
        Ok(())
    }
    match t.dtype() {
        DType::F32 => put(t, value, |v| v as f32),
        DType::F64 => put(t, value, |v| v),
        DType::F16 => put(t, value, f16::from_f64),
        DType::BF16 => put(t, value, bf16::from_f64),
        DType::U8 => put(t, value, |v| v as i64 as u8),
        DType::Bool => put(t, value, |v| u8::from(v != 0.0)),
        DType::I8 => put(t, value, |v| v as i64 as i8),
        DType::I32 => put(t, value, |v| v as i64 as i32),
        DType::I64 => put(t, value, |v| v as i64),
    }
}

fn fill(t: &mut Tensor, value: f64) -> Result<()> {
    if value == 0.0 {
        t.bytes_mut().fill(0);
        return Ok(());
    }
    write_values(t, |_| value)
}

struct Cast {
    node: NodeInfo,
    dtype: DType,
}

impl Cast {
    fn new(ctx: &NodeCtx) -> Result<Cast> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let name = r.raw("dtype").ok_or_else(|| r.missing("dtype"))?;
        let dtype = DType::from_name(name.trim())
            .ok_or_else(|| node.attr_err("dtype", name, "unknown dtype name"))?;
        Ok(Cast { node, dtype })
    }
}

impl Op for Cast {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        Ok(inputs[0].clone().map(|s| vec![s]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        inputs[0].get_or_insert(DType::F32);
        Ok(vec![self.dtype; num_outputs])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        if inputs[0].dtype() == outputs[0].dtype() {
            return copy_bytes(&self.node, inputs[0], &mut outputs[0]);
        }
        let values = read_values(inputs[0])?;
        write_values(&mut outputs[0], |i| values[i])
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    #[test]
    fn cast_float_to_int_truncates() {
        let op = make(
            |c| Ok(Box::new(Cast::new(c)?)),
            "Cast",
            &[("dtype", "int32")],
        )
        .unwrap();
        let out = run(op.as_ref(), &[t(&[4], &[1.7, -1.7, 300.0, -0.2])]).unwrap();
        assert_eq!(out[0].dtype(), DType::I32);
        assert_eq!(out[0].as_slice::<i32>().unwrap(), &[1, -1, 300, 0]);
        let op = make(
            |c| Ok(Box::new(Cast::new(c)?)),
            "Cast",
            &[("dtype", "int8")],
        )
        .unwrap();
        let out = run(op.as_ref(), &[t(&[2], &[-204.9, 127.9])]).unwrap();
        assert_eq!(out[0].as_slice::<i8>().unwrap(), &[52, 127]);
        let op = make(
            |c| Ok(Box::new(Cast::new(c)?)),
            "Cast",
            &[("dtype", "float16")],
        )
        .unwrap();
        let out = run(op.as_ref(), &[t(&[2], &[0.5, 65504.0])]).unwrap();
        assert_eq!(out[0].to_f32_vec(), vec![0.5, 65504.0]);
        assert!(make(
            |c| Ok(Box::new(Cast::new(c)?)),
            "Cast",
            &[("dtype", "int3")]
        )
        .is_err());
    }

    #[test]
    fn dropout_is_identity_with_mask() {
        let op = make(
            |c| Ok(Box::new(PassThrough::new(c, Fill::Copy, 2))),
            "Dropout",
            &[("p", "0.5")],
        )
        .unwrap();
        let out = run(op.as_ref(), &[t(&[3], &[1.0, 2.0, 3.0])]).unwrap();
        assert_eq!(out.len(), 2);
        assert_close(&out[0], &[1.0, 2.0, 3.0]);
    }

    #[test]
    fn zeros_and_ones_like_keep_dtype() {
        let x = Tensor::from_slice(DType::I32, &[2], &[5i32, 7]).unwrap();
        let zeros = make(
            |c| Ok(Box::new(PassThrough::new(c, Fill::Value(0.0), 1))),
            "zeros_like",
            &[],
        )
        .unwrap();
        let ones = make(
            |c| Ok(Box::new(PassThrough::new(c, Fill::Value(1.0), 1))),
            "ones_like",
            &[],
        )
        .unwrap();
        assert_eq!(
            run(zeros.as_ref(), std::slice::from_ref(&x)).unwrap()[0]
                .as_slice::<i32>()
                .unwrap(),
            &[0, 0]
        );
        let o = run(ones.as_ref(), &[x]).unwrap();
        assert_eq!(o[0].dtype(), DType::I32);
        assert_eq!(o[0].as_slice::<i32>().unwrap(), &[1, 1]);
    }
}
