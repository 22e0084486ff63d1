//! Multi-layer, optionally bidirectional RNN, LSTM and GRU inference with
//! MXNet's packed parameter vector.
//!
//! Parameter layout: all weight matrices first, then all bias vectors. For
//! each layer and, inside it, each direction: `W_x` (`G·H × I_l`), `W_h`
//! (`G·H × R`) and, for an LSTM with projection, `W_r` (`P × H`). `G` is
//! the number of gates: 1, 4 for LSTM (order i, f, g, o) or 3 for GRU
//! (order r, z, n). `R` is the recurrent state size, `P` with projection
//! and `H` otherwise. `I_l` is the input size of layer `l`, `D·R` above the
//! first. Biases follow in the same order: `b_x` (`G·H`) then `b_h`
//! (`G·H`) per layer and direction.

use super::elementwise::act::sigmoid;
use super::gemm::{matmul, MatMut, MatRef, Threads};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnnMode {
    RnnRelu,
    RnnTanh,
    Lstm,
    Gru,
}

impl RnnMode {
    pub fn gates(self) -> usize {
        match self {
            RnnMode::RnnRelu | RnnMode::RnnTanh => 1,
            RnnMode::Lstm => 4,
            RnnMode::Gru => 3,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct RnnShape {
    pub mode: RnnMode,
    pub seq_len: usize,
    pub batch: usize,
    pub input_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub directions: usize,
    /// LSTM projection size `P` (LSTMP): the hidden state is projected to
    /// `P` values, which form the output and the recurrent state.
    pub projection: Option<usize>,
}

impl RnnShape {
    /// Size of the recurrent state and of each direction's output.
    pub fn recurrent(&self) -> usize {
        self.projection.unwrap_or(self.hidden)
    }

    /// Length of the packed parameter vector.
    pub fn param_len(&self) -> usize {
        let gh = self.mode.gates() * self.hidden;
        let projection = self.projection.map_or(0, |p| p * self.hidden);
        (0..self.layers)
            .map(|l| {
                self.directions * (gh * (self.layer_input(l) + self.recurrent() + 2) + projection)
            })
            .sum()
    }

    fn layer_input(&self, layer: usize) -> usize {
        if layer == 0 {
            self.input_size
        } else {
            self.directions * self.recurrent()
        }
    }
}

/// Views into the packed parameters of one layer and direction.
struct Cell<'a> {
    wx: &'a [f32],
    wh: &'a [f32],
    /// Projection `W_r` (`P × H`), LSTMP only.
    wr: Option<&'a [f32]>,
    bx: &'a [f32],
    bh: &'a [f32],
}

fn cells<'a>(shape: &RnnShape, params: &'a [f32]) -> Vec<Cell<'a>> {
    let gh = shape.mode.gates() * shape.hidden;
    let wr_len = shape.projection.map_or(0, |p| p * shape.hidden);
    let weight_total: usize = (0..shape.layers)
        .map(|l| shape.directions * (gh * (shape.layer_input(l) + shape.recurrent()) + wr_len))
        .sum();
    let mut weights = 0;
    let mut biases = weight_total;
    let mut out = Vec::with_capacity(shape.layers * shape.directions);
    for l in 0..shape.layers {
        for _ in 0..shape.directions {
            let wx_len = gh * shape.layer_input(l);
            let wh_len = gh * shape.recurrent();
            let wr_at = weights + wx_len + wh_len;
            out.push(Cell {
                wx: &params[weights..weights + wx_len],
                wh: &params[weights + wx_len..wr_at],
                wr: shape.projection.map(|_| &params[wr_at..wr_at + wr_len]),
                bx: &params[biases..biases + gh],
                bh: &params[biases + gh..biases + 2 * gh],
            });
            weights = wr_at + wr_len;
            biases += 2 * gh;
        }
    }
    out
}

