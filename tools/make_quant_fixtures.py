#!/usr/bin/env python3
"""Generate the quantized golden files under tests/fixtures/quantized/.

Runs with MXNet 1.9.1 (pip build, MKLDNN/oneDNN on, CPU):

    OMP_NUM_THREADS=1 /work/venv/bin/python tools/make_quant_fixtures.py [--only SUBSTRING]

Every case directory <case>/ contains

* <case>-symbol.json  the graph MXNet ran (or tried to run);
* <case>-0000.params  parameters as "arg:<name>" / "aux:<name>";
* <case>-io.params    the inputs under their variable names, MXNet's outputs
                      as output0, output1, ... (absent when MXNet failed) and
                      the FP32 model's outputs as fp32_output0, ...;
* <case>-meta.json    shapes, dtypes, which reference applies and why, and
                      MXNet's relative-L2 drift from the FP32 outputs.

Quantized outputs are compared with FP32 after dequantizing them with the
MKLDNN conventions of MXNet 1.9.1: int8 q*R/127.5, uint8 q*R/255.5, int32
q*R/2^31, where R = max(|min_output|, |max_output|).

Models are built with random weights (never pretrained, nothing is
downloaded) and fixed seeds, so a rerun produces the same files.
"""

import argparse
import json
import os
import shutil
import sys
import traceback

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MXNET_ENGINE_TYPE", "NaiveEngine")

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet.contrib import quantization as mxq  # noqa: E402
from mxnet.gluon import nn  # noqa: E402

f32 = np.float32
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "quantized")
P31 = 2147483648.0


# ----------------------------------------------------------------------------
# Helpers


def rel_l2(got, ref):
    got = np.asarray(got, np.float64).ravel()
    ref = np.asarray(ref, np.float64).ravel()
    denom = np.linalg.norm(ref)
    if denom == 0:
        return float(np.linalg.norm(got))
    return float(np.linalg.norm(got - ref) / denom)


def real_value(q, lo=None, hi=None):
    """Dequantize an output with MXNet 1.9.1's MKLDNN conventions."""
    q = np.asarray(q)
    if q.dtype == np.float32 or lo is None:
        return q.astype(np.float64)
    r = max(abs(float(lo)), abs(float(hi)))
    div = {np.dtype(np.int8): 127.5, np.dtype(np.uint8): 255.5, np.dtype(np.int32): P31}[q.dtype]
    return q.astype(np.float64) * (r / div)


def drift_of(outputs, fp32_outputs):
    """Relative-L2 distance of a quantized output tuple from the FP32 outputs.

    A quantized triple (data, min, max) is compared on its dequantized data;
    the min/max outputs themselves are not scored.
    """
    if outputs is None:
        return None
    if len(outputs) >= 3 and outputs[1].size == 1 and outputs[0].dtype != np.float32:
        return [rel_l2(real_value(outputs[0], outputs[1][0], outputs[2][0]), fp32_outputs[0])]
    return [rel_l2(o, f) for o, f in zip(outputs, fp32_outputs)]


def bind_run(sym, args, aux):
    """Bind `sym` to the arrays and run one inference forward pass."""
    args = {k: (v if isinstance(v, mx.nd.NDArray) else mx.nd.array(v, dtype=v.dtype)) for k, v in args.items()}
    aux = {k: (v if isinstance(v, mx.nd.NDArray) else mx.nd.array(v, dtype=v.dtype)) for k, v in aux.items()}
    ex = sym.bind(mx.cpu(), args=args, aux_states=aux, grad_req="null")
    outs = ex.forward(is_train=False)
    return [o.asnumpy() for o in outs]


