//! Binds a graph to parameters and input shapes, then runs it.
//!
//! Binding infers every shape and dtype, instantiates each operator, lets it
//! prepare its constant inputs, and allocates every entry once, so a forward
//! pass allocates no tensors.

mod chain;
mod fuse;
mod infer;
mod layout;
mod memory;
pub mod pool;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::ops::{registry, NodeCtx, Op, Shape};
use crate::tensor::{Buffer, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// A callback that receives the name and value of an entry during forward.
pub type Monitor<'a> = dyn FnMut(&str, &Tensor) + Send + 'a;

/// What a graph is bound to.
#[derive(Default, Clone)]
pub struct BindSpec {
    /// Shapes of inputs by variable name (arguments or aux states).
    pub input_shapes: Vec<(String, Shape)>,
    /// Dtypes of inputs not typed by a parameter.
    pub input_dtypes: Vec<(String, DType)>,
    /// Argument values by name (no `arg:` prefix).
    pub args: HashMap<String, Arc<Tensor>>,
    /// Auxiliary-state values by name (no `aux:` prefix).
    pub aux: HashMap<String, Arc<Tensor>>,
    /// Runs every operator as its own step, absorbing none into the step
    /// before it, so a monitor receives every entry.
    pub keep_all_steps: bool,
    /// The policy for running consecutive convolutions as one band-by-band step.
    pub conv_chains: ConvChains,
}

/// The policy for joining consecutive quantized convolutions into one step
/// that computes each image band by band (see `chain`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvChains {
    /// Chains where an intermediate output of one image is large, unless
    /// `MXNET_INT8_CONV_CHAINS=0`.
    #[default]
    Auto,
    Off,
    /// Wherever possible, with bands of at most `band_bytes` of
    /// intermediate rows (for tests).
    Always {
        band_bytes: usize,
    },
}

/// Storage of one graph entry.
enum Value {
    /// A parameter shared with other executors (read-only here).
    Shared(Arc<Tensor>),
    /// An input or an operator output owned by this executor.
    Owned(Tensor),
    /// An intermediate entry whose storage is in the pool right now.
    Pooled,
}

impl Value {
    fn tensor(&self) -> &Tensor {
        match self {
            Value::Shared(t) => t,
            Value::Owned(t) => t,
            Value::Pooled => {
                unreachable!("a pooled entry is read only between its producer and last consumer")
            }
        }
    }
}

/// The facts [`Executor::step_summary`] reports about one step.
pub struct StepSummary<'a> {
    pub name: &'a str,
    pub op: &'a str,
    /// Multiply-adds of a convolution or fully connected step, else 0.
    pub macs: u64,
    /// Shape of the first input.
    pub input: &'a [usize],
    /// Shape of the weight of a convolution or fully connected step, else empty.
    pub weight: &'a [usize],
    /// Shape of the first output.
    pub output: &'a [usize],
}

/// The facts a profile reports about a chain step.
struct ChainSummary {
    /// Node names joined with ` + `.
    label: String,
    /// The entry of the last member's output 0.
    output: usize,
    /// Multiply-adds of all members.
    macs: u64,
}

/// One operator application in execution order.
struct Step {
    node: usize,
    /// The facts to report instead of the node's own (for a chain of nodes).
    chain: Option<ChainSummary>,
    op: Box<dyn Op>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
}

/// A bound graph, ready to run.
pub struct Executor {
    graph: Arc<Graph>,
    spec: BindSpec,
    steps: Vec<Step>,
    values: Vec<Value>,
    shapes: Vec<Shape>,
    dtypes: Vec<DType>,
    /// Storage of intermediate entries, indexed by the plan's block ids.
    blocks: Vec<Buffer>,
    plan: memory::MemoryPlan,
    /// First entry id of each node; entry id = base + output index.
    entry_base: Vec<usize>,
    arguments: Vec<(String, usize)>,
    aux_states: Vec<(String, usize)>,
    outputs: Vec<usize>,
    output_names: Vec<String>,
    /// Entries stored channels-last (see `layout`).
    channels_last: Vec<bool>,
}

