"""Batch normalization and local response normalization as forward/backward pairs.

Batch norm (PyTorch semantics), per channel c over every other axis except 1 (N, H, W or N, L or N):

* training: mean_c, var_c = batch mean and BIASED variance; x_hat = (x - mean) / sqrt(var + eps);
  y = gamma * x_hat + beta. The caller updates running statistics with the UNBIASED variance
  (:func:`update_running_stats`, momentum = weight of the new batch).
* eval: the same map with the running statistics instead of the batch ones.

Backward, with m the number of values per channel:

* training: dx = inv_std / m * (m*g - sum(g) - x_hat * sum(g * x_hat)), g = dy * gamma (the full
  gradient, through the batch mean and variance);
* eval: dx = dy * gamma * inv_std (an affine map);
* both: dgamma = sum(dy * x_hat), dbeta = sum(dy).

Local response normalization (PyTorch's ``LocalResponseNorm``), across channels:
y_c = x_c / s_c^beta, s_c = k + alpha/size * sum_{c'=c-size//2}^{c+(size-1)//2} x_c'^2 (zero outside).
"""
from __future__ import annotations

import numpy as np

from .. import accel
from ..backend import get_array_module, is_grad_enabled

__all__ = ["batch_norm_forward", "batch_norm_backward", "batch_norm_inference", "update_running_stats",
           "local_response_norm_forward", "local_response_norm_backward"]


def _axes_and_shape(x):
    axes = (0,) + tuple(range(2, x.ndim))  # every axis but channels
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)  # broadcast a (C,) vector against x
    return axes, shape


def _channel_sum(a):
    """sum of ``a`` (N, C, ...) over every axis but 1: (C,). A matrix-vector product over the contiguous
    spatial axis, then a sum over the batch (NumPy's reduction over axes (0, 2, 3) is several times slower)."""
    a3 = a.reshape(a.shape[0], a.shape[1], -1)
    if a3.shape[2] == 1:
        return a3[:, :, 0].sum(axis=0)
    ones = get_array_module(a).ones(a3.shape[2], dtype=a.dtype)
    return (a3 @ ones).sum(axis=0)


def _channel_dot(a, b):
    """sum(a * b) over every axis but 1, without the (N, C, ...) temporary: (C,)."""
    xp = get_array_module(a)
    return xp.einsum("ncl,ncl->c", a.reshape(a.shape[0], a.shape[1], -1), b.reshape(b.shape[0], b.shape[1], -1))


def batch_norm_forward(x, weight=None, bias=None, running_mean=None, running_var=None, training=True,
                       eps=1e-5):
    """Normalize ``x`` per channel (axis 1).

    Args:
        x: (N, C), (N, C, L) or (N, C, H, W).
        weight, bias: (C,) arrays or None (no scale / no shift; the gradient of a missing one is not needed).
        running_mean, running_var: (C,) arrays, used when ``training`` is False.
        training: True normalizes with batch statistics, False with the running ones.
        eps: added to the variance.
    Returns:
        (y, cache, (batch_mean, batch_var_unbiased)); the statistics are None in eval mode. The cache holds
        the centred input xc = x - mean and inv_std = 1/sqrt(var + eps), so x_hat = xc * inv_std.
    Shape: y has the shape of x.
    An empty batch (N = 0) gives an empty output and no statistics in either mode (as PyTorch).
    Example: ``y, cache, stats = batch_norm_forward(x, w, b, training=True)``.
    """
    _, shape = _axes_and_shape(x)
    if x.size == 0:  # N = 0 (or an empty spatial axis): nothing to normalize, no statistics
        return x.copy(), (None, None, weight, "empty"), (None, None)
    m = x.size // x.shape[1]
    if training and m < 2:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input "
                         f"shape {tuple(x.shape)}")
    if _in_c(x, weight, bias):  # the same formulas in C, 2-3 passes over x instead of ~7 (convnp.accel.kernels)
        return _forward_c(x, weight, bias, running_mean, running_var, training, eps, m)
    if training:
        mean = _channel_sum(x) / x.dtype.type(m)  # (C,)
        xc = x - mean.reshape(shape)
        var = _channel_dot(xc, xc) / x.dtype.type(m)  # biased (C,)
        stats = (mean, var * (m / (m - 1)))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: eval mode needs running_mean and running_var")
        xc = x - running_mean.reshape(shape).astype(x.dtype, copy=False)
        var = running_var.astype(x.dtype, copy=False)
        stats = (None, None)
    inv_std = 1.0 / get_array_module(x).sqrt(var + x.dtype.type(eps))  # (C,)
    scale = inv_std if weight is None else inv_std * weight  # y = xc * scale + bias: one pass, no x_hat
    y = xc * scale.reshape(shape)
    if bias is not None:
        y += bias.reshape(shape)
    return y, (xc, inv_std, weight, training), stats