def save_case(name, sym, params, aux, inputs, fp32_outputs, notes, reference="mxnet",
              exact_outputs=None, fp32_tolerance=None, expect_failure=False, kind="op"):
    """Run `sym` in MXNet and write the four files of one case.

    `params`/`aux` go to <case>-0000.params, `inputs` to <case>-io.params.
    `reference` is "mxnet" when MXNet's outputs are the golden values and
    "fp32" when MXNet fails or computes a wrong answer; `exact_outputs` lists
    the outputs that must match MXNet bit for bit (default: all when the
    reference is MXNet, none otherwise).
    """
    out_dir = os.path.join(ROOT, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    args = dict(params)
    args.update(inputs)
    error = None
    outputs = None
    try:
        outputs = bind_run(sym, args, aux)
    except Exception as exc:  # MXNet raises MXNetError for its operator checks
        error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        for line in str(exc).splitlines():
            if "Check failed" in line or "only supports" in line or "Expect" in line or "Error" in line:
                error = line.strip()
                break
    if expect_failure and error is None:
        print(f"  note: {name} was expected to fail in MXNet but ran")
    if error is not None:
        if reference == "mxnet":
            print(f"  WARNING: {name}: MXNet failed but is marked as the reference: {error}")
        reference = "fp32"
        print(f"  MXNet failed ({error[:120]})")

    sym.save(os.path.join(out_dir, f"{name}-symbol.json"))
    save_params = {f"arg:{k}": mx.nd.array(v, dtype=np.asarray(v).dtype) for k, v in params.items()}
    save_params.update({f"aux:{k}": mx.nd.array(v, dtype=np.asarray(v).dtype) for k, v in aux.items()})
    mx.nd.save(os.path.join(out_dir, f"{name}-0000.params"), save_params)
    io = {k: mx.nd.array(v, dtype=np.asarray(v).dtype) for k, v in inputs.items()}
    if outputs is not None:
        for i, o in enumerate(outputs):
            io[f"output{i}"] = mx.nd.array(o, dtype=o.dtype)
    for i, o in enumerate(fp32_outputs):
        o = np.asarray(o, f32)
        io[f"fp32_output{i}"] = mx.nd.array(o, dtype=f32)
    mx.nd.save(os.path.join(out_dir, f"{name}-io.params"), io)

    if exact_outputs is None:
        exact_outputs = list(range(len(outputs))) if (outputs is not None and reference == "mxnet") else []
    drift = drift_of(outputs, fp32_outputs)
    meta = {
        "case": name,
        "kind": kind,
        "inputs": {k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)} for k, v in inputs.items()},
        "arguments": sorted(params.keys()),
        "aux": sorted(aux.keys()),
        "outputs": [{"name": f"output{i}", "shape": list(o.shape), "dtype": str(o.dtype)} for i, o in enumerate(outputs)]
        if outputs is not None else [],
        "fp32_outputs": [{"name": f"fp32_output{i}", "shape": list(np.shape(o))} for i, o in enumerate(fp32_outputs)],
        "reference": reference,
        "mxnet_error": error,
        "mxnet_exact_outputs": exact_outputs,
        "mxnet_drift": drift,
        "fp32_tolerance": fp32_tolerance,
        "notes": notes,
    }
    with open(os.path.join(out_dir, f"{name}-meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"  {name}: reference={reference} drift={drift}")


def var(name, dtype=None, shape=None):
    kwargs = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if shape is not None:
        kwargs["shape"] = shape
    return mx.sym.var(name, **kwargs)


def rng(seed):
    return np.random.RandomState(seed)


def s8_real(q, r):
    return q.astype(np.float64) * (r / 127.5)


def u8_real(q, r):
    return q.astype(np.float64) * (r / 255.5)


def data_real(q, r):
    return s8_real(q, r) if q.dtype == np.int8 else u8_real(q, r)


def offline_real(q, r):
    """Real value of a weight or bias quantized offline with scale 127/R."""
    return q.astype(np.float64) * (r / 127.0)


def offline_quantize(w):
    """What quantize_model stores for a weight: round-half-even(w * 127/maxabs)."""
    r = f32(np.abs(w).max())
    s = f32(f32(127.0) / r)
    return np.clip(np.rint((w.astype(f32) * s).astype(f32)), -128, 127).astype(np.int8), -r, r


def rnd_q(r, dtype, shape):
    if dtype == "int8":
        return r.randint(-128, 128, size=shape).astype(np.int8)
    return r.randint(0, 256, size=shape).astype(np.uint8)


def nd(x):
    return mx.nd.array(np.asarray(x, np.float64).astype(f32))


def arr1(v):
    return np.array([v], f32)


# ----------------------------------------------------------------------------
# Per-operator cases


def quantize_cases():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.4, 127.5, -127.5, -128, -200, 200, 0.0,
                  254.5, 255.4, 255.5, 300, -0.4, -0.6, 63.25, -63.75], f32)
    r = rng(1)
    bulk = r.normal(0, 40, size=(2, 3, 4, 5)).astype(f32)
    bulk.ravel()[:x.size] = x
    data = var("data")
    for out_type in ("int8", "uint8", "auto"):
        for calib in ((-127.5, 127.5), (0.0, 255.5), (-0.001, 255.5), None):
            if calib is None:
                sym = mx.sym.contrib.quantize_v2(data, out_type=out_type)
                tag = "nocalib"
            else:
                sym = mx.sym.contrib.quantize_v2(data, out_type=out_type, min_calib_range=calib[0],
                                                 max_calib_range=calib[1])
                tag = {(-127.5, 127.5): "sym", (0.0, 255.5): "pos", (-0.001, 255.5): "negtiny"}[calib]
            clip_lo = -np.inf
            save_case(f"quantize_v2_{out_type}_{tag}", sym, {}, {}, {"data": bulk}, [bulk],
                      f"_contrib_quantize_v2 out_type={out_type} calibration={calib}; the FP32 "
                      f"reference is the input itself (clipping to the range counts as drift). "
                      f"Includes .5 ties (round half to even) and values past the range.")
    # all-zero data without calibration: MXNet divides by zero and outputs 127.
    zeros = np.zeros((2, 7), f32)
    save_case("quantize_v2_int8_allzero", mx.sym.contrib.quantize_v2(data, out_type="int8"), {}, {},
              {"data": zeros}, [zeros],
              "All-zero input without calibration: MXNet 1.9.1 computes scale 127.5/0 = inf and "
              "0*inf = NaN, which it converts to 127 everywhere. The correct result is all zeros "
              "(range 0, 0).", reference="fp32", exact_outputs=[1, 2], fp32_tolerance=0.0)
    zsym = mx.sym.contrib.quantize_v2(data, out_type="int8", min_calib_range=0.0, max_calib_range=0.0)
    save_case("quantize_v2_int8_zero_calib", zsym, {}, {}, {"data": bulk[:1]}, [np.zeros_like(bulk[:1])],
              "Zero-width calibration range (0, 0): MXNet outputs 127 for every element (0*inf); "
              "every value is representable only as 0, so the correct output is all zeros.",
              reference="fp32", exact_outputs=[1, 2], fp32_tolerance=0.0)
    # int8 / uint8 input: copied, range from calibration or the full type range.
    qs8 = rnd_q(r, "int8", (3, 5))
    qs8.ravel()[:3] = [-128, 127, 0]
    save_case("quantize_v2_int8_input", mx.sym.contrib.quantize_v2(var("data", "int8"), out_type="int8"), {},
              {}, {"data": qs8}, [s8_real(qs8, 127.5)],
              "int8 data into _contrib_quantize_v2 without calibration: copied, range (-127.5, 127.5).")
    qu8 = rnd_q(r, "uint8", (3, 5))
    save_case("quantize_v2_uint8_input", mx.sym.contrib.quantize_v2(var("data", "uint8"), out_type="uint8",
                                                                   min_calib_range=0.0, max_calib_range=3.0),
              {}, {}, {"data": qu8}, [u8_real(qu8, 3.0)],
              "uint8 data into _contrib_quantize_v2 with calibration (0, 3): copied, range = calibration.")
    # Legacy _contrib_quantize with explicit min/max inputs.
    for out_type, (lo, hi) in (("int8", (-1.0, 127.0)), ("uint8", (10.0, 255.0))):
        sym = mx.sym.contrib.quantize(data=data, min_range=var("min_range"), max_range=var("max_range"),
                                      out_type=out_type)
        save_case(f"quantize_{out_type}", sym, {}, {},
                  {"data": bulk, "min_range": arr1(lo), "max_range": arr1(hi)}, [bulk],
                  f"_contrib_quantize (legacy) out_type={out_type}: scale 127/R or 255/R (not 127.5), "
                  f"round half to even; uint8 ignores min (zero point 0).", exact_outputs=None)


def dequantize_cases():
    r = rng(2)
    for dtype, lo, hi in (("int8", -1.0, 1.0), ("uint8", -1.0, 2.0), ("int8", -0.37, 5.5)):
        q = rnd_q(r, dtype, (2, 3, 5))
        q.ravel()[:4] = [-128, 127, 0, 1] if dtype == "int8" else [0, 255, 128, 1]
        sym = mx.sym.contrib.dequantize(var("data", dtype), var("min_range"), var("max_range"))
        rr = max(abs(lo), abs(hi))
        tag = f"{dtype}" if (lo, hi) != (-0.37, 5.5) else f"{dtype}_asym"
        save_case(f"dequantize_{tag}", sym, {}, {}, {"data": q, "min_range": arr1(lo), "max_range": arr1(hi)},
                  [data_real(q, rr)], f"_contrib_dequantize {dtype}, range ({lo}, {hi}).")


