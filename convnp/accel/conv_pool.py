"""A convolution with its ReLU and the k x k max pool of stride k after it, piece by piece of the batch.

Unfused, the convolution writes its whole output (LeNet's (100, 30, 24, 24): 6.9 MB) and the pool reads it back
from memory; in the backward the pool writes the full-size gradient and the convolution reads it and the ReLU's
output again. Here each piece of the batch (16-17 samples of a batch of 100, :func:`convnp.accel.direct.pieces`)
is convolved and pooled, or un-pooled and differentiated, on one thread while it is in that core's cache. The
numbers are those of the unfused kernels (the same C functions run on the same data):

    forward   z = relu(conv(x) + b) (direct_conv.c / direct_cv.c), y = max of each k x k window of z, argmax
    backward  g = dy where y > 0 (the ReLU's gradient at each window's maximum: y = z there), dz = g scattered
              to the argmax cells (zeros elsewhere), then dW, db and dx of the convolution from dz

Measured gains are in docs/performance.md; :mod:`convnp.nn.fusion` decides when a network uses it.
"""
from __future__ import annotations

import numpy as np

from .. import workspace
from . import direct, kernels


def conv2d_max_pool(xpad, w, b, out_hw, pad_from, pool):
    """relu(conv(x)) pooled by ``pool`` x ``pool`` windows of stride ``pool`` -> (y (N, O, OH//pool, OW//pool),
    argmax int32 of the same shape: row * OW + col of each window's first maximum in the convolution's output
    plane, -1 for a window holding a NaN).

    ``xpad`` (N, C, Hp + 1, Wp) with its slack, as :func:`convnp.accel.direct.conv2d` takes it (allocated only:
    each piece zero-pads its samples of ``pad_from=(x, top, left)`` into it first); stride 1, no dilation.
    """
    n = xpad.shape[0]
    z, conv_call = direct._conv_plan(xpad, w, b, (1, 1), out_hw, relu=True)
    pad_call = direct._pad_plan(np.ascontiguousarray(pad_from[0]), pad_from[1], pad_from[2], xpad, None)
    _, o, oh, ow = z.shape
    ph, pw = oh // pool, ow // pool
    y = workspace.empty((n, o, ph, pw), np.float32)
    arg = workspace.empty((n, o, ph, pw), np.int32)
    fn, za, ya, aa, item = kernels._fn("convnp_max_pool"), z.ctypes.data, y.ctypes.data, arg.ctypes.data, 4

    def call(s, e, k):
        pad_call(s, e, k)
        conv_call(s, e, k)  # z of samples s..e-1, then their pool while z is in this core's cache
        fn(za + s * o * oh * ow * item, (e - s) * o, oh, ow, 0, 0, oh, ow, pool, pool, pool, ph, pw, None,
           ya + s * o * ph * pw * item, aa + s * o * ph * pw * item)
    direct.run_split(n, call)
    return y, arg


def conv2d_max_pool_backward(xpad, dy, y, arg, out_hw, kernel_hw, dx_from=None):
    """dw (O, C, kh, kw), db (O,) and dx (or None) of :func:`conv2d_max_pool`, from dy (N, O, PH, PW) and the
    forward's pooled ``y`` and ``arg``; ``dx_from`` as in :func:`convnp.accel.direct.conv2d_backward`."""
    n, o, ph, pw = dy.shape
    oh, ow = out_hw
    dy = np.ascontiguousarray(dy, dtype=np.float32)
    dz = workspace.empty((n, o, oh, ow), np.float32)
    g = workspace.empty(dy.shape, np.float32)
    threads = max(1, min(direct.num_threads(), n))
    call, finish, dx = direct._backward_plan(xpad, dz, kernel_hw, (1, 1), None, threads, dx_from)
    relu_fn, scatter_fn = kernels._fn("convnp_relu_backward"), kernels._fn("convnp_max_pool_backward")
    da, ya, ga, aa, za, item = dy.ctypes.data, y.ctypes.data, g.ctypes.data, arg.ctypes.data, dz.ctypes.data, 4
    per = o * ph * pw

    def piece(s, e, k):
        relu_fn(da + s * per * item, ya + s * per * item, (e - s) * per, ga + s * per * item)
        scatter_fn(ga + s * per * item, aa + s * per * item, (e - s) * o, ph * pw, oh * ow,
                   za + s * o * oh * ow * item)
        call(s, e, k)  # dW, db (and dx) of these samples while their dz is in this core's cache
    direct.run_split(n, piece, threads)
    dw, db = finish()
    return dw, db, dx
