//! Elementwise arithmetic: same-shape binary operators (`elemwise_add`, …,
//! `_maximum`), numpy-broadcasting binary operators (`broadcast_add`, …),
//! `add_n`, operators with a scalar attribute (`_plus_scalar`, …) and `clip`.

use super::fp32_util::{f32_only, NodeInfo};
use super::{
    all_visible, data_input, single_output, Epilogue, NodeCtx, Op, OpDef, Registry, Shape,
};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::Attrs;
use crate::kernels::fp32::elementwise::{act, broadcast, broadcast_shape, map, zip};
use crate::tensor::Tensor;

/// A binary function on two f32 values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Power,
    Mod,
    Hypot,
    Equal,
    NotEqual,
    Greater,
    GreaterEqual,
    Lesser,
    LesserEqual,
    LogicalAnd,
    LogicalOr,
    LogicalXor,
}

fn truth(b: bool) -> f32 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Python-style modulo as MXNet defines it: the result takes the divisor's
/// sign, and a zero divisor gives 0.
fn modulo(a: f32, b: f32) -> f32 {
    if b == 0.0 {
        return 0.0;
    }
    let r = a % b;
    if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
        r + b
    } else {
        r
    }
}

impl Binary {
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
            Binary::Div => a / b,
            // MXNet's maximum and minimum return the first operand on ties and NaN.
            Binary::Max => {
                if a >= b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
            Binary::Min => {
                if a <= b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
            Binary::Power => a.powf(b),
            Binary::Mod => modulo(a, b),
            Binary::Hypot => a.hypot(b),
            Binary::Equal => truth(a == b),
            Binary::NotEqual => truth(a != b),
            Binary::Greater => truth(a > b),
            Binary::GreaterEqual => truth(a >= b),
            Binary::Lesser => truth(a < b),
            Binary::LesserEqual => truth(a <= b),
            Binary::LogicalAnd => truth(a != 0.0 && b != 0.0),
            Binary::LogicalOr => truth(a != 0.0 || b != 0.0),
            Binary::LogicalXor => truth((a != 0.0) != (b != 0.0)),
        }
    }
}

/// Evaluates `$body` with `$g` bound to a closure for `$f`. The four
/// arithmetic functions get their own closure each, so the compiler can
/// inline and vectorise them; the rest share `Binary::apply`.
macro_rules! specialize {
    ($f:expr, $g:ident => $body:expr) => {
        match $f {
            Binary::Add => {
                let $g = |x: f32, y: f32| x + y;
                $body
            }
            Binary::Sub => {
                let $g = |x: f32, y: f32| x - y;
                $body
            }
            Binary::Mul => {
                let $g = |x: f32, y: f32| x * y;
                $body
            }
            Binary::Div => {
                let $g = |x: f32, y: f32| x / y;
                $body
            }
            other => {
                let $g = move |x: f32, y: f32| other.apply(x, y);
                $body
            }
        }
    };
}

const SAME_SHAPE: &[(&str, Binary)] = &[
    ("elemwise_add", Binary::Add),
    ("elemwise_sub", Binary::Sub),
    ("elemwise_mul", Binary::Mul),
    ("elemwise_div", Binary::Div),
    ("_maximum", Binary::Max),
    ("_minimum", Binary::Min),
    ("_power", Binary::Power),
    ("_mod", Binary::Mod),
    ("_hypot", Binary::Hypot),
    ("_equal", Binary::Equal),
    ("_not_equal", Binary::NotEqual),
    ("_greater", Binary::Greater),
    ("_greater_equal", Binary::GreaterEqual),
    ("_lesser", Binary::Lesser),
    ("_lesser_equal", Binary::LesserEqual),
    ("_logical_and", Binary::LogicalAnd),
    ("_logical_or", Binary::LogicalOr),
    ("_logical_xor", Binary::LogicalXor),
];