def requantize_cases():
    r = rng(3)
    base = r.randint(-2000000, 2000000, size=(2, 4, 3)).astype(np.int32)
    base.ravel()[:6] = [0, 1, -1, 16777217, -16777219, 16777216 + 13]
    rin = 4.0
    real = base.astype(np.float64) * (rin / P31)
    d = var("data", "int32")
    for out_type, calib in (("int8", (-0.032, 0.0315)), ("uint8", (0.0, 0.032)), ("auto", (0.0, 0.032)),
                            ("auto", (-0.001, 0.032)), ("int8", None)):
        kw = {} if calib is None else {"min_calib_range": calib[0], "max_calib_range": calib[1]}
        sym = mx.sym.contrib.requantize(d, var("min_range"), var("max_range"), out_type=out_type, **kw)
        tag = "nocalib" if calib is None else ("calib" if calib[0] >= 0 or out_type == "int8" else "calibneg")
        save_case(f"requantize_{out_type}_{tag}", sym, {}, {},
                  {"data": base, "min_range": arr1(-rin), "max_range": arr1(rin)}, [real],
                  f"_contrib_requantize out_type={out_type} calibration={calib}; target scale uses "
                  f"127/255 (not 127.5/255.5); int32 values above 2^24 are rounded to f32 first.")
    lim = np.array([[2147483600, -2147483600, 5, -7, 2147483647, -2147483648]], np.int32)
    sym = mx.sym.contrib.requantize(d, var("min_range"), var("max_range"), out_type="int8")
    save_case("requantize_int32_limits", sym, {}, {},
              {"data": lim, "min_range": arr1(-1.0), "max_range": arr1(1.0)},
              [lim.astype(np.float64) / P31],
              "Uncalibrated requantize of values with |x| >= 2147483584: MXNet converts max|x| to f32 "
              "(2^31) and back to int32, which overflows to INT32_MIN, so its output range is negative "
              "and every output has the wrong sign. The correct result is +-127 for the extremes.",
              reference="fp32", exact_outputs=[], fp32_tolerance=0.02)


def conv_cases():
    def make(name, dtype, c, oc, hw, kernel, stride, pad, dilate, bias, seed, notes, reference, exact,
             extreme=None):
        r = rng(seed)
        q = rnd_q(r, dtype, (2, c, hw, hw))
        if extreme is not None:
            q[:] = extreme
        w = r.uniform(-1, 1, size=(oc, c) + kernel).astype(f32)
        if extreme is not None:
            w[:] = -1.0
        wq, wmin, wmax = offline_quantize(w)
        dlo, dhi = (-2.0, 2.0) if dtype == "int8" else (0.0, 3.0)
        params = {"weight": wq, "min_weight": arr1(wmin), "max_weight": arr1(wmax)}
        kw = dict(kernel=kernel, stride=stride, pad=pad, dilate=dilate, num_filter=oc, no_bias=not bias)
        syms = dict(data=var("data", dtype), weight=var("weight", "int8"), min_data=var("min_data"),
                    max_data=var("max_data"), min_weight=var("min_weight"), max_weight=var("max_weight"))
        if bias:
            b = r.uniform(-0.5, 0.5, size=(oc,)).astype(f32)
            bq, bmin, bmax = offline_quantize(b)
            params.update({"bias": bq, "min_bias": arr1(bmin), "max_bias": arr1(bmax)})
            syms.update(bias=var("bias", "int8"), min_bias=var("min_bias"), max_bias=var("max_bias"))
        sym = mx.sym.contrib.quantized_conv(**syms, **kw)
        xr = data_real(q, max(abs(dlo), abs(dhi)))
        wr = offline_real(wq, float(wmax))
        ref = mx.nd.Convolution(nd(xr), nd(wr), nd(offline_real(bq, float(bmax))) if bias else None,
                                **kw).asnumpy()
        save_case(name, sym, params, {}, {"data": q, "min_data": arr1(dlo), "max_data": arr1(dhi)}, [ref],
                  notes, reference=reference, exact_outputs=exact, fp32_tolerance=0.01)

    make("quantized_conv_u8_c16", "uint8", 16, 16, 6, (3, 3), (1, 1), (1, 1), (1, 1), False, 10,
         "uint8 data, 16 in/16 out channels, no bias: MXNet runs an exact VNNI kernel, so the int32 "
         "values are exact. Its output range uses 127 for uint8 data (real = q*R/255.5), which "
         "doubles every dequantized value; we use 255.5, so only output0 is compared bit for bit.",
         "fp32", [0])
    make("quantized_conv_u8_bias_odd", "uint8", 3, 5, 7, (3, 3), (2, 2), (1, 1), (1, 1), True, 11,
         "uint8 data, odd channel counts (3 -> 5), stride 2, bias: MXNet adds the raw int8 bias to "
         "the accumulator without rescaling it and reports a range off by 255.5/127, so FP32 is the "
         "reference.", "fp32", [])
    make("quantized_conv_s8", "int8", 5, 7, 8, (3, 3), (1, 1), (1, 1), (2, 2), True, 12,
         "int8 data (dilation 2, bias): MXNet 1.9.1 rejects it (mkldnn_quantized_conv op only "
         "supports uint8 as input type); FP32 is the reference.", "fp32", [])
    make("quantized_conv_s8_extreme", "int8", 64, 3, 3, (3, 3), (1, 1), (1, 1), (1, 1), False, 13,
         "Every input -128 and every weight -127 with 64 channels x 3x3 taps: 576 products of "
         "16256 accumulate exactly in int32 (no int16 saturation). MXNet rejects int8 data.",
         "fp32", [], extreme=-128)
    make("quantized_conv_u8_extreme", "uint8", 32, 16, 4, (3, 3), (1, 1), (0, 0), (1, 1), False, 14,
         "Every input 255 and every weight -127 with 32 channels: exact int32 accumulation. "
         "output0 must match MXNet's int32 values; its range is off by 255.5/127 (see "
         "quantized_conv_u8_c16).", "fp32", [0], extreme=255)


def fc_cases():
    def make(name, dtype, shape, hidden, bias, flatten, seed, notes):
        r = rng(seed)
        q = rnd_q(r, dtype, shape)
        q.ravel()[:2] = [-128, 127] if dtype == "int8" else [255, 0]
        k = int(np.prod(shape[1:])) if flatten else shape[-1]
        w = r.uniform(-1, 1, size=(hidden, k)).astype(f32)
        wq, wmin, wmax = offline_quantize(w)
        dlo, dhi = (-1.5, 1.0) if dtype == "int8" else (0.0, 2.0)
        params = {"weight": wq, "min_weight": arr1(wmin), "max_weight": arr1(wmax)}
        syms = dict(data=var("data", dtype), weight=var("weight", "int8"), min_data=var("min_data"),
                    max_data=var("max_data"), min_weight=var("min_weight"), max_weight=var("max_weight"))
        if bias:
            b = r.uniform(-3, 3, size=(hidden,)).astype(f32)
            bq, bmin, bmax = offline_quantize(b)
            params.update({"bias": bq, "min_bias": arr1(bmin), "max_bias": arr1(bmax)})
            syms.update(bias=var("bias", "int8"), min_bias=var("min_bias"), max_bias=var("max_bias"))
        sym = mx.sym.contrib.quantized_fully_connected(**syms, num_hidden=hidden, no_bias=not bias,
                                                       flatten=flatten)
        xr = data_real(q, max(abs(dlo), abs(dhi)))
        ref = mx.nd.FullyConnected(nd(xr), nd(offline_real(wq, float(wmax))),
                                   nd(offline_real(bq, float(bmax))) if bias else None,
                                   num_hidden=hidden, no_bias=not bias, flatten=flatten).asnumpy()
        save_case(name, sym, params, {}, {"data": q, "min_data": arr1(dlo), "max_data": arr1(dhi)}, [ref],
                  notes, fp32_tolerance=0.02)

    make("quantized_fc_s8_bias", "int8", (3, 37), 11, True, True, 20,
         "int8 data, K=37, 11 outputs, bias: bias rescaled with 127.5 and truncated, "
         "range from 127 for both operands (MXNet's convention, about 0.4% off FP32).")
    make("quantized_fc_u8_bias", "uint8", (2, 3, 2, 5), 7, True, True, 21,
         "uint8 4-D data flattened to K=30, bias; output range uses 127 for the data and 255 for "
         "the weight (MXNet's S8U8 convention).")
    make("quantized_fc_s8_noflatten", "int8", (2, 3, 9), 5, False, False, 22,
         "int8 3-D data with flatten=false (K = last axis), no bias.")


