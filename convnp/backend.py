"""The one module that knows about CuPy.

Every op that allocates starts with ``xp = get_array_module(x)`` and allocates with ``dtype=x.dtype``,
so the same code runs on NumPy arrays (CPU) and CuPy arrays (GPU). Everything else in convnp imports
array-module helpers from here and never imports cupy itself.

Also here: the default float dtype (float32), the global "grad enabled" switch used by ``no_grad()``
to skip caching activations during inference, and seeding helpers that hand out explicit
``numpy.random.Generator`` objects.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

try:  # CuPy is optional: the `gpu` extra
    import cupy as _cupy  # type: ignore
    _cupy_import_error = None
except Exception as _e:  # ImportError, or a CUDA runtime error at import time
    _cupy = None
    _cupy_import_error = f"{type(_e).__name__}: {_e}"

#: how to get CuPy, for error messages
GPU_INSTALL_HINT = ('pip install "convnp[gpu]" (CUDA 12: cupy-cuda12x) or pip install "convnp[gpu-cuda13]" '
                    '(CUDA 13: cupy-cuda13x)')

DEFAULT_DTYPE = np.float32


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def require_cuda():
    """The ``cupy`` module, or a RuntimeError that says what is missing: CuPy (and how to install it) or a GPU."""
    if _cupy is None:
        why = "" if _cupy_import_error is None or "No module named 'cupy'" in _cupy_import_error else \
            f" (importing it failed: {_cupy_import_error})"
        raise RuntimeError(f"device 'cuda' needs CuPy, which is not available{why}; install it with "
                           f"{GPU_INSTALL_HINT} on a machine with an NVIDIA GPU")
    try:
        count = _cupy.cuda.runtime.getDeviceCount()
        problem = None if count > 0 else "the CUDA runtime reports 0 devices"
    except Exception as e:
        problem = f"{type(e).__name__}: {e}"
    if problem is not None:
        raise RuntimeError(f"CuPy is installed but no CUDA GPU is visible ({problem}); check nvidia-smi, "
                           "the driver and CUDA_VISIBLE_DEVICES, or use device 'cpu'")
    return _cupy


_require_cupy = require_cuda  # the older private name


def check_same_device(where: str, x, data) -> None:
    """Raise a ValueError naming ``where`` when ``x`` and ``data`` (a parameter array) are on different devices.

    Example: ``check_same_device("Conv2D", x, self.weight.data)``.
    """
    x_dev, p_dev = device_of(x), device_of(data)
    if x_dev != p_dev:
        kind = "CuPy" if x_dev == "cuda" else "NumPy" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"{where}: the input is a {kind} array on '{x_dev}' but the layer's parameters are on "
                         f"'{p_dev}'; move the model with model.to('{x_dev}') or the input with "
                         f"convnp.backend.to_device(x, '{p_dev}') (fit, evaluate and predict move batches to the "
                         "model's device for you)")


def synchronize() -> None:
    """Wait for the current GPU to finish its queued work (for timing); does nothing without CuPy."""
    if _cupy is not None and cupy_available():
        _cupy.cuda.get_current_stream().synchronize()


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy`` (like ``cupy.get_array_module``)."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def is_cupy_array(x) -> bool:
    return _cupy is not None and isinstance(x, _cupy.ndarray)


def device_of(x) -> str:
    """'cuda' for a CuPy array, 'cpu' otherwise."""
    return "cuda" if is_cupy_array(x) else "cpu"


def normalize_device(device) -> str:
    """Accept 'cpu', 'cuda', 'cuda:0', 'gpu'; return 'cpu' or 'cuda'."""
    name = str(device).lower()
    if name == "cpu":
        return "cpu"
    if name in ("cuda", "gpu") or name.startswith("cuda:"):
        return "cuda"
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")


def to_device(x, device):
    """Move an array to 'cpu' (NumPy) or 'cuda' (CuPy). Non-arrays are returned unchanged."""
    device = normalize_device(device)
    if device == "cpu":
        return to_numpy(x)
    cp = _require_cupy()
    if isinstance(x, (np.ndarray, np.generic)):
        return cp.asarray(x)
    return x


def to_numpy(x):
    """Host copy of an array (CuPy -> NumPy); NumPy arrays and scalars pass through."""
    if is_cupy_array(x):
        return x.get()
    return x


def array_module_for(device):
    return np if normalize_device(device) == "cpu" else _require_cupy()


# ---------------------------------------------------------------- autograd switch
_state = threading.local()


def is_grad_enabled() -> bool:
    """Layers cache what backward needs only while this is True (the default)."""
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def no_grad():
    """Context manager for inference: layers skip caching activations, saving memory and time.

    Example::

        with convnp.no_grad():
            logits = model(x)
    """
    previous = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous


# ---------------------------------------------------------------- seeding
def make_rng(seed=None) -> np.random.Generator:
    """A NumPy Generator from a seed, an existing Generator (returned as is) or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)
