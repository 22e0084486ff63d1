//! `_contrib_quantize` (legacy, explicit range inputs), `_contrib_quantize_v2`
//! (calibrated or data-driven range) and `_contrib_dequantize`.

use super::common::{
    data_scale, known_type, max_abs, range_constant, range_input_shapes, range_input_types,
    range_of, with_quant_type, write_range, Calib, Ident, OutType, INT8_RANGE, UINT8_RANGE,
};
use super::layout::{to_channels_first, to_channels_last_into, with_scratch};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::int8::quantize::{dequantize, min_max_f32, quantize, quantize_channels_last};
use crate::ops::{ChannelsLastSupport, NodeCtx, Op, Shape};
use crate::tensor::Tensor;

fn triple_shape(inputs: &[Option<Shape>]) -> Option<Vec<Shape>> {
    inputs[0].clone().map(|s| vec![s, vec![1], vec![1]])
}

/// `_contrib_quantize`: inputs `data, min_range, max_range`.
struct Quantize {
    id: Ident,
    out: DType,
}

pub fn create_quantize(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let r = ctx.reader();
    let out = match r.choice("out_type", &["int8", "uint8"], "uint8")? {
        "int8" => DType::I8,
        _ => DType::U8,
    };
    Ok(Box::new(Quantize {
        id: Ident::new(ctx),
        out,
    }))
}

impl Op for Quantize {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.id.expect_inputs(inputs.len(), 3)?;
        range_input_shapes(&self.id, inputs, [1, 2])?;
        Ok(triple_shape(inputs))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], _: usize) -> Result<Vec<DType>> {
        inputs[0].get_or_insert(DType::F32);
        self.id
            .expect_dtype("data", inputs[0].unwrap(), &[DType::F32])?;
        range_input_types(&self.id, inputs, [1, 2])?;
        Ok(vec![self.out, DType::F32, DType::F32])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let (lo, hi) = range_of(inputs[1], inputs[2], "the input range")?;
        let x = inputs[0].f32s()?;
        // The offline weight quantizer's scales: 127 and 255, not 127.5/255.5.
        let r = max_abs(lo, hi);
        let scale_for = |q: f32| if r == 0.0 { 0.0 } else { q / r };
        match self.out {
            DType::I8 => {
                quantize::<i8>(x, scale_for(127.0), outputs[0].as_mut_slice()?);
                write_range(outputs, 1, (-r, r))
            }
            _ => {
                quantize::<u8>(x, scale_for(255.0), outputs[0].as_mut_slice()?);
                write_range(outputs, 1, (lo, hi))
            }
        }
    }
}

/// `_contrib_quantize_v2`: input `data`.
struct QuantizeV2 {
    id: Ident,
    out_type: OutType,
    calib: Option<Calib>,
    /// The output is stored channels-last.
    out_last: bool,
}

pub fn create_quantize_v2(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let r = ctx.reader();
    Ok(Box::new(QuantizeV2 {
        id: Ident::new(ctx),
        out_type: OutType::read(&r, "int8")?,
        calib: Calib::read(&r)?,
        out_last: false,
    }))
}

/// Batch, channels and spatial size of a (N, C, spatial...) shape.
fn dims(shape: &[usize]) -> (usize, usize, usize) {
    (shape[0], shape[1], shape[2..].iter().product())
}

impl Op for QuantizeV2 {
    fn channels_last_support(&self) -> ChannelsLastSupport {
        ChannelsLastSupport {
            inputs: vec![],
            outputs: vec![0],
        }
    }

