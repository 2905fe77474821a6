"""Weight initializers. Each returns a new float array and takes an explicit seeded Generator.

fan_in / fan_out for a weight of shape (out, in, kh, kw) are in*kh*kw and out*kh*kw; for a Dense
weight (out, in) they are in and out (PyTorch layout).

==================  ==========================================================
zeros / constant    all zeros / all ``value``
normal              N(mean, std^2)  (the textbook's ``weight_init_std * randn``)
uniform             U(low, high)
glorot_normal       N(0, 2 / (fan_in + fan_out))             (Xavier, Glorot & Bengio 2010)
glorot_uniform      U(-a, a), a = sqrt(6 / (fan_in + fan_out))
he_normal           N(0, 2 / fan_in)                         (Kaiming, He et al. 2015, for ReLU)
he_uniform          U(-a, a), a = sqrt(6 / fan_in)
lecun_normal        N(0, 1 / fan_in)
lecun_uniform       U(-a, a), a = sqrt(3 / fan_in)
torch_default       U(-1/sqrt(fan_in), 1/sqrt(fan_in))       (PyTorch's Conv/Linear default)
==================  ==========================================================
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from ..backend import DEFAULT_DTYPE, make_rng


def compute_fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel) or (out, in)."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"compute_fans: need a weight with at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(name, shape, mode="fan_in"):
    """fan_in, fan_out or their mean ("fan_avg") of ``shape``; a ValueError when it is zero or mode is unknown."""
    fan_in, fan_out = compute_fans(shape)
    fans = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
    if mode not in fans:
        raise ValueError(f"{name}: mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
    if fans[mode] == 0:
        raise ValueError(f"{name}: {mode} of shape {tuple(shape)} is 0; cannot scale by it")
    return fans[mode]


def _check_gain(name, gain):
    if not float(gain) > 0:
        raise ValueError(f"{name}: gain must be > 0, got {gain!r}")


def zeros(shape, rng=None, dtype=DEFAULT_DTYPE):
    """All zeros (``rng`` is accepted and ignored, so every initializer has the same call)."""
    return np.zeros(shape, dtype=dtype)


def ones(shape, rng=None, dtype=DEFAULT_DTYPE):
    """All ones."""
    return np.ones(shape, dtype=dtype)


def constant(shape, value=0.0, rng=None, dtype=DEFAULT_DTYPE):
    """All ``value``."""
    return np.full(shape, value, dtype=dtype)


_skip = {"depth": 0}


@contextlib.contextmanager
def skipped():
    """Inside this block the random initializers return zeros without drawing numbers: for work that needs a
    model's shapes and parameter counts only (``convnp summary vgg16`` builds 138M weights in no time).

    Example: ``with init.skipped(): model = models.vgg16()`` (then ``model.summary((3, 224, 224))``).
    """
    _skip["depth"] += 1
    try:
        yield
    finally:
        _skip["depth"] -= 1


def normal(shape, std=0.01, mean=0.0, rng=None, dtype=DEFAULT_DTYPE):
    """N(mean, std^2); ``normal(shape, 0.01)`` is the textbook's ``0.01 * np.random.randn(*shape)``."""
    if not std >= 0:
        raise ValueError(f"normal: std must be >= 0, got {std}")
    if _skip["depth"]:
        return np.zeros(shape, dtype=dtype)
    return (mean + std * make_rng(rng).standard_normal(shape)).astype(dtype)


def uniform(shape, low=-0.05, high=0.05, rng=None, dtype=DEFAULT_DTYPE):
    """U(low, high)."""
    if not high >= low:
        raise ValueError(f"uniform: high ({high}) must be >= low ({low})")
    if _skip["depth"]:
        return np.zeros(shape, dtype=dtype)
    return make_rng(rng).uniform(low, high, size=shape).astype(dtype)


def glorot_normal(shape, rng=None, dtype=DEFAULT_DTYPE, gain=1.0):
    """N(0, gain^2 * 2 / (fan_in + fan_out)) (PyTorch's ``xavier_normal_``)."""
    _check_gain("glorot_normal", gain)
    _fan("glorot_normal", shape, "fan_avg")
    fan_in, fan_out = compute_fans(shape)
    return normal(shape, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng=rng, dtype=dtype)


def glorot_uniform(shape, rng=None, dtype=DEFAULT_DTYPE, gain=1.0):
    """U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Keras' default kernel initializer)."""
    _check_gain("glorot_uniform", gain)
    _fan("glorot_uniform", shape, "fan_avg")
    fan_in, fan_out = compute_fans(shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -a, a, rng=rng, dtype=dtype)


def he_normal(shape, rng=None, dtype=DEFAULT_DTYPE, mode="fan_in"):
    """N(0, 2 / fan) with fan = fan_in (or ``mode="fan_out"``), PyTorch's ``kaiming_normal_`` (not truncated)."""
    return normal(shape, math.sqrt(2.0 / _fan("he_normal", shape, mode)), rng=rng, dtype=dtype)


def he_uniform(shape, rng=None, dtype=DEFAULT_DTYPE, mode="fan_in"):
    """U(-a, a), a = sqrt(6 / fan), fan = fan_in (or ``mode="fan_out"``)."""
    a = math.sqrt(6.0 / _fan("he_uniform", shape, mode))
    return uniform(shape, -a, a, rng=rng, dtype=dtype)


def lecun_normal(shape, rng=None, dtype=DEFAULT_DTYPE):
    """N(0, 1 / fan_in) (for SELU networks; not truncated)."""
    return normal(shape, math.sqrt(1.0 / _fan("lecun_normal", shape)), rng=rng, dtype=dtype)


def lecun_uniform(shape, rng=None, dtype=DEFAULT_DTYPE):
    """U(-a, a), a = sqrt(3 / fan_in)."""
    a = math.sqrt(3.0 / _fan("lecun_uniform", shape))
    return uniform(shape, -a, a, rng=rng, dtype=dtype)


def torch_default(shape, rng=None, dtype=DEFAULT_DTYPE):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Conv and Linear weights (and biases)."""
    a = 1.0 / math.sqrt(_fan("torch_default", shape))
    return uniform(shape, -a, a, rng=rng, dtype=dtype)


xavier_normal, xavier_uniform = glorot_normal, glorot_uniform
kaiming_normal, kaiming_uniform = he_normal, he_uniform

INITIALIZERS = {
    "zeros": zeros, "ones": ones, "constant": constant, "normal": normal, "gaussian": normal,
    "uniform": uniform, "glorot_normal": glorot_normal, "glorot_uniform": glorot_uniform,
    "xavier_normal": glorot_normal, "xavier_uniform": glorot_uniform, "he_normal": he_normal,
    "he_uniform": he_uniform, "kaiming_normal": he_normal, "kaiming_uniform": he_uniform,
    "lecun_normal": lecun_normal, "lecun_uniform": lecun_uniform, "torch_default": torch_default,
}


def get_initializer(name_or_fn):
    """Look up an initializer by name (see the table above) or pass a callable through."""
    if callable(name_or_fn):
        return name_or_fn
    key = str(name_or_fn).lower()
    if key not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name_or_fn!r}; choose one of {', '.join(sorted(INITIALIZERS))}")
    return INITIALIZERS[key]