const BROADCAST: &[(&str, Binary)] = &[
    ("broadcast_add", Binary::Add),
    ("broadcast_sub", Binary::Sub),
    ("broadcast_mul", Binary::Mul),
    ("broadcast_div", Binary::Div),
    ("broadcast_maximum", Binary::Max),
    ("broadcast_minimum", Binary::Min),
    ("broadcast_power", Binary::Power),
    ("broadcast_mod", Binary::Mod),
    ("broadcast_hypot", Binary::Hypot),
    ("broadcast_equal", Binary::Equal),
    ("broadcast_not_equal", Binary::NotEqual),
    ("broadcast_greater", Binary::Greater),
    ("broadcast_greater_equal", Binary::GreaterEqual),
    ("broadcast_lesser", Binary::Lesser),
    ("broadcast_lesser_equal", Binary::LesserEqual),
    ("broadcast_logical_and", Binary::LogicalAnd),
    ("broadcast_logical_or", Binary::LogicalOr),
    ("broadcast_logical_xor", Binary::LogicalXor),
];

/// Scalar operators: the function and whether the scalar is the left operand.
const SCALAR: &[(&str, Binary, bool)] = &[
    ("_plus_scalar", Binary::Add, false),
    ("_minus_scalar", Binary::Sub, false),
    ("_rminus_scalar", Binary::Sub, true),
    ("_mul_scalar", Binary::Mul, false),
    ("_div_scalar", Binary::Div, false),
    ("_rdiv_scalar", Binary::Div, true),
    ("_power_scalar", Binary::Power, false),
    ("_rpower_scalar", Binary::Power, true),
    ("_maximum_scalar", Binary::Max, false),
    ("_minimum_scalar", Binary::Min, false),
    ("_mod_scalar", Binary::Mod, false),
    ("_rmod_scalar", Binary::Mod, true),
    ("_hypot_scalar", Binary::Hypot, false),
    ("_equal_scalar", Binary::Equal, false),
    ("_not_equal_scalar", Binary::NotEqual, false),
    ("_greater_scalar", Binary::Greater, false),
    ("_greater_equal_scalar", Binary::GreaterEqual, false),
    ("_lesser_scalar", Binary::Lesser, false),
    ("_lesser_equal_scalar", Binary::LesserEqual, false),
    ("_logical_and_scalar", Binary::LogicalAnd, false),
    ("_logical_or_scalar", Binary::LogicalOr, false),
    ("_logical_xor_scalar", Binary::LogicalXor, false),
];

/// Finds the node's operator in `table` by its canonical name (the node may
/// use an alias) or, for operators the catalog does not list, by its own name.
fn find<T: Copy>(table: &[(&str, T)], ctx: &NodeCtx) -> Result<T> {
    let canonical = super::lookup(ctx.op).map_or(ctx.op, |d| d.name);
    table
        .iter()
        .find(|(n, _)| *n == canonical || *n == ctx.op)
        .map(|(_, f)| *f)
        .ok_or_else(|| Error::UnsupportedOp {
            op: ctx.op.to_string(),
            node: ctx.name.to_string(),
        })
}

/// Facts of the operators above that the catalog does not list: name,
/// MXNet 1.9.1 aliases, and whether the operator takes `lhs, rhs` (else `data`).
const EXTRA_FACTS: &[(&str, &[&str], bool)] = &[
    ("_power", &["_Power"], true),
    ("_mod", &["_Mod"], true),
    ("_hypot", &["_Hypot"], true),
    ("_equal", &["_Equal"], true),
    ("_not_equal", &["_Not_Equal"], true),
    ("_greater", &["_Greater"], true),
    ("_greater_equal", &["_Greater_Equal"], true),
    ("_lesser", &["_Lesser"], true),
    ("_lesser_equal", &["_Lesser_Equal"], true),
    ("_logical_and", &["_Logical_And"], true),
    ("_logical_or", &["_Logical_Or"], true),
    ("_logical_xor", &["_Logical_Xor"], true),
    ("broadcast_mod", &[], true),
    ("broadcast_hypot", &[], true),
    ("broadcast_logical_and", &[], true),
    ("broadcast_logical_or", &[], true),
    ("broadcast_logical_xor", &[], true),
    ("_mod_scalar", &["_ModScalar"], false),
    ("_rmod_scalar", &["_RModScalar"], false),
    (
        "_hypot_scalar",
        &["_HypotScalar", "_npi_hypot_scalar"],
        false,
    ),
    ("_logical_and_scalar", &["_LogicalAndScalar"], false),
    ("_logical_or_scalar", &["_LogicalOrScalar"], false),
    ("_logical_xor_scalar", &["_LogicalXorScalar"], false),
];

