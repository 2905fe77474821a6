"""Datasets: indexable collections of (input, target) samples, with fast batch access for arrays."""
from __future__ import annotations

import numpy as np

from ..backend import make_rng


class Dataset:
    """Base class: ``len(ds)`` samples, ``ds[i]`` -> ``(x, y)``.

    Subclasses implement ``__len__`` and ``__getitem__``; :meth:`get_batch` stacks single samples and
    may be overridden with a faster vectorized version (as :class:`ArrayDataset` does).
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__}.__len__ is not implemented")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__}.__getitem__ is not implemented")

    def get_batch(self, indices):
        """Samples ``indices`` stacked along a new first axis: ``(xb, yb)`` (``yb`` None when unlabelled)."""
        samples = [self[int(i)] for i in indices]
        xb = np.stack([s[0] for s in samples])
        if samples and samples[0][1] is None:
            return xb, None
        return xb, np.stack([np.asarray(s[1]) for s in samples])


class ArrayDataset(Dataset):
    """Samples from arrays that share their first axis: ``x[i]`` with target ``y[i]``.

    Args:
        x: inputs, e.g. images (N, C, H, W).
        y: targets (N,) class indices or (N, K) one-hot rows; None for unlabelled data.

    Shape: ``ds[i]`` -> (x[i], y[i]); ``get_batch(idx)`` -> (x[idx], y[idx]) by fancy indexing.
    Example: ``ArrayDataset(x_train, t_train).get_batch([0, 5])[0].shape == (2, 1, 28, 28)``.
    """

    def __init__(self, x, y=None):
        if y is not None and len(x) != len(y):
            raise ValueError(f"ArrayDataset: x has {len(x)} samples but y has {len(y)}")
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index], (None if self.y is None else self.y[index])

    def get_batch(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        return self.x[indices], (None if self.y is None else self.y[indices])


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices`` (in that order)."""

    def __init__(self, dataset: Dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= len(dataset)):
            raise IndexError(f"Subset: indices must lie in [0, {len(dataset)}), got range "
                             f"[{self.indices.min()}, {self.indices.max()}]")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices):
        return self.dataset.get_batch(self.indices[np.asarray(indices, dtype=np.int64)])


def as_dataset(x, y=None) -> Dataset:
    """``x`` itself when it is a Dataset (then ``y`` must be None), else ``ArrayDataset(x, y)``."""
    if isinstance(x, Dataset):
        if y is not None:
            raise ValueError("as_dataset: pass targets inside the Dataset, not as a separate y")
        return x
    return ArrayDataset(x, y)


def random_split(dataset: Dataset, lengths, seed=None):
    """Split into non-overlapping :class:`Subset` s of the given lengths (which must sum to ``len(dataset)``),
    after a seeded shuffle. Example: ``train, val = random_split(ds, [55000, 5000], seed=0)``."""
    lengths = [int(n) for n in lengths]
    if sum(lengths) != len(dataset) or min(lengths, default=0) < 0:
        raise ValueError(f"random_split: lengths {lengths} must be non-negative and sum to the dataset size "
                         f"{len(dataset)}")
    perm = make_rng(seed).permutation(len(dataset))
    out, start = [], 0
    for n in lengths:
        out.append(Subset(dataset, perm[start:start + n]))
        start += n
    return out
