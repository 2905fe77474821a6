"""The memory-bound steps around the matrix products in C (``layout.c``), for float32 NumPy arrays.

Each function computes what a NumPy function of convnp computes, in one pass where NumPy makes several, one
image plane (or row) at a time while it sits in the CPU cache; tests/accel/test_accel.py compares the two:

===================  ===================================================  ==================================
kernel               computes                                             NumPy twin
===================  ===================================================  ==================================
relu_backward        dx = dy where ref > 0, else 0                        activation.relu_backward
max_pool2d           2x2 or 3x3 windows: y = window max, and the flat     pooling.max_pool2d_forward
                     index of its first max (row-major), -1 with a NaN
                     (the -inf padding read, not copied)
max_pool2d_backward  dx[argmax cell] += dy                                pooling.max_pool2d_backward
col2im_wide          out[n, c, i*dh*Wp + j*dw + q] += col[c, i, j, n, q]  conv_gemm._col2im_wide
col2im               x[n, c, oh*sh + i*dh, ow*sw + j*dw] += col[n, c, i,   conv_gemm._col2im
                     j, oh, ow] (batch-major patches)
gemm_to_nchw         out[n, o, r, q] = y2[o, n, r, q] (+ bias[o])         conv_gemm._gemm_to_nchw
nchw_to_gemm         out[o, n, r, q] = dy[n, o, r, q], zero for q >= OW   conv_gemm._nchw_to_gemm
batch_norm_*         batch norm forward (train, eval) and backward         normalization.batch_norm_*
                     (train), per channel in 2-3 passes; eval with a
                     fused residual add and ReLU                          normalization.batch_norm_inference
winograd_input       V = B^T d B of every 4x4 (F(2x2, 3x3)) or 6x6        conv_winograd.input_transform
                     (F(4x4, 3x3)) input block (winograd.c)
winograd_output      y = A^T M A of every tile, + bias, fused ReLU         conv_winograd.output_transform
===================  ===================================================  ==================================

They were numba kernels until the C library took them over: one compiled toolchain (a C compiler, which the
convolution kernels need anyway), no second compile-and-cache step, and no SciPy (which numba imports, with a
BLAS of its own) in the process. docs/performance.md has the measurements. Arrays are C-contiguous float32 (the
callers check it with ``convnp.accel.enabled_for``). Pooling and batch norm are split over convnp's threads; the
copies and the ReLU gradient too inside ``threads.kernel_threads()`` (BLAS on one thread), else they run on one
thread (they sit between OpenBLAS's GEMMs, whose spinning workers hold the other cores).
"""
from __future__ import annotations

import ctypes

import numpy as np

from . import POOL_WINDOWS
from .. import workspace
from . import threads
from .direct import library, pieces, run_split

_p, _i = ctypes.c_void_p, ctypes.c_long
_SIGNATURES = {
    "convnp_relu_backward": [_p, _p, _i, _p],
    "convnp_max_pool": [_p, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _p, _p, _p],
    "convnp_max_pool_backward": [_p, _p, _i, _i, _i, _p],
    "convnp_gemm_to_nchw": [_p, _p, _i, _i, _i, _i, _i, _i, _i, _p],
    "convnp_nchw_to_gemm": [_p, _i, _i, _i, _i, _i, _i, _i, _p],
    "convnp_col2im_wide": [_p, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _p],
    "convnp_col2im_nc": [_p, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _p],
    "convnp_bn_forward_train": [_p, _i, _i, _i, _i, _i, _p, _p, ctypes.c_float, _p, _p, _p, _p, _p],
    "convnp_bn_forward_eval": [_p, _i, _i, _i, _i, _i, _p, _p, _p, ctypes.c_int, _p],
    "convnp_bn_backward_train": [_p, _p, _i, _i, _i, _i, _i, _p, _p, _p, _p, _p],
    "convnp_winograd_input": [_p, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _p],
    "convnp_winograd_output": [_p, _i, _i, _i, _i, _i, _i, _p, ctypes.c_int, _i, _i, _p],
    "convnp_winograd4_input": [_p, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _p],
    "convnp_winograd4_output": [_p, _i, _i, _i, _i, _i, _i, _p, ctypes.c_int, _i, _i, _p],
}
_ready = {}


def _fn(name):
    if name not in _ready:
        fn = getattr(library(), name)
        fn.argtypes, fn.restype = _SIGNATURES[name], None
        _ready[name] = fn
    return _ready[name]


# ----------------------------------------------------------------------------- ReLU backward
def relu_backward(dy, ref):
    """dy where ref > 0, else 0 (ref is the ReLU's input or output). Shape: like dy."""
    out = workspace.empty(dy.shape, dy.dtype)
    fn, a, b, o = _fn("convnp_relu_backward"), dy.ctypes.data, ref.ctypes.data, out.ctypes.data
    run_split(dy.size, lambda s, e, _: fn(a + 4 * s, b + 4 * s, e - s, o + 4 * s), threads.pass_threads(dy.size))
    return out