def _in_c(x, *params) -> bool:
    """The C kernels take this batch norm: float32 C-contiguous NumPy input and parameters, C kernels on."""
    return (x.ndim >= 2 and x.flags.c_contiguous and accel.enabled_for(x, *(p for p in params if p is not None)))


def _eval_scale_shift(weight, bias, running_mean, running_var, eps):
    """Eval mode as one affine map per channel, float32 (C,) each: (inv_std, scale, shift) with
    y = x * scale + shift, scale = weight / sqrt(running_var + eps), shift = bias - running_mean * scale."""
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: eval mode needs running_mean and running_var")
    inv_std = (1.0 / np.sqrt(running_var.astype(np.float32) + np.float32(eps))).astype(np.float32)
    scale = inv_std if weight is None else inv_std * weight
    shift = -running_mean.astype(np.float32) * scale + (0 if bias is None else bias)
    return inv_std, scale, shift


def batch_norm_inference(x, weight, bias, running_mean, running_var, eps=1e-5, add=None, relu=False):
    """Eval-mode batch norm for inference, with what follows it in a ResNet fused in: y = bn(x) (+ add)
    (then max(y, 0) with ``relu``). One pass over x in C (float32 NumPy arrays), no cache: nothing can run
    backward through it (callers use it under ``no_grad()`` only).

    Args: x (N, C, ...); weight, bias, running_mean, running_var (C,) (weight/bias may be None);
        add: None or an array of x's shape (the residual); relu: apply a ReLU last (NaN stays NaN).
    Returns: y, the shape of x. Example: ``batch_norm_inference(x, w, b, rm, rv, add=identity, relu=True)``.
    """
    if add is not None and add.shape != x.shape:
        raise ValueError(f"batch_norm_inference: add has shape {tuple(add.shape)}, x has {tuple(x.shape)}")
    if x.size and _in_c(x, weight, bias) and (add is None or _in_c(add)):
        _, scale, shift = _eval_scale_shift(weight, bias, running_mean, running_var, eps)
        return accel.kernels.batch_norm_forward_eval(x, scale, shift, add, relu)
    y = batch_norm_forward(x, weight, bias, running_mean, running_var, training=False, eps=eps)[0]
    if add is not None:
        y = y + add
    if relu:
        y = get_array_module(y).maximum(y, 0)  # (NaN stays NaN)
    return y


def _forward_c(x, weight, bias, running_mean, running_var, training, eps, m):
    """:func:`batch_norm_forward` in C (``convnp.accel.kernels``): same outputs, cache and statistics."""
    if training:
        y, xc, mean, var, inv_std = accel.kernels.batch_norm_forward_train(x, weight, bias, eps)
        return y, (xc, inv_std, weight, True), (mean, var * np.float32(m / (m - 1)))
    inv_std, scale, shift = _eval_scale_shift(weight, bias, running_mean, running_var, eps)
    y = accel.kernels.batch_norm_forward_eval(x, scale, shift)
    xc = None
    if is_grad_enabled():  # the backward's dweight needs x - running_mean
        xc = x - running_mean.reshape((1, -1) + (1,) * (x.ndim - 2)).astype(np.float32)
    return y, (xc, inv_std, weight, False), (None, None)


