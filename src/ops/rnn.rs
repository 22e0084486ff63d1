//! `RNN` at inference: multi-layer, optionally bidirectional vanilla RNN
//! (relu or tanh), LSTM (optionally with projection) and GRU over
//! `(seq_len, batch, input)` data with MXNet's packed `parameters` vector
//! (see `kernels::fp32::rnn`).

use super::fp32_util::{declared_outputs, f32_only, NodeInfo};
use super::{NodeCtx, Op, Registry, Shape};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fp32::rnn::{rnn_forward, RnnMode, RnnShape, RnnStates};
use crate::tensor::Tensor;

pub fn register(r: &mut Registry) {
    r.implement("RNN", |ctx| Ok(Box::new(Rnn::new(ctx)?)));
}

struct Rnn {
    node: NodeInfo,
    mode: RnnMode,
    hidden: usize,
    layers: usize,
    directions: usize,
    projection: Option<usize>,
    num_outputs: usize,
}

impl Rnn {
    fn new(ctx: &NodeCtx) -> Result<Rnn> {
        let node = NodeInfo::new(ctx);
        let r = ctx.reader();
        let mode = match r.raw("mode").ok_or_else(|| r.missing("mode"))? {
            "rnn_relu" => RnnMode::RnnRelu,
            "rnn_tanh" => RnnMode::RnnTanh,
            "lstm" => RnnMode::Lstm,
            "gru" => RnnMode::Gru,
            other => {
                return Err(node.attr_err(
                    "mode",
                    other,
                    "expected one of rnn_relu, rnn_tanh, lstm, gru",
                ))
            }
        };
        let hidden = r.int("state_size")?;
        let layers = r.int("num_layers")?;
        if hidden < 1 || layers < 1 {
            return Err(node.attr_err(
                "state_size",
                hidden,
                "state_size and num_layers must be positive",
            ));
        }
        let projection = match r.opt_int("projection_size")? {
            None => None,
            Some(p) if p >= 1 && mode == RnnMode::Lstm => Some(p as usize),
            Some(p) => {
                return Err(node.attr_err(
                    "projection_size",
                    p,
                    "projection needs mode lstm and a positive size",
                ));
            }
        };
        // MXNet 1.9.1 accepts sequence lengths only with cuDNN, so CPU
        // graphs never carry them.
        if r.bool_or("use_sequence_length", false)? {
            return Err(node.attr_err(
                "use_sequence_length",
                "true",
                "variable sequence lengths are not supported (MXNet supports them on GPU only)",
            ));
        }
        // NOTE: lstm_state_clip_min/max are ignored, as MXNet 1.9.1's CPU
        // implementation ignores them (only its cuDNN path clips).
        let directions = if r.bool_or("bidirectional", false)? {
            2
        } else {
            1
        };
        let default_outputs = if r.bool_or("state_outputs", false)? {
            if mode == RnnMode::Lstm {
                3
            } else {
                2
            }
        } else {
            1
        };
        Ok(Rnn {
            num_outputs: declared_outputs(ctx, default_outputs),
            node,
            mode,
            hidden: hidden as usize,
            layers: layers as usize,
            directions,
            projection,
        })
    }

    fn shape(&self, data: &[usize]) -> RnnShape {
        RnnShape {
            mode: self.mode,
            seq_len: data[0],
            batch: data[1],
            input_size: data[2],
            hidden: self.hidden,
            layers: self.layers,
            directions: self.directions,
            projection: self.projection,
        }
    }

    fn is_lstm(&self) -> bool {
        self.mode == RnnMode::Lstm
    }
}

