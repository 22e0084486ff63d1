//! Chooses the memory order of each entry at bind.
//!
//! An entry is stored channels-last — (N, spatial..., C) in memory for the
//! logical shape (N, C, spatial...) — when its producer can write it so and
//! every consumer can read it so, and it is not a graph output. Int8
//! convolution kernels work channels-last, so a chain of quantized operators
//! then converts only where it enters and leaves the chain. An entry whose
//! spatial size is 1 has the same bytes in both orders; its producer may
//! write it channels-last whatever its consumers support.

use crate::error::Result;
use crate::ops::{ChannelsLastSupport, Op, Shape};
use crate::tensor::Tensor;

/// The operator and entry slots of one step, as the pass reads them.
pub(super) struct StepSlots<'a> {
    pub op: &'a dyn Op,
    pub inputs: &'a [usize],
    pub outputs: &'a [usize],
}

/// Returns, for each entry, whether it is stored channels-last.
pub(super) fn choose(steps: &[StepSlots], shapes: &[Shape], heads: &[usize]) -> Vec<bool> {
    let total = shapes.len();
    let support: Vec<ChannelsLastSupport> =
        steps.iter().map(|s| s.op.channels_last_support()).collect();
    let mut writable = vec![false; total];
    for (st, sup) in steps.iter().zip(&support) {
        for &k in &sup.outputs {
            if let Some(&e) = st.outputs.get(k) {
                writable[e] = shapes[e].len() >= 3;
            }
        }
    }
    let mut readable = vec![true; total];
    for (st, sup) in steps.iter().zip(&support) {
        for (slot, &e) in st.inputs.iter().enumerate() {
            if !sup.inputs.contains(&slot) {
                readable[e] = false;
            }
        }
    }
    for &e in heads {
        writable[e] = false;
    }
    let last: Vec<bool> = (0..total)
        .map(|e| writable[e] && (readable[e] || spatial(&shapes[e]) == 1))
        .collect();
    let count = last.iter().filter(|&&b| b).count();
    if count > 0 {
        log::debug!("{count} of {total} entries are stored channels-last");
    }
    last
}

/// Tells `op` the order of its slots, if any of them is channels-last.
pub(super) fn apply(
    op: &mut dyn Op,
    inputs: &[usize],
    outputs: &[usize],
    last: &[bool],
) -> Result<()> {
    let support = op.channels_last_support();
    let ins: Vec<bool> = inputs
        .iter()
        .enumerate()
        .map(|(slot, &e)| last[e] && support.inputs.contains(&slot))
        .collect();
    let outs: Vec<bool> = outputs.iter().map(|&e| last[e]).collect();
    if ins.iter().chain(&outs).any(|&b| b) {
        op.set_channels_last(&ins, &outs)?;
    }
    Ok(())
}

fn spatial(shape: &[usize]) -> usize {
    shape.iter().skip(2).product()
}

/// Copies a channels-last tensor into channels-first order, for callers that look at
/// entries (monitors).
pub(super) fn channels_first_copy(t: &Tensor) -> Result<Tensor> {
    let shape = t.shape();
    let mut out = Tensor::zeros(t.dtype(), shape)?;
    let size = t.dtype().size();
    let (n, c, s) = (shape[0], shape[1], spatial(shape));
    let src = t.bytes();
    let dst = out.bytes_mut();
    for b in 0..n {
        for p in 0..s {
            for ch in 0..c {
                let from = ((b * s + p) * c + ch) * size;
                let to = ((b * c + ch) * s + p) * size;
                dst[to..to + size].copy_from_slice(&src[from..from + size]);
            }
        }
    }
    Ok(out)
}
