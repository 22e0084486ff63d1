//! The predictor behind `c_predict_api`: a symbol and its parameters bound
//! for inference, created the way `MXPredCreate` creates one.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::executor::{BindSpec, Executor};
use crate::format::params::load_params;
use crate::graph::{Entry, Graph};
use crate::ops::{registry, Shape};
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::sync::Arc;

/// Everything `MXPredCreate*` receives, as Rust values.
#[derive(Default)]
pub struct PredictorConfig<'a> {
    pub symbol_json: &'a str,
    pub params: &'a [u8],
    pub input_shapes: Vec<(String, Shape)>,
    /// Dtypes of inputs that no parameter types (`MXPredCreateEx`).
    pub input_dtypes: Vec<(String, DType)>,
    /// Node names whose `output` becomes the predictor's outputs (`MXPredCreatePartialOut`).
    pub output_keys: Vec<String>,
}

/// A bound model.
pub struct Predictor {
    pub executor: Executor,
}

/// Parameters by name, without their `arg:` / `aux:` prefix.
pub type ParamMap = HashMap<String, Arc<Tensor>>;

/// Parses the parameter list and splits it into arguments and auxiliary
/// states by their `arg:` / `aux:` prefixes; other names are ignored, as in MXNet.
pub fn split_params(bytes: &[u8]) -> Result<(ParamMap, ParamMap)> {
    if bytes.is_empty() {
        return Err(Error::invalid(
            "the parameter buffer is empty (param_size is 0)",
        ));
    }
    let list = load_params(bytes)?;
    if list.names.len() != list.arrays.len() {
        return Err(Error::invalid(
            "invalid param file format: the parameter list has no names (save it with arg:/aux: names)",
        ));
    }
    let mut args = HashMap::new();
    let mut aux = HashMap::new();
    for (name, tensor) in list.names.into_iter().zip(list.arrays) {
        let Some(tensor) = tensor else { continue };
        if let Some(rest) = name.strip_prefix("arg:") {
            args.insert(rest.to_string(), Arc::new(tensor));
        } else if let Some(rest) = name.strip_prefix("aux:") {
            aux.insert(rest.to_string(), Arc::new(tensor));
        } else {
            log::debug!("ignoring parameter {name:?}: its name has no arg: or aux: prefix");
        }
    }
    Ok((args, aux))
}

/// Replaces the heads by the `output` of each named node, in the order given.
pub fn select_outputs(graph: &mut Graph, keys: &[String]) -> Result<()> {
    let mut heads = Vec::with_capacity(keys.len());
    for key in keys {
        let found = graph.nodes.iter().enumerate().find_map(|(id, n)| {
            if n.is_variable() || n.name != *key {
                return None;
            }
            let names = registry()
                .get(&n.op)
                .map(|d| (d.outputs)(&n.attrs))
                .unwrap_or_else(|| vec!["output".into()]);
            names.iter().position(|o| o == "output").map(|index| Entry {
                node: id,
                index,
                version: 0,
            })
        });
        heads.push(
            found.ok_or_else(|| Error::invalid(format!("did not find node name: {key}_output")))?,
        );
    }
    graph.heads = heads;
    Ok(())
}

impl Predictor {
    /// Parses, loads parameters and binds, as `MXPredCreate*` does.
    pub fn create(config: &PredictorConfig) -> Result<Predictor> {
        let mut graph = crate::format::symbol::load_json(config.symbol_json)?;
        if !config.output_keys.is_empty() {
            select_outputs(&mut graph, &config.output_keys)?;
        }
        let (mut args, aux) = split_params(config.params)?;
        // A name given as an input stays an input even when the params file
        // also has it: the file's value is only its initial content, as in MXNet.
        let initial: Vec<(String, Arc<Tensor>)> = config
            .input_shapes
            .iter()
            .filter_map(|(k, _)| args.remove_entry(k))
            .collect();
        let spec = BindSpec {
            input_shapes: config.input_shapes.clone(),
            input_dtypes: config.input_dtypes.clone(),
            args,
            aux,
            keep_all_steps: false,
            conv_chains: Default::default(),
        };
        // MXNet ignores shapes given for names the model does not have; say
        // so when binding then fails, since a misspelt key is the likely cause.
        let all_inputs = graph.list_inputs();
        let unknown_keys = |k: &&str| !all_inputs.iter().any(|i| i == k);
        let inputs: Vec<&str> = all_inputs
            .iter()
            .map(String::as_str)
            .filter(|n| !spec.args.contains_key(*n) && !spec.aux.contains_key(*n))
            .collect();
        let unknown: Vec<&str> = config
            .input_shapes
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(unknown_keys)
            .collect();
        let mut predictor = Predictor::from_parts(Arc::new(graph), spec).map_err(|e| match e {
            Error::Shape { node, op, reason } if !unknown.is_empty() => Error::Shape {
                node,
                op,
                reason: format!(
                    "{reason} (shapes were given for {}, which the model does not have; its inputs \
                     without parameters are {})",
                    unknown.join(", "),
                    inputs.join(", ")
                ),
            },
            other => other,
        })?;
        for (name, value) in initial {
            // The input keeps the shape it was given; a value of another size
            // is not used.
            if let Err(e) = predictor.executor.set_argument(&name, value.bytes()) {
                log::warn!("input {name:?} starts as zeros, not its value in the params file: {e}");
            }
        }
        Ok(predictor)
    }

    /// Binds a parsed graph with an explicit spec.
    pub fn from_parts(graph: Arc<Graph>, spec: BindSpec) -> Result<Predictor> {
        Ok(Predictor {
            executor: Executor::bind(graph, spec)?,
        })
    }

    /// A new predictor with other input shapes, sharing the parameters.
    /// Arguments that are not reshaped must keep their element count, as in MXNet.
    pub fn reshape(&self, input_shapes: Vec<(String, Shape)>) -> Result<Predictor> {
        let executor = self.executor.reshape(input_shapes.clone())?;
        for name in self.executor.argument_names() {
            if input_shapes.iter().any(|(k, _)| k == name) {
                continue;
            }
            let before = self.executor.argument(name).map(Tensor::numel);
            let after = executor.argument(name).map(Tensor::numel);
            if before != after {
                return Err(Error::invalid(format!(
                    "the shape of argument {name:?} would change; only the shapes of the inputs given to reshape may change"
                )));
            }
        }
        Ok(Predictor { executor })
    }
}
