"""Quantize the FP32 model-zoo fixtures with MXNet 1.9.1 and save them as
quantized golden cases.

For each model under tests/fixtures/models/ that the quantized fixtures do
not already cover (AlexNet, DenseNet, Inception-v3, SqueezeNet 1.0/1.1,
VGG-11 with and without BatchNorm, and the segmentation heads), this runs
`quantize_model_mkldnn` (naive calibration, quantized_dtype `auto`) tensor-wise and
channel-wise, and writes tests/fixtures/quantized/zoo_<model>_<granularity>/
in the layout of tools/make_quant_fixtures.py, with the FP32 fixture's
output as the reference.

Run with the MXNet 1.9.1 venv: VENV/bin/python tools/make_zoo_quant_fixtures.py
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mxnet as mx  # noqa: E402

from make_quant_fixtures import mkldnn_case  # noqa: E402

MODELS = ["alexnet", "densenet121", "inception_v3", "squeezenet1.0", "squeezenet1.1", "vgg11", "vgg11_bn",
          "fcn_resnet50"]

# Models whose MXNet output is not the golden value, and why. Their test
# compares with the FP32 model instead.
FP32_REFERENCE = {
    "fcn_resnet50": "MXNet 1.9.1 is wrong here: its fused residual sum saturates the int8 shortcut into a uint8 "
                    "output (relative L2 drift from FP32 about 0.2).",
    "squeezenet1.0": "MXNet's final FP32 global average pooling rounds differently in the last bit (at most "
                     "2.4e-7); the int8 layers before it match MXNet bit for bit.",
    "squeezenet1.1": "MXNet's final FP32 global average pooling rounds differently in the last bit (at most "
                     "1.5e-7); the int8 layers before it match MXNet bit for bit.",
}
FIXTURES = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "models")


def main():
    for i, model in enumerate(MODELS):
        prefix = os.path.join(FIXTURES, model, model)
        fp32 = mx.model.load_checkpoint(prefix, 0)
        io = mx.nd.load(prefix + "-io.params")
        x = io["data"].asnumpy()
        for granularity in ("tensor-wise", "channel-wise"):
            name = f"zoo_{model}_{granularity.split('-')[0]}"
            print(f"[{name}]", flush=True)
            why = FP32_REFERENCE.get(model, "")
            mkldnn_case(name, fp32, x, x.shape, "naive", "auto", granularity, 2000 + i,
                        f"tests/fixtures/models/{model} quantized by quantize_model_mkldnn (naive calibration on "
                        f"random data, quantized_dtype=auto, {granularity}). {why}".strip(),
                        reference="fp32" if why else "mxnet", tolerance=0.05)


if __name__ == "__main__":
    main()