def pool_input(dtype, x):
    """A quantize_v2 node in front of pooling/BN so MXNet runs its NHWC (JIT) kernels."""
    calib = (-127.5, 127.5) if dtype == "int8" else (0.0, 255.5)
    return mx.sym.contrib.quantize_v2(var("data"), out_type=dtype, min_calib_range=calib[0],
                                      max_calib_range=calib[1])


def pooling_cases():
    r = rng(30)
    for dtype in ("int8", "uint8"):
        lo = -128 if dtype == "int8" else 0
        hi = 127 if dtype == "int8" else 255
        x = r.randint(lo, hi + 1, size=(2, 5, 7, 7)).astype(f32)
        x[0, 0, 0, :4] = [lo, lo, hi, hi]
        x[1, 1] = lo  # one all-minimum channel: max pooling over padding keeps the minimum
        calib_r = 127.5 if dtype == "int8" else 255.5
        cases = [
            ("max_pad", dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max")),
            ("avg_pad", dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type="avg")),
            ("avg_nopadcount", dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg",
                                    count_include_pad=False)),
            ("avg_global", dict(kernel=(1, 1), global_pool=True, pool_type="avg")),
            ("max_global", dict(kernel=(1, 1), global_pool=True, pool_type="max")),
            ("avg_valid_2x2", dict(kernel=(2, 2), stride=(2, 2), pool_type="avg")),
        ]
        for tag, kw in cases:
            qd = pool_input(dtype, x)
            sym = mx.sym.contrib.quantized_pooling(qd[0], qd[1], qd[2], **kw)
            ref = mx.nd.Pooling(nd(x), **kw).asnumpy()
            save_case(f"quantized_pooling_{dtype}_{tag}", sym, {}, {}, {"data": x}, [ref],
                      f"quantize_v2 (scale 1, {dtype}) then _contrib_quantized_pooling {kw}; avg rounds "
                      f"f32(sum * f32(1/divisor)) half to even (the NHWC kernel).", fp32_tolerance=0.01)
        kw = dict(kernel=(2, 2), stride=(2, 2), pool_type="avg", pooling_convention="full")
        qd = pool_input(dtype, x)
        sym = mx.sym.contrib.quantized_pooling(qd[0], qd[1], qd[2], **kw)
        ref = mx.nd.Pooling(nd(x), **kw).asnumpy()
        save_case(f"quantized_pooling_{dtype}_avg_full", sym, {}, {}, {"data": x}, [ref],
                  "Average pooling with pooling_convention=full: MXNet's quantized kernel divides "
                  "windows that hang off the bottom/right edge by the full kernel area, unlike its FP32 "
                  "operator, which divides by the part inside the (padded) input. We follow the FP32 "
                  "operator.", reference="fp32", exact_outputs=[1, 2], fp32_tolerance=0.01)
        _ = calib_r


def simple_cases():
    r = rng(40)
    for dtype in ("int8", "uint8"):
        q = rnd_q(r, dtype, (2, 3, 2, 2))
        lo, hi = (-1.0, 1.5) if dtype == "int8" else (0.0, 2.0)
        inputs = {"data": q, "min_data": arr1(lo), "max_data": arr1(hi)}
        real = data_real(q, max(abs(lo), abs(hi)))
        sym = mx.sym.contrib.quantized_flatten(var("data", dtype), var("min_data"), var("max_data"))
        save_case(f"quantized_flatten_{dtype}", sym, {}, {}, inputs, [real.reshape(2, -1)],
                  f"_contrib_quantized_flatten {dtype}: a copy with shape (N, rest).")
        q2 = q.copy()
        q2.ravel()[:6] = [-128, -1, 0, 1, 127, 5] if dtype == "int8" else [0, 1, 127, 128, 200, 255]
        inputs = {"data": q2, "min_data": arr1(lo), "max_data": arr1(hi)}
        sym = mx.sym.contrib.quantized_act(var("data", dtype), var("min_data"), var("max_data"),
                                           act_type="relu")
        real = np.maximum(data_real(q2, max(abs(lo), abs(hi))), 0)
        if dtype == "int8":
            save_case("quantized_act_int8", sym, {}, {}, inputs, [real],
                      "_contrib_quantized_act relu on int8: max(q, 0), range passed through.")
        else:
            save_case("quantized_act_uint8", sym, {}, {}, inputs, [real],
                      "_contrib_quantized_act relu on uint8: MXNet copies the bytes but types the output "
                      "int8, so values >= 128 read back negative. Correct: the output stays uint8 and "
                      "equals the input (relu of non-negative data).",
                      reference="fp32", exact_outputs=[1, 2], fp32_tolerance=0.0)

    # Embedding: float indices, truncated and clipped.
    w = r.uniform(-1, 1, size=(5, 6)).astype(f32)
    wq, wmin, wmax = offline_quantize(w)
    idx = np.array([[0, 4.7, -1, 7], [2.2, 3, 1, 0.999]], f32)
    sym = mx.sym.contrib.quantized_embedding(var("data"), var("weight", "int8"), var("min_weight"),
                                             var("max_weight"), input_dim=5, output_dim=6)
    rows = np.clip(np.trunc(idx).astype(np.int64), 0, 4)
    save_case("quantized_embedding", sym, {"weight": wq, "min_weight": arr1(wmin), "max_weight": arr1(wmax)},
              {}, {"data": idx}, [s8_real(wq[rows], float(wmax))],
              "_contrib_quantized_embedding: indices truncated toward zero and clipped to [0, input_dim-1].")


def concat_cases():
    r = rng(50)
    combos = [
        ("s8_s8", [("int8", (-1.0, 1.0), 3), ("int8", (-0.5, 3.0), 5)]),
        ("s8_u8", [("int8", (-1.0, 1.0), 3), ("uint8", (0.0, 2.0), 2)]),
        ("u8_u8_u8", [("uint8", (0.0, 1.0), 1), ("uint8", (0.0, 2.0), 3), ("uint8", (0.0, 2.0), 2)]),
        ("u8_s8_same", [("uint8", (0.0, 2.0), 2), ("int8", (-2.0, 2.0), 3)]),
    ]
    for tag, parts in combos:
        datas, mins, maxs, inputs, reals = [], [], [], {}, []
        for i, (dtype, (lo, hi), c) in enumerate(parts):
            q = rnd_q(r, dtype, (2, c, 3, 2))
            q.ravel()[:2] = [-128, 127] if dtype == "int8" else [0, 255]
            datas.append(var(f"data{i}", dtype))
            mins.append(var(f"min{i}"))
            maxs.append(var(f"max{i}"))
            inputs.update({f"data{i}": q, f"min{i}": arr1(lo), f"max{i}": arr1(hi)})
            reals.append(data_real(q, max(abs(lo), abs(hi))))
        args = datas + [x for pair in zip(mins, maxs) for x in pair]
        sym = mx.sym.contrib.quantized_concat(*args, num_args=len(parts), dim=1)
        save_case(f"quantized_concat_{tag}", sym, {}, {}, inputs, [np.concatenate(reals, axis=1)],
                  f"_contrib_quantized_concat of {[p[0] for p in parts]} with ranges "
                  f"{[p[1] for p in parts]}: output int8 if any input is int8, range (min(0, mins), "
                  f"max(0, maxes)); inputs with a different scale are rescaled (round half to even).",
                  fp32_tolerance=0.02)


