"""Build the bundled demo model in models/fcn-bn/ with MXNet 1.9.1.

The model is a small fully convolutional network whose first layer is a
BatchNorm on the raw input, so the first quantized convolution sees negative
data. It is quantized with MXNet's default flow
(`mx.contrib.quantization.quantize_model`, signed int8, naive calibration),
which MXNet 1.9.1's own CPU build cannot run. The script writes:

  fcn-bn-symbol.json, fcn-bn-0000.params            the FP32 model
  fcn-bn-int8-symbol.json, fcn-bn-int8-0000.params  the int8 model
  input.npy                                          one input image
  fcn-bn-fp32-output.npy                             MXNet's FP32 output
  mxnet-int8-error.txt                               what MXNet 1.9.1 says
                                                     when it runs the int8 model

Run with the MXNet 1.9.1 venv: VENV/bin/python tools/make_demo_model.py
"""

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet.contrib import quantization as mxq  # noqa: E402

from make_quant_fixtures import FCN, calib_iter, export_fp32  # noqa: E402

OUT = os.path.join(os.path.dirname(HERE), "models", "fcn-bn")
SHAPE = (1, 3, 64, 64)


def save_checkpoint(prefix, sym, args, auxs):
    sym.save(prefix + "-symbol.json")
    blob = {"arg:" + k: v for k, v in args.items()}
    blob.update({"aux:" + k: v for k, v in auxs.items()})
    mx.nd.save(prefix + "-0000.params", blob)


def run(sym, args, auxs, x):
    bound = dict(args)
    bound["data"] = x
    exe = sym.bind(mx.cpu(), args=bound, aux_states=dict(auxs), grad_req="null")
    return exe.forward(is_train=False)[0].asnumpy()


def main():
    os.makedirs(OUT, exist_ok=True)
    tmp = os.path.join(OUT, ".tmp")
    os.makedirs(tmp, exist_ok=True)
    os.environ["MXNET_SUBGRAPH_BACKEND"] = "NONE"
    sym, args, auxs = export_fp32(FCN(prefix="fcn_"), SHAPE, 1900, tmp)
    x = np.random.default_rng(1901).normal(0, 1, size=SHAPE).astype(np.float32)
    save_checkpoint(os.path.join(OUT, "fcn-bn"), sym, args, auxs)
    np.save(os.path.join(OUT, "input.npy"), x)
    np.save(os.path.join(OUT, "fcn-bn-fp32-output.npy"), run(sym, args, auxs, mx.nd.array(x)))

    qsym, qargs, qauxs = mxq.quantize_model(
        sym, args, auxs, data_names=("data",), label_names=None, ctx=mx.cpu(), calib_mode="naive",
        calib_data=calib_iter(SHAPE, 1902), num_calib_examples=4, quantized_dtype="int8",
        quantize_mode="smart", logger=None)
    names = set(qsym.list_arguments())
    qargs = {k: v for k, v in qargs.items() if k in names}
    save_checkpoint(os.path.join(OUT, "fcn-bn-int8"), qsym, qargs, qauxs)
    try:
        run(qsym, qargs, qauxs, mx.nd.array(x))
        message = "MXNet 1.9.1 ran the int8 model without an error.\n"
    except mx.base.MXNetError as exc:
        first = [line for line in str(exc).splitlines() if "Check failed" in line or "Error" in line]
        message = "MXNet 1.9.1 fails on the int8 model:\n" + "\n".join(first[:3]) + "\n"
    with open(os.path.join(OUT, "mxnet-int8-error.txt"), "w") as f:
        f.write(message)
    shutil.rmtree(tmp, ignore_errors=True)
    print(message)


if __name__ == "__main__":
    main()
