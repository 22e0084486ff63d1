//! `slice` (begin/end/step per axis, `None` and negative values allowed),
//! `slice_axis` and `slice_like`, for any dtype, with MXNet 1.9.1's index
//! clamping rules.

use super::attrs::parse_int;
use super::fp32_util::{same_as_first, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::fp32::copy::gather_strided;
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("slice", |ctx| {
        Ok(Box::new(Slice::new(ctx, Kind::slice(ctx)?)))
    });
    r.implement("slice_axis", |ctx| {
        Ok(Box::new(Slice::new(ctx, Kind::slice_axis(ctx)?)))
    });
    r.implement("slice_like", |ctx| {
        let axes = ctx.reader().opt_tuple("axes")?.unwrap_or_default();
        Ok(Box::new(Slice::new(ctx, Kind::Like(axes))))
    });
}

/// Parses a tuple of optional integers such as `(None, 2, -1)`.
fn optional_tuple(ctx: &NodeCtx, key: &str) -> Result<Vec<Option<i64>>> {
    let Some(raw) = ctx.attrs.get(key) else {
        return Ok(Vec::new());
    };
    let t = raw.trim();
    let inner = t
        .strip_prefix(['(', '['])
        .and_then(|s| s.strip_suffix([')', ']']))
        .unwrap_or(t);
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            if item == "None" {
                Ok(None)
            } else {
                parse_int(item).map(Some).ok_or_else(|| Error::Attr {
                    node: ctx.name.to_string(),
                    op: ctx.op.to_string(),
                    key: key.to_string(),
                    value: raw.clone(),
                    reason: "expected a tuple of integers or None such as (0, None)".into(),
                })
            }
        })
        .collect()
}

#[derive(Debug)]
enum Kind {
    /// Per-axis begin, end and step for the leading axes.
    Ranges {
        begin: Vec<Option<i64>>,
        end: Vec<Option<i64>>,
        step: Vec<Option<i64>>,
    },
    Axis {
        axis: i64,
        begin: i64,
        end: Option<i64>,
    },
    /// Slice to the shape of the second input on these axes (all when empty).
    Like(Vec<i64>),
}

impl Kind {
    fn slice(ctx: &NodeCtx) -> Result<Kind> {
        let begin = optional_tuple(ctx, "begin")?;
        let end = optional_tuple(ctx, "end")?;
        let step = optional_tuple(ctx, "step")?;
        let r = ctx.reader();
        if !ctx.attrs.contains_key("begin") {
            return Err(r.missing("begin"));
        }
        if !ctx.attrs.contains_key("end") {
            return Err(r.missing("end"));
        }
        if begin.len() != end.len() || (!step.is_empty() && step.len() != begin.len()) {
            let node = NodeInfo::new(ctx);
            return Err(node.attr_err(
                "end",
                format!("{end:?}"),
                "begin, end and step must have the same length",
            ));
        }
        if step.contains(&Some(0)) {
            return Err(NodeInfo::new(ctx).attr_err(
                "step",
                format!("{step:?}"),
                "steps must not be 0",
            ));
        }
        Ok(Kind::Ranges { begin, end, step })
    }

    fn slice_axis(ctx: &NodeCtx) -> Result<Kind> {
        let r = ctx.reader();
        Ok(Kind::Axis {
            axis: r.int("axis")?,
            begin: r.int("begin")?,
            end: r.opt_int("end")?,
        })
    }
}

/// Start, step and length of the selection along one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: usize,
    step: isize,
    len: usize,
}

struct Slice {
    node: NodeInfo,
    kind: Kind,
}

impl Slice {
    fn new(ctx: &NodeCtx, kind: Kind) -> Slice {
        Slice {
            node: NodeInfo::new(ctx),
            kind,
        }
    }

    fn input_count(&self) -> usize {
        if matches!(self.kind, Kind::Like(_)) {
            2
        } else {
            1
        }
    }

