//! Joins consecutive quantized convolutions into one band-by-band step
//! (see [`crate::ops::quantized::ConvChain`]).
//!
//! A chain starts at a convolution without padding along the height and
//! grows while the next step is a convolution whose data input is the
//! current member's output 0, which nothing else reads and which is not a
//! graph output. Under [`ConvChains::Auto`] it only forms where the first
//! intermediate output of one image is at least [`MIN_IMAGE_BYTES`]. It
//! stops before an intermediate output below [`MIN_LINK_BYTES`], because
//! smaller tensors stay in the cache anyway and calls per band and image
//! would cost more than they save.
//! `MXNET_INT8_CONV_CHAINS=0` turns chains off.

use super::{entry_uses, weighted_macs, ChainSummary, ConvChains, Step};
use crate::dtype::DType;
use crate::error::Result;
use crate::ops::quantized::{ChainMember, ConvChain, Source};
use crate::ops::Shape;
use std::collections::HashMap;

/// Smallest first intermediate output of one image, in bytes, worth a
/// chain.
const MIN_IMAGE_BYTES: usize = 1024 * 1024;

/// Smallest intermediate output of one image, in bytes, that a chain
/// carries on through. Past it, layers are small enough that a step per
/// layer for the whole batch costs less than a call per band and image.
const MIN_LINK_BYTES: usize = 64 * 1024;

/// Bytes of intermediate rows one band may hold, across all buffers: half
/// the L2 cache of one core on the CPUs we measured (2 MiB).
const BAND_BYTES: usize = 1024 * 1024;

/// Size limits of chains.
struct Limits {
    /// Smallest first intermediate output of one image.
    first: usize,
    /// Smallest intermediate output of one image a chain carries on through.
    link: usize,
    /// Bytes of intermediate rows per band.
    band: usize,
}

/// Returns the limits of `policy`, or `None` when chains are off.
fn limits(policy: ConvChains) -> Option<Limits> {
    match policy {
        ConvChains::Off => None,
        ConvChains::Always { band_bytes } => Some(Limits {
            first: 0,
            link: 0,
            band: band_bytes,
        }),
        ConvChains::Auto => {
            let off = std::env::var("MXNET_INT8_CONV_CHAINS").is_ok_and(|v| v.trim() == "0");
            (!off).then_some(Limits {
                first: MIN_IMAGE_BYTES,
                link: MIN_LINK_BYTES,
                band: BAND_BYTES,
            })
        }
    }
}

/// Replaces runs of chainable steps by chain steps; returns how many chains
/// formed.
pub(super) fn form_chains(
    policy: ConvChains,
    names: &[String],
    steps: &mut Vec<Step>,
    shapes: &[Shape],
    dtypes: &[DType],
    heads: &[usize],
) -> Result<usize> {
    let Some(limits) = limits(policy) else {
        return Ok(0);
    };
    let image_bytes = |e: usize| shapes[e].iter().skip(1).product::<usize>() * dtypes[e].size();
    let uses = entry_uses(steps, heads, shapes.len());
    let chainable = |st: &Step| st.op.as_row_conv().and_then(|r| r.row_facts());
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        let starts = chainable(&steps[i]).is_some_and(|f| f.pad == 0);
        let mut end = i + 1;
        while starts && end < steps.len() {
            let out = steps[end - 1].outputs[0];
            let next = &steps[end];
            let joins = uses[out] == 1
                && image_bytes(out) >= limits.link
                && next.inputs.first() == Some(&out)
                && chainable(next).is_some_and(|f| f.sum.is_none_or(|s| next.inputs[s] != out));
            if !joins {
                break;
            }
            end += 1;
        }
        if end - i >= 2 && image_bytes(steps[i].outputs[0]) >= limits.first {
            runs.push((i, end));
            i = end;
        } else {
            i += 1;
        }
    }
    for &(start, end) in runs.iter().rev() {
        let members: Vec<Step> = steps.drain(start..end).collect();
        let chain = build(names, members, shapes, dtypes, limits.band)?;
        steps.insert(start, chain);
    }
    Ok(runs.len())
}

/// Builds the chain step of `members`.
fn build(
    names: &[String],
    members: Vec<Step>,
    shapes: &[Shape],
    dtypes: &[DType],
    band_bytes: usize,
) -> Result<Step> {
    let mut inputs: Vec<usize> = Vec::new();
    let mut outputs: Vec<usize> = Vec::new();
    let mut output_of: HashMap<usize, usize> = HashMap::new();
    let count = members.len();
    let node = members[count - 1].node;
    let output = members[count - 1].outputs[0];
    let macs = members
        .iter()
        .map(|st| weighted_macs(shapes, st.inputs[1], st.outputs[0]))
        .sum();
    let mut chain_members = Vec::with_capacity(count);
    for (i, st) in members.into_iter().enumerate() {
        let last = i + 1 == count;
        let sources = st
            .inputs
            .iter()
            .enumerate()
            .map(|(k, &e)| {
                if i > 0 && k == 0 {
                    Source::Chained
                } else if let Some(&o) = output_of.get(&e) {
                    Source::Output(o)
                } else {
                    Source::Input(position(&mut inputs, e))
                }
            })
            .collect();
        let slots = st
            .outputs
            .iter()
            .enumerate()
            .map(|(k, &e)| {
                (k > 0 || last).then(|| {
                    let o = position(&mut outputs, e);
                    output_of.insert(e, o);
                    o
                })
            })
            .collect();
        let data = st.inputs[0];
        chain_members.push(ChainMember {
            name: names[st.node].clone(),
            op: st.op,
            inputs: sources,
            outputs: slots,
            data: (dtypes[data], shapes[data].clone()),
            out_shape: shapes[st.outputs[0]].clone(),
        });
    }
    let chain = ConvChain::new(chain_members, band_bytes)?;
    Ok(Step {
        node,
        chain: Some(ChainSummary {
            label: chain.label(),
            output,
            macs,
        }),
        op: Box::new(chain),
        inputs,
        outputs,
    })
}

/// Returns the index of `e` in `list`, appending it if absent.
fn position(list: &mut Vec<usize>, e: usize) -> usize {
    list.iter().position(|&x| x == e).unwrap_or_else(|| {
        list.push(e);
        list.len() - 1
    })
}