def _threads_for(size):
    return None if size >= 1 << 16 else 1  # small arrays: one thread (starting others costs more)


# ----------------------------------------------------------------------------- max pooling
def max_pool2d(x, pads, out_hw, k, s):
    """2x2 or 3x3 max pool of (N, C, H, W) as if padded with -inf by ``pads`` ((top, bottom), (left, right)),
    any stride, no padded copy: (y (N, C, OH, OW), flat argmax int32 (N, C, OH, OW)) where the argmax is
    row * Wp + col inside the padded plane (Wp = left + W + right), -1 for a window holding a NaN."""
    if tuple(k) not in POOL_WINDOWS:
        raise ValueError(f"accel.kernels.max_pool2d: only 2x2 and 3x3 windows, got {tuple(k)}")
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    (top, bottom), (left, right) = pads
    oh, ow = out_hw
    y = workspace.empty((n, c, oh, ow), x.dtype)
    arg = workspace.empty(y.shape, np.int32)
    fn, xa, ya, aa = _fn("convnp_max_pool"), x.ctypes.data, y.ctypes.data, arg.ctypes.data
    hp, wp = top + h + bottom, left + w + right
    threads_used = _threads_for(x.size)
    padded = (top, bottom, left, right) != (0, 0, 0, 0)
    # one padded plane per piece of the split (pieces may run at once), none when nothing is padded
    buf = np.empty((len(pieces(n * c, threads_used)) - 1 if padded else 0, hp * wp), np.float32)
    run_split(n * c, lambda a, b, piece: fn(xa + a * h * w * 4, b - a, h, w, top, left, hp, wp, k[0], s[0], s[1],
                                            oh, ow, buf[piece].ctypes.data if padded else None,
                                            ya + a * oh * ow * 4, aa + a * oh * ow * 4), threads_used)
    return y, arg


def max_pool2d_backward(dy, arg, padded_shape):
    """Gradient of :func:`max_pool2d` w.r.t. the padded input: (N, C, Hp, Wp)."""
    n, c, hp, wp = padded_shape
    dy = np.ascontiguousarray(dy)
    dx = workspace.empty(padded_shape, dy.dtype)
    oh, ow = dy.shape[2:]
    fn, da, aa, xa = _fn("convnp_max_pool_backward"), dy.ctypes.data, arg.ctypes.data, dx.ctypes.data
    run_split(n * c, lambda a, b, _: fn(da + a * oh * ow * 4, aa + a * oh * ow * 4, b - a, oh * ow, hp * wp,
                                        xa + a * hp * wp * 4), _threads_for(dx.size))
    return dx


# ----------------------------------------------------------------------------- col2im
def col2im_wide(col, out, g):
    """Stride-1 "wide" patches (C*kh*kw, N*OH*Wp) added back into the C-contiguous ``out`` (N, C, Hp+1, Wp)."""
    n, c, hp1, wp = out.shape
    fn, ca, oa = _fn("convnp_col2im_wide"), col.ctypes.data, out.ctypes.data
    run_split(c, lambda c0, c1, _: fn(ca, n, c, c0, c1, g.kh, g.kw, g.dh, g.dw, wp, g.oh * wp, hp1 * wp, oa),
              threads.pass_threads(out.size))
    return out


def col2im(col, out, g):
    """Batch-major patches (N, C, kh, kw, OH, OW) added back into the C-contiguous ``out`` (N, C, Hp, Wp),
    overlaps summed (the channel-major layout has its kernel in patches.c: ``direct.col2im``). Returns ``out``."""
    n, c, hp, wp = out.shape
    col = np.ascontiguousarray(col)
    _fn("convnp_col2im_nc")(col.ctypes.data, 0, n * c, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.oh, g.ow, hp, wp,
                            out.ctypes.data)
    return out


# ----------------------------------------------------------------------------- layout copies
def gemm_to_nchw(y2, n, oh, bias, out):
    """(O, n*OH*Wg) -> ``out`` (n, O, OH, OW) plus bias (O,) or None."""
    o = y2.shape[0]
    wg = y2.shape[1] // (n * oh)
    ow = out.shape[3]
    bias = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
    fn, ya, oa = _fn("convnp_gemm_to_nchw"), y2.ctypes.data, out.ctypes.data
    ba = None if bias is None else bias.ctypes.data
    run_split(n, lambda n0, n1, _: fn(ya, ba, n, n0, n1, o, oh, ow, wg, oa), threads.pass_threads(out.size))
    return out


def nchw_to_gemm(dy, wg):
    """(n, O, OH, OW) -> (O, n*OH*Wg), columns OW..Wg-1 zero."""
    dy = np.ascontiguousarray(dy)
    n, o, oh, ow = dy.shape
    out = workspace.empty((o, n, oh, wg), dy.dtype)
    fn, da, oa = _fn("convnp_nchw_to_gemm"), dy.ctypes.data, out.ctypes.data
    run_split(o, lambda o0, o1, _: fn(da, n, o, o0, o1, oh, ow, wg, oa), threads.pass_threads(out.size))
    return out.reshape(o, n * oh * wg)


