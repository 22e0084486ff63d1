//! Absorbs per-element steps into the step that produces their data.
//!
//! A step whose operator describes itself as an epilogue (an inference
//! BatchNorm, a ReLU) is dropped when it is the only reader of its data
//! input and that input's producer absorbs it, for example a convolution
//! folding BatchNorm into its weights. The producer then writes the dropped
//! step's output entry directly. Entries that are graph outputs are never
//! absorbed away, so every output keeps its value.

use super::{entry_uses, in_node, Step, Value};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::Graph;
use crate::ops::Shape;
use crate::tensor::Tensor;
use std::collections::HashMap;

/// Drops the steps that their producers absorb; returns how many.
pub(super) fn absorb_epilogues(
    graph: &Graph,
    steps: &mut Vec<Step>,
    values: &[Value],
    shapes: &[Shape],
    dtypes: &[DType],
    heads: &[usize],
) -> Result<usize> {
    let uses = entry_uses(steps, heads, shapes.len());
    let constants = |inputs: &[usize]| -> Vec<Option<&Tensor>> {
        inputs
            .iter()
            .map(|&e| matches!(values[e], Value::Shared(_)).then(|| values[e].tensor()))
            .collect()
    };
    let mut producer: HashMap<usize, usize> = HashMap::new();
    let mut removed = vec![false; steps.len()];
    for b in 0..steps.len() {
        for (k, &e) in steps[b].outputs.iter().enumerate() {
            if k == 0 {
                producer.insert(e, b);
            }
        }
        let Some(&data) = steps[b].inputs.first() else {
            continue;
        };
        let Some(&a) = producer.get(&data) else {
            continue;
        };
        let target = steps[b].outputs[0];
        let absorbable = uses[data] == 1
            && steps[b].outputs[1..].iter().all(|&o| uses[o] == 0)
            && shapes[data] == shapes[target]
            && dtypes[data] == DType::F32
            && dtypes[target] == DType::F32;
        if !absorbable {
            continue;
        }
        let Some(epilogue) = steps[b].op.as_epilogue(&constants(&steps[b].inputs)) else {
            continue;
        };
        let own = constants(&steps[a].inputs);
        let node = &graph.nodes[steps[a].node];
        if steps[a]
            .op
            .absorb(&epilogue, &own)
            .map_err(|e| in_node(e, &node.name, &node.op))?
        {
            steps[a].outputs[0] = target;
            producer.insert(target, a);
            removed[b] = true;
        }
    }
    let mut index = 0;
    steps.retain(|_| {
        index += 1;
        !removed[index - 1]
    });
    Ok(removed.iter().filter(|&&r| r).count())
}

#[cfg(test)]
mod tests {
    use crate::executor::{BindSpec, Executor};
    use crate::format::symbol::load_json;
    use crate::tensor::Tensor;
    use std::sync::Arc;

    /// data → Convolution(3x3, 4 filters, bias) → BatchNorm → `last`, with
    /// the heads given as node indices.
    fn graph_json(last: &str, heads: &[usize]) -> String {
        let heads: Vec<String> = heads.iter().map(|h| format!("[{h}, 0, 0]")).collect();
        format!(
            r#"{{"nodes": [
            {{"op": "null", "name": "data", "inputs": []}},
            {{"op": "null", "name": "w", "inputs": []}},
            {{"op": "null", "name": "b", "inputs": []}},
            {{"op": "Convolution", "name": "conv", "attrs": {{"kernel": "(3, 3)", "num_filter": "4", "pad": "(1, 1)"}}, "inputs": [[0, 0, 0], [1, 0, 0], [2, 0, 0]]}},
            {{"op": "null", "name": "g", "inputs": []}},
            {{"op": "null", "name": "beta", "inputs": []}},
            {{"op": "null", "name": "mean", "inputs": []}},
            {{"op": "null", "name": "var", "inputs": []}},
            {{"op": "BatchNorm", "name": "bn", "attrs": {{"fix_gamma": "False", "eps": "0.001"}}, "inputs": [[3, 0, 0], [4, 0, 0], [5, 0, 0], [6, 0, 1], [7, 0, 1]]}},
            {last}
            ],
            "arg_nodes": [0, 1, 2, 4, 5, 6, 7],
            "heads": [{}]}}"#,
            heads.join(", ")
        )
    }

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect()
    }

    fn run(json: &str) -> (Vec<Vec<f32>>, usize) {
        let graph = Arc::new(load_json(json).unwrap());
        let mut spec = BindSpec::default();
        spec.input_shapes.push(("data".into(), vec![1, 3, 5, 5]));
        let t = |shape: &[usize], seed: f32| {
            let n = shape.iter().product();
            Arc::new(Tensor::from_f32(shape, &values(n, seed)).unwrap())
        };
        spec.args.insert("w".into(), t(&[4, 3, 3, 3], 0.1));
        spec.args.insert("b".into(), t(&[4], 0.2));
        spec.args.insert("g".into(), t(&[4], 0.3));
        spec.args.insert("beta".into(), t(&[4], 0.4));
        spec.aux.insert("mean".into(), t(&[4], 0.5));
        let var: Vec<f32> = values(4, 0.6).iter().map(|v| v.abs() + 0.5).collect();
        spec.aux.insert(
            "var".into(),
            Arc::new(Tensor::from_f32(&[4], &var).unwrap()),
        );
        let mut exec = Executor::bind(graph, spec).unwrap();
        let input = Tensor::from_f32(&[1, 3, 5, 5], &values(75, 0.7)).unwrap();
        exec.set_argument("data", input.bytes()).unwrap();
        exec.forward().unwrap();
        let outputs = (0..exec.num_outputs())
            .map(|i| exec.output(i).unwrap().to_f32_vec())
            .collect();
        (outputs, exec.num_steps())
    }

    fn assert_close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                "element {i}: {x} vs {y}"
            );
        }
    }

    #[test]
    fn batch_norm_and_relu_fold_into_conv() {
        let relu = r#"{"op": "Activation", "name": "relu", "attrs": {"act_type": "relu"}, "inputs": [[8, 0, 0]]}"#;
        let (fused, fused_steps) = run(&graph_json(relu, &[9]));
        // Also reading the convolution's output keeps every step.
        let (plain, plain_steps) = run(&graph_json(relu, &[9, 3]));
        assert_eq!(fused_steps, 1);
        assert_eq!(plain_steps, 3);
        assert_close(&fused[0], &plain[0]);
        assert!(fused[0].contains(&0.0), "the ReLU clamps something");
        assert!(fused[0].iter().any(|&v| v > 0.0));
    }

    #[test]
    fn clip_folds_but_sigmoid_does_not() {
        let clip = r#"{"op": "clip", "name": "clip", "attrs": {"a_min": "0", "a_max": "0.5"}, "inputs": [[8, 0, 0]]}"#;
        let (fused, steps) = run(&graph_json(clip, &[9]));
        let (plain, _) = run(&graph_json(clip, &[9, 8]));
        assert_eq!(steps, 1);
        assert_close(&fused[0], &plain[0]);
        assert!(fused[0].contains(&0.5));
        let sigmoid = r#"{"op": "Activation", "name": "sig", "attrs": {"act_type": "sigmoid"}, "inputs": [[8, 0, 0]]}"#;
        let (_, steps) = run(&graph_json(sigmoid, &[9]));
        assert_eq!(steps, 2, "BatchNorm folds, the sigmoid stays a step");
    }
}
