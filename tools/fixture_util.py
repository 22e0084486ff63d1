"""Shared helpers for the fixture generator (see make_fixtures.py).

Every helper here runs against the real MXNet 1.9.1 Python package, which is
the oracle the golden files record.
"""

import contextlib
import json
import logging
import math
import os
import re
import subprocess
import sys
import zlib

import numpy as np

import mxnet as mx

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO_ROOT, "tests", "fixtures")

# MXNet type flags (mshadow TypeFlag) for the dtypes the Python frontend maps.
BFLOAT16 = np.dtype([("bfloat16", np.uint16)])
TYPE_FLAGS = {
    "float32": 0,
    "float64": 1,
    "float16": 2,
    "uint8": 3,
    "int32": 4,
    "int8": 5,
    "int64": 6,
    "bool": 7,
    "bfloat16": 12,
}


def seed_for(name):
    """Return a 31-bit seed derived from a fixture name.

    Each fixture seeds its own generators from its name, so regenerating
    one part (or one case) gives the same bytes as regenerating everything.
    """
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


def rng_for(name):
    """Seed MXNet's global generator and return a numpy RandomState for `name`."""
    seed = seed_for(name)
    mx.random.seed(seed)
    return np.random.RandomState(seed)


def remove_stale_dirs(parent, keep):
    """Delete subdirectories of `parent` whose names are not in `keep` (cases removed from the generator)."""
    import shutil

    for entry in sorted(os.listdir(parent)):
        path = os.path.join(parent, entry)
        if os.path.isdir(path) and entry not in keep:
            shutil.rmtree(path)


def ensure_dir(path):
    os.makedirs(path, exist_ok=True)
    return path


def json_text(obj, indent=0):
    """Format `obj` as indented JSON with every list of scalars on one line.

    Manifests hold long value lists; one number per line would make them
    hard to read and diff.
    """
    pad = " " * indent
    inner = " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [
            "%s%s: %s" % (inner, json.dumps(key), json_text(value, indent + 1))
            for key, value in obj.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(item, (dict, list, tuple)) for item in obj):
            return json.dumps(list(obj), allow_nan=False)
        items = [inner + json_text(item, indent + 1) for item in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, allow_nan=False, ensure_ascii=False)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        f.write(json_text(obj))
        f.write("\n")


def dtype_name(dtype):
    """Return the MXNet dtype name of a numpy dtype ('bfloat16' for MXNet's record dtype)."""
    dtype = np.dtype(dtype)
    if dtype == BFLOAT16:
        return "bfloat16"
    if dtype == np.bool_:
        return "bool"
    return dtype.name


def bfloat16_bits_to_float32(bits):
    """Widen raw bfloat16 bit patterns (uint16) to float32 values."""
    return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32)


def flat_values(array):
    """Return the elements of an NDArray or numpy array as a flat JSON-ready list.

    float16 and bfloat16 give their exact float value, bool gives true/false,
    integer dtypes give ints.
    """
    if isinstance(array, mx.nd.NDArray):
        array = array.asnumpy()
    array = np.asarray(array)
    if array.dtype == BFLOAT16:
        return [float(v) for v in bfloat16_bits_to_float32(array.view(np.uint16)).ravel()]
    if array.dtype == np.bool_:
        return [bool(v) for v in array.ravel()]
    if np.issubdtype(array.dtype, np.integer):
        return [int(v) for v in array.ravel()]
    return [float(v) for v in array.astype(np.float64).ravel()]


def describe_array(name, array):
    """Return the manifest entry (name, shape, dtype, type_flag, values) of one array."""
    dtype = dtype_name(array.dtype)
    return {
        "name": name,
        "shape": [int(d) for d in array.shape],
        "dtype": dtype,
        "type_flag": TYPE_FLAGS[dtype],
        "values": flat_values(array),
    }


def error_text(exc):
    """Return the message of an MXNet error without the traceback or log timestamps.

    MXNet 1.9.1 formats errors as a 'Traceback' header and 'File "...", line N'
    lines, then the message ('MXNetError: ...', 'JSONReader: ...') and
    possibly a stack trace. Only the message is kept, because file names,
    line numbers and timestamps vary between builds.
    """
    kept = []
    for line in str(exc).strip().splitlines():
        line = line.rstrip()
        if line.startswith("Traceback (most recent call last)") or line.startswith('  File "'):
            continue
        if line.startswith("Stack trace"):
            break
        kept.append(re.sub(r"\[\d\d:\d\d:\d\d\] [^ ]*:\d+: ", "", line))
    return "\n".join(kept).strip()


