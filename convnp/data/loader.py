"""DataLoader: seeded shuffling and batching over a Dataset, one permutation per epoch."""
from __future__ import annotations

import math

import numpy as np

from .dataset import as_dataset


class DataLoader:
    """Iterate over a dataset in batches; every epoch visits every sample exactly once.

    The order of epoch ``e`` is ``default_rng([seed, e]).permutation(n)``: it depends only on the seed
    and the epoch number, so a run resumed at epoch ``e`` sees the same batches as an uninterrupted one.
    Each ``iter(loader)`` runs the next epoch (or the one set with :meth:`set_epoch`).

    Args:
        dataset: a :class:`~convnp.data.Dataset`, or an array of inputs (then pass ``y``).
        batch_size: samples per batch (the last one may be smaller unless ``drop_last``).
        shuffle: shuffle every epoch (else the natural order).
        seed: int seed of the per-epoch permutations (and of the transform's random numbers).
        drop_last: drop the last partial batch.
        transform: optional batch transform ``t(xb, rng) -> xb`` (see :mod:`convnp.data.transforms`),
            e.g. augmentation; it gets a Generator seeded by (seed, epoch, batch index).
        y: targets when ``dataset`` is an array.

    Shape: yields ``(xb, yb)`` with ``len(xb) == batch_size`` except possibly the last batch;
    ``len(loader) == ceil(n / batch_size)`` (or floor with ``drop_last``).
    Example::

        loader = DataLoader(x_train, batch_size=100, shuffle=True, seed=0, y=t_train)
        for xb, yb in loader: ...
    """

    def __init__(self, dataset, batch_size: int = 32, shuffle: bool = False, seed=None, drop_last: bool = False,
                 transform=None, y=None):
        if int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size}")
        self.dataset = as_dataset(dataset, y)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(np.random.SeedSequence().entropy % (2 ** 63)) if seed is None else int(seed)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next ``iter()`` uses."""
        self.epoch = int(epoch)

    def order(self, epoch: int):
        """The sample order of ``epoch``: a seeded permutation, or ``arange(n)`` without shuffling."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(n)

    def batch_indices(self, epoch: int):
        """The list of index arrays, one per batch, of ``epoch``."""
        order = self.order(epoch)
        return [order[i * self.batch_size:(i + 1) * self.batch_size] for i in range(len(self))]

    def load(self, indices, epoch: int, step: int, rank: int = 0):
        """Fetch the samples ``indices`` and apply the transform with the (seed, epoch, step, rank) Generator."""
        xb, yb = self.dataset.get_batch(indices)
        if self.transform is not None:
            xb = self.transform(xb, np.random.default_rng([self.seed, int(epoch), int(step), int(rank), 1]))
        return xb, yb

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        for step, idx in enumerate(self.batch_indices(epoch)):
            yield self.load(idx, epoch, step)
