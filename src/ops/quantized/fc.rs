//! `_contrib_quantized_fully_connected`: int8 or uint8 data, offline int8
//! weights and bias, int32 output, with MXNet 1.9.1's oneDNN arithmetic:
//! the bias is rescaled with 127.5-based scales and truncated, and the
//! output range uses 127 for the data and 127 (int8 data) or 255 (uint8
//! data) for the weight.

use super::common::{
    data_scale, integer_range, known_type, max_abs, product_range, range_input_shapes,
    range_input_types, range_of, with_quant_type, write_range, Ident,
};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::int8::elem::{OutputElem, QuantElem};
use crate::kernels::int8::gemm::{gemm, PackedGemmWeights};
use crate::kernels::int8::output::{OutputStage, PerChannel};
use crate::ops::{AttrReader, NodeCtx, Op, Shape};
use crate::tensor::Tensor;

/// `FullyConnected` attributes.
#[derive(Clone, Debug)]
pub(super) struct FcParams {
    pub num_hidden: usize,
    pub no_bias: bool,
    pub flatten: bool,
}

impl FcParams {
    pub fn read(r: &AttrReader) -> Result<FcParams> {
        Ok(FcParams {
            num_hidden: r.int("num_hidden")?.max(0) as usize,
            no_bias: r.bool_or("no_bias", false)?,
            flatten: r.bool_or("flatten", true)?,
        })
    }

    /// Reduction length K for `data`.
    pub fn depth(&self, data: &[usize]) -> usize {
        if self.flatten {
            data[1..].iter().product()
        } else {
            data.last().copied().unwrap_or(1)
        }
    }

    pub fn output_shape(&self, id: &Ident, data: &[usize]) -> Result<Shape> {
        if data.is_empty() {
            return Err(id.shape_err("data must have at least one dimension"));
        }
        if self.num_hidden == 0 {
            return Err(id.shape_err("num_hidden must be positive"));
        }
        Ok(if self.flatten {
            vec![data[0], self.num_hidden]
        } else {
            let mut s = data[..data.len() - 1].to_vec();
            s.push(self.num_hidden);
            s
        })
    }
}

/// Runs the GEMM kernel: `data` viewed as (M, K), output (M, N) in `out`'s dtype.
pub(super) fn run_gemm(
    id: &Ident,
    data: &Tensor,
    weights: &PackedGemmWeights,
    stage: &OutputStage,
    out: &mut Tensor,
) -> Result<()> {
    stage
        .validate(weights.rows())
        .map_err(|m| id.runtime_err(m))?;
    with_quant_type!(data.dtype(), id, X => {
        let x = data.as_slice::<X>()?;
        match out.dtype() {
            DType::I8 => gemm_into::<X, i8>(x, weights, stage, out)?,
            DType::U8 => gemm_into::<X, u8>(x, weights, stage, out)?,
            DType::I32 => gemm_into::<X, i32>(x, weights, stage, out)?,
            DType::F32 => gemm_into::<X, f32>(x, weights, stage, out)?,
            other => return Err(id.dtype_err(format!("output dtype {other} is not supported"))),
        }
    });
    Ok(())
}

fn gemm_into<X: QuantElem, O: OutputElem>(
    x: &[X],
    weights: &PackedGemmWeights,
    stage: &OutputStage,
    out: &mut Tensor,
) -> Result<()> {
    gemm(x, weights, stage, out.as_mut_slice::<O>()?);
    Ok(())
}

struct QuantizedFc {
    id: Ident,
    params: FcParams,
    packed: Option<PackedGemmWeights>,
}

pub fn create(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(QuantizedFc {
        id: Ident::new(ctx),
        params: FcParams::read(&ctx.reader())?,
        packed: None,
    }))
}

impl QuantizedFc {
    fn ranges_start(&self) -> usize {
        if self.params.no_bias {
            2
        } else {
            3
        }
    }
}

impl Op for QuantizedFc {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        let count = if self.params.no_bias { 6 } else { 9 };
        self.id.expect_inputs(inputs.len(), count)?;
        range_input_shapes(&self.id, inputs, self.ranges_start()..inputs.len())?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        let out = self.params.output_shape(&self.id, &data)?;
        self.id.fill_shape(
            &mut inputs[1],
            vec![self.params.num_hidden, self.params.depth(&data)],
            "weight",
        )?;
        if !self.params.no_bias {
            self.id
                .fill_shape(&mut inputs[2], vec![self.params.num_hidden], "bias")?;
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
            self.packed = Some(PackedGemmWeights::pack(
                w.as_slice()?,
                w.shape()[0],
                w.shape()[1],
            ));
        }
        Ok(())
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let start = self.ranges_start();
        let data = inputs[0];
        let d_range = range_of(inputs[start], inputs[start + 1], "data")?;
        let w_range = range_of(inputs[start + 2], inputs[start + 3], "weight")?;
        let ds = data_scale(data.dtype(), d_range.0, d_range.1);
        let ws = data_scale(DType::I8, w_range.0, w_range.1);

        let mut stage = OutputStage::default();
        if !self.params.no_bias {
            let b_range = range_of(inputs[start + 4], inputs[start + 5], "bias")?;
            let rescale = ((ds * ws) * max_abs(b_range.0, b_range.1)) / 127.5;
            let bias: &[i8] = inputs[2].as_slice()?;
            // MXNet truncates the rescaled bias toward zero.
            stage.bias = PerChannel(bias.iter().map(|&b| (b as f32 * rescale).trunc()).collect());
        }

        let packed_now;
        let packed = match &self.packed {
            Some(p) => p,
            None => {
                let w = inputs[1];
                packed_now = PackedGemmWeights::pack(w.as_slice()?, w.shape()[0], w.shape()[1]);
                &packed_now
            }
        };
        run_gemm(&self.id, data, packed, &stage, &mut outputs[0])?;
        let range = product_range(d_range, 127.0, w_range, integer_range(data.dtype()));
        write_range(outputs, 1, range)
    }
}
