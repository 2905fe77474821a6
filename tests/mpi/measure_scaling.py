"""Not a test: measures data-parallel throughput and the communication share of a training step.

    OMP_NUM_THREADS=1 python tests/mpi/measure_scaling.py [model] [global_batch] [steps]
    OMP_NUM_THREADS=1 mpiexec -n 2 python tests/mpi/measure_scaling.py [model] [global_batch] [steps]

Each step: forward + backward on this rank's share of the global batch (compute), a barrier (wait:
load imbalance between ranks), ``allreduce_gradients`` (communication), the SGD update. Rank 0
prints one JSON line with samples/s and the mean time of each phase (after 2 warm-up steps).
"""
import json
import sys
import time

import numpy as np

from convnp import models
from convnp.data import load_mnist
from convnp.distributed import get_world
from convnp.nn.losses import get_loss

world = get_world()
name = sys.argv[1] if len(sys.argv) > 1 else "simple_convnet"
global_batch = int(sys.argv[2]) if len(sys.argv) > 2 else 100
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 20
warmup = 2
(x, t), _ = load_mnist()
model = models.MODELS[name](seed=0)
model(x[:2])
world.broadcast_parameters(model)
loss_fn = get_loss("cross_entropy")
b = global_batch // world.size
phases = {"compute": 0.0, "wait": 0.0, "allreduce": 0.0, "update": 0.0}
rng = np.random.default_rng(0)
start_all = None
for step in range(warmup + steps):
    if step == warmup:
        world.barrier()
        start_all = time.perf_counter()
        phases = dict.fromkeys(phases, 0.0)
    idx = rng.permutation(len(x))[:global_batch][world.rank * b:(world.rank + 1) * b]
    t0 = time.perf_counter()
    model.zero_grad()
    loss_fn(model(x[idx]), t[idx])
    model.backward(loss_fn.backward())
    t1 = time.perf_counter()
    world.barrier()
    t2 = time.perf_counter()
    world.allreduce_gradients(model.parameters())
    t3 = time.perf_counter()
    for p in model.parameters():
        p.data -= 0.01 * p.grad
    t4 = time.perf_counter()
    for key, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
        phases[key] += dt
world.barrier()
elapsed = time.perf_counter() - start_all
phases = {k: world.allreduce_mean(v) / steps * 1e3 for k, v in phases.items()}  # ms per step, mean over ranks
if world.is_root:
    step_ms = elapsed / steps * 1e3
    print(json.dumps({"model": name, "ranks": world.size, "global_batch": global_batch, "steps": steps,
                      "params": int(sum(p.size for p in model.parameters())),
                      "samples_per_s": round(global_batch * steps / elapsed, 1), "step_ms": round(step_ms, 1),
                      **{f"{k}_ms": round(v, 2) for k, v in phases.items()},
                      "allreduce_share": round(phases["allreduce"] / step_ms, 4),
                      "wait_share": round(phases["wait"] / step_ms, 4)}), flush=True)
