"""Record MXNet 1.9.1's operator facts for tests/fixtures/symbols/sym_op_facts.json.

For each case the operator is created with no inputs given, so MXNet names
every input variable `n_<input name>`. The file records, per case, the input
names, which inputs are auxiliary states, the visible output names and the
total output count (from node_row_ptr). tests/op_catalog.rs compares the
operator catalog in src/ops/catalog.rs against it.

Run with an MXNet 1.9.1 install: python3 tools/symbol_op_facts.py
"""

import ctypes
import json
import os

import mxnet as mx
from mxnet.base import _LIB, SymbolHandle, c_array, c_str, check_call, mx_uint, py_str

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "symbols", "sym_op_facts.json")

# (operator name as written in symbol JSON, attributes as strings)
CASES = [
    ("Convolution", {"kernel": "(3, 3)", "num_filter": "4"}),
    ("Convolution", {"kernel": "(3, 3)", "num_filter": "4", "no_bias": "True"}),
    ("_npx_convolution", {"kernel": "(3, 3)", "num_filter": "4"}),
    ("Deconvolution", {"kernel": "(3, 3)", "num_filter": "4"}),
    ("Deconvolution", {"kernel": "(3, 3)", "num_filter": "4", "no_bias": "False"}),
    ("FullyConnected", {"num_hidden": "4"}),
    ("FullyConnected", {"num_hidden": "4", "no_bias": "true"}),
    ("BatchNorm", {}),
    ("BatchNorm", {"output_mean_var": "True"}),
    ("BatchNorm_v1", {}),
    ("_contrib_BatchNormWithReLU", {}),
    ("_contrib_SyncBatchNorm", {"key": "k"}),
    ("Activation", {"act_type": "relu"}),
    ("LeakyReLU", {}),
    ("LeakyReLU", {"act_type": "prelu"}),
    ("LeakyReLU", {"act_type": "rrelu"}),
    ("LeakyReLU", {"act_type": "elu"}),
    ("Pooling", {"kernel": "(2, 2)", "pool_type": "avg"}),
    ("Flatten", {}),
    ("flatten", {}),
    ("Reshape", {"shape": "(1, -1)"}),
    ("transpose", {}),
    ("SwapAxis", {}),
    ("expand_dims", {"axis": "0"}),
    ("squeeze", {}),
    ("Concat", {"num_args": "3"}),
    ("concat", {"num_args": "1", "dim": "0"}),
    ("add_n", {"num_args": "2"}),
    ("ElementWiseSum", {"num_args": "3"}),
    ("stack", {"num_args": "2"}),
    ("elemwise_add", {}),
    ("elemwise_sub", {}),
    ("elemwise_mul", {}),
    ("elemwise_div", {}),
    ("_plus", {}),
    ("_Plus", {}),
    ("_maximum", {}),
    ("_minimum", {}),
    ("broadcast_add", {}),
    ("broadcast_plus", {}),
    ("broadcast_sub", {}),
    ("broadcast_minus", {}),
    ("broadcast_mul", {}),
    ("broadcast_div", {}),
    ("broadcast_maximum", {}),
    ("broadcast_minimum", {}),
    ("broadcast_power", {}),
    ("broadcast_equal", {}),
    ("broadcast_greater", {}),
    ("broadcast_lesser", {}),
    ("broadcast_to", {"shape": "(2, 2)"}),
    ("broadcast_like", {}),
    ("broadcast_axis", {"axis": "0", "size": "2"}),
    ("_plus_scalar", {"scalar": "1"}),
    ("_PlusScalar", {"scalar": "1"}),
    ("_minus_scalar", {"scalar": "1"}),
    ("_rminus_scalar", {"scalar": "1"}),
    ("_mul_scalar", {"scalar": "2"}),
    ("_div_scalar", {"scalar": "2"}),
    ("_rdiv_scalar", {"scalar": "2"}),
    ("_power_scalar", {"scalar": "2"}),
    ("_rpower_scalar", {"scalar": "2"}),
    ("_maximum_scalar", {"scalar": "0"}),
    ("_minimum_scalar", {"scalar": "0"}),
    ("_equal_scalar", {"scalar": "0"}),
    ("_greater_scalar", {"scalar": "0"}),
    ("_lesser_scalar", {"scalar": "0"}),
    ("clip", {"a_min": "0", "a_max": "1"}),
    ("Dropout", {}),
    ("softmax", {}),
    ("softmax", {"use_length": "True"}),
    ("log_softmax", {}),
    ("SoftmaxActivation", {}),
    ("SoftmaxOutput", {}),
    ("Softmax", {}),
    ("LinearRegressionOutput", {}),
    ("LogisticRegressionOutput", {}),
    ("MAERegressionOutput", {}),
    ("MakeLoss", {}),
    ("slice", {"begin": "(0,)", "end": "(1,)"}),
    ("crop", {"begin": "(0,)", "end": "(1,)"}),
    ("slice_axis", {"axis": "0", "begin": "0", "end": "1"}),
    ("slice_like", {}),
    ("SliceChannel", {"num_outputs": "3"}),
    ("SliceChannel", {"num_outputs": "1"}),
    ("split", {"num_outputs": "2"}),
    ("UpSampling", {"scale": "2", "sample_type": "nearest", "num_args": "1"}),
    ("UpSampling", {"scale": "2", "sample_type": "nearest", "num_args": "2"}),
    ("UpSampling", {"scale": "2", "sample_type": "bilinear", "num_filter": "2", "num_args": "1"}),
    ("_contrib_BilinearResize2D", {"height": "2", "width": "2"}),
    ("_contrib_BilinearResize2D", {"mode": "like"}),
    ("Pad", {"mode": "constant", "pad_width": "(0, 0, 0, 0, 1, 1, 1, 1)"}),
    ("Embedding", {"input_dim": "3", "output_dim": "2"}),
    ("Cast", {"dtype": "float16"}),
    ("cast", {"dtype": "float16"}),
    ("mean", {}),
    ("sum", {}),
    ("sum_axis", {}),
    ("max", {}),
    ("min", {}),
    ("prod", {}),
    ("norm", {}),
    ("argmax", {"axis": "1"}),
    ("argmin", {"axis": "1"}),
    ("RNN", {"state_size": "4", "num_layers": "1", "mode": "lstm"}),
    ("RNN", {"state_size": "4", "num_layers": "1", "mode": "lstm", "state_outputs": "True"}),
    ("RNN", {"state_size": "4", "num_layers": "1", "mode": "gru", "state_outputs": "True"}),
    ("RNN", {"state_size": "4", "num_layers": "1", "mode": "rnn_tanh"}),
    ("RNN", {"state_size": "4", "num_layers": "1", "mode": "rnn_relu", "state_outputs": "1"}),
    ("RNN", {"state_size": "4", "num_layers": "1", "mode": "lstm", "use_sequence_length": "True"}),
    ("_copy", {}),
    ("identity", {}),
    ("zeros_like", {}),
    ("ones_like", {}),
    ("BlockGrad", {}),
    ("stop_gradient", {}),
    ("L2Normalization", {}),
    ("LRN", {"nsize": "3"}),
    ("InstanceNorm", {}),
    ("LayerNorm", {}),
    ("LayerNorm", {"output_mean_var": "True"}),
    ("GroupNorm", {}),
    ("GroupNorm", {"output_mean_var": "True"}),
    ("relu", {}),
    ("sigmoid", {}),
    ("tanh", {}),
    ("exp", {}),
    ("log", {}),
    ("sqrt", {}),
    ("rsqrt", {}),
    ("square", {}),
    ("abs", {}),
    ("negative", {}),
    ("reciprocal", {}),
    ("softsign", {}),
    ("hard_sigmoid", {}),
    ("erf", {}),
    ("floor", {}),
    ("ceil", {}),
    ("round", {}),
    ("sign", {}),
    ("dot", {}),
    ("batch_dot", {}),
    ("where", {}),
    ("tile", {"reps": "(2,)"}),
    ("repeat", {"repeats": "2"}),
    ("take", {}),
    ("pick", {}),
    ("one_hot", {"depth": "3"}),
    ("topk", {}),
    ("topk", {"ret_typ": "both"}),
    ("sort", {}),
    ("argsort", {}),
    ("SequenceMask", {}),
    ("SequenceMask", {"use_sequence_length": "True"}),
    ("Crop", {"num_args": "2"}),
    ("ROIPooling", {"pooled_size": "(2, 2)", "spatial_scale": "1.0"}),
    ("IdentityAttachKLSparseReg", {}),
    ("_contrib_quantize", {}),
    ("_contrib_quantize_v2", {}),
    ("_contrib_quantize_asym", {}),
    ("_contrib_dequantize", {}),
    ("_contrib_requantize", {}),
    ("_contrib_quantized_conv", {"kernel": "(3, 3)", "num_filter": "4"}),
    ("_contrib_quantized_conv", {"kernel": "(3, 3)", "num_filter": "4", "no_bias": "True"}),
    ("_contrib_quantized_fully_connected", {"num_hidden": "4"}),
    ("_contrib_quantized_fully_connected", {"num_hidden": "4", "no_bias": "True"}),
    ("_contrib_quantized_pooling", {"kernel": "(2, 2)"}),
    ("_contrib_quantized_flatten", {}),
    ("_contrib_quantized_act", {"act_type": "relu"}),
    ("_contrib_quantized_concat", {"num_args": "2"}),
    ("_contrib_quantized_concat", {"num_args": "3", "dim": "1"}),
    ("_contrib_quantized_elemwise_add", {}),
    ("_contrib_quantized_elemwise_mul", {}),
    ("_contrib_quantized_elemwise_mul", {"enable_float_output": "True"}),
    ("_contrib_quantized_elemwise_mul", {"min_calib_range": "-1", "max_calib_range": "1"}),
    ("_contrib_quantized_batch_norm", {}),
    ("_contrib_quantized_embedding", {"input_dim": "3", "output_dim": "2"}),
    ("_contrib_quantized_rnn", {"state_size": "4", "num_layers": "1", "mode": "lstm"}),
]


