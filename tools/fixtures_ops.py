"""Part `ops`: single-operator graphs with odd shapes and MXNet 1.9.1's outputs.

Each case directory tests/fixtures/ops/<case>/ has the same layout as a
model fixture:
    <case>-symbol.json   the graph (one to three operators)
    <case>-0000.params   weights and aux states as arg:<name> / aux:<name>
                         (an empty list when the operator has none)
    <case>-io.params     data inputs under their variable names, then
                         output0, output1, ... in MXNet's output dtype
    <case>-meta.json     inputs, dtypes, argument/aux/output lists, checks

Golden outputs come from simple_bind with MXNET_SUBGRAPH_BACKEND=NONE and
is_train=False. Some cases are also checked against a numpy computation in
this file; the meta `checks` records every comparison.
"""

import json
import logging
import math
import os

import numpy as np

import mxnet as mx

from fixture_util import (
    FIXTURES,
    dtype_name,
    ensure_dir,
    error_text,
    max_abs_diff,
    remove_stale_dirs,
    record_native_check,
    rng_for,
    run_native_cpu,
    run_symbol,
    write_json,
)

OPS_DIR = os.path.join(FIXTURES, "ops")
sym = mx.sym


class Case:
    """One operator fixture: a symbol, its data inputs and how to fill them."""

    def __init__(
        self,
        name,
        symbol,
        data,
        notes="",
        dtypes=None,
        data_values=None,
        param_values=None,
        reference=None,
        op_aliases=None,
        mkldnn_fails=False,
    ):
        self.name = name
        self.symbol = symbol
        self.data = data  # variable name -> shape
        self.notes = notes
        self.dtypes = dtypes or {}  # variable name -> dtype name, default float32
        self.data_values = data_values or {}  # variable name -> function(rs, shape) -> array
        self.param_values = param_values or {}  # argument name -> function(rs, shape) -> array
        self.reference = reference  # function(inputs, params) -> list of numpy outputs
        self.op_aliases = op_aliases or {}  # operator name in the JSON -> alias written instead
        # True when MXNet 1.9.1's MKLDNN kernel fails on this case, so the
        # golden outputs come from its native CPU kernel (MXNET_MKLDNN_ENABLED=0).
        self.mkldnn_fails = mkldnn_fails


# ---------------------------------------------------------------------------
# numpy references


