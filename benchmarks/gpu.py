"""convnp on CuPy vs PyTorch CUDA eager, in ONE process on one GPU, same data, fp32, batch 100.

    python -m benchmarks.gpu                  # epoch times, inference, conv/pool grid, peak memory
    python -m benchmarks.gpu --quick          # fewer steps and repeats
    python -m benchmarks.gpu --only train,infer,conv,pool --accuracy 5   # + train SimpleConvNet 5 epochs

Parts:

* ``train``: SimpleConvNet and DeepConvNet (the zoo's ``simple_convnet``/``deep_convnet`` and the same
  layers in torch), Adam lr 1e-3, MNIST resident on the GPU; a fixed number of steps timed and scaled to
  an epoch of 600 steps (60,000 images). Also the peak GPU memory of each (CuPy pool high-water mark vs
  ``torch.cuda.max_memory_reserved``).
* ``infer``: eval-mode throughput (images/s) on batches of 1000 under no_grad.
* ``conv`` / ``pool``: forward+backward per shape of ``benchmarks.run``'s grid, for convnp with the custom
  kernels, convnp on plain CuPy (kernels off: the naive im2col path) and torch.
* ``--accuracy E``: trains SimpleConvNet for E epochs with ``model.fit`` on the GPU and reports the MNIST
  test accuracy (target >= 99.0%).

Contestants alternate within each repeat; medians; every timed region ends with a device synchronize.
TF32 is switched off in torch (cuDNN and cuBLAS) so both sides compute in true fp32 (CuPy does unless
``CUPY_TF32=1``). Prints a table and one JSON line. Exits with status 2 and a message without CUDA.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from benchmarks.run import alternate as run_alternate

STEPS_PER_EPOCH = 600
BATCH = 100


def _require_gpus():
    """(cupy, torch) or exit(2) saying what is missing."""
    from convnp import backend
    problems = []
    cp = None
    try:
        cp = backend.require_cuda()
    except RuntimeError as e:
        problems.append(f"convnp/CuPy: {e}")
    try:
        import torch
        if not torch.cuda.is_available():
            problems.append(f"PyTorch {torch.__version__}: torch.cuda.is_available() is False (a CPU-only build, or no "
                            "GPU visible); install a CUDA build of torch")
    except ImportError:
        torch = None
        problems.append("PyTorch is not installed (pip install torch with CUDA)")
    if problems:
        print("benchmarks.gpu needs a CUDA GPU with CuPy and a CUDA build of PyTorch:\n  " + "\n  ".join(problems),
              file=sys.stderr)
        raise SystemExit(2)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    return cp, torch


def alternate(contestants: dict, repeats: int, sync) -> dict:
    """Median seconds of each contestant over ``repeats`` interleaved runs (A B C A B C ...), each timed between
    two ``sync()`` calls: ``benchmarks.run.alternate`` with no idle pause (a GPU has no spinning CPU threads)."""
    return run_alternate(contestants, repeats, sync=sync, settle_s=0.0)


# ----------------------------------------------------------------------------- contestants
def convnp_trainer(cp, name, x, t, steps):
    import convnp
    from convnp import optim
    from convnp.nn.losses import CrossEntropyLoss
    model = convnp.models.get_model(name, seed=0).to("cuda")
    model(x[:BATCH])  # build
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = CrossEntropyLoss()

    def run():
        model.train()
        for i in range(steps):
            xb, tb = x[i * BATCH:(i + 1) * BATCH], t[i * BATCH:(i + 1) * BATCH]
            opt.zero_grad()
            loss_fn(model(xb), tb)
            model.backward(loss_fn.backward())
            opt.step()
    return run, model


def torch_trainer(torch, name, x, t, steps):
    from benchmarks.run import torch_model
    model = torch_model(name).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run():
        model.train()
        for i in range(steps):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[i * BATCH:(i + 1) * BATCH]), t[i * BATCH:(i + 1) * BATCH]).backward()
            opt.step()
    return run, model


def bench_train(cp, torch, sync, x, t, name, steps, repeats):
    pool = cp.get_default_memory_pool()
    xc, tc = cp.asarray(x), cp.asarray(t)
    xt, tt = torch.from_numpy(x).cuda(), torch.from_numpy(t).cuda()
    pool.free_all_blocks()
    base = pool.total_bytes()  # the resident data set
    ours, _ = convnp_trainer(cp, name, xc, tc, steps)
    ours()  # warm-up: kernels compiled, pool filled
    sync()
    ours_peak = pool.total_bytes() - base
    torch.cuda.reset_peak_memory_stats()
    base_t = torch.cuda.memory_reserved()
    theirs, _ = torch_trainer(torch, name, xt, tt, steps)
    theirs()
    sync()
    theirs_peak = torch.cuda.max_memory_reserved() - base_t
    med = alternate({"convnp": ours, "torch": theirs}, repeats, sync)
    out = {k: v / steps * STEPS_PER_EPOCH for k, v in med.items()}
    out["peak_mib"] = {"convnp": ours_peak / 2 ** 20, "torch": theirs_peak / 2 ** 20}
    return out


def bench_infer(cp, torch, sync, x, name, repeats, batch=1000):
    import convnp
    from benchmarks.run import torch_model
    model = convnp.models.get_model(name, seed=0).to("cuda").eval()
    tmodel = torch_model(name).cuda().eval()
    xc, xt = cp.asarray(x), torch.from_numpy(x).cuda()

    def ours():
        with convnp.no_grad():
            for i in range(0, len(x), batch):
                model(xc[i:i + batch])

    def theirs():
        with torch.no_grad():
            for i in range(0, len(x), batch):
                tmodel(xt[i:i + batch])
    ours(), theirs()
    med = alternate({"convnp": ours, "torch": theirs}, repeats, sync)
    return {k: len(x) / v for k, v in med.items()}  # images per second


def bench_conv(cp, torch, sync, repeats):
    from benchmarks.run import CONV_GRID
    from convnp.cuda import kernels_disabled
    from convnp.functional import conv2d_backward, conv2d_forward
    rng = np.random.default_rng(0)
    rows = []
    for n, c, h, w, f, k, s, p in CONV_GRID:
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = (rng.standard_normal((f, c, k, k)) * 0.1).astype(np.float32)
        xc, wc, bc = cp.asarray(x), cp.asarray(wt), cp.zeros(f, np.float32)
        tx, tw, tb = (torch.tensor(a, device="cuda", requires_grad=True) for a in (x, wt, np.zeros(f, np.float32)))

        def ours():
            y, cache = conv2d_forward(xc, wc, bc, stride=s, padding=p)
            conv2d_backward(cp.ones_like(y), cache)

        def plain():
            with kernels_disabled():
                ours()

        def theirs():
            y = torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p)
            y.backward(torch.ones_like(y))
        ours(), plain(), theirs()
        med = alternate({"convnp": ours, "convnp_plain_cupy": plain, "torch": theirs}, repeats, sync)
        rows.append({"shape": f"x{(n, c, h, w)} {f}@{k}x{k} s{s} p{p}", **med})
    return rows


def bench_pool(cp, torch, sync, repeats):
    from benchmarks.run import POOL_GRID
    from convnp.cuda import kernels_disabled
    from convnp.functional import max_pool2d_backward, max_pool2d_forward
    rng = np.random.default_rng(0)
    rows = []
    for n, c, h, w, k, s in POOL_GRID:
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        xc, tx = cp.asarray(x), torch.tensor(x, device="cuda", requires_grad=True)

        def ours():
            y, cache = max_pool2d_forward(xc, k, s)
            max_pool2d_backward(cp.ones_like(y), cache)

        def plain():
            with kernels_disabled():
                ours()

        def theirs():
            y = torch.nn.functional.max_pool2d(tx, k, s)
            y.backward(torch.ones_like(y))
        ours(), plain(), theirs()
        med = alternate({"convnp": ours, "convnp_plain_cupy": plain, "torch": theirs}, repeats, sync)
        rows.append({"shape": f"x{(n, c, h, w)} pool {k}/{s}", **med})
    return rows


def train_accuracy(epochs, seed=0):
    """SimpleConvNet trained with model.fit on the GPU; returns (test accuracy, seconds)."""
    import convnp
    from convnp.data import load_mnist
    (x, t), (xt, tt) = load_mnist()
    model = convnp.models.get_model("simple_convnet", seed=seed).to("cuda")
    model.compile("adam", lr=1e-3)
    t0 = time.perf_counter()
    model.fit(x, t, epochs=epochs, batch_size=BATCH, seed=seed, verbose=0)
    seconds = time.perf_counter() - t0
    return float(model.evaluate(xt, tt)["accuracy"]), seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    ap.add_argument("--only", default="train,infer,conv,pool", help="comma-separated parts")
    ap.add_argument("--accuracy", type=int, default=0, metavar="EPOCHS",
                    help="also train SimpleConvNet for EPOCHS epochs and report the test accuracy")
    args = ap.parse_args(argv)
    cp, torch = _require_gpus()
    from convnp.backend import synchronize

    def sync():
        synchronize()
        torch.cuda.synchronize()
    parts = set(args.only.split(","))
    steps, repeats = (20, 3) if args.quick else (100, 5)
    from convnp.data import load_mnist
    (x, t), _ = load_mnist()
    x, t = x[:steps * BATCH], t[:steps * BATCH].astype(np.int64)
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    print(f"GPU: {props['name'].decode() if isinstance(props['name'], bytes) else props['name']}; "
          f"CuPy {cp.__version__}, torch {torch.__version__} (cuDNN {torch.backends.cudnn.version()}); fp32, "
          f"batch {BATCH}, {steps} steps per timing scaled to {STEPS_PER_EPOCH}")
    results, ratios = {}, {}
    if "train" in parts:
        for name in ("simple_convnet", "deep_convnet"):
            r = bench_train(cp, torch, sync, x, t, name, steps, repeats)
            results[f"train_{name}"] = r
            ratios[f"train_{name}_vs_torch"] = r["convnp"] / r["torch"]
            print(f"epoch {name:15s} convnp {r['convnp']:6.2f}s  torch {r['torch']:6.2f}s  ratio "
                  f"{r['convnp'] / r['torch']:.2f} (target <= 2.0)  peak GPU memory convnp "
                  f"{r['peak_mib']['convnp']:.0f} MiB, torch {r['peak_mib']['torch']:.0f} MiB")
    if "infer" in parts:
        for name in ("simple_convnet", "deep_convnet"):
            r = bench_infer(cp, torch, sync, x, name, repeats)
            results[f"infer_{name}"] = r
            ratios[f"infer_{name}_throughput_vs_torch"] = r["convnp"] / r["torch"]
            print(f"infer {name:15s} convnp {r['convnp']:9.0f} img/s  torch {r['torch']:9.0f} img/s  "
                  f"throughput ratio {r['convnp'] / r['torch']:.2f}")
    for part, fn in (("conv", bench_conv), ("pool", bench_pool)):
        if part in parts:
            rows = fn(cp, torch, sync, repeats)
            results[part] = rows
            for row in rows:
                ratios[f"{part} {row['shape']}"] = row["convnp"] / row["torch"]
                print(f"{part} fwd+bwd {row['shape']:42s} convnp {row['convnp'] * 1e3:7.2f}ms  plain CuPy "
                      f"{row['convnp_plain_cupy'] * 1e3:7.2f}ms  torch {row['torch'] * 1e3:7.2f}ms  ratio "
                      f"{row['convnp'] / row['torch']:.2f}")
    if args.accuracy:
        acc, seconds = train_accuracy(args.accuracy)
        results["accuracy_simple_convnet"] = {"epochs": args.accuracy, "test_accuracy": acc, "seconds": seconds}
        print(f"SimpleConvNet {args.accuracy} epochs on the GPU with model.fit: test accuracy {acc:.4f} "
              f"(target >= 0.990) in {seconds:.1f}s")
    print(json.dumps({"benchmark": "gpu", "ratios": ratios, "results": results}))


if __name__ == "__main__":
    main()