impl Executor {
    /// Binds `graph`: infers shapes and dtypes, instantiates and prepares
    /// operators, and allocates every entry. Parameters that `spec` does not
    /// provide are zero-filled.
    pub fn bind(graph: Arc<Graph>, spec: BindSpec) -> Result<Executor> {
        let order = graph.post_order();
        let mut entry_base = Vec::with_capacity(graph.nodes.len());
        let mut total = 0usize;
        for id in 0..graph.nodes.len() {
            entry_base.push(total);
            total += graph.num_outputs(id);
        }
        let (arg_nodes, aux_nodes) = graph.argument_and_auxiliary_nodes();

        let mut ops: HashMap<usize, Box<dyn Op>> = HashMap::new();
        for &id in &order {
            let n = &graph.nodes[id];
            if n.is_variable() {
                continue;
            }
            let create = registry()
                .constructor(&n.op)
                .ok_or_else(|| Error::UnsupportedOp {
                    op: n.op.clone(),
                    node: n.name.clone(),
                })?;
            let ctx = NodeCtx {
                name: &n.name,
                op: &n.op,
                attrs: &n.attrs,
                subgraphs: &n.subgraphs,
            };
            ops.insert(id, create(&ctx)?);
        }

        let layout = infer::Layout {
            graph: &graph,
            order: &order,
            entry_base: &entry_base,
            total,
        };
        let shapes = layout.infer_shapes(&ops, &spec)?;
        let dtypes = layout.infer_types(&ops, &spec)?;

        // Variables get their own zero-filled storage now; operator outputs
        // get storage once the memory plan is known.
        let mut values = Vec::with_capacity(total);
        let mut bytes = Vec::with_capacity(total);
        for e in 0..total {
            let numel = crate::tensor::checked_numel(&shapes[e]);
            let size = numel.and_then(|n| n.checked_mul(dtypes[e].size()));
            bytes.push(
                size.ok_or_else(|| Error::invalid(format!("shape {:?} is too large", shapes[e])))?,
            );
            values.push(Value::Pooled);
        }

        let named = |ids: &[usize]| -> Vec<(String, usize)> {
            ids.iter()
                .map(|&id| (graph.nodes[id].name.clone(), entry_base[id]))
                .collect()
        };
        let arguments = named(&arg_nodes);
        let aux_states = named(&aux_nodes);
        for (name, e) in &arguments {
            if let Some(t) = spec.args.get(name) {
                values[*e] = Value::Shared(check_param(name, t, &shapes[*e], dtypes[*e])?);
            }
        }
        for (name, e) in &aux_states {
            if let Some(t) = spec.aux.get(name) {
                values[*e] = Value::Shared(check_param(name, t, &shapes[*e], dtypes[*e])?);
            }
        }
        // Inputs, and parameters the spec does not provide, start as zeros.
        for &id in &order {
            let e = entry_base[id];
            if graph.nodes[id].is_variable() && matches!(values[e], Value::Pooled) {
                values[e] = Value::Owned(Tensor::zeros(dtypes[e], &shapes[e])?);
            }
        }

        let mut steps = Vec::new();
        for &id in &order {
            let Some(mut op) = ops.remove(&id) else {
                continue;
            };
            let n = &graph.nodes[id];
            let inputs: Vec<usize> = n
                .inputs
                .iter()
                .map(|e| entry_base[e.node] + e.index)
                .collect();
            let is_param = |e: usize| matches!(values[e], Value::Shared(_));
            let constants: Vec<Option<&Tensor>> = inputs
                .iter()
                .map(|&e| is_param(e).then(|| values[e].tensor()))
                .collect();
            op.prepare(&constants)
                .map_err(|e| in_node(e, &n.name, &n.op))?;
            let count = graph.num_outputs(id);
            let outputs = (0..count).map(|i| entry_base[id] + i).collect();
            steps.push(Step {
                node: id,
                chain: None,
                op,
                inputs,
                outputs,
            });
        }

        let outputs: Vec<usize> = graph
            .heads
            .iter()
            .map(|h| entry_base[h.node] + h.index)
            .collect();
        let absorbed = if spec.keep_all_steps {
            0
        } else {
            fuse::absorb_epilogues(&graph, &mut steps, &values, &shapes, &dtypes, &outputs)?
        };
        if absorbed > 0 {
            log::debug!("{absorbed} steps were absorbed into the steps before them");
        }
        let channels_last = {
            let slots: Vec<layout::StepSlots> = steps
                .iter()
                .map(|st| layout::StepSlots {
                    op: st.op.as_ref(),
                    inputs: &st.inputs,
                    outputs: &st.outputs,
                })
                .collect();
            layout::choose(&slots, &shapes, &outputs)
        };
        for st in &mut steps {
            let n = &graph.nodes[st.node];
            layout::apply(st.op.as_mut(), &st.inputs, &st.outputs, &channels_last)
                .map_err(|e| in_node(e, &n.name, &n.op))?;
        }
        if !spec.keep_all_steps {
            let names: Vec<String> = graph.nodes.iter().map(|n| n.name.clone()).collect();
            let chains = chain::form_chains(
                spec.conv_chains,
                &names,
                &mut steps,
                &shapes,
                &dtypes,
                &outputs,
            )?;
            if chains > 0 {
                log::debug!("{chains} chains of convolutions run band by band");
            }
        }
        let mut persistent = vec![false; total];
        for &e in &outputs {
            persistent[e] = true;
        }
        let io: Vec<memory::StepIo> = steps
            .iter()
            .map(|st| memory::StepIo {
                inputs: &st.inputs,
                outputs: &st.outputs,
            })
            .collect();
        let plan = memory::plan(&io, &bytes, &persistent);
        drop(io);
        for &e in &outputs {
            if matches!(values[e], Value::Pooled) {
                values[e] = Value::Owned(Tensor::zeros(dtypes[e], &shapes[e])?);
            }
        }
        let blocks = plan
            .block_bytes
            .iter()
            .map(|&b| Buffer::try_zeroed(b))
            .collect::<Result<Vec<_>>>()?;
        let output_names = graph.heads.iter().map(|&h| graph.entry_name(h)).collect();
        Ok(Executor {
            graph,
            spec,
            steps,
            values,
            shapes,
            dtypes,
            blocks,
            plan,
            entry_base,
            arguments,
            aux_states,
            outputs,
            output_names,
            channels_last,
        })
    }

