//! `softmax` and `log_softmax` (axis, temperature, optional lengths),
//! `SoftmaxActivation` (instance or channel mode) and `SoftmaxOutput`,
//! whose inference output is a softmax and whose label input is ignored.

use super::fp32_util::{f32_only, numel, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::softmax::softmax;
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("softmax", |ctx| {
        Ok(Box::new(Softmax::new(ctx, Variant::axis(ctx, false)?)?))
    });
    r.implement("log_softmax", |ctx| {
        Ok(Box::new(Softmax::new(ctx, Variant::axis(ctx, true)?)?))
    });
    r.implement("SoftmaxActivation", |ctx| {
        let channel = ctx
            .reader()
            .choice("mode", &["instance", "channel"], "instance")?
            == "channel";
        Ok(Box::new(Softmax::new(
            ctx,
            if channel {
                Variant::Channel
            } else {
                Variant::Instance
            },
        )?))
    });
    r.implement("SoftmaxOutput", |ctx| {
        let r = ctx.reader();
        let variant = if r.bool_or("multi_output", false)? {
            Variant::Output(OutputMode::MultiOutput)
        } else if r.bool_or("preserve_shape", false)? {
            Variant::Output(OutputMode::PreserveShape)
        } else {
            Variant::Output(OutputMode::Flatten)
        };
        Ok(Box::new(Softmax::new(ctx, variant)?))
    });
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutputMode {
    /// Softmax over everything after the batch axis.
    Flatten,
    /// Softmax over axis 1 of `(N, C, …)`.
    MultiOutput,
    /// Softmax over the last axis.
    PreserveShape,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    Axis {
        axis: i64,
        log: bool,
        use_length: bool,
    },
    Instance,
    Channel,
    Output(OutputMode),
}

impl Variant {
    fn axis(ctx: &NodeCtx, log: bool) -> Result<Variant> {
        let r = ctx.reader();
        Ok(Variant::Axis {
            axis: r.int_or("axis", -1)?,
            log,
            use_length: r.bool_or("use_length", false)?,
        })
    }
}

struct Softmax {
    node: NodeInfo,
    variant: Variant,
    temperature: f32,
}

impl Softmax {
    fn new(ctx: &NodeCtx, variant: Variant) -> Result<Softmax> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let temperature = r.opt_float("temperature")?.unwrap_or(1.0) as f32;
        if let Some(d) = r.raw("dtype").filter(|d| *d != "None" && *d != "float32") {
            return Err(node.attr_err("dtype", d, "only a float32 output is supported"));
        }
        Ok(Softmax {
            node,
            variant,
            temperature,
        })
    }

    fn input_count(&self) -> usize {
        match self.variant {
            Variant::Axis {
                use_length: true, ..
            }
            | Variant::Output(_) => 2,
            _ => 1,
        }
    }

    /// Views the array as (outer, axis, inner) around the softmax axis.
    fn dims(&self, shape: &[usize]) -> Result<(usize, usize, usize)> {
        let split = |axis: usize| {
            (
                numel(&shape[..axis]),
                shape[axis],
                numel(&shape[axis + 1..]),
            )
        };
        let need = |n: usize| -> Result<()> {
            if shape.len() < n {
                return Err(self.node.shape_err(format!(
                    "data has shape {shape:?}, expected at least {n} dimensions"
                )));
            }
            Ok(())
        };
        Ok(match self.variant {
            Variant::Axis { axis, .. } => split(self.node.axis(axis, shape.len())?),
            Variant::Output(OutputMode::Flatten) => {
                need(1)?;
                (shape[0], numel(&shape[1..]), 1)
            }
            Variant::Channel | Variant::Output(OutputMode::MultiOutput) => {
                need(2)?;
                split(1)
            }
            // MXNet 1.9.1's instance mode normalises over the last axis only
            // (its documentation says all axes after the first).
            Variant::Instance | Variant::Output(OutputMode::PreserveShape) => {
                need(1)?;
                split(shape.len() - 1)
            }
        })
    }
}

