"""Run under ``mpiexec -n 2`` (tests/distributed/test_distributed.py does): checks of convnp.distributed's
collectives against single-process references. Prints 'OK <rank>' on success; any failed
assertion aborts the whole job (get_world() installs the abort-on-error excepthook)."""
import numpy as np

from convnp import nn
from convnp.distributed import (DistributedSampler, SingleProcessComm, SyncBatchNorm2D, get_world,
                                sharded_map)

world = get_world()
rank, size = world.rank, world.size
assert size >= 2, f"run this under mpiexec -n 2 or more (got size {size})"
assert type(world).__name__ == "MPIComm", world
assert world.is_root == (rank == 0)


def make_model(seed, bn=False):
    layers = [nn.Conv2D(3, 3, padding="same", seed=seed)]
    if bn:
        layers.append(SyncBatchNorm2D() if bn == "sync" else nn.BatchNorm2D())
    layers += [nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(), nn.Dense(4, seed=seed + 1)]
    model = nn.Sequential(layers)
    model(np.zeros((2, 2, 6, 6), np.float32))  # build (lazy shapes), then float64 for tight comparisons
    model.astype(np.float64)
    for p in model.parameters():
        assert p.dtype == np.float64
    return model


def mse_backward(model, x, t):
    """loss = mean over the batch of sum((y - t)^2); returns the loss, gradients land in params."""
    y = model(x)
    model.backward(2 * (y - t) / len(x))
    return float(((y - t) ** 2).sum() / len(x))


# 1. mean gradient: each rank sets its gradient to its rank; None grads count as zeros --------------
model = make_model(seed=rank)  # different weights on each rank ...
params = list(model.parameters())
for p in params:
    p.grad = np.full(p.shape, float(rank))
world.allreduce_gradients(params)
for p in params:
    np.testing.assert_array_equal(p.grad, np.full(p.shape, (size - 1) / 2))
a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
a.grad = np.full(3, 4.0) if rank == 0 else None  # present on rank 0 only: the others count zeros
world.allreduce_gradients([a, b])
np.testing.assert_allclose(a.grad, np.full(3, 4.0 / size))
assert b.grad is None, "a grad that is None on every rank must stay None"
f32 = nn.Parameter(np.ones(5, np.float32))
f32.grad = np.full(5, rank + 1, np.float32)
from convnp.distributed.comm import MPIComm
MPIComm(bucket_mb=1e-5).allreduce_gradients([f32, nn.Parameter(np.ones(4, np.float32))])  # tiny buckets
assert f32.grad.dtype == np.float32
np.testing.assert_allclose(f32.grad, np.full(5, (size + 1) / 2))

# 2. broadcast makes every rank identical to rank 0 (parameters and buffers) -----------------------
model = make_model(seed=10 + rank, bn=True)
model[1].running_mean[...] = rank + 1.0
world.broadcast_parameters(model)
states = world.allgather({k: np.asarray(v) for k, v in model.state_dict().items()})
for k in states[0]:
    for s in states[1:]:
        np.testing.assert_array_equal(s[k], states[0][k], err_msg=k)
np.testing.assert_array_equal(model[1].running_mean, 1.0)

# 3. number/array reductions, bcast, gather ----------------------------------------------------------
assert world.allreduce_sum(rank + 1) == size * (size + 1) // 2
assert abs(world.allreduce_mean(float(rank)) - (size - 1) / 2) < 1e-12
np.testing.assert_array_equal(world.allreduce_mean(np.full(3, float(rank))), np.full(3, (size - 1) / 2))
assert world.bcast({"r": rank})["r"] == 0
g = world.gather(rank)
assert g == (list(range(size)) if rank == 0 else None), g
np.testing.assert_array_equal(world.shard(np.arange(4 * size)), np.arange(4 * rank, 4 * rank + 4))

# 4. sampler: disjoint shards of equal length that cover the data set --------------------------------
for n, drop, bs in [(103, False, None), (103, True, None), (50, False, 4), (7, False, None)]:
    s = DistributedSampler(n, seed=3, drop_last=drop, batch_size=bs)
    s.set_epoch(2)
    shards = world.allgather(s.indices())
    assert len({len(x) for x in shards}) == 1, [len(x) for x in shards]
    allidx = np.concatenate(shards)
    if drop:
        assert len(np.unique(allidx)) == len(allidx) == n - n % size
    else:
        assert set(allidx.tolist()) == set(range(n))
        assert len(allidx) - len(np.unique(allidx)) < size * (bs or 1)  # only the padding repeats
    if n >= size * 2 and not drop:
        one = DistributedSampler(n, world=SingleProcessComm(), seed=3, batch_size=bs * size if bs else None)
        if bs:  # step k of rank r = rows [r*b, (r+1)*b) of the single-process global batch k
            ref = one.global_indices(2).reshape(-1, size, bs)[:, rank, :].reshape(-1)
            np.testing.assert_array_equal(s.indices(), ref)

# 5. sharded_map returns results in order on every rank / on root only -------------------------------
items = [f"file{i}.png" for i in range(7)]
seen = []
out = sharded_map(lambda f: (f, rank) if not seen.append(f) else None, items)
assert [o[0] for o in out] == items, out
assert {o[1] for o in out} == set(range(size)), "every rank takes a share"
assert len(seen) in (len(items) // size, len(items) // size + 1)
assert sharded_map(str.upper, items, root=0) == ([i.upper() for i in items] if rank == 0 else None)
batched = sharded_map(lambda share: [(f, len(share)) for f in share], items, batched=True)
assert [b[0] for b in batched] == items and sorted({b[1] for b in batched}) == [3, 4], batched

# 6. equivalence: k SGD steps on size ranks x batch B == 1 rank x batch size*B (float64) -------------
for bn in (False, "sync"):
    B, k, lr = 3, 4, 0.01
    rng = np.random.default_rng(123)  # the same data on every rank
    xs = rng.standard_normal((k, size * B, 2, 6, 6))
    ts = rng.standard_normal((k, size * B, 4))
    ref = make_model(seed=7, bn=bn and "plain")
    dist = make_model(seed=100 + rank, bn=bn)
    dist.load_state_dict(ref.state_dict()) if rank == 0 else None
    world.broadcast_parameters(dist)  # rank 0's weights (== ref) everywhere
    for step in range(k):
        ref.zero_grad()
        mse_backward(ref, xs[step], ts[step])
        for p in ref.parameters():
            p.data -= lr * p.grad
        dist.zero_grad()
        mse_backward(dist, xs[step][rank * B:(rank + 1) * B], ts[step][rank * B:(rank + 1) * B])
        world.allreduce_gradients(dist.parameters())
        for p in dist.parameters():
            p.data -= lr * p.grad
    for key, v in ref.state_dict().items():
        np.testing.assert_allclose(dist.state_dict()[key], v, rtol=1e-10, atol=1e-12, err_msg=f"{bn} {key}")

world.barrier()
print(f"OK {rank}", flush=True)