fn lhs_rhs(_: &Attrs) -> Vec<String> {
    vec!["lhs".into(), "rhs".into()]
}

pub fn register(r: &mut Registry) {
    for &(name, aliases, binary) in EXTRA_FACTS {
        if r.get(name).is_none() {
            r.add(OpDef {
                name,
                aliases,
                inputs: if binary { lhs_rhs } else { data_input },
                outputs: single_output,
                visible_outputs: all_visible,
                mutate_inputs: &[],
            });
        }
    }
    for &(name, _) in SAME_SHAPE {
        r.implement(name, |ctx| {
            Ok(Box::new(ElemwiseBinary::new(
                ctx,
                find(SAME_SHAPE, ctx)?,
                false,
            )))
        });
    }
    for &(name, _) in BROADCAST {
        r.implement(name, |ctx| {
            Ok(Box::new(ElemwiseBinary::new(
                ctx,
                find(BROADCAST, ctx)?,
                true,
            )))
        });
    }
    for &(name, _, _) in SCALAR {
        r.implement(name, |ctx| Ok(Box::new(Scalar::new(ctx)?)));
    }
    // add_n is MXNet 1.9.1's canonical name; older graphs use ElementWiseSum.
    r.implement("add_n", |ctx| Ok(Box::new(AddN::new(ctx)?)));
    r.implement("ElementWiseSum", |ctx| Ok(Box::new(AddN::new(ctx)?)));
    r.implement("clip", |ctx| Ok(Box::new(Clip::new(ctx)?)));
}

struct ElemwiseBinary {
    node: NodeInfo,
    f: Binary,
    broadcast: bool,
}

impl ElemwiseBinary {
    fn new(ctx: &NodeCtx, f: Binary, broadcast: bool) -> ElemwiseBinary {
        ElemwiseBinary {
            node: NodeInfo::new(ctx),
            f,
            broadcast,
        }
    }
}

impl Op for ElemwiseBinary {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 2)?;
        if self.broadcast {
            let (Some(a), Some(b)) = (&inputs[0], &inputs[1]) else {
                return Ok(None);
            };
            let out = broadcast_shape(a, b).ok_or_else(|| {
                self.node.shape_err(format!(
                    "shapes {a:?} and {b:?} cannot be broadcast together"
                ))
            })?;
            return Ok(Some(vec![out]));
        }
        let Some(known) = inputs.iter().flatten().next().cloned() else {
            return Ok(None);
        };
        self.node.assign_input(inputs, 0, "lhs", known.clone())?;
        self.node.assign_input(inputs, 1, "rhs", known.clone())?;
        Ok(Some(vec![known]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let (a, b) = (inputs[0], inputs[1]);
        let out_shape = outputs[0].shape().to_vec();
        let out = outputs[0].f32s_mut()?;
        let (x, y) = (a.f32s()?, b.f32s()?);
        if a.shape() == b.shape() {
            specialize!(self.f, g => zip(x, y, out, g));
        } else {
            specialize!(self.f, g => broadcast(x, a.shape(), y, b.shape(), out, &out_shape, g));
        }
        Ok(())
    }
}

struct Scalar {
    node: NodeInfo,
    f: Binary,
    scalar_first: bool,
    scalar: f32,
}

