"""Argument parsing shared by the conv and pooling ops."""
from __future__ import annotations

import numpy as np


def int_pair(value, name: str, where: str) -> tuple[int, int]:
    """``3`` -> (3, 3); ``(3, 5)`` -> (3, 5); anything else raises a ValueError naming ``where`` and ``name``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        return int(value[0]), int(value[1])
    raise ValueError(f"{where}: {name} must be an int or a pair of ints, got {value!r}")
