//! `_contrib_quantized_pooling`: max or average pooling of int8/uint8 data
//! (2-D, NCHW); the range is passed through.
//!
//! Averages round like MXNet 1.9.1's oneDNN JIT kernel (the one real graphs
//! run). With `pooling_convention=full`, windows that hang off the bottom or
//! right edge are divided by their part inside the padded input, as MXNet's
//! FP32 operator does; MXNet's quantized operator divides them by the whole
//! kernel area instead.

use super::common::{known_type, range_input_shapes, range_input_types, with_quant_type, Ident};
use super::layout::{to_channels_first, to_channels_last_into, with_scratch};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::int8::elem::QuantElem;
use crate::kernels::int8::pool::{
    avg_pool, avg_pool_channels_last, max_pool, max_pool_channels_last, AvgDivisor, PoolGeometry,
};
use crate::ops::{ChannelsLastSupport, NodeCtx, Op, Shape};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PoolType {
    Max,
    Avg,
}

struct QuantizedPooling {
    id: Ident,
    pool_type: PoolType,
    global: bool,
    full: bool,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    include_pad: bool,
    /// Data and output stored channels-last.
    order: (bool, bool),
}

fn pair(v: Option<Vec<i64>>, default: usize, key: &str, ctx: &NodeCtx) -> Result<[usize; 2]> {
    match v.as_deref() {
        None | Some([]) => Ok([default; 2]),
        Some([a, b]) if *a >= 0 && *b >= 0 => Ok([*a as usize, *b as usize]),
        Some(other) => Err(Error::Attr {
            node: ctx.name.to_string(),
            op: ctx.op.to_string(),
            key: key.into(),
            value: format!("{other:?}"),
            reason: "quantized pooling supports only 2-D windows (two non-negative values)".into(),
        }),
    }
}

pub fn create(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let r = ctx.reader();
    let pool_type = match r.choice("pool_type", &["max", "avg", "sum", "lp"], "max")? {
        "max" => PoolType::Max,
        "avg" => PoolType::Avg,
        other => {
            return Err(Error::Attr {
                node: ctx.name.into(),
                op: ctx.op.into(),
                key: "pool_type".into(),
                value: other.into(),
                reason: "quantized pooling supports only max and avg".into(),
            })
        }
    };
    let global = r.bool_or("global_pool", false)?;
    let full = r.choice("pooling_convention", &["valid", "full", "same"], "valid")? == "full";
    let kernel = if global {
        [1, 1]
    } else {
        pair(r.opt_tuple("kernel")?, 1, "kernel", ctx)?
    };
    if kernel.contains(&0) {
        return Err(Error::Attr {
            node: ctx.name.into(),
            op: ctx.op.into(),
            key: "kernel".into(),
            value: format!("{kernel:?}"),
            reason: "kernel sizes must be positive".into(),
        });
    }
    let stride = pair(r.opt_tuple("stride")?, 1, "stride", ctx)?;
    let stride = [stride[0].max(1), stride[1].max(1)];
    Ok(Box::new(QuantizedPooling {
        id: Ident::new(ctx),
        pool_type,
        global,
        full,
        kernel,
        stride,
        pad: pair(r.opt_tuple("pad")?, 0, "pad", ctx)?,
        include_pad: r.opt_bool("count_include_pad")?.unwrap_or(true),
        order: (false, false),
    }))
}

impl QuantizedPooling {
    fn geometry(&self, data: &[usize]) -> Result<PoolGeometry> {
        if data.len() != 4 {
            return Err(self
                .id
                .shape_err(format!("data shape {data:?} is not 4-D (N, C, H, W)")));
        }
        let input = [data[2], data[3]];
        if self.global {
            return Ok(PoolGeometry {
                planes: data[0] * data[1],
                input,
                output: [1, 1],
                kernel: input,
                stride: [1, 1],
                pad: [0, 0],
                pad_end: [0, 0],
            });
        }
        let mut output = [0usize; 2];
        for i in 0..2 {
            let extent = input[i] + 2 * self.pad[i];
            if self.pad[i] > 0 && self.pad[i] >= self.kernel[i] {
                return Err(self.id.shape_err(format!(
                    "pad {} must be smaller than the kernel size {} in spatial dimension {i}",
                    self.pad[i], self.kernel[i]
                )));
            }
            if extent < self.kernel[i] {
                return Err(self.id.shape_err(format!(
                    "kernel {:?} exceeds the padded input {:?}",
                    self.kernel, input
                )));
            }
            let steps = extent - self.kernel[i];
            output[i] = 1 + if self.full {
                steps.div_ceil(self.stride[i])
            } else {
                steps / self.stride[i]
            };
        }
        Ok(PoolGeometry {
            planes: data[0] * data[1],
            input,
            output,
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
            pad_end: self.pad,
        })
    }
}

