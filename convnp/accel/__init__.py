"""Optional compiled CPU kernels (numba) for the memory-bound steps around the matrix products.

NumPy stays the reference: every function in :mod:`convnp.accel.kernels` has a NumPy twin in
``convnp.functional`` that computes the same numbers, and the tests compare the two. What the kernels buy is
one pass over memory where NumPy makes several (a max pool with its argmax, a ReLU backward without a boolean
temporary) and cache-sized work per image plane (col2im, the NCHW <-> GEMM layout copies).

A second, separate accelerator is :mod:`convnp.accel.direct`: C kernels compiled with the system's C compiler
on first use (no numba needed) for float32 NumPy arrays (see :func:`direct_enabled_for`): the forward and
backward of stride-1 one-group convolutions without a patch matrix, the padding copy, strided im2col/col2im
and the fused Adam step. :mod:`convnp.accel.threads` decides when they get every core (BLAS on one thread).
The numba kernels are used when all of these hold:

* numba is installed (``pip install "convnp[fast]"``);
* the environment variable ``CONVNP_ACCEL`` is not ``0`` and :func:`set_enabled` was not called with False;
* the arrays are NumPy arrays of float32 or float64 (CuPy arrays take convnp's CUDA kernels instead).

Example::

    import convnp.accel
    convnp.accel.available()            # True when the kernels will be used
    with convnp.accel.disabled():       # the NumPy reference path, e.g. to compare
        ...
"""
from __future__ import annotations

import contextlib
import importlib.util
import os

import numpy as np

__all__ = ["available", "enabled_for", "direct_enabled_for", "set_enabled", "disabled", "kernels", "direct",
           "POOL_WINDOWS"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: max-pool windows that have a compiled kernel (others take the NumPy path)
POOL_WINDOWS = ((2, 2), (3, 3))
_state = {"enabled": os.environ.get("CONVNP_ACCEL", "1").strip() not in ("0", "false", "off", "no"),
          "numba": importlib.util.find_spec("numba") is not None}


def available() -> bool:
    """True when numba is installed and the kernels are switched on."""
    return _state["enabled"] and _state["numba"]


def enabled_for(*arrays) -> bool:
    """True when the kernels are on and every array is a NumPy float32/float64 array (of one dtype)."""
    if not available():
        return False
    dtype = None
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype not in _FLOATS or (dtype is not None and a.dtype != dtype):
            return False
        dtype = a.dtype
    return True


def direct_enabled_for(*arrays) -> bool:
    """True when the compiled direct convolution (:mod:`convnp.accel.direct`, needs a C compiler, not numba)
    is switched on and built, and every array is a float32 NumPy array."""
    if not _state["enabled"]:
        return False
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != np.float32:
            return False
    from . import direct
    return direct.available()


def set_enabled(flag: bool) -> bool:
    """Switch the kernels on or off for this process; returns the previous setting."""
    previous = _state["enabled"]
    _state["enabled"] = bool(flag)
    return previous


@contextlib.contextmanager
def disabled():
    """Run a block on the NumPy reference path."""
    previous = set_enabled(False)
    try:
        yield
    finally:
        set_enabled(previous)


def __getattr__(name):  # ``convnp.accel.kernels`` compiles lazily: importing convnp never imports numba
    if name in ("kernels", "direct", "threads"):
        return importlib.import_module(__name__ + "." + name)
    raise AttributeError(f"module 'convnp.accel' has no attribute {name!r}")
