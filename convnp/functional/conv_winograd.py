"""The Winograd providers of 2-D convolution: F(2x2, 3x3) ("winograd") and F(4x4, 3x3) ("winograd4") (Lavin and
Gray, "Fast Algorithms for Convolutional Neural Networks", 2015), for 3x3 stride-1 convolutions, 2.25x and 4x
fewer multiplications than im2col + GEMM.

Each 2x2 block of outputs ("tile") is computed from the 4x4 block of inputs under it::

    Y = A^T [ U . V ] A,   U = G g G^T (4x4, from the 3x3 kernel g),   V = B^T d B (4x4, from the input block d)

with the constant matrices below; summed over channels, the 16 elementwise products of all tiles become 16
matrix products ``M[k] = U[k] (O, C) @ V[k] (C, P)`` for P = N * ceil(OH/2) * ceil(OW/2) tiles: 16 * O * C * P
multiply-adds where im2col + GEMM does 9 * O * C * 4P. The transforms are cheap passes: ``U`` is one small GEMM
(``KRON_G`` (16, 9) @ the kernels), ``V`` and the output transform run in C (``convnp.accel.winograd.c``;
their NumPy twins :func:`input_transform` and :func:`output_transform` below say what they compute).

F(4x4, 3x3) is the same with 4x4 output tiles from 6x6 input blocks (``B_T4``, ``G4``, ``A_T4``): 36 products of
(O, C) @ (C, P/4), 1.78x fewer multiply-adds than F(2x2, 3x3) but a 36/16 larger ``U`` and a larger rounding
error (its transforms multiply by up to 8 and divide by 24): measured up to 5 times the float32 bound of direct
summation, gamma_n * sum |x||w|, where F(2x2, 3x3) stays below 0.3 times it (tests/accel/test_conv_winograd.py).
The planner picks it where it is faster: large maps with few channels (ResNet-18's 56x56 and 28x28 layers),
where ``U`` is small.

Backward: dx is this same convolution of dy (padded by 2 - padding) with the kernels flipped and transposed
(C, O, 3, 3); dW comes from the direct provider's C kernels, or for wide layers the GEMM provider's patches
(:func:`_weight_grad`). The transforms add and
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
NAME4 = "winograd4"  # F(4x4, 3x3): the points 0, 1, -1, 2, -2 and infinity
B_T4 = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                 [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float32)
G4 = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
A_T4 = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float32)
KRON_G4 = np.kron(G4, G4).astype(np.float32)  # (36, 9), made in float64 and rounded once
#: per output tile size m: the kernel-transform matrix and the input transform B^T
_KRON = {2: KRON_G, 4: KRON_G4}
_B_T = {2: B_T, 4: B_T4}


def can_run(x, w, b, g: Geom, groups, padding_mode):
    """3x3, stride 1, no dilation, one group, zero padding, float32 NumPy arrays and the C kernels built."""
    return (w.shape[2:] == (3, 3) and (g.sh, g.sw, g.dh, g.dw) == (1, 1, 1, 1) and groups == 1
            and padding_mode == "zeros" and accel.direct_enabled_for(x, w, *(() if b is None else (b,))))


def kernel_transform(w, flipped=False, m=2):
    """U (alpha^2, O, C) = G g G^T of every 3x3 kernel g of w (O, C, 3, 3) for F(m x m, 3x3) (alpha = m + 2);
    with ``flipped``, of the kernels turned by 180 degrees (their taps in reverse order), as dx needs them."""
    o, c = w.shape[:2]
    kron = _KRON[m]
    u = workspace.empty((len(kron), o * c), np.float32)  # (reused memory: no page faults on a fresh 16 MB)
    return matmul(kron[:, ::-1] if flipped else kron, w.reshape(o * c, 9).T, out=u).reshape(len(kron), o, c)


def input_transform(x, pads, tiles_hw, m=2):
    """NumPy twin of the C input transform: V (alpha^2, C, N*TH*TW) = B^T d B of every alpha x alpha input
    block d, one every m rows and columns (zero padded: ``pads`` at the top and left, the rest of the m*TH+2
    rows and m*TW+2 columns at the bottom/right)."""
    n, c, h, w = x.shape
    (top, _), (left, _) = pads
    th, tw = tiles_hw
    a, b_t = m + 2, _B_T[m]
    xp = np.zeros((n, c, m * th + 2, m * tw + 2), np.float32)
    rows, cols = min(h, m * th + 2 - top), min(w, m * tw + 2 - left)
    xp[:, :, top:top + rows, left:left + cols] = x[:, :, :rows, :cols]
    d = np.lib.stride_tricks.sliding_window_view(xp, (a, a), axis=(2, 3))[:, :, ::m, ::m]  # (N, C, TH, TW, a, a)
    v = b_t @ d @ b_t.T  # (N, C, TH, TW, a, a)
    return np.ascontiguousarray(v.reshape(n, c, th * tw, a * a).transpose(3, 1, 0, 2)).reshape(a * a, c, -1)


def _a_t(r):
    """A^T r along the last axis of r (..., alpha): the additions of the C kernels, (..., m)."""
    if r.shape[-1] == 4:
        return np.stack([r[..., 0] + r[..., 1] + r[..., 2], r[..., 1] - r[..., 2] - r[..., 3]], axis=-1)
    a1, a2 = r[..., 1] + r[..., 2], r[..., 1] - r[..., 2]
    a3, a4 = r[..., 3] + r[..., 4], r[..., 3] - r[..., 4]
    two, four, eight = np.float32(2), np.float32(4), np.float32(8)
    return np.stack([r[..., 0] + a1 + a3, a2 + two * a4, a1 + four * a3, a2 + eight * a4 + r[..., 5]], axis=-1)


def output_transform(mm, n, tiles_hw, out_hw, bias=None, relu=False, m=2):
    """NumPy twin of the C output transform: y (N, O, OH, OW) = A^T M A of every tile of mm (alpha^2, O,
    N*TH*TW), written out as its additions (a matrix product would also multiply the zeros of A, and
    0 * inf is NaN)."""
    o, a = mm.shape[1], m + 2
    (th, tw), (oh, ow) = tiles_hw, out_hw
    t = mm.reshape(a, a, o, n, th, tw).transpose(3, 2, 4, 5, 0, 1)  # (N, O, TH, TW, a, a)
    ma = _a_t(t)  # M A: (N, O, TH, TW, a, m)
    y = _a_t(np.swapaxes(ma, -1, -2))  # (A^T (M A))^T: (N, O, TH, TW, m (columns), m (rows))
    y = y.transpose(0, 1, 2, 5, 3, 4).reshape(n, o, m * th, m * tw)[:, :, :oh, :ow]
    if bias is not None:
        y = y + bias.reshape(1, o, 1, 1)
    return np.where(y < 0, 0, y) if relu else np.ascontiguousarray(y)


def _finite(*arrays):
    """Whether every value is finite (one summation per array: a large finite sum that overflows reads as not
    finite, which only sends the case to the GEMM provider)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return all(np.isfinite(np.add.reduce(a, axis=None)) for a in arrays)


