"""Compiled CPU kernels: C compiled with the system's compiler on first use, for float32 NumPy arrays.

NumPy stays the reference: every kernel has a NumPy twin in ``convnp.functional`` that computes the same
numbers (within float32 rounding for sums), and the tests compare the two.

* :mod:`convnp.accel.direct`: convolutions without a patch matrix (stride 1 and strided), the padding and
  strided-patch copies, the fused Adam step;
* :mod:`convnp.accel.kernels`: the memory-bound steps around the matrix products (max pooling with its argmax,
  ReLU backward, col2im, the NCHW <-> GEMM layout copies), one pass each;
* :mod:`convnp.utils.build` (shared with ``convnp.cuda.emulate``): one compile-and-cache helper, a build per
  instruction set (avx512, avx2, generic; ``CONVNP_ISA`` forces one);
* :mod:`convnp.accel.planner`: which convolution provider runs each case, measured on this machine;
* :mod:`convnp.accel.threads`: when the kernels get every core (BLAS on one thread).

They are used when a C compiler is found (or the library is in the cache), ``CONVNP_ACCEL`` is not ``0`` and
:func:`set_enabled` was not called with False, and the arrays are float32 NumPy arrays (float64 and CuPy
arrays take the NumPy code and convnp's CUDA kernels).

Example::

    import convnp.accel
    convnp.accel.available()            # True when the kernels will be used
    with convnp.accel.disabled():       # the NumPy reference path, e.g. to compare
        ...
"""
from __future__ import annotations

import contextlib
import importlib
import os

import numpy as np

__all__ = ["available", "enabled_for", "direct_enabled_for", "set_enabled", "disabled", "kernels", "direct",
           "POOL_WINDOWS"]

#: max-pool windows that have a compiled kernel (others take the NumPy path)
POOL_WINDOWS = ((2, 2), (3, 3))
_state = {"enabled": os.environ.get("CONVNP_ACCEL", "1").strip() not in ("0", "false", "off", "no")}


def available() -> bool:
    """True when the kernels are switched on and the C library is built (or can be)."""
    if not _state["enabled"]:
        return False
    from . import direct
    return direct.available()


def direct_enabled_for(*arrays) -> bool:
    """True when the C kernels are switched on and built, and every array is a float32 NumPy array."""
    if not _state["enabled"]:
        return False
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != np.float32:
            return False
    from . import direct
    return direct.available()


#: the kernels of :mod:`convnp.accel.kernels` take the same arrays as the convolutions: float32 NumPy
enabled_for = direct_enabled_for


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


def __getattr__(name):  # submodules load lazily: importing convnp compiles nothing
    if name in ("kernels", "direct", "threads", "planner", "conv_pool"):
        return importlib.import_module(__name__ + "." + name)
    raise AttributeError(f"module 'convnp.accel' has no attribute {name!r}")
