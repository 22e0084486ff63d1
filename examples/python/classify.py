"""Classify one input with libmxnet.so through ctypes alone (no mxnet package).

    python3 classify.py LIBMXNET MODEL-symbol.json MODEL-0000.params INPUT.params [INPUT_NAME]

INPUT.params is an NDArray list file whose first array is the input. LIBMXNET
is the path of libmxnet.so (for this project: target/release/libmxnet.so).
Prints the output shape and the top-5 classes of each image; with
MXNET_EXAMPLE_DUMP set, also every output value.
"""

import ctypes
import os
import sys

mx_uint = ctypes.c_uint32


def check(lib, rc, what):
    if rc != 0:
        raise RuntimeError(f"{what} failed: {lib.MXGetLastError().decode()}")


def load_input(lib, path):
    """Read the first array of an NDArray list file with MXNDListCreate."""
    data = open(path, "rb").read()
    handle = ctypes.c_void_p()
    length = mx_uint()
    check(lib, lib.MXNDListCreate(data, len(data), ctypes.byref(handle), ctypes.byref(length)), "MXNDListCreate")
    key = ctypes.c_char_p()
    values = ctypes.POINTER(ctypes.c_float)()
    shape = ctypes.POINTER(mx_uint)()
    ndim = mx_uint()
    check(lib, lib.MXNDListGet(handle, 0, ctypes.byref(key), ctypes.byref(values),
                               ctypes.byref(shape), ctypes.byref(ndim)), "MXNDListGet")
    dims = [shape[i] for i in range(ndim.value)]
    count = 1
    for d in dims:
        count *= d
    copy = (ctypes.c_float * count)(*values[:count])
    check(lib, lib.MXNDListFree(handle), "MXNDListFree")
    return dims, copy


def main(argv):
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    lib = ctypes.CDLL(argv[1])
    lib.MXGetLastError.restype = ctypes.c_char_p
    input_name = argv[5] if len(argv) > 5 else "data"
    symbol = open(argv[2], "rb").read()
    params = open(argv[3], "rb").read()
    dims, values = load_input(lib, argv[4])

    keys = (ctypes.c_char_p * 1)(input_name.encode())
    indptr = (mx_uint * 2)(0, len(dims))
    shape = (mx_uint * len(dims))(*dims)
    pred = ctypes.c_void_p()
    check(lib, lib.MXPredCreate(ctypes.c_char_p(symbol), params, len(params), 1, 0, 1, keys, indptr, shape,
                                ctypes.byref(pred)), "MXPredCreate")
    check(lib, lib.MXPredSetInput(pred, input_name.encode(), values, len(values)), "MXPredSetInput")
    check(lib, lib.MXPredForward(pred), "MXPredForward")

    out_shape = ctypes.POINTER(mx_uint)()
    out_ndim = mx_uint()
    check(lib, lib.MXPredGetOutputShape(pred, 0, ctypes.byref(out_shape), ctypes.byref(out_ndim)),
          "MXPredGetOutputShape")
    out_dims = [out_shape[i] for i in range(out_ndim.value)]
    count = 1
    for d in out_dims:
        count *= d
    out = (ctypes.c_float * count)()
    check(lib, lib.MXPredGetOutput(pred, 0, out, count), "MXPredGetOutput")
    check(lib, lib.MXPredFree(pred), "MXPredFree")

    print("output shape:", " ".join(str(d) for d in out_dims))
    batch = out_dims[0] if out_dims else 1
    classes = count // max(batch, 1)
    for b in range(batch):
        row = out[b * classes:(b + 1) * classes]
        top = sorted(range(classes), key=lambda c: -row[c])[:5]
        print(f"image {b} top-5:", " ".join(f"{c} ({row[c]:.4f})" for c in top))
    if os.environ.get("MXNET_EXAMPLE_DUMP"):
        for i, v in enumerate(out):
            print(f"output[{i}] = {v:.9g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
