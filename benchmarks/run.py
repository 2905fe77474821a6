"""convnp vs PyTorch CPU eager vs the textbook float64 im2col code, in ONE process, same data and threads.

    python -m benchmarks.run              # everything (several minutes on 2 cores)
    python -m benchmarks.run --quick      # fewer steps and repeats
    python -m benchmarks.run --only train,infer,conv,pool,memory,firstuse  # (also: vgg, resnet alone)
    CONVNP_ISA=avx2 python -m benchmarks.run   # an AVX2 machine on one that also has AVX-512 (see below)

With ``CONVNP_ISA=avx2`` on a CPU that has AVX-512, the run stands for an AVX2-only machine: convnp's AVX2
kernels, and every library in the process held to AVX2 too (PyTorch's ATen ``ATEN_CPU_CAPABILITY=avx2``, its
oneDNN convolutions ``ONEDNN_MAX_CPU_ISA=AVX2``, its MKL ``MKL_ENABLE_INSTRUCTIONS=AVX2``, NumPy's OpenBLAS
``OPENBLAS_CORETYPE=Haswell``), as they are on such a CPU; the run re-starts itself with those set (they are
read when the libraries load) and prints what each library reports. ``--peers-native`` leaves them alone.

Contestants take turns, each after an idle pause (so the other library's spinning threads are parked), and
the median is reported. Each convnp figure comes with convnp on the reference plan (CONVNP_PLAN=reference:
im2col + one GEMM for every convolution), which the measured plan must never trail by more than 10%;
5 turns of one run for training and inference; for the conv and pool grid 5 turns of
0.1 s of warm-up calls and 3 timed calls (medians of 15). Training epochs are timed on a fixed
number of steps (batch 100, Adam) and scaled to an epoch of 600 steps (60,000 MNIST images). Prints a table
and one JSON line of ratios (convnp time / peer time: below 1 means convnp is faster).
Run it on an idle machine: a timing is only meaningful as a ratio from one run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np

STEPS_PER_EPOCH = 600
#: what holds PyTorch (ATen, oneDNN, MKL) and NumPy's OpenBLAS to AVX2 when they load
AVX2_PEERS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
              "OPENBLAS_CORETYPE": "Haswell"}


def _emulate_avx2_machine(argv, peers_native):
    """With CONVNP_ISA=avx2 on an AVX-512 CPU: re-run this benchmark with AVX2_PEERS set (unless they are, or
    ``peers_native``). Returns normally when nothing is to be done."""
    if os.environ.get("CONVNP_ISA", "").strip().lower() != "avx2" or peers_native:
        return
    from convnp.utils import build
    if "avx512f" not in build.cpu_features()["flags"] or all(os.environ.get(k) == v for k, v in AVX2_PEERS.items()):
        return
    print("CONVNP_ISA=avx2 on an AVX-512 CPU: re-running with PyTorch and NumPy's BLAS held to AVX2 as well "
          f"({' '.join(f'{k}={v}' for k, v in AVX2_PEERS.items())})", flush=True)
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks.run", *argv], dict(os.environ, **AVX2_PEERS))


def _peer_isa():
    """What the libraries in this process run: torch's ATen capability and NumPy's OpenBLAS kernel family."""
    import torch
    blas = "?"
    try:
        from threadpoolctl import threadpool_info
        blas = ",".join(str(i.get("architecture")) for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:
        pass
    return f"torch {torch.backends.cpu.get_cpu_capability()}, NumPy BLAS {blas}"


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


def alternate(contestants: dict, repeats: int, calls: int = 1, warmup_s: float = 0.0, sync=None,
              settle_s: float | None = None) -> dict:
    """Time each contestant in turns, interleaved (A B C A B C ...), ``repeats`` turns each; return the
    medians of the timed calls.

    A turn starts after :data:`SETTLE_S` of idle time, makes untimed calls for ``warmup_s`` seconds (at least
    one when warmup_s > 0), then times ``calls`` calls in a row: each library is measured in its own steady
    state, as in a training loop, not while the previous contestant's threads still spin on the cores. (Timing
    single calls back to back, the one that came second paid for the first one's spinning threads: 1.2-2x on
    millisecond calls.) ``sync``: called before and after each timed call (a GPU's ``synchronize``, so that a
    timing covers the queued work); ``settle_s``: the idle pause (default :data:`SETTLE_S`).
    """
    settle = SETTLE_S if settle_s is None else settle_s
    sync = sync or (lambda: None)
    times = {k: [] for k in contestants}
    for _ in range(repeats):
        for name, fn in contestants.items():
            time.sleep(settle)
            if warmup_s > 0:
                end = time.perf_counter() + warmup_s
                fn()
                while time.perf_counter() < end:
                    fn()
            for _ in range(calls):
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


# ------------------------------------------------------------------ contestants
def convnp_vgg_bn():
    """CIFAR-shaped VGG net with batch norm: conv 64, 64, pool, 128, 128, pool, global average pool, dense."""
    from convnp import nn
    layers, c = [], 3
    for v in (64, 64, "M", 128, 128, "M"):
        if v == "M":
            layers.append(nn.MaxPool2D(2))
        else:
            layers += [nn.Conv2D(v, 3, padding=1, in_channels=c), nn.BatchNorm2D(v), nn.ReLU()]
            c = v
    return nn.Sequential(layers + [nn.GlobalAvgPool2D(), nn.Dense(10, in_features=c)])


def torch_vgg_bn():
    import torch.nn as tnn
    layers, c = [], 3
    for v in (64, 64, "M", 128, 128, "M"):
        if v == "M":
            layers.append(tnn.MaxPool2d(2))
        else:
            layers += [tnn.Conv2d(c, v, 3, padding=1), tnn.BatchNorm2d(v), tnn.ReLU()]
            c = v
    return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(c, 10))


def torch_resnet18():
    """torchvision's ResNet-18 (BasicBlock, [2, 2, 2, 2]) written out: torchvision is not installed here."""
    import torch.nn as tnn

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1, self.bn1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False), tnn.BatchNorm2d(cout)
            self.conv2, self.bn2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False), tnn.BatchNorm2d(cout)
            self.down = None if stride == 1 and cin == cout else tnn.Sequential(
                tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
            return (out + (x if self.down is None else self.down(x))).relu()
    layers, c = [], 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(c, width, stride), Block(width, width, 1)]
        c = width
    return tnn.Sequential(tnn.Conv2d(3, 64, 7, 2, 3, bias=False), tnn.BatchNorm2d(64), tnn.ReLU(),
                          tnn.MaxPool2d(3, 2, 1), *layers, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(512, 1000))