def create_symbol(op_name, attrs, name):
    """Create and compose one operator node through the C API, as the Python
    frontend does, so that aliases such as `_npx_convolution` work too."""
    handle = ctypes.c_void_p()
    check_call(_LIB.NNGetOpHandle(c_str(op_name), ctypes.byref(handle)))
    keys = [c_str(k) for k in attrs]
    vals = [c_str(str(v)) for v in attrs.values()]
    sym_handle = SymbolHandle()
    check_call(
        _LIB.MXSymbolCreateAtomicSymbol(
            handle, mx_uint(len(keys)), c_array(ctypes.c_char_p, keys), c_array(ctypes.c_char_p, vals), ctypes.byref(sym_handle)
        )
    )
    sym = mx.sym.Symbol(sym_handle)
    check_call(_LIB.NNSymbolCompose(sym_handle, c_str(name), mx_uint(0), None, None))
    return sym


def record(op_name, attrs):
    sym = create_symbol(op_name, attrs, "n")
    graph = json.loads(sym.tojson())
    head = graph["heads"][0][0]
    node = graph["nodes"][head]
    row = graph["node_row_ptr"]
    strip = lambda names: [n[len("n_"):] if n.startswith("n_") else n for n in names]
    return {
        "op": op_name,
        "canonical": node["op"],
        "attrs": attrs,
        "inputs": strip(graph["nodes"][e[0]]["name"] for e in node["inputs"]),
        "aux": strip(sym.list_auxiliary_states()),
        "visible_outputs": strip(sym.list_outputs()),
        "total_outputs": row[head + 1] - row[head],
    }


def aliases_by_canonical():
    """Map each canonical operator name to every name it is registered under."""
    count = mx_uint()
    names = ctypes.POINTER(ctypes.c_char_p)()
    check_call(_LIB.MXListAllOpNames(ctypes.byref(count), ctypes.byref(names)))
    result = {}
    for i in range(count.value):
        name = py_str(names[i])
        handle = ctypes.c_void_p()
        check_call(_LIB.NNGetOpHandle(c_str(name), ctypes.byref(handle)))
        canonical = ctypes.c_char_p()
        check_call(_LIB.MXSymbolGetAtomicSymbolName(handle, ctypes.byref(canonical)))
        result.setdefault(py_str(canonical.value), []).append(name)
    return {k: sorted(v) for k, v in result.items()}


def main():
    facts = [record(op, attrs) for op, attrs in CASES]
    # Every name of every registered operator, so the test can check aliases
    # and that canonical names are spelled as MXNet spells them.
    registered = aliases_by_canonical()
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"mxnet_version": mx.__version__, "cases": facts, "names": registered}, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote %d cases to %s" % (len(facts), os.path.normpath(OUT)))


if __name__ == "__main__":
    main()