def batch_norm_backward(dy, cache):
    """Gradients of :func:`batch_norm_forward`: (dx, dweight, dbias); dweight/dbias are None without affine.
    Shape: dy like x; dweight, dbias (C,)."""
    xc, inv_std, weight, training = cache
    if training is True and _in_c(xc, weight) and dy.shape == xc.shape:
        dx, dweight, dbias = accel.kernels.batch_norm_backward_train(dy, xc, weight, inv_std)
        return (dx, None, None) if weight is None else (dx, dweight, dbias)
    if training == "empty":  # the empty batch of the forward: zero gradients
        xp = get_array_module(dy)
        zeros = None if weight is None else xp.zeros(dy.shape[1], dtype=dy.dtype)
        return xp.zeros(dy.shape, dtype=dy.dtype), zeros, None if zeros is None else zeros.copy()
    _, shape = _axes_and_shape(dy)
    dbias = _channel_sum(dy)
    dweight = _channel_dot(dy, xc) * inv_std  # sum(dy * x_hat)
    g_scale = inv_std if weight is None else inv_std * weight  # (C,)
    if training:
        m = dy.size // dy.shape[1]
        # dx = gamma*inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat)), x_hat = xc * inv_std
        dx = dy * g_scale.reshape(shape)
        coef = xc * (g_scale * inv_std * dweight / m).reshape(shape)
        dx -= coef
        dx -= (g_scale * dbias / m).reshape(shape)
    else:
        dx = dy * g_scale.reshape(shape)
    if weight is None:
        return dx, None, None
    return dx, dweight, dbias


def update_running_stats(running_mean, running_var, batch_mean, batch_var_unbiased, momentum):
    """PyTorch's update: running = (1 - momentum) * running + momentum * batch (momentum = new batch's weight).
    Returns new (running_mean, running_var) arrays in the running arrays' dtype."""
    m = float(momentum)
    new_mean = (1 - m) * running_mean + m * batch_mean.astype(running_mean.dtype, copy=False)
    new_var = (1 - m) * running_var + m * batch_var_unbiased.astype(running_var.dtype, copy=False)
    return new_mean, new_var


def _channel_window_sum(a, before, after):
    """sum_{c'=c-before}^{c+after} a[:, c'] with zeros outside [0, C): same shape as a.

    One shifted slice-add per offset (size is small, e.g. 5), which stays exact in float32 where a
    cumulative-sum difference would lose precision over many channels.
    """
    c = a.shape[1]
    out = a.copy()
    for d in range(-before, after + 1):
        if d == 0 or abs(d) >= c:
            continue
        if d > 0:
            out[:, :c - d] += a[:, d:]  # out[c] += a[c + d]
        else:
            out[:, -d:] += a[:, :c + d]
    return out


def local_response_norm_forward(x, size=5, alpha=1e-4, beta=0.75, k=1.0):
    """LRN across channels (axis 1) with PyTorch semantics: y = x / (k + alpha/size * sum_window x^2)^beta.

    The window of channel c is [c - size//2, c + (size-1)//2], zero-padded at the ends.
    Args: x (N, C, ...); size, alpha, beta, k as in AlexNet (5, 1e-4, 0.75, 2 in the paper).
    Returns (y, cache). Shape: y like x.
    """
    if x.ndim < 3:
        raise ValueError(f"local_response_norm: expected an input with 3 or more dimensions (N, C, ...), "
                         f"got shape {tuple(x.shape)}")
    t = x.dtype.type
    s = _channel_window_sum(x * x, size // 2, (size - 1) // 2)
    s *= t(alpha / size)
    s += t(k)
    xp = get_array_module(x)
    scale = xp.power(s, t(-beta))  # s^-beta
    y = x * scale
    return y, (x, s, scale, size, alpha, beta)


def local_response_norm_backward(dy, cache):
    """Exact dx of :func:`local_response_norm_forward`:
    dx_j = dy_j * s_j^-beta - 2*alpha*beta/size * x_j * sum_{c: j in window(c)} dy_c x_c s_c^(-beta-1),
    where c runs over [j - (size-1)//2, j + size//2]. Shape: like x."""
    x, s, scale, size, alpha, beta = cache
    t = dy.dtype.type
    inner = dy * x * scale / s  # dy_c x_c s_c^(-beta-1)
    back = _channel_window_sum(inner, (size - 1) // 2, size // 2)
    return dy * scale - t(2 * alpha * beta / size) * x * back
