//! Operators that change the shape but not the data: `Flatten`, `Reshape`
//! (with MXNet's special codes), `expand_dims` and `squeeze`. They accept
//! any dtype.

use super::fp32_util::{copy_bytes, numel, same_as_first, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("Flatten", |ctx| {
        Ok(Box::new(Reshaper::new(ctx, Rule::Flatten)))
    });
    r.implement("Reshape", |ctx| {
        Ok(Box::new(Reshaper::new(ctx, Rule::reshape(ctx)?)))
    });
    r.implement("expand_dims", |ctx| {
        let axis = ctx.reader().int("axis")?;
        Ok(Box::new(Reshaper::new(ctx, Rule::ExpandDims(axis))))
    });
    r.implement("squeeze", |ctx| {
        let axes = ctx.reader().opt_tuple("axis")?;
        Ok(Box::new(Reshaper::new(ctx, Rule::Squeeze(axes))))
    });
}

/// How the output shape follows from the input shape.
#[derive(Debug)]
enum Rule {
    /// `(d0, d1·d2·…)`.
    Flatten,
    /// MXNet's `shape` codes: 0 copies a dimension, -1 infers one, -2
    /// copies all remaining, -3 merges two, -4 splits one into the next two
    /// values; `reverse` matches from the right.
    Codes {
        codes: Vec<i64>,
        reverse: bool,
    },
    /// Legacy `target_shape`, where 0 marks the one dimension to infer and
    /// `keep_highest` keeps the first input dimension.
    Target {
        target: Vec<i64>,
        keep_highest: bool,
    },
    ExpandDims(i64),
    /// Removes the listed size-1 axes, or all of them when `None`.
    Squeeze(Option<Vec<i64>>),
}

impl Rule {
    fn reshape(ctx: &NodeCtx) -> Result<Rule> {
        let r = ctx.reader();
        let codes = r.opt_tuple("shape")?.unwrap_or_default();
        if !codes.is_empty() {
            return Ok(Rule::Codes {
                codes,
                reverse: r.bool_or("reverse", false)?,
            });
        }
        match r.opt_tuple("target_shape")? {
            Some(target) if !target.is_empty() => Ok(Rule::Target {
                target,
                keep_highest: r.bool_or("keep_highest", false)?,
            }),
            _ => Err(r.missing("shape")),
        }
    }
}

struct Reshaper {
    node: NodeInfo,
    rule: Rule,
}

impl Reshaper {
    fn new(ctx: &NodeCtx, rule: Rule) -> Reshaper {
        Reshaper {
            node: NodeInfo::new(ctx),
            rule,
        }
    }

    fn output_shape(&self, data: &[usize]) -> Result<Shape> {
        let out = match &self.rule {
            Rule::Flatten => {
                if data.is_empty() {
                    return Err(self.node.shape_err("cannot flatten a 0-dimensional array"));
                }
                vec![data[0], numel(&data[1..])]
            }
            Rule::Codes { codes, reverse } => self.apply_codes(codes, *reverse, data)?,
            Rule::Target {
                target,
                keep_highest,
            } => self.apply_target(target, *keep_highest, data)?,
            Rule::ExpandDims(axis) => {
                let ndim = data.len() as i64;
                let a = if *axis < 0 { axis + ndim + 1 } else { *axis };
                if !(0..=ndim).contains(&a) {
                    return Err(self.node.shape_err(format!(
                        "axis {axis} is out of range for {} dimensions",
                        data.len() + 1
                    )));
                }
                let mut s = data.to_vec();
                s.insert(a as usize, 1);
                s
            }
            Rule::Squeeze(axes) => {
                let mut keep = vec![true; data.len()];
                match axes {
                    None => keep.iter_mut().zip(data).for_each(|(k, &d)| *k = d != 1),
                    Some(list) => {
                        for &a in list {
                            let i = self.node.axis(a, data.len())?;
                            if data[i] != 1 {
                                return Err(self.node.shape_err(format!(
                                    "cannot squeeze axis {a} of size {} in {data:?}",
                                    data[i]
                                )));
                            }
                            keep[i] = false;
                        }
                    }
                }
                let s: Shape = data
                    .iter()
                    .zip(&keep)
                    .filter(|(_, &k)| k)
                    .map(|(&d, _)| d)
                    .collect();
                // MXNet keeps one dimension when every dimension is squeezed away.
                if s.is_empty() {
                    vec![1]
                } else {
                    s
                }
            }
        };
        if numel(&out) != numel(data) {
            return Err(self.node.shape_err(format!(
                "cannot reshape {data:?} ({} elements) to {out:?}",
                numel(data)
            )));
        }
        Ok(out)
    }

