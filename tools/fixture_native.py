"""Run fixture graphs on MXNet's own CPU operators, with MKLDNN (oneDNN) disabled.

Usage: python fixture_native.py RESULT_JSON [--write] DIR...

Each DIR is a fixture directory <name>/ with <name>-symbol.json,
<name>-0000.params and <name>-io.params. Data inputs are the io entries
whose names do not start with "output". The graph is bound with
MXNET_SUBGRAPH_BACKEND=NONE and run with is_train=False. RESULT_JSON gets,
per directory, the max absolute difference from each stored output, or
the error text if MXNet failed. With --write, the outputs are written into
the io file instead (for operators whose MKLDNN path fails in 1.9.1).

MXNET_MKLDNN_ENABLED is read once when libmxnet loads, so this runs as a
separate process started by the generator.
"""

import os
import sys

os.environ["MXNET_MKLDNN_ENABLED"] = "0"
os.environ["MXNET_STORAGE_FALLBACK_LOG_VERBOSE"] = "0"

import json  # noqa: E402

import mxnet as mx  # noqa: E402

from fixture_util import error_text, max_abs_diff, run_symbol  # noqa: E402


def run_directory(directory, write):
    name = os.path.basename(os.path.normpath(directory))
    prefix = os.path.join(directory, name)
    symbol = mx.sym.load(prefix + "-symbol.json")
    saved = mx.nd.load(prefix + "-0000.params")
    if isinstance(saved, list):  # an empty list file loads as a list
        saved = {}
    arg_params = {k[4:]: v for k, v in saved.items() if k.startswith("arg:")}
    aux_params = {k[4:]: v for k, v in saved.items() if k.startswith("aux:")}
    io = mx.nd.load(prefix + "-io.params")
    inputs = {k: v.asnumpy() for k, v in io.items() if not k.startswith("output")}
    outputs = run_symbol(symbol, inputs, arg_params, aux_params, fusion=False)
    if write:
        kept = {k: v for k, v in io.items() if not k.startswith("output")}
        for index, output in enumerate(outputs):
            kept["output%d" % index] = mx.nd.array(output, dtype=output.dtype)
        mx.nd.save(prefix + "-io.params", kept)
        return {"written": len(outputs)}
    stored = [io["output%d" % i].asnumpy() for i in range(len(outputs))]
    return {
        "max_abs_diff": max(max_abs_diff(a, b) for a, b in zip(stored, outputs)),
        "max_abs_output": max(float(abs(a.astype("float64")).max()) if a.size else 0.0 for a in stored),
    }


def main():
    result_path = sys.argv[1]
    write = sys.argv[2] == "--write"
    directories = sys.argv[3:] if write else sys.argv[2:]
    results = {}
    for directory in directories:
        try:
            results[directory] = run_directory(directory, write)
        except mx.base.MXNetError as exc:
            results[directory] = {"error": error_text(exc)}
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
