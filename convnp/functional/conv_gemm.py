"""The blocked GEMM provider of 2-D convolution: im2col in cache-sized blocks + a few LARGE matrix products.

Same numbers as the reference (``conv_reference``: one im2col matrix, one GEMM) within float32 rounding, faster
on NumPy (and the provider that runs CuPy arrays, through convnp.cuda's im2col/col2im kernels):

* the patches of a batch are one matrix ``col`` (C*kh*kw, N*OH*OW) (rows (c, i, j), columns (n, oh, ow)):
  ``y = W (O, K) @ col`` -> (O, N*L), then one transposed copy into (N, O, OH, OW) (bias added in the same pass);
  ``dW = dy (O, N*L) @ col^T`` and ``dcol = W^T @ dy`` are one GEMM each, with no loop over samples;
* im2col copies kh*kw slices (one per kernel offset), never looping over pixels; for stride 1 on NumPy the
  "wide" layout computes each output row over the whole padded width Wp (the Wp - OW extra columns are
  dropped after the GEMM), so every copy is one long contiguous run of the image (``_im2col_wide``);
* the products run block by block over the batch (about ``COL_BLOCK_BYTES`` of patches, which stay in the CPU
  cache); in training the patches of a batch up to ``COL_CHUNK_BYTES`` are cached for backward, larger ones
  are rebuilt block by block in backward through one reused buffer; under ``no_grad()`` nothing is cached;
* a 1x1 stride-1 unpadded convolution is a plain matmul on ``x.reshape(N, C, H*W)``, and a layer with fewer
  patch rows than filters (K < O: a first layer on 1-3 channels) keeps per-sample GEMMs on ``col`` (N, K, L),
  which land in NCHW order without transposing y and dy.

:func:`forward` and :func:`backward` are the provider's pair (``convnp.functional.conv`` dispatches to them);
the helpers also serve ``conv_transpose2d`` and the direct provider's GEMM fallback for dx.
"""
from __future__ import annotations

import numpy as np

from .. import accel, workspace
from ..accel.threads import matmul  # (NumPy's matmul, split over the kernel threads when BLAS is on one)
from ..backend import get_array_module
from ..cuda import ops as cuda_ops
from .activation import relu_backward
from .conv_geometry import Geom as _Geom
from .padding import pad2d, pad2d_backward

NAME = "gemm"
#: the patches of a whole batch up to this size are built at once (and cached for backward when training);
#: larger batches stream through chunks of at most COL_BLOCK_BYTES, and backward rebuilds their patches
COL_CHUNK_BYTES = 8 * 2 ** 20
#: streaming chunk size: about what stays in a core's L2 cache, so the GEMMs and col2im read it from cache
COL_BLOCK_BYTES = 2 * 2 ** 20
#: but never fewer GEMM columns than this per block: deep layers on small maps (ResNet-18's 512 channels on 7x7,
#: a 1.2 MB patch matrix per sample) ran 1.6x slower as one-sample GEMMs of 63 columns than as one GEMM
MIN_BLOCK_COLUMNS = 512


def _im2col(xpad, g: _Geom, buf=None):
    """Patches of a padded (N, C, Hp, Wp) array -> (N, C*kh*kw, OH*OW), columns ordered (c, i, j).

    ``buf`` (optional, 1-D, large enough) is reused as the output storage.
    """
    xp = get_array_module(xpad)
    if xp is not np:  # GPU: convnp.cuda's im2col kernel when it can run (else the xp code below)
        col = cuda_ops.im2col(xpad, g, buf)
        if col is not None:
            return col
    n, c = xpad.shape[:2]
    shape = (n, c, g.kh, g.kw, g.oh, g.ow)
    if buf is None:
        col = workspace.empty(shape, xpad.dtype, xp)
    else:
        col = buf[:n * c * g.kh * g.kw * g.oh * g.ow].reshape(shape)
    h_span, w_span = g.sh * (g.oh - 1) + 1, g.sw * (g.ow - 1) + 1
    for i in range(g.kh):
        top = i * g.dh
        for j in range(g.kw):
            left = j * g.dw
            col[:, :, i, j] = xpad[:, :, top:top + h_span:g.sh, left:left + w_span:g.sw]  # (N, C, OH, OW)
    return col.reshape(n, c * g.kh * g.kw, g.oh * g.ow)


