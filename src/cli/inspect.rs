//! `inspect`: what a model needs and contains, without running it.
//!
//! Prints the inputs a caller must feed (arguments the parameter file does
//! not provide), the outputs, every parameter with its shape and dtype, an
//! operator histogram, and the operators this library cannot run yet.

use mxnet::format::params::load_params_file;
use mxnet::format::symbol::load_file;
use mxnet::graph::Graph;
use mxnet::ops::registry;
use mxnet::{Error, Result};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::path::Path;

/// Runs `inspect MODEL-symbol.json [MODEL-0000.params]`.
pub fn inspect(args: &[String]) -> Result<()> {
    let (symbol, params) = match args {
        [symbol] => (symbol, None),
        [symbol, params] => (symbol, Some(params)),
        _ => {
            return Err(Error::invalid(
                "inspect needs MODEL-symbol.json and optionally MODEL-0000.params",
            ))
        }
    };
    print!("{}", report(Path::new(symbol), params.map(Path::new))?);
    Ok(())
}

/// One parameter of the `.params` file.
struct Parameter {
    /// The name as stored, with its `arg:` or `aux:` prefix.
    name: String,
    shape: Vec<usize>,
    dtype: &'static str,
}

fn read_parameters(path: &Path) -> Result<Vec<Parameter>> {
    let list = load_params_file(path)?;
    if list.names.len() != list.arrays.len() {
        return Err(Error::invalid(format!(
            "{}: the parameter list has no names; expected arg:NAME and aux:NAME entries",
            path.display()
        )));
    }
    Ok(list
        .names
        .iter()
        .zip(&list.arrays)
        .map(|(name, array)| Parameter {
            name: name.clone(),
            shape: array.as_ref().map_or_else(Vec::new, |t| t.shape().to_vec()),
            dtype: array.as_ref().map_or("none", |t| t.dtype().name()),
        })
        .collect())
}

/// `(1, 3, 224, 224)`, as MXNet prints shapes.
fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    }
}

/// Builds the whole report as text.
fn report(symbol_path: &Path, params_path: Option<&Path>) -> Result<String> {
    let graph = load_file(symbol_path)?;
    let parameters = params_path.map(read_parameters).transpose()?;
    let mut out = String::new();
    let operators = graph
        .post_order()
        .into_iter()
        .filter(|&id| !graph.nodes[id].is_variable())
        .count();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "symbol {}: {} nodes, {operators} operators",
        symbol_path.display(),
        graph.nodes.len()
    );
    write_inputs(&mut out, &graph, parameters.as_deref());
    let _ = writeln!(out, "\noutputs:");
    for name in graph.list_outputs() {
        let _ = writeln!(out, "  {name}");
    }
    if let (Some(parameters), Some(path)) = (&parameters, params_path) {
        write_parameters(&mut out, &graph, parameters, path);
    } else {
        write_variables(&mut out, "auxiliary states", &graph.list_auxiliary_states());
    }
    write_operators(&mut out, &graph);
    Ok(out)
}

/// Lists the arguments that the parameter file does not provide; without a
/// parameter file, every argument.
fn write_inputs(out: &mut String, graph: &Graph, parameters: Option<&[Parameter]>) {
    let provided: HashSet<&str> = parameters
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.name.strip_prefix("arg:"))
        .collect();
    let inputs: Vec<String> = graph
        .list_arguments()
        .into_iter()
        .filter(|name| !provided.contains(name.as_str()))
        .collect();
    let title = if parameters.is_some() {
        "inputs (arguments the parameter file does not provide)"
    } else {
        "arguments"
    };
    write_variables(out, title, &inputs);
}

fn write_variables(out: &mut String, title: &str, names: &[String]) {
    let _ = writeln!(out, "\n{title}:");
    if names.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for name in names {
        let _ = writeln!(out, "  {name}");
    }
}

