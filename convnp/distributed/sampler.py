"""DistributedSampler: each rank's share of a data set, the same number of steps on every rank.

Every epoch, every rank draws the *same* seeded permutation of ``range(n)`` (seed + epoch), makes
its length divisible by the world size, and takes its own contiguous slice::

    n = 10, size = 4, pad:   perm (10) + perm[:2] (12 = 4 x 3)  -> rank r gets perm12[3r : 3r + 3]
    n = 10, size = 4, drop:  perm[:8]                (8 = 4 x 2)  -> rank r gets perm8[2r : 2r + 2]

Padding (the default) repeats the first few indices of the permutation, so every sample is seen
at least once per epoch and ``size - n % size`` samples twice; ``drop_last=True`` leaves the last
``n % size`` samples of the permutation out instead (a different few each epoch when shuffling).
Because each rank holds the same number of indices, all ranks run the same number of
steps and meet at every all-reduce; no rank waits forever for a peer that ran out of data.

With ``batch_size=b`` (the per-rank batch) the shards interleave by batch instead: step ``k`` of
rank ``r`` gets rows ``[r*b, (r+1)*b)`` of global batch ``k`` (global batch ``B = size * b``), exactly
the rows a single-process run with batch ``B`` and the same seed uses in its step ``k``. So 2 ranks
x batch b follow the same trajectory as 1 rank x batch 2b (up to float rounding)::

    perm = [7 2 9 0 | 4 1 8 3 | ...], size 2, b 2:  rank 0 -> [7 2] [4 1] ...   rank 1 -> [9 0] [8 3] ...
"""
from __future__ import annotations

import numpy as np

from .world import get_world


class DistributedSampler:
    """Indices of this rank's shard of a data set of ``n`` samples, reshuffled every epoch.

    Args:
        n: the number of samples in the data set (or a sized data set: ``len()`` is taken).
        world: a communicator (``rank``, ``size``); default ``get_world()``.
        shuffle: draw a seeded permutation each epoch (``seed + epoch``); else ``0..n-1`` in order.
        seed: base seed; must be the same on every rank.
        drop_last: drop the tail (``n % size`` samples) instead of padding with repeated indices.
        batch_size: the per-rank batch size ``b``; when given, the global length is made divisible by
            ``size * b`` (padded or dropped the same way) so every rank runs the same number of *full*
            batches, and the shards interleave by global batch (see the module docstring).

    Shape:
        ``len(sampler)`` = ceil(n / m) * m / size with padding, floor(n / m) * m / size with
        ``drop_last``, where m = size (or size * batch_size).

    Example::

        sampler = DistributedSampler(len(x_train), seed=0)
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            idx = sampler.indices()          # this rank's shard, a NumPy int64 array
            for i in range(0, len(idx), b):  # same number of steps on every rank
                xb, yb = x_train[idx[i:i + b]], y_train[idx[i:i + b]]
    """

    def __init__(self, n, world=None, shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                 batch_size: int | None = None):
        if not isinstance(n, (int, np.integer)):
            n = len(n)
        n = int(n)
        if n < 0:
            raise ValueError(f"DistributedSampler: n must be >= 0, got {n}")
        self.world = world if world is not None else get_world()
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"DistributedSampler: batch_size must be >= 1, got {batch_size}")
        self.n = n
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.epoch = 0
        multiple = self.world.size * (self.batch_size or 1)
        if self.drop_last:
            self.total = (n // multiple) * multiple
            if self.total == 0:
                raise ValueError(f"DistributedSampler: drop_last with {n} samples and {self.world.size} ranks"
                                 f"{f' x batch {self.batch_size}' if self.batch_size else ''} leaves no samples; "
                                 f"need at least {multiple}")
        else:
            if n == 0:
                raise ValueError("DistributedSampler: the data set is empty (n=0)")
            self.total = -(-n // multiple) * multiple
        self.num_samples = self.total // self.world.size

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` next (call before each epoch; same value on every rank)."""
        self.epoch = int(epoch)

    def global_indices(self, epoch: int | None = None) -> np.ndarray:
        """The permutation shared by all ranks, padded or cut to ``total`` entries."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.total <= self.n:
            return order[:self.total]
        reps = -(-self.total // self.n)  # padding may exceed n when n < size (tiny data sets)
        return np.tile(order, reps)[:self.total]

    def indices(self, epoch: int | None = None) -> np.ndarray:
        """This rank's shard of :meth:`global_indices` (``len(self)`` int64 indices)."""
        order = self.global_indices(epoch).astype(np.int64, copy=False)
        if self.batch_size is None:
            return self.world.shard(order)  # one contiguous slice per rank
        b, size = self.batch_size, self.world.size
        return order.reshape(-1, size, b)[:, self.world.rank, :].reshape(-1)  # (steps, size, b) -> rank's rows

    def __iter__(self):
        return iter(self.indices().tolist())

    def num_batches(self) -> int:
        """Steps per epoch on every rank (needs ``batch_size``)."""
        if self.batch_size is None:
            raise ValueError("DistributedSampler.num_batches: construct the sampler with batch_size=")
        return self.num_samples // self.batch_size

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler(n={self.n}, rank={self.world.rank}, size={self.world.size}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, per_rank={len(self)})")