def _col2im(col, padded_shape, g: _Geom, out=None):
    """Adjoint of :func:`_im2col`: (N, C*kh*kw, OH*OW) -> (N, C, Hp, Wp), overlaps summed (into ``out``)."""
    xp = get_array_module(col)
    if xp is not np:  # GPU: convnp.cuda's gather kernel (no atomics) when it can run (else the xp code below)
        img = cuda_ops.col2im(col, padded_shape, g, out)
        if img is not None:
            return img
    n, c = padded_shape[:2]
    col = col.reshape(n, c, g.kh, g.kw, g.oh, g.ow)
    if out is None:
        out = workspace.zeros(padded_shape, col.dtype, xp)
    if accel.enabled_for(col, out) and out.flags.c_contiguous:
        return accel.kernels.col2im(col, out, g)
    h_span, w_span = g.sh * (g.oh - 1) + 1, g.sw * (g.ow - 1) + 1
    for i in range(g.kh):
        top = i * g.dh
        for j in range(g.kw):
            left = j * g.dw
            out[:, :, top:top + h_span:g.sh, left:left + w_span:g.sw] += col[:, :, i, j]
    return out


def _im2col_t(xpad, g: _Geom, buf=None):
    """Patches of a padded (N, C, Hp, Wp) array as ONE matrix (C*kh*kw, N*OH*OW): rows (c, i, j), columns
    (n, oh, ow), so that a whole batch is one GEMM ``W (O, K) @ col``. ``buf`` (1-D) is reused as storage.
    """
    xp = get_array_module(xpad)
    n, c = xpad.shape[:2]
    k, m = c * g.kh * g.kw, n * g.oh * g.ow
    col = workspace.empty(k * m, xpad.dtype, xp) if buf is None else buf[:k * m]
    if xp is not np:  # GPU: the kernel writes (N, K, L); one transposed copy into (K, N*L)
        col_nkl = cuda_ops.im2col(xpad, g)
        if col_nkl is not None:
            col = col.reshape(k, n, g.oh * g.ow)
            col[...] = col_nkl.transpose(1, 0, 2)  # (K, N, L)
            return col.reshape(k, m)
    col = col.reshape(c, g.kh, g.kw, n, g.oh, g.ow)
    if accel.direct_enabled_for(xpad, col) and xpad.flags.c_contiguous:  # one pass in C, not kh*kw strided copies
        return accel.direct.im2col(xpad, col, g).reshape(k, m)
    xt = xpad.transpose(1, 0, 2, 3)  # (C, N, Hp, Wp) view: the batch moves next to the pixels
    h_span, w_span = g.sh * (g.oh - 1) + 1, g.sw * (g.ow - 1) + 1
    for i in range(g.kh):
        top = i * g.dh
        for j in range(g.kw):
            left = j * g.dw
            col[:, i, j] = xt[:, :, top:top + h_span:g.sh, left:left + w_span:g.sw]  # (C, N, OH, OW)
    return col.reshape(k, m)


def _col2im_t(col, padded_shape, g: _Geom, out=None):
    """Adjoint of :func:`_im2col_t`: (C*kh*kw, N*OH*OW) -> (N, C, Hp, Wp), overlaps summed (added into ``out``)."""
    xp = get_array_module(col)
    n, c = padded_shape[:2]
    if xp is not np:  # GPU: the gather kernel reads the (N, K, L) layout
        col_nkl = col.reshape(c * g.kh * g.kw, n, g.oh * g.ow).transpose(1, 0, 2)  # (N, K, L) view
        img = cuda_ops.col2im(col_nkl, padded_shape, g, out)
        if img is not None:
            return img
    col = col.reshape(c, g.kh, g.kw, n, g.oh, g.ow)
    if out is None:
        out = workspace.zeros(padded_shape, col.dtype, xp)
    if accel.direct_enabled_for(col, out) and out.flags.c_contiguous:  # patches.c, one pass
        return accel.direct.col2im(np.ascontiguousarray(col), out, g)
    ot = out.transpose(1, 0, 2, 3)  # (C, N, Hp, Wp) view of out
    h_span, w_span = g.sh * (g.oh - 1) + 1, g.sw * (g.ow - 1) + 1
    for i in range(g.kh):
        top = i * g.dh
        for j in range(g.kw):
            left = j * g.dw
            ot[:, :, top:top + h_span:g.sh, left:left + w_span:g.sw] += col[:, i, j]  # (C, N, OH, OW)
    return out