# ----------------------------------------------------------------------------- batch norm
def _f32(a):
    return None if a is None else np.ascontiguousarray(a, dtype=np.float32)


def batch_norm_forward_train(x, weight, bias, eps):
    """(y, xc, mean, biased var, inv_std) of a training batch norm of the C-contiguous x (N, C, ...) (float32)."""
    n, c = x.shape[:2]
    l = x.size // (n * c)
    y, xc = np.empty_like(x), np.empty_like(x)
    mean, var, inv_std = (np.empty(c, np.float32) for _ in range(3))
    weight, bias = _f32(weight), _f32(bias)
    fn = _fn("convnp_bn_forward_train")
    args = (None if weight is None else weight.ctypes.data, None if bias is None else bias.ctypes.data, float(eps),
            xc.ctypes.data, y.ctypes.data, mean.ctypes.data, var.ctypes.data, inv_std.ctypes.data)
    run_split(c, lambda c0, c1, _: fn(x.ctypes.data, n, c, l, c0, c1, *args))
    return y, xc, mean, var, inv_std


def batch_norm_forward_eval(x, scale, shift, add=None, relu=False):
    """y = x * scale + shift per channel of the C-contiguous x (N, C, ...) (float32; scale, shift (C,)), plus
    ``add`` (C-contiguous float32, x's shape) when given, then max(y, 0) with ``relu`` (NaN kept): one pass."""
    n, c = x.shape[:2]
    l = x.size // (n * c)
    y = workspace.empty(x.shape, np.float32)
    scale, shift = _f32(scale), _f32(shift)
    fn, xa, ya = _fn("convnp_bn_forward_eval"), x.ctypes.data, y.ctypes.data
    aa = None if add is None else add.ctypes.data
    run_split(c, lambda c0, c1, _: fn(xa, n, c, l, c0, c1, scale.ctypes.data, shift.ctypes.data, aa, int(relu), ya))
    return y


def batch_norm_backward_train(dy, xc, weight, inv_std):
    """(dx, dweight, dbias) of a training batch norm (see functional.normalization.batch_norm_backward)."""
    dy = np.ascontiguousarray(dy, dtype=np.float32)
    n, c = dy.shape[:2]
    l = dy.size // (n * c)
    dx = np.empty_like(dy)
    dweight, dbias = np.empty(c, np.float32), np.empty(c, np.float32)
    weight = _f32(weight)
    fn = _fn("convnp_bn_backward_train")
    run_split(c, lambda c0, c1, _: fn(dy.ctypes.data, xc.ctypes.data, n, c, l, c0, c1,
                                            None if weight is None else weight.ctypes.data, inv_std.ctypes.data,
                                            dx.ctypes.data, dweight.ctypes.data, dbias.ctypes.data))
    return dx, dweight, dbias


# ----------------------------------------------------------------------------- Winograd F(2x2, 3x3)
def winograd_input(x, top, left, tiles_hw, m=2):
    """(alpha^2, C, N*TH*TW) transformed input blocks of the C-contiguous x (N, C, H, W) (float32) for the
    F(m x m, 3x3) algorithm (m = 2: 4x4 blocks, m = 4: 6x6 blocks, alpha = m + 2), zero padding ``top``/``left``
    (and whatever the tiles need at the bottom/right), split over the threads by channel."""
    n, c, h, w = x.shape
    th, tw = tiles_hw
    v = workspace.empty(((m + 2) ** 2, c, n * th * tw), np.float32)
    fn, xa, va = _fn(_WINOGRAD[m][0]), x.ctypes.data, v.ctypes.data
    run_split(c, lambda c0, c1, _: fn(xa, n, c, h, w, top, left, th, tw, c0, c1, va), _threads_for(v.size))
    return v


def winograd_output(mm, n, tiles_hw, out_hw, bias=None, relu=False, m=2):
    """(N, O, OH, OW) from the C-contiguous tile products mm (alpha^2, O, N*TH*TW) of F(m x m, 3x3), plus bias
    (O,) or None, a fused ReLU (NaN kept), split over the threads by filter."""
    o = mm.shape[1]
    (th, tw), (oh, ow) = tiles_hw, out_hw
    y = workspace.empty((n, o, oh, ow), np.float32)
    bias = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
    fn, ma, ya = _fn(_WINOGRAD[m][1]), mm.ctypes.data, y.ctypes.data
    ba = None if bias is None else bias.ctypes.data
    run_split(o, lambda o0, o1, _: fn(ma, n, o, th, tw, oh, ow, ba, int(relu), o0, o1, ya), _threads_for(mm.size))
    return y


#: the C transforms of F(2x2, 3x3) and F(4x4, 3x3), by output tile size
_WINOGRAD = {2: ("convnp_winograd_input", "convnp_winograd_output"),
             4: ("convnp_winograd4_input", "convnp_winograd4_output")}
