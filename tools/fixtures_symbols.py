"""Part `symbols`: symbol JSON files and the lists MXNet 1.9.1 derives from them.

Current-format files are written by MXNet itself. Legacy (0.8, 0.9, 1.2)
files are written by hand here, because 1.9.1 can only write the current
format; MXNet then loads each one and `<name>.expected.json` records what it
reported. Files MXNet rejects go to symbols/invalid/ with the error text.
"""

import copy
import json
import os

import mxnet as mx

from fixture_util import FIXTURES, ensure_dir, error_text, run_python_isolated, write_json

SYMBOLS_DIR = os.path.join(FIXTURES, "symbols")
INVALID_DIR = os.path.join(SYMBOLS_DIR, "invalid")


def describe_symbol(sym, shapes=None, infer_without_shapes=False):
    """Return the lists, attributes and re-saved JSON MXNet reports for `sym`."""
    expected = {
        "arguments": sym.list_arguments(),
        "auxiliary_states": sym.list_auxiliary_states(),
        "inputs": sym.list_inputs(),
        "outputs": sym.list_outputs(),
        "internals": sym.get_internals().list_outputs(),
        "attr_dict": sym.attr_dict(),
    }
    if shapes is not None or infer_without_shapes:
        shapes = shapes or {}
        arg_shapes, out_shapes, aux_shapes = sym.infer_shape(**shapes)
        expected["infer_shape"] = {
            "given": {name: list(shape) for name, shape in shapes.items()},
            "arguments": {n: list(s) for n, s in zip(sym.list_arguments(), arg_shapes)},
            "outputs": [list(s) for s in out_shapes],
            "auxiliary_states": {n: list(s) for n, s in zip(sym.list_auxiliary_states(), aux_shapes)},
        }
    if infer_without_shapes:
        arg_types, out_types, aux_types = sym.infer_type()
        if arg_types is not None:
            expected["infer_type"] = {
                "arguments": {n: mx_type_name(t) for n, t in zip(sym.list_arguments(), arg_types)},
                "outputs": [mx_type_name(t) for t in out_types],
                "auxiliary_states": {n: mx_type_name(t) for n, t in zip(sym.list_auxiliary_states(), aux_types)},
            }
    expected["tojson"] = sym.tojson()
    return expected


def mx_type_name(numpy_type):
    return None if numpy_type is None else str(numpy_type.__name__)


