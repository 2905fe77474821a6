"""Loss functions as forward/backward pairs, mean reduction, PyTorch definitions.

Each ``NAME_forward(pred, target, ...)`` returns ``(loss, cache)`` with ``loss`` a Python float, and
``NAME_backward(cache)`` returns d(loss)/d(pred) (an array like ``pred``). Formulas (N samples, K classes,
M = pred.size):

* softmax cross-entropy from logits z (N, K): p = log_softmax(z); q = target distribution (one-hot of the
  int labels, or the given (N, K) probabilities), with label smoothing eps: q' = (1 - eps) q + eps / K;
  loss = -1/N sum_n sum_k q'_nk p_nk;  dz = (softmax(z) * sum_k q'_nk - q') / N.
* mse: mean((pred - t)^2); d = 2 (pred - t) / M.
* l1: mean|pred - t|; d = sign(pred - t) / M (0 where equal).
* binary cross-entropy on probabilities p in [0, 1]: -mean(t log p + (1 - t) log(1 - p)), each log clipped
  at -100 as in PyTorch; d = (p - t) / max(p (1 - p), 1e-12) / M.
* BCE with logits z (stable): mean(max(z, 0) - z t + log(1 + e^-|z|)); d = (sigmoid(z) - t) / M.

A NaN or infinite loss raises FloatingPointError naming the loss.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module
from .activation import sigmoid

__all__ = ["softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "mse_forward", "mse_backward",
           "l1_forward", "l1_backward", "binary_cross_entropy_forward", "binary_cross_entropy_backward",
           "bce_with_logits_forward", "bce_with_logits_backward", "check_finite_loss"]


def check_finite_loss(value: float, where: str) -> float:
    """Return ``value``, or raise FloatingPointError naming the loss when it is NaN or infinite."""
    if not math.isfinite(value):
        raise FloatingPointError(f"{where}: the loss is {value} (not finite); the training probably diverged: "
                                 "try a lower learning rate, and check the inputs and targets for NaN/inf "
                                 "values or unnormalized data")
    return value


def _shape(a):
    return tuple(getattr(a, "shape", ()))


def _float(pred, where):
    if getattr(pred, "dtype", None) is None or pred.dtype.kind != "f":
        raise ValueError(f"{where}: predictions must be a floating-point array, got "
                         f"{getattr(pred, 'dtype', type(pred).__name__)}")


def _same_shape(pred, target, where):
    _float(pred, where)
    if _shape(pred) != _shape(target):
        raise ValueError(f"{where}: target shape {_shape(target)} does not match prediction shape {_shape(pred)}")
    if pred.size == 0:
        raise ValueError(f"{where}: empty input of shape {_shape(pred)}")


def _as_target(pred, target):
    xp = get_array_module(pred)
    return xp.asarray(target).astype(pred.dtype, copy=False)


# ----------------------------------------------------------------------------- cross-entropy
def _target_distribution(logits, target, label_smoothing, where):
    """(N, K) target distribution q' in the logits' dtype, after validating the target."""
    xp = get_array_module(logits)
    n, k = logits.shape
    target = xp.asarray(target)
    if target.ndim == 1:
        if target.shape[0] != n:
            raise ValueError(f"{where}: batch size mismatch: {n} predictions but {target.shape[0]} labels")
        if target.dtype.kind == "f":
            if not bool(xp.all(target == xp.floor(target))):
                raise ValueError(f"{where}: class labels must be integers, got non-integer values in a "
                                 f"{target.dtype} array (pass int labels (N,) or probabilities (N, {k}))")
        elif target.dtype.kind not in "iu":
            raise ValueError(f"{where}: class labels must be integers, got dtype {target.dtype}")
        labels = target.astype(np.int64)
        if n and (int(labels.min()) < 0 or int(labels.max()) >= k):
            bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
            raise ValueError(f"{where}: label {bad} is out of range for {k} classes (expected 0..{k - 1})")
        q = xp.zeros((n, k), dtype=logits.dtype)
        q[xp.arange(n), labels] = 1
    elif target.ndim == 2:
        if target.shape[0] != n:
            raise ValueError(f"{where}: batch size mismatch: {n} predictions but {target.shape[0]} targets")
        if target.shape[1] != k:
            raise ValueError(f"{where}: target shape {tuple(target.shape)} does not match logits shape "
                             f"{tuple(logits.shape)} ({k} classes)")
        q = target.astype(logits.dtype)  # a copy: smoothing below must not touch the caller's array
    else:
        raise ValueError(f"{where}: target must be int labels (N,) or probabilities (N, K), got shape "
                         f"{tuple(target.shape)}")
    if label_smoothing:
        q *= logits.dtype.type(1 - label_smoothing)
        q += logits.dtype.type(label_smoothing / k)
    return q


def softmax_cross_entropy_forward(logits, target, label_smoothing: float = 0.0, where: str = "cross_entropy"):
    """Mean softmax cross-entropy from logits, as ``torch.nn.functional.cross_entropy``.

    Args:
        logits: (N, K) raw scores.
        target: int labels (N,) in [0, K), or probabilities / one-hot (N, K).
        label_smoothing: eps in [0, 1]: the target becomes (1 - eps) * target + eps / K.
    Returns:
        (loss, cache) with loss a float. Shape: (N, K), (N,) or (N, K) -> scalar.
    Example: ``loss, cache = softmax_cross_entropy_forward(z, np.array([3, 0]))``.
    """
    _float(logits, where)
    if logits.ndim != 2:
        raise ValueError(f"{where}: expected logits of shape (N, K), got {_shape(logits)}; flatten extra axes first")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{where}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    if logits.shape[0] == 0:
        raise ValueError(f"{where}: empty batch (logits shape {_shape(logits)})")
    xp = get_array_module(logits)
    q = _target_distribution(logits, target, label_smoothing, where)  # (N, K)
    with np.errstate(invalid="ignore"):  # inf logits: the non-finite check below explains the problem
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = xp.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        log_p = shifted - xp.log(s)  # (N, K) log-softmax
    n = logits.shape[0]
    loss = check_finite_loss(float(-(q * log_p).sum()) / n, where)
    return loss, (e / s, q)


def softmax_cross_entropy_backward(cache):
    """d(loss)/d(logits) = (softmax * sum_k q' - q') / N. Shape: (N, K)."""
    p, q = cache
    n = p.shape[0]
    return (p * q.sum(axis=1, keepdims=True) - q) / p.dtype.type(n)


# ----------------------------------------------------------------------------- regression
def mse_forward(pred, target, where: str = "mse"):
    """Mean squared error mean((pred - target)^2). Shapes must match. Returns (loss, cache)."""
    _same_shape(pred, target, where)
    diff = pred - _as_target(pred, target)
    return check_finite_loss(float((diff * diff).mean()), where), diff


def mse_backward(cache):
    """2 (pred - target) / M. Shape: like pred."""
    diff = cache
    return diff * diff.dtype.type(2.0 / diff.size)


def l1_forward(pred, target, where: str = "l1"):
    """Mean absolute error mean|pred - target|. Shapes must match. Returns (loss, cache)."""
    _same_shape(pred, target, where)
    xp = get_array_module(pred)
    diff = pred - _as_target(pred, target)
    return check_finite_loss(float(xp.abs(diff).mean()), where), diff


def l1_backward(cache):
    """sign(pred - target) / M (0 where they are equal, as PyTorch). Shape: like pred."""
    diff = cache
    xp = get_array_module(diff)
    return xp.sign(diff) * diff.dtype.type(1.0 / diff.size)


# ----------------------------------------------------------------------------- binary cross-entropy
def binary_cross_entropy_forward(pred, target, where: str = "binary_crossentropy"):
    """Binary cross-entropy on probabilities, as ``torch.nn.functional.binary_cross_entropy``:
    -mean(t log p + (1 - t) log(1 - p)) with each log clipped at -100 (so p = 0 or 1 stays finite).

    Args: pred probabilities in [0, 1] (e.g. a sigmoid output); target same shape, in [0, 1].
    Returns (loss, cache). Prefer :func:`bce_with_logits_forward` on raw scores (more stable).
    """
    _same_shape(pred, target, where)
    xp = get_array_module(pred)
    if bool(xp.any((pred < 0) | (pred > 1))):
        raise ValueError(f"{where}: predictions must be probabilities in [0, 1] (apply a sigmoid, or use "
                         f"bce_with_logits on raw scores); got values in [{float(pred.min())}, {float(pred.max())}]")
    t = _as_target(pred, target)
    floor = pred.dtype.type(-100)
    with np.errstate(divide="ignore"):
        log_p = xp.maximum(xp.log(pred), floor)
        log_1p = xp.maximum(xp.log1p(-pred), floor)
    loss = float(-(t * log_p + (1 - t) * log_1p).mean())
    return check_finite_loss(loss, where), (pred, t)


def binary_cross_entropy_backward(cache):
    """(p - t) / max(p (1 - p), 1e-12) / M. Shape: like pred."""
    p, t = cache
    xp = get_array_module(p)
    denom = xp.maximum(p * (1 - p), p.dtype.type(1e-12))
    return (p - t) / denom / p.dtype.type(p.size)


def bce_with_logits_forward(logits, target, where: str = "bce_with_logits"):
    """Binary cross-entropy on raw scores z, stable for any |z|:
    mean(max(z, 0) - z t + log(1 + exp(-|z|))) (= BCE(sigmoid(z), t)). Returns (loss, cache)."""
    _same_shape(logits, target, where)
    xp = get_array_module(logits)
    t = _as_target(logits, target)
    loss = float((xp.maximum(logits, 0) - logits * t + xp.log1p(xp.exp(-xp.abs(logits)))).mean())
    return check_finite_loss(loss, where), (logits, t)


def bce_with_logits_backward(cache):
    """(sigmoid(z) - t) / M. Shape: like the logits."""
    z, t = cache
    return (sigmoid(z) - t) / z.dtype.type(z.size)
