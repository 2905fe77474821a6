"""Argument checking shared by ops, layers, optimizers and schedules: one ``pair`` and one ``positive_int``.

Every error names the caller (``where``), the argument and the value received, e.g.
``ValueError("Conv2D: strides must be positive, got (1, 0)")``. This module imports nothing of convnp,
so any subpackage may use it (docs/architecture.md).
"""
from __future__ import annotations

import operator

import numpy as np

__all__ = ["int_pair", "pair", "positive_int"]


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def int_pair(value, name: str, where: str) -> tuple[int, int]:
    """``3`` -> (3, 3); ``(3, 5)`` -> (3, 5); anything else raises a ValueError naming ``where`` and ``name``.

    No range check (see :func:`pair`). Bools are refused, NumPy integers accepted.
    """
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"{where}: {name} must be an int or a pair of ints, got {value!r}")


def pair(value, name: str, where: str, minimum: int = 1) -> tuple[int, int]:
    """An (h, w) pair of ints, each >= ``minimum``: kernel sizes, strides, dilations (minimum 1), paddings (0).

    Example: ``pair(2, "strides", "MaxPool2D") == (2, 2)``; ``pair((1, 0), "strides", "Conv2D")`` raises
    ``ValueError("Conv2D: strides must be positive, got (1, 0)")``.
    """
    result = int_pair(value, name, where)
    if min(result) < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{where}: {name} must be {bound}, got {value!r}")
    return result


def positive_int(value, name: str, where: str) -> int:
    """``value`` as an int >= 1; ints and NumPy integers only (no floats, no bools).

    Example: ``positive_int(0, "filters", "Conv2D")`` raises
    ``ValueError("Conv2D: filters must be a positive integer, got 0")``.
    """
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < 1:
        raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}")
    return int(number)