    /// Per-axis ranges for `data`; `like` is the second input's shape for `slice_like`.
    fn ranges(&self, data: &[usize], like: Option<&[usize]>) -> Result<Vec<Range>> {
        let mut ranges: Vec<Range> = data
            .iter()
            .map(|&d| Range {
                start: 0,
                step: 1,
                len: d,
            })
            .collect();
        match &self.kind {
            Kind::Ranges { begin, end, step } => {
                if begin.len() > data.len() {
                    return Err(self.node.shape_err(format!(
                        "{} slice axes exceed the {} dimensions of the data",
                        begin.len(),
                        data.len()
                    )));
                }
                for i in 0..begin.len() {
                    ranges[i] = mxnet_range(
                        data[i] as i64,
                        begin[i],
                        end[i],
                        step.get(i).copied().flatten().unwrap_or(1),
                    );
                }
            }
            Kind::Axis { axis, begin, end } => {
                let a = self.node.axis(*axis, data.len())?;
                let len = data[a] as i64;
                let b = if *begin < 0 { begin + len } else { *begin };
                let e = match end {
                    None => len,
                    Some(e) if *e < 0 => e + len,
                    Some(e) => *e,
                };
                if !(0 <= b && b <= e && e <= len) {
                    return Err(self.node.shape_err(format!(
                        "begin {begin} and end {end:?} do not select a range of axis {a} with size {len}"
                    )));
                }
                ranges[a] = Range {
                    start: b as usize,
                    step: 1,
                    len: (e - b) as usize,
                };
            }
            Kind::Like(axes) => {
                let like = like.expect("slice_like has a second input");
                let mut check = |i: usize| -> Result<()> {
                    if i >= like.len() || like[i] > data[i] {
                        return Err(self.node.shape_err(format!(
                            "cannot slice {data:?} like {like:?} on axis {i}"
                        )));
                    }
                    ranges[i].len = like[i];
                    Ok(())
                };
                if axes.is_empty() {
                    if like.len() != data.len() {
                        return Err(self.node.shape_err(format!(
                            "shape_like {like:?} must have the rank of data {data:?}"
                        )));
                    }
                    (0..data.len()).try_for_each(&mut check)?;
                } else {
                    for &a in axes {
                        check(self.node.axis(a, data.len())?)?;
                    }
                }
            }
        }
        Ok(ranges)
    }
}

/// MXNet 1.9.1's `GetIndexRange` and `SetSliceOpOutputDimSize` for one axis
/// of length `len`: defaults depend on the step's sign, negative indices
/// count from the end, and out-of-range values clamp.
fn mxnet_range(len: i64, begin: Option<i64>, end: Option<i64>, step: i64) -> Range {
    let mut b = begin.unwrap_or(if step < 0 { len - 1 } else { 0 });
    let mut e = end.unwrap_or(if step < 0 { -1 } else { len });
    if b < 0 {
        b += len;
    }
    if e < 0 && end.is_some() {
        e += len;
    }
    if b < 0 && step > 0 {
        b = 0;
    }
    if b > len - 1 && step < 0 {
        b = len - 1;
    }
    if b < 0 || b > len - 1 {
        b = -1;
    }
    e = e.clamp(-1, len);
    let count = if len == 0 || b < 0 || b == e {
        0
    } else if step > 0 {
        if e > b {
            (e - b - 1) / step + 1
        } else {
            0
        }
    } else if e < b {
        (b - e - 1) / (-step) + 1
    } else {
        0
    };
    Range {
        start: b.max(0) as usize,
        step: step as isize,
        len: count as usize,
    }
}

fn gather_tensor(
    input: &Tensor,
    base: usize,
    strides: &[isize],
    out_shape: &[usize],
    output: &mut Tensor,
) -> Result<()> {
    match input.dtype().size() {
        1 => gather_strided(
            input.as_slice::<u8>()?,
            base,
            strides,
            out_shape,
            output.as_mut_slice::<u8>()?,
        ),
        2 => gather_strided(
            input.as_slice::<u16>()?,
            base,
            strides,
            out_shape,
            output.as_mut_slice::<u16>()?,
        ),
        4 => gather_strided(
            input.as_slice::<u32>()?,
            base,
            strides,
            out_shape,
            output.as_mut_slice::<u32>()?,
        ),
        _ => gather_strided(
            input.as_slice::<u64>()?,
            base,
            strides,
            out_shape,
            output.as_mut_slice::<u64>()?,
        ),
    }
    Ok(())
}