    /// MXNet 1.9.1's `InferReshapeShape`, including its handling of `reverse`.
    fn apply_codes(&self, codes: &[i64], reverse: bool, data: &[usize]) -> Result<Shape> {
        let mut src: Vec<i64> = data.iter().map(|&d| d as i64).collect();
        let mut params = codes.to_vec();
        if reverse {
            src.reverse();
            params.reverse();
        }
        let bad = |why: String| {
            self.node.shape_err(format!(
                "cannot reshape {data:?} with shape codes {codes:?}: {why}"
            ))
        };
        let mut out: Vec<i64> = Vec::new();
        let mut i_src = 0;
        let mut inferred: Option<usize> = None;
        let mut i = 0;
        while i < params.len() {
            match params[i] {
                0 => {
                    let d = *src
                        .get(i_src)
                        .ok_or_else(|| bad("code 0 has no input dimension to copy".into()))?;
                    out.push(d);
                    i_src += 1;
                }
                -1 => {
                    if inferred.is_some() {
                        return Err(bad("only one dimension can be -1".into()));
                    }
                    inferred = Some(out.len());
                    out.push(1);
                    i_src += 1;
                }
                -2 => {
                    out.extend_from_slice(&src[i_src.min(src.len())..]);
                    i_src = src.len();
                }
                -3 => {
                    if i_src + 1 >= src.len() {
                        return Err(bad("code -3 needs two input dimensions to merge".into()));
                    }
                    out.push(src[i_src] * src[i_src + 1]);
                    i_src += 2;
                }
                -4 => {
                    if i + 2 >= params.len() {
                        return Err(bad("code -4 must be followed by two values".into()));
                    }
                    let d0 = *src
                        .get(i_src)
                        .ok_or_else(|| bad("code -4 has no input dimension to split".into()))?;
                    i_src += 1;
                    let (mut d1, mut d2) = (params[i + 1], params[i + 2]);
                    i += 2;
                    if d1 == -1 && d2 == -1 {
                        return Err(bad("code -4 cannot split into two -1 values".into()));
                    }
                    if d1 == -1 && d2 != 0 {
                        d1 = d0 / d2;
                    }
                    if d2 == -1 && d1 != 0 {
                        d2 = d0 / d1;
                    }
                    if d1 * d2 != d0 {
                        return Err(bad(format!("{d1} × {d2} does not equal dimension {d0}")));
                    }
                    out.push(d1);
                    out.push(d2);
                }
                d if d > 0 => {
                    out.push(d);
                    i_src += 1;
                }
                d => return Err(bad(format!("unknown code {d}"))),
            }
            i += 1;
        }
        if let Some(k) = inferred {
            let known: i64 = out.iter().product();
            if known == 0 {
                return Err(bad(
                    "the dimension marked -1 cannot be inferred next to a zero-size dimension"
                        .into(),
                ));
            }
            out[k] = numel(data) as i64 / known;
        }
        if reverse {
            out.reverse();
        }
        out.iter()
            .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
            .collect()
    }

    fn apply_target(&self, target: &[i64], keep_highest: bool, data: &[usize]) -> Result<Shape> {
        let mut out: Vec<usize> = target
            .iter()
            .map(|&d| {
                usize::try_from(d).map_err(|_| {
                    self.node.attr_err(
                        "target_shape",
                        format!("{target:?}"),
                        "values must not be negative",
                    )
                })
            })
            .collect::<Result<_>>()?;
        let start = usize::from(keep_highest);
        if keep_highest {
            if out.is_empty() || data.is_empty() {
                return Err(self
                    .node
                    .shape_err("keep_highest needs at least one dimension"));
            }
            out[0] = data[0];
        }
        let zeros: Vec<usize> = (start..out.len()).filter(|&i| out[i] == 0).collect();
        if let [k] = zeros[..] {
            out[k] = 1;
            out[k] = numel(data) / numel(&out).max(1);
        }
        Ok(out)
    }
}