def conv2d_reference(x, w, b, stride=(1, 1), pad=(0, 0), dilate=(1, 1), groups=1):
    """Compute an NCHW convolution directly from its definition (cross-correlation)."""
    n, c, h, width = x.shape
    f, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    out_h = (h + 2 * pad[0] - dilate[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (width + 2 * pad[1] - dilate[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, f, out_h, out_w), dtype=np.float64)
    fg = f // groups
    for g in range(groups):
        for oc in range(g * fg, (g + 1) * fg):
            for i in range(kh):
                for j in range(kw):
                    rows = xp[:, g * cg : (g + 1) * cg, i * dilate[0] : i * dilate[0] + stride[0] * out_h : stride[0]]
                    patch = rows[:, :, :out_h, j * dilate[1] : j * dilate[1] + stride[1] * out_w : stride[1]][:, :, :, :out_w]
                    out[:, oc] += np.einsum("nchw,c->nhw", patch, w[oc, :, i, j])
            if b is not None:
                out[:, oc] += b[oc]
    return out


def fc_reference(x, w, b, flatten=True):
    if flatten:
        x = x.reshape(x.shape[0], -1)
    out = x.astype(np.float64) @ w.T.astype(np.float64)
    return out if b is None else out + b


def batch_norm_reference(x, gamma, beta, mean, var, eps=1e-3, axis=1, fix_gamma=True):
    shape = [1] * x.ndim
    shape[axis] = -1
    if fix_gamma:
        gamma = np.ones_like(gamma)
    scale = gamma / np.sqrt(var.astype(np.float64) + eps)
    return (x - mean.reshape(shape)) * scale.reshape(shape) + beta.reshape(shape)


def rnn_reference(mode, layers, bidirectional, state_size, data, parameters, state, state_cell=None):
    """Run MXNet's fused RNN operator in numpy (TNC layout), returning (output, hy, cy).

    MXNet's flat parameter vector first holds the weights, for each layer
    and direction in turn: W_i2h (gates*H, input), then W_h2h (gates*H, H).
    The biases follow in the same order, b_i2h then b_h2h. Gate order is
    i, f, g, o for LSTM and r, z, n for GRU, where
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
    """
    gates = {"lstm": 4, "gru": 3, "rnn_relu": 1, "rnn_tanh": 1}[mode]
    hidden = state_size
    directions = 2 if bidirectional else 1
    parameters = parameters.astype(np.float64)
    offset = 0
    weights = []
    for layer in range(layers):
        input_size = data.shape[2] if layer == 0 else hidden * directions
        for _ in range(directions):
            w_i2h = parameters[offset : offset + gates * hidden * input_size].reshape(gates * hidden, input_size)
            offset += gates * hidden * input_size
            w_h2h = parameters[offset : offset + gates * hidden * hidden].reshape(gates * hidden, hidden)
            offset += gates * hidden * hidden
            weights.append([w_i2h, w_h2h])
    for index in range(layers * directions):
        b_i2h = parameters[offset : offset + gates * hidden]
        offset += gates * hidden
        b_h2h = parameters[offset : offset + gates * hidden]
        offset += gates * hidden
        weights[index] += [b_i2h, b_h2h]
    if offset != parameters.size:
        raise ValueError("RNN parameter vector has %d elements, layout needs %d" % (parameters.size, offset))

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    def step(x, h, c, w_i2h, w_h2h, b_i2h, b_h2h):
        gi = x @ w_i2h.T + b_i2h
        gh = h @ w_h2h.T + b_h2h
        if mode == "lstm":
            i, f, g, o = np.split(gi + gh, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            return sigmoid(o) * np.tanh(c), c
        if mode == "gru":
            r_i, z_i, n_i = np.split(gi, 3, axis=1)
            r_h, z_h, n_h = np.split(gh, 3, axis=1)
            r = sigmoid(r_i + r_h)
            z = sigmoid(z_i + z_h)
            n = np.tanh(n_i + r * n_h)
            return (1 - z) * n + z * h, c
        pre = gi + gh
        return (np.maximum(pre, 0) if mode == "rnn_relu" else np.tanh(pre)), c

    sequence = data.astype(np.float64)
    hy, cy = [], []
    for layer in range(layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            h = state[index].astype(np.float64)
            c = state_cell[index].astype(np.float64) if state_cell is not None else None
            steps = range(sequence.shape[0]) if direction == 0 else reversed(range(sequence.shape[0]))
            out = np.zeros(sequence.shape[:2] + (hidden,))
            for t in steps:
                h, c = step(sequence[t], h, c, *weights[index])
                out[t] = h
            outputs.append(out)
            hy.append(h)
            cy.append(c)
        sequence = np.concatenate(outputs, axis=2)
    return sequence, np.stack(hy), (np.stack(cy) if state_cell is not None else None)


ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "softrelu": lambda x: np.log1p(np.exp(x)),
    "softsign": lambda x: x / (1 + np.abs(x)),
}


# ---------------------------------------------------------------------------
# Value generators


def positive(rs, shape):
    return rs.uniform(0.5, 2.0, shape)


def away_from_zero(rs, shape):
    return rs.uniform(0.5, 2.0, shape) * rs.choice([-1.0, 1.0], shape)


def indices(upper):
    return lambda rs, shape: rs.randint(0, upper, shape).astype(np.float64)


def default_param(name, rs, shape):
    if name.endswith("moving_var"):
        return rs.uniform(0.5, 2.0, shape)
    if name.endswith("gamma"):
        return rs.uniform(0.5, 1.5, shape)
    if name.endswith("moving_mean") or name.endswith("beta") or name.endswith("bias"):
        return rs.normal(0.0, 0.5, shape)
    if name.endswith("parameters"):  # RNN's flat parameter vector
        return rs.normal(0.0, 0.3, shape)
    return rs.normal(0.0, 0.5, shape)


# ---------------------------------------------------------------------------
# Case list


def var(name="data"):
    return sym.var(name)


def convolution_cases():
    x = var()
    cases = [
        Case("conv_3x3_pad", sym.Convolution(x, kernel=(3, 3), pad=(1, 1), num_filter=4, name="conv"), {"data": (2, 3, 5, 7)}),
        Case(
            "conv_stride_pad_rect",
            sym.Convolution(x, kernel=(3, 2), stride=(2, 3), pad=(1, 0), num_filter=5, name="conv"),
            {"data": (1, 3, 7, 8)},
        ),
        Case(
            "conv_dilate",
            sym.Convolution(x, kernel=(3, 3), dilate=(2, 1), pad=(2, 1), num_filter=4, name="conv"),
            {"data": (1, 3, 7, 5)},
        ),
        Case("conv_groups", sym.Convolution(x, kernel=(3, 3), num_group=3, num_filter=9, name="conv"), {"data": (1, 6, 5, 7)}),
        Case(
            "conv_depthwise",
            sym.Convolution(x, kernel=(3, 3), pad=(1, 1), num_group=7, num_filter=7, name="conv"),
            {"data": (1, 7, 5, 7)},
        ),
        Case(
            "conv_depthwise_multiplier",
            sym.Convolution(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_group=7, num_filter=14, name="conv"),
            {"data": (1, 7, 5, 7)},
            "Grouped convolution with 2 output channels per input channel.",
        ),
        Case("conv_no_bias", sym.Convolution(x, kernel=(3, 3), num_filter=3, no_bias=True, name="conv"), {"data": (1, 3, 5, 7)}),
        Case("conv_1x1", sym.Convolution(x, kernel=(1, 1), num_filter=5, name="conv"), {"data": (2, 7, 5, 3)}),
        Case("conv_5x5_no_pad", sym.Convolution(x, kernel=(5, 5), num_filter=2, name="conv"), {"data": (1, 3, 5, 7)}),
        Case("conv_1d", sym.Convolution(x, kernel=(3,), stride=(2,), pad=(1,), num_filter=4, name="conv"), {"data": (2, 3, 9)}),
        Case("conv_3d", sym.Convolution(x, kernel=(2, 3, 3), pad=(0, 1, 1), num_filter=3, name="conv"), {"data": (1, 2, 4, 5, 6)}),
    ]
    for case in cases:
        attrs = case.symbol.list_attr()
        kernel = eval(attrs["kernel"])
        if len(kernel) != 2:
            continue
        case.reference = make_conv_reference(attrs)
    return cases


def make_conv_reference(attrs):
    def tuple_attr(key, default):
        return tuple(eval(attrs[key])) if key in attrs else default

    def reference(inputs, params):
        return [
            conv2d_reference(
                inputs["data"],
                params["conv_weight"],
                params.get("conv_bias"),
                stride=tuple_attr("stride", (1, 1)),
                pad=tuple_attr("pad", (0, 0)),
                dilate=tuple_attr("dilate", (1, 1)),
                groups=int(attrs.get("num_group", 1)),
            )
        ]

    return reference


def deconvolution_cases():
    x = var()
    return [
        Case(
            "deconv_3x3",
            sym.Deconvolution(x, kernel=(3, 3), num_filter=4, name="deconv"),
            {"data": (1, 3, 5, 7)},
            "Deconvolution's no_bias defaults to True in MXNet 1.9.1, so this case has no bias.",
        ),
        Case(
            "deconv_stride_pad_adj",
            sym.Deconvolution(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), adj=(1, 0), num_filter=3, no_bias=False, name="deconv"),
            {"data": (1, 3, 5, 7)},
        ),
        Case(
            "deconv_groups",
            sym.Deconvolution(x, kernel=(3, 2), stride=(1, 2), num_group=3, num_filter=6, no_bias=False, name="deconv"),
            {"data": (2, 6, 5, 4)},
            "Weight shape is (in_channels, num_filter / num_group, kh, kw).",
        ),
        Case(
            "deconv_target_shape",
            sym.Deconvolution(x, kernel=(4, 4), stride=(2, 2), target_shape=(11, 15), num_filter=2, name="deconv"),
            {"data": (1, 3, 5, 7)},
            "target_shape (11, 15) makes MXNet derive the padding. MXNet 1.9.1's MKLDNN kernel "
            "fails on it (see checks), as on (10, 14), while (12, 16), which needs no padding, "
            "runs. The golden outputs come from its native CPU kernel (MXNET_MKLDNN_ENABLED=0).",
            mkldnn_fails=True,
        ),
        Case(
            "deconv_dilate",
            sym.Deconvolution(x, kernel=(3, 3), dilate=(2, 2), num_filter=2, no_bias=False, name="deconv"),
            {"data": (1, 2, 4, 5)},
        ),
    ]


def fully_connected_cases():
    x = var()

    def reference(flatten, bias=True):
        return lambda inputs, params: [fc_reference(inputs["data"], params["fc_weight"], params.get("fc_bias") if bias else None, flatten)]

    return [
        Case("fc_flatten", sym.FullyConnected(x, num_hidden=7, name="fc"), {"data": (2, 3, 4, 5)}, reference=reference(True)),
        Case(
            "fc_no_flatten",
            sym.FullyConnected(x, num_hidden=7, flatten=False, name="fc"),
            {"data": (2, 3, 5)},
            "flatten=False applies the layer to the last axis only.",
            reference=reference(False),
        ),
        Case("fc_no_bias", sym.FullyConnected(x, num_hidden=3, no_bias=True, name="fc"), {"data": (5, 7)}, reference=reference(True, False)),
    ]


def batch_norm_cases():
    x = var()

    def reference(axis=1, fix_gamma=True, eps=1e-3):
        def compute(inputs, params):
            return [
                batch_norm_reference(
                    inputs["data"],
                    params["bn_gamma"],
                    params["bn_beta"],
                    params["bn_moving_mean"],
                    params["bn_moving_var"],
                    eps=eps,
                    axis=axis,
                    fix_gamma=fix_gamma,
                )
            ]

        return compute

    return [
        Case(
            "bn_default",
            sym.BatchNorm(x, name="bn"),
            {"data": (2, 3, 5, 7)},
            "Symbol BatchNorm defaults: fix_gamma=True (gamma is treated as 1 whatever its value), eps=0.001.",
            reference=reference(),
        ),
        Case("bn_fix_gamma_false", sym.BatchNorm(x, fix_gamma=False, name="bn"), {"data": (2, 3, 5, 7)}, reference=reference(fix_gamma=False)),
        Case(
            "bn_use_global_stats",
            sym.BatchNorm(x, fix_gamma=False, use_global_stats=True, eps=1e-5, name="bn"),
            {"data": (1, 7, 3, 5)},
            reference=reference(fix_gamma=False, eps=1e-5),
        ),
        Case(
            "bn_axis_last",
            sym.BatchNorm(x, fix_gamma=False, axis=-1, name="bn"),
            {"data": (2, 5, 7, 3)},
            "axis=-1: channels last.",
            reference=reference(axis=3, fix_gamma=False),
        ),
        Case(
            "bn_axis3",
            sym.BatchNorm(x, fix_gamma=False, axis=3, eps=0.1, name="bn"),
            {"data": (2, 5, 3, 7)},
            reference=reference(axis=3, fix_gamma=False, eps=0.1),
        ),
        Case(
            "bn_2d_input",
            sym.BatchNorm(x, fix_gamma=False, name="bn"),
            {"data": (4, 6)},
            "BatchNorm on a 2-D (N, C) input.",
            reference=reference(fix_gamma=False),
        ),
        Case(
            "bn_output_mean_var",
            sym.BatchNorm(x, fix_gamma=False, output_mean_var=True, name="bn"),
            {"data": (2, 3, 5, 7)},
            "output_mean_var=True gives three outputs. At inference MXNet 1.9.1 returns moving_mean as "
            "output1 and 1 / sqrt(moving_var + eps) (not the variance) as output2.",
        ),
    ]


def activation_cases():
    cases = []
    for act in ["relu", "sigmoid", "tanh", "softrelu", "softsign"]:
        function = ACTIVATIONS[act]
        cases.append(
            Case(
                "act_" + act,
                sym.Activation(var(), act_type=act, name="act"),
                {"data": (2, 3, 5, 7)},
                data_values={"data": lambda rs, shape: rs.normal(0.0, 3.0, shape)},
                reference=lambda inputs, params, f=function: [f(inputs["data"].astype(np.float64))],
            )
        )
    x = var()

    def elementwise(function):
        return lambda inputs, params: [function(inputs["data"].astype(np.float64))]

    def negative_part(x, values):
        return np.where(x > 0, x, values)

    selu_alpha, selu_lambda = 1.6732632423543772, 1.0507009873554805
    erf = np.vectorize(math.erf)
    cases += [
        Case(
            "leaky_relu",
            sym.LeakyReLU(x, act_type="leaky", slope=0.1, name="act"),
            {"data": (2, 3, 5, 7)},
            reference=elementwise(lambda v: negative_part(v, 0.1 * v)),
        ),
        Case(
            "prelu",
            sym.LeakyReLU(x, act_type="prelu", name="act"),
            {"data": (2, 3, 5, 7)},
            "prelu learns one slope per channel (act_gamma, shape (C,)).",
            param_values={"act_gamma": lambda rs, shape: rs.uniform(0.05, 0.5, shape)},
            reference=lambda inputs, params: [
                negative_part(inputs["data"], inputs["data"] * params["act_gamma"].reshape(1, -1, 1, 1).astype(np.float64))
            ],
        ),
        Case(
            "elu",
            sym.LeakyReLU(x, act_type="elu", slope=0.7, name="act"),
            {"data": (2, 3, 5, 7)},
            reference=elementwise(lambda v: negative_part(v, 0.7 * np.expm1(v))),
        ),
        Case(
            "selu",
            sym.LeakyReLU(x, act_type="selu", name="act"),
            {"data": (2, 3, 5, 7)},
            reference=elementwise(lambda v: selu_lambda * negative_part(v, selu_alpha * np.expm1(v))),
        ),
        Case(
            "gelu",
            sym.LeakyReLU(x, act_type="gelu", name="act"),
            {"data": (2, 3, 5, 7)},
            "Checked against the erf form 0.5 x (1 + erf(x / sqrt(2))).",
            reference=elementwise(lambda v: 0.5 * v * (1 + erf(v / math.sqrt(2)))),
        ),
        Case(
            "rrelu",
            sym.LeakyReLU(x, act_type="rrelu", lower_bound=0.1, upper_bound=0.3, name="act")[0],
            {"data": (2, 3, 5, 7)},
            "rrelu at inference uses the fixed slope (lower_bound + upper_bound) / 2. The operator has "
            "a second visible output, act_mask, which MXNet 1.9.1 leaves uninitialized at inference, "
            "so the graph's only head is output 0.",
            reference=elementwise(lambda v: negative_part(v, 0.2 * v)),
        ),
    ]
    return cases


def pooling_cases():
    x = var()

    def pool(**kwargs):
        return sym.Pooling(x, name="pool", **kwargs)

    return [
        Case("pool_max_3x3_s2", pool(kernel=(3, 3), stride=(2, 2), pool_type="max"), {"data": (1, 3, 7, 9)}),
        Case("pool_max_pad", pool(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max"), {"data": (2, 3, 5, 7)}),
        Case(
            "pool_avg_include_pad",
            pool(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", count_include_pad=True),
            {"data": (1, 3, 5, 7)},
        ),
        Case(
            "pool_avg_exclude_pad",
            pool(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", count_include_pad=False),
            {"data": (1, 3, 5, 7)},
        ),
        Case("pool_sum", pool(kernel=(2, 3), stride=(1, 2), pool_type="sum"), {"data": (1, 3, 5, 7)}),
        Case("pool_lp_p2", pool(kernel=(2, 2), stride=(2, 2), pool_type="lp", p_value=2), {"data": (1, 3, 6, 7)}),
        Case("pool_lp_p3", pool(kernel=(3, 3), stride=(2, 2), pool_type="lp", p_value=3), {"data": (1, 3, 7, 7)}),
        Case("pool_global_max", pool(kernel=(1, 1), global_pool=True, pool_type="max"), {"data": (2, 3, 5, 7)}),
        Case("pool_global_avg", pool(kernel=(1, 1), global_pool=True, pool_type="avg"), {"data": (2, 3, 5, 7)}),
        Case(
            "pool_max_full",
            pool(kernel=(3, 3), stride=(2, 2), pool_type="max", pooling_convention="full"),
            {"data": (1, 3, 8, 10)},
            "pooling_convention full: output size rounds up (ceil); the last window hangs over the edge.",
        ),
        Case(
            "pool_avg_full",
            pool(kernel=(3, 3), stride=(2, 2), pool_type="avg", pooling_convention="full"),
            {"data": (1, 3, 8, 10)},
            "Average pooling with the full convention: the windows that hang over the edge.",
        ),
        Case(
            "pool_avg_full_exclude_pad",
            pool(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", pooling_convention="full", count_include_pad=False),
            {"data": (1, 3, 8, 10)},
        ),
        # NOTE: no case for pooling_convention="same". MXNet 1.9.1 rejects it on 2-D input
        # ("Currently 'same' supports Max Pooling 1-D") and fails its own shape inference on
        # 1-D input ("index = 1 must be in range [0, 1)"), so it has no output to record.
        Case("pool_max_1d", pool(kernel=(3,), stride=(2,), pool_type="max"), {"data": (2, 3, 9)}),
        Case("pool_avg_3d", pool(kernel=(2, 2, 2), stride=(1, 2, 2), pool_type="avg"), {"data": (1, 2, 3, 5, 6)}),
    ]


def shape_cases():
    x = var()
    data = {"data": (2, 3, 4, 5)}
    return [
        Case("flatten", sym.Flatten(x, name="flat"), data),
        Case("reshape_0_m1", sym.Reshape(x, shape=(0, -1), name="reshape"), data, "shape (0, -1): keep dim 0, infer the rest."),
        Case("reshape_m2", sym.Reshape(x, shape=(-2, 1, 1), name="reshape"), data, "shape (-2, 1, 1): -2 copies all remaining input dims, then two new dims of 1."),
        Case("reshape_m3", sym.Reshape(x, shape=(-3, 0, 0), name="reshape"), data, "shape (-3, 0, 0): merge dims 0 and 1."),
        Case("reshape_m4", sym.Reshape(x, shape=(0, -4, 1, -1, 0, 0), name="reshape"), data, "-4 splits dim 1 into (1, 3)."),
        Case("reshape_m4_infer", sym.Reshape(x, shape=(-4, -1, 1, -2), name="reshape"), data, "-4 with -1 splits dim 0 into (2, 1)."),
        Case(
            "reshape_reverse",
            sym.Reshape(x, shape=(-1, 0), reverse=True, name="reshape"),
            data,
            "reverse=True matches special codes from the right: (-1, 0) keeps the last dim.",
        ),
        Case("reshape_plain", sym.Reshape(x, shape=(5, 24), name="reshape"), data),
        Case("transpose_axes", sym.transpose(x, axes=(0, 2, 3, 1), name="transpose"), data),
        Case("transpose_default", sym.transpose(x, name="transpose"), {"data": (2, 3, 5)}, "No axes: reverse all axes."),
        Case("swapaxis", sym.SwapAxis(x, dim1=1, dim2=3, name="swap"), data),
        Case(
            "swapaxes_alias",
            sym.SwapAxis(x, dim1=0, dim2=2, name="swap"),
            {"data": (2, 3, 5)},
            "The JSON names the operator by its alias swapaxes.",
            op_aliases={"SwapAxis": "swapaxes"},
        ),
        Case("expand_dims_1", sym.expand_dims(x, axis=1, name="expand"), {"data": (3, 5)}),
        Case("expand_dims_neg", sym.expand_dims(x, axis=-1, name="expand"), {"data": (3, 5)}),
        Case("squeeze_all", sym.squeeze(x, name="squeeze"), {"data": (2, 1, 3, 1)}),
        Case("squeeze_axis", sym.squeeze(x, axis=(1,), name="squeeze"), {"data": (2, 1, 3, 1)}),
    ]


def combine_cases():
    a, b, c = var("a"), var("b"), var("c")
    cases = [
        Case("concat_dim1", sym.Concat(a, b, c, dim=1, name="concat"), {"a": (2, 3, 5), "b": (2, 1, 5), "c": (2, 4, 5)}),
        Case("concat_dim0", sym.Concat(a, b, dim=0, name="concat"), {"a": (2, 3), "b": (1, 3)}),
        Case("concat_dim_last", sym.Concat(a, b, dim=-1, name="concat"), {"a": (2, 3, 4), "b": (2, 3, 1)}),
        Case("concat_dim2_4d", sym.Concat(a, b, dim=2, name="concat"), {"a": (1, 3, 5, 7), "b": (1, 3, 2, 7)}),
        Case("add_n", sym.add_n(a, b, c, name="sum"), {"a": (3, 5), "b": (3, 5), "c": (3, 5)}),
        Case(
            "elementwisesum_alias",
            sym.add_n(a, b, name="sum"),
            {"a": (2, 7), "b": (2, 7)},
            "The JSON names the operator by its alias ElementWiseSum.",
            op_aliases={"add_n": "ElementWiseSum"},
        ),
    ]
    for op in ["add", "sub", "mul", "div"]:
        values = {"b": away_from_zero} if op == "div" else {}
        cases.append(
            Case(
                "elemwise_" + op,
                getattr(sym, "elemwise_" + op)(a, b, name="op"),
                {"a": (3, 5), "b": (3, 5)},
                data_values=values,
                reference=lambda inputs, params, f={"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}[op]: [
                    f(inputs["a"].astype(np.float64), inputs["b"])
                ],
            )
        )
    for op in ["add", "sub", "mul", "div", "maximum", "minimum", "power"]:
        values = {}
        if op == "div":
            values = {"b": away_from_zero}
        if op == "power":
            values = {"a": positive}
        cases.append(
            Case(
                "broadcast_" + op,
                getattr(sym, "broadcast_" + op)(a, b, name="op"),
                {"a": (2, 1, 5), "b": (1, 3, 5)},
                data_values=values,
            )
        )
    cases.append(Case("broadcast_add_rank", sym.broadcast_add(a, b, name="op"), {"a": (3, 1), "b": (1, 4)}))
    return cases


def scalar_cases():
    x = var()
    data = {"data": (3, 7)}
    cases = [
        ("plus_scalar", x + 2.5),
        ("minus_scalar", x - 2.5),
        ("rminus_scalar", 2.5 - x),
        ("mul_scalar", x * -1.5),
        ("div_scalar", x / 4.0),
        ("rdiv_scalar", 3.0 / x),
        ("power_scalar", x**2.0),
        ("power_scalar_frac", x**0.5),
        ("maximum_scalar", sym.maximum(x, 0.25)),
        ("minimum_scalar", sym.minimum(x, -0.25)),
    ]
    out = []
    for name, symbol in cases:
        values = {}
        if name == "rdiv_scalar":
            values = {"data": away_from_zero}
        if name == "power_scalar_frac":
            values = {"data": positive}
        out.append(Case(name, symbol, data, data_values=values))
    out += [
        Case("clip", sym.clip(x, a_min=-0.5, a_max=0.8, name="clip"), data),
        Case("dropout", sym.Dropout(x, p=0.5, name="drop"), data, "Dropout at inference (is_train=False) is the identity."),
    ]
    return out


def softmax_cases():
    x = var()
    label = var("softmax_label")
    return [
        Case("softmax_last", sym.softmax(x, name="softmax"), {"data": (2, 3, 7)}),
        Case("softmax_axis1", sym.softmax(x, axis=1, name="softmax"), {"data": (2, 3, 5)}),
        Case("softmax_temperature", sym.softmax(x, axis=-1, temperature=2.5, name="softmax"), {"data": (3, 7)}),
        Case("log_softmax_last", sym.log_softmax(x, name="log_softmax"), {"data": (3, 7)}),
        Case("log_softmax_axis0", sym.log_softmax(x, axis=0, name="log_softmax"), {"data": (4, 5)}),
        Case("softmax_activation_instance", sym.SoftmaxActivation(x, name="sa"), {"data": (2, 3, 4)}, "mode instance: softmax over all but the first axis."),
        Case("softmax_activation_channel", sym.SoftmaxActivation(x, mode="channel", name="sa"), {"data": (2, 3, 4, 5)}, "mode channel: softmax over axis 1."),
        Case(
            "softmax_output",
            sym.SoftmaxOutput(x, label, name="softmax"),
            {"data": (3, 7), "softmax_label": (3,)},
            "Forward of SoftmaxOutput is softmax over the last axis; the label does not change it.",
            data_values={"softmax_label": indices(7)},
        ),
        Case(
            "softmax_output_multi",
            sym.SoftmaxOutput(x, label, multi_output=True, name="softmax"),
            {"data": (2, 4, 5), "softmax_label": (2, 5)},
            "multi_output=True: softmax over axis 1.",
            data_values={"softmax_label": indices(4)},
        ),
        Case(
            "softmax_output_no_label",
            sym.SoftmaxOutput(x, name="softmax"),
            {"data": (3, 7), "softmax_label": (3,)},
            "softmax_label is created by SoftmaxOutput itself (an argument of the graph).",
            data_values={"softmax_label": indices(7)},
        ),
    ]


def slice_cases():
    x = var()
    like = var("like")
    return [
        Case("slice_basic", sym.slice(x, begin=(1, 0), end=(3, None), name="slice"), {"data": (4, 5, 6)}),
        Case(
            "slice_none_negative",
            sym.slice(x, begin=(None, -4, 1), end=(None, -1, None), name="slice"),
            {"data": (4, 5, 6)},
        ),
        Case(
            "slice_step",
            sym.slice(x, begin=(None, 4, 0), end=(None, None, 6), step=(1, -2, 2), name="slice"),
            {"data": (3, 5, 6)},
            "A negative step walks backwards from begin; end None means the start of the axis.",
        ),
        Case("slice_axis", sym.slice_axis(x, axis=1, begin=1, end=-1, name="slice"), {"data": (3, 5, 4)}),
        Case("slice_axis_last_none", sym.slice_axis(x, axis=-1, begin=2, end=None, name="slice"), {"data": (3, 5, 4)}),
        Case("slice_like", sym.slice_like(x, like, axes=(0, 2), name="slice"), {"data": (4, 6, 5), "like": (2, 3, 3)}),
        Case("slice_like_all", sym.slice_like(x, like, name="slice"), {"data": (4, 6, 5), "like": (2, 3, 3)}),
        Case("split_axis1", sym.split(x, num_outputs=3, axis=1, name="split"), {"data": (2, 6, 5)}),
        Case(
            "split_squeeze",
            sym.SliceChannel(x, num_outputs=3, axis=2, squeeze_axis=True, name="split"),
            {"data": (2, 4, 3)},
            "squeeze_axis=True drops the split axis (its size equals num_outputs).",
        ),
        Case(
            "split_alias",
            sym.SliceChannel(x, num_outputs=2, axis=-1, name="split"),
            {"data": (3, 4)},
            "The JSON names the operator by its alias split.",
            op_aliases={"SliceChannel": "split"},
        ),
    ]


def resize_cases():
    x = var()
    bilinear = sym.contrib.BilinearResize2D
    return [
        Case("upsampling_nearest_2", sym.UpSampling(x, scale=2, sample_type="nearest", num_args=1, name="up"), {"data": (1, 3, 5, 7)}),
        Case("upsampling_nearest_3", sym.UpSampling(x, scale=3, sample_type="nearest", num_args=1, name="up"), {"data": (2, 2, 3, 4)}),
        Case("bilinear_size", bilinear(x, height=8, width=11, name="resize"), {"data": (1, 3, 5, 7)}, "align_corners defaults to True."),
        Case("bilinear_size_no_align", bilinear(x, height=8, width=11, align_corners=False, name="resize"), {"data": (1, 3, 5, 7)}),
        Case("bilinear_downsize", bilinear(x, height=3, width=4, name="resize"), {"data": (1, 2, 5, 7)}),
        Case(
            "bilinear_scale",
            bilinear(x, scale_height=1.5, scale_width=2.0, mode="size", name="resize"),
            {"data": (1, 3, 5, 7)},
            "scale_height/scale_width override height/width in mode size.",
        ),
        Case(
            "bilinear_scale_no_align",
            bilinear(x, scale_height=2.0, scale_width=2.0, align_corners=False, name="resize"),
            {"data": (1, 2, 5, 7)},
        ),
        Case("bilinear_odd_scale", bilinear(x, scale_height=0.5, scale_width=0.5, mode="odd_scale", name="resize"), {"data": (1, 2, 5, 7)}),
        Case("bilinear_like", bilinear(x, var("like"), mode="like", name="resize"), {"data": (1, 2, 5, 7), "like": (1, 1, 9, 4)}),
    ]


def misc_cases():
    x = var()
    return [
        Case("pad_constant", sym.Pad(x, mode="constant", pad_width=(0, 0, 0, 0, 1, 2, 2, 1), constant_value=0.5, name="pad"), {"data": (1, 3, 5, 7)}),
        Case("pad_edge", sym.Pad(x, mode="edge", pad_width=(0, 0, 0, 0, 2, 1, 1, 3), name="pad"), {"data": (1, 3, 5, 7)}),
        Case("pad_reflect", sym.Pad(x, mode="reflect", pad_width=(0, 0, 0, 0, 2, 2, 1, 3), name="pad"), {"data": (1, 3, 5, 7)}),
        Case("pad_constant_5d", sym.Pad(x, mode="constant", pad_width=(0, 0, 0, 0, 1, 0, 0, 1, 2, 2), name="pad"), {"data": (1, 2, 3, 4, 5)}),
        Case(
            "embedding",
            sym.Embedding(x, input_dim=10, output_dim=4, name="embed"),
            {"data": (2, 3)},
            "Indices are float32 values 0..9.",
            data_values={"data": indices(10)},
        ),
        Case("cast_int32", sym.Cast(x, dtype="int32", name="cast"), {"data": (3, 5)}, data_values={"data": lambda rs, s: rs.normal(0, 5, s)}),
        Case("cast_float16", sym.Cast(x, dtype="float16", name="cast"), {"data": (3, 5)}),
        Case("cast_uint8", sym.Cast(x, dtype="uint8", name="cast"), {"data": (3, 5)}, "float32 values in -300..300 cast to uint8: MXNet 1.9.1 truncates toward zero and keeps the low 8 bits (-98.1 -> 158).", data_values={"data": lambda rs, s: rs.uniform(-300, 300, s)}),
        Case("cast_int8", sym.Cast(x, dtype="int8", name="cast"), {"data": (3, 5)}, "float32 values in -300..300 cast to int8: MXNet 1.9.1 truncates toward zero and keeps the low 8 bits (-204.9 -> 52).", data_values={"data": lambda rs, s: rs.uniform(-300, 300, s)}),
        Case("cast_from_int8", sym.Cast(x, dtype="float32", name="cast"), {"data": (3, 5)}, "int8 input.", dtypes={"data": "int8"}, data_values={"data": lambda rs, s: rs.randint(-128, 128, s)}),
        Case("sum_axis1", sym.sum(x, axis=1, name="reduce"), {"data": (2, 3, 5)}),
        Case("sum_all", sym.sum(x, name="reduce"), {"data": (2, 3, 5)}),
        Case("mean_keepdims", sym.mean(x, axis=(0, 2), keepdims=True, name="reduce"), {"data": (2, 3, 5)}),
        Case("mean_axis_neg", sym.mean(x, axis=-1, name="reduce"), {"data": (2, 3, 5)}),
        Case("max_exclude", sym.max(x, axis=1, exclude=True, name="reduce"), {"data": (2, 3, 5)}, "exclude=True reduces every axis except 1."),
        Case("max_axis0_keepdims", sym.max(x, axis=0, keepdims=True, name="reduce"), {"data": (4, 3)}),
        Case("sum_exclude_keepdims", sym.sum(x, axis=(0, 3), exclude=True, keepdims=True, name="reduce"), {"data": (2, 3, 4, 5)}),
    ]


def rnn_cases():
    cases = []
    specs = [
        ("rnn_lstm_1layer", "lstm", 1, False, False),
        ("rnn_lstm_2layer_bi_states", "lstm", 2, True, True),
        ("rnn_gru_1layer_states", "gru", 1, False, True),
        ("rnn_gru_2layer_bi", "gru", 2, True, False),
        ("rnn_relu_1layer", "rnn_relu", 1, False, False),
        ("rnn_tanh_2layer_bi_states", "rnn_tanh", 2, True, True),
    ]
    seq_len, batch, input_size, state_size = 5, 2, 3, 4
    for name, mode, layers, bidirectional, state_outputs in specs:
        directions = 2 if bidirectional else 1
        inputs = [var(), var("parameters"), var("state")]
        shapes = {"data": (seq_len, batch, input_size), "state": (layers * directions, batch, state_size)}
        kwargs = {}
        if mode == "lstm":
            inputs.append(var("state_cell"))
            shapes["state_cell"] = shapes["state"]
        symbol = sym.RNN(
            *inputs,
            state_size=state_size,
            num_layers=layers,
            mode=mode,
            bidirectional=bidirectional,
            state_outputs=state_outputs,
            name="rnn",
            **kwargs,
        )
        def reference(inputs, params, mode=mode, layers=layers, bidirectional=bidirectional, state_outputs=state_outputs):
            output, hy, cy = rnn_reference(
                mode,
                layers,
                bidirectional,
                state_size,
                inputs["data"],
                params["parameters"],
                inputs["state"],
                inputs.get("state_cell"),
            )
            if not state_outputs:
                return [output]
            return [output, hy] + ([cy] if cy is not None else [])

        cases.append(
            Case(
                name,
                symbol,
                shapes,
                "RNN mode %s, %d layer(s), %s, state_outputs=%s. Data layout TNC (seq_len %d, batch %d, "
                "input %d), state_size %d. 'parameters' is MXNet's flat weight vector (a parameter here), "
                "'state'%s the initial states (data inputs)."
                % (
                    mode,
                    layers,
                    "bidirectional" if bidirectional else "unidirectional",
                    state_outputs,
                    seq_len,
                    batch,
                    input_size,
                    state_size,
                    " and 'state_cell' are" if mode == "lstm" else " is",
                ),
                reference=reference,
            )
        )
    return cases


def fusion_bug_cases():
    x = var()
    fc = sym.FullyConnected(x, num_hidden=4, name="fc")
    conv = sym.Convolution(x, kernel=(3, 3), pad=(1, 1), num_filter=3, name="conv")

    def fc_reference(inputs, params):
        out = inputs["data"].astype(np.float64) @ params["fc_weight"].T + params["fc_bias"]
        return [np.maximum(out, 0), out]

    def conv_reference(inputs, params):
        out = conv2d_reference(inputs["data"], params["conv_weight"], params["conv_bias"], pad=(1, 1))
        return [np.maximum(out, 0), out]

    notes = (
        "Two heads: the Activation and the %s output it reads. With MXNet 1.9.1's default MKLDNN "
        "subgraph fusion the %s output is replaced by the activated values (see checks); the "
        "golden outputs (fusion off) match the numpy computation."
    )
    return [
        Case(
            "fusion_fc_relu_shared",
            sym.Group([sym.Activation(fc, act_type="relu", name="relu"), fc]),
            {"data": (2, 5)},
            notes % ("FullyConnected", "FullyConnected"),
            reference=fc_reference,
        ),
        Case(
            "fusion_conv_relu_shared",
            sym.Group([sym.Activation(conv, act_type="relu", name="relu"), conv]),
            {"data": (1, 2, 5, 7)},
            notes % ("Convolution", "Convolution"),
            reference=conv_reference,
        ),
    ]


def extra_cases():
    """Operators beyond the basic list that the fixture models or common inference graphs use."""
    x = var()
    a, b = var("a"), var("b")
    unary = [
        ("abs", sym.abs, np.abs, None),
        ("exp", sym.exp, np.exp, None),
        ("log", sym.log, np.log, positive),
        ("sqrt", sym.sqrt, np.sqrt, positive),
        ("rsqrt", sym.rsqrt, lambda v: 1 / np.sqrt(v), positive),
        ("square", sym.square, np.square, None),
        ("negative", sym.negative, np.negative, None),
        ("sigmoid", sym.sigmoid, lambda v: 1 / (1 + np.exp(-v)), None),
        ("relu", sym.relu, lambda v: np.maximum(v, 0), None),
    ]
    cases = []
    for name, function, numpy_function, values in unary:
        cases.append(
            Case(
                "unary_" + name,
                function(x, name="op"),
                {"data": (3, 7)},
                data_values={"data": values} if values else {},
                reference=lambda inputs, params, f=numpy_function: [f(inputs["data"].astype(np.float64))],
            )
        )
    adaptive = sym.contrib.AdaptiveAvgPooling2D
    cases += [
        Case("adaptive_avg_pool_1", adaptive(x, output_size=1, name="pool"), {"data": (1, 3, 5, 7)}),
        Case(
            "adaptive_avg_pool_3",
            adaptive(x, output_size=3, name="pool"),
            {"data": (1, 3, 5, 7)},
            "Output 3x3 from 5x7: windows overlap and differ in size (PSPNet uses 1, 2, 3 and 6).",
        ),
        Case("adaptive_avg_pool_rect", adaptive(x, output_size=(2, 4), name="pool"), {"data": (2, 2, 6, 9)}),
        Case(
            "adaptive_avg_pool_upsample",
            adaptive(x, output_size=6, name="pool"),
            {"data": (1, 2, 4, 5)},
            "Output larger than the input, as in PSPNet's 6x6 branch on a small map.",
        ),
        Case("layer_norm", sym.LayerNorm(x, axis=-1, eps=1e-5, name="ln"), {"data": (2, 3, 7)}),
        Case("layer_norm_axis1", sym.LayerNorm(x, axis=1, name="ln"), {"data": (2, 5, 3)}),
        Case("instance_norm", sym.InstanceNorm(x, eps=1e-3, name="in"), {"data": (2, 3, 5, 7)}),
        Case("l2_normalization_instance", sym.L2Normalization(x, mode="instance", name="l2"), {"data": (2, 3, 5)}),
        Case("l2_normalization_channel", sym.L2Normalization(x, mode="channel", name="l2"), {"data": (2, 3, 5)}),
        Case("l2_normalization_spatial", sym.L2Normalization(x, mode="spatial", name="l2"), {"data": (2, 3, 4, 5)}),
        Case("lrn", sym.LRN(x, nsize=3, alpha=1e-2, beta=0.75, knorm=2.0, name="lrn"), {"data": (1, 5, 4, 6)}),
        Case(
            "argmax_axis1",
            sym.argmax(x, axis=1, name="argmax"),
            {"data": (3, 7)},
            "argmax returns float32 indices.",
        ),
        Case("argmax_keepdims", sym.argmax(x, axis=-1, keepdims=True, name="argmax"), {"data": (2, 3, 5)}),
        Case("stack_axis1", sym.stack(a, b, axis=1, name="stack"), {"a": (2, 3), "b": (2, 3)}),
        Case("tile", sym.tile(x, reps=(2, 1, 3), name="tile"), {"data": (2, 3)}),
        Case("repeat", sym.repeat(x, repeats=2, axis=1, name="repeat"), {"data": (2, 3)}),
        Case(
            "where",
            sym.where(var("condition"), a, b, name="where"),
            {"condition": (3, 4), "a": (3, 4), "b": (3, 4)},
            "condition holds 0.0 and 1.0.",
            data_values={"condition": indices(2)},
        ),
        Case("broadcast_to", sym.broadcast_to(x, shape=(2, 3, 4), name="bcast"), {"data": (2, 1, 4)}),
        Case("broadcast_like", sym.broadcast_like(a, b, name="bcast"), {"a": (1, 3), "b": (4, 3)}),
        Case("zeros_like", sym.zeros_like(x, name="zeros"), {"data": (2, 3)}),
        Case("ones_like", sym.ones_like(x, name="ones"), {"data": (2, 3)}),
        Case("identity", sym.identity(x, name="copy"), {"data": (2, 3)}),
        Case("block_grad", sym.BlockGrad(x, name="stop"), {"data": (2, 3)}, "BlockGrad is the identity in forward."),
        Case("dot", sym.dot(a, b, name="dot"), {"a": (3, 4), "b": (4, 5)}),
        Case("dot_transpose_b", sym.dot(a, b, transpose_b=True, name="dot"), {"a": (3, 4), "b": (5, 4)}),
        Case("batch_dot", sym.batch_dot(a, b, name="dot"), {"a": (2, 3, 4), "b": (2, 4, 5)}),
        Case(
            "take",
            sym.take(a, b, axis=0, name="take"),
            {"a": (5, 3), "b": (2, 4)},
            "Indices are float32 values 0..4.",
            data_values={"b": indices(5)},
        ),
        Case(
            "one_hot",
            sym.one_hot(x, depth=5, name="one_hot"),
            {"data": (2, 3)},
            "Indices are float32 values 0..4.",
            data_values={"data": indices(5)},
        ),
    ]
    return cases


def all_cases():
    return (
        convolution_cases()
        + deconvolution_cases()
        + fully_connected_cases()
        + batch_norm_cases()
        + activation_cases()
        + pooling_cases()
        + shape_cases()
        + combine_cases()
        + scalar_cases()
        + softmax_cases()
        + slice_cases()
        + resize_cases()
        + misc_cases()
        + rnn_cases()
        + fusion_bug_cases()
        + extra_cases()
    )


# ---------------------------------------------------------------------------
# Writing one case


def symbol_json(case):
    """Return the case's symbol JSON, with operator names replaced by aliases if requested."""
    graph = json.loads(case.symbol.tojson())
    for node in graph["nodes"]:
        if node["op"] in case.op_aliases:
            node["op"] = case.op_aliases[node["op"]]
    text = json.dumps(graph, indent=2) + "\n"
    return text


def write_case(case):
    rs = rng_for("ops/" + case.name)
    out_dir = ensure_dir(os.path.join(OPS_DIR, case.name))
    prefix = os.path.join(out_dir, case.name)

    text = symbol_json(case)
    with open(prefix + "-symbol.json", "w", encoding="utf-8") as f:
        f.write(text)
    symbol = mx.sym.load(prefix + "-symbol.json")

    dtypes = {name: case.dtypes.get(name, "float32") for name in case.data}
    arg_shapes, out_shapes, aux_shapes = symbol.infer_shape(**case.data)
    arg_types, out_types, aux_types = symbol.infer_type(**dtypes)

    inputs = {}
    for name, shape in case.data.items():
        generate = case.data_values.get(name, lambda rs, shape: rs.normal(0.0, 1.0, shape))
        inputs[name] = np.asarray(generate(rs, shape)).astype(dtypes[name])

    arg_params = {}
    for name, shape, dtype in zip(symbol.list_arguments(), arg_shapes, arg_types):
        if name in inputs:
            continue
        if name in case.param_values:
            values = case.param_values[name](rs, shape)
        else:
            values = default_param(name, rs, shape)
        arg_params[name] = mx.nd.array(values, dtype=dtype)
    aux_params = {}
    for name, shape, dtype in zip(symbol.list_auxiliary_states(), aux_shapes, aux_types):
        aux_params[name] = mx.nd.array(default_param(name, rs, shape), dtype=dtype)

    saved = {"arg:" + k: v for k, v in arg_params.items()}
    saved.update({"aux:" + k: v for k, v in aux_params.items()})
    mx.nd.save(prefix + "-0000.params", saved)
    io = {name: mx.nd.array(value, dtype=value.dtype) for name, value in inputs.items()}
    checks = {}

    if case.mkldnn_fails:
        mx.nd.save(prefix + "-io.params", io)
        result = run_native_cpu([out_dir], write=True)[out_dir]
        if "error" in result:
            raise RuntimeError("%s: MXNet's native CPU kernel failed: %s" % (case.name, result["error"]))
        stored = mx.nd.load(prefix + "-io.params")
        golden = [stored["output%d" % i].asnumpy() for i in range(len(symbol.list_outputs()))]
        try:
            run_symbol(symbol, inputs, arg_params, aux_params, fusion=False)
            raise RuntimeError("%s is marked mkldnn_fails but MXNet's MKLDNN kernel ran" % case.name)
        except mx.base.MXNetError as exc:
            checks["mkldnn_error"] = error_text(exc)
    else:
        golden = run_symbol(symbol, inputs, arg_params, aux_params, fusion=False)
        fused = run_symbol(symbol, inputs, arg_params, aux_params, fusion=True)
        checks["max_abs_diff_mkldnn_fusion"] = max(max_abs_diff(a, b) for a, b in zip(golden, fused))
        for index, output in enumerate(golden):
            io["output%d" % index] = mx.nd.array(output, dtype=output.dtype)
        mx.nd.save(prefix + "-io.params", io)
    if case.reference is not None:
        params_np = {k: v.asnumpy() for k, v in list(arg_params.items()) + list(aux_params.items())}
        expected = case.reference(inputs, params_np)
        diff = max(max_abs_diff(a, b) for a, b in zip(golden, expected))
        checks["max_abs_diff_numpy"] = diff
        scale = max(float(np.max(np.abs(e))) for e in expected)
        if diff > 1e-4 * max(1.0, scale):
            raise RuntimeError("%s: MXNet differs from the numpy reference by %g" % (case.name, diff))

    notes = case.notes
    if checks.get("max_abs_diff_mkldnn_fusion", 0.0) > 1e-4:
        notes += (
            " MXNet's default run (MKLDNN subgraph fusion on) differs from the golden outputs "
            "by up to %.3g." % checks["max_abs_diff_mkldnn_fusion"]
        )
    meta = {
        "inputs": {name: list(shape) for name, shape in case.data.items()},
        "input_dtypes": dtypes,
        "arguments": symbol.list_arguments(),
        "aux": symbol.list_auxiliary_states(),
        "params": sorted(saved),
        "outputs": symbol.list_outputs(),
        "output_shapes": [list(o.shape) for o in golden],
        "output_dtypes": [dtype_name(o.dtype) for o in golden],
        "checks": checks,
        "notes": notes.strip(),
    }
    write_json(prefix + "-meta.json", meta)
    return checks


def main(names=None):
    ensure_dir(OPS_DIR)
    cases = all_cases()
    seen = set()
    for case in cases:
        if case.name in seen:
            raise RuntimeError("duplicate case name %s" % case.name)
        seen.add(case.name)
    written = []
    for case in cases:
        if names and case.name not in names:
            continue
        checks = write_case(case)
        written.append(os.path.join(OPS_DIR, case.name))
        logging.info("  %s: %s", case.name, checks)
    record_native_check(written)
    if not names:
        remove_stale_dirs(OPS_DIR, seen)
    logging.info("%d operator cases", len(written))
