//! `Activation` (relu, sigmoid, tanh, softrelu, softsign) and `LeakyReLU`
//! (leaky, prelu, elu, selu, gelu, rrelu) with MXNet 1.9.1's definitions.

use super::fp32_util::{declared_outputs, f32_only, numel, NodeInfo};
use super::{Epilogue, NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::elementwise::{act, map, map_channels, zip};
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("Activation", |ctx| Ok(Box::new(Activation::new(ctx)?)));
    r.implement("LeakyReLU", |ctx| Ok(Box::new(LeakyReLU::new(ctx)?)));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ActType {
    Relu,
    Sigmoid,
    Tanh,
    SoftRelu,
    SoftSign,
}

struct Activation {
    node: NodeInfo,
    act: ActType,
}

impl Activation {
    fn new(ctx: &NodeCtx) -> Result<Activation> {
        let r = ctx.reader();
        let name = r.raw("act_type").ok_or_else(|| r.missing("act_type"))?;
        let act = match r.choice(
            "act_type",
            &["relu", "sigmoid", "tanh", "softrelu", "softsign"],
            name,
        )? {
            "relu" => ActType::Relu,
            "sigmoid" => ActType::Sigmoid,
            "tanh" => ActType::Tanh,
            "softrelu" => ActType::SoftRelu,
            _ => ActType::SoftSign,
        };
        Ok(Activation {
            node: NodeInfo::new(ctx),
            act,
        })
    }
}

impl Op for Activation {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        Ok(inputs[0].clone().map(|s| vec![s]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn as_epilogue(&self, _constants: &[Option<&Tensor>]) -> Option<Vec<Epilogue>> {
        (self.act == ActType::Relu).then(|| vec![Epilogue::Relu])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let (x, y) = (inputs[0].f32s()?, outputs[0].f32s_mut()?);
        match self.act {
            ActType::Relu => map(x, y, act::relu),
            ActType::Sigmoid => map(x, y, act::sigmoid),
            ActType::Tanh => map(x, y, f32::tanh),
            ActType::SoftRelu => map(x, y, act::softrelu),
            ActType::SoftSign => map(x, y, act::softsign),
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum LeakyType {
    /// `x` above zero, `slope · x` below; also rrelu at inference with
    /// the mean of its bounds as slope.
    Leaky(f32),
    /// Per-channel slope from the `gamma` input.
    Prelu,
    Elu(f32),
    Selu,
    Gelu,
}

struct LeakyReLU {
    node: NodeInfo,
    act: LeakyType,
    num_outputs: usize,
}

impl LeakyReLU {
    fn new(ctx: &NodeCtx) -> Result<LeakyReLU> {
        let r = ctx.reader();
        let slope = r.float_or("slope", 0.25)? as f32;
        let kind = r.choice(
            "act_type",
            &["rrelu", "leaky", "prelu", "elu", "selu", "gelu"],
            "leaky",
        )?;
        let act = match kind {
            "leaky" => LeakyType::Leaky(slope),
            "rrelu" => {
                let lower = r.float_or("lower_bound", 0.125)? as f32;
                let upper = r.float_or("upper_bound", 0.334)? as f32;
                LeakyType::Leaky((lower + upper) / 2.0)
            }
            "prelu" => LeakyType::Prelu,
            "elu" => LeakyType::Elu(slope),
            "selu" => LeakyType::Selu,
            _ => LeakyType::Gelu,
        };
        Ok(LeakyReLU {
            node: NodeInfo::new(ctx),
            act,
            num_outputs: declared_outputs(ctx, if kind == "rrelu" { 2 } else { 1 }),
        })
    }
}

impl Op for LeakyReLU {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        let prelu = self.act == LeakyType::Prelu;
        self.node
            .expect_inputs(inputs.len(), if prelu { 2 } else { 1 })?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        if prelu {
            let channels = if data.len() > 1 { data[1] } else { 1 };
            if inputs[1].is_none() {
                inputs[1] = Some(vec![channels]);
            }
            let gamma = inputs[1].as_ref().unwrap();
            let n = numel(gamma);
            if n != 1 && n != channels && *gamma != data {
                return Err(self.node.shape_err(format!(
                    "gamma has shape {gamma:?}, expected one slope or one per channel ({channels}) of data {data:?}"
                )));
            }
        }
        Ok(Some(vec![data; self.num_outputs]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let shape = inputs[0].shape().to_vec();
        let x = inputs[0].f32s()?;
        let y = outputs[0].f32s_mut()?;
        match self.act {
            LeakyType::Leaky(slope) => map(x, y, move |v| act::leaky(v, slope)),
            LeakyType::Elu(alpha) => map(x, y, move |v| act::elu(v, alpha)),
            LeakyType::Selu => map(x, y, act::selu),
            LeakyType::Gelu => map(x, y, act::gelu),
            LeakyType::Prelu => {
                let gamma = inputs[1].f32s()?;
                if inputs[1].shape() == shape.as_slice() && gamma.len() != 1 {
                    zip(x, gamma, y, act::leaky);
                } else if gamma.len() == 1 {
                    let slope = gamma[0];
                    map(x, y, move |v| act::leaky(v, slope));
                } else if !x.is_empty() {
                    let inner = numel(&shape[2..]);
                    map_channels(x, y, gamma.len(), inner, |c, v| act::leaky(v, gamma[c]));
                }
            }
        }
        // rrelu's hidden mask output contains the slope used at inference.
        if let (Some(mask), LeakyType::Leaky(slope)) = (outputs.get_mut(1), self.act) {
            mask.f32s_mut()?.fill(slope);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn activation(kind: &str, x: &[f32]) -> Vec<f32> {
        let op = make(
            |c| Ok(Box::new(Activation::new(c)?)),
            "Activation",
            &[("act_type", kind)],
        )
        .unwrap();
        run(op.as_ref(), &[t(&[x.len()], x)]).unwrap()[0].to_f32_vec()
    }

    fn leaky(pairs: &[(&str, &str)], inputs: &[Tensor]) -> Vec<Tensor> {
        let op = make(|c| Ok(Box::new(LeakyReLU::new(c)?)), "LeakyReLU", pairs).unwrap();
        run(op.as_ref(), inputs).unwrap()
    }

    #[test]
    fn activation_types() {
        let x = [-2.0, 0.0, 3.0];
        assert_eq!(activation("relu", &x), vec![0.0, 0.0, 3.0]);
        assert_eq!(activation("softsign", &x), vec![-2.0 / 3.0, 0.0, 0.75]);
        let s = activation("sigmoid", &x);
        assert!((s[0] - 1.0 / (1.0 + 2f32.exp())).abs() < 1e-7);
        assert_eq!(s[1], 0.5);
        let th = activation("tanh", &x);
        assert!((th[2] - 3f32.tanh()).abs() < 1e-7);
        let sr = activation("softrelu", &[-2.0, 25.0]);
        assert!((sr[0] - (1.0 + (-2f32).exp()).ln()).abs() < 1e-7);
        assert_eq!(sr[1], 25.0);
    }

    #[test]
    fn activation_requires_act_type() {
        let err = make(|c| Ok(Box::new(Activation::new(c)?)), "Activation", &[])
            .err()
            .unwrap();
        assert!(err.to_string().contains("act_type"));
    }

    #[test]
    fn leaky_elu_selu_gelu() {
        let x = t(&[3], &[-1.0, 0.0, 2.0]);
        assert_close(&leaky(&[], std::slice::from_ref(&x))[0], &[-0.25, 0.0, 2.0]);
        assert_close(
            &leaky(
                &[("act_type", "leaky"), ("slope", "0.1")],
                std::slice::from_ref(&x),
            )[0],
            &[-0.1, 0.0, 2.0],
        );
        let e = (-1f32).exp_m1();
        assert_close(
            &leaky(
                &[("act_type", "elu"), ("slope", "0.5")],
                std::slice::from_ref(&x),
            )[0],
            &[0.5 * e, 0.0, 2.0],
        );
        let selu = leaky(&[("act_type", "selu")], std::slice::from_ref(&x));
        assert_close(
            &selu[0],
            &[1.050_701 * 1.673_263_2 * e, 0.0, 1.050_701 * 2.0],
        );
        let gelu = leaky(&[("act_type", "gelu")], &[x])[0].to_f32_vec();
        assert!((gelu[0] - -0.158_655_25).abs() < 1e-6);
        assert!((gelu[2] - 1.954_499_7).abs() < 1e-5);
    }

    #[test]
    fn rrelu_uses_mean_slope_and_has_mask() {
        let out = leaky(
            &[
                ("act_type", "rrelu"),
                ("lower_bound", "0.1"),
                ("upper_bound", "0.3"),
            ],
            &[t(&[2], &[-1.0, 1.0])],
        );
        assert_eq!(out.len(), 2);
        assert_close(&out[0], &[-0.2, 1.0]);
    }

    #[test]
    fn prelu_per_channel() {
        // (1, 2, 2): channel slopes 0.1 and 0.5.
        let x = t(&[1, 2, 2], &[-1.0, 1.0, -2.0, 2.0]);
        let out = leaky(&[("act_type", "prelu")], &[x.clone(), t(&[2], &[0.1, 0.5])]);
        assert_close(&out[0], &[-0.1, 1.0, -1.0, 2.0]);
        let out = leaky(&[("act_type", "prelu")], &[x, t(&[1], &[0.2])]);
        assert_close(&out[0], &[-0.2, 1.0, -0.4, 2.0]);
    }

    #[test]
    fn prelu_infers_gamma_shape() {
        let op = make(
            |c| Ok(Box::new(LeakyReLU::new(c)?)),
            "LeakyReLU",
            &[("act_type", "prelu")],
        )
        .unwrap();
        let mut shapes = vec![Some(vec![2, 5, 3, 3]), None];
        op.infer_shape(&mut shapes).unwrap();
        assert_eq!(shapes[1], Some(vec![5]));
        let mut bad = vec![Some(vec![2, 5, 3, 3]), Some(vec![4])];
        assert!(op.infer_shape(&mut bad).is_err());
    }
}
