"""The reference convolution: im2col + ONE matrix product, forward and backward. Read this file first.

Every other provider (blocked GEMM, the C kernels, CUDA) must give these numbers within float32 rounding, and
the tests compare them with it. It is the textbook algorithm (Deep Learning from Scratch, ch. 7; Chainer's and
DeZero's ``conv2d_simple``) with groups, dilation and the four padding modes added:

1. pad:      xpad = pad2d(x, pads, mode)                                   (N, C, Hp, Wp)
2. im2col:   col[(n, oh, ow), (c, i, j)] = xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]
                                                                           (N*OH*OW, C*KH*KW)
3. GEMM:     y[(n, oh, ow), o] = col @ W^T + b,   W = w.reshape(O, C*KH*KW)  (N*OH*OW, O)
4. reshape:  y -> (N, O, OH, OW)

Backward, with dy reshaped the same way to (N*OH*OW, O):

    db = sum of dy over (n, oh, ow)                           (O,)
    dW = dy^T @ col                                           (O, C*KH*KW)
    dx = col2im(dy @ W)  (each patch entry added back to the pixel it came from; overlapping windows sum),
         then the padding's gradient (pad2d_backward folds edge/mirror/circular copies back in)

With ``groups`` G the channels split into G independent convolutions: column block g of ``col`` (its Cg*KH*KW
columns) meets filter block g of W. A fused ReLU returns max(y, 0), and its backward passes dy where y > 0.
"""
from __future__ import annotations

from ..backend import get_array_module
from .conv_geometry import Geom
from .padding import pad2d, pad2d_backward

NAME = "reference"
__all__ = ["im2col", "col2im", "forward", "backward"]


def im2col(xpad, g: Geom):
    """Patches of a padded (N, C, Hp, Wp) array as rows: -> (N*OH*OW, C*KH*KW), rows (n, oh, ow), columns (c, i, j)."""
    xp = get_array_module(xpad)
    n, c = xpad.shape[:2]
    col = xp.empty((n, c, g.kh, g.kw, g.oh, g.ow), dtype=xpad.dtype)
    for i in range(g.kh):  # one strided slice per kernel tap, never a loop over pixels
        top = i * g.dh
        for j in range(g.kw):
            left = j * g.dw
            col[:, :, i, j] = xpad[:, :, top:top + g.sh * (g.oh - 1) + 1:g.sh, left:left + g.sw * (g.ow - 1) + 1:g.sw]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * g.oh * g.ow, -1)


def col2im(col, padded_shape, g: Geom):
    """Adjoint of :func:`im2col`: (N*OH*OW, C*KH*KW) -> (N, C, Hp, Wp), entries of overlapping windows summed."""
    xp = get_array_module(col)
    n, c = padded_shape[:2]
    col = col.reshape(n, g.oh, g.ow, c, g.kh, g.kw).transpose(0, 3, 4, 5, 1, 2)  # (N, C, KH, KW, OH, OW)
    img = xp.zeros(padded_shape, dtype=col.dtype)
    for i in range(g.kh):
        top = i * g.dh
        for j in range(g.kw):
            left = j * g.dw
            img[:, :, top:top + g.sh * (g.oh - 1) + 1:g.sh, left:left + g.sw * (g.ow - 1) + 1:g.sw] += col[:, :, i, j]
    return img


def _grouped(a, groups):
    """(M, G*K) -> (G, M, K): column block g of a matrix, for one GEMM per group."""
    m = a.shape[0]
    return a.reshape(m, groups, -1).transpose(1, 0, 2)


def _ungrouped(a):
    """(G, M, K) -> (M, G*K)."""
    return a.transpose(1, 0, 2).reshape(a.shape[1], -1)


def forward(x, w, b, g: Geom, pads, padding_mode, groups, relu, save):
    """y = conv(x, w) + b: (N, C, H, W) -> (N, O, OH, OW); ``(y, cache)`` (cache None unless ``save``)."""
    xp = get_array_module(x)
    n, o = x.shape[0], w.shape[0]
    xpad = pad2d(x, pads, padding_mode)  # (N, C, Hp, Wp)
    col = im2col(xpad, g)  # (N*OH*OW, C*KH*KW)
    wmat = w.reshape(groups, o // groups, -1)  # (G, O/G, C/G*KH*KW)
    y = _ungrouped(xp.matmul(_grouped(col, groups), wmat.transpose(0, 2, 1)))  # (N*OH*OW, O)
    if b is not None:
        y = y + b
    y = y.reshape(n, g.oh, g.ow, o).transpose(0, 3, 1, 2)  # (N, O, OH, OW)
    y = xp.ascontiguousarray(xp.maximum(y, 0) if relu else y)
    cache = None
    if save:
        cache = dict(provider=NAME, col=col, w=w, has_bias=b is not None, geom=g, groups=groups, pads=pads,
                     padding_mode=padding_mode, x_shape=x.shape, padded_shape=xpad.shape,
                     relu_out=y if relu else None)
    return y, cache


def backward(dy, cache, need_dx=True):
    """(dx, dw, db) of :func:`forward`; dx is None when ``need_dx`` is False."""
    xp = get_array_module(dy)
    w, g, groups, col = cache["w"], cache["geom"], cache["groups"], cache["col"]
    if cache["relu_out"] is not None:  # dy where the ReLU's output is > 0, else 0 (a NaN dy is dropped there too)
        dy = xp.where(cache["relu_out"] > 0, dy, 0)
    o = w.shape[0]
    dy2 = dy.transpose(0, 2, 3, 1).reshape(-1, o)  # (N*OH*OW, O)
    db = dy2.sum(axis=0) if cache["has_bias"] else None
    dyg = _grouped(dy2, groups)  # (G, N*OH*OW, O/G)
    dw = xp.matmul(dyg.transpose(0, 2, 1), _grouped(col, groups)).reshape(w.shape)  # (G, O/G, Kg) -> w's shape
    dx = None
    if need_dx:
        dcol = _ungrouped(xp.matmul(dyg, w.reshape(groups, o // groups, -1)))  # (N*OH*OW, C*KH*KW)
        dx = pad2d_backward(col2im(dcol, cache["padded_shape"], g), cache["pads"], cache["padding_mode"],
                            cache["x_shape"])
    return dx, dw, db