impl Op for Rnn {
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>> {
        self.node
            .expect_inputs(inputs.len(), if self.is_lstm() { 4 } else { 3 })?;
        let Some(data) = inputs[0].clone() else {
            return Ok(None);
        };
        if data.len() != 3 {
            return Err(self.node.shape_err(format!(
                "data has shape {data:?}, expected (sequence length, batch, input size)"
            )));
        }
        let shape = self.shape(&data);
        let slots = self.layers * self.directions;
        let state = vec![slots, data[1], shape.recurrent()];
        let cell = vec![slots, data[1], self.hidden];
        self.node
            .assign_input(inputs, 1, "parameters", vec![shape.param_len()])?;
        self.node.assign_input(inputs, 2, "state", state.clone())?;
        if self.is_lstm() {
            self.node
                .assign_input(inputs, 3, "state_cell", cell.clone())?;
        }
        // Outputs: the sequence, then the final hidden and cell states.
        let all = [
            vec![data[0], data[1], self.directions * shape.recurrent()],
            state,
            cell,
        ];
        Ok(Some(all.into_iter().take(self.num_outputs).collect()))
    }

    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        f32_only(&self.node, inputs, num_outputs)
    }

    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()> {
        let shape = self.shape(inputs[0].shape());
        let (output, states) = outputs.split_first_mut().expect("RNN has an output");
        let (hy, rest) = match states.split_first_mut() {
            Some((h, rest)) => (Some(h.f32s_mut()?), rest),
            None => (None, &mut [][..]),
        };
        let cy = match rest.first_mut() {
            Some(c) => Some(c.f32s_mut()?),
            None => None,
        };
        let states = RnnStates {
            h0: inputs[2].f32s()?,
            c0: if self.is_lstm() {
                Some(inputs[3].f32s()?)
            } else {
                None
            },
            hy,
            cy,
        };
        rnn_forward(
            &shape,
            inputs[0].f32s()?,
            inputs[1].f32s()?,
            states,
            output.f32s_mut()?,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fp32_util::testing::*;
    use super::*;

    #[test]
    fn rnn_infers_parameter_and_state_shapes() {
        let op = make(
            |c| Ok(Box::new(Rnn::new(c)?)),
            "RNN",
            &[
                ("mode", "lstm"),
                ("state_size", "3"),
                ("num_layers", "2"),
                ("bidirectional", "True"),
                ("state_outputs", "True"),
            ],
        )
        .unwrap();
        let mut shapes = vec![Some(vec![4, 2, 5]), None, None, None];
        let out = op.infer_shape(&mut shapes).unwrap().unwrap();
        assert_eq!(out, vec![vec![4, 2, 6], vec![4, 2, 3], vec![4, 2, 3]]);
        let size = 4 * 3 * 2;
        assert_eq!(
            shapes[1],
            Some(vec![(5 + 3 + 2) * size + (6 + 3 + 2) * size])
        );
        assert_eq!(shapes[3], Some(vec![4, 2, 3]));
    }

    #[test]
    fn rnn_relu_single_step() {
        let op = make(
            |c| Ok(Box::new(Rnn::new(c)?)),
            "RNN",
            &[
                ("mode", "rnn_relu"),
                ("state_size", "1"),
                ("num_layers", "1"),
            ],
        )
        .unwrap();
        // wx = 2, wh = -1, bx = 0.5, bh = 0; h0 = 1, x = 3 → relu(6 − 1 + 0.5).
        let out = run(
            op.as_ref(),
            &[
                t(&[1, 1, 1], &[3.0]),
                t(&[4], &[2.0, -1.0, 0.5, 0.0]),
                t(&[1, 1, 1], &[1.0]),
            ],
        )
        .unwrap();
        assert_close(&out[0], &[5.5]);
    }

    #[test]
    fn lstm_projection_matches_mxnet() {
        // Two bidirectional LSTMP layers (T 2, N 2, I 2, H 3, P 2) with
        // parameters sin(0.37·k)/2, data cos(0.91·k), h0 0.3·sin(1.3·k) and
        // c0 0.3·cos(0.7·k). The expected values come from MXNet 1.9.1's mx.nd.RNN.
        let op = make(
            |c| Ok(Box::new(Rnn::new(c)?)),
            "RNN",
            &[
                ("mode", "lstm"),
                ("state_size", "3"),
                ("num_layers", "2"),
                ("bidirectional", "true"),
                ("projection_size", "2"),
                ("state_outputs", "true"),
            ],
        )
        .unwrap();
        let gen = |n: usize, f: fn(f32) -> f32, k: f32, scale: f32| -> Vec<f32> {
            (0..n).map(|i| f(i as f32 * k) * scale).collect()
        };
        let inputs = [
            t(&[2, 2, 2], &gen(8, f32::cos, 0.91, 1.0)),
            t(&[360], &gen(360, f32::sin, 0.37, 0.5)),
            t(&[4, 2, 2], &gen(16, f32::sin, 1.3, 0.3)),
            t(&[4, 2, 3], &gen(24, f32::cos, 0.7, 0.3)),
        ];
        let out = run(op.as_ref(), &inputs).unwrap();
        assert_eq!(out[0].shape(), &[2, 2, 4]);
        assert_eq!(out[1].shape(), &[4, 2, 2]);
        assert_eq!(out[2].shape(), &[4, 2, 3]);
        let want_output = [
            0.151392, 0.135332, 0.06533, 0.015082, 0.077525, 0.098206, 0.01384, -0.009656,
            0.182273, 0.184831, 0.129954, 0.051064, 0.123789, 0.142974, -0.076972, -0.036625,
        ];
        let want_state = [
            0.067114, -0.043687, 0.309461, -0.170638, 0.144513, 0.300176, 0.094005, 0.225377,
            0.182273, 0.184831, 0.123789, 0.142974, 0.06533, 0.015082, 0.01384, -0.009656,
        ];
        let want_cell = [
            -0.17112, -0.190393, -0.21115, -0.616683, -0.649885, -0.401594, 0.129999, 0.416448,
            0.514015, 0.313367, 0.426742, 0.300426, -0.434397, -0.402444, -0.423213, -0.545062,
            -0.235374, -0.211508, 0.028156, 0.029618, 0.167451, -0.036671, -0.024566, 0.120293,
        ];
        for (got, want) in out.iter().zip([&want_output[..], &want_state, &want_cell]) {
            for (i, (g, w)) in got.to_f32_vec().iter().zip(want).enumerate() {
                assert!((g - w).abs() < 1e-5, "element {i}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn rnn_rejects_gru_projection() {
        let err = make(
            |c| Ok(Box::new(Rnn::new(c)?)),
            "RNN",
            &[
                ("mode", "gru"),
                ("state_size", "4"),
                ("num_layers", "1"),
                ("projection_size", "2"),
            ],
        );
        assert!(err.is_err());
    }
}