def _convolve(x, u, pads, out_hw, bias=None, relu=False, m=2):
    """The F(m x m, 3x3) convolution of x (N, C, H, W) with transformed kernels u (alpha^2, O, C):
    (N, O, OH, OW)."""
    oh, ow = out_hw
    tiles_hw = (-(-oh // m), -(-ow // m))
    v = accel.kernels.winograd_input(np.ascontiguousarray(x), pads[0][0], pads[1][0], tiles_hw, m)  # (a^2, C, P)
    mm = matmul(u, v, out=workspace.empty((len(u), u.shape[1], v.shape[2]), np.float32))  # a^2 x (O, C) @ (C, P)
    return accel.kernels.winograd_output(mm, x.shape[0], tiles_hw, out_hw, bias, relu, m)


def forward(x, w, b, g: Geom, pads, padding_mode, groups, relu, save, m=2):
    """y (N, O, OH, OW) and the cache of :func:`backward` (None unless ``save``); F(m x m, 3x3)."""
    if max(max(p) for p in pads) > 2 or not _finite(x, w):  # (dx needs padding 2 - p >= 0)
        return conv_gemm.forward(x, w, b, g, pads, padding_mode, groups, relu, save)
    y = _convolve(x, kernel_transform(w, m=m), pads, (g.oh, g.ow), b, relu, m)
    cache = None
    if save:
        cache = dict(provider=NAME if m == 2 else NAME4, m=m, x=x, w=w, has_bias=b is not None, geom=g, pads=pads,
                     x_shape=x.shape, relu_out=y if relu else None)
    return y, cache


def forward4(x, w, b, g: Geom, pads, padding_mode, groups, relu, save):
    """:func:`forward` with F(4x4, 3x3) (the "winograd4" provider)."""
    return forward(x, w, b, g, pads, padding_mode, groups, relu, save, m=4)


#: dW in the direct provider's C kernels up to this many (filter, channel) pairs, beyond in GEMMs on the patches.
#: Measured (2-core AVX-512 VM, ms, GEMM / direct): 64->64 at 32x32 batch 64 70 / 25, 128->128 at 16x16 45 / 22,
#: 128->128 at 28x28 batch 8 14 / 9, 256->256 at 14x14 12 / 12.5, 512->512 at 7x7 8 / 51
DIRECT_DW_PAIRS = 256 * 256


def _weight_grad(x, dy, g: Geom, pads, w_shape):
    """(dw (O, C, 3, 3), db (O,)) of the convolution: the direct kernels' one pass over the padded input for
    smaller layers, the GEMM provider's patches for wide ones (see DIRECT_DW_PAIRS)."""
    o, c = w_shape[:2]
    if o * c <= DIRECT_DW_PAIRS and accel.direct_enabled_for(x, dy):
        slack = accel.direct.slack((3, 3), (1, 1), x.shape[3] + sum(pads[1]))
        xpad = conv_gemm._pad_wide(x, pads, "zeros", slack)
        dw, db, _ = accel.direct.conv2d_backward(xpad, np.ascontiguousarray(dy), (3, 3), (1, 1), None, None)
        return dw, db
    return conv_gemm.weight_grad(x, dy, g, pads, w_shape), dy.sum(axis=(0, 2, 3))


def backward(dy, cache, need_dx=True):
    """(dx, dw, db) of :func:`forward` (dx None when ``need_dx`` is False)."""
    x, w, g, pads = cache["x"], cache["w"], cache["geom"], cache["pads"]
    if cache["relu_out"] is not None:  # the fused ReLU's backward first
        dy = relu_backward(dy, y=cache["relu_out"])
    dw, db = _weight_grad(x, dy, g, pads, w.shape)
    db = db if cache["has_bias"] else None
    dx = None
    if need_dx:
        (t, b), (l, r) = pads
        back_pads = ((2 - t, 2 - b), (2 - l, 2 - r))  # dx = dy (padded) convolved with the flipped kernels
        h, wd = x.shape[2:]
        if _finite(dy):
            m = cache["m"]
            u_flipped = kernel_transform(w, True, m).transpose(0, 2, 1)  # (a^2, C, O): C outputs from O inputs
            dx = _convolve(dy, u_flipped, back_pads, (h, wd), m=m)
        else:
            w_flipped = np.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
            dx, _ = conv_gemm.forward(dy, w_flipped, None, Geom(3, 3, 1, 1, 1, 1, h, wd), back_pads, "zeros", 1,
                                      False, False)
    return dx, dw, db
