"""Generate the golden files under tests/fixtures/ with the real MXNet 1.9.1.

Usage:
    /work/venv/bin/python tools/make_fixtures.py            # every part
    /work/venv/bin/python tools/make_fixtures.py params ops # some parts

Parts:
    params   NDArray list files (.params) of every dtype and record version
    symbols  symbol JSON files (current, legacy, invalid) with MXNet's lists
    models   FP32 model-zoo architectures at reduced width: symbol, params,
             input and MXNet's outputs
    ops      single-operator graphs with odd shapes and MXNet's outputs

Each fixture seeds its own random generators from its name, so a part (or
the whole run) regenerates the same bytes. tests/fixtures/quantized/ is
written by another tool and is left alone.
"""

import argparse
import importlib
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# MXNet reads these when it loads, so they are set before any import of it.
# One OpenMP thread keeps float summation order, and so the golden bytes,
# independent of the machine's core count. The synchronous NaiveEngine
# avoids an intermittent segmentation fault seen with the default threaded
# engine when all parts ran in one process.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MXNET_ENGINE_TYPE", "NaiveEngine")

PARTS = {
    "params": "fixtures_params",
    "symbols": "fixtures_symbols",
    "models": "fixtures_models",
    "ops": "fixtures_ops",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "parts",
        nargs="*",
        metavar="PART",
        help="parts to regenerate: %s (default: all, in that order)" % ", ".join(PARTS),
    )
    args = parser.parse_args()
    unknown = [part for part in args.parts if part not in PARTS]
    if unknown:
        parser.error("unknown part %s; valid parts are %s" % (", ".join(unknown), ", ".join(PARTS)))
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import mxnet

    if mxnet.__version__ != "1.9.1":
        sys.exit("MXNet 1.9.1 is the oracle, but this Python has mxnet %s" % mxnet.__version__)

    for part in args.parts or list(PARTS):
        logging.info("generating part %s", part)
        importlib.import_module(PARTS[part]).main()
    logging.info("done")


if __name__ == "__main__":
    main()