impl Op for Softmax {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), self.input_count())?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        self.dims(&data)?;
        match self.variant {
            Variant::Axis {
                axis,
                use_length: true,
                ..
            } => {
                let mut lanes = data.clone();
                lanes.remove(self.node.axis(axis, data.len())?);
                self.node.assign_input(inputs, 1, "length", lanes)?;
            }
            Variant::Output(mode) => {
                // MXNet 1.9.1 accepts three label layouts with multi_output and
                // fills in the first; otherwise the label is the data shape minus its last axis.
                let flat = vec![data[0], numel(&data[2.min(data.len())..])];
                match (mode, &inputs[1]) {
                    (OutputMode::MultiOutput, Some(label)) => {
                        let mut squeezed = data.clone();
                        squeezed.remove(1);
                        let mut kept = data.clone();
                        kept[1] = 1;
                        if *label != flat && *label != squeezed && *label != kept {
                            return Err(self.node.shape_err(format!(
                                "label has shape {label:?}, which does not fit data {data:?}"
                            )));
                        }
                    }
                    (OutputMode::MultiOutput, None) => inputs[1] = Some(flat),
                    _ => self.node.assign_input(
                        inputs,
                        1,
                        "label",
                        data[..data.len() - 1].to_vec(),
                    )?,
                }
            }
            _ => {}
        }
        Ok(Some(vec![data]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        // Lengths and labels may be integers; only the data must be float32.
        for t in inputs.iter_mut().skip(1) {
            t.get_or_insert(DType::F32);
        }
        f32_only(&self.node, &mut inputs[..1], num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let dims = self.dims(inputs[0].shape())?;
        let (log, lengths) = match self.variant {
            Variant::Axis {
                log, use_length, ..
            } => {
                let lengths: Option<Vec<usize>> = use_length.then(|| {
                    inputs[1]
                        .to_f32_vec()
                        .iter()
                        .map(|&l| l.max(0.0) as usize)
                        .collect()
                });
                (log, lengths)
            }
            _ => (false, None),
        };
        softmax(
            inputs[0].f32s()?,
            outputs[0].f32s_mut()?,
            dims,
            self.temperature,
            log,
            lengths.as_deref(),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn reference(x: &[f32], t: f32) -> Vec<f32> {
        let m = x.iter().copied().fold(f32::MIN, f32::max);
        let e: Vec<f32> = x.iter().map(|v| ((v - m) / t).exp()).collect();
        let s: f32 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    }

    fn softmax_op(pairs: &[(&str, &str)]) -> Box<dyn Op> {
        make(
            |c| Ok(Box::new(Softmax::new(c, Variant::axis(c, false)?)?)),
            "softmax",
            pairs,
        )
        .unwrap()
    }

    #[test]
    fn softmax_axis_0_with_temperature() {
        let x = t(&[2, 2], &[1.0, 2.0, 3.0, 5.0]);
        let out = run(
            softmax_op(&[("axis", "0"), ("temperature", "2.0")]).as_ref(),
            &[x],
        )
        .unwrap();
        let c0 = reference(&[1.0, 3.0], 2.0);
        let c1 = reference(&[2.0, 5.0], 2.0);
        assert_close(&out[0], &[c0[0], c1[0], c0[1], c1[1]]);
    }

    #[test]
    fn log_softmax_last_axis() {
        let op = make(
            |c| Ok(Box::new(Softmax::new(c, Variant::axis(c, true)?)?)),
            "log_softmax",
            &[],
        )
        .unwrap();
        let out = run(op.as_ref(), &[t(&[1, 3], &[0.0, 1.0, 2.0])]).unwrap();
        let want: Vec<f32> = reference(&[0.0, 1.0, 2.0], 1.0)
            .iter()
            .map(|v| v.ln())
            .collect();
        assert_close(&out[0], &want);
    }

    #[test]
    fn softmax_with_length() {
        let op = softmax_op(&[("use_length", "True")]);
        let x = t(&[2, 3], &[1.0, 2.0, 3.0, 1.0, 1.0, 1.0]);
        let len = Tensor::from_slice(DType::I32, &[2], &[2i32, 3]).unwrap();
        let out = run(op.as_ref(), &[x, len]).unwrap();
        let r = reference(&[1.0, 2.0], 1.0);
        assert_close(&out[0], &[r[0], r[1], 0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
    }

    #[test]
    fn softmax_output_modes() {
        let x = ramp(&[1, 2, 2], 0.0, 1.0);
        let flat = make(
            |c| {
                Ok(Box::new(Softmax::new(
                    c,
                    Variant::Output(OutputMode::Flatten),
                )?))
            },
            "SoftmaxOutput",
            &[],
        )
        .unwrap();
        let mut shapes = vec![Some(vec![1, 2, 2]), None];
        flat.infer_shape(&mut shapes).unwrap();
        assert_eq!(shapes[1], Some(vec![1, 2]));
        let label = t(&[1, 2], &[0.0, 0.0]);
        let out = run(flat.as_ref(), &[x.clone(), label]).unwrap();
        assert_close(&out[0], &reference(&[0.0, 1.0, 2.0, 3.0], 1.0));

        let multi = make(
            |c| {
                Ok(Box::new(Softmax::new(
                    c,
                    Variant::Output(OutputMode::MultiOutput),
                )?))
            },
            "SoftmaxOutput",
            &[],
        )
        .unwrap();
        let mut shapes = vec![Some(vec![1, 2, 2]), None];
        multi.infer_shape(&mut shapes).unwrap();
        assert_eq!(shapes[1], Some(vec![1, 2]));
        let out = run(multi.as_ref(), &[x, t(&[1, 2], &[0.0, 0.0])]).unwrap();
        let r = reference(&[0.0, 2.0], 1.0);
        assert_close(&out[0], &[r[0], r[0], r[1], r[1]]);
    }

    #[test]
    fn softmax_activation_channel() {
        let op = make(
            |c| Ok(Box::new(Softmax::new(c, Variant::Channel)?)),
            "SoftmaxActivation",
            &[("mode", "channel")],
        )
        .unwrap();
        let out = run(op.as_ref(), &[ramp(&[1, 2, 1, 2], 0.0, 1.0)]).unwrap();
        let r = reference(&[0.0, 2.0], 1.0);
        assert_close(&out[0], &[r[0], r[0], r[1], r[1]]);
    }
}