impl Scalar {
    fn new(ctx: &NodeCtx) -> Result<Scalar> {
        let table: Vec<(&str, (Binary, bool))> = SCALAR
            .iter()
            .map(|&(n, f, first)| (n, (f, first)))
            .collect();
        let (f, scalar_first) = find(&table, ctx)?;
        let r = ctx.reader();
        let scalar = r.opt_float("scalar")?.ok_or_else(|| r.missing("scalar"))? as f32;
        Ok(Scalar {
            node: NodeInfo::new(ctx),
            f,
            scalar_first,
            scalar,
        })
    }
}

impl Op for Scalar {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        Ok(inputs[0].clone().map(|s| vec![s]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let s = self.scalar;
        let (x, y) = (inputs[0].f32s()?, outputs[0].f32s_mut()?);
        if self.scalar_first {
            specialize!(self.f, g => map(x, y, move |v| g(s, v)));
        } else {
            specialize!(self.f, g => map(x, y, move |v| g(v, s)));
        }
        Ok(())
    }
}

struct AddN {
    node: NodeInfo,
    num_args: usize,
}

impl AddN {
    fn new(ctx: &NodeCtx) -> Result<AddN> {
        let node = NodeInfo::new(ctx);
        let n = ctx.reader().int("num_args")?;
        if n < 1 {
            return Err(node.attr_err("num_args", n, "must be at least 1"));
        }
        Ok(AddN {
            node,
            num_args: n as usize,
        })
    }
}

impl Op for AddN {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), self.num_args)?;
        let Some(known) = inputs.iter().flatten().next().cloned() else {
            return Ok(None);
        };
        for i in 0..inputs.len() {
            self.node
                .assign_input(inputs, i, &format!("input {i}"), known.clone())?;
        }
        Ok(Some(vec![known]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let out = outputs[0].f32s_mut()?;
        if inputs.len() == 1 {
            out.copy_from_slice(inputs[0].f32s()?);
            return Ok(());
        }
        zip(inputs[0].f32s()?, inputs[1].f32s()?, out, |a, b| a + b);
        for x in &inputs[2..] {
            for (d, &v) in out.iter_mut().zip(x.f32s()?) {
                *d += v;
            }
        }
        Ok(())
    }
}

struct Clip {
    node: NodeInfo,
    min: f32,
    max: f32,
}

impl Clip {
    fn new(ctx: &NodeCtx) -> Result<Clip> {
        let r = ctx.reader();
        let min = r.opt_float("a_min")?.ok_or_else(|| r.missing("a_min"))? as f32;
        let max = r.opt_float("a_max")?.ok_or_else(|| r.missing("a_max"))? as f32;
        Ok(Clip {
            node: NodeInfo::new(ctx),
            min,
            max,
        })
    }
}