/// Initial and final states: hidden states are `(layers · directions) ×
/// batch × R`, cell states `(layers · directions) × batch × H`.
pub struct RnnStates<'a> {
    pub h0: &'a [f32],
    /// Initial cell state; LSTM only.
    pub c0: Option<&'a [f32]>,
    pub hy: Option<&'a mut [f32]>,
    pub cy: Option<&'a mut [f32]>,
}

/// Updates one batch row of the hidden (and, for LSTM, cell) state from the
/// input and recurrent projections `x` and `hp` of that row.
fn step_row(
    mode: RnnMode,
    cell: &Cell<'_>,
    x: &[f32],
    hp: &[f32],
    hidden: &mut [f32],
    memory: &mut [f32],
) {
    let h = hidden.len();
    let pre =
        |k: usize, j: usize| x[k * h + j] + cell.bx[k * h + j] + hp[k * h + j] + cell.bh[k * h + j];
    match mode {
        RnnMode::RnnRelu => (0..h).for_each(|j| hidden[j] = pre(0, j).max(0.0)),
        RnnMode::RnnTanh => (0..h).for_each(|j| hidden[j] = pre(0, j).tanh()),
        RnnMode::Lstm => {
            for j in 0..h {
                let i = sigmoid(pre(0, j));
                let f = sigmoid(pre(1, j));
                let g = pre(2, j).tanh();
                let o = sigmoid(pre(3, j));
                let c = f * memory[j] + i * g;
                memory[j] = c;
                hidden[j] = o * c.tanh();
            }
        }
        RnnMode::Gru => {
            for j in 0..h {
                let r = sigmoid(pre(0, j));
                let z = sigmoid(pre(1, j));
                // The reset gate scales the recurrent part of the candidate only.
                let cand =
                    (x[2 * h + j] + cell.bx[2 * h + j] + r * (hp[2 * h + j] + cell.bh[2 * h + j]))
                        .tanh();
                hidden[j] = (1.0 - z) * cand + z * hidden[j];
            }
        }
    }
}

