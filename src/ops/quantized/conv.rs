//! `_contrib_quantized_conv`: int8 or uint8 data, int8 weights and bias
//! (quantized offline with scale 127/R), int32 output.
//!
//! MXNet 1.9.1 runs only uint8 data, adds the raw int8 bias to the
//! accumulator without rescaling it, and reports an output range computed
//! as if uint8 data had 127 steps, which doubles every dequantized value.
//! Here the bias is rescaled to accumulator units and the range uses the
//! data's own scale constant (127.5 or 255.5). The accumulators themselves
//! are MXNet's exactly.

use super::common::{
    known_type, max_abs, range_constant, range_input_shapes, range_input_types, range_of,
    with_quant_type, write_range, Ident, P31,
};
use super::conv_attrs::ConvParams;
use super::layout::{to_channels_first, to_channels_last, to_channels_last_into, with_scratch};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::int8::conv::{conv, ConvGeometry, PackedConvWeights};
use crate::kernels::int8::elem::{OutputElem, QuantElem, QuantSlice};
use crate::kernels::int8::output::{OutputStage, PerChannel};
use crate::ops::{ChannelsLastSupport, NodeCtx, Op, Shape};
use crate::tensor::Tensor;

struct QuantizedConv {
    id: Ident,
    params: ConvParams,
    packed: Option<PackedConvWeights>,
    order: ConvOrder,
}

pub fn create(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(QuantizedConv {
        id: Ident::new(ctx),
        params: ConvParams::read(&ctx.reader())?,
        packed: None,
        order: ConvOrder::default(),
    }))
}

impl QuantizedConv {
    fn input_count(&self) -> usize {
        if self.params.no_bias {
            6
        } else {
            9
        }
    }

    /// Index of the first range input (min_data).
    fn ranges_start(&self) -> usize {
        if self.params.no_bias {
            2
        } else {
            3
        }
    }
}

/// Packs int8 weights of shape (O, I/groups, k...) for the kernel.
pub(super) fn pack_weights(
    params: &ConvParams,
    weights: &[i8],
    in_channels: usize,
) -> PackedConvWeights {
    let mut kernel = [1usize; 3];
    kernel[3 - params.kernel.len()..].copy_from_slice(&params.kernel);
    PackedConvWeights::pack(
        weights,
        params.num_filter,
        in_channels / params.num_group,
        kernel,
    )
}

/// Memory order of a convolution's data, residual and output
/// (`true` = channels-last), as the executor chose at bind.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ConvOrder {
    pub data: bool,
    pub sum: bool,
    pub out: bool,
}

/// Runs the channels-last kernel: converts `data` (and `residual`) to
/// channels-last where they are channels-first, convolves, and writes `out`
/// in the order that `order.out` requests.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_conv(
    id: &Ident,
    geom: &ConvGeometry,
    data: &Tensor,
    weights: &PackedConvWeights,
    stage: &OutputStage,
    residual: Option<&Tensor>,
    order: ConvOrder,
    out: &mut Tensor,
) -> Result<()> {
    stage
        .validate(geom.out_channels)
        .map_err(|m| id.runtime_err(m))?;
    let in_spatial: usize = geom.input.iter().product();
    let out_spatial: usize = geom.output.iter().product();
    let residual_copy = match residual {
        Some(r) if !order.sum => Some(with_quant_type!(r.dtype(), id, R => ResidualBuf::from(
            to_channels_last(r.as_slice::<R>()?, geom.batch, geom.out_channels, out_spatial)
        ), with_i32)),
        _ => None,
    };
    let res_slice = match (&residual_copy, residual) {
        (Some(copy), _) => Some(copy.slice()),
        (None, Some(r)) => Some(quant_slice(r, |d| {
            id.dtype_err(format!("residual dtype {d} is not supported"))
        })?),
        (None, None) => None,
    };
    with_quant_type!(data.dtype(), id, X => {
        let src = data.as_slice::<X>()?;
        let mut run = |x: &[X]| match out.dtype() {
            DType::I8 => conv_into::<X, i8>(geom, x, weights, stage, res_slice, order.out, out),
            DType::U8 => conv_into::<X, u8>(geom, x, weights, stage, res_slice, order.out, out),
            DType::I32 => conv_into::<X, i32>(geom, x, weights, stage, res_slice, order.out, out),
            DType::F32 => conv_into::<X, f32>(geom, x, weights, stage, res_slice, order.out, out),
            other => Err(id.dtype_err(format!("output dtype {other} is not supported"))),
        };
        if order.data {
            run(src)?
        } else {
            with_scratch::<X, _>(src.len(), |x| {
                to_channels_last_into(src, geom.batch, geom.in_channels, in_spatial, x);
                run(x)
            })?
        }
    });
    Ok(())
}

/// Returns the elements of an int8, uint8 or int32 tensor, or the error
/// `unsupported` makes from any other dtype.
pub(super) fn quant_slice(
    t: &Tensor,
    unsupported: impl FnOnce(DType) -> Error,
) -> Result<QuantSlice<'_>> {
    Ok(match t.dtype() {
        DType::I8 => QuantSlice::I8(t.as_slice()?),
        DType::U8 => QuantSlice::U8(t.as_slice()?),
        DType::I32 => QuantSlice::I32(t.as_slice()?),
        other => return Err(unsupported(other)),
    })
}

