//! Elementwise math functions of one float32 input: `relu`, `sigmoid`,
//! `tanh`, `exp`, `log`, `sqrt`, … and `hard_sigmoid`.

use super::fp32_util::{f32_only, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::fp32::elementwise::{act, map};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Unary {
    Relu,
    Sigmoid,
    /// `max(0, min(1, alpha·x + beta))`.
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    SoftSign,
    Tanh,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Square,
    Abs,
    Negative,
    Reciprocal,
    Erf,
    Floor,
    Ceil,
    Round,
    Sign,
}

const NAMES: &[(&str, Unary)] = &[
    ("relu", Unary::Relu),
    ("sigmoid", Unary::Sigmoid),
    (
        "hard_sigmoid",
        Unary::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
    ),
    ("softsign", Unary::SoftSign),
    ("tanh", Unary::Tanh),
    ("exp", Unary::Exp),
    ("log", Unary::Log),
    ("sqrt", Unary::Sqrt),
    ("rsqrt", Unary::Rsqrt),
    ("square", Unary::Square),
    ("abs", Unary::Abs),
    ("negative", Unary::Negative),
    ("reciprocal", Unary::Reciprocal),
    ("erf", Unary::Erf),
    ("floor", Unary::Floor),
    ("ceil", Unary::Ceil),
    ("round", Unary::Round),
    ("sign", Unary::Sign),
];

pub fn register(r: &mut Registry) {
    for &(name, _) in NAMES {
        r.implement(name, |ctx| Ok(Box::new(UnaryOp::new(ctx)?)));
    }
}

impl Unary {
    fn apply(self, x: f32) -> f32 {
        match self {
            Unary::Relu => act::relu(x),
            Unary::Sigmoid => act::sigmoid(x),
            Unary::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Unary::SoftSign => act::softsign(x),
            Unary::Tanh => x.tanh(),
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Sqrt => x.sqrt(),
            Unary::Rsqrt => 1.0 / x.sqrt(),
            Unary::Square => x * x,
            Unary::Abs => x.abs(),
            Unary::Negative => -x,
            Unary::Reciprocal => 1.0 / x,
            Unary::Erf => libm::erff(x),
            Unary::Floor => x.floor(),
            Unary::Ceil => x.ceil(),
            // C's round: halves away from zero, as MXNet.
            Unary::Round => x.round(),
            Unary::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
        }
    }
}

struct UnaryOp {
    node: NodeInfo,
    f: Unary,
}

impl UnaryOp {
    fn new(ctx: &NodeCtx) -> Result<UnaryOp> {
        let canonical = super::lookup(ctx.op).map_or(ctx.op, |d| d.name);
        let mut f = NAMES
            .iter()
            .find(|(n, _)| *n == canonical || *n == ctx.op)
            .map(|(_, f)| *f)
            .ok_or_else(|| Error::UnsupportedOp {
                op: ctx.op.to_string(),
                node: ctx.name.to_string(),
            })?;
        if let Unary::HardSigmoid { .. } = f {
            let r = ctx.reader();
            f = Unary::HardSigmoid {
                alpha: r.float_or("alpha", 0.2)? as f32,
                beta: r.float_or("beta", 0.5)? as f32,
            };
        }
        Ok(UnaryOp {
            node: NodeInfo::new(ctx),
            f,
        })
    }
}

impl Op for UnaryOp {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        Ok(inputs[0].clone().map(|s| vec![s]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let f = self.f;
        map(inputs[0].f32s()?, outputs[0].f32s_mut()?, |x| f.apply(x));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn apply(name: &str, pairs: &[(&str, &str)], x: &[f32]) -> Vec<f32> {
        let op = make(|c| Ok(Box::new(UnaryOp::new(c)?)), name, pairs).unwrap();
        run(op.as_ref(), &[t(&[x.len()], x)]).unwrap()[0].to_f32_vec()
    }

    #[test]
    fn unary_values() {
        assert_eq!(apply("square", &[], &[-3.0, 2.0]), vec![9.0, 4.0]);
        assert_eq!(apply("round", &[], &[2.5, -2.5, 0.4]), vec![3.0, -3.0, 0.0]);
        assert_eq!(apply("sign", &[], &[-0.1, 0.0, 5.0]), vec![-1.0, 0.0, 1.0]);
        assert_eq!(apply("rsqrt", &[], &[4.0]), vec![0.5]);
        assert_eq!(
            apply("hard_sigmoid", &[], &[-10.0, 0.0, 1.0, 10.0]),
            vec![0.0, 0.5, 0.7, 1.0]
        );
        assert_eq!(
            apply("hard_sigmoid", &[("alpha", "1"), ("beta", "0")], &[0.25]),
            vec![0.25]
        );
        assert!((apply("erf", &[], &[1.0])[0] - 0.842_700_8).abs() < 1e-6);
    }

    #[test]
    fn unknown_name_is_an_error() {
        assert!(make(|c| Ok(Box::new(UnaryOp::new(c)?)), "cosh", &[]).is_err());
    }
}