/// Runs the network over `data` (`seq_len × batch × input_size`) and writes
/// the last layer's outputs to `output` (`seq_len × batch × directions·R`).
pub fn rnn_forward(
    shape: &RnnShape,
    data: &[f32],
    params: &[f32],
    states: RnnStates<'_>,
    output: &mut [f32],
) {
    let (t_len, n, h) = (shape.seq_len, shape.batch, shape.hidden);
    let r = shape.recurrent();
    let d_count = shape.directions;
    let gh = shape.mode.gates() * h;
    let slots = shape.layers * d_count;
    assert_eq!(data.len(), t_len * n * shape.input_size, "rnn: data length");
    assert_eq!(params.len(), shape.param_len(), "rnn: parameter length");
    assert_eq!(states.h0.len(), slots * n * r, "rnn: initial state length");
    assert_eq!(output.len(), t_len * n * d_count * r, "rnn: output length");
    let is_lstm = shape.mode == RnnMode::Lstm;
    assert!(
        shape.projection.is_none() || is_lstm,
        "rnn: projection needs LSTM"
    );
    if is_lstm {
        assert_eq!(
            states.c0.map(|c| c.len()),
            Some(slots * n * h),
            "rnn: initial cell length"
        );
    }
    let cells = cells(shape, params);
    let mut hy = states.hy;
    let mut cy = states.cy;

    let mut layer_in = data.to_vec();
    let mut layer_out = vec![0.0f32; t_len * n * d_count * r];
    let mut xproj = vec![0.0f32; t_len * n * gh];
    let mut hproj = vec![0.0f32; n * gh];
    // Full hidden states before projection (LSTMP only).
    let mut full = vec![0.0f32; if shape.projection.is_some() { n * h } else { 0 }];
    for l in 0..shape.layers {
        let in_size = shape.layer_input(l);
        for d in 0..d_count {
            let slot = l * d_count + d;
            let cell = &cells[slot];
            let mut state = states.h0[slot * n * r..(slot + 1) * n * r].to_vec();
            let mut memory = states
                .c0
                .map(|c| c[slot * n * h..(slot + 1) * n * h].to_vec())
                .unwrap_or_default();

            // Input projections for every step at once: X · W_xᵀ.
            matmul(
                MatMut::row_major(&mut xproj, t_len * n, gh),
                MatRef::row_major(&layer_in, t_len * n, in_size),
                MatRef::row_major(cell.wx, gh, in_size).t(),
                false,
                Threads::Pool,
            );
            for step in 0..t_len {
                let t = if d == 0 { step } else { t_len - 1 - step };
                matmul(
                    MatMut::row_major(&mut hproj, n, gh),
                    MatRef::row_major(&state, n, r),
                    MatRef::row_major(cell.wh, gh, r).t(),
                    false,
                    Threads::Single,
                );
                for b in 0..n {
                    let x = &xproj[(t * n + b) * gh..(t * n + b + 1) * gh];
                    let hp = &hproj[b * gh..(b + 1) * gh];
                    let mem = if is_lstm {
                        &mut memory[b * h..(b + 1) * h]
                    } else {
                        &mut [][..]
                    };
                    let hidden = if full.is_empty() {
                        &mut state[b * h..(b + 1) * h]
                    } else {
                        &mut full[b * h..(b + 1) * h]
                    };
                    step_row(shape.mode, cell, x, hp, hidden, mem);
                }
                if let Some(wr) = cell.wr {
                    // LSTMP: the projected state W_r · h is the output and the next recurrent input.
                    matmul(
                        MatMut::row_major(&mut state, n, r),
                        MatRef::row_major(&full, n, h),
                        MatRef::row_major(wr, r, h).t(),
                        false,
                        Threads::Single,
                    );
                }
                for b in 0..n {
                    let o = (t * n + b) * d_count * r + d * r;
                    layer_out[o..o + r].copy_from_slice(&state[b * r..(b + 1) * r]);
                }
            }
            if let Some(out) = hy.as_deref_mut() {
                out[slot * n * r..(slot + 1) * n * r].copy_from_slice(&state);
            }
            if let (Some(out), true) = (cy.as_deref_mut(), is_lstm) {
                out[slot * n * h..(slot + 1) * n * h].copy_from_slice(&memory);
            }
        }
        if l + 1 < shape.layers {
            std::mem::swap(&mut layer_in, &mut layer_out);
            layer_out.resize(t_len * n * d_count * r, 0.0);
        }
    }
    output.copy_from_slice(&layer_out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_len_matches_mxnet_formula() {
        // MXNet: size = gates·H·D; first layer (I + H + 2)·size, others (D·H + H + 2)·size.
        let shape = RnnShape {
            mode: RnnMode::Lstm,
            seq_len: 1,
            batch: 1,
            input_size: 5,
            hidden: 3,
            layers: 2,
            directions: 2,
            projection: None,
        };
        let size = 4 * 3 * 2;
        assert_eq!(
            shape.param_len(),
            (5 + 3 + 2) * size + (2 * 3 + 3 + 2) * size
        );
    }

    #[test]
    fn single_step_rnn_tanh_by_hand() {
        // H = 1, I = 2: h = tanh(wx·x + bx + wh·h0 + bh).
        let shape = RnnShape {
            mode: RnnMode::RnnTanh,
            seq_len: 1,
            batch: 1,
            input_size: 2,
            hidden: 1,
            layers: 1,
            directions: 1,
            projection: None,
        };
        let params = [0.5, -1.0, 2.0, 0.1, 0.2];
        let mut out = [0.0];
        let mut hy = [0.0];
        let states = RnnStates {
            h0: &[0.3],
            c0: None,
            hy: Some(&mut hy),
            cy: None,
        };
        rnn_forward(&shape, &[1.0, 2.0], &params, states, &mut out);
        let want = (0.5 - 2.0 + 2.0 * 0.3 + 0.1 + 0.2f32).tanh();
        assert!((out[0] - want).abs() < 1e-6);
        assert_eq!(hy[0], out[0]);
    }

    #[test]
    fn lstm_two_steps_by_hand() {
        // H = 1, I = 1; gate rows i, f, g, o.
        let shape = RnnShape {
            mode: RnnMode::Lstm,
            seq_len: 2,
            batch: 1,
            input_size: 1,
            hidden: 1,
            layers: 1,
            directions: 1,
            projection: None,
        };
        let wx = [0.1, 0.2, 0.3, 0.4];
        let wh = [0.5, 0.6, 0.7, 0.8];
        let bx = [0.01, 0.02, 0.03, 0.04];
        let bh = [0.05, 0.06, 0.07, 0.08];
        let params: Vec<f32> = wx
            .iter()
            .chain(&wh)
            .chain(&bx)
            .chain(&bh)
            .copied()
            .collect();
        let data = [1.0, -1.0];
        let (mut h, mut c) = (0.2f32, -0.1f32);
        let mut want = vec![];
        for &x in &data {
            let g = |k: usize| wx[k] * x + bx[k] + wh[k] * h + bh[k];
            let (i, f, gg, o) = (sigmoid(g(0)), sigmoid(g(1)), g(2).tanh(), sigmoid(g(3)));
            c = f * c + i * gg;
            h = o * c.tanh();
            want.push(h);
        }
        let mut out = [0.0; 2];
        let mut cy = [0.0];
        let states = RnnStates {
            h0: &[0.2],
            c0: Some(&[-0.1]),
            hy: None,
            cy: Some(&mut cy),
        };
        rnn_forward(&shape, &data, &params, states, &mut out);
        assert!((out[0] - want[0]).abs() < 1e-6);
        assert!((out[1] - want[1]).abs() < 1e-6);
        assert!((cy[0] - c).abs() < 1e-6);
    }

    #[test]
    fn gru_bidirectional_reverse_runs_backwards() {
        // H = 1, I = 1, two directions; the reverse direction's output at
        // t = 0 must equal one GRU step over x[0] from the state after x[1].
        let shape = RnnShape {
            mode: RnnMode::Gru,
            seq_len: 2,
            batch: 1,
            input_size: 1,
            hidden: 1,
            layers: 1,
            directions: 2,
            projection: None,
        };
        let fw = ([0.3, -0.2, 0.5], [0.1, 0.4, -0.6]);
        let bw = ([-0.3, 0.2, 0.7], [0.2, -0.1, 0.3]);
        let bias = [0.0f32; 12];
        let params: Vec<f32> =
            fw.0.iter()
                .chain(&fw.1)
                .chain(&bw.0)
                .chain(&bw.1)
                .chain(&bias)
                .copied()
                .collect();
        let step = |w: &([f32; 3], [f32; 3]), x: f32, h: f32| {
            let r = sigmoid(w.0[0] * x + w.1[0] * h);
            let z = sigmoid(w.0[1] * x + w.1[1] * h);
            let n = (w.0[2] * x + r * (w.1[2] * h)).tanh();
            (1.0 - z) * n + z * h
        };
        let data = [0.7, -0.4];
        let f0 = step(&fw, data[0], 0.0);
        let f1 = step(&fw, data[1], f0);
        let b1 = step(&bw, data[1], 0.0);
        let b0 = step(&bw, data[0], b1);
        let mut out = [0.0; 4];
        let states = RnnStates {
            h0: &[0.0, 0.0],
            c0: None,
            hy: None,
            cy: None,
        };
        rnn_forward(&shape, &data, &params, states, &mut out);
        let want = [f0, b0, f1, b1];
        for k in 0..4 {
            assert!((out[k] - want[k]).abs() < 1e-6, "{out:?} vs {want:?}");
        }
    }
}
