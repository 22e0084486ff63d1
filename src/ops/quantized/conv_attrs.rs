//! `Convolution` attributes as the quantized and fused convolutions read
//! them, with the output-shape rule and the kernel geometry.

use super::common::Ident;
use crate::error::Result;
use crate::kernels::int8::conv::ConvGeometry;
use crate::ops::{AttrReader, Shape};

#[derive(Clone, Debug, PartialEq)]
pub struct ConvParams {
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    pub dilate: Vec<usize>,
    pub pad: Vec<usize>,
    pub num_filter: usize,
    pub num_group: usize,
    pub no_bias: bool,
}

fn dims(r: &AttrReader, key: &str, rank: usize, default: usize) -> Result<Vec<usize>> {
    let v = r.opt_tuple(key)?.unwrap_or_default();
    if v.is_empty() {
        return Ok(vec![default; rank]);
    }
    if v.len() != rank || v.iter().any(|&d| d < 0) {
        return Err(crate::error::Error::Attr {
            node: r.node.to_string(),
            op: r.op.to_string(),
            key: key.to_string(),
            value: r.raw(key).unwrap_or("").to_string(),
            reason: format!(
                "expected {rank} non-negative values, one per spatial dimension of the kernel"
            ),
        });
    }
    Ok(v.into_iter().map(|d| d as usize).collect())
}

impl ConvParams {
    pub fn read(r: &AttrReader) -> Result<ConvParams> {
        let kernel: Vec<usize> = r
            .opt_tuple("kernel")?
            .ok_or_else(|| r.missing("kernel"))?
            .into_iter()
            .map(|d| d.max(0) as usize)
            .collect();
        let rank = kernel.len();
        if !(1..=3).contains(&rank) || kernel.contains(&0) {
            return Err(crate::error::Error::Attr {
                node: r.node.to_string(),
                op: r.op.to_string(),
                key: "kernel".into(),
                value: r.raw("kernel").unwrap_or("").into(),
                reason: "expected 1 to 3 positive sizes".into(),
            });
        }
        let stride = dims(r, "stride", rank, 1)?;
        let dilate = dims(r, "dilate", rank, 1)?;
        let pad = dims(r, "pad", rank, 0)?;
        let num_filter = r.int("num_filter")?.max(0) as usize;
        let num_group = r.int_or("num_group", 1)?.max(1) as usize;
        let layout = r.raw("layout").unwrap_or("None");
        let channels_first = ["None", "NCW", "NCHW", "NCDHW"];
        if !channels_first.contains(&layout) {
            return Err(crate::error::Error::Attr {
                node: r.node.to_string(),
                op: r.op.to_string(),
                key: "layout".into(),
                value: layout.into(),
                reason:
                    "quantized convolution supports only channels-first layouts (NCW, NCHW, NCDHW)"
                        .into(),
            });
        }
        if stride.contains(&0) || dilate.contains(&0) {
            return Err(crate::error::Error::Attr {
                node: r.node.to_string(),
                op: r.op.to_string(),
                key: "stride/dilate".into(),
                value: format!("{stride:?}/{dilate:?}"),
                reason: "stride and dilation must be positive".into(),
            });
        }
        Ok(ConvParams {
            kernel,
            stride,
            dilate,
            pad,
            num_filter,
            num_group,
            no_bias: r.bool_or("no_bias", false)?,
        })
    }

    /// Output shape for `data` of shape (N, C, spatial...).
    pub fn output_shape(&self, id: &Ident, data: &[usize]) -> Result<Shape> {
        let rank = self.kernel.len();
        if data.len() != rank + 2 {
            return Err(id.shape_err(format!(
                "data shape {data:?} does not have {} dimensions",
                rank + 2
            )));
        }
        if !data[1].is_multiple_of(self.num_group)
            || !self.num_filter.is_multiple_of(self.num_group)
            || self.num_filter == 0
        {
            return Err(id.shape_err(format!(
                "{} input channels and num_filter={} must both be divisible by num_group={}",
                data[1], self.num_filter, self.num_group
            )));
        }
        let mut out = vec![data[0], self.num_filter];
        for i in 0..rank {
            let extent = data[2 + i] + 2 * self.pad[i];
            let span = self.dilate[i] * (self.kernel[i] - 1) + 1;
            if extent < span {
                return Err(id.shape_err(format!(
                    "kernel extent {span} exceeds the padded input size {extent} in spatial dimension {i}"
                )));
            }
            out.push((extent - span) / self.stride[i] + 1);
        }
        Ok(out)
    }

    /// Weight shape (num_filter, C / num_group, kernel...).
    pub fn weight_shape(&self, in_channels: usize) -> Shape {
        let mut s = vec![self.num_filter, in_channels / self.num_group];
        s.extend(&self.kernel);
        s
    }

    /// Kernel geometry for `data` of shape (N, C, spatial...) and its output shape.
    pub fn geometry(&self, data: &[usize], output: &[usize]) -> ConvGeometry {
        let lift = |v: &[usize], fill: usize| -> [usize; 3] {
            let mut out = [fill; 3];
            out[3 - v.len()..].copy_from_slice(v);
            out
        };
        ConvGeometry {
            batch: data[0],
            in_channels: data[1],
            out_channels: self.num_filter,
            groups: self.num_group,
            input: lift(&data[2..], 1),
            output: lift(&output[2..], 1),
            kernel: lift(&self.kernel, 1),
            stride: lift(&self.stride, 1),
            dilate: lift(&self.dilate, 1),
            pad: lift(&self.pad, 0),
        }
    }
}