def elemwise_cases():
    r = rng(60)
    shape = (2, 3, 5)

    def operands(ta, tb):
        a = rnd_q(r, ta, shape)
        b = rnd_q(r, tb, shape)
        a.ravel()[:3] = [-128, 127, 0] if ta == "int8" else [0, 255, 128]
        b.ravel()[:3] = [127, -128, 0] if tb == "int8" else [255, 0, 128]
        ra = (-1.0, 1.0) if ta == "int8" else (0.0, 1.0)
        rb = (-2.0, 1.5) if tb == "int8" else (0.0, 2.0)
        inputs = {"lhs": a, "rhs": b, "lhs_min": arr1(ra[0]), "lhs_max": arr1(ra[1]), "rhs_min": arr1(rb[0]),
                  "rhs_max": arr1(rb[1])}
        return a, b, ra, rb, inputs

    def symbols(ta, tb):
        return dict(lhs=var("lhs", ta), rhs=var("rhs", tb), lhs_min=var("lhs_min"), lhs_max=var("lhs_max"),
                    rhs_min=var("rhs_min"), rhs_max=var("rhs_max"))

    for ta, tb in (("int8", "int8"), ("uint8", "uint8"), ("int8", "uint8"), ("uint8", "int8")):
        for calibrated in (True, False):
            a, b, ra, rb, inputs = operands(ta, tb)
            real = data_real(a, max(map(abs, ra))) + data_real(b, max(map(abs, rb)))
            kw = {}
            if calibrated:
                kw = ({"min_calib_range": -2.5, "max_calib_range": 2.5} if "int8" in (ta, tb)
                      else {"min_calib_range": 0.0, "max_calib_range": 2.5})
            sym = mx.sym.contrib.quantized_elemwise_add(**symbols(ta, tb), **kw)
            tag = f"{'s8' if ta == 'int8' else 'u8'}_{'s8' if tb == 'int8' else 'u8'}_" + (
                "calib" if calibrated else "nocalib")
            mixed = ta != tb
            if mixed and not calibrated:
                save_case(f"quantized_add_{tag}", sym, {}, {}, inputs, [real],
                          "Mixed int8/uint8 add without calibration: MXNet reorders the uint8 operand with "
                          "a factor near 1e6, saturating it to 127 everywhere; its output is garbage. "
                          "Correct: exact int32 sum of both operands on a common scale.",
                          reference="fp32", exact_outputs=[], fp32_tolerance=0.01)
            else:
                save_case(f"quantized_add_{tag}", sym, {}, {}, inputs, [real],
                          f"_contrib_quantized_elemwise_add {ta}+{tb}, calibration {kw or 'none'}"
                          + ("; the uint8 operand is first requantized to int8 (two roundings)." if mixed
                             else "."), fp32_tolerance=0.02)

    # elemwise_mul: int8 only in MXNet.
    a, b, ra, rb, inputs = operands("int8", "int8")
    real = data_real(a, 1.0) * data_real(b, 2.0)
    sym = mx.sym.contrib.quantized_elemwise_mul(**symbols("int8", "int8"))
    save_case("quantized_mul_s8_nocalib", sym, {}, {}, inputs, [real],
              "_contrib_quantized_elemwise_mul int8 x int8 without calibration: exact int32 products.")
    sym = mx.sym.contrib.quantized_elemwise_mul(**symbols("int8", "int8"), enable_float_output=True)
    save_case("quantized_mul_s8_float", sym, {}, {}, inputs, [real],
              "_contrib_quantized_elemwise_mul with enable_float_output: one float32 output.")
    sym = mx.sym.contrib.quantized_elemwise_mul(**symbols("int8", "int8"), min_calib_range=-0.5,
                                                max_calib_range=0.5)
    save_case("quantized_mul_s8_calib_wrap", sym, {}, {}, inputs, [np.clip(real, -0.5, 0.5)],
              "Calibrated elemwise_mul whose products exceed the calibration range (-0.5, 0.5): MXNet "
              "truncates toward zero and wraps modulo 256 instead of rounding and saturating. Correct: "
              "round half to even and saturate (reference = FP32 product clipped to the range).",
              reference="fp32", exact_outputs=[1, 2], fp32_tolerance=0.02)
    a, b, ra, rb, inputs = operands("uint8", "int8")
    sym = mx.sym.contrib.quantized_elemwise_mul(**symbols("uint8", "int8"))
    save_case("quantized_mul_u8_s8", sym, {}, {}, inputs,
              [data_real(a, max(map(abs, ra))) * data_real(b, max(map(abs, rb)))],
              "uint8 x int8 elemwise_mul: MXNet 1.9.1 accepts only int8 operands; the correct result "
              "is the exact int32 product on the combined scale.", reference="fp32", exact_outputs=[],
              fp32_tolerance=0.01, expect_failure=True)


def batch_norm_cases():
    r = rng(70)
    c = 5
    x = r.randint(-128, 128, size=(2, c, 3, 4)).astype(f32)
    x[0, 0, 0, :2] = [-128, 127]
    gamma = r.uniform(0.5, 2, size=c).astype(f32)
    beta = r.uniform(-1, 1, size=c).astype(f32)
    mean = r.uniform(-20, 20, size=c).astype(f32)
    var_ = r.uniform(100, 2000, size=c).astype(f32)
    for dtype in ("int8", "uint8"):
        xin = x if dtype == "int8" else np.abs(x) * 2
        calib_in = 127.5 if dtype == "int8" else 255.5
        for fix_gamma in (False, True):
            g = np.ones_like(gamma) if fix_gamma else gamma
            ref = mx.nd.BatchNorm(nd(np.clip(xin, -calib_in, calib_in)), nd(g), nd(beta), nd(mean), nd(var_),
                                  eps=0.001, fix_gamma=False, use_global_stats=True).asnumpy()
            bound = float(np.round(np.abs(ref).max() * 1.05, 3))
            qd = pool_input(dtype, xin)
            sym = mx.sym.contrib.quantized_batch_norm(qd[0], var("gamma"), var("beta"), var("moving_mean"),
                                                      var("moving_var"), qd[1], qd[2], eps=0.001,
                                                      fix_gamma=fix_gamma, min_calib_range=-bound,
                                                      max_calib_range=bound)
            name = f"quantized_batch_norm_{dtype}" + ("_fix_gamma" if fix_gamma else "")
            if fix_gamma:
                save_case(name, sym, {"gamma": gamma, "beta": beta}, {"moving_mean": mean, "moving_var": var_},
                          {"data": xin}, [ref],
                          "Quantized BatchNorm with fix_gamma=true: MXNet 1.9.1 ignores fix_gamma and "
                          "multiplies by gamma anyway. Correct: gamma = 1 (reference = FP32 BatchNorm).",
                          reference="fp32", exact_outputs=[1, 2], fp32_tolerance=0.03)
            else:
                save_case(name, sym, {"gamma": gamma, "beta": beta}, {"moving_mean": mean, "moving_var": var_},
                          {"data": xin}, [ref],
                          f"quantize_v2 then _contrib_quantized_batch_norm on {dtype} data, calibration "
                          f"(-{bound}, {bound}): output int8; includes oneDNN's extra 1/sqrt(1+eps) factor"
                          + ("; uint8 input is first requantized to int8 (one bit lost)." if dtype == "uint8"
                             else "."), fp32_tolerance=0.03)


