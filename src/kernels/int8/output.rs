//! The fused output stage of convolution and GEMM kernels: what happens to
//! each int32 accumulator before it is stored.
//!
//! Order, each step rounded to f32 (the order oneDNN applies in MXNet 1.9.1):
//! `v = f32(acc)`, `+ bias[c]`, `* scale[c]`, activation, `* act_scale`,
//! `+ f32(sum_scale * residual)`, post-sum activation, then saturate and
//! round half to even into the output type. A stage with no arithmetic at
//! all stores the accumulator exactly.

use super::elem::{OutputElem, QuantSlice};

/// An element-wise activation applied inside the output stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `max(v, 0)`.
    Relu,
    /// `v` for `v > 0`, else `v * slope`.
    Leaky {
        slope: f32,
    },
    /// `min(max(v, min), max)` (bounded ReLU, ReLU6).
    Clip {
        min: f32,
        max: f32,
    },
    /// `v` for `v > 0`, else `alpha * (exp(v) - 1)`.
    Elu {
        alpha: f32,
    },
    Abs,
    Sigmoid,
    Tanh,
    /// `log(1 + exp(v))`.
    SoftRelu,
    Square,
    Sqrt,
    Exp,
}

impl Activation {
    #[inline]
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Relu => {
                if v > 0.0 {
                    v
                } else {
                    0.0
                }
            }
            Activation::Leaky { slope } => {
                if v > 0.0 {
                    v
                } else {
                    v * slope
                }
            }
            Activation::Clip { min, max } => v.max(min).min(max),
            Activation::Elu { alpha } => {
                if v > 0.0 {
                    v
                } else {
                    alpha * v.exp_m1()
                }
            }
            Activation::Abs => v.abs(),
            Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            Activation::Tanh => v.tanh(),
            Activation::SoftRelu => {
                // log1p(exp(v)) overflows for large v, where it equals v.
                if v > 20.0 {
                    v
                } else {
                    v.exp().ln_1p()
                }
            }
            Activation::Square => v * v,
            Activation::Sqrt => v.sqrt(),
            Activation::Exp => v.exp(),
        }
    }

    /// True when every output of the activation is `>= 0`, so an unsigned
    /// output type loses nothing.
    pub fn is_non_negative(self) -> bool {
        match self {
            Activation::Relu
            | Activation::Abs
            | Activation::Sigmoid
            | Activation::SoftRelu
            | Activation::Square
            | Activation::Sqrt
            | Activation::Exp => true,
            Activation::Leaky { slope } => slope == 0.0,
            Activation::Clip { min, .. } => min >= 0.0,
            Activation::Elu { .. } | Activation::Tanh => false,
        }
    }
}

/// Per-channel values: empty (step absent), one value for every channel, or
/// one value per channel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerChannel(pub Vec<f32>);

impl PerChannel {
    pub fn none() -> Self {
        PerChannel(Vec::new())
    }

    pub fn uniform(v: f32) -> Self {
        PerChannel(vec![v])
    }

    pub fn is_none(&self) -> bool {
        self.0.is_empty()
    }

    #[inline]
    fn get(&self, c: usize) -> f32 {
        if self.0.len() == 1 {
            self.0[0]
        } else {
            self.0[c]
        }
    }
}

/// The epilogue of a quantized convolution or GEMM, per output channel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputStage {
    /// Added to the accumulator (already in accumulator units, usually an
    /// integer-valued f32).
    pub bias: PerChannel,
    /// Multiplies after the bias (requantization or dequantization scale).
    pub scale: PerChannel,
    pub activation: Option<Activation>,
    /// Multiplies after the activation (used when the activation must see
    /// real values and the result is then quantized).
    pub act_scale: Option<f32>,
    /// Scale of the residual operand, present when a residual is summed in.
    pub sum_scale: Option<f32>,
    pub post_sum_activation: Option<Activation>,
}