@contextlib.contextmanager
def subgraph_backend(value):
    """Set MXNET_SUBGRAPH_BACKEND while binding executors inside the block.

    MXNet 1.9.1 reads the variable at every bind, so it can change inside one
    process. `value=None` removes it, which selects MXNet's default (the
    MKLDNN fusion pass on this CPU build).
    """
    old = os.environ.get("MXNET_SUBGRAPH_BACKEND")
    if value is None:
        os.environ.pop("MXNET_SUBGRAPH_BACKEND", None)
    else:
        os.environ["MXNET_SUBGRAPH_BACKEND"] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MXNET_SUBGRAPH_BACKEND", None)
        else:
            os.environ["MXNET_SUBGRAPH_BACKEND"] = old


def run_symbol(sym, inputs, arg_params, aux_params, fusion):
    """Bind `sym` for inference, copy inputs and params in, and return the outputs.

    `inputs` maps data variable names to numpy arrays. `fusion=False` binds
    with MXNET_SUBGRAPH_BACKEND=NONE, so every operator runs on its own;
    `fusion=True` uses MXNet's default MKLDNN subgraph fusion.
    """
    shapes = {name: value.shape for name, value in inputs.items()}
    types = {name: value.dtype for name, value in inputs.items()}
    for name, value in list(arg_params.items()) + list(aux_params.items()):
        shapes.setdefault(name, value.shape)
        types.setdefault(name, value.dtype)
    with subgraph_backend(None if fusion else "NONE"):
        executor = sym.simple_bind(mx.cpu(), grad_req="null", type_dict=types, **shapes)
    for name, array in executor.arg_dict.items():
        if name in inputs:
            array[:] = mx.nd.array(inputs[name], dtype=array.dtype)
        elif name in arg_params:
            arg_params[name].copyto(array)
        else:
            raise KeyError("no value for argument %r of the symbol" % name)
    for name, array in executor.aux_dict.items():
        if name not in aux_params:
            raise KeyError("no value for auxiliary state %r of the symbol" % name)
        aux_params[name].copyto(array)
    outputs = executor.forward(is_train=False)
    return [output.asnumpy() for output in outputs]


def max_abs_diff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)))


def run_python_isolated(code, timeout=60):
    """Run `code` in a fresh Python process and return (returncode, stdout, stderr).

    Used for inputs that may crash or hang MXNet (a cyclic graph, for one),
    so a failure there cannot take the generator down. returncode is None
    on timeout.
    """
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None, "", "timed out after %d s" % timeout
    return proc.returncode, proc.stdout, proc.stderr


def run_native_cpu(directories, write=False):
    """Run fixture directories with MKLDNN disabled, in a child process (see fixture_native.py).

    Returns {directory: {"max_abs_diff": x} | {"written": n} | {"error": text}}.
    """
    import tempfile

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixture_native.py")
    with tempfile.TemporaryDirectory() as tmp:
        result_path = os.path.join(tmp, "result.json")
        command = [sys.executable, script, result_path] + (["--write"] if write else []) + list(directories)
        subprocess.run(command, check=True, capture_output=True)
        with open(result_path, encoding="utf-8") as f:
            return json.load(f)


def record_native_check(directories):
    """Compare fixtures with MXNet's native CPU kernels (MKLDNN off) and record it in each meta.

    A difference above 1e-3 times the largest output magnitude (at least 1)
    counts as a mismatch, and the meta `notes` say so.
    """
    results = run_native_cpu(directories)
    for directory, result in results.items():
        name = os.path.basename(directory)
        meta_path = os.path.join(directory, name + "-meta.json")
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        checks = meta["checks"]
        diff = result.get("max_abs_diff")
        tolerance = 1e-3 * max(1.0, result.get("max_abs_output", 1.0))
        if "error" in result:
            checks["native_cpu_error"] = result["error"]
            finding = "fails (%s)" % result["error"]
        elif not math.isfinite(diff) or diff > tolerance:
            # The size of a wrong result is not recorded because it changes from run to run.
            checks["max_abs_diff_native_cpu"] = None
            checks["native_cpu_mismatch"] = True
            finding = "returns values more than %.3g away from the golden outputs" % tolerance
        else:
            checks["max_abs_diff_native_cpu"] = diff
            finding = None
        if finding:
            meta["notes"] += (
                " MXNet 1.9.1's native CPU kernel (MXNET_MKLDNN_ENABLED=0) %s; the golden outputs "
                "come from the MKLDNN kernel%s." % (finding, ", which matches numpy" if "max_abs_diff_numpy" in checks else "")
            )
            meta["notes"] = meta["notes"].strip()
        write_json(meta_path, meta)
        logging.info("  %s: native CPU %s", name, result)
