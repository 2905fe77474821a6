"""conv -> ReLU -> k x k max pool of stride k as one operation (LeNet's and DeepConvNet's blocks).

    y = max_pool(relu(conv2d(x, w, b, padding)), k)        (N, C, H, W) -> (N, O, OH // k, OW // k)

The same numbers as :func:`~convnp.functional.conv.conv2d_forward` (``relu=True``) followed by
:func:`~convnp.functional.pooling.max_pool2d_forward`, computed by the same C kernels, but the convolution's
full-size output never goes through memory: :mod:`convnp.accel.conv_pool` pools each piece of the batch while
it is in the core's cache, and its backward scatters the pooled gradient back just before the convolution's
backward reads it. Only where the direct C provider would run the convolution anyway (stride 1, no dilation,
one group, zero padding, float32 NumPy arrays, the planner's choice); :func:`can_run` says when.
:mod:`convnp.nn.fusion` uses it for a ``Conv2D(activation="relu")`` followed by ``MaxPool2D(k)``.
"""
from __future__ import annotations

import numpy as np

from .. import accel
from ..utils.args import pair
from . import conv, conv_direct
from .conv_gemm import _wide_buffer
from .conv_geometry import Geom, conv2d_output_shape

__all__ = ["can_run", "conv2d_relu_max_pool2d_forward", "conv2d_relu_max_pool2d_backward"]


def _geometry(x, w, padding):
    (oh, ow), pads = conv2d_output_shape(x.shape, w.shape[2:], 1, padding, 1)
    return Geom(w.shape[2], w.shape[3], 1, 1, 1, 1, oh, ow), pads


def can_run(x, w, b, padding, pool, training=True, input_grad=True) -> bool:
    """Whether :func:`conv2d_relu_max_pool2d_forward` computes this case: a non-empty batch, the direct provider
    runs the convolution (float32 NumPy arrays, kernel > 1x1, the planner's choice for a stride-1 convolution
    with a fused ReLU), a 2x2 or 3x3 pool, at least one window, and, for a training step that needs dx, zero
    padding within the kernel's reach (dx as a convolution of dy)."""
    if (x.ndim != 4 or w.ndim != 4 or x.shape[0] == 0 or x.shape[1] != w.shape[1]
            or (pool, pool) not in accel.POOL_WINDOWS):
        return False  # (an empty batch takes the layers' own path, which knows its output shape)
    g, pads = _geometry(x, w, padding)
    if min(g.oh, g.ow) < pool or not conv_direct.direct_can_run(x, w, b, g, 1, "zeros"):
        return False
    if training and input_grad and conv_direct._dx_pads(_cache(x, w, b, g, pads, None)) is None:
        return False
    return conv.conv2d_provider(x, w, b, g, pads, "zeros", 1, True, training, input_grad) == "direct"


def _cache(x, w, b, g, pads, xpad):
    return dict(provider="direct_max_pool", xpad=xpad, w=w, has_bias=b is not None, geom=g, pads=pads,
                padding_mode="zeros", x_shape=x.shape)


def conv2d_relu_max_pool2d_forward(x, w, b=None, padding=0, pool=2, save_cache=True):
    """max_pool(relu(conv2d(x, w, b, padding)), pool) for a case :func:`can_run` accepts -> ``(y, cache)``.

    Args: x (N, C, H, W), w (O, C, KH, KW), b (O,) or None, padding as in ``conv2d_forward`` (zeros), pool: the
    window and stride (2 or 3). Shape: y (N, O, OH // pool, OW // pool) with (OH, OW) the convolution's output.
    The cache holds the padded input, the pooled output and each window's argmax (not the convolution output).
    """
    pool = pair(pool, "pool", "conv2d_relu_max_pool2d")[0]
    g, pads = _geometry(x, w, padding)
    x = np.ascontiguousarray(x)
    slack = accel.direct.slack((g.kh, g.kw), (1, 1), x.shape[3] + sum(pads[1]))
    xpad = _wide_buffer(x.shape, pads, x.dtype, slack)  # (N, C, Hp + 1, Wp): each piece pads its samples
    y, arg = accel.conv_pool.conv2d_max_pool(xpad, w, b, (g.oh, g.ow), (x, pads[0][0], pads[1][0]), pool)
    cache = None
    if save_cache:
        cache = _cache(x, w, b, g, pads, xpad)
        cache.update(y=y, arg=arg, pool=pool)
    return y, cache


def conv2d_relu_max_pool2d_backward(dy, cache, need_dx=True):
    """(dx or None, dw, db or None) of :func:`conv2d_relu_max_pool2d_forward` from dy (N, O, PH, PW): the
    pooled gradient goes to each window's maximum where the pooled output is > 0 (the ReLU), then through the
    convolution's backward (``convnp.accel.conv_pool.conv2d_max_pool_backward``)."""
    if cache is None:
        raise RuntimeError("conv2d_relu_max_pool2d_backward: no cache (the forward ran under no_grad())")
    y, g, w = cache["y"], cache["geom"], cache["w"]
    if tuple(dy.shape) != tuple(y.shape):
        raise ValueError(f"conv2d_relu_max_pool2d_backward: dy must have the pooled output's shape "
                         f"{tuple(y.shape)}, got {tuple(dy.shape)}")
    dx_from = None
    if need_dx:
        dz_shape = (y.shape[0], y.shape[1], g.oh, g.ow)
        dx_from = conv_direct.dx_plan(dz_shape, cache, conv_direct._dx_pads(cache))
    dw, db, dx = accel.conv_pool.conv2d_max_pool_backward(cache["xpad"], dy, y, cache["arg"], (g.oh, g.ow),
                                                          (g.kh, g.kw), dx_from)
    return dx, dw.astype(w.dtype, copy=False), (db if cache["has_bias"] else None)
