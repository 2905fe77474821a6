"""Gradient clipping: by the global norm of all gradients, or element-wise by value (in place)."""
from __future__ import annotations

import math

from ..backend import get_array_module
from ..nn.parameter import Parameter


def _grads(params, where):
    """The non-None gradients of ``params`` (a Module, Parameters, (name, Parameter) pairs or one Parameter)."""
    if isinstance(params, Parameter):
        params = [params]
    elif hasattr(params, "named_parameters") and callable(params.named_parameters):
        params = params.parameters()
    out, seen = [], set()
    for item in params:
        p = item[1] if isinstance(item, tuple) and len(item) == 2 else item
        if not isinstance(p, Parameter):
            raise TypeError(f"{where}: expected convnp.nn.Parameter objects, got {type(p).__name__}")
        if p.grad is not None and id(p) not in seen:
            seen.add(id(p))
            out.append(p.grad)
    return out


def clip_grad_norm(params, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients in place so that their global norm is at most ``max_norm``; return the norm before.

    Same rule as ``torch.nn.utils.clip_grad_norm_``: total = ||(||g_1||, ..., ||g_k||)||_p over every
    gradient; each gradient is multiplied by min(1, max_norm / (total + 1e-6)).

    Args:
        params: a Module, an iterable of Parameters or of (name, Parameter) pairs, or one Parameter.
            Parameters whose ``grad`` is None are ignored.
        max_norm: the largest allowed total norm (> 0).
        norm_type: p of the p-norm (2 by default; ``float("inf")`` for the largest absolute value).

    Example: ``total = clip_grad_norm(model, 5.0)`` between ``backward`` and ``optimizer.step()``.
    """
    if not float(max_norm) > 0:
        raise ValueError(f"clip_grad_norm: max_norm must be > 0, got {max_norm!r}")
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm: norm_type must be > 0, got {norm_type!r}")
    grads = _grads(params, "clip_grad_norm")
    if not grads:
        return 0.0
    total = global_norm(grads, norm_type)
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total


def global_norm(grads, norm_type: float = 2.0) -> float:
    """The p-norm of the vector of per-array p-norms (= the p-norm of all elements together)."""
    if not grads:
        return 0.0
    xp = get_array_module(*grads)
    if math.isinf(norm_type):
        return float(max(float(xp.max(xp.abs(g))) if g.size else 0.0 for g in grads))
    if norm_type == 2.0:
        return math.sqrt(sum(float(xp.vdot(g.ravel(), g.ravel())) for g in grads))
    return float(sum(float(xp.sum(xp.abs(g) ** norm_type)) for g in grads) ** (1.0 / norm_type))


def clip_grad_value(params, clip_value: float) -> None:
    """Clip every gradient element-wise into [-clip_value, clip_value], in place.

    Args:
        params: a Module, an iterable of Parameters or of (name, Parameter) pairs, or one Parameter.
        clip_value: the largest allowed absolute value (> 0).

    Example: ``clip_grad_value(model.parameters(), 1.0)``.
    """
    if not float(clip_value) > 0:
        raise ValueError(f"clip_grad_value: clip_value must be > 0, got {clip_value!r}")
    c = float(clip_value)
    for g in _grads(params, "clip_grad_value"):
        xp = get_array_module(g)
        xp.clip(g, -c, c, out=g)
