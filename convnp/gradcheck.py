"""Numerical gradients by central differences, and a checker for any Module's backward.

Used by the tests (in float64) and by ``convnp.textbook`` (``numerical_gradient``).
"""
from __future__ import annotations

import numpy as np

from .backend import get_array_module, to_numpy


def numerical_gradient(f, x, eps: float = 1e-6):
    """dF/dx by central differences: (f(x + eps) - f(x - eps)) / (2 eps) per element.

    ``f`` takes no arguments and returns a scalar computed from the current contents of ``x``, which
    is perturbed in place and restored. Shape: same as ``x``.
    """
    xp = get_array_module(x)
    grad = xp.zeros_like(x)
    flat_x = x.reshape(-1)  # a view: x must be contiguous
    if not np.shares_memory(to_numpy(flat_x), to_numpy(x)) and xp is np:
        raise ValueError("numerical_gradient: x must be a contiguous array")
    flat_g = grad.reshape(-1)
    for i in range(flat_x.size):
        old = flat_x[i].item()
        flat_x[i] = old + eps
        f_plus = float(f())
        flat_x[i] = old - eps
        f_minus = float(f())
        flat_x[i] = old
        flat_g[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def max_relative_error(a, b, floor: float = 1e-8) -> float:
    """max |a - b| / max(|a| + |b|, floor): 0 for identical arrays, ~1 for unrelated ones."""
    a, b = np.asarray(to_numpy(a), np.float64), np.asarray(to_numpy(b), np.float64)
    if a.shape != b.shape:
        raise ValueError(f"max_relative_error: shapes differ {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)))


def check_module_gradients(module, x, seed: int = 0, eps: float = 1e-6, tol: float = 1e-6,
                           check_input: bool = True, forward_kwargs=None) -> dict:
    """Compare ``module.backward`` with numerical gradients of L = sum(forward(x) * G), G random.

    Checks dL/dx and dL/dp for every trainable parameter. Run it in float64 (``module.astype(np.float64)``
    and a float64 ``x``) on tiny inputs. Returns {name: max relative error}; raises AssertionError
    naming the first gradient whose error exceeds ``tol``.
    """
    forward_kwargs = forward_kwargs or {}
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    y = module(x, **forward_kwargs)
    rng = np.random.default_rng(seed)
    g = xp.asarray(rng.standard_normal(y.shape)).astype(y.dtype)

    def loss():
        return float((module.forward(x, **forward_kwargs) * g).sum())

    module.zero_grad()
    module.forward(x, **forward_kwargs)
    dx = module.backward(g.copy())
    analytic = {"input": dx} if check_input else {}
    for name, p in module.named_parameters():
        if p.requires_grad:
            analytic[name] = p.grad if p.grad is not None else xp.zeros_like(p.data)
    analytic = {k: (v.copy() if v is not None else v) for k, v in analytic.items()}
    errors = {}
    if check_input:
        errors["input"] = max_relative_error(analytic["input"], numerical_gradient(loss, x, eps))
    for name, p in module.named_parameters():
        if p.requires_grad:
            errors[name] = max_relative_error(analytic[name], numerical_gradient(loss, p.data, eps))
    bad = {k: v for k, v in errors.items() if not v <= tol}
    if bad:
        raise AssertionError(f"{type(module).__name__}: gradient check failed (relative errors {bad}, tol {tol})")
    return errors
