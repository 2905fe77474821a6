"""convnp vs PyTorch CPU eager vs the textbook float64 im2col code, in ONE process, same data and threads.

    python -m benchmarks.run              # everything (several minutes on 2 cores)
    python -m benchmarks.run --quick      # fewer steps and repeats
    python -m benchmarks.run --only train,infer,conv,pool,memory

Contestants take turns, each after an idle pause (so the other library's spinning threads are parked), and
the median is reported: 5 turns of one run for training and inference; for the conv and pool grid 5 turns of
0.1 s of warm-up calls and 3 timed calls (medians of 15). Training epochs are timed on a fixed
number of steps (batch 100, Adam) and scaled to an epoch of 600 steps (60,000 MNIST images). Prints a table
and one JSON line of ratios (convnp time / peer time: below 1 means convnp is faster).
Run it on an idle machine: a timing is only meaningful as a ratio from one run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

STEPS_PER_EPOCH = 600


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


#: idle time before each contestant's turn: longer than the time the other library's worker threads keep
#: spinning after its last call (OpenBLAS ~0.1 s, libgomp a few ms), so no turn starts on a busy core
SETTLE_S = 0.2
#: warm-up at the start of a turn (conv and pool grid): after an idle pause, convnp's calls (whose worker
#: threads sleep between calls instead of spinning) ran up to 2x slower for ~40 ms on this VM
WARMUP_S = 0.1


def alternate(contestants: dict, repeats: int, calls: int = 1, warmup_s: float = 0.0) -> dict:
    """Time each contestant in turns, interleaved (A B C A B C ...), ``repeats`` turns each; return the
    medians of the timed calls.

    A turn starts after :data:`SETTLE_S` of idle time, makes untimed calls for ``warmup_s`` seconds (at least
    one when warmup_s > 0), then times ``calls`` calls in a row: each library is measured in its own steady
    state, as in a training loop, not while the previous contestant's threads still spin on the cores. (Timing
    single calls back to back, the one that came second paid for the first one's spinning threads: 1.2-2x on
    millisecond calls.)
    """
    times = {k: [] for k in contestants}
    for _ in range(repeats):
        for name, fn in contestants.items():
            time.sleep(SETTLE_S)
            if warmup_s > 0:
                end = time.perf_counter() + warmup_s
                fn()
                while time.perf_counter() < end:
                    fn()
            for _ in range(calls):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


# ------------------------------------------------------------------ contestants
def convnp_trainer(model_name, x, t, steps):
    import convnp
    from convnp import optim
    from convnp.nn.losses import CrossEntropyLoss
    model = convnp.models.get_model(model_name)
    model(x[:100])  # build
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = CrossEntropyLoss()

    def run():
        model.train()
        for i in range(steps):
            xb, tb = x[i * 100:(i + 1) * 100], t[i * 100:(i + 1) * 100]
            opt.zero_grad()
            loss_fn(model(xb), tb)
            model.backward(loss_fn.backward())
            opt.step()
    return run, model


def torch_model(model_name):
    import torch.nn as tnn
    if model_name == "simple_convnet":
        return tnn.Sequential(tnn.Conv2d(1, 30, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
                              tnn.Linear(30 * 12 * 12, 100), tnn.ReLU(), tnn.Linear(100, 10))
    layers, cin = [], 1
    for i, cout in enumerate([16, 16, 32, 32, 64, 64]):
        layers += [tnn.Conv2d(cin, cout, 3, padding=1), tnn.ReLU()]
        if i % 2 == 1:
            layers.append(tnn.MaxPool2d(2))
        cin = cout
    return tnn.Sequential(*layers, tnn.Flatten(), tnn.Linear(64 * 3 * 3, 50), tnn.ReLU(), tnn.Dropout(0.5),
                          tnn.Linear(50, 10))


def torch_trainer(model_name, x, t, steps):
    import torch
    model = torch_model(model_name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xs, ts = torch.from_numpy(x), torch.from_numpy(t)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run():
        model.train()
        for i in range(steps):
            opt.zero_grad()
            loss = loss_fn(model(xs[i * 100:(i + 1) * 100]), ts[i * 100:(i + 1) * 100])
            loss.backward()
            opt.step()
    return run, model


def textbook_trainer(model_name, x, t, steps):
    from benchmarks import textbook_ref as tb
    net = tb.SimpleConvNet() if model_name == "simple_convnet" else tb.DeepConvNet()
    opt = tb.Adam()
    x64 = x.astype(np.float64)

    def run():
        for i in range(steps):
            grads = net.gradient(x64[i * 100:(i + 1) * 100], t[i * 100:(i + 1) * 100])
            opt.update(net.params, grads)
    return run, net


def bench_train(x, t, model_name, steps, repeats, textbook_steps):
    runs = {"convnp": convnp_trainer(model_name, x, t, steps)[0],
            "torch": torch_trainer(model_name, x, t, steps)[0]}
    for fn in runs.values():  # warm-up
        fn()
    med = alternate(runs, repeats)
    out = {k: v / steps * STEPS_PER_EPOCH for k, v in med.items()}
    if textbook_steps:
        tb_run = textbook_trainer(model_name, x, t, textbook_steps)[0]
        out["textbook"] = _median_time(tb_run, 1) / textbook_steps * STEPS_PER_EPOCH
    return out


def bench_infer(x, model_name, repeats, batch=1000):
    import convnp
    import torch
    _, model = convnp_trainer(model_name, x, np.zeros(len(x), np.int64), 0)
    tmodel = torch_model(model_name).eval()
    model.eval()
    xs = torch.from_numpy(x)

    def ours():
        with convnp.no_grad():
            for i in range(0, len(x), batch):
                model(x[i:i + batch])

    def theirs():
        with torch.no_grad():
            for i in range(0, len(x), batch):
                tmodel(xs[i:i + batch])
    ours(), theirs()
    med = alternate({"convnp": ours, "torch": theirs}, repeats)
    return {k: len(x) / v for k, v in med.items()}  # images per second


CONV_GRID = [  # (N, C, H, W, filters, k, stride, pad)
    (100, 1, 28, 28, 30, 5, 1, 0), (100, 16, 14, 14, 32, 3, 1, 1), (32, 64, 32, 32, 64, 3, 1, 1),
    (32, 64, 32, 32, 64, 3, 2, 1), (32, 64, 32, 32, 64, 5, 1, 2), (32, 64, 32, 32, 64, 5, 2, 2)]
POOL_GRID = [(100, 30, 24, 24, 2, 2), (32, 64, 32, 32, 2, 2), (32, 64, 32, 32, 3, 2)]


def bench_conv(repeats):
    import torch
    from convnp.functional import conv2d_backward, conv2d_forward
    rng = np.random.default_rng(0)
    rows = []
    for n, c, h, w, f, k, s, p in CONV_GRID:
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((f, c, k, k)).astype(np.float32) * 0.1
        b = np.zeros(f, np.float32)
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, wt, b))

        def ours():
            y, cache = conv2d_forward(x, wt, b, stride=s, padding=p)
            conv2d_backward(np.ones_like(y), cache)

        def theirs():
            y = torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p)
            y.backward(torch.ones_like(y))
        med = alternate({"convnp": ours, "torch": theirs}, repeats, calls=3, warmup_s=WARMUP_S)
        rows.append({"shape": f"x{(n, c, h, w)} {f}@{k}x{k} s{s} p{p}", **med})
    return rows


def bench_pool(repeats):
    import torch
    from convnp.functional import max_pool2d_backward, max_pool2d_forward
    rng = np.random.default_rng(0)
    rows = []
    for n, c, h, w, k, s in POOL_GRID:
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        tx = torch.tensor(x, requires_grad=True)

        def ours():
            y, cache = max_pool2d_forward(x, k, s)
            max_pool2d_backward(np.ones_like(y), cache)

        def theirs():
            y = torch.nn.functional.max_pool2d(tx, k, s)
            y.backward(torch.ones_like(y))
        med = alternate({"convnp": ours, "torch": theirs}, repeats, calls=3, warmup_s=WARMUP_S)
        rows.append({"shape": f"x{(n, c, h, w)} pool {k}/{s}", **med})
    return rows


_MEMORY_CHILD = r"""
import resource, sys, numpy as np
which = sys.argv[1]
x = np.random.default_rng(0).standard_normal((8, 3, 224, 224)).astype(np.float32)
if which == "convnp":
    import convnp
    model = convnp.models.vgg16().eval()
    with convnp.no_grad():
        y = model(x)