impl Op for Reshaper {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), 1)?;
        match &inputs[0] {
            None => Ok(None),
            Some(data) => Ok(Some(vec![self.output_shape(data)?])),
        }
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        same_as_first(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        copy_bytes(&self.node, inputs[0], &mut outputs[0])
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn shape_of(op: &str, pairs: &[(&str, &str)], data: &[usize]) -> Result<Shape> {
        let create: super::super::CreateFn = match op {
            "Flatten" => |c| Ok(Box::new(Reshaper::new(c, Rule::Flatten))),
            "Reshape" => |c| Ok(Box::new(Reshaper::new(c, Rule::reshape(c)?))),
            "expand_dims" => |c| {
                Ok(Box::new(Reshaper::new(
                    c,
                    Rule::ExpandDims(c.reader().int("axis")?),
                )))
            },
            _ => |c| {
                Ok(Box::new(Reshaper::new(
                    c,
                    Rule::Squeeze(c.reader().opt_tuple("axis")?),
                )))
            },
        };
        let op = make(create, op, pairs)?;
        let mut shapes = vec![Some(data.to_vec())];
        Ok(op.infer_shape(&mut shapes)?.unwrap().remove(0))
    }

    fn reshape(codes: &str, data: &[usize]) -> Result<Shape> {
        shape_of("Reshape", &[("shape", codes)], data)
    }

    #[test]
    fn reshape_special_codes() {
        // Examples from MXNet's Reshape documentation.
        assert_eq!(reshape("(4, 0, 2)", &[2, 3, 4]).unwrap(), vec![4, 3, 2]);
        assert_eq!(reshape("(2, 0, 0)", &[2, 3, 4]).unwrap(), vec![2, 3, 4]);
        assert_eq!(reshape("(6, 1, -1)", &[2, 3, 4]).unwrap(), vec![6, 1, 4]);
        assert_eq!(reshape("(3, -1, 8)", &[2, 3, 4]).unwrap(), vec![3, 1, 8]);
        assert_eq!(reshape("(-1,)", &[2, 3, 4]).unwrap(), vec![24]);
        assert_eq!(reshape("(-2,)", &[2, 3, 4]).unwrap(), vec![2, 3, 4]);
        assert_eq!(reshape("(2, -2)", &[2, 3, 4]).unwrap(), vec![2, 3, 4]);
        assert_eq!(
            reshape("(-2, 1, 1)", &[2, 3, 4]).unwrap(),
            vec![2, 3, 4, 1, 1]
        );
        assert_eq!(reshape("(-3, 4)", &[2, 3, 4]).unwrap(), vec![6, 4]);
        assert_eq!(reshape("(-3, -3)", &[2, 3, 4, 5]).unwrap(), vec![6, 20]);
        assert_eq!(reshape("(0, -3)", &[2, 3, 4]).unwrap(), vec![2, 12]);
        assert_eq!(reshape("(-3, -2)", &[2, 3, 4]).unwrap(), vec![6, 4]);
        assert_eq!(
            reshape("(-4, 1, 2, -2)", &[2, 3, 4]).unwrap(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            reshape("(2, -4, -1, 3, -2)", &[2, 3, 4]).unwrap(),
            vec![2, 1, 3, 4]
        );
        assert!(reshape("(5, -1)", &[2, 3, 4]).is_err());
        assert!(reshape("(-1, -1)", &[2, 3, 4]).is_err());
    }

    #[test]
    fn reshape_reverse() {
        let out = shape_of(
            "Reshape",
            &[("shape", "(-1, 0)"), ("reverse", "True")],
            &[10, 5, 4],
        )
        .unwrap();
        assert_eq!(out, vec![50, 4]);
        let out = shape_of("Reshape", &[("shape", "(-1, 0)")], &[10, 5, 4]).unwrap();
        assert_eq!(out, vec![40, 5]);
    }

    #[test]
    fn reshape_legacy_target_shape() {
        let out = shape_of("Reshape", &[("target_shape", "(0, 4)")], &[2, 3, 4]).unwrap();
        assert_eq!(out, vec![6, 4]);
        let out = shape_of(
            "Reshape",
            &[("target_shape", "(1, 0)"), ("keep_highest", "true")],
            &[2, 3, 4],
        )
        .unwrap();
        assert_eq!(out, vec![2, 12]);
    }

    #[test]
    fn flatten_expand_squeeze() {
        assert_eq!(shape_of("Flatten", &[], &[2, 3, 4]).unwrap(), vec![2, 12]);
        assert_eq!(shape_of("Flatten", &[], &[5]).unwrap(), vec![5, 1]);
        assert_eq!(
            shape_of("expand_dims", &[("axis", "-1")], &[2, 3]).unwrap(),
            vec![2, 3, 1]
        );
        assert_eq!(
            shape_of("expand_dims", &[("axis", "1")], &[2, 3]).unwrap(),
            vec![2, 1, 3]
        );
        assert!(shape_of("expand_dims", &[("axis", "3")], &[2, 3]).is_err());
        assert_eq!(shape_of("squeeze", &[], &[1, 3, 1, 2]).unwrap(), vec![3, 2]);
        assert_eq!(
            shape_of("squeeze", &[("axis", "(2,)")], &[1, 3, 1, 2]).unwrap(),
            vec![1, 3, 2]
        );
        assert_eq!(shape_of("squeeze", &[], &[1, 1]).unwrap(), vec![1]);
        assert!(shape_of("squeeze", &[("axis", "1")], &[1, 3]).is_err());
    }

    #[test]
    fn reshape_copies_any_dtype() {
        let op = make(
            |c| Ok(Box::new(Reshaper::new(c, Rule::reshape(c)?))),
            "Reshape",
            &[("shape", "(3, 2)")],
        )
        .unwrap();
        let x = Tensor::from_slice(DType::I8, &[2, 3], &[1i8, -2, 3, -4, 5, -6]).unwrap();
        let out = run(op.as_ref(), &[x]).unwrap();
        assert_eq!(out[0].dtype(), DType::I8);
        assert_eq!(out[0].shape(), &[3, 2]);
        assert_eq!(out[0].to_f32_vec(), vec![1.0, -2.0, 3.0, -4.0, 5.0, -6.0]);
    }
}