    fn set_channels_last(&mut self, _inputs: &[bool], outputs: &[bool]) -> Result<()> {
        self.out_last = outputs[0];
        Ok(())
    }

    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.id.expect_inputs(inputs.len(), 1)?;
        Ok(triple_shape(inputs))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], _: usize) -> Result<Vec<DType>> {
        let input = *inputs[0].get_or_insert(DType::F32);
        self.id
            .expect_dtype("data", input, &[DType::F32, DType::I8, DType::U8])?;
        // Integer data is passed through unchanged, so it keeps its dtype.
        let out = if input == DType::F32 {
            self.out_type.resolve(self.calib)
        } else {
            input
        };
        Ok(vec![out, DType::F32, DType::F32])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let data = inputs[0];
        if data.dtype() != DType::F32 {
            if self.out_last {
                let (batch, channels, spatial) = dims(data.shape());
                with_quant_type!(data.dtype(), self.id, T => to_channels_last_into(
                    data.as_slice::<T>()?, batch, channels, spatial, outputs[0].as_mut_slice::<T>()?
                ));
            } else {
                outputs[0].bytes_mut().copy_from_slice(data.bytes());
            }
            let range = match (self.calib, data.dtype()) {
                (Some(c), _) => (c.min, c.max),
                (None, DType::U8) => (0.0, UINT8_RANGE),
                (None, _) => (-INT8_RANGE, INT8_RANGE),
            };
            return write_range(outputs, 1, range);
        }
        let x = data.f32s()?;
        let (lo, hi) = match self.calib {
            Some(c) => (c.min, c.max),
            None => min_max_f32(x).unwrap_or((0.0, 0.0)),
        };
        let out = outputs[0].dtype();
        let scale = data_scale(out, lo, hi);
        if self.out_last {
            let (batch, channels, spatial) = dims(data.shape());
            with_quant_type!(out, self.id, T => {
                quantize_channels_last::<T>(
                    x, batch, channels, spatial, scale, outputs[0].as_mut_slice()?
                )
            });
        } else {
            with_quant_type!(out, self.id, T => quantize::<T>(x, scale, outputs[0].as_mut_slice()?));
        }
        let range = if out == DType::I8 {
            let r = max_abs(lo, hi);
            (-r, r)
        } else {
            // uint8 keeps the range as given, even a negative minimum
            // (consumers read uint8 data with zero point 0).
            (lo, hi)
        };
        write_range(outputs, 1, range)
    }
}

/// `_contrib_dequantize`: inputs `data, min_range, max_range`.
struct Dequantize {
    id: Ident,
    /// The data input is stored channels-last.
    data_last: bool,
}

pub fn create_dequantize(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let r = ctx.reader();
    r.choice("out_type", &["float32"], "float32")?;
    Ok(Box::new(Dequantize {
        id: Ident::new(ctx),
        data_last: false,
    }))
}

impl Op for Dequantize {
    fn channels_last_support(&self) -> ChannelsLastSupport {
        ChannelsLastSupport {
            inputs: vec![0],
            outputs: vec![],
        }
    }

    fn set_channels_last(&mut self, inputs: &[bool], _outputs: &[bool]) -> Result<()> {
        self.data_last = inputs[0];
        Ok(())
    }

    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.id.expect_inputs(inputs.len(), 3)?;
        range_input_shapes(&self.id, inputs, [1, 2])?;
        Ok(inputs[0].clone().map(|s| vec![s]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], _: usize) -> Result<Vec<DType>> {
        let t = known_type(&self.id, inputs, 0, "data")?;
        // int32 is an extension: MXNet 1.9.1 dequantizes only int8 and uint8.
        self.id
            .expect_dtype("data", t, &[DType::I8, DType::U8, DType::I32])?;
        range_input_types(&self.id, inputs, [1, 2])?;
        Ok(vec![DType::F32])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let (lo, hi) = range_of(inputs[1], inputs[2], "the input range")?;
        let t = inputs[0].dtype();
        let scale = max_abs(lo, hi) / range_constant(t);
        let out = outputs[0].f32s_mut()?;
        if self.data_last {
            let (batch, channels, spatial) = dims(inputs[0].shape());
            with_scratch::<f32, _>(out.len(), |tmp| -> Result<()> {
                with_quant_type!(t, self.id, T => dequantize::<T>(inputs[0].as_slice::<T>()?, scale, tmp), with_i32);
                to_channels_first(tmp, batch, channels, spatial, out);
                Ok(())
            })?;
        } else {
            with_quant_type!(t, self.id, T => dequantize::<T>(inputs[0].as_slice::<T>()?, scale, out), with_i32);
        }
        Ok(())
    }
}
