"""Dropout: inverted dropout with a seeded mask."""
from __future__ import annotations

import numpy as np

from ...backend import get_array_module, make_rng
from ..module import Module


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``rate`` and scale the survivors
    by 1 / (1 - rate), so eval mode is the identity and the expected activation is unchanged.

    Args:
        rate: probability of dropping an element, in [0, 1) (Keras' name; PyTorch's ``p``).
        seed: seed or ``numpy.random.Generator`` for the masks (None: fresh entropy). On a GPU the mask is
            drawn by CuPy from a seed taken from this Generator, so runs stay reproducible.

    Shape: any input; output has the same shape.
    Example: ``Dropout(0.5, seed=0)`` before AlexNet's fully connected layers.
    """


    def __init__(self, rate: float = 0.5, seed=None):
        super().__init__()
        try:
            ok = 0.0 <= float(rate) < 1.0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.rng = make_rng(seed)

    def _mask(self, x):
        """Scaled keep-mask (0 or 1/(1-rate)) in x's float dtype and array module."""
        xp = get_array_module(x)
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
        draw = np.float64 if dtype == np.float64 else np.float32
        if xp is np:
            u = self.rng.random(x.shape, dtype=draw)
        else:  # pragma: no cover - GPU only
            u = xp.random.default_rng(int(self.rng.integers(2 ** 63))).random(x.shape, dtype=draw)
        keep = u >= self.rate  # P(keep) = 1 - rate
        return keep.astype(dtype) * dtype.type(1.0 / (1.0 - self.rate))

    def forward(self, x):
        if not self.training or self.rate == 0.0:
            self._save_cache(False)  # identity: backward passes dy through
            return x
        mask = self._mask(x)
        self._save_cache(mask)
        return x * mask

    def backward(self, dy):
        mask = self._get_cache()
        if mask is False:
            return dy
        return dy * mask