/// Lists the parameters with shape and dtype, then what the symbol needs
/// but the file lacks and what the file has but the symbol does not use.
fn write_parameters(out: &mut String, graph: &Graph, parameters: &[Parameter], path: &Path) {
    let _ = writeln!(out, "\nparameters ({}):", path.display());
    let width = parameters.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let mut total_bytes = 0usize;
    for p in parameters {
        let _ = writeln!(
            out,
            "  {:width$}  {:20}  {}",
            p.name,
            shape_text(&p.shape),
            p.dtype
        );
        let elements: usize = p.shape.iter().product();
        let size = mxnet::DType::from_name(p.dtype).map_or(0, |d| d.size());
        total_bytes += elements * size;
    }
    let _ = writeln!(
        out,
        "  {} arrays, {:.2} MiB",
        parameters.len(),
        total_bytes as f64 / (1024.0 * 1024.0)
    );

    let names: HashSet<&str> = parameters.iter().map(|p| p.name.as_str()).collect();
    let missing_aux: Vec<String> = graph
        .list_auxiliary_states()
        .into_iter()
        .filter(|name| !names.contains(format!("aux:{name}").as_str()))
        .collect();
    if !missing_aux.is_empty() {
        write_variables(
            out,
            "auxiliary states missing from the parameter file",
            &missing_aux,
        );
    }
    let used: HashSet<String> = graph
        .list_arguments()
        .into_iter()
        .map(|n| format!("arg:{n}"))
        .chain(
            graph
                .list_auxiliary_states()
                .into_iter()
                .map(|n| format!("aux:{n}")),
        )
        .collect();
    let unused: Vec<String> = parameters
        .iter()
        .filter(|p| !used.contains(&p.name))
        .map(|p| p.name.clone())
        .collect();
    if !unused.is_empty() {
        write_variables(out, "parameters the symbol does not use", &unused);
    }
}

/// Prints how often each operator occurs and which ones have no implementation.
fn write_operators(out: &mut String, graph: &Graph) {
    let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
    for id in graph.post_order() {
        let node = &graph.nodes[id];
        if !node.is_variable() {
            *histogram.entry(node.op.as_str()).or_default() += 1;
        }
    }
    let mut rows: Vec<(&str, usize)> = histogram.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let _ = writeln!(out, "\noperators:");
    let width = rows.iter().map(|(op, _)| op.len()).max().unwrap_or(0);
    for (op, count) in &rows {
        let _ = writeln!(out, "  {op:width$}  {count}");
    }
    let unsupported: Vec<String> = rows
        .iter()
        .filter(|(op, _)| registry().constructor(op).is_none())
        .map(|(op, count)| format!("{op} ({count} node{})", if *count == 1 { "" } else { "s" }))
        .collect();
    if unsupported.is_empty() {
        let _ = writeln!(
            out,
            "\nthis library implements every operator of the symbol"
        );
    } else {
        write_variables(out, "operators this library cannot run yet", &unsupported);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> (PathBuf, PathBuf) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/models")
            .join(name);
        (
            dir.join(format!("{name}-symbol.json")),
            dir.join(format!("{name}-0000.params")),
        )
    }

    #[test]
    fn report_lists_inputs_and_parameters() {
        let (symbol, params) = fixture("resnet18_v1");
        let text = report(&symbol, Some(&params)).unwrap();
        let inputs = text
            .split("inputs (arguments the parameter file does not provide):\n")
            .nth(1)
            .unwrap();
        assert!(inputs.starts_with("  data\n\noutputs:"), "{text}");
        assert!(text.contains("arg:resnet18_v1_conv0_weight"), "{text}");
        assert!(
            text.contains("aux:resnet18_v1_batchnorm0_running_mean"),
            "{text}"
        );
        assert!(text.contains("float32"), "{text}");
        assert!(text.contains("\noperators:\n"), "{text}");
        assert!(text.contains("Convolution"), "{text}");
    }

    #[test]
    fn report_without_params_lists_arguments() {
        let (symbol, _) = fixture("resnet18_v1");
        let text = report(&symbol, None).unwrap();
        assert!(text.contains("\narguments:\n  data\n"), "{text}");
        assert!(text.contains("\nauxiliary states:\n"), "{text}");
    }

    #[test]
    fn report_names_unimplemented_operators() {
        let path = std::env::temp_dir().join(format!("inspect-{}-symbol.json", std::process::id()));
        let json = r#"{"nodes": [{"op": "null", "name": "x", "inputs": []},
            {"op": "NoSuchOp", "name": "a", "inputs": [[0, 0, 0]]},
            {"op": "NoSuchOp", "name": "b", "inputs": [[1, 0, 0]]}],
            "arg_nodes": [0], "heads": [[2, 0, 0]], "attrs": {"mxnet_version": ["int", 10901]}}"#;
        std::fs::write(&path, json).unwrap();
        let text = report(&path, None);
        std::fs::remove_file(&path).unwrap();
        let text = text.unwrap();
        assert!(
            text.contains("operators this library cannot run yet:\n  NoSuchOp (2 nodes)\n"),
            "{text}"
        );
    }

    #[test]
    fn shapes_print_like_mxnet() {
        assert_eq!(shape_text(&[1, 3, 224, 224]), "(1, 3, 224, 224)");
        assert_eq!(shape_text(&[10]), "(10,)");
        assert_eq!(shape_text(&[]), "()");
    }

    #[test]
    fn wrong_argument_count_is_an_error() {
        assert!(inspect(&[]).is_err());
        assert!(inspect(&["a".into(), "b".into(), "c".into()]).is_err());
    }
}