def write_symbol(name, text, source, notes="", shapes=None, infer_without_shapes=False):
    """Write `text` as `<name>.json`, load it with mx.sym.load and write `<name>.expected.json`."""
    path = os.path.join(SYMBOLS_DIR, name + ".json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    sym = mx.sym.load(path)
    expected = {"file": name + ".json", "source": source, "mxnet_load": "ok"}
    expected.update(describe_symbol(sym, shapes, infer_without_shapes))
    expected["notes"] = notes
    write_json(os.path.join(SYMBOLS_DIR, name + ".expected.json"), expected)


def dumps(graph):
    return json.dumps(graph, indent=2) + "\n"


# ---------------------------------------------------------------------------
# Graphs written by MXNet 1.9.1


def conv_net():
    data = mx.sym.var("data")
    x = mx.sym.Convolution(data, kernel=(3, 3), pad=(1, 1), num_filter=8, name="conv0")
    x = mx.sym.BatchNorm(x, name="bn0")
    x = mx.sym.Activation(x, act_type="relu", name="relu0")
    x = mx.sym.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max", name="pool0")
    x = mx.sym.Flatten(x, name="flatten0")
    x = mx.sym.FullyConnected(x, num_hidden=10, name="fc0")
    return mx.sym.SoftmaxOutput(x, name="softmax")


def make_current():
    write_symbol(
        "conv_net",
        conv_net().tojson(),
        "mx.sym ... tojson() (MXNet 1.9.1)",
        "Convolution, BatchNorm, Activation, Pooling, Flatten, FullyConnected, SoftmaxOutput. "
        "softmax_label is an argument created by SoftmaxOutput.",
        shapes={"data": (1, 3, 8, 8)},
    )

    data = mx.sym.var("data")
    parts = mx.sym.SliceChannel(data, num_outputs=3, axis=1, name="split")
    bn = mx.sym.BatchNorm(parts[1], output_mean_var=True, name="bn")
    fc = mx.sym.FullyConnected(parts[2], num_hidden=4, name="fc")
    heads = mx.sym.Group([parts[0], parts[2], bn[0], bn[1], bn[2], data, fc, parts[0]])
    write_symbol(
        "multi_output",
        heads.tojson(),
        "mx.sym.Group(...).tojson() (MXNet 1.9.1)",
        "Heads: SliceChannel outputs 0 and 2, all three BatchNorm outputs (output_mean_var=True "
        "makes mean and var visible), the variable data itself, a FullyConnected, and "
        "SliceChannel output 0 a second time.",
        shapes={"data": (2, 6, 5)},
    )

    data = mx.sym.var("data")
    x = mx.sym.Convolution(data, kernel=(3, 3), num_filter=4, name="conv")
    x = mx.sym.BatchNorm(x, name="bn")
    x = mx.sym.Activation(x, act_type="relu", name="relu")
    x = mx.sym.FullyConnected(x, num_hidden=5, name="fc")
    x = mx.sym.Activation(x, act_type="relu", name="fc_relu")
    fused = x.get_backend_symbol("MKLDNN")
    write_symbol(
        "mkldnn_fused",
        fused.tojson(),
        "Symbol.get_backend_symbol('MKLDNN').tojson() (MXNet 1.9.1)",
        "FP32 graph after MXNet's MKLDNN fusion pass: _sg_mkldnn_conv and "
        "_sg_mkldnn_fully_connected nodes with a 'subgraphs' key holding the original "
        "operators. Subgraph variables are renamed (data0, conv_weight0, ...) and bind "
        "positionally to the outer node's inputs.",
        shapes={"data": (1, 3, 6, 6)},
    )


# ---------------------------------------------------------------------------
# Hand-written legacy graphs


def legacy_v0_8():
    """Return a 0.8-style graph: `param` and `attr` keys, 2-element entries, no graph attrs.

    Its BatchNorm node has only data, gamma and beta inputs, as 0.8 wrote it;
    the 0.9.0 upgrader in MXNet recreates moving_mean and moving_var.
    """
    def var(name, attr=None):
        node = {"op": "null", "param": {}, "name": name, "inputs": [], "backward_source_id": -1}
        if attr:
            node["attr"] = attr
        return node

    def op(op_name, name, params, inputs, attr=None):
        node = {"op": op_name, "param": params, "name": name, "inputs": inputs, "backward_source_id": -1}
        if attr:
            node["attr"] = attr
        return node

    nodes = [
        var("data"),
        var("conv1_weight", {"lr_mult": "1.0"}),
        var("conv1_bias"),
        op(
            "Convolution",
            "conv1",
            {
                "cudnn_off": "False",
                "cudnn_tune": "off",
                "dilate": "(1,1)",
                "kernel": "(3,3)",
                "no_bias": "False",
                "num_filter": "8",
                "num_group": "1",
                "pad": "(1,1)",
                "stride": "(1,1)",
                "workspace": "512",
            },
            [[0, 0], [1, 0], [2, 0]],
            {"ctx_group": "stage1"},
        ),
        var("bn1_gamma"),
        var("bn1_beta"),
        op(
            "BatchNorm",
            "bn1",
            {"eps": "0.001", "fix_gamma": "False", "momentum": "0.9", "use_global_stats": "False"},
            [[3, 0], [4, 0], [5, 0]],
        ),
        op("Activation", "relu1", {"act_type": "relu"}, [[6, 0]]),
        op(
            "Pooling",
            "pool1",
            {"kernel": "(2,2)", "pool_type": "max", "pad": "(0,0)", "stride": "(2,2)"},
            [[7, 0]],
        ),
        op("Flatten", "flatten1", {}, [[8, 0]]),
        var("fc1_weight"),
        var("fc1_bias"),
        op("FullyConnected", "fc1", {"no_bias": "False", "num_hidden": "10"}, [[9, 0], [10, 0], [11, 0]]),
        var("softmax_label"),
        op(
            "SoftmaxOutput",
            "softmax",
            {"grad_scale": "1", "ignore_label": "-1", "multi_output": "False", "normalization": "null", "use_ignore": "False"},
            [[12, 0], [13, 0]],
        ),
    ]
    arg_nodes = [i for i, node in enumerate(nodes) if node["op"] == "null"]
    return {"nodes": nodes, "arg_nodes": arg_nodes, "heads": [[14, 0]]}


def legacy_v0_9():
    """Return a 0.9.3-style graph: `attr` key, 3-element entries, mxnet_version 903.

    Files older than 0.9.4 get BatchNorm's __init__ hints added on load, and
    files older than 0.9.5 lose argmax's axis="-1".
    """
    nodes = [
        {"op": "null", "name": "data", "inputs": []},
        {"op": "null", "name": "fc_weight", "attr": {"num_hidden": "6"}, "inputs": []},
        {"op": "null", "name": "fc_bias", "attr": {"num_hidden": "6"}, "inputs": []},
        {"op": "FullyConnected", "name": "fc", "attr": {"num_hidden": "6"}, "inputs": [[0, 0, 0], [1, 0, 0], [2, 0, 0]]},
        {"op": "null", "name": "bn_gamma", "attr": {"fix_gamma": "True"}, "inputs": []},
        {"op": "null", "name": "bn_beta", "attr": {"fix_gamma": "True"}, "inputs": []},
        {"op": "null", "name": "bn_moving_mean", "attr": {"fix_gamma": "True"}, "inputs": []},
        {"op": "null", "name": "bn_moving_var", "attr": {"fix_gamma": "True"}, "inputs": []},
        {
            "op": "BatchNorm",
            "name": "bn",
            "attr": {"fix_gamma": "True"},
            "inputs": [[3, 0, 0], [4, 0, 0], [5, 0, 0], [6, 0, 0], [7, 0, 0]],
        },
        {"op": "Activation", "name": "act", "attr": {"act_type": "tanh"}, "inputs": [[8, 0, 0]]},
        {"op": "argmax", "name": "argmax", "attr": {"axis": "-1", "keepdims": "False"}, "inputs": [[9, 0, 0]]},
    ]
    return {
        "nodes": nodes,
        "arg_nodes": [0, 1, 2, 4, 5, 6, 7],
        "node_row_ptr": [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13],
        "heads": [[9, 0, 0], [10, 0, 0]],
        "attrs": {"mxnet_version": ["int", 903]},
    }


def hidden_attrs():
    """Return a 1.2-style graph with hidden and legacy-spelled attributes on variables and ops."""
    nodes = [
        {"op": "null", "name": "data", "attr": {"__shape__": "(1, 3, 8, 8)", "__dtype__": "0"}, "inputs": []},
        {
            "op": "null",
            "name": "conv_weight",
            "attr": {"lr_mult": "2.0", "wd_mult": "0.5", "__init__": '["normal", {"sigma": 0.01}]'},
            "inputs": [],
        },
        {"op": "null", "name": "conv_bias", "attr": {"__lr_mult__": "3.0"}, "inputs": []},
        {
            "op": "Convolution",
            "name": "conv",
            "attr": {
                "kernel": "(3, 3)",
                "num_filter": "4",
                "bias_wd_mult": "0.0",
                "ctx_group": "stage1",
                "__profiler_scope__": "conv:",
            },
            "inputs": [[0, 0, 0], [1, 0, 0], [2, 0, 0]],
        },
        {"op": "null", "name": "fc_weight", "attr": {"__wd_mult__": "0.1", "__storage_type__": "0"}, "inputs": []},
        {
            "op": "FullyConnected",
            "name": "fc",
            "attr": {"num_hidden": "3", "no_bias": "True", "lr_mult": "0.5", "__force_mirroring__": "True"},
            "inputs": [[3, 0, 0], [4, 0, 0]],
        },
    ]
    return {
        "nodes": nodes,
        "arg_nodes": [0, 1, 2, 4],
        "node_row_ptr": [0, 1, 2, 3, 4, 5, 6],
        "heads": [[5, 0, 0]],
        "attrs": {"mxnet_version": ["int", 10200]},
    }


def small_graph():
    """Return a current-format data -> FullyConnected graph used as the base of edge cases."""
    return {
        "nodes": [
            {"op": "null", "name": "data", "inputs": []},
            {"op": "null", "name": "fc_weight", "inputs": []},
            {"op": "null", "name": "fc_bias", "inputs": []},
            {"op": "FullyConnected", "name": "fc", "attrs": {"num_hidden": "4"}, "inputs": [[0, 0, 0], [1, 0, 0], [2, 0, 0]]},
        ],
        "arg_nodes": [0, 1, 2],
        "node_row_ptr": [0, 1, 2, 3, 4],
        "heads": [[3, 0, 0]],
        "attrs": {"mxnet_version": ["int", 10901]},
    }


def make_legacy():
    write_symbol(
        "legacy_v0_8",
        dumps(legacy_v0_8()),
        "hand-written in tools/fixtures_symbols.py (0.8 layout)",
        "No graph attrs, so MXNet treats the file as version 0.8.0 and runs every upgrader. "
        "Nodes use 'param' for operator parameters and 'attr' for ctx_group/lr_mult, entries "
        "are [node, output], and every node has backward_source_id -1. BatchNorm bn1 has 3 "
        "inputs; MXNet adds bn1_moving_mean and bn1_moving_var (see tojson).",
        shapes={"data": (1, 3, 8, 8)},
    )
    write_symbol(
        "legacy_v0_9",
        dumps(legacy_v0_9()),
        "hand-written in tools/fixtures_symbols.py (0.9.3 layout)",
        "'attr' key, 3-element entries, mxnet_version 903. On load, MXNet adds __init__ to "
        "bn_moving_mean/bn_moving_var (0.9.4 upgrader) and deletes argmax's axis=-1 "
        "(0.9.5 upgrader), so argmax reduces over all elements (see tojson and infer_shape).",
        shapes={"data": (2, 5)},
    )
    write_symbol(
        "hidden_attrs",
        dumps(hidden_attrs()),
        "hand-written in tools/fixtures_symbols.py (1.2 layout)",
        "mxnet_version 10200, so the 1.9.1 hidden-key upgrader runs: lr_mult/wd_mult/ctx_group "
        "spellings are rewritten (compare attr_dict and tojson with the file), bias_wd_mult on "
        "conv moves to conv_bias as __wd_mult__. data carries __shape__ and __dtype__, so "
        "infer_shape and infer_type are called with no arguments. attr_dict is what "
        "Symbol.attr_dict() returns, and it lists each __key__ a second time as key; tojson "
        "shows the attributes as stored.",
        infer_without_shapes=True,
    )

    graph = small_graph()
    graph["nodes"].insert(3, {"op": "_copy", "name": "copy", "inputs": [[0, 0, 0]]})
    graph["nodes"][4]["inputs"] = [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
    graph["nodes"][4]["control_deps"] = [3]
    graph["node_row_ptr"] = [0, 1, 2, 3, 4, 5]
    graph["heads"] = [[4, 0, 0]]
    write_symbol(
        "control_deps",
        dumps(graph),
        "hand-written in tools/fixtures_symbols.py",
        "fc has control_deps [3] on a _copy node that nothing else consumes. The Python API "
        "cannot create control dependencies, but the reader keeps them, and internals "
        "includes copy_output because the traversal follows control_deps.",
        shapes={"data": (2, 3)},
    )

    graph = small_graph()
    graph["nodes"].append({"op": "null", "name": "unused", "inputs": []})
    graph["nodes"].append({"op": "Activation", "name": "dead", "attrs": {"act_type": "relu"}, "inputs": [[4, 0, 0]]})
    graph["arg_nodes"].append(4)
    graph["node_row_ptr"] = [0, 1, 2, 3, 4, 5, 6]
    write_symbol(
        "unreachable_nodes",
        dumps(graph),
        "hand-written in tools/fixtures_symbols.py",
        "Nodes 4 (variable 'unused') and 5 (Activation 'dead') are not reachable from the "
        "heads; MXNet drops them silently (they are missing from every list and from tojson).",
        shapes={"data": (2, 3)},
    )

    graph = small_graph()
    graph["attrs"]["mxnet_version"] = ["int", 20000]
    del graph["node_row_ptr"]
    write_symbol(
        "newer_version",
        dumps(graph),
        "hand-written in tools/fixtures_symbols.py",
        "mxnet_version 20000 (newer than 1.9.1) only logs a warning; node_row_ptr is missing, "
        "which is allowed.",
        shapes={"data": (2, 3)},
    )

    graph = small_graph()
    fc = graph["nodes"][3]
    graph["nodes"][3] = {
        "op": "FullyConnected",
        "name": "fc",
        "attrs": {"num_hidden": "7", "flatten": "False"},
        "attr": {"num_hidden": "4"},
        "param": {"num_hidden": "9", "no_bias": "False"},
        "inputs": fc["inputs"],
    }
    write_symbol(
        "attr_key_precedence",
        dumps(graph),
        "hand-written in tools/fixtures_symbols.py",
        "fc has 'attrs', 'attr' and 'param' keys. The one of 'attrs'/'attr' that comes later "
        "in the text replaces the other; 'param' entries are merged in without overwriting. "
        "The resulting attributes are in attr_dict and tojson.",
        shapes={"data": (2, 3)},
    )


# ---------------------------------------------------------------------------
# Graphs MXNet rejects


def invalid_cases():
    cases = []

    def add(name, description, graph=None, text=None, probe=True):
        cases.append((name, description, dumps(graph) if text is None else text, probe))

    graph = small_graph()
    graph["nodes"][3]["inputs"][1] = [99, 0, 0]
    add("dangling_input", "fc input 1 refers to node 99; the graph has 4 nodes.", graph)

    graph = small_graph()
    graph["heads"] = [[7, 0, 0]]
    add("head_out_of_range", "The head refers to node 7; the graph has 4 nodes.", graph)

    graph = small_graph()
    graph["heads"] = [[3, 5, 0]]
    add(
        "head_output_index_out_of_range",
        "The head asks for output 5 of FullyConnected, which has 1 output. MXNet 1.9.1 loads it, "
        "then reads out of bounds: list_outputs has returned 'fc_' or aborted with "
        "std::length_error, and shape inference has returned an empty shape or ended in a "
        "segmentation fault, so only loading is recorded. A reader should reject it.",
        graph,
        probe=False,
    )

    graph = small_graph()
    graph["nodes"].append({"op": "Activation", "name": "a", "attrs": {"act_type": "relu"}, "inputs": [[5, 0, 0]]})
    graph["nodes"].append({"op": "Activation", "name": "b", "attrs": {"act_type": "relu"}, "inputs": [[4, 0, 0]]})
    graph["nodes"][3]["inputs"][0] = [5, 0, 0]
    graph["node_row_ptr"] = [0, 1, 2, 3, 4, 5, 6]
    add(
        "cycle",
        "Nodes a and b feed each other and fc reads b, so the graph has a cycle. MXNet 1.9.1 "
        "loads it (data is missing from the arguments) and fails only in shape inference. "
        "A reader should reject it.",
        graph,
    )

    graph = small_graph()
    graph["foo"] = 1
    add("unknown_top_level_key", "Top-level key 'foo' is not part of the format.", graph)

    graph = small_graph()
    graph["nodes"][3]["bar"] = "x"
    add("unknown_node_key", "Node key 'bar' is not part of the format.", graph)

    graph = small_graph()
    graph["nodes"][3]["attrs"]["num_hidden"] = 4
    add("non_string_attr_value", "Attribute num_hidden is the JSON number 4, not a string.", graph)

    graph = small_graph()
    graph["nodes"][3]["inputs"][0] = [0, 0, 0, 0]
    add("four_element_entry", "An input entry has 4 elements.", graph)

    graph = small_graph()
    graph["nodes"][3]["inputs"][0] = [0]
    add("one_element_entry", "An input entry has 1 element.", graph)

    graph = small_graph()
    graph["nodes"][0]["op"] = None
    add("json_null_op", "A variable has \"op\": null instead of the string \"null\".", graph)

    graph = small_graph()
    graph["nodes"][3]["op"] = "NoSuchOp"
    add("unknown_op", "Operator name NoSuchOp is not registered.", graph)

    graph = small_graph()
    graph["nodes"].append({"op": "Activation", "name": "act", "attrs": {"act_type": "Relu"}, "inputs": [[3, 0, 0]]})
    graph["heads"] = [[4, 0, 0]]
    graph["node_row_ptr"] = [0, 1, 2, 3, 4, 5]
    add("bad_enum_value", "act_type 'Relu' (enum values are case-sensitive).", graph)

    graph = small_graph()
    graph["nodes"][3]["attrs"]["foo"] = "1"
    add("unknown_parameter", "fc has parameter 'foo', which FullyConnected does not declare.", graph)

    graph = small_graph()
    graph["nodes"][3]["attrs"]["num_hidden"] = "4.0"
    add("bad_int_parameter", "num_hidden '4.0' is not an integer.", graph)

    graph = small_graph()
    del graph["nodes"][3]["attrs"]
    add("missing_required_parameter", "fc has no num_hidden, which FullyConnected requires.", graph)

    graph = small_graph()
    graph["arg_nodes"] = [0, 1, 3]
    add("arg_node_not_variable", "arg_nodes lists node 3, which is an operator.", graph)

    graph = small_graph()
    del graph["heads"]
    add("missing_heads", "The required key 'heads' is missing.", graph)

    graph = small_graph()
    graph["attrs"]["mxnet_version"] = 10901
    add("version_not_typed", "mxnet_version is a bare number instead of [\"int\", 10901].", graph)

    graph = small_graph()
    graph["attrs"]["extra"] = ["float", 1.5]
    add("unregistered_attr_type", "Graph attribute with type tag 'float', which is not registered.", graph)

    add("truncated_text", "The JSON text stops in the middle of the nodes array.", text=dumps(small_graph())[:120])
    return cases


# Child-process script: load one symbol file and print a JSON summary after a
# "RESULT " marker, because MXNet prints its own messages to stdout as well.
# The summary is printed after loading, after listing and after shape
# inference, so a crash in a later step still leaves the earlier results.
# `probe` False stops after loading.
LOAD_IN_CHILD = """
import json, sys
import mxnet as mx
probe = %r
result = {}
try:
    s = mx.sym.load(%r)
    result["mxnet_load"] = "ok"
except UnicodeDecodeError:
    result["mxnet_load"] = "error"
    result["mxnet_error"] = "(MXNet's error message contains bytes that are not UTF-8)"
except Exception as e:
    result["mxnet_load"] = "error"
    result["mxnet_error"] = str(e)
sys.stdout.write("\\nRESULT " + json.dumps(result))
sys.stdout.flush()
if result["mxnet_load"] == "ok" and probe:
    result["mxnet_result"] = {"arguments": s.list_arguments(), "outputs": s.list_outputs()}
    sys.stdout.write("\\nRESULT " + json.dumps(result))
    sys.stdout.flush()
    try:
        result["mxnet_result"]["infer_shape_outputs"] = s.infer_shape(data=(2, 3))[1]
    except Exception as e:
        result["mxnet_result"]["infer_shape_error"] = str(e)
    sys.stdout.write("\\nRESULT " + json.dumps(result))
"""


def make_invalid():
    ensure_dir(INVALID_DIR)
    manifest = []
    for name, description, text, probe in invalid_cases():
        path = os.path.join(INVALID_DIR, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        returncode, stdout, stderr = run_python_isolated(LOAD_IN_CHILD % (probe, path))
        entry = {"file": name + ".json", "description": description}
        marker = stdout.rfind("\nRESULT ")
        if returncode is None:
            entry.update({"mxnet_load": "timeout", "mxnet_error": stderr})
        elif marker < 0:
            entry.update({"mxnet_load": "crash", "mxnet_error": "exit status %s: %s" % (returncode, error_text(stderr[-3000:]))})
        else:
            result = json.loads(stdout[marker + len("\nRESULT ") :])
            if returncode != 0:
                result["crash_after_load"] = "exit status %s: %s" % (returncode, error_text(stderr[-3000:]))
            if "mxnet_error" in result:
                result["mxnet_error"] = error_text(result["mxnet_error"])
            if "infer_shape_error" in result.get("mxnet_result", {}):
                result["mxnet_result"]["infer_shape_error"] = error_text(result["mxnet_result"]["infer_shape_error"])
            entry.update(result)
        manifest.append(entry)
    write_json(os.path.join(INVALID_DIR, "manifest.json"), manifest)


def main():
    ensure_dir(SYMBOLS_DIR)
    make_current()
    make_legacy()
    make_invalid()