fn conv_into<X: QuantElem, O: OutputElem + Default>(
    geom: &ConvGeometry,
    x: &[X],
    weights: &PackedConvWeights,
    stage: &OutputStage,
    residual: Option<QuantSlice>,
    out_last: bool,
    out: &mut Tensor,
) -> Result<()> {
    let spatial: usize = geom.output.iter().product();
    let dst = out.as_mut_slice::<O>()?;
    if out_last {
        conv(geom, x, weights, stage, residual, dst);
        return Ok(());
    }
    with_scratch::<O, _>(geom.output_len(), |last| {
        conv(geom, x, weights, stage, residual, last);
        to_channels_first(last, geom.batch, geom.out_channels, spatial, dst);
    });
    Ok(())
}

/// A channels-last copy of a residual operand.
enum ResidualBuf {
    I8(Vec<i8>),
    U8(Vec<u8>),
    I32(Vec<i32>),
}

impl ResidualBuf {
    fn slice(&self) -> QuantSlice<'_> {
        match self {
            ResidualBuf::I8(v) => QuantSlice::I8(v),
            ResidualBuf::U8(v) => QuantSlice::U8(v),
            ResidualBuf::I32(v) => QuantSlice::I32(v),
        }
    }
}

impl From<Vec<i8>> for ResidualBuf {
    fn from(v: Vec<i8>) -> Self {
        ResidualBuf::I8(v)
    }
}

impl From<Vec<u8>> for ResidualBuf {
    fn from(v: Vec<u8>) -> Self {
        ResidualBuf::U8(v)
    }
}

impl From<Vec<i32>> for ResidualBuf {
    fn from(v: Vec<i32>) -> Self {
        ResidualBuf::I32(v)
    }
}

impl Op for QuantizedConv {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.id.expect_inputs(inputs.len(), self.input_count())?;
        let start = self.ranges_start();
        range_input_shapes(&self.id, inputs, start..inputs.len())?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        let out = self.params.output_shape(&self.id, &data)?;
        self.id
            .fill_shape(&mut inputs[1], self.params.weight_shape(data[1]), "weight")?;
        if !self.params.no_bias {
            self.id
                .fill_shape(&mut inputs[2], vec![self.params.num_filter], "bias")?;
        }
        Ok(Some(vec![out, vec![1], vec![1]]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], _: usize) -> Result<Vec<DType>> {
        let data = known_type(&self.id, inputs, 0, "data")?;
        self.id
            .expect_dtype("data", data, &[DType::I8, DType::U8])?;
        let end = self.ranges_start();
        for slot in &mut inputs[1..end] {
            let t = *slot.get_or_insert(DType::I8);
            self.id.expect_dtype("weight/bias", t, &[DType::I8])?;
        }
        range_input_types(&self.id, inputs, self.ranges_start()..inputs.len())?;
        Ok(vec![DType::I32, DType::F32, DType::F32])
    }

    fn prepare(&mut self, constants: &[Option<&Tensor>]) -> Result<()> {
        if let Some(w) = constants.get(1).copied().flatten() {
            let in_channels = w.shape()[1] * self.params.num_group;
            self.packed = Some(pack_weights(&self.params, w.as_slice()?, in_channels));
        }
        Ok(())
    }

    fn channels_last_support(&self) -> ChannelsLastSupport {
        ChannelsLastSupport {
            inputs: vec![0],
            outputs: vec![0],
        }
    }

    fn set_channels_last(&mut self, inputs: &[bool], outputs: &[bool]) -> Result<()> {
        self.order = ConvOrder {
            data: inputs[0],
            sum: false,
            out: outputs[0],
        };
        Ok(())
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let start = self.ranges_start();
        let data = inputs[0];
        let d_range = range_of(inputs[start], inputs[start + 1], "data")?;
        let w_range = range_of(inputs[start + 2], inputs[start + 3], "weight")?;
        // Accumulator unit: real data step times real weight step.
        let unit = (max_abs(d_range.0, d_range.1) / range_constant(data.dtype()))
            * (max_abs(w_range.0, w_range.1) / 127.0);

        let mut stage = OutputStage::default();
        if !self.params.no_bias {
            let b_range = range_of(inputs[start + 4], inputs[start + 5], "bias")?;
            let factor = if unit == 0.0 {
                0.0
            } else {
                (max_abs(b_range.0, b_range.1) / 127.0) / unit
            };
            let bias: &[i8] = inputs[2].as_slice()?;
            stage.bias = PerChannel(
                bias.iter()
                    .map(|&b| crate::kernels::int8::elem::round_half_even(b as f32 * factor))
                    .collect(),
            );
        }

        let packed_now;
        let packed = match &self.packed {
            Some(p) => p,
            None => {
                packed_now = pack_weights(&self.params, inputs[1].as_slice()?, data.shape()[1]);
                &packed_now
            }
        };
        let geom = self.params.geometry(data.shape(), outputs[0].shape());
        run_conv(
            &self.id,
            &geom,
            data,
            packed,
            &stage,
            None,
            self.order,
            &mut outputs[0],
        )?;
        let m = unit * P31;
        write_range(outputs, 1, (-m, m))
    }
}
