//! Operator registry. Each operator family lives in its own module and adds
//! its [`OpDef`]s to the registry; the registry is open (a name → definition
//! map), so operators can be added without touching the executor.

pub mod activation;
pub mod attrs;
pub mod batch_norm;
pub mod catalog;
pub mod concat;
pub mod conv;
pub mod elemwise;
pub mod embedding;
pub mod expand;
pub mod fp32_util;
pub mod fully_connected;
pub mod identity;
pub mod indexing;
pub mod linalg;
pub mod norm;
pub mod output_layers;
pub mod pad;
pub mod pooling;
pub mod quantized;
pub mod reduce;
pub mod region;
pub mod reshape;
pub mod resize;
pub mod rnn;
pub mod sequence;
pub mod slice;
pub mod softmax;
pub mod sort;
pub mod transpose;
pub mod unary;

use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{Attrs, Graph};
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::sync::OnceLock;

pub use attrs::AttrReader;

/// A shape; `None` in inference slots means "not known yet".
pub type Shape = Vec<usize>;

/// What an operator needs to know about its node when it is instantiated.
pub struct NodeCtx<'a> {
    pub name: &'a str,
    pub op: &'a str,
    pub attrs: &'a Attrs,
    pub subgraphs: &'a [Graph],
}

impl<'a> NodeCtx<'a> {
    /// Attribute reader whose errors name this node.
    pub fn reader(&self) -> AttrReader<'a> {
        AttrReader::new(self.name, self.op, self.attrs)
    }
}

/// An operator instance bound to one node's attributes.
pub trait Op: Send + Sync {
    /// Infers output shapes from input shapes. It may fill unknown input
    /// shapes it can deduce (weights from data, labels from data). Returns
    /// `Ok(None)` while too little is known, an error when shapes disagree.
    fn infer_shape(&self, inputs: &mut [Option<Shape>]) -> Result<Option<Vec<Shape>>>;

    /// Infers output dtypes; the default makes every input and output float32.
    fn infer_type(&self, inputs: &mut [Option<DType>], num_outputs: usize) -> Result<Vec<DType>> {
        for t in inputs.iter_mut() {
            t.get_or_insert(DType::F32);
        }
        Ok(vec![DType::F32; num_outputs])
    }

    /// True when [`Op::forward`] writes every element of every output, so
    /// the executor may lend it buffers still holding earlier values
    /// instead of clearing them. The default is false.
    fn writes_every_output(&self) -> bool {
        false
    }

    /// Called once at bind with the inputs whose values are fixed for the
    /// life of the executor (parameters); lets an op pack weights ahead of time.
    fn prepare(&mut self, _constants: &[Option<&Tensor>]) -> Result<()> {
        Ok(())
    }

    /// Which inputs this operator can read, and which outputs it can write,
    /// channels-last: (N, spatial..., C) in memory for the logical shape
    /// (N, C, spatial...). The default is none.
    fn channels_last_support(&self) -> ChannelsLastSupport {
        ChannelsLastSupport::default()
    }

    /// Called once at bind, after [`Op::prepare`], with the memory order the
    /// executor chose for each input and output (`true` = channels-last).
    /// A slot is only `true` where [`Op::channels_last_support`] allowed it.
    fn set_channels_last(&mut self, _inputs: &[bool], _outputs: &[bool]) -> Result<()> {
        Ok(())
    }

    /// Describes this operator as a per-element step that its data input's
    /// producer could apply itself, given the constant inputs (parameters).
    /// `None` (the default) means it cannot be absorbed.
    fn as_epilogue(&self, _constants: &[Option<&Tensor>]) -> Option<Vec<Epilogue>> {
        None
    }

    /// Appends `epilogue` to the computation of output 0, so the step that
    /// followed can be dropped. `constants` are this operator's constant
    /// inputs, as given to [`Op::prepare`]. Returns `Ok(false)`, changing
    /// nothing, when it cannot.
    fn absorb(&mut self, _epilogue: &[Epilogue], _constants: &[Option<&Tensor>]) -> Result<bool> {
        Ok(false)
    }

    /// Computes every output. Output tensors arrive allocated with the
    /// inferred shapes and dtypes.
    fn forward(&self, inputs: &[&Tensor], outputs: &mut [Tensor]) -> Result<()>;