else:
    import torch, torch.nn as tnn
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers, c = [], 3
    for v in cfg:
        if v == "M": layers.append(tnn.MaxPool2d(2))
        else: layers += [tnn.Conv2d(c, v, 3, padding=1), tnn.ReLU()]; c = v
    model = tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d(7), tnn.Flatten(), tnn.Linear(25088, 4096), tnn.ReLU(),
                           tnn.Dropout(), tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Dropout(), tnn.Linear(4096, 1000)).eval()
    with torch.no_grad():
        y = model(torch.from_numpy(x))
try:  # VmHWM: this process's own peak (ru_maxrss keeps the parent's peak across fork + exec on Linux)
    with open("/proc/self/status") as f:
        print(next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024)
except OSError:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def bench_memory():
    out = {}
    for which in ("convnp", "torch"):
        res = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, which], capture_output=True, text=True)
        if res.returncode != 0:
            out[which] = None
            print(f"memory benchmark for {which} failed: {res.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        else:
            out[which] = float(res.stdout.strip().splitlines()[-1])  # MiB peak RSS
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="train,infer,conv,pool,memory")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--accel", choices=("auto", "on", "off"), default="auto",
                    help="convnp.accel's numba kernels: auto uses them when numba is installed")
    args = ap.parse_args(argv)
    import torch
    from convnp import accel
    torch.set_num_threads(args.threads)
    if args.accel == "on" and not accel.available():
        ap.error("--accel on needs numba (pip install 'convnp[fast]') and CONVNP_ACCEL unset or 1")
    accel.set_enabled(args.accel != "off" and accel.available())
    parts = set(args.only.split(","))
    steps, repeats = (10, 3) if args.quick else (30, 5)
    from convnp.data import load_mnist
    (x, t), _ = load_mnist()
    x, t = x[:steps * 100], t[:steps * 100]
    results, ratios = {}, {}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; threads={args.threads}; "
          f"numpy {np.__version__}, torch {torch.__version__}; convnp.accel (numba kernels): "
          f"{'on' if accel.available() else 'off'}; C direct convolution: "
          f"{'on' if accel.direct_enabled_for() else 'off'}")
    if "train" in parts:
        for name in ("simple_convnet", "deep_convnet"):
            r = bench_train(x, t, name, steps, repeats, textbook_steps=3 if args.quick else 5)
            results[f"train_{name}"] = r
            ratios[f"train_{name}_vs_torch"] = r["convnp"] / r["torch"]
            if "textbook" in r:
                ratios[f"train_{name}_speedup_vs_textbook"] = r["textbook"] / r["convnp"]
            print(f"epoch {name:15s} convnp {r['convnp']:7.1f}s  torch {r['torch']:7.1f}s  "
                  + (f"textbook {r['textbook']:7.1f}s  " if "textbook" in r else "")
                  + f"ratio {r['convnp'] / r['torch']:.2f}")
    if "infer" in parts:
        for name in ("simple_convnet", "deep_convnet"):
            r = bench_infer(x, name, repeats)
            results[f"infer_{name}"] = r
            ratios[f"infer_{name}_throughput_vs_torch"] = r["convnp"] / r["torch"]
            print(f"infer {name:15s} convnp {r['convnp']:8.0f} img/s  torch {r['torch']:8.0f} img/s  "
                  f"throughput ratio {r['convnp'] / r['torch']:.2f}")
    for part, fn in (("conv", bench_conv), ("pool", bench_pool)):
        if part in parts:
            rows = fn(repeats)  # turns of 3 timed calls: medians of 15 (milliseconds each, on a noisy machine)
            results[part] = rows
            for row in rows:
                ratio = row["convnp"] / row["torch"]
                ratios[f"{part} {row['shape']}"] = ratio
                print(f"{part} fwd+bwd {row['shape']:42s} convnp {row['convnp'] * 1e3:8.2f}ms  "
                      f"torch {row['torch'] * 1e3:8.2f}ms  ratio {ratio:.2f}")
    if "memory" in parts:
        r = bench_memory()
        results["vgg16_b8_peak_rss_mib"] = r
        print(f"VGG16 batch-8 224x224 forward peak RSS: convnp {r['convnp']} MiB, torch {r['torch']} MiB")
    print("JSON " + json.dumps({"ratios": {k: round(v, 3) for k, v in ratios.items()}, "results": results,
                                "accel": accel.available(), "direct_conv": accel.direct_enabled_for(),
                                "threads": args.threads}))


if __name__ == "__main__":
    main()