impl Op for Slice {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node.expect_inputs(inputs.len(), self.input_count())?;
        let Some(data) = &inputs[0] else {
            return Ok(None);
        };
        let like = match self.kind {
            Kind::Like(_) => match &inputs[1] {
                Some(l) => Some(l.as_slice()),
                None => return Ok(None),
            },
            _ => None,
        };
        let ranges = self.ranges(data, like)?;
        Ok(Some(vec![ranges.iter().map(|r| r.len).collect()]))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        // The second input of slice_like contributes only its shape.
        let dtype = inputs[0].unwrap_or(DType::F32);
        inputs[0] = Some(dtype);
        if inputs.len() > 1 && inputs[1].is_none() {
            inputs[1] = Some(dtype);
        }
        same_as_first(&self.node, &mut inputs[..1], num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let data = inputs[0].shape();
        let ranges = self.ranges(data, inputs.get(1).map(|t| t.shape()))?;
        let mut strides = vec![1isize; data.len()];
        for i in (0..data.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * data[i + 1] as isize;
        }
        let base: usize = ranges
            .iter()
            .zip(&strides)
            .map(|(r, &s)| r.start * s as usize)
            .sum();
        let steps: Vec<isize> = ranges
            .iter()
            .zip(&strides)
            .map(|(r, &s)| r.step * s)
            .collect();
        let out_shape: Vec<usize> = ranges.iter().map(|r| r.len).collect();
        gather_tensor(inputs[0], base, &steps, &out_shape, &mut outputs[0])
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    fn slice(pairs: &[(&str, &str)], x: Tensor) -> Result<Tensor> {
        let op = make(
            |c| Ok(Box::new(Slice::new(c, Kind::slice(c)?))),
            "slice",
            pairs,
        )?;
        Ok(run(op.as_ref(), &[x])?.remove(0))
    }

    #[test]
    fn mxnet_range_rules() {
        let r = |b, e, s| mxnet_range(5, b, e, s);
        assert_eq!(
            r(Some(1), Some(4), 1),
            Range {
                start: 1,
                step: 1,
                len: 3
            }
        );
        assert_eq!(
            r(None, None, -1),
            Range {
                start: 4,
                step: -1,
                len: 5
            }
        );
        assert_eq!(
            r(Some(-2), None, 1),
            Range {
                start: 3,
                step: 1,
                len: 2
            }
        );
        assert_eq!(
            r(Some(-10), Some(2), 1),
            Range {
                start: 0,
                step: 1,
                len: 2
            }
        );
        assert_eq!(
            r(Some(10), None, -2),
            Range {
                start: 4,
                step: -2,
                len: 3
            }
        );
        assert_eq!(r(Some(3), Some(1), 1).len, 0);
        assert_eq!(
            r(Some(0), Some(100), 2),
            Range {
                start: 0,
                step: 2,
                len: 3
            }
        );
        assert_eq!(
            r(Some(-1), Some(-4), -1),
            Range {
                start: 4,
                step: -1,
                len: 3
            }
        );
    }

    #[test]
    fn slice_with_none_and_steps() {
        // 3×4 ramp; rows 1.., columns reversed with step 2.
        let out = slice(
            &[
                ("begin", "(1, None)"),
                ("end", "(None, None)"),
                ("step", "(1, -2)"),
            ],
            ramp(&[3, 4], 0.0, 1.0),
        )
        .unwrap();
        assert_eq!(out.shape(), &[2, 2]);
        assert_close(&out, &[7.0, 5.0, 11.0, 9.0]);
    }

    #[test]
    fn slice_leading_axes_only() {
        let out = slice(
            &[("begin", "(0,)"), ("end", "(1,)")],
            ramp(&[2, 3], 0.0, 1.0),
        )
        .unwrap();
        assert_eq!(out.shape(), &[1, 3]);
        assert_close(&out, &[0.0, 1.0, 2.0]);
    }

    #[test]
    fn slice_axis_negative() {
        let op = make(
            |c| Ok(Box::new(Slice::new(c, Kind::slice_axis(c)?))),
            "slice_axis",
            &[("axis", "-1"), ("begin", "-3"), ("end", "-1")],
        )
        .unwrap();
        let out = run(op.as_ref(), &[ramp(&[2, 4], 0.0, 1.0)]).unwrap();
        assert_close(&out[0], &[1.0, 2.0, 5.0, 6.0]);
        let bad = make(
            |c| Ok(Box::new(Slice::new(c, Kind::slice_axis(c)?))),
            "slice_axis",
            &[("axis", "0"), ("begin", "1"), ("end", "5")],
        )
        .unwrap();
        assert!(bad.infer_shape(&mut [Some(vec![2, 4])]).is_err());
    }

    #[test]
    fn slice_like_axes() {
        let op = make(
            |c| {
                Ok(Box::new(Slice::new(
                    c,
                    Kind::Like(c.reader().opt_tuple("axes")?.unwrap_or_default()),
                )))
            },
            "slice_like",
            &[("axes", "(1,)")],
        )
        .unwrap();
        let out = run(
            op.as_ref(),
            &[ramp(&[2, 3], 0.0, 1.0), ramp(&[1, 2], 0.0, 0.0)],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[2, 2]);
        assert_close(&out[0], &[0.0, 1.0, 3.0, 4.0]);
    }
}