# ----------------------------------------------------------------------------
# Fused subgraph cases and models, quantized by MXNet's own passes


def calib_iter(shape, seed, batches=4):
    r = rng(seed)
    data = r.normal(0, 1, size=(batches * shape[0],) + shape[1:]).astype(f32)
    return mx.io.NDArrayIter(data=data, batch_size=shape[0], label=None, data_name="data")


def randomize_bn(net, seed):
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    r = rng(seed)
    for name, p in net.collect_params().items():
        shape = p.shape
        if name.endswith("running_mean"):
            p.set_data(mx.nd.array(r.uniform(-0.3, 0.3, size=shape)))
        elif name.endswith("running_var"):
            p.set_data(mx.nd.array(r.uniform(0.5, 2.0, size=shape)))
        elif name.endswith("gamma"):
            p.set_data(mx.nd.array(r.uniform(0.6, 1.5, size=shape)))
        elif name.endswith("beta"):
            p.set_data(mx.nd.array(r.uniform(-0.3, 0.3, size=shape)))


def export_fp32(net, shape, seed, tmp):
    mx.random.seed(seed)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    net.hybridize()
    net(mx.nd.zeros(shape))
    randomize_bn(net, seed + 1)
    net(mx.nd.zeros(shape))
    prefix = os.path.join(tmp, "fp32")
    net.export(prefix, 0)
    sym, args, auxs = mx.model.load_checkpoint(prefix, 0)
    return sym, args, auxs


def fp32_run(sym, args, auxs, x):
    full = {k: v for k, v in args.items()}
    full["data"] = mx.nd.array(x)
    return bind_run(sym, full, dict(auxs))


def strip_params(qsym, qargs, qauxs):
    names = set(qsym.list_arguments())
    auxn = set(qsym.list_auxiliary_states())
    return ({k: v.asnumpy() for k, v in qargs.items() if k in names},
            {k: v.asnumpy() for k, v in qauxs.items() if k in auxn})


def mkldnn_case(name, fp32, x, shape, calib_mode, dtype, granularity, seed, notes, reference="mxnet",
                tolerance=0.1, excluded=None, kind="model"):
    sym, args, auxs = fp32
    ref = fp32_run(sym, args, auxs, x)
    try:
        qsym, qargs, qauxs = mxq.quantize_model_mkldnn(
            sym, args, auxs, data_names=("data",), label_names=None, ctx=mx.cpu(), excluded_sym_names=excluded,
            calib_mode=calib_mode, calib_data=calib_iter(shape, seed) if calib_mode != "none" else None,
            num_calib_examples=4 * shape[0] if calib_mode != "none" else None, quantized_dtype=dtype,
            quantize_mode="smart", quantize_granularity=granularity, logger=None)
    except Exception as exc:
        print(f"  {name}: quantize_model_mkldnn failed: {str(exc).splitlines()[0]}")
        raise
    p, a = strip_params(qsym, qargs, qauxs)
    save_case(name, qsym, p, a, {"data": x}, ref, notes, reference=reference, fp32_tolerance=tolerance, kind=kind)


def default_case(name, fp32, x, shape, dtype, seed, notes, tolerance=0.1):
    """quantize_model's default (non-fused) flow; needs the FP32 graph left unpartitioned."""
    sym, args, auxs = fp32
    ref = fp32_run(sym, args, auxs, x)
    old = os.environ.get("MXNET_SUBGRAPH_BACKEND")
    os.environ["MXNET_SUBGRAPH_BACKEND"] = "NONE"
    try:
        qsym, qargs, qauxs = mxq.quantize_model(
            sym, args, auxs, data_names=("data",), label_names=None, ctx=mx.cpu(), calib_mode="naive",
            calib_data=calib_iter(shape, seed), num_calib_examples=4 * shape[0], quantized_dtype=dtype,
            quantize_mode="smart", logger=None)
        p, a = strip_params(qsym, qargs, qauxs)
        save_case(name, qsym, p, a, {"data": x}, ref, notes, reference="fp32", fp32_tolerance=tolerance,
                  kind="model")
    finally:
        if old is None:
            del os.environ["MXNET_SUBGRAPH_BACKEND"]
        else:
            os.environ["MXNET_SUBGRAPH_BACKEND"] = old


def net_case(name, net_fn, shape, dtype, calib_mode, seed, notes, tolerance=0.1, reference="mxnet", tmp=None):
    """quantize_net (Gluon API) on a fresh network, exported as symbol + params."""
    net = net_fn()
    fp32 = export_fp32(net, shape, seed, tmp)
    x = rng(seed + 7).normal(0, 1, size=shape).astype(f32)
    ref = fp32_run(*fp32, x)
    qnet = mxq.quantize_net(net, quantized_dtype=dtype, quantize_mode="full", calib_mode=calib_mode,
                            calib_data=calib_iter(shape, seed), num_calib_examples=4 * shape[0], ctx=mx.cpu())
    qnet(mx.nd.array(x))
    prefix = os.path.join(tmp, "qnet")
    qnet.export(prefix, 0)
    qsym, qargs, qauxs = mx.model.load_checkpoint(prefix, 0)
    p, a = strip_params(qsym, qargs, qauxs)
    save_case(name, qsym, p, a, {"data": x}, ref, notes, reference=reference, fp32_tolerance=tolerance,
              kind="model")