impl OutputStage {
    /// True when the stage stores the accumulator unchanged.
    pub fn is_identity(&self) -> bool {
        self.bias.is_none()
            && self.scale.is_none()
            && self.activation.is_none()
            && self.act_scale.is_none()
            && self.sum_scale.is_none()
            && self.post_sum_activation.is_none()
    }

    /// Checks that per-channel vectors have 1 or `channels` entries.
    pub fn validate(&self, channels: usize) -> Result<(), String> {
        for (what, v) in [("bias", &self.bias), ("scale", &self.scale)] {
            if v.0.len() > 1 && v.0.len() != channels {
                return Err(format!(
                    "output stage {what} has {} entries for {channels} channels",
                    v.0.len()
                ));
            }
        }
        Ok(())
    }

    /// Runs the f32 part of the stage for channel `c`; `residual` is the
    /// residual operand's quantized value when a sum is fused.
    #[inline]
    pub fn compute(&self, c: usize, acc: i32, residual: Option<f32>) -> f32 {
        let mut v = acc as f32;
        if !self.bias.is_none() {
            v += self.bias.get(c);
        }
        if !self.scale.is_none() {
            v *= self.scale.get(c);
        }
        if let Some(act) = self.activation {
            v = act.apply(v);
        }
        if let Some(s) = self.act_scale {
            v *= s;
        }
        if let (Some(s), Some(r)) = (self.sum_scale, residual) {
            v += s * r;
        }
        if let Some(act) = self.post_sum_activation {
            v = act.apply(v);
        }
        v
    }

    /// Stores one row of accumulators (`acc[c]` for channels `0..acc.len()`),
    /// reading the residual at the same positions when a sum is fused.
    #[inline]
    pub fn store_row<O: OutputElem>(
        &self,
        acc: &[i32],
        residual: Option<(QuantSlice, usize)>,
        out: &mut [O],
    ) {
        if self.is_identity() {
            for (o, &a) in out.iter_mut().zip(acc) {
                *o = O::from_acc(a);
            }
            return;
        }
        for (c, (o, &a)) in out.iter_mut().zip(acc).enumerate() {
            let r = residual.map(|(s, offset)| s.get_f32(offset + c));
            *o = O::from_f32(self.compute(c, a, r));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_stage_keeps_accumulator_exact() {
        let stage = OutputStage::default();
        let mut out = [0i32; 2];
        stage.store_row(&[16_777_217, -5], None, &mut out);
        assert_eq!(out, [16_777_217, -5]);
    }

    #[test]
    fn bias_goes_through_f32() {
        let stage = OutputStage {
            bias: PerChannel::uniform(1.0),
            ..Default::default()
        };
        let mut out = [0i32; 1];
        stage.store_row(&[16_777_217], None, &mut out);
        assert_eq!(out, [16_777_216]);
    }

    #[test]
    fn relu_scale_then_saturate_u8() {
        let stage = OutputStage {
            scale: PerChannel(vec![0.5, 2.0]),
            activation: Some(Activation::Relu),
            ..Default::default()
        };
        let mut out = [0u8; 2];
        stage.store_row(&[5, -7], None, &mut out);
        assert_eq!(out, [2, 0]);
        stage.store_row(&[1000, 200], None, &mut out);
        assert_eq!(out, [255, 255]);
    }

    #[test]
    fn residual_sum_and_post_activation() {
        let stage = OutputStage {
            sum_scale: Some(0.5),
            post_sum_activation: Some(Activation::Relu),
            ..Default::default()
        };
        let res = [-100i8, 100];
        let mut out = [0i8; 2];
        stage.store_row(&[10, 10], Some((QuantSlice::I8(&res), 0)), &mut out);
        assert_eq!(out, [0, 60]);
    }

    #[test]
    fn non_negative_activations() {
        assert!(Activation::Relu.is_non_negative());
        assert!(!Activation::Leaky { slope: 0.1 }.is_non_negative());
        assert!(Activation::Clip { min: 0.0, max: 6.0 }.is_non_negative());
        assert!(!Activation::Tanh.is_non_negative());
    }
}
