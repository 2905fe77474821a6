"""The C providers of 2-D convolution (``convnp.accel.direct``): no patch matrix, float32 NumPy arrays only.

* ``direct`` (stride 1, one group, a kernel larger than 1x1, any padding mode): the padded input in the "wide"
  layout (N, C, Hp + 1, Wp), each tap one contiguous run of it; forward, dW/db and (zero padding within the
  kernel's reach) dx as the forward kernel run on dy with the flipped filters. Otherwise dx takes the GEMM
  provider's im2col path on the same padded input.
* ``strided`` (zero padding, no dilation, one group, kernel >= stride): the filter-vectorized kernels at strided
  positions, or a sum of stride-1 phases; dx phase by phase.

Which of them runs (or the GEMM or the reference provider) is the planner's choice
(``convnp.accel.planner``, measured on this machine); :func:`direct_can_run` and :func:`strided_can_run`
only say when they are correct. Each provider has its own backward, and the cache says which forward ran.
"""
from __future__ import annotations

import numpy as np

from .. import accel
from .conv_geometry import Geom
from .conv_gemm import _pad_wide, _wide_buffer
from . import conv_gemm

__all__ = ["direct_can_run", "strided_can_run", "direct_forward", "direct_backward", "strided_forward",
           "strided_backward"]


def _float32_numpy(x, w, b):
    return accel.direct_enabled_for(x, w, *(() if b is None else (b,)))


def direct_can_run(x, w, b, g: Geom, groups, padding_mode) -> bool:
    """The stride-1 kernels compute this case: float32 NumPy arrays, stride 1, one group, kernel > 1x1."""
    return g.sh == g.sw == 1 and groups == 1 and g.kh * g.kw > 1 and _float32_numpy(x, w, b)


def strided_can_run(x, w, b, g: Geom, groups, padding_mode) -> bool:
    """The strided kernels compute this case: float32, a stride > 1 no larger than the kernel (every phase holds
    taps), zero padding, no dilation, one group."""
    return ((g.sh > 1 or g.sw > 1) and g.dh == g.dw == 1 and groups == 1 and g.kh >= g.sh and g.kw >= g.sw
            and padding_mode == "zeros" and _float32_numpy(x, w, b))


# ----------------------------------------------------------------------------- stride 1
def direct_forward(x, w, b, g: Geom, pads, padding_mode, groups, relu, save):
    """y = conv(x, w) + b (max(y, 0) with ``relu``) in the stride-1 kernels; ``(y, cache)``."""
    n, c, h, wd = x.shape
    slack = accel.direct.slack((g.kh, g.kw), (g.dh, g.dw), wd + sum(pads[1]))
    if padding_mode == "zeros" and x.flags.c_contiguous:  # each thread pads its piece, then convolves it
        xpad = _wide_buffer(x.shape, pads, x.dtype, slack)  # (N, C, Hp+1, Wp), zeros after it
        y = accel.direct.conv2d(xpad, w, b, (g.dh, g.dw), (g.oh, g.ow), relu, pad_from=(x, pads[0][0], pads[1][0]))
    else:
        xpad = _pad_wide(x, pads, padding_mode, slack)
        y = accel.direct.conv2d(xpad, w, b, (g.dh, g.dw), (g.oh, g.ow), relu)
    cache = None
    if save:  # the GEMM fallback for dx reads the same padded input in the wide layout
        cache = dict(provider="direct", col=None, col_gemm=None, xpad=xpad, w=w, has_bias=b is not None, geom=g,
                     groups=groups, pads=pads, padding_mode=padding_mode, x_shape=x.shape, padded_shape=xpad.shape,
                     wide=True, relu_out=y if relu else None)
    return y, cache


def _dx_pads(cache):
    """Padding of dy that turns dx into a stride-1 convolution with the flipped filters, or None when the
    forward's padding was not zeros or wider than the kernel's reach, or the input has fewer channels than the
    kernel's block of 8 filters (mostly wasted then): dx then takes the GEMM path."""
    g, ((pt, pb), (pl, pr)) = cache["geom"], cache["pads"]
    reach_h, reach_w = (g.kh - 1) * g.dh, (g.kw - 1) * g.dw
    if (cache["padding_mode"] != "zeros" or max(pt, pb) > reach_h or max(pl, pr) > reach_w
            or cache["x_shape"][1] < accel.direct.FILTER_BLOCK):
        return None
    return (reach_h - pt, reach_h - pb), (reach_w - pl, reach_w - pr)


def direct_backward(dy, cache, need_dx=True):
    """(dx, dw, db) of :func:`direct_forward`.

    dw[o, c, i, j] = sum dy[n, o, r, q] * xpad[n, c, r + i*dh, q + j*dw] and db in one pass over the batch;
    dx = dy zero-padded by (k-1)*d - pad on each side, correlated with the filters flipped and transposed to
    (C, O, kh, kw): the forward kernel run backwards, no patch matrix and no col2im.
    """
    w, g, xpad = cache["w"], cache["geom"], cache["xpad"]
    dx_pads = _dx_pads(cache) if need_dx else None
    if need_dx and dx_pads is None:  # padding modes other than zeros: the GEMM provider's backward on xpad
        return conv_gemm.backward(dy, cache, need_dx)
    dy = np.ascontiguousarray(dy, dtype=np.float32)
    mask = cache["relu_out"]  # a fused ReLU: dy counts where its output is > 0 (applied in the copies)
    dx_from = None if dx_pads is None else dx_plan(dy.shape, cache, dx_pads)
    dw, db, dx = accel.direct.conv2d_backward(xpad, dy, (g.kh, g.kw), (g.dh, g.dw), mask, dx_from)
    return dx, dw.astype(w.dtype, copy=False), (db if cache["has_bias"] else None)


def dx_plan(dy_shape, cache, dx_pads):
    """``dx_from`` of ``accel.direct.conv2d_backward``: dy zero-padded by ``dx_pads`` (:func:`_dx_pads`) into a
    buffer it allocates, convolved with the flipped, transposed filters (C, O, kh, kw)."""
    g, w = cache["geom"], cache["w"]
    slack = accel.direct.slack((g.kh, g.kw), (g.dh, g.dw), g.ow + sum(dx_pads[1]))
    dypad = _wide_buffer(dy_shape, dx_pads, np.float32, slack)  # (N, O, OH + pads + 1, OW + pads)
    w_flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, O, kh, kw)
    return dypad, dx_pads[0][0], dx_pads[1][0], w_flipped, tuple(cache["x_shape"][2:])


# ----------------------------------------------------------------------------- strided
def strided_forward(x, w, b, g: Geom, pads, padding_mode, groups, relu, save):
    """A strided convolution in the C kernels (``accel.direct.conv2d_strided``); ``(y, cache)``."""
    y, saved = accel.direct.conv2d_strided(x, w, b, (g.sh, g.sw), pads, (g.oh, g.ow), relu)
    cache = None
    if save:
        cache = dict(provider="strided", strided=saved, w=w, has_bias=b is not None, geom=g, pads=pads,
                     x_shape=x.shape, relu_out=y if relu else None)
    return y, cache


def strided_backward(dy, cache, need_dx=True):
    """(dx, dw, db) of :func:`strided_forward`: dW per phase, dx phase by phase written back to its positions."""
    w, g = cache["w"], cache["geom"]
    dw, db, dx = accel.direct.conv2d_strided_backward(cache["strided"], dy, w, (g.sh, g.sw), cache["pads"],
                                                      cache["x_shape"], cache["relu_out"], need_dx)
    return dx, dw.astype(w.dtype, copy=False), (db if cache["has_bias"] else None)