class Fused(nn.HybridBlock):
    """Small conv chains that MXNet's MKLDNN pass fuses into one _sg_mkldnn_conv each."""

    def __init__(self, variant, **kw):
        super().__init__(**kw)
        self.variant = variant
        with self.name_scope():
            if variant.startswith("fc"):
                self.fc = nn.Dense(9)
            else:
                self.conv1 = nn.Conv2D(13, 3, padding=1, use_bias=variant != "bn_add_relu")
            if variant == "fc_leaky":
                self.fc2 = nn.Dense(5)
            if variant not in ("relu", "fc", "fc_relu", "fc_leaky"):
                self.bn1 = nn.BatchNorm()
            if "add" in variant:
                self.conv2 = nn.Conv2D(13, 3, padding=1, use_bias=False)
                self.bn2 = nn.BatchNorm()

    def hybrid_forward(self, F, x):
        # MXNet's MKLDNN pass fuses Activation(act_type="relu") but not the `relu` operator.
        if self.variant == "relu":
            return F.Activation(self.conv1(x), act_type="relu")
        if self.variant == "bn":
            return self.bn1(self.conv1(x))
        if self.variant == "bn_add_relu":
            y = self.bn1(self.conv1(x))
            return F.Activation(self.bn2(self.conv2(y)) + y, act_type="relu")
        if self.variant == "add_relu_u8":
            y = F.Activation(self.bn1(self.conv1(x)), act_type="relu")
            return F.Activation(self.bn2(self.conv2(y)) + y, act_type="relu")
        if self.variant == "relu6":
            return F.clip(self.bn1(self.conv1(x)), 0, 6)
        if self.variant == "leaky":
            return F.LeakyReLU(self.bn1(self.conv1(x)), slope=0.1)
        if self.variant == "fc_relu":
            return F.Activation(self.fc(x), act_type="relu")
        if self.variant == "fc":
            return self.fc(x)
        if self.variant == "fc_leaky":
            return self.fc2(F.LeakyReLU(self.fc(x), slope=0.1))
        raise ValueError(self.variant)


def fused_cases(tmp):
    shape = (2, 5, 8, 8)
    for i, (variant, calib, dtype, gran, note, reference) in enumerate([
        ("relu", "naive", "auto", "tensor-wise", "conv+relu, naive calibration, auto: uint8 output.", "mxnet"),
        ("relu", "none", "auto", "tensor-wise", "conv+relu without calibration: int32 output, then "
         "_contrib_requantize and _contrib_dequantize.", "mxnet"),
        ("bn", "naive", "int8", "tensor-wise", "conv+BN folded, no activation: int8 output.", "mxnet"),
        ("bn", "entropy", "auto", "tensor-wise", "conv+BN folded, entropy calibration.", "mxnet"),
        ("bn_add_relu", "naive", "auto", "tensor-wise",
         "conv+BN, then conv+BN+residual add+relu. The residual is int8 (conv without activation) "
         "while the fused output is declared uint8: MXNet saturates the sum at 127 (the residual's "
         "dtype), losing the top half of the range. Correct: saturate to uint8.", "fp32"),
        ("add_relu_u8", "naive", "auto", "tensor-wise",
         "conv+BN+relu, then conv+BN+residual add+relu with a uint8 residual: dtypes agree.", "mxnet"),
        ("relu6", "naive", "auto", "tensor-wise", "conv+BN+clip(0, 6) (relu6 as bounded relu).", "mxnet"),
        ("leaky", "naive", "auto", "tensor-wise", "conv+BN+LeakyReLU(0.1): int8 output keeps negatives.",
         "mxnet"),
    ]):
        net = Fused(variant, prefix=f"f{variant}_")
        fp32 = export_fp32(net, shape, 100 + i, tmp)
        x = rng(200 + i).normal(0, 1, size=shape).astype(f32)
        name = f"sg_conv_{variant}_{calib}_{dtype}"
        mkldnn_case(name, fp32, x, shape, calib, dtype, gran, 300 + i,
                    f"quantize_model_mkldnn on a one-block network; {note}", reference=reference,
                    tolerance=0.1, kind="fused")
    shape = (3, 2, 3, 3)
    for i, (variant, calib, dtype, gran, note, reference) in enumerate([
        ("fc_relu", "naive", "auto", "tensor-wise", "FC+relu, offline int8 weights, uint8 output; "
         "the final dequantize is fused (enable_float_output) only without an activation.", "mxnet"),
        ("fc", "naive", "int8", "tensor-wise", "FC with fused dequantize (enable_float_output).", "mxnet"),
        ("fc", "naive", "int8", "channel-wise", "FC with float32 weights quantized per output row at "
         "bind, float output.", "mxnet"),
        ("fc_relu", "naive", "auto", "channel-wise", "channel-wise FC+relu, uint8 output.", "mxnet"),
        ("fc", "none", "int8", "tensor-wise", "FC without calibration: int32 output + requantize.", "mxnet"),
        ("fc_leaky", "naive", "auto", "tensor-wise",
         "FC+LeakyReLU(0.1) followed by a second FC: MXNet types the first FC's calibrated output "
         "uint8 and drops every negative value. Correct: int8 output.", "fp32"),
    ]):
        net = Fused(variant, prefix=f"f{variant}_")
        fp32 = export_fp32(net, shape, 400 + i, tmp)
        x = rng(500 + i).normal(0, 1, size=shape).astype(f32)
        name = f"sg_{variant}_{calib}_{dtype}_{gran.split('-')[0]}"
        mkldnn_case(name, fp32, x, shape, calib, dtype, gran, 600 + i,
                    f"quantize_model_mkldnn on one FullyConnected layer; {note}", reference=reference,
                    tolerance=0.1, kind="fused")


# ----------------------------------------------------------------------------
# Models


