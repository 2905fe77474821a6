"""Padding layers: ZeroPadding2D (Keras) and Padding2D (any mode of ``torch.nn.functional.pad``)."""
from __future__ import annotations

from ...functional.padding import PAD_MODES, normalize_pads, pad2d, pad2d_backward
from ..module import Module


class Padding2D(Module):
    """Pad the height and width of an (N, C, H, W) input.

    Args:
        padding: int, pair (ph, pw) or ((top, bottom), (left, right)).
        mode: "zeros", "reflect" (mirror without repeating the edge; pad < size), "replicate" (repeat the
            edge) or "circular" (wrap around).

    Shape: (N, C, H, W) -> (N, C, H + top + bottom, W + left + right).
    Example: ``Padding2D(((0, 1), (0, 1)), mode="replicate")``.
    """


    def __init__(self, padding=1, mode: str = "zeros"):
        super().__init__()
        name = type(self).__name__
        self.pads = normalize_pads(padding, name)
        if mode not in PAD_MODES:
            raise ValueError(f"{name}: unknown mode {mode!r}; choose one of {', '.join(PAD_MODES)}")
        self.mode = mode

    def output_shape(self, input_shape):
        (t, b), (l, r) = self.pads
        n, c, h, w = input_shape
        return (n, c, h + t + b, w + l + r)

    def forward(self, x):
        self.check_input(x, 4)
        self._save_cache(x.shape)
        return pad2d(x, self.pads, self.mode)

    def backward(self, dy):
        return pad2d_backward(dy, self.pads, self.mode, self._get_cache())


class ZeroPadding2D(Padding2D):
    """Keras ``ZeroPadding2D``: add rows and columns of zeros around an (N, C, H, W) input.

    Args:
        padding: int, pair (ph, pw) or ((top, bottom), (left, right)) (default 1 on every side).

    Shape: (N, C, H, W) -> (N, C, H + top + bottom, W + left + right).
    Example: ``ZeroPadding2D(2)`` turns (N, 1, 28, 28) into (N, 1, 32, 32) (LeNet-5's input size).
    """

    def __init__(self, padding=1):
        super().__init__(padding, "zeros")