def _wide_buffer(shape, pads, dtype, slack=0, xp=np):
    """An uninitialised (N, C, Hp + 1, Wp) array for :func:`_pad_wide`'s layout, followed in memory by
    ``slack`` zeros (a view of a 1-D workspace buffer)."""
    (t, b), (l, r) = pads
    n, c, h, w = shape
    return accel.direct.wide_buffer((n, c, h + t + b + 1, w + l + r), slack, dtype, xp)


def _pad_wide(x, pads, mode, slack=0):
    """pad2d plus one zero row at the bottom: (N, C, Hp + 1, Wp), so every stride-1 patch run stays inside.

    With ``slack`` > 0 the result is a view of a 1-D buffer that has ``slack`` zeros after it (the direct
    kernel of :mod:`convnp.accel.direct` reads past the last plane at positions it then drops).
    """
    xp = get_array_module(x)
    (t, b), (l, r) = pads
    h, w = x.shape[2:]
    hp = h + t + b
    out = _wide_buffer(x.shape, pads, x.dtype, slack, xp)
    if mode == "zeros" and x.flags.c_contiguous and accel.direct_enabled_for(x):
        accel.direct.pad_planes(x, t, l, out)  # one pass in C, split over the threads
    elif mode == "zeros":  # zero the border only, then copy the image in
        out[:, :, :t] = 0
        out[:, :, t + h:] = 0  # bottom padding and the extra row
        out[:, :, t:t + h, :l] = 0
        out[:, :, t:t + h, l + w:] = 0
        out[:, :, t:t + h, l:l + w] = x
    else:
        out[:, :, :hp] = pad2d(x, pads, mode)
        out[:, :, hp:] = 0
    return out


def _im2col_wide(xpad1, g: _Geom, buf=None):
    """Stride-1 patches as long contiguous runs: (N, C, Hp+1, Wp) -> (C*kh*kw, N*OH*Wp), columns (n, oh, w).

    Each output row is computed over the whole padded width Wp (the last Wp - OW columns are dropped after
    the GEMM), so the patch of kernel offset (i, j) is ONE run of the flattened image starting at
    i*dh*Wp + j*dw: the copies move OH*Wp-long rows instead of OW-long ones.
    """
    xp = get_array_module(xpad1)
    n, c, hp1, wp = xpad1.shape
    lw, k = g.oh * wp, c * g.kh * g.kw
    col = workspace.empty(k * n * lw, xpad1.dtype, xp) if buf is None else buf[:k * n * lw]
    col = col.reshape(c, g.kh, g.kw, n, lw)
    xt = xpad1.reshape(n, c, hp1 * wp).transpose(1, 0, 2)  # (C, N, (Hp+1)*Wp) view

    def copy(c0, c1, _piece):  # channels c0..c1-1
        for i in range(g.kh):
            for j in range(g.kw):
                off = i * g.dh * wp + j * g.dw
                col[c0:c1, i, j] = xt[c0:c1, :, off:off + lw]  # (C, N, OH*Wp)
    threads = accel.threads.pass_threads(col.size) if xp is np else 1  # (NumPy's copies release the GIL)
    accel.direct.run_split(c, copy, threads)
    return col.reshape(k, n * lw)


def _col2im_wide(col, padded1_shape, g: _Geom, out=None):
    """Adjoint of :func:`_im2col_wide`: (C*kh*kw, N*OH*Wp) -> (N, C, Hp+1, Wp) (added into ``out``, contiguous)."""
    xp = get_array_module(col)
    n, c, hp1, wp = padded1_shape
    lw = g.oh * wp
    if out is None:
        out = workspace.zeros(padded1_shape, col.dtype, xp)
    if accel.enabled_for(col, out) and out.flags.c_contiguous and col.flags.c_contiguous:
        return accel.kernels.col2im_wide(col, out, g)
    col = col.reshape(c, g.kh, g.kw, n, lw)
    ot = out.reshape(n, c, hp1 * wp).transpose(1, 0, 2)  # (C, N, (Hp+1)*Wp) view of out
    for i in range(g.kh):
        for j in range(g.kw):
            off = i * g.dh * wp + j * g.dw
            ot[:, :, off:off + lw] += col[:, i, j]  # (C, N, OH*Wp)
    return out