class FCN(nn.HybridBlock):
    """Fully convolutional net with BatchNorm on its raw input (negative activations)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.bn_in = nn.BatchNorm()
            self.body = nn.HybridSequential()
            for ch, stride in ((16, 1), (24, 2), (32, 1), (32, 1)):
                self.body.add(nn.Conv2D(ch, 3, strides=stride, padding=1, use_bias=False), nn.BatchNorm(),
                              nn.Activation("relu"))
            self.head = nn.Conv2D(8, 1)

    def hybrid_forward(self, F, x):
        return self.head(self.body(self.bn_in(x)))


class MobileV1(nn.HybridBlock):
    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.features = nn.HybridSequential()
            self.features.add(nn.Conv2D(8, 3, padding=1, use_bias=False), nn.BatchNorm(), nn.Activation("relu"))
            c = 8
            for out, stride in ((16, 1), (24, 2), (24, 1), (32, 2)):
                self.features.add(nn.Conv2D(c, 3, strides=stride, padding=1, groups=c, use_bias=False),
                                  nn.BatchNorm(), nn.Activation("relu"),
                                  nn.Conv2D(out, 1, use_bias=False), nn.BatchNorm(), nn.Activation("relu"))
                c = out
            self.features.add(nn.GlobalAvgPool2D(), nn.Flatten())
            self.output = nn.Dense(10)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


class InvertedResidual(nn.HybridBlock):
    def __init__(self, cin, cout, stride, t=4, **kw):
        super().__init__(**kw)
        self.use_shortcut = stride == 1 and cin == cout
        with self.name_scope():
            self.out = nn.HybridSequential()
            hid = cin * t
            self.out.add(nn.Conv2D(hid, 1, use_bias=False), nn.BatchNorm())
            self.out.add(nn.HybridLambda(lambda F, x: F.clip(x, 0, 6)))
            self.out.add(nn.Conv2D(hid, 3, strides=stride, padding=1, groups=hid, use_bias=False), nn.BatchNorm())
            self.out.add(nn.HybridLambda(lambda F, x: F.clip(x, 0, 6)))
            self.out.add(nn.Conv2D(cout, 1, use_bias=False), nn.BatchNorm())

    def hybrid_forward(self, F, x):
        y = self.out(x)
        return y + x if self.use_shortcut else y


class MobileV2(nn.HybridBlock):
    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.features = nn.HybridSequential()
            self.features.add(nn.Conv2D(8, 3, padding=1, use_bias=False), nn.BatchNorm(),
                              nn.HybridLambda(lambda F, x: F.clip(x, 0, 6)))
            for cin, cout, s in ((8, 8, 1), (8, 12, 2), (12, 12, 1), (12, 16, 2)):
                self.features.add(InvertedResidual(cin, cout, s))
            self.features.add(nn.Conv2D(48, 1, use_bias=False), nn.BatchNorm(),
                              nn.HybridLambda(lambda F, x: F.clip(x, 0, 6)))
            self.features.add(nn.GlobalAvgPool2D(), nn.Flatten())
            self.output = nn.Dense(10)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def resnet(version):
    from mxnet.gluon.model_zoo.vision.resnet import BasicBlockV1, BasicBlockV2, ResNetV1, ResNetV2
    if version == 1:
        return lambda: ResNetV1(BasicBlockV1, [1, 1, 1], [8, 8, 16, 32], classes=10, thumbnail=True,
                                prefix="resnetv1_")
    return lambda: ResNetV2(BasicBlockV2, [1, 1, 1], [8, 8, 16, 32], classes=10, thumbnail=True,
                            prefix="resnetv2_")


def model_cases(tmp):
    shape = (2, 3, 32, 32)
    fcn = FCN(prefix="fcn_")
    fp32 = export_fp32(fcn, shape, 700, tmp)
    x = rng(701).normal(0, 1, size=shape).astype(f32)
    uint8_loss = (" quantized_dtype=uint8 makes every quantize_v2 and requantize node clamp negative "
                  "values to 0 although the calibrated minimum is negative, so the graph itself is far from "
                  "FP32; the tolerance only bounds that loss.")
    for dtype in ("int8", "auto", "uint8"):
        default_case(f"fcn_default_{dtype}", fp32, x, shape, dtype, 702,
                     f"quantize_model default flow (quantize_v2 -> _contrib_quantized_conv -> requantize), "
                     f"quantized_dtype={dtype}, naive calibration. The input BatchNorm makes the first "
                     f"quantized layer see negative data. MXNet's quantized_conv accepts only uint8 data "
                     f"and reports a range off by 255.5/127 for it, so FP32 is the reference."
                     + (uint8_loss if dtype == "uint8" else ""), tolerance=1.0 if dtype == "uint8" else 0.1)
    for calib in ("naive", "entropy"):
        for dtype in ("int8", "uint8", "auto"):
            mkldnn_case(f"fcn_mkldnn_{calib}_{dtype}", fp32, x, shape, calib, dtype, "tensor-wise", 703,
                        f"quantize_model_mkldnn, calib_mode={calib}, quantized_dtype={dtype}. "
                        + ("With uint8 the first fused conv receives data whose calibrated minimum is "
                           "negative: MXNet aborts (Expect int8 when data_min < 0.0). The quantize node "
                           "in front of it clamps the negative input values to 0, which costs accuracy by "
                           "construction." if dtype == "uint8" else "")
                        + (" Entropy calibration with int8 stores a symmetric range for ReLU outputs, so "
                           "the next fused conv gets uint8 data with a negative minimum and MXNet aborts."
                           if (calib, dtype) == ("entropy", "int8") else ""),
                        tolerance=0.2 if dtype == "uint8" else 0.1)

    builders = [("resnet_v1", resnet(1)), ("resnet_v2", resnet(2)),
                ("mobilenet_v1", lambda: MobileV1(prefix="mbv1_")), ("mobilenet_v2", lambda: MobileV2(prefix="mbv2_"))]
    for i, (mname, build) in enumerate(builders):
        seed = 800 + 10 * i
        # Where MXNet 1.9.1 computes a wrong answer for this model, FP32 is the reference.
        quirk = {
            "resnet_v1": " ResNet-v1 blocks add an int8 shortcut into a relu-activated (uint8) fused output; "
                         "MXNet saturates those sums at 127 (the shortcut's type), so FP32 is the reference.",
            "resnet_v2": " The first block adds a uint8 shortcut (output of a relu-fused conv) into an int8 "
                         "fused output; MXNet saturates that sum to uint8 and reads the bytes as int8 "
                         "(negatives become 0), so FP32 is the reference.",
            "mobilenet_v2": " Inverted-residual blocks add a uint8 shortcut into an int8 fused output; MXNet "
                            "saturates those sums to uint8 and reads the bytes as int8 (negatives become 0), "
                            "so FP32 is the reference.",
        }
        net_quirk = dict(quirk)
        net_quirk["resnet_v2"] = quirk["resnet_v2"] + (" quantize_net also quantizes the input BatchNorm (fix_gamma=true, random "
                                  "gamma here); MXNet's quantized BatchNorm ignores fix_gamma, so FP32 is the "
                                  "reference.")
        for dtype in ("auto", "int8"):
            net_case(f"{mname}_net_{dtype}", build, shape, dtype, "naive", seed,
                     f"quantize_net(quantized_dtype={dtype}, calib_mode=naive) on a reduced-width "
                     f"{mname} (32x32 input, random weights).{net_quirk.get(mname, '')}",
                     reference="fp32" if mname in net_quirk else "mxnet", tmp=tmp)
        net = build()
        fp32 = export_fp32(net, shape, seed, tmp)
        x = rng(seed + 7).normal(0, 1, size=shape).astype(f32)
        for gran in ("tensor-wise", "channel-wise"):
            mkldnn_case(f"{mname}_mkldnn_{gran.split('-')[0]}", fp32, x, shape, "naive", "auto", gran, seed + 3,
                        f"quantize_model_mkldnn(naive, auto, quantize_granularity={gran}) on a reduced-width "
                        f"{mname}.{quirk.get(mname, '')}", reference="fp32" if mname in quirk else "mxnet",
                        tolerance=0.1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only the groups whose name contains this text")
    args = parser.parse_args()
    tmp = os.path.join(ROOT, ".tmp")
    os.makedirs(tmp, exist_ok=True)
    groups = [("quantize", quantize_cases), ("dequantize", dequantize_cases), ("requantize", requantize_cases),
              ("conv", conv_cases), ("fc", fc_cases), ("pooling", pooling_cases), ("simple", simple_cases),
              ("concat", concat_cases), ("elemwise", elemwise_cases), ("batch_norm", batch_norm_cases),
              ("fused", lambda: fused_cases(tmp)), ("models", lambda: model_cases(tmp))]
    failed = []
    for name, fn in groups:
        if args.only and args.only not in name:
            continue
        print(f"[{name}]")
        try:
            fn()
        except Exception:
            traceback.print_exc()
            failed.append(name)
    shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        print("groups that failed:", failed)
        sys.exit(1)


if __name__ == "__main__":
    main()
