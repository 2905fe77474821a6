"""The Winograd provider of 2-D convolution: F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional
Neural Networks", 2015), for 3x3 stride-1 convolutions, 2.25x fewer multiplications than im2col + GEMM.

Each 2x2 block of outputs ("tile") is computed from the 4x4 block of inputs under it::

    Y = A^T [ U . V ] A,   U = G g G^T (4x4, from the 3x3 kernel g),   V = B^T d B (4x4, from the input block d)

with the constant matrices below; summed over channels, the 16 elementwise products of all tiles become 16
matrix products ``M[k] = U[k] (O, C) @ V[k] (C, P)`` for P = N * ceil(OH/2) * ceil(OW/2) tiles: 16 * O * C * P
multiply-adds where im2col + GEMM does 9 * O * C * 4P. The transforms are cheap passes: ``U`` is one small GEMM
(``KRON_G`` (16, 9) @ the kernels), ``V`` and the output transform run in C (``convnp.accel.winograd.c``;
their NumPy twins :func:`input_transform` and :func:`output_transform` below say what they compute).

Backward: dx is this same convolution of dy (padded by 2 - padding) with the kernels flipped and transposed
(C, O, 3, 3); dW comes from the GEMM provider's patches (:func:`conv_gemm.weight_grad`). The transforms add and
subtract inputs of one tile, so an inf input would turn neighbouring outputs of its tile into NaN where direct
summation keeps them finite: inputs, kernels or gradients that are not all finite go to the GEMM provider,
which keeps the reference's NaN and inf exactly (as does a padding over 2, rare with a 3x3 kernel).
"""
from __future__ import annotations

import numpy as np

from .. import accel, workspace
from ..accel.threads import matmul
from .activation import relu_backward
from . import conv_gemm
from .conv_geometry import Geom

NAME = "winograd"
B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)
#: U[(xi, nu)] = sum_{i, j} G[xi, i] G[nu, j] g[i, j]: the kernel transform as one (16, 9) matrix
KRON_G = np.kron(G, G)


def can_run(x, w, b, g: Geom, groups, padding_mode):
    """3x3, stride 1, no dilation, one group, zero padding, float32 NumPy arrays and the C kernels built."""
    return (w.shape[2:] == (3, 3) and (g.sh, g.sw, g.dh, g.dw) == (1, 1, 1, 1) and groups == 1
            and padding_mode == "zeros" and accel.direct_enabled_for(x, w, *(() if b is None else (b,))))


def kernel_transform(w, flipped=False):
    """U (16, O, C) = G g G^T of every 3x3 kernel g of w (O, C, 3, 3); with ``flipped``, of the kernels turned
    by 180 degrees (their taps in reverse order), as dx needs them."""
    o, c = w.shape[:2]
    u = workspace.empty((16, o * c), np.float32)  # (reused memory: no page faults on a fresh 16 MB every call)
    return matmul(KRON_G[:, ::-1] if flipped else KRON_G, w.reshape(o * c, 9).T, out=u).reshape(16, o, c)


def input_transform(x, pads, tiles_hw):
    """NumPy twin of the C input transform: V (16, C, N*TH*TW) = B^T d B of every 4x4 input block d (zero
    padded: ``pads`` at the top and left, the rest of the 2*TH+2 rows and 2*TW+2 columns at the bottom/right)."""
    n, c, h, w = x.shape
    (top, _), (left, _) = pads
    th, tw = tiles_hw
    xp = np.zeros((n, c, 2 * th + 2, 2 * tw + 2), np.float32)
    rows, cols = min(h, 2 * th + 2 - top), min(w, 2 * tw + 2 - left)
    xp[:, :, top:top + rows, left:left + cols] = x[:, :, :rows, :cols]
    d = np.lib.stride_tricks.sliding_window_view(xp, (4, 4), axis=(2, 3))[:, :, ::2, ::2]  # (N, C, TH, TW, 4, 4)
    v = B_T @ d @ B_T.T  # (N, C, TH, TW, 4, 4)
    return np.ascontiguousarray(v.reshape(n, c, th * tw, 16).transpose(3, 1, 0, 2)).reshape(16, c, n * th * tw)


