"""Time MXNet 1.9.1 and mxnet-int8 on the same model files, side by side.

    VENV/bin/python tools/bench_vs_mxnet.py [--models resnet50_v1,...] [--runs 20]

For each model (ResNet-50 v1, ResNet-18 v1, MobileNet 1.0, MobileNet v2 1.0
at 224x224, `pretrained=False`, so the weights are random) the script
exports the FP32 model and an int8 model made by `quantize_net`
(quantized_dtype='auto', calib_mode='naive') into --work-dir. Then, for
batch 1 and 16 and for 1 and 2 threads, it alternates processes: MXNet
(the same files, bound with its default MKLDNN backend), then
`mxnet-int8 bench`, repeated --rounds times. Each process does warm-up runs
and then --runs timed runs and reports the median latency; the table gives
the median over rounds and the ratio MXNet time / our time (above 1 means
we are faster).

Run it only on an otherwise idle machine: a concurrent build slows MXNet's
spinning OpenMP threads by 5-40x.
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = ["resnet50_v1", "resnet18_v1", "mobilenet1.0", "mobilenetv2_1.0"]


def export_models(names, work_dir):
    """Export FP32 and int8 versions of each model; skip files that exist."""
    import mxnet as mx
    from mxnet.contrib import quantization as mxq
    from mxnet.gluon.model_zoo import vision

    os.makedirs(work_dir, exist_ok=True)
    for name in names:
        fp32 = os.path.join(work_dir, name)
        int8 = os.path.join(work_dir, name + "-int8")
        if os.path.exists(int8 + "-0000.params"):
            continue
        print(f"exporting {name}", flush=True)
        net = vision.get_model(name, pretrained=False)
        net.initialize(mx.init.Xavier(magnitude=2.0))
        net.hybridize()
        shape = (1, 3, 224, 224)
        net(mx.nd.zeros(shape))
        net.export(fp32, 0)
        calib = mx.io.NDArrayIter(mx.nd.random.normal(0, 1, shape=(8,) + shape[1:]), batch_size=4)
        qnet = mxq.quantize_net(net, quantized_dtype="auto", quantize_mode="full", calib_mode="naive",
                                calib_data=calib, num_calib_examples=8, ctx=mx.cpu())
        qnet(mx.nd.zeros(shape))
        qnet.export(int8, 0)


MXNET_CHILD = r"""
import json, sys, time
import mxnet as mx
prefix, batch, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sym, args, auxs = mx.model.load_checkpoint(prefix, 0)
data = mx.nd.random.normal(0, 1, shape=(batch, 3, 224, 224))
bound = dict(args)
bound["data"] = data
t0 = time.perf_counter()
exe = sym.bind(mx.cpu(), args=bound, aux_states=auxs, grad_req="null")
exe.forward(is_train=False)[0].wait_to_read()
first = time.perf_counter() - t0
for _ in range(warmup):
    exe.forward(is_train=False)[0].wait_to_read()
times = []
for _ in range(runs):
    t = time.perf_counter()
    exe.forward(is_train=False)[0].wait_to_read()
    times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({"median": times[len(times) // 2], "first": first}))
"""


def time_mxnet(prefix, batch, threads, runs, warmup):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", MXNET_CHILD, prefix, str(batch), str(runs), str(warmup)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["median"]


def time_ours(binary, prefix, batch, threads, runs, warmup):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([binary, "bench", prefix + "-symbol.json", prefix + "-0000.params",
                          "--shape", f"{batch},3,224,224", "--runs", str(runs), "--warmup", str(warmup)],
                         env=env, capture_output=True, text=True, check=True)
    # "... median 12.345 ms over ..."
    text = out.stdout
    return float(text.split("median ")[1].split(" ms")[0]) / 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--work-dir", default=os.path.join(ROOT, "target", "bench-models"))
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "mxnet-int8"))
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--precisions", default="int8,fp32")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    names = args.models.split(",")
    export_models(names, args.work_dir)
    print(f"{'model':<22}{'batch':>6}{'threads':>8}{'MXNet ms':>10}{'ours ms':>10}{'ratio':>8}")
    for name in names:
        for precision in args.precisions.split(","):
            prefix = os.path.join(args.work_dir, name + ("-int8" if precision == "int8" else ""))
            for batch in map(int, args.batches.split(",")):
                for threads in map(int, args.threads.split(",")):
                    mxnet_times, our_times = [], []
                    for _ in range(args.rounds):
                        mxnet_times.append(time_mxnet(prefix, batch, threads, args.runs, args.warmup))
                        our_times.append(time_ours(args.binary, prefix, batch, threads, args.runs, args.warmup))
                    m = sorted(mxnet_times)[len(mxnet_times) // 2]
                    o = sorted(our_times)[len(our_times) // 2]
                    label = f"{name} {precision}"
                    print(f"{label:<22}{batch:>6}{threads:>8}{m * 1e3:>10.2f}{o * 1e3:>10.2f}{m / o:>8.2f}",
                          flush=True)


if __name__ == "__main__":
    main()