    /// Binds the same graph and parameters again with other input shapes.
    pub fn reshape(&self, input_shapes: Vec<(String, Shape)>) -> Result<Executor> {
        let mut spec = self.spec.clone();
        spec.input_shapes = input_shapes;
        Executor::bind(self.graph.clone(), spec)
    }

    pub fn graph(&self) -> &Arc<Graph> {
        &self.graph
    }

    /// Argument names in MXNet's `list_arguments` order.
    pub fn argument_names(&self) -> impl Iterator<Item = &str> {
        self.arguments.iter().map(|(n, _)| n.as_str())
    }

    /// Auxiliary-state names in MXNet's order.
    pub fn aux_names(&self) -> impl Iterator<Item = &str> {
        self.aux_states.iter().map(|(n, _)| n.as_str())
    }

    /// The current value of an argument, if `name` is one.
    pub fn argument(&self, name: &str) -> Option<&Tensor> {
        self.arguments
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| self.values[*e].tensor())
    }

    /// Overwrites an argument with raw bytes of its dtype. Operators fold and
    /// pack parameters at bind, so setting a parameter binds the graph again
    /// with the new value. Inputs keep their values.
    pub fn set_argument(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let e = self
            .arguments
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| *e)
            .ok_or_else(|| Error::invalid(format!("cannot find input key {name:?}")))?;
        let current = self.values[e].tensor();
        if bytes.len() != current.bytes().len() {
            return Err(Error::invalid(format!(
                "memory size does not match for input {name:?}: {} bytes given, {} expected ({} elements of {})",
                bytes.len(),
                current.bytes().len(),
                current.numel(),
                current.dtype()
            )));
        }
        let (dtype, shape) = (current.dtype(), current.shape().to_vec());
        match &mut self.values[e] {
            Value::Owned(t) => t.bytes_mut().copy_from_slice(bytes),
            _ => {
                let value = Tensor::from_bytes(dtype, &shape, bytes)?;
                let mut spec = self.spec.clone();
                spec.args.insert(name.to_string(), Arc::new(value));
                *self = self.rebind(spec)?;
            }
        }
        Ok(())
    }

    /// Binds the graph again so that every operator runs as its own step
    /// (`keep`), or with steps absorbed where possible.
    pub fn set_keep_all_steps(&mut self, keep: bool) -> Result<()> {
        if self.spec.keep_all_steps != keep {
            let mut spec = self.spec.clone();
            spec.keep_all_steps = keep;
            *self = self.rebind(spec)?;
        }
        Ok(())
    }

    /// Binds the graph with `spec`, carrying over the values of the inputs
    /// (arguments not bound from parameters).
    fn rebind(&self, spec: BindSpec) -> Result<Executor> {
        let mut next = Executor::bind(self.graph.clone(), spec)?;
        for (name, e) in &self.arguments {
            let Value::Owned(t) = &self.values[*e] else {
                continue;
            };
            let target = next
                .arguments
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, e)| *e);
            if let Some(Value::Owned(dst)) = target.map(|e| &mut next.values[e]) {
                if dst.bytes().len() == t.bytes().len() {
                    dst.bytes_mut().copy_from_slice(t.bytes());
                }
            }
        }
        Ok(next)
    }

    /// Number of steps `forward_step` accepts.
    pub fn num_steps(&self) -> usize {
        self.steps.len()
    }

    /// Runs the whole graph.
    pub fn forward(&mut self) -> Result<()> {
        self.forward_monitored(None, false)
    }

    /// Runs the whole graph, calling `monitor(name, tensor)` after each
    /// operator for each of its outputs, and with `include_inputs` also for
    /// each of its inputs before it runs. With a monitor, an executor whose
    /// steps absorbed others is first bound again with every operator as its
    /// own step, and stays so.
    pub fn forward_monitored(
        &mut self,
        mut monitor: Option<&mut Monitor<'_>>,
        include_inputs: bool,
    ) -> Result<()> {
        if monitor.is_some() {
            self.set_keep_all_steps(true)?;
        }
        pool::run_hot(|| {
            for i in 0..self.steps.len() {
                if include_inputs {
                    if let Some(m) = monitor.as_deref_mut() {
                        self.report_inputs(i, m);
                    }
                }
                self.run_step(i, monitor.as_deref_mut())?;
            }
            Ok(())
        })
    }

    /// Runs the whole graph and returns the wall time of each step.
    pub fn forward_timed(&mut self) -> Result<Vec<std::time::Duration>> {
        pool::run_hot(|| {
            let mut times = Vec::with_capacity(self.steps.len());
            for i in 0..self.steps.len() {
                let t = std::time::Instant::now();
                self.run_step(i, None)?;
                times.push(t.elapsed());
            }
            Ok(times)
        })
    }

    /// Name, operator, multiply-add count and shapes of step `i`.
    /// Multiply-adds are counted for convolution and fully connected steps
    /// (output elements times the weight elements per output channel), 0 for
    /// other operators.
    pub fn step_summary(&self, i: usize) -> Option<StepSummary<'_>> {
        let step = self.steps.get(i)?;
        let node = &self.graph.nodes[step.node];
        let op = node.op.to_ascii_lowercase();
        let weighted = op.contains("conv") || op.contains("fully_connected");
        let macs = match (weighted, step.inputs.get(1), step.outputs.first()) {
            (true, Some(&w), Some(&o)) => weighted_macs(&self.shapes, w, o),
            _ => 0,
        };
        let shape = |e: Option<&usize>| e.map(|&e| self.shapes[e].as_slice()).unwrap_or(&[]);
        if let Some(chain) = &step.chain {
            return Some(StepSummary {
                name: &chain.label,
                op: &node.op,
                macs: chain.macs,
                input: shape(step.inputs.first()),
                weight: &[],
                output: shape(Some(&chain.output)),
            });
        }
        Some(StepSummary {
            name: &node.name,
            op: &node.op,
            macs,
            input: shape(step.inputs.first()),
            weight: if weighted {
                shape(step.inputs.get(1))
            } else {
                &[]
            },
            output: shape(step.outputs.first()),
        })
    }

    /// Reports the inputs of step `i`: a variable by its own name, an
    /// operator output as `<node>_<input name>`.
    fn report_inputs(&self, i: usize, monitor: &mut Monitor<'_>) {
        let step = &self.steps[i];
        let node = &self.graph.nodes[step.node];
        let input_names = registry()
            .get(&node.op)
            .map(|d| (d.inputs)(&node.attrs))
            .unwrap_or_default();
        for (k, (&e, entry)) in step.inputs.iter().zip(&node.inputs).enumerate() {
            let source = &self.graph.nodes[entry.node];
            let name = if source.is_variable() {
                source.name.clone()
            } else {
                let input = input_names
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| format!("input{k}"));
                format!("{}_{input}", node.name)
            };
            if let Value::Pooled = self.values[e] {
                continue;
            }
            self.present(e, |t| monitor(&name, t));
        }
    }

    /// Runs step `i` only (for `MXPredPartialForward`).
    pub fn forward_step(&mut self, i: usize) -> Result<()> {
        if i >= self.steps.len() {
            return Err(Error::invalid(format!(
                "step {i} is out of range: the graph has {} steps",
                self.steps.len()
            )));
        }
        if i > 0 {
            let missing = self.steps[i]
                .inputs
                .iter()
                .any(|&e| matches!(self.values[e], Value::Pooled));
            if missing {
                return Err(Error::invalid(format!(
                    "step {i} reads outputs of earlier steps that have not run; run the steps in order from 0"
                )));
            }
        }
        pool::pool().install(|| self.run_step(i, None))
    }

    /// Runs step `i`, reports its outputs to `monitor`, then returns the
    /// storage of entries that no later step reads.
    fn run_step(&mut self, i: usize, monitor: Option<&mut Monitor<'_>>) -> Result<()> {
        if i == 0 {
            self.reclaim();
        }
        let step = &self.steps[i];
        let mut outs = Vec::with_capacity(step.outputs.len());
        for &e in &step.outputs {
            let t = match (&mut self.values[e], self.plan.storage_of[e]) {
                (Value::Owned(t), _) => std::mem::take(t),
                (Value::Pooled, Some(b)) => {
                    let buf = std::mem::take(&mut self.blocks[b]);
                    let clear = !step.op.writes_every_output();
                    Tensor::on_buffer(self.dtypes[e], &self.shapes[e], buf, clear)?
                }
                _ => unreachable!("operator outputs are never parameters"),
            };
            outs.push(t);
        }
        let ins: Vec<&Tensor> = step
            .inputs
            .iter()
            .map(|&e| self.values[e].tensor())
            .collect();
        // A panicking operator must not lose the output buffers it was lent,
        // or the executor could not run again.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            step.op.forward(&ins, &mut outs)
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::Runtime(format!(
                "internal error (please report): {what}"
            )))
        });
        for (&e, t) in step.outputs.iter().zip(outs) {
            self.values[e] = Value::Owned(t);
        }
        let node = step.node;
        if let (Some(m), Ok(())) = (monitor, &result) {
            for (k, &e) in self.steps[i].outputs.iter().enumerate() {
                let entry = crate::graph::Entry {
                    node,
                    index: k,
                    version: 0,
                };
                self.present(e, |t| m(&self.graph.entry_name(entry), t));
            }
        }
        for k in 0..self.plan.release_after[i].len() {
            self.release(self.plan.release_after[i][k]);
        }
        let n = &self.graph.nodes[node];
        let name = self.steps[i].chain.as_ref().map_or(&n.name, |c| &c.label);
        result.map_err(|e| in_node(e, name, &n.op))
    }

    /// Calls `f` with entry `e` in MXNet's channels-first order. A
    /// channels-last entry is copied; if the copy cannot be made, `f` is not called.
    fn present(&self, e: usize, f: impl FnOnce(&Tensor)) {
        let t = self.values[e].tensor();
        if !self.channels_last[e] {
            return f(t);
        }
        match layout::channels_first_copy(t) {
            Ok(copy) => f(&copy),
            Err(err) => log::warn!("cannot show entry {e} to the monitor: {err}"),
        }
    }

    /// Returns the storage of planned entry `e` to its block.
    fn release(&mut self, e: usize) {
        if let (Value::Owned(_), Some(b)) = (&self.values[e], self.plan.storage_of[e]) {
            let Value::Owned(t) = std::mem::replace(&mut self.values[e], Value::Pooled) else {
                unreachable!()
            };
            self.blocks[b] = t.into_buffer();
        }
    }

    /// Returns every planned entry's storage, e.g. after a step failed or a
    /// partial forward stopped early.
    fn reclaim(&mut self) {
        for e in 0..self.values.len() {
            self.release(e);
        }
    }

    pub fn num_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// Output `i` (a graph head).
    pub fn output(&self, i: usize) -> Result<&Tensor> {
        let e = self.outputs.get(i).ok_or_else(|| {
            Error::invalid(format!(
                "output index {i} exceeds the number of outputs ({})",
                self.outputs.len()
            ))
        })?;
        Ok(self.values[*e].tensor())
    }

    /// Output names in MXNet's `list_outputs` order.
    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// Entry id of output `index` of `node` (for tests and tools).
    pub fn entry(&self, node: usize, index: usize) -> usize {
        self.entry_base[node] + index
    }
}