def output_transform(m, n, tiles_hw, out_hw, bias=None, relu=False):
    """NumPy twin of the C output transform: y (N, O, OH, OW) = A^T M A of every tile of m (16, O, N*TH*TW),
    written out as its additions (a matrix product would also multiply the zeros of A, and 0 * inf is NaN)."""
    o = m.shape[1]
    (th, tw), (oh, ow) = tiles_hw, out_hw
    t = m.reshape(4, 4, o, n, th, tw).transpose(3, 2, 4, 5, 0, 1)  # (N, O, TH, TW, 4, 4)
    s0, s1 = t[..., 0] + t[..., 1] + t[..., 2], t[..., 1] - t[..., 2] - t[..., 3]  # M A: (N, O, TH, TW, 4) each
    y = np.empty((n, o, th, 2, tw, 2), np.float32)
    for b, s in enumerate((s0, s1)):  # A^T (M A)
        y[:, :, :, 0, :, b] = s[..., 0] + s[..., 1] + s[..., 2]
        y[:, :, :, 1, :, b] = s[..., 1] - s[..., 2] - s[..., 3]
    y = y.reshape(n, o, 2 * th, 2 * tw)[:, :, :oh, :ow]
    if bias is not None:
        y = y + bias.reshape(1, o, 1, 1)
    return np.where(y < 0, 0, y) if relu else np.ascontiguousarray(y)


def _finite(*arrays):
    """Whether every value is finite (one summation per array: a large finite sum that overflows reads as not
    finite, which only sends the case to the GEMM provider)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return all(np.isfinite(np.add.reduce(a, axis=None)) for a in arrays)


def _convolve(x, u, pads, out_hw, bias=None, relu=False):
    """The F(2x2, 3x3) convolution of x (N, C, H, W) with transformed kernels u (16, O, C): (N, O, OH, OW)."""
    oh, ow = out_hw
    tiles_hw = (-(-oh // 2), -(-ow // 2))
    v = accel.kernels.winograd_input(np.ascontiguousarray(x), pads[0][0], pads[1][0], tiles_hw)  # (16, C, P)
    m = matmul(u, v, out=workspace.empty((16, u.shape[1], v.shape[2]), np.float32))  # 16 x (O, C) @ (C, P)
    return accel.kernels.winograd_output(m, x.shape[0], tiles_hw, out_hw, bias, relu)


def forward(x, w, b, g: Geom, pads, padding_mode, groups, relu, save):
    """y (N, O, OH, OW) and the cache of :func:`backward` (None unless ``save``)."""
    if max(max(p) for p in pads) > 2 or not _finite(x, w):  # (dx needs padding 2 - p >= 0)
        return conv_gemm.forward(x, w, b, g, pads, padding_mode, groups, relu, save)
    y = _convolve(x, kernel_transform(w), pads, (g.oh, g.ow), b, relu)
    cache = None
    if save:
        cache = dict(provider=NAME, x=x, w=w, has_bias=b is not None, geom=g, pads=pads, x_shape=x.shape,
                     relu_out=y if relu else None)
    return y, cache


def backward(dy, cache, need_dx=True):
    """(dx, dw, db) of :func:`forward` (dx None when ``need_dx`` is False)."""
    x, w, g, pads = cache["x"], cache["w"], cache["geom"], cache["pads"]
    if cache["relu_out"] is not None:  # the fused ReLU's backward first
        dy = relu_backward(dy, y=cache["relu_out"])
    db = dy.sum(axis=(0, 2, 3)) if cache["has_bias"] else None
    dw = conv_gemm.weight_grad(x, dy, g, pads, w.shape)
    dx = None
    if need_dx:
        (t, b), (l, r) = pads
        back_pads = ((2 - t, 2 - b), (2 - l, 2 - r))  # dx = dy (padded) convolved with the flipped kernels
        h, wd = x.shape[2:]
        if _finite(dy):
            u_flipped = kernel_transform(w, flipped=True).transpose(0, 2, 1)  # (16, C, O): C outputs from O inputs
            dx = _convolve(dy, u_flipped, back_pads, (h, wd))
        else:
            w_flipped = np.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
            dx, _ = conv_gemm.forward(dy, w_flipped, None, Geom(3, 3, 1, 1, 1, 1, h, wd), back_pads, "zeros", 1,
                                      False, False)
    return dx, dw, db