impl Op for QuantizedPooling {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.id.expect_inputs(inputs.len(), 3)?;
        range_input_shapes(&self.id, inputs, [1, 2])?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        let g = self.geometry(&data)?;
        Ok(Some(vec![
            vec![data[0], data[1], g.output[0], g.output[1]],
            vec![1],
            vec![1],
        ]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], _: usize) -> Result<Vec<DType>> {
        let t = known_type(&self.id, inputs, 0, "data")?;
        self.id.expect_dtype("data", t, &[DType::I8, DType::U8])?;
        range_input_types(&self.id, inputs, [1, 2])?;
        Ok(vec![t, DType::F32, DType::F32])
    }

    fn channels_last_support(&self) -> ChannelsLastSupport {
        ChannelsLastSupport {
            inputs: vec![0],
            outputs: vec![0],
        }
    }

    fn set_channels_last(&mut self, inputs: &[bool], outputs: &[bool]) -> Result<()> {
        self.order = (inputs[0], outputs[0]);
        Ok(())
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let shape = inputs[0].shape();
        let g = self.geometry(shape)?;
        let (batch, channels) = (shape[0], shape[1]);
        let spatial_out = g.output[0] * g.output[1];
        let spatial_in = g.input[0] * g.input[1];
        // A 1x1 output has the same bytes in both orders.
        let out_last = self.order.1 || spatial_out == 1;
        with_quant_type!(inputs[0].dtype(), self.id, T => {
            let x = inputs[0].as_slice::<T>()?;
            let y = outputs[0].as_mut_slice::<T>()?;
            match (self.order.0, out_last) {
                (false, false) => self.pool_first(&g, x, y),
                (true, true) => self.pool_last(&g, channels, x, y),
                (true, false) => with_scratch::<T, _>(y.len(), |tmp| {
                    self.pool_last(&g, channels, x, tmp);
                    to_channels_first(tmp, batch, channels, spatial_out, y);
                }),
                (false, true) => with_scratch::<T, _>(x.len(), |tmp| {
                    to_channels_last_into(x, batch, channels, spatial_in, tmp);
                    self.pool_last(&g, channels, tmp, y);
                }),
            }
        });
        for i in 1..3 {
            outputs[i].bytes_mut().copy_from_slice(inputs[i].bytes());
        }
        Ok(())
    }
}

impl QuantizedPooling {
    fn divisor(&self) -> AvgDivisor {
        if self.include_pad {
            AvgDivisor::Padded
        } else {
            AvgDivisor::Valid
        }
    }

    /// Pools channels-first `x` (planes of `g`) into `y`.
    fn pool_first<T: QuantElem + Ord>(&self, g: &PoolGeometry, x: &[T], y: &mut [T]) {
        match self.pool_type {
            PoolType::Max => max_pool(g, x, y),
            PoolType::Avg => avg_pool(g, self.divisor(), x, y),
        }
    }

    /// Pools channels-last `x` into channels-last `y`.
    fn pool_last<T: QuantElem + Ord>(
        &self,
        g: &PoolGeometry,
        channels: usize,
        x: &[T],
        y: &mut [T],
    ) {
        let g = PoolGeometry {
            planes: g.planes / channels.max(1),
            ..*g
        };
        match self.pool_type {
            PoolType::Max => max_pool_channels_last(&g, channels, x, y),
            PoolType::Avg => avg_pool_channels_last(&g, self.divisor(), channels, x, y),
        }
    }
}
