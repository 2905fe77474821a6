"""Parameter: a trainable array and its accumulated gradient."""
from __future__ import annotations

from ..backend import get_array_module


class Parameter:
    """A trainable array ``data`` with its gradient ``grad``.

    ``grad`` is ``None`` until a backward pass accumulates into it. Layers call
    :meth:`accumulate_grad` so that a weight used twice receives the sum of both gradients
    (the layer contract: backward *adds* into ``param.grad``). ``zero_grad`` resets it to ``None``.

    Args:
        data: the initial array (NumPy or CuPy), kept as is (not copied).
        requires_grad: False freezes the parameter (optimizers skip it, layers do not compute its grad).
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad: bool = True):
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def accumulate_grad(self, g) -> None:
        """``grad += g`` (``g`` is adopted without a copy on the first call, so pass a fresh array)."""
        if not self.requires_grad:
            return
        if g.shape != self.data.shape:
            raise ValueError(f"Parameter.accumulate_grad: gradient shape {tuple(g.shape)} does not match "
                             f"parameter shape {tuple(self.data.shape)}")
        if self.grad is None:
            self.grad = g if g.dtype == self.data.dtype else g.astype(self.data.dtype)
        else:
            self.grad += g

    def zero_grad(self) -> None:
        self.grad = None

    def numpy(self):
        from ..backend import to_numpy
        return to_numpy(self.data)

    def __repr__(self) -> str:
        xp = get_array_module(self.data)
        where = "cuda" if xp.__name__ == "cupy" else "cpu"
        return f"Parameter(shape={tuple(self.data.shape)}, dtype={self.data.dtype}, device={where})"
