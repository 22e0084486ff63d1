//! `_contrib_quantized_flatten` and `_contrib_quantized_act`: operators that
//! keep the data's type and range.

use super::common::{known_type, range_input_shapes, range_input_types, Ident};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::{NodeCtx, Op, Shape};
use crate::tensor::Tensor;

fn copy_ranges(inputs: &[&Tensor], outputs: &mut [Tensor]) {
    for i in 1..3 {
        outputs[i].bytes_mut().copy_from_slice(inputs[i].bytes());
    }
}

/// Flattens (N, d1, d2, ...) to (N, d1·d2·...).
struct Flatten {
    id: Ident,
}

pub fn create_flatten(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Flatten {
        id: Ident::new(ctx),
    }))
}

impl Op for Flatten {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.id.expect_inputs(inputs.len(), 3)?;
        range_input_shapes(&self.id, inputs, [1, 2])?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        if data.is_empty() {
            return Err(self.id.shape_err("cannot flatten a 0-D tensor"));
        }
        Ok(Some(vec![
            vec![data[0], data[1..].iter().product()],
            vec![1],
            vec![1],
        ]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], _: usize) -> Result<Vec<DType>> {
        let t = known_type(&self.id, inputs, 0, "data")?;
        self.id
            .expect_dtype("data", t, &[DType::I8, DType::U8, DType::I32])?;
        range_input_types(&self.id, inputs, [1, 2])?;
        Ok(vec![t, DType::F32, DType::F32])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        outputs[0].bytes_mut().copy_from_slice(inputs[0].bytes());
        copy_ranges(inputs, outputs);
        Ok(())
    }
}

/// ReLU on quantized data. uint8 data is already non-negative and is
/// copied as uint8 (MXNet 1.9.1 relabels it int8, turning 128..255 negative).
struct Act {
    id: Ident,
}

pub fn create_act(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let r = ctx.reader();
    let act = r.raw("act_type").unwrap_or("relu");
    if act != "relu" {
        return Err(Error::Attr {
            node: ctx.name.into(),
            op: ctx.op.into(),
            key: "act_type".into(),
            value: act.into(),
            reason: "quantized activation supports only relu".into(),
        });
    }
    Ok(Box::new(Act {
        id: Ident::new(ctx),
    }))
}

impl Op for Act {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.id.expect_inputs(inputs.len(), 3)?;
        range_input_shapes(&self.id, inputs, [1, 2])?;
        Ok(inputs[0].clone().map(|s| vec![s, vec![1], vec![1]]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], _: usize) -> Result<Vec<DType>> {
        let t = known_type(&self.id, inputs, 0, "data")?;
        self.id.expect_dtype("data", t, &[DType::I8, DType::U8])?;
        range_input_types(&self.id, inputs, [1, 2])?;
        Ok(vec![t, DType::F32, DType::F32])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        if inputs[0].dtype() == DType::I8 {
            let x: &[i8] = inputs[0].as_slice()?;
            let y: &mut [i8] = outputs[0].as_mut_slice()?;
            for (o, &v) in y.iter_mut().zip(x) {
                *o = v.max(0);
            }
        } else {
            outputs[0].bytes_mut().copy_from_slice(inputs[0].bytes());
        }
        // The range is passed through unchanged, as MXNet does (not clamped at 0).
        copy_ranges(inputs, outputs);
        Ok(())
    }
}