impl Op for Clip {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        Ok(inputs[0].clone().map(|s| vec![s]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn as_epilogue(&self, _constants: &[Option<&Tensor>]) -> Option<Vec<Epilogue>> {
        Some(vec![Epilogue::Clip {
            lo: self.min,
            hi: self.max,
        }])
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let (lo, hi) = (self.min, self.max);
        map(inputs[0].f32s()?, outputs[0].f32s_mut()?, move |v| {
            act::clip(v, lo, hi)
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    #[test]
    fn extra_facts_resolve_aliases() {
        use super::super::{lookup, registry};
        assert_eq!(lookup("_Power").map(|d| d.name), Some("_power"));
        assert_eq!(lookup("_ModScalar").map(|d| d.name), Some("_mod_scalar"));
        assert!(registry().constructor("_Logical_And").is_some());
        assert!(registry().constructor("broadcast_mod").is_some());
        let inputs = lookup("broadcast_hypot").map(|d| (d.inputs)(&Attrs::new()));
        assert_eq!(inputs, Some(vec!["lhs".to_string(), "rhs".to_string()]));
    }

    #[test]
    fn binary_functions() {
        assert_eq!(Binary::Mod.apply(-7.0, 3.0), 2.0);
        assert_eq!(Binary::Mod.apply(7.0, -3.0), -2.0);
        assert_eq!(Binary::Mod.apply(7.0, 0.0), 0.0);
        assert_eq!(Binary::Max.apply(1.0, 2.0), 2.0);
        assert_eq!(Binary::GreaterEqual.apply(2.0, 2.0), 1.0);
        assert_eq!(Binary::LogicalXor.apply(0.0, 3.0), 1.0);
        assert_eq!(Binary::Power.apply(2.0, 3.0), 8.0);
    }

    #[test]
    fn elemwise_fills_missing_shape() {
        let op = make(
            |c| Ok(Box::new(ElemwiseBinary::new(c, Binary::Add, false))),
            "elemwise_add",
            &[],
        )
        .unwrap();
        let mut shapes = vec![None, Some(vec![2, 3])];
        assert_eq!(
            op.infer_shape(&mut shapes).unwrap().unwrap(),
            vec![vec![2, 3]]
        );
        assert_eq!(shapes[0], Some(vec![2, 3]));
        let mut bad = vec![Some(vec![2, 2]), Some(vec![2, 3])];
        assert!(op.infer_shape(&mut bad).is_err());
    }

    #[test]
    fn broadcast_sub_by_hand() {
        let op = make(
            |c| Ok(Box::new(ElemwiseBinary::new(c, Binary::Sub, true))),
            "broadcast_sub",
            &[],
        )
        .unwrap();
        let out = run(
            op.as_ref(),
            &[ramp(&[2, 3], 0.0, 1.0), t(&[2, 1], &[1.0, 10.0])],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[2, 3]);
        assert_close(&out[0], &[-1.0, 0.0, 1.0, -7.0, -6.0, -5.0]);
        let mut bad = vec![Some(vec![2, 3]), Some(vec![3, 2])];
        assert!(op.infer_shape(&mut bad).is_err());
    }

    #[test]
    fn scalar_ops_and_reversed_operands() {
        let x = t(&[3], &[1.0, 2.0, 4.0]);
        let cases: &[(&str, &[f32])] = &[
            ("_rminus_scalar", &[1.0, 0.0, -2.0]),
            ("_rdiv_scalar", &[2.0, 1.0, 0.5]),
            ("_power_scalar", &[1.0, 4.0, 16.0]),
            ("_rpower_scalar", &[2.0, 4.0, 16.0]),
            ("_minimum_scalar", &[1.0, 2.0, 2.0]),
            ("_greater_scalar", &[0.0, 0.0, 1.0]),
        ];
        for (name, want) in cases {
            let op = make(|c| Ok(Box::new(Scalar::new(c)?)), name, &[("scalar", "2")]).unwrap();
            let out = run(op.as_ref(), std::slice::from_ref(&x)).unwrap();
            assert_close(&out[0], want);
        }
    }

    #[test]
    fn add_n_three_inputs() {
        let op = make(
            |c| Ok(Box::new(AddN::new(c)?)),
            "add_n",
            &[("num_args", "3")],
        )
        .unwrap();
        let out = run(
            op.as_ref(),
            &[
                ramp(&[2], 0.0, 1.0),
                ramp(&[2], 10.0, 1.0),
                ramp(&[2], 100.0, 1.0),
            ],
        )
        .unwrap();
        assert_close(&out[0], &[110.0, 113.0]);
    }

    #[test]
    fn clip_bounds() {
        let op = make(
            |c| Ok(Box::new(Clip::new(c)?)),
            "clip",
            &[("a_min", "-1"), ("a_max", "2.5")],
        )
        .unwrap();
        let out = run(op.as_ref(), &[t(&[4], &[-3.0, 0.0, 2.5, 9.0])]).unwrap();
        assert_close(&out[0], &[-1.0, 0.0, 2.5, 2.5]);
    }
}
