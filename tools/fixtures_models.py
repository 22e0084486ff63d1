"""Part `models`: FP32 model-zoo architectures at reduced width, with MXNet's outputs.

Each model directory tests/fixtures/models/<name>/ holds
    <name>-symbol.json, <name>-0000.params  as HybridBlock.export writes them
    <name>-io.params   named list: data = the input, output0.. = MXNet's outputs
    <name>-meta.json   input shapes, argument/aux/output lists, checks, notes

Architectures come from mxnet.gluon.model_zoo.vision and gluoncv. Where a
class hard-codes its widths, it is built with its module's `nn` replaced by
`ScaledLayers`, which divides the channel counts of Conv2D, Dense and
BatchNorm. The operator sequence and every other attribute stay as the
class writes them.
"""

import contextlib
import importlib
import logging
import os

import numpy as np

import mxnet as mx
from mxnet import autograd, gluon
from mxnet.gluon import nn
from mxnet.gluon.model_zoo import vision

from fixture_util import (
    FIXTURES,
    ensure_dir,
    max_abs_diff,
    record_native_check,
    remove_stale_dirs,
    rng_for,
    run_symbol,
    write_json,
)

MODELS_DIR = os.path.join(FIXTURES, "models")
CLASSES = 10


class ScaledLayers:
    """Stand-in for the `mxnet.gluon.nn` module that builds narrower layers.

    Conv2D `channels`, Dense `units`, and the `in_channels`/`in_units` of
    Conv2D, Dense and BatchNorm are divided by `divisor` (Dense units by
    `dense_divisor`) when they are at least 16, so class counts (10) and
    image channels (3) stay as they are. Every other name is taken from
    mxnet.gluon.nn unchanged.
    """

    def __init__(self, divisor, dense_divisor=None):
        self.divisor = divisor
        self.dense_divisor = dense_divisor or divisor

    def __getattr__(self, name):
        return getattr(nn, name)

    @staticmethod
    def _scale(value, divisor):
        if isinstance(value, int) and value >= 16:
            return max(1, value // divisor)
        return value

    def _scale_first(self, args, kwargs, key, divisor):
        if key in kwargs:
            kwargs[key] = self._scale(kwargs[key], divisor)
        elif args:
            args = (self._scale(args[0], divisor),) + tuple(args[1:])
        return args, kwargs

    def Conv2D(self, *args, **kwargs):
        args, kwargs = self._scale_first(args, kwargs, "channels", self.divisor)
        if "in_channels" in kwargs:
            kwargs["in_channels"] = self._scale(kwargs["in_channels"], self.divisor)
        return nn.Conv2D(*args, **kwargs)

    def Dense(self, *args, **kwargs):
        args, kwargs = self._scale_first(args, kwargs, "units", self.dense_divisor)
        if "in_units" in kwargs:
            kwargs["in_units"] = self._scale(kwargs["in_units"], self.divisor)
        return nn.Dense(*args, **kwargs)

    def BatchNorm(self, *args, **kwargs):
        if "in_channels" in kwargs:
            kwargs["in_channels"] = self._scale(kwargs["in_channels"], self.divisor)
        return nn.BatchNorm(*args, **kwargs)


@contextlib.contextmanager
def scaled_modules(modules, layers):
    """Replace the `nn` global of each module in `modules` by `layers` inside the block."""
    saved = [module.nn for module in modules]
    for module in modules:
        module.nn = layers
    try:
        yield
    finally:
        for module, original in zip(modules, saved):
            module.nn = original


# ---------------------------------------------------------------------------
# Model builders. Each returns (block, input shape, notes on the reduction).


def build_alexnet(prefix):
    alexnet = importlib.import_module("mxnet.gluon.model_zoo.vision.alexnet")

    with scaled_modules([alexnet], ScaledLayers(8, dense_divisor=64)):
        net = alexnet.AlexNet(classes=CLASSES, prefix=prefix)
    return net, (1, 3, 63, 63), (
        "gluon AlexNet with conv widths / 8 and the two 4096-unit Dense layers at 64 units. "
        "63x63 is the smallest input its stride-4 conv and three 3x3/2 max pools accept."
    )


def build_densenet121(prefix):
    net = vision.DenseNet(8, 4, [6, 12, 24, 16], bn_size=4, classes=CLASSES, prefix=prefix)
    return net, (1, 3, 221, 221), (
        "gluon DenseNet with the 121 block config (6, 12, 24, 16), num_init_features 8 "
        "(64 in 121), growth_rate 4 (32). The input is 221x221, the smallest that leaves the "
        "7x7 map the class's final AvgPool2D(pool_size=7) needs."
    )


def build_inception_v3(prefix):
    inception = importlib.import_module("mxnet.gluon.model_zoo.vision.inception")

    with scaled_modules([inception], ScaledLayers(16)):
        net = inception.Inception3(classes=CLASSES, prefix=prefix)
    return net, (1, 3, 299, 299), (
        "gluon Inception3 with every convolution width / 16. The input stays 299x299, the smallest "
        "that leaves the 8x8 map the class's final AvgPool2D(pool_size=8) needs."
    )


def build_mobilenet1(prefix):
    return vision.MobileNet(multiplier=0.125, classes=CLASSES, prefix=prefix), (1, 3, 64, 64), "gluon MobileNet, multiplier 0.125."


def build_mobilenet2(prefix):
    return (
        vision.MobileNetV2(multiplier=0.125, classes=CLASSES, prefix=prefix),
        (1, 3, 64, 64),
        "gluon MobileNetV2, multiplier 0.125 (the class keeps its last 1x1 conv at 1280 channels).",
    )


def build_resnet(version, block_name, layers, channels):
    def build(prefix):
        resnet_class = vision.ResNetV1 if version == 1 else vision.ResNetV2
        block = getattr(vision, block_name)
        net = resnet_class(block, layers, channels, classes=CLASSES, prefix=prefix)
        return net, (1, 3, 64, 64), "gluon ResNetV%d(%s, %s, %s): the model-zoo channels / 16." % (
            version,
            block_name,
            layers,
            channels,
        )

    return build


def build_squeezenet(version):
    def build(prefix):
        squeezenet = importlib.import_module("mxnet.gluon.model_zoo.vision.squeezenet")

        with scaled_modules([squeezenet], ScaledLayers(4)):
            net = squeezenet.SqueezeNet(version, classes=CLASSES, prefix=prefix)
        size = {"1.0": 213, "1.1": 209}[version]
        return net, (1, 3, size, size), (
            "gluon SqueezeNet %s with every convolution width / 4 except the 10-class classifier. "
            "The input, %dx%d, is the smallest that leaves the 13x13 map the class's final "
            "AvgPool2D(13) needs." % (version, size, size)
        )

    return build


def build_vgg(batch_norm):
    def build(prefix):
        vgg = importlib.import_module("mxnet.gluon.model_zoo.vision.vgg")

        with scaled_modules([vgg], ScaledLayers(16, dense_divisor=64)):
            net = vgg.VGG([1, 1, 2, 2, 2], [64, 128, 256, 512, 512], classes=CLASSES, batch_norm=batch_norm, prefix=prefix)
        return net, (1, 3, 32, 32), "gluon VGG 11%s: conv filters / 16 (4..32), the two 4096-unit Dense layers at 64 units." % (
            " with BatchNorm" if batch_norm else ""
        )

    return build


def build_segmentation(kind):
    """Build a gluoncv segmentation model on its ResNet-50 backbone at 1/16 width."""

    def build(prefix):
        deeplabv3, fcn, pspnet, resnetv1b = [
            importlib.import_module("gluoncv.model_zoo." + module) for module in ("deeplabv3", "fcn", "pspnet", "resnetv1b")
        ]

        layers = ScaledLayers(16)
        model_class = {"fcn": fcn.FCN, "psp": pspnet.PSPNet, "deeplab": deeplabv3.DeepLabV3}[kind]
        # DeepLabV3 passes its keyword arguments down to _ASPP, which rejects
        # `prefix`, so the prefix comes from an enclosing name scope instead.
        scope = nn.HybridSequential(prefix=prefix)
        with scaled_modules([resnetv1b, fcn, pspnet, deeplabv3], layers), scope.name_scope():
            net = model_class(
                5,
                backbone="resnet50",
                aux=True,
                pretrained_base=False,
                norm_layer=layers.BatchNorm,
                height=64,
                width=64,
                base_size=64,
                crop_size=64,
            )
        return net, (1, 3, 64, 64), (
            "gluoncv %s(nclass=5, backbone='resnet50', aux=True, pretrained_base=False) with every "
            "width / 16 (backbone resnet50_v1s, dilated, output stride 8, and the head). Outputs: "
            "the head and the aux head, each resized to 64x64 with BilinearResize2D.%s"
            % (
                model_class.__name__,
                " The ASPP keeps its atrous rates 12, 24 and 36, so on the 8x8 feature map most "
                "taps of its dilated 3x3 convolutions fall in the zero padding."
                if kind == "deeplab"
                else "",
            )
        )

    return build


MODELS = [
    ("alexnet", build_alexnet),
    ("densenet121", build_densenet121),
    ("inception_v3", build_inception_v3),
    ("mobilenet1.0", build_mobilenet1),
    ("mobilenetv2_1.0", build_mobilenet2),
    ("resnet18_v1", build_resnet(1, "BasicBlockV1", [2, 2, 2, 2], [4, 4, 8, 16, 32])),
    ("resnet18_v2", build_resnet(2, "BasicBlockV2", [2, 2, 2, 2], [4, 4, 8, 16, 32])),
    ("resnet50_v1", build_resnet(1, "BottleneckV1", [3, 4, 6, 3], [4, 16, 32, 64, 128])),
    ("resnet50_v2", build_resnet(2, "BottleneckV2", [3, 4, 6, 3], [4, 16, 32, 64, 128])),
    ("squeezenet1.0", build_squeezenet("1.0")),
    ("squeezenet1.1", build_squeezenet("1.1")),
    ("vgg11", build_vgg(False)),
    ("vgg11_bn", build_vgg(True)),
    ("fcn_resnet50", build_segmentation("fcn")),
    ("psp_resnet50", build_segmentation("psp")),
    ("deeplab_resnet50", build_segmentation("deeplab")),
]

# Models also exported at a larger batch size, as <name>_b<batch>.
BATCHED = {"resnet18_v1": 2}


# ---------------------------------------------------------------------------
# Initialization


def initialize(net, rs, input_shape):
    """Give every parameter a non-trivial value, including BatchNorm statistics.

    Weights get Xavier values, biases and BatchNorm gamma/beta random values.
    BatchNorm running mean/var first take the statistics of a random batch
    (one training-mode forward with momentum 0), which keeps activations
    near unit scale through deep networks. Random perturbation then makes
    the stored statistics differ from any batch statistics.
    """
    net.initialize(mx.init.Xavier(rnd_type="gaussian", magnitude=2.0), force_reinit=True)
    batch = mx.nd.array(rs.randn(4, *input_shape[1:]))
    net(batch)  # finish deferred shape inference

    for name, param in sorted(net.collect_params().items()):
        shape = param.shape
        if name.endswith("_bias") or name.endswith("_beta"):
            param.set_data(mx.nd.array(rs.normal(0.0, 0.2, shape)))
        elif name.endswith("_gamma"):
            param.set_data(mx.nd.array(rs.uniform(0.5, 1.5, shape)))
        elif name.endswith("_alpha"):
            param.set_data(mx.nd.array(rs.uniform(0.05, 0.3, shape)))

    batch_norms = []

    def collect(block):
        if isinstance(block, nn.BatchNorm):
            batch_norms.append(block)

    net.apply(collect)
    for block in batch_norms:
        block._kwargs["momentum"] = 0.0
    with autograd.record(train_mode=True):
        net(batch)
    for block in batch_norms:
        block._kwargs["momentum"] = 0.9

    for name, param in sorted(net.collect_params().items()):
        value = param.data().asnumpy()
        if name.endswith("_running_mean"):
            spread = np.sqrt(np.abs(value)) + 0.1
            param.set_data(mx.nd.array(value + rs.normal(0.0, 0.1, value.shape) * spread))
        elif name.endswith("_running_var"):
            param.set_data(mx.nd.array(np.maximum(value, 1e-3) * rs.uniform(0.7, 1.4, value.shape)))


# ---------------------------------------------------------------------------
# Export and golden outputs


def load_checkpoint(prefix):
    sym = mx.sym.load(prefix + "-symbol.json")
    saved = mx.nd.load(prefix + "-0000.params")
    arg_params = {k[4:]: v for k, v in saved.items() if k.startswith("arg:")}
    aux_params = {k[4:]: v for k, v in saved.items() if k.startswith("aux:")}
    return sym, arg_params, aux_params


def export_model(name, builder, batch):
    rs = rng_for("models/" + name)
    net, input_shape, reduction = builder(name.replace(".", "_").replace("-", "_") + "_")
    input_shape = (batch,) + tuple(input_shape[1:])
    initialize(net, rs, input_shape)

    x = rs.randn(*input_shape).astype(np.float32)
    imperative = net(mx.nd.array(x))
    imperative = [o.asnumpy() for o in (imperative if isinstance(imperative, (list, tuple)) else [imperative])]

    net.hybridize(static_alloc=False)
    net(mx.nd.array(x))
    out_dir = ensure_dir(os.path.join(MODELS_DIR, name))
    prefix = os.path.join(out_dir, name)
    net.export(prefix, epoch=0)

    sym, arg_params, aux_params = load_checkpoint(prefix)
    golden = run_symbol(sym, {"data": x}, arg_params, aux_params, fusion=False)
    fused = run_symbol(sym, {"data": x}, arg_params, aux_params, fusion=True)

    io = {"data": mx.nd.array(x)}
    for index, output in enumerate(golden):
        io["output%d" % index] = mx.nd.array(output, dtype="float32")
    mx.nd.save(prefix + "-io.params", io)

    fused_diff = max(max_abs_diff(a, b) for a, b in zip(golden, fused))
    imperative_diff = max(max_abs_diff(a, b) for a, b in zip(golden, imperative))
    scale = max(float(np.max(np.abs(o))) for o in golden)
    arg_shapes, out_shapes, aux_shapes = sym.infer_shape(data=input_shape)
    meta = {
        "inputs": {"data": list(input_shape)},
        "input_dtypes": {"data": "float32"},
        "arguments": sym.list_arguments(),
        "aux": sym.list_auxiliary_states(),
        "outputs": sym.list_outputs(),
        "output_shapes": [list(s) for s in out_shapes],
        "checks": {
            "max_abs_output": scale,
            "max_abs_diff_mkldnn_fusion": fused_diff,
            "max_abs_diff_gluon_imperative": imperative_diff,
        },
        "notes": (
            "%s Batch %d. Exported with HybridBlock.export after Xavier init and random biases%s. "
            "Golden outputs: the exported symbol and params bound with simple_bind and "
            "MXNET_SUBGRAPH_BACKEND=NONE (no MKLDNN fusion), run with is_train=False on MXNet 1.9.1. "
            "MXNet's default (MKLDNN fusion on) differs from them by at most %.3g (largest output "
            "magnitude %.3g)%s; the non-hybridized Gluon forward differs by at most %.3g."
            % (
                reduction,
                batch,
                "; BatchNorm gamma/beta are random and its running statistics were taken from a "
                "random batch, then perturbed"
                if aux_params
                else "",
                fused_diff,
                scale,
                ", so the fused graph is affected by the FC/conv + Activation fusion bug"
                if fused_diff > 1e-3 * max(scale, 1.0)
                else "",
                imperative_diff,
            )
        ),
    }
    write_json(prefix + "-meta.json", meta)
    logging.info(
        "  %s: input %s, %d params, fused diff %.2g, imperative diff %.2g",
        name,
        input_shape,
        sum(v.size for v in arg_params.values()) + sum(v.size for v in aux_params.values()),
        fused_diff,
        imperative_diff,
    )


def main(names=None):
    ensure_dir(MODELS_DIR)
    written = set()
    for name, builder in MODELS:
        if names and name not in names:
            continue
        export_model(name, builder, 1)
        written.add(name)
        if name in BATCHED:
            batched_name = "%s_b%d" % (name, BATCHED[name])
            export_model(batched_name, builder, BATCHED[name])
            written.add(batched_name)
    record_native_check([os.path.join(MODELS_DIR, name) for name in sorted(written)])
    if not names:
        remove_stale_dirs(MODELS_DIR, written)