def convnp_resnet18():
    import convnp
    return convnp.models.resnet18()


#: benchmark models that are not in convnp's zoo under that name: (convnp factory, torch factory)
MODELS = {"vgg_bn_cifar": (convnp_vgg_bn, torch_vgg_bn), "resnet18": (convnp_resnet18, torch_resnet18)}


def _in_mode(mode, fn):
    """fn run with the planner in ``mode`` (None: as configured)."""
    if mode is None:
        return fn
    from convnp.accel import planner

    def run():
        with planner.use_mode(mode):
            fn()
    return run


def convnp_trainer(model_name, x, t, steps, batch=100, plan=None):
    """A training loop as convnp.train runs it (each step inside accel.threads.step_threads); ``plan``: the
    planner's mode for it (None: CONVNP_PLAN's, "reference": the reference convolution everywhere)."""
    import convnp
    from convnp import optim
    from convnp.accel import threads
    from convnp.nn.losses import CrossEntropyLoss
    model = MODELS[model_name][0]() if model_name in MODELS else convnp.models.get_model(model_name)
    model(x[:2])  # build
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = CrossEntropyLoss()

    def run():
        model.train()
        for i in range(steps):
            xb, tb = x[i * batch:(i + 1) * batch], t[i * batch:(i + 1) * batch]
            opt.zero_grad()
            with threads.step_threads(model, xb):
                loss_fn(model(xb), tb)
                model.backward(loss_fn.backward())
            opt.step()
    return _in_mode(plan, run), model