    /// This operator as a quantized convolution whose output rows a
    /// [`quantized::ConvChain`] can compute band by band. `None` (the
    /// default) for every other operator.
    fn as_row_conv(&self) -> Option<&dyn quantized::RowConv> {
        None
    }
}

/// A per-element operation on an output, absorbed into its producer.
#[derive(Clone, Debug, PartialEq)]
pub enum Epilogue {
    /// `y = x · scale[c] + shift[c]` for channel `c` (axis 1).
    Affine { scale: Vec<f32>, shift: Vec<f32> },
    /// `y = x` where `x > 0`, else 0.
    Relu,
    /// `y = hi` where `x > hi`, else `lo` where `x < lo`, else `x`.
    Clip { lo: f32, hi: f32 },
}

/// Input and output slots an operator can handle channels-last.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelsLastSupport {
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
}

/// Static facts about an operator, used by graph code even for operators
/// that cannot run yet.
pub struct OpDef {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// Input names for the given attributes (e.g. `data, weight, bias`).
    pub inputs: fn(&Attrs) -> Vec<String>,
    /// Names of all outputs, hidden ones included (e.g. `output, mean, var`).
    pub outputs: fn(&Attrs) -> Vec<String>,
    /// How many leading outputs are visible to users.
    pub visible_outputs: fn(&Attrs) -> usize,
    /// Input indices the operator mutates; variables feeding them are auxiliary states.
    pub mutate_inputs: &'static [usize],
}

/// Instantiates an operator for one node.
pub type CreateFn = fn(&NodeCtx) -> Result<Box<dyn Op>>;

/// Input-name function for the common single-input operators.
pub fn data_input(_: &Attrs) -> Vec<String> {
    vec!["data".into()]
}

/// Output-name function for single-output operators.
pub fn single_output(_: &Attrs) -> Vec<String> {
    vec!["output".into()]
}

/// Visible-output function that shows every output.
pub fn all_visible(_: &Attrs) -> usize {
    usize::MAX
}

/// The process-wide registry: static facts (`OpDef`) for every operator the
/// graph code knows, and a constructor for every operator that can run.
pub struct Registry {
    ops: HashMap<&'static str, &'static OpDef>,
    impls: HashMap<&'static str, CreateFn>,
}

impl Registry {
    /// Adds `def` under its name and aliases; a later registration replaces an earlier one.
    pub fn add(&mut self, def: OpDef) {
        let def: &'static OpDef = Box::leak(Box::new(def));
        self.ops.insert(def.name, def);
        for alias in def.aliases {
            self.ops.insert(alias, def);
        }
    }

    /// Registers the implementation of the operator named `name` (its canonical name).
    pub fn implement(&mut self, name: &'static str, create: CreateFn) {
        self.impls.insert(name, create);
    }

    pub fn get(&self, name: &str) -> Option<&'static OpDef> {
        self.ops.get(name).copied()
    }

    /// The constructor for `name` (canonical name or alias), if implemented.
    pub fn constructor(&self, name: &str) -> Option<CreateFn> {
        let canonical = self.get(name).map_or(name, |d| d.name);
        self.impls
            .get(canonical)
            .or_else(|| self.impls.get(name))
            .copied()
    }

    /// Every registered name, aliases included, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.ops.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

/// Returns the registry, building it on first use.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut r = Registry {
            ops: HashMap::new(),
            impls: HashMap::new(),
        };
        register_all(&mut r);
        r
    })
}

/// Looks an operator up by name or alias.
pub fn lookup(name: &str) -> Option<&'static OpDef> {
    registry().get(name)
}

/// Registers every operator family. Facts first, then implementations.
fn register_all(r: &mut Registry) {
    // Operator families register here, one line each.
    catalog::register(r);
    quantized::register(r);
    activation::register(r);
    batch_norm::register(r);
    concat::register(r);
    conv::register(r);
    elemwise::register(r);
    embedding::register(r);
    fully_connected::register(r);
    identity::register(r);
    pad::register(r);
    pooling::register(r);
    reduce::register(r);
    reshape::register(r);
    resize::register(r);
    rnn::register(r);
    slice::register(r);
    softmax::register(r);
    transpose::register(r);
    unary::register(r);
    expand::register(r);
    indexing::register(r);
    linalg::register(r);
    norm::register(r);
    output_layers::register(r);
    region::register(r);
    sequence::register(r);
    sort::register(r);
}
