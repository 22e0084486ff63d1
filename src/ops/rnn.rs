//! `RNN` at inference: multi-layer, optionally bidirectional vanilla RNN
//! (relu or tanh), LSTM and GRU over `(seq_len, batch, input)` data with
//! MXNet's packed `parameters` vector (see `kernels::fp32::rnn`).

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
        if r.opt_int("projection_size")?.is_some() {
            return Err(node.attr_err(
                "projection_size",
                r.raw("projection_size").unwrap_or(""),
                "LSTM projection is not supported",
            ));
        }
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
        let state = vec![self.layers * self.directions, data[1], self.hidden];
        self.node
            .assign_input(inputs, 1, "parameters", vec![shape.param_len()])?;
        self.node.assign_input(inputs, 2, "state", state.clone())?;
        if self.is_lstm() {
            self.node
                .assign_input(inputs, 3, "state_cell", state.clone())?;
        }
        let mut out = vec![vec![data[0], data[1], self.directions * self.hidden]];
        out.extend((1..self.num_outputs).map(|_| state.clone()));
        Ok(Some(out))
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
    fn rnn_rejects_projection() {
        let err = make(
            |c| Ok(Box::new(Rnn::new(c)?)),
            "RNN",
            &[
                ("mode", "lstm"),
                ("state_size", "4"),
                ("num_layers", "1"),
                ("projection_size", "2"),
            ],
        );
        assert!(err.is_err());
    }
}