/// Counts the readers of each of `entries` entries: step inputs and graph
/// outputs (`heads`).
fn entry_uses(steps: &[Step], heads: &[usize], entries: usize) -> Vec<usize> {
    let mut uses = vec![0usize; entries];
    for st in steps {
        for &e in &st.inputs {
            uses[e] += 1;
        }
    }
    for &h in heads {
        uses[h] += 1;
    }
    uses
}

/// Returns the multiply-adds of a convolution or fully connected layer:
/// its output elements times the weight elements per output channel.
fn weighted_macs(shapes: &[Shape], weight: usize, output: usize) -> u64 {
    let out: usize = shapes[output].iter().product();
    let per_channel: usize = shapes[weight].iter().skip(1).product();
    (out * per_channel) as u64
}

/// Adds the node's name to errors that do not carry one.
fn in_node(e: Error, node: &str, op: &str) -> Error {
    match e {
        Error::InvalidArgument(m) | Error::Runtime(m) => {
            Error::Runtime(format!("node {node:?} (op {op}): {m}"))
        }
        other => other,
    }
}

fn check_param(name: &str, t: &Arc<Tensor>, shape: &[usize], dtype: DType) -> Result<Arc<Tensor>> {
    if t.shape() != shape {
        return Err(Error::invalid(format!(
            "parameter {name:?} has shape {:?}, the graph needs {shape:?}",
            t.shape()
        )));
    }
    if t.dtype() != dtype {
        return Err(Error::invalid(format!(
            "parameter {name:?} has dtype {}, the graph needs {dtype}",
            t.dtype()
        )));
    }
    Ok(t.clone())
}
