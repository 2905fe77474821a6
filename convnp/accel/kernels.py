"""numba kernels behind :mod:`convnp.accel`: each one computes what a NumPy function of convnp computes.

Each kernel makes one pass where NumPy makes several, and works one image plane (or one row) at a time
while it sits in the CPU cache. They run on one thread (``parallel=False``): numba's threads and OpenBLAS's
spin-wait for work on the same cores, which made the GEMMs around them many times slower; ``prange`` marks
the loops whose iterations are independent. Arrays are C-contiguous unless said otherwise; "planes" are
the N*C images of Hp x Wp.

===================  ===================================================  ==================================
kernel               computes                                             NumPy twin
===================  ===================================================  ==================================
relu_backward        dx = dy where ref > 0, else 0                        activation.relu_backward
max_pool2d           2x2 or 3x3 windows: y = window max, and the flat     pooling.max_pool2d_forward
                     index of its first max (row-major), -1 with a NaN
max_pool2d_backward  dx[argmax cell] += dy                                pooling.max_pool2d_backward
col2im_wide          out[n, c, i*dh*Wp + j*dw + q] += col[c, i, j, n, q]  conv._col2im_wide
col2im               x[n, c, oh*sh + i*dh, ow*sw + j*dw] += col[.., i, j,  conv._col2im, conv._col2im_t
                     .., oh, ow], batch-major or channel-major patches
gemm_to_nchw         out[n, o, r, q] = y2[o, n, r, q] (+ bias[o])         conv._gemm_to_nchw
nchw_to_gemm         out[o, n, r, q] = dy[n, o, r, q], zero for q >= OW   conv._nchw_to_gemm
===================  ===================================================  ==================================

The other direction (im2col, zero padding) has no numba kernel: for the stride-1 "wide" layout NumPy's slice
copies were as fast or faster; float32 strided im2col and the zero padding run in C (``convnp.accel.direct``).
Compiled on first use (a few seconds in all) and cached on disk by numba.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import POOL_WINDOWS
from .. import workspace
from .direct import run_split  # splits a batch over convnp's threads (num_threads(): every core by default)

_JIT = dict(parallel=False, cache=True, nogil=True)


# ----------------------------------------------------------------------------- ReLU backward
@njit(**_JIT)
def _relu_backward(dy, ref, out):
    for i in prange(dy.size):
        out[i] = dy[i] if ref[i] > 0 else 0


def relu_backward(dy, ref):
    """dy where ref > 0, else 0 (ref is the ReLU's input or output). Shape: like dy."""
    out = workspace.empty(dy.shape, dy.dtype)
    _relu_backward(dy.reshape(-1), ref.reshape(-1), out.reshape(-1))
    return out


# ----------------------------------------------------------------------------- max pooling
@njit(**_JIT)
def _max_pool_2x2(x, sh, sw, y, arg):
    """2x2 windows: y[p, r, q] = window max; arg = flat index (row * Wp + col) of its first max in the
    plane, -1 where the window holds a NaN (y is NaN there, as np.maximum gives). Straight-line
    compare-and-select per window (no loops, no branches), which LLVM vectorizes over q."""
    planes, oh_n, ow_n = y.shape
    wp = x.shape[2]
    for p in prange(planes):
        for r in range(oh_n):
            top = r * sh
            x0, x1 = x[p, top], x[p, top + 1]
            yr, ar = y[p, r], arg[p, r]
            for q in range(ow_n):
                c = q * sw
                a, b, d, e = x0[c], x0[c + 1], x1[c], x1[c + 1]
                right = b > a  # ties keep the first (row-major) cell
                m1 = b if right else a
                i1 = c + 1 if right else c
                right2 = e > d
                m2 = e if right2 else d
                i2 = c + 1 + wp if right2 else c + wp
                lower = m2 > m1
                has_nan = (a != a) | (b != b) | (d != d) | (e != e)
                yr[q] = np.nan if has_nan else (m2 if lower else m1)
                ar[q] = -1 if has_nan else top * wp + (i2 if lower else i1)


@njit(inline="always")
def _keep_first_max(v, at, best, arg):
    """One step of a row-major window scan: (best, arg) after seeing value v at flat index at."""
    later = v > best  # a tie keeps the earlier cell
    return (v if later else best), (at if later else arg)


@njit(**_JIT)
def _max_pool_3x3(x, sh, sw, y, arg):
    """3x3 windows, as :func:`_max_pool_2x2`: nine unrolled compare-and-select steps per window."""
    planes, oh_n, ow_n = y.shape
    wp = x.shape[2]
    for p in prange(planes):
        for r in range(oh_n):
            top = r * sh
            x0, x1, x2 = x[p, top], x[p, top + 1], x[p, top + 2]
            yr, ar = y[p, r], arg[p, r]
            b0, b1, b2 = top * wp, (top + 1) * wp, (top + 2) * wp
            for q in range(ow_n):
                c = q * sw
                best, at = x0[c], b0 + c
                best, at = _keep_first_max(x0[c + 1], b0 + c + 1, best, at)
                best, at = _keep_first_max(x0[c + 2], b0 + c + 2, best, at)
                best, at = _keep_first_max(x1[c], b1 + c, best, at)
                best, at = _keep_first_max(x1[c + 1], b1 + c + 1, best, at)
                best, at = _keep_first_max(x1[c + 2], b1 + c + 2, best, at)
                best, at = _keep_first_max(x2[c], b2 + c, best, at)
                best, at = _keep_first_max(x2[c + 1], b2 + c + 1, best, at)
                best, at = _keep_first_max(x2[c + 2], b2 + c + 2, best, at)
                has_nan = False
                for row in (x0, x1, x2):
                    has_nan |= (row[c] != row[c]) | (row[c + 1] != row[c + 1]) | (row[c + 2] != row[c + 2])
                yr[q] = np.nan if has_nan else best
                ar[q] = -1 if has_nan else at


@njit(**_JIT)
def _max_pool_backward(dy, arg, dx):
    """dx (planes, Hp*Wp) = 0, then dx[p, arg] += dy (overlapping windows add up; arg -1 gives nothing)."""
    planes, oh_n, ow_n = dy.shape
    for p in prange(planes):
        dx[p] = 0
        for r in range(oh_n):
            for q in range(ow_n):
                a = arg[p, r, q]
                if a >= 0:
                    dx[p, a] += dy[p, r, q]


def max_pool2d(xpad, out_hw, k, s):
    """2x2 or 3x3 max pool of a padded (N, C, Hp, Wp) array, any stride: (y (N, C, OH, OW), flat argmax
    int32 (N, C, OH, OW)) where the argmax is row * Wp + col inside the padded plane."""
    if tuple(k) not in POOL_WINDOWS:
        raise ValueError(f"accel.kernels.max_pool2d: only 2x2 and 3x3 windows, got {tuple(k)}")
    n, c, hp, wp = xpad.shape
    y = workspace.empty((n, c) + tuple(out_hw), xpad.dtype)
    arg = workspace.empty(y.shape, np.int32)
    kernel = _max_pool_2x2 if tuple(k) == (2, 2) else _max_pool_3x3
    planes, ys, args = np.ascontiguousarray(xpad).reshape(n * c, hp, wp), y.reshape(n * c, *out_hw), \
        arg.reshape(n * c, *out_hw)
    run_split(n * c, lambda a, b, _: kernel(planes[a:b], s[0], s[1], ys[a:b], args[a:b]))  # (nogil kernels)
    return y, arg


def max_pool2d_backward(dy, arg, padded_shape):
    """Gradient of :func:`max_pool2d` w.r.t. the padded input: (N, C, Hp, Wp)."""
    n, c, hp, wp = padded_shape
    dx = workspace.empty(padded_shape, dy.dtype)
    oh, ow = dy.shape[2:]
    dys, args, dxs = np.ascontiguousarray(dy).reshape(n * c, oh, ow), arg.reshape(n * c, oh, ow), \
        dx.reshape(n * c, hp * wp)
    run_split(n * c, lambda a, b, _: _max_pool_backward(dys[a:b], args[a:b], dxs[a:b]))
    return dx


# ----------------------------------------------------------------------------- im2col / col2im
@njit(**_JIT)
def _col2im_wide(col, kh, kw, dh, dw, wp, out):
    # Loop order (c, i, j, n): col is read front to back, and two passes over the same plane (kernel offsets
    # one element apart) are N planes apart. Offset-by-offset passes over ONE small plane made every vector
    # load wait for the overlapping stores of the previous pass (store forwarding fails): 3-4x slower.
    n_n, c_n = out.shape[0], out.shape[1]
    lw = col.shape[4]
    for c in range(c_n):
        for i in range(kh):
            for j in range(kw):
                off = i * dh * wp + j * dw
                for n in range(n_n):
                    src = col[c, i, j, n]
                    dst = out[n, c, off:off + lw]
                    for q in range(lw):
                        dst[q] += src[q]


def col2im_wide(col, out, g):
    """Stride-1 "wide" patches (C*kh*kw, N*OH*Wp) added back into the C-contiguous ``out`` (N, C, Hp+1, Wp)."""
    n, c, hp1, wp = out.shape
    _col2im_wide(col.reshape(c, g.kh, g.kw, n, g.oh * wp), g.kh, g.kw, g.dh, g.dw, wp,
                 out.reshape(n, c, hp1 * wp))
    return out


@njit(**_JIT)
def _patches_to_plane(src, kh, kw, sh, sw, dh, dw, plane):
    """plane[oh*sh + i*dh, ow*sw + j*dw] += src[i, j, oh, ow] for one (Hp, Wp) plane (overlaps summed)."""
    oh_n, ow_n = src.shape[2], src.shape[3]
    for i in range(kh):
        for j in range(kw):
            for oh in range(oh_n):
                row = plane[oh * sh + i * dh]
                part = src[i, j, oh]
                for ow in range(ow_n):
                    row[ow * sw + j * dw] += part[ow]


@njit(**_JIT)
def _col2im_nc(col, kh, kw, sh, sw, dh, dw, out):
    for t in prange(out.shape[0] * out.shape[1]):
        n, c = t // out.shape[1], t % out.shape[1]
        _patches_to_plane(col[n, c], kh, kw, sh, sw, dh, dw, out[n, c])


@njit(**_JIT)
def _col2im_cn(col, kh, kw, sh, sw, dh, dw, out):
    # order (c, i, j, n) as in _col2im_wide: col read front to back, passes over one plane N planes apart
    n_n, oh_n, ow_n = out.shape[0], col.shape[4], col.shape[5]
    for c in range(out.shape[1]):
        for i in range(kh):
            for j in range(kw):
                for n in range(n_n):
                    plane, part = out[n, c], col[c, i, j, n]
                    for oh in range(oh_n):
                        row, src = plane[oh * sh + i * dh], part[oh]
                        for ow in range(ow_n):
                            row[ow * sw + j * dw] += src[ow]


def col2im(col, out, g, batch_major):
    """Patches added back into the C-contiguous ``out`` (N, C, Hp, Wp), overlaps summed: ``col`` holds
    N*C*kh*kw*OH*OW values ordered (N, C, kh, kw, OH, OW) when ``batch_major`` else (C, kh, kw, N, OH, OW).
    Returns ``out``."""
    n, c = out.shape[:2]
    if batch_major:
        _col2im_nc(col.reshape(n, c, g.kh, g.kw, g.oh, g.ow), g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, out)
    else:
        _col2im_cn(col.reshape(c, g.kh, g.kw, n, g.oh, g.ow), g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, out)
    return out


# ----------------------------------------------------------------------------- layout copies
@njit(**_JIT)
def _gemm_to_nchw(y2, bias, has_bias, out):
    n_n, o_n, oh_n, ow_n = out.shape
    for t in prange(n_n * o_n):
        n, o = t // o_n, t % o_n
        b = bias[o] if has_bias else 0
        for r in range(oh_n):
            for q in range(ow_n):
                out[n, o, r, q] = y2[o, n, r, q] + b if has_bias else y2[o, n, r, q]


@njit(**_JIT)
def _nchw_to_gemm(dy, out):
    n_n, o_n, oh_n, ow_n = dy.shape
    wg = out.shape[3]
    for t in prange(o_n * n_n):
        o, n = t // n_n, t % n_n
        for r in range(oh_n):
            for q in range(ow_n):
                out[o, n, r, q] = dy[n, o, r, q]
            for q in range(ow_n, wg):
                out[o, n, r, q] = 0


def gemm_to_nchw(y2, n, oh, bias, out):
    """(O, n*OH*Wg) -> ``out`` (n, O, OH, OW) plus bias (O,) or None."""
    o = y2.shape[0]
    y4 = y2.reshape(o, n, oh, -1)
    has_bias = bias is not None
    _gemm_to_nchw(y4, bias if has_bias else np.zeros(o, y2.dtype), has_bias, out)
    return out


def nchw_to_gemm(dy, wg):
    """(n, O, OH, OW) -> (O, n*OH*Wg), columns OW..Wg-1 zero."""
    n, o, oh, ow = dy.shape
    out = workspace.empty((o, n, oh, wg), dy.dtype)
    _nchw_to_gemm(np.ascontiguousarray(dy), out)
    return out.reshape(o, n * oh * wg)