def _gemm_w_col(w, col, groups, out=None):
    """y = W @ col per group, one GEMM for the batch: w (O, Cg, kh, kw), col (K, M) -> (O, M) (into ``out``)."""
    o = w.shape[0]
    k, m = col.shape
    if groups == 1:
        return matmul(w.reshape(o, k), col, out=out)  # (O, K) @ (K, M)
    out3 = None if out is None else out.reshape(groups, o // groups, m)
    y = matmul(w.reshape(groups, o // groups, k // groups), col.reshape(groups, k // groups, m), out=out3)
    return y.reshape(o, m)  # (G, Og, Kg) @ (G, Kg, M) -> (G, Og, M)


def _gemm_wt_dy(w, dy2, groups, out=None):
    """dcol = W^T @ dy per group: w (O, Cg, kh, kw), dy2 (O, M) -> (C*kh*kw, M) (into ``out``)."""
    xp = get_array_module(dy2)
    o = w.shape[0]
    kg = w.size // o  # Cg*kh*kw
    m = dy2.shape[1]
    if groups == 1:
        return matmul(w.reshape(o, kg).T, dy2, out=out)  # (K, O) @ (O, M)
    out3 = None if out is None else out.reshape(groups, kg, m)
    if o == groups:  # depthwise (one filter per group): an outer product, much faster than a K=1 matmul
        dcol = xp.multiply(w.reshape(groups, kg, 1), dy2.reshape(groups, 1, m), out=out3)  # (G, Kg, M)
    else:
        wg = w.reshape(groups, o // groups, kg).transpose(0, 2, 1)  # (G, Kg, Og)
        dcol = matmul(wg, dy2.reshape(groups, o // groups, m), out=out3)  # (G, Kg, M)
    return dcol.reshape(groups * kg, m)


def _gemm_dy_colt(dy2, col, groups, acc=None):
    """dW^T (+)= col @ dy^T per group, one GEMM: dy2 (O, M), col (K, M) -> (G, K/G, O/G) (added into ``acc``).

    The transposed product is the fast one: with O = 16-32 filters, OpenBLAS runs ``col @ dy^T`` (a tall
    K x O result) 1.6-2.5x faster than ``dy @ col^T``. :func:`_dw_from_acc` turns the sum into dW.
    """
    o, m = dy2.shape
    k = col.shape[0]
    part = matmul(col.reshape(groups, k // groups, m),
                  dy2.reshape(groups, o // groups, m).transpose(0, 2, 1))  # (G, Kg, M) @ (G, M, Og)
    if acc is None:
        return part
    acc += part
    return acc


def _dw_from_acc(acc, w_shape):
    """(G, Kg, Og) sum of :func:`_gemm_dy_colt` -> dW in the weight's shape (O, C/G, kh, kw)."""
    return acc.transpose(0, 2, 1).reshape(w_shape)


def _gemm_to_nchw(y2, n, oh, ow, bias=None, out=None):
    """(O, n*OH*Wg) GEMM output -> (n, O, OH, OW) (Wg >= OW: wide columns dropped), plus bias, in one copy."""
    xp = get_array_module(y2)
    o = y2.shape[0]
    y4 = y2.reshape(o, n, oh, -1)[:, :, :, :ow].transpose(1, 0, 2, 3)  # (n, O, OH, OW) view
    if out is None:
        out = workspace.empty(y4.shape, y2.dtype, xp)
    if accel.enabled_for(y2, out, *(() if bias is None else (bias,))) and out.flags.c_contiguous \
            and y2.flags.c_contiguous:
        return accel.kernels.gemm_to_nchw(y2, n, oh, bias, out)
    if bias is None:
        out[...] = y4
    else:
        xp.add(y4, bias.reshape(1, o, 1, 1), out=out)
    return out


def _nchw_to_gemm(dy, wg):
    """(n, O, OH, OW) -> (O, n*OH*Wg) (a copy; wide columns Wg > OW are zero, so they add nothing)."""
    xp = get_array_module(dy)
    n, o, oh, ow = dy.shape
    if accel.enabled_for(dy):
        return accel.kernels.nchw_to_gemm(dy, wg)
    if wg == ow:
        return xp.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(o, n * oh * ow)
    dy2 = workspace.zeros((o, n, oh, wg), dy.dtype, xp)
    dy2[:, :, :, :ow] = dy.transpose(1, 0, 2, 3)
    return dy2.reshape(o, n * oh * wg)


# per-sample helpers: the 1x1 stride-1 convolution, whose patches are the input itself (no copy)
def _matmul_w_col(w, col, groups, out=None):
    """y = W @ col per group: w (O, Cg, kh, kw), col (N, C*kh*kw, L) -> (N, O, L) (written into ``out``)."""
    o = w.shape[0]
    n, k, l = col.shape
    if groups == 1:
        return matmul(w.reshape(o, k), col, out=out)  # (O, K) @ (N, K, L) -> (N, O, L)
    wg = w.reshape(groups, o // groups, k // groups)  # (G, Og, Kg)
    out4 = None if out is None else out.reshape(n, groups, o // groups, l)
    y = matmul(wg, col.reshape(n, groups, k // groups, l), out=out4)  # (N, G, Og, L)
    return y.reshape(n, o, l)


def _matmul_wt_dy(w, dy, groups, out=None):
    """dcol = W^T @ dy per group: w (O, Cg, kh, kw), dy (N, O, L) -> (N, C*kh*kw, L) (into ``out``)."""
    xp = get_array_module(dy)
    o = w.shape[0]
    kg = w.size // o  # Cg*kh*kw
    n, _, l = dy.shape
    if groups == 1:
        return matmul(w.reshape(o, kg).T, dy, out=out)  # (K, O) @ (N, O, L) -> (N, K, L)
    out4 = None if out is None else out.reshape(n, groups, kg, l)
    if o == groups:  # depthwise
        dcol = xp.multiply(w.reshape(groups, kg, 1), dy.reshape(n, groups, 1, l), out=out4)  # (N, G, Kg, L)
        return dcol.reshape(n, groups * kg, l)
    wg = w.reshape(groups, o // groups, kg).transpose(0, 2, 1)  # (G, Kg, Og)
    dcol = matmul(wg, dy.reshape(n, groups, o // groups, l), out=out4)  # (N, G, Kg, L)
    return dcol.reshape(n, groups * kg, l)


def _matmul_dy_colt(dy, col, groups):
    """dW = sum_n dy_n @ col_n^T per group: dy (N, O, L), col (N, K, L) -> (G, O/G, K/G)."""
    xp = get_array_module(dy)
    n, o, l = dy.shape
    k = col.shape[1]
    dyg = dy.reshape(n, groups, o // groups, l).transpose(1, 2, 0, 3)  # (G, Og, N, L) view
    colg = col.reshape(n, groups, k // groups, l).transpose(1, 2, 0, 3)  # (G, Kg, N, L) view
    dyg = xp.ascontiguousarray(dyg).reshape(groups, o // groups, n * l)  # (G, Og, N*L)
    colg = xp.ascontiguousarray(colg).reshape(groups, k // groups, n * l)  # (G, Kg, N*L)
    return matmul(dyg, colg.transpose(0, 2, 1))  # one GEMM over the batch: (G, Og, Kg)


def _matmul_dy_colt_loop(dy, col, groups):
    """dW = sum_n dy_n @ col_n^T, one small GEMM per sample (no transposed copies): -> (G, O/G, K/G)."""
    n, o, l = dy.shape
    k = col.shape[1]
    dyg = dy.reshape(n, groups, o // groups, l)
    colg = col.reshape(n, groups, k // groups, l)
    acc = dyg[0] @ colg[0].transpose(0, 2, 1)  # (G, Og, L) @ (G, L, Kg)
    for i in range(1, n):
        acc += dyg[i] @ colg[i].transpose(0, 2, 1)
    return acc


def _is_pointwise(g: _Geom, pads):
    return g.kh == g.kw == g.sh == g.sw == 1 and pads == ((0, 0), (0, 0))


def _blocks(n, bytes_per_sample, columns_per_sample, xp=np):
    """Batch ranges whose patch matrix is about min(COL_BLOCK_BYTES, COL_CHUNK_BYTES), with at least
    MIN_BLOCK_COLUMNS GEMM columns: ``(size, [(s, e), ...])``.

    On a GPU (no CPU cache to fit, and each block costs kernel launches) the blocks are COL_CHUNK_BYTES.
    """
    limit = min(COL_BLOCK_BYTES, COL_CHUNK_BYTES) if xp is np else COL_CHUNK_BYTES
    size = max(1, limit // max(int(bytes_per_sample), 1), -(-MIN_BLOCK_COLUMNS // max(columns_per_sample, 1)))
    size = min(n, size)
    return size, [(s, min(s + size, n)) for s in range(0, n, size)]


def forward(x, w, b, g: _Geom, pads, padding_mode, groups, relu, save):
    """y (N, O, OH, OW) and the cache of :func:`backward` (None unless ``save``); see the module docstring."""
    xp = get_array_module(x)
    n, c, h, wd = x.shape
    o = w.shape[0]
    oh, ow = g.oh, g.ow
    k = c * g.kh * g.kw
    col = xpad = None
    # few patch rows (K < O, e.g. a first layer): per-sample GEMMs in NCHW order beat transposing y and dy
    per_sample = k < o and n * k * oh * ow * x.dtype.itemsize <= COL_CHUNK_BYTES
    wide = False
    if _is_pointwise(g, pads) or per_sample:
        if _is_pointwise(g, pads):
            col = x.reshape(n, c, h * wd)  # (N, C, H*W): the patches are the pixels, no copy
            padded_shape = x.shape
        else:
            xpad = pad2d(x, pads, padding_mode)  # (N, C, Hp, Wp)
            padded_shape = xpad.shape
            col = _im2col(xpad, g)  # (N, C*kh*kw, OH*OW)
        y = _matmul_w_col(w, col, groups)  # (N, O, OH*OW)
        if b is not None:
            y += b.reshape(1, o, 1)
        y = y.reshape(n, o, oh, ow)
    else:
        # stride 1 on NumPy: the "wide" layout (long contiguous copies); else one strided copy per offset
        wide = xp is np and g.sh == g.sw == 1
        xpad = _pad_wide(x, pads, padding_mode) if wide else pad2d(x, pads, padding_mode)  # (N, C, Hp(+1), Wp)
        padded_shape = xpad.shape
        im2col_fn = _im2col_wide if wide else _im2col_t
        lg = oh * (xpad.shape[3] if wide else ow)  # GEMM columns per sample
        per_sample = k * lg * x.dtype.itemsize
        size, blocks = _blocks(n, per_sample, lg, xp)
        y = workspace.empty((n, o, oh, ow), np.result_type(x.dtype, w.dtype), xp)
        if save and n * per_sample <= COL_CHUNK_BYTES:
            col = im2col_fn(xpad, g)  # (C*kh*kw, N*Lg), kept for backward
        else:
            buf = workspace.empty(size * k * lg, x.dtype, xp)
        ybuf = workspace.empty(o * size * lg, y.dtype, xp)
        for s, e in blocks:  # one GEMM per block of about COL_BLOCK_BYTES (stays in cache)
            block_col = col[:, s * lg:e * lg] if col is not None else im2col_fn(xpad[s:e], g, buf)  # (K, n*Lg)
            y2 = _gemm_w_col(w, block_col, groups, out=ybuf[:o * (e - s) * lg].reshape(o, (e - s) * lg))
            _gemm_to_nchw(y2, e - s, oh, ow, b, out=y[s:e])  # (O, n*Lg) -> (n, O, OH, OW)
    if relu:
        y = xp.maximum(y, 0, out=y)
    cache = None
    if save:
        col_gemm = col
        if col is not None and col.ndim == 2:  # the patches proper, (C*kh*kw, N, OH, OW): a view of col_gemm
            col = col.reshape(col.shape[0], n, oh, -1)[:, :, :, :ow]
        cache = dict(provider=NAME, col=col, col_gemm=col_gemm, xpad=None if col is not None else xpad, w=w,
                     has_bias=b is not None, geom=g, groups=groups, pads=pads, padding_mode=padding_mode,
                     x_shape=x.shape, padded_shape=padded_shape, wide=wide, relu_out=y if relu else None)
    return y, cache


def weight_grad(x, dy, g: _Geom, pads, w_shape, padding_mode="zeros"):
    """dW (O, C, kh, kw) of a stride-1, one-group convolution from its input x (N, C, H, W) and output gradient
    dy (N, O, OH, OW): the wide patches block by block, ``dW^T += col @ dy^T`` (backward's dW, without dx)."""
    xpad = _pad_wide(x, pads, padding_mode)  # (N, C, Hp + 1, Wp)
    n, k, wp = x.shape[0], w_shape[1] * g.kh * g.kw, xpad.shape[3]
    lg = g.oh * wp
    size, blocks = _blocks(n, k * lg * x.dtype.itemsize, lg)
    buf, acc = workspace.empty(size * k * lg, x.dtype), None
    for s, e in blocks:
        acc = _gemm_dy_colt(_nchw_to_gemm(dy[s:e], wp), _im2col_wide(xpad[s:e], g, buf), 1, acc)  # (1, K, O)
    return _dw_from_acc(acc, w_shape)


def backward(dy, cache, need_dx=True):
    """(dx, dw, db) of :func:`forward` (dx None when ``need_dx`` is False)."""
    w, g, groups, col = cache["w"], cache["geom"], cache["groups"], cache["col_gemm"]
    if cache.get("relu_out") is not None:  # the fused ReLU's backward first
        dy = relu_backward(dy, y=cache["relu_out"])
    xp = get_array_module(dy)
    n, o = dy.shape[0], w.shape[0]
    if col is not None and col.ndim == 3:  # per-sample patches (N, K, L); a 1x1 conv's are x itself
        dy3 = dy.reshape(n, o, g.oh * g.ow)  # (N, O, L)
        db = dy3.sum(axis=(0, 2)) if cache["has_bias"] else None
        if _is_pointwise(g, cache["pads"]):
            dw = _matmul_dy_colt(dy3, col, groups)
            dx = _matmul_wt_dy(w, dy3, groups).reshape(cache["x_shape"]) if need_dx else None
            return dx, dw.reshape(w.shape), db
        dw = _matmul_dy_colt_loop(dy3, col, groups)
        dx = None
        if need_dx:
            dx = _col2im(_matmul_wt_dy(w, dy3, groups), cache["padded_shape"], g)  # (N, C, Hp, Wp)
            dx = pad2d_backward(dx, cache["pads"], cache["padding_mode"], cache["x_shape"])
        return dx, dw.reshape(w.shape), db
    wide = cache["wide"]
    padded_shape = cache["padded_shape"]
    im2col_fn, col2im_fn = (_im2col_wide, _col2im_wide) if wide else (_im2col_t, _col2im_t)
    wg = padded_shape[3] if wide else g.ow  # GEMM columns per output row
    db = dy.sum(axis=(0, 2, 3)) if cache["has_bias"] else None
    xpad = cache["xpad"]
    k = w.shape[1] * groups * g.kh * g.kw
    lg = g.oh * wg
    size, blocks = _blocks(n, k * lg * w.dtype.itemsize, lg, xp)
    buf = workspace.empty(size * k * lg, xpad.dtype, xp) if col is None else None
    dbuf = workspace.empty(size * k * lg, dy.dtype, xp) if need_dx else None
    dw = None
    dx = workspace.zeros(padded_shape, dy.dtype, xp) if need_dx else None  # (N, C, Hp(+1), Wp)
    for s, e in blocks:  # patches: a block of the cached ones, else rebuilt into one reused buffer
        block_col = col[:, s * lg:e * lg] if col is not None else im2col_fn(xpad[s:e], g, buf)  # (K, n*Lg)
        dy2 = _nchw_to_gemm(dy[s:e], wg)  # (O, n*Lg)
        dw = _gemm_dy_colt(dy2, block_col, groups, dw)  # (G, Kg, Og)
        if need_dx:
            dcol = _gemm_wt_dy(w, dy2, groups, out=dbuf[:k * (e - s) * lg].reshape(k, (e - s) * lg))
            col2im_fn(dcol, (e - s,) + tuple(dx.shape[1:]), g, out=dx[s:e])
    if dx is not None and wide:
        dx = dx[:, :, :-1]  # drop the extra bottom row: (N, C, Hp, Wp)
    if dx is not None:
        dx = pad2d_backward(dx, cache["pads"], cache["padding_mode"], cache["x_shape"])
        if not dx.flags.c_contiguous:  # unpadded wide layout: a view without the extra row
            dx_view, dx = dx, workspace.empty(dx.shape, dx.dtype, xp)
            dx[...] = dx_view
    return dx, _dw_from_acc(dw, w.shape), db