def torch_model(model_name):
    import torch.nn as tnn
    if model_name in MODELS:
        return MODELS[model_name][1]()
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


def torch_trainer(model_name, x, t, steps, batch=100):
    import torch
    model = torch_model(model_name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xs, ts = torch.from_numpy(x), torch.from_numpy(t)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run():
        model.train()
        for i in range(steps):
            opt.zero_grad()
            loss = loss_fn(model(xs[i * batch:(i + 1) * batch]), ts[i * batch:(i + 1) * batch])
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


def bench_train(x, t, model_name, steps, repeats, textbook_steps, batch=100, per_epoch=True):
    runs = {"convnp": convnp_trainer(model_name, x, t, steps, batch)[0],
            "convnp_reference": convnp_trainer(model_name, x, t, steps, batch, plan="reference")[0],
            "torch": torch_trainer(model_name, x, t, steps, batch)[0]}
    for fn in runs.values():  # warm-up (and the planner's measurements)
        fn()
    med = alternate(runs, repeats)
    out = {k: v / steps * STEPS_PER_EPOCH for k, v in med.items()} if per_epoch else med
    if textbook_steps:
        tb_run = textbook_trainer(model_name, x, t, textbook_steps)[0]
        out["textbook"] = _median_time(tb_run, 1) / textbook_steps * STEPS_PER_EPOCH
    return out


def bench_infer(x, model_name, repeats, batch=1000):
    import convnp
    import torch
    from convnp.accel import threads
    _, model = convnp_trainer(model_name, x, np.zeros(len(x), np.int64), 0)
    tmodel = torch_model(model_name).eval()
    model.eval()
    xs = torch.from_numpy(x)

    def ours():  # as convnp.train's predict runs it (accel.threads.step_threads per batch)
        with convnp.no_grad():
            for i in range(0, len(x), batch):
                with threads.step_threads(model, x[i:i + batch]):
                    model(x[i:i + batch])

    def theirs():
        with torch.no_grad():
            for i in range(0, len(x), batch):
                tmodel(xs[i:i + batch])
    reference = _in_mode("reference", ours)
    # warm-up: plans measured, then convnp's trial of the two thread settings (threads.step_threads, one step a
    # batch) run to its end, so that no timed call is a trial step in the slower setting
    trial_steps = len(threads.TRIAL_ORDER) * threads.STEPS_PER_BLOCK
    batches_per_call = math.ceil(len(x) / batch)
    for _ in range(1 + math.ceil(trial_steps / batches_per_call)):
        ours()
    reference(), theirs()
    med = alternate({"convnp": ours, "convnp_reference": reference, "torch": theirs}, repeats)
    return {k: len(x) / v for k, v in med.items()}  # images per second


def bench_resnet18_infer(repeats, batch=8):
    """ResNet-18 inference on a batch of 8 224x224 images: seconds per batch."""
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    return bench_infer(x, "resnet18", repeats, batch=batch)


def bench_first_use():
    """Seconds from a fresh process with an empty kernel and plan cache to the end of SimpleConvNet's first
    training step and first inference batch (compile + planning + the work), and what it printed."""
    import tempfile
    code = ("import time; t = time.perf_counter(); import numpy as np, convnp\n"
            "from convnp.train.fit import predict\n"
            "from convnp.data import load_mnist\n"
            "(x, y), _ = load_mnist(); x, y = x[:200], y[:200]\n"
            "m = convnp.models.simple_convnet(seed=0)\n"
            "m.compile(optimizer='adam', loss='sparse_categorical_crossentropy', lr=1e-3)\n"
            "m.fit(x, y, epochs=1, batch_size=100, verbose=0)\n"
            "predict(m, x, batch_size=100)\n"
            "print('FIRST_USE_S', time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=dict(os.environ, CONVNP_CACHE_DIR=cache))
    lines = (res.stdout + res.stderr).strip().splitlines()
    seconds = next((float(line.split()[1]) for line in lines if line.startswith("FIRST_USE_S")), None)
    return {"seconds": seconds, "printed": [line for line in lines if line.startswith("convnp:")]}


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

        def ours(provider=None):
            y, cache = conv2d_forward(x, wt, b, stride=s, padding=p, save_cache=True, provider=provider)
            conv2d_backward(np.ones_like(y), cache)

        def theirs():
            y = torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p)
            y.backward(torch.ones_like(y))
        med = alternate({"convnp": ours, "convnp_reference": lambda: ours("reference"), "torch": theirs}, repeats,
                        calls=3, warmup_s=WARMUP_S)
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
    ap.add_argument("--only", default="train,infer,conv,pool,memory,firstuse")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--accel", choices=("auto", "on", "off"), default="auto",
                    help="convnp.accel's C kernels: auto uses them when they build (a C compiler)")
    ap.add_argument("--peers-native", action="store_true",
                    help="with CONVNP_ISA=avx2: leave PyTorch and NumPy's BLAS on the CPU's widest vectors")
    args = ap.parse_args(argv)
    if argv is None:  # from the command line (a test calling main() must not have its process replaced)
        _emulate_avx2_machine(sys.argv[1:], args.peers_native)
    import torch
    from convnp import accel
    torch.set_num_threads(args.threads)
    if args.accel == "on" and not accel.available():
        ap.error("--accel on needs the C kernels (a C compiler) and CONVNP_ACCEL unset or 1")
    accel.set_enabled(args.accel != "off" and accel.available())
    parts = set(args.only.split(","))
    steps, repeats = (10, 3) if args.quick else (30, 5)
    from convnp.data import load_mnist
    (x, t), _ = load_mnist()
    x, t = x[:steps * 100], t[:steps * 100]
    results, ratios = {}, {}
    from convnp.accel import direct, planner
    from convnp.utils import build
    print(f"machine: {build.cpu_features()['model']}, {os.cpu_count()} cores; threads={args.threads}; "
          f"numpy {np.__version__}, torch {torch.__version__}; C kernels: "
          f"{direct.variant() + ' variant' if accel.direct_enabled_for() else 'off'}; "
          f"planning: {planner.mode()}; peers: {_peer_isa()}")
    for name in ("simple_convnet", "deep_convnet") if "train" in parts else ():
        r = bench_train(x, t, name, steps, repeats, textbook_steps=3 if args.quick else 5)
        results[f"train_{name}"] = r
        ratios[f"train_{name}_vs_torch"] = r["convnp"] / r["torch"]
        if "textbook" in r:
            ratios[f"train_{name}_speedup_vs_textbook"] = r["textbook"] / r["convnp"]
        ratios[f"train_{name}_vs_reference"] = r["convnp"] / r["convnp_reference"]
        print(f"epoch {name:15s} convnp {r['convnp']:7.1f}s  reference plan {r['convnp_reference']:7.1f}s  "
              f"torch {r['torch']:7.1f}s  " + (f"textbook {r['textbook']:7.1f}s  " if "textbook" in r else "")
              + f"ratio {r['convnp'] / r['torch']:.2f}")
    if parts & {"train", "vgg"}:
        rng = np.random.default_rng(0)  # the CIFAR-shaped VGG-BN net: 15 steps of batch 64 on random images
        vsteps = 5 if args.quick else 15
        xv = rng.standard_normal((vsteps * 64, 3, 32, 32)).astype(np.float32)
        tv = rng.integers(0, 10, vsteps * 64)
        r = bench_train(xv, tv, "vgg_bn_cifar", vsteps, repeats, 0, batch=64, per_epoch=False)
        results["train_vgg_bn_cifar"] = r
        ratios["train_vgg_bn_cifar_vs_torch"] = r["convnp"] / r["torch"]
        ratios["train_vgg_bn_cifar_vs_reference"] = r["convnp"] / r["convnp_reference"]
        print(f"{vsteps} steps vgg_bn_cifar  convnp {r['convnp']:7.2f}s  reference plan {r['convnp_reference']:7.2f}s  "
              f"torch {r['torch']:7.2f}s  ratio {r['convnp'] / r['torch']:.2f}")
    if "infer" in parts:
        for name in ("simple_convnet", "deep_convnet"):
            r = bench_infer(x, name, repeats)
            results[f"infer_{name}"] = r
            ratios[f"infer_{name}_throughput_vs_torch"] = r["convnp"] / r["torch"]
            ratios[f"infer_{name}_throughput_vs_reference"] = r["convnp"] / r["convnp_reference"]
            print(f"infer {name:15s} convnp {r['convnp']:8.0f} img/s  reference plan {r['convnp_reference']:8.0f} "
                  f"img/s  torch {r['torch']:8.0f} img/s  throughput ratio {r['convnp'] / r['torch']:.2f}")
    if parts & {"infer", "resnet"}:
        r = bench_resnet18_infer(repeats)
        results["infer_resnet18_b8"] = r
        ratios["infer_resnet18_b8_time_vs_torch"] = r["torch"] / r["convnp"]
        ratios["infer_resnet18_b8_time_vs_reference"] = r["convnp_reference"] / r["convnp"]
        print(f"infer resnet18 b8 224x224  convnp {8 / r['convnp'] * 1e3:7.1f} ms  reference plan "
              f"{8 / r['convnp_reference'] * 1e3:7.1f} ms  torch {8 / r['torch'] * 1e3:7.1f} ms  "
              f"time ratio {r['torch'] / r['convnp']:.2f}")
    for part, fn in (("conv", bench_conv), ("pool", bench_pool)):
        if part in parts:
            rows = fn(repeats)  # turns of 3 timed calls: medians of 15 (milliseconds each, on a noisy machine)
            results[part] = rows
            for row in rows:
                ratio = row["convnp"] / row["torch"]
                ratios[f"{part} {row['shape']}"] = ratio
                ref = (f"reference {row['convnp_reference'] * 1e3:8.2f}ms  " if "convnp_reference" in row else "")
                if "convnp_reference" in row:
                    ratios[f"{part} {row['shape']} vs reference"] = row["convnp"] / row["convnp_reference"]
                print(f"{part} fwd+bwd {row['shape']:42s} convnp {row['convnp'] * 1e3:8.2f}ms  {ref}"
                      f"torch {row['torch'] * 1e3:8.2f}ms  ratio {ratio:.2f}")
    if "memory" in parts:
        r = bench_memory()
        results["vgg16_b8_peak_rss_mib"] = r
        print(f"VGG16 batch-8 224x224 forward peak RSS: convnp {r['convnp']} MiB, torch {r['torch']} MiB")
    if "firstuse" in parts:
        r = bench_first_use()
        results["first_use"] = r
        print(f"first use (empty cache: compile + plans + SimpleConvNet fit of 200 images + predict): "
              f"{r['seconds'] and round(r['seconds'], 1)} s; printed: {r['printed']}")
    plans = planner.plans()
    print(f"plan ({len(plans)} cases, {planner.plan_file()}):")
    for key, entry in plans.items():
        print(f"  {key}: {entry['provider']}")
    print("JSON " + json.dumps({"ratios": {k: round(v, 3) for k, v in ratios.items()}, "results": results,
                                "accel": accel.available(), "direct_conv": accel.direct_enabled_for(),
                                "threads": args.threads}))


if __name__ == "__main__":
    main()
