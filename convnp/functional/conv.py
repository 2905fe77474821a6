"""2-D convolution as im2col + one matrix product, and its transpose.

The textbook pair (Deep Learning from Scratch, ch. 7) is kept with its exact interface:
``im2col(x, fh, fw, stride, pad)`` -> (N*OH*OW, C*FH*FW) and ``col2im`` (which sums overlaps).

The fast path used by the layers makes each convolution a few LARGE matrix products (small per-sample
GEMMs run far below BLAS peak). The patches of a batch are one matrix ``col`` (C*kh*kw, N*OH*OW)
(rows (c, i, j), columns (n, oh, ow)): ``y = W (O, K) @ col`` -> (O, N*L), then one transposed copy into
(N, O, OH, OW) (the bias added in the same pass); ``dW = dy (O, N*L) @ col^T`` and ``dcol = W^T @ dy`` are
one GEMM each, with no loop over samples:

* im2col copies kh*kw slices (one per kernel offset), never looping over pixels; for stride 1 on NumPy the
  "wide" layout computes each output row over the whole padded width Wp (the Wp - OW extra columns are
  dropped after the GEMM), so every copy is one long contiguous run of the image (``_im2col_wide``);
* col2im adds kh*kw slices back (overlapping windows accumulate);
* the products run block by block over the batch (about ``COL_BLOCK_BYTES`` of patches, which stay in
  the CPU cache); in training the patches of a batch up to ``COL_CHUNK_BYTES`` are cached for backward,
  larger ones are rebuilt block by block in backward through one reused buffer (bounded memory, and no
  fresh large arrays whose page faults cost more than the copy); under ``no_grad()`` nothing is cached;
* a 1x1 stride-1 unpadded convolution is a plain matmul on ``x.reshape(N, C, H*W)``, and a layer with
  fewer patch rows than filters (K < O: a first layer on 1-3 channels) keeps per-sample GEMMs on
  ``col`` (N, K, L), which land in NCHW order without transposing y and dy.

Output size (rounded down, like PyTorch and Keras: a trailing partial window is dropped)::

    OH = floor((H + top + bottom - D*(KH-1) - 1) / S) + 1

``conv_transpose2d`` is the input-gradient of ``conv2d`` (it reuses the same helpers).

Where a C compiler is available (``convnp.accel.direct``), float32 NumPy convolutions with zero padding skip
the patch matrix: stride 1 in the direct kernels (``_direct_ok``), and strided ones with a kernel at least as
large as the stride and >= 8 input channels in the same kernels at strided positions or as a sum of stride-1
phases (``_direct_strided_ok``). Everything else, and CuPy arrays, take the path described above, which stays
the reference the kernels are tested against.
"""
from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from .. import accel, workspace
from ..backend import get_array_module, is_grad_enabled
from ._args import int_pair
from ..cuda import ops as cuda_ops
from .activation import relu_backward
from .padding import PAD_MODES, normalize_pads, pad2d, pad2d_backward

__all__ = ["im2col", "col2im", "conv_output_size", "conv2d_output_shape", "resolve_padding",
           "conv2d_forward", "conv2d_backward", "conv_transpose2d_forward", "conv_transpose2d_backward",
           "conv_transpose2d_output_shape"]

#: the patches of a whole batch up to this size are built at once (and cached for backward when training);
#: larger batches stream through chunks of at most COL_BLOCK_BYTES, and backward rebuilds their patches
COL_CHUNK_BYTES = 8 * 2 ** 20
#: streaming chunk size: about what stays in a core's L2 cache, so the GEMMs and col2im read it from cache
COL_BLOCK_BYTES = 2 * 2 ** 20

# kernel (kh, kw), stride (sh, sw), dilation (dh, dw), output (oh, ow)
_Geom = namedtuple("_Geom", "kh kw sh sw dh dw oh ow")


# ----------------------------------------------------------------------------- argument helpers
def _pair(value, name, where):
    pair = int_pair(value, name, where)
    if min(pair) < 1:
        raise ValueError(f"{where}: {name} must be positive, got {value!r}")
    return pair


def conv_output_size(input_size, filter_size, stride=1, pad=0, dilation=1) -> int:
    """The textbook output-size formula, strict: OH = (H + 2P - D*(FH-1) - 1) / S + 1.

    Raises ValueError naming the numbers when OH is not a positive integer (the layers instead round
    down, like PyTorch and Keras). Example: ``conv_output_size(28, 5) == 24``;
    ``conv_output_size(28, 5, stride=2)`` raises "(28 + 2*0 - 5) / 2 + 1 = 12.5 is not an integer".
    """
    if stride < 1:
        raise ValueError(f"conv_output_size: stride must be positive, got {stride}")
    extent = dilation * (filter_size - 1) + 1
    ext_txt = f"{filter_size}" if dilation == 1 else f"{dilation}*({filter_size}-1) - 1"
    value = (input_size + 2 * pad - extent) / stride + 1
    expr = f"({input_size} + 2*{pad} - {ext_txt}) / {stride} + 1 = {value:g}"
    if value != math.floor(value):
        raise ValueError(f"conv_output_size: {expr} is not an integer")
    if value < 1:
        raise ValueError(f"conv_output_size: {expr} is not positive (filter larger than the padded input)")
    return int(value)


def resolve_padding(padding, input_hw, kernel_hw, stride=1, dilation=1, where="conv2d"):
    """Explicit ((top, bottom), (left, right)) for ``padding`` = int, pair, nested pairs, "valid" or "same".

    "same" follows Keras for any stride: OH = ceil(H / S), total = max((OH-1)*S + D*(K-1) + 1 - H, 0),
    top = total // 2 and the odd row/column goes to the bottom/right.
    """
    if isinstance(padding, str):
        key = padding.lower()
        if key == "valid":
            return ((0, 0), (0, 0))
        if key == "same":
            kh, kw = _pair(kernel_hw, "kernel_size", where)
            sh, sw = _pair(stride, "stride", where)
            dh, dw = _pair(dilation, "dilation", where)
            pads = []
            for size, k, s, d in ((input_hw[0], kh, sh, dh), (input_hw[1], kw, sw, dw)):
                out = -(-size // s)
                total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(f"{where}: unknown padding {padding!r}; expected 'valid', 'same', an int, "
                         "a pair (ph, pw) or ((top, bottom), (left, right))")
    return normalize_pads(padding, where)


def conv2d_output_shape(input_shape, kernel_size, stride=1, padding=0, dilation=1, where="conv2d"):
    """((OH, OW), pads) of a convolution on ``input_shape`` (N, C, H, W) or (H, W), rounding down.

    Raises ValueError (prefixed with ``where``) when the dilated kernel is larger than the padded input.
    """
    h, w = input_shape[-2:]
    kh, kw = _pair(kernel_size, "kernel_size", where)
    sh, sw = _pair(stride, "stride", where)
    dh, dw = _pair(dilation, "dilation", where)
    pads = resolve_padding(padding, (h, w), (kh, kw), (sh, sw), (dh, dw), where)
    hp, wp = h + sum(pads[0]), w + sum(pads[1])
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if hp < eh or wp < ew:
        raise ValueError(f"{where}: kernel {kh}x{kw} (dilated extent {eh}x{ew}) is larger than the padded input "
                         f"{hp}x{wp} (input {h}x{w}, padding {pads})")
    return ((hp - eh) // sh + 1, (wp - ew) // sw + 1), pads


# ----------------------------------------------------------------------------- fast im2col / col2im
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
        return accel.kernels.col2im(col, out, g, batch_major=True)
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
    if accel.direct_enabled_for(col, out) and out.flags.c_contiguous and col.flags.c_contiguous:
        return accel.direct.col2im(col, out, g)  # (C code, split over the channels)
    if accel.enabled_for(col, out) and out.flags.c_contiguous:
        return accel.kernels.col2im(col, out, g, batch_major=False)
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
    for i in range(g.kh):
        for j in range(g.kw):
            off = i * g.dh * wp + j * g.dw
            col[:, i, j] = xt[:, :, off:off + lw]  # (C, N, OH*Wp)
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
    xp = get_array_module(col)
    o = w.shape[0]
    k, m = col.shape
    if groups == 1:
        return xp.matmul(w.reshape(o, k), col, out=out)  # (O, K) @ (K, M)
    out3 = None if out is None else out.reshape(groups, o // groups, m)
    y = xp.matmul(w.reshape(groups, o // groups, k // groups), col.reshape(groups, k // groups, m), out=out3)
    return y.reshape(o, m)  # (G, Og, Kg) @ (G, Kg, M) -> (G, Og, M)


def _gemm_wt_dy(w, dy2, groups, out=None):
    """dcol = W^T @ dy per group: w (O, Cg, kh, kw), dy2 (O, M) -> (C*kh*kw, M) (into ``out``)."""
    xp = get_array_module(dy2)
    o = w.shape[0]
    kg = w.size // o  # Cg*kh*kw
    m = dy2.shape[1]
    if groups == 1:
        return xp.matmul(w.reshape(o, kg).T, dy2, out=out)  # (K, O) @ (O, M)
    out3 = None if out is None else out.reshape(groups, kg, m)
    if o == groups:  # depthwise (one filter per group): an outer product, much faster than a K=1 matmul
        dcol = xp.multiply(w.reshape(groups, kg, 1), dy2.reshape(groups, 1, m), out=out3)  # (G, Kg, M)
    else:
        wg = w.reshape(groups, o // groups, kg).transpose(0, 2, 1)  # (G, Kg, Og)
        dcol = xp.matmul(wg, dy2.reshape(groups, o // groups, m), out=out3)  # (G, Kg, M)
    return dcol.reshape(groups * kg, m)


def _gemm_dy_colt(dy2, col, groups, acc=None):
    """dW^T (+)= col @ dy^T per group, one GEMM: dy2 (O, M), col (K, M) -> (G, K/G, O/G) (added into ``acc``).

    The transposed product is the fast one: with O = 16-32 filters, OpenBLAS runs ``col @ dy^T`` (a tall
    K x O result) 1.6-2.5x faster than ``dy @ col^T``. :func:`_dw_from_acc` turns the sum into dW.
    """
    xp = get_array_module(dy2)
    o, m = dy2.shape
    k = col.shape[0]
    part = xp.matmul(col.reshape(groups, k // groups, m),
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
    xp = get_array_module(col)
    o = w.shape[0]
    n, k, l = col.shape
    if groups == 1:
        return xp.matmul(w.reshape(o, k), col, out=out)  # (O, K) @ (N, K, L) -> (N, O, L)
    wg = w.reshape(groups, o // groups, k // groups)  # (G, Og, Kg)
    out4 = None if out is None else out.reshape(n, groups, o // groups, l)
    y = xp.matmul(wg, col.reshape(n, groups, k // groups, l), out=out4)  # (N, G, Og, L)
    return y.reshape(n, o, l)


def _matmul_wt_dy(w, dy, groups, out=None):
    """dcol = W^T @ dy per group: w (O, Cg, kh, kw), dy (N, O, L) -> (N, C*kh*kw, L) (into ``out``)."""
    xp = get_array_module(dy)
    o = w.shape[0]
    kg = w.size // o  # Cg*kh*kw
    n, _, l = dy.shape
    if groups == 1:
        return xp.matmul(w.reshape(o, kg).T, dy, out=out)  # (K, O) @ (N, O, L) -> (N, K, L)
    out4 = None if out is None else out.reshape(n, groups, kg, l)
    if o == groups:  # depthwise
        dcol = xp.multiply(w.reshape(groups, kg, 1), dy.reshape(n, groups, 1, l), out=out4)  # (N, G, Kg, L)
        return dcol.reshape(n, groups * kg, l)
    wg = w.reshape(groups, o // groups, kg).transpose(0, 2, 1)  # (G, Kg, Og)
    dcol = xp.matmul(wg, dy.reshape(n, groups, o // groups, l), out=out4)  # (N, G, Kg, L)
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
    return xp.matmul(dyg, colg.transpose(0, 2, 1))  # one GEMM over the batch: (G, Og, Kg)


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


def _blocks(n, bytes_per_sample, xp=np):
    """Batch ranges whose patch matrix is about min(COL_BLOCK_BYTES, COL_CHUNK_BYTES): ``(size, [(s, e), ...])``.

    On a GPU (no CPU cache to fit, and each block costs kernel launches) the blocks are COL_CHUNK_BYTES.
    """
    limit = min(COL_BLOCK_BYTES, COL_CHUNK_BYTES) if xp is np else COL_CHUNK_BYTES
    size = max(1, min(n, limit // max(int(bytes_per_sample), 1)))
    return size, [(s, min(s + size, n)) for s in range(0, n, size)]


# ----------------------------------------------------------------------------- conv2d
def _direct_ok(x, w, b, g: _Geom, groups):
    """True when the compiled direct kernel takes this convolution: float32 NumPy arrays, stride 1, one
    group, a kernel larger than 1x1 (1x1 is a plain matmul already)."""
    return (g.sh == g.sw == 1 and groups == 1 and g.kh * g.kw > 1
            and accel.direct_enabled_for(x, w, *(() if b is None else (b,))))


#: False keeps strided convolutions on im2col + GEMM (to compare with the C kernels)
DIRECT_STRIDED = True


def _direct_strided_ok(x, w, b, g: _Geom, groups, padding_mode):
    """True when a strided convolution runs in C (``accel.direct.conv2d_strided``: the filter-vectorized kernels
    at strided positions, or a sum of stride-1 phases): float32, zero padding, no dilation, one group, every
    phase holding taps (kernel >= stride) and at least 8 input channels (dx is a convolution with C filters, in
    blocks of 8). Measured with 3 input channels (a first layer) it was 2x slower on 32x32 maps; ResNet-18's
    7x7/2 stem was faster (forward 20-34 -> 14 ms at batch 8) but is left on the GEMM path with the rest."""
    return (DIRECT_STRIDED and DIRECT_BACKWARD and (g.sh > 1 or g.sw > 1) and g.dh == g.dw == 1 and groups == 1
            and g.kh >= g.sh and g.kw >= g.sw and padding_mode == "zeros" and x.shape[1] >= accel.direct.FILTER_BLOCK
            and accel.direct_enabled_for(x, w, *(() if b is None else (b,))))


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
                   save_cache=None, relu=False):
    """Cross-correlation of ``x`` with ``w`` (what PyTorch and Keras call convolution).

    Args:
        x: input (N, C, H, W).
        w: weight (O, C/groups, KH, KW) (PyTorch layout).
        b: optional bias (O,).
        stride, dilation: int or pair.
        padding: int, pair, ((top, bottom), (left, right)), "valid" or "same" (Keras: OH = ceil(H/S)).
        groups: split channels into independent groups (groups = C: depthwise).
        padding_mode: "zeros", "reflect", "replicate" or "circular".
        save_cache: keep what backward needs; default: ``is_grad_enabled()`` (False under ``no_grad()``).
        relu: return max(y, 0) (a ReLU fused into the convolution: one pass fewer over y, and in the direct
            kernel none at all); :func:`conv2d_backward` then takes the gradient of that output.

    The GEMMs run over batch blocks of about ``COL_BLOCK_BYTES`` of patches; when the patches of the whole
    batch fit ``COL_CHUNK_BYTES`` they are cached for backward (``cache["col"]``: (C*kh*kw, N, OH, OW)),
    otherwise the (padded) input is cached and backward rebuilds the patches block by block.

    Returns: ``(y, cache)``; cache is None when not saved.
    Shape: y is (N, O, OH, OW), OH = floor((H + top + bottom - D*(KH-1) - 1) / S) + 1.
    Example: ``y, cache = conv2d_forward(x, w, b, stride=2, padding="same")``.
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d: expected x (N, C, H, W) and w (O, C/groups, KH, KW), got shapes "
                         f"{tuple(x.shape)} and {tuple(w.shape)}")
    if padding_mode not in PAD_MODES:
        raise ValueError(f"conv2d: unknown padding_mode {padding_mode!r}; choose one of {', '.join(PAD_MODES)}")
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if groups < 1 or c % groups or o % groups or c // groups != cg:
        raise ValueError(f"conv2d: input channels ({c}) and filters ({o}) must be divisible by groups ({groups}) "
                         f"with weight shape (O, C/groups, KH, KW); got weight shape {tuple(w.shape)}")
    (oh, ow), pads = conv2d_output_shape(x.shape, (kh, kw), stride, padding, dilation)
    sh, sw = _pair(stride, "stride", "conv2d")
    dh, dw = _pair(dilation, "dilation", "conv2d")
    g = _Geom(kh, kw, sh, sw, dh, dw, oh, ow)
    save = is_grad_enabled() if save_cache is None else bool(save_cache)
    xp = get_array_module(x)

    col = xpad = None
    k = c * kh * kw
    # compiled direct convolution (convnp.accel.direct); with few patch rows (K < O, a first layer) only when it
    # has several threads: on one, per-sample GEMMs (below) were faster
    if _direct_ok(x, w, b, g, groups) and (k >= o or accel.direct.num_threads() > 1):
        slack = accel.direct.slack((kh, kw), (dh, dw), wd + sum(pads[1]))
        if padding_mode == "zeros" and x.flags.c_contiguous:  # each thread pads its piece, then convolves it
            xpad = _wide_buffer(x.shape, pads, x.dtype, slack)  # (N, C, Hp+1, Wp), zeros after it
            y = accel.direct.conv2d(xpad, w, b, (dh, dw), (oh, ow), relu, pad_from=(x, pads[0][0], pads[1][0]))
        else:
            xpad = _pad_wide(x, pads, padding_mode, slack)
            y = accel.direct.conv2d(xpad, w, b, (dh, dw), (oh, ow), relu)
        cache = None
        if save:
            cache = dict(col=None, col_gemm=None, xpad=xpad, w=w, has_bias=b is not None, geom=g, groups=groups,
                         pads=pads, padding_mode=padding_mode, x_shape=x.shape, padded_shape=xpad.shape,
                         wide=True, direct=True,  # backward: _direct_backward (or im2col + GEMM on xpad)
                         relu_out=y if relu else None)
        return y, cache
    if _direct_strided_ok(x, w, b, g, groups, padding_mode):
        y, strided = accel.direct.conv2d_strided(x, w, b, (sh, sw), pads, (oh, ow), relu)
        cache = None
        if save:
            cache = dict(col_gemm=None, strided=strided, w=w, has_bias=b is not None, geom=g, groups=groups, pads=pads,
                         padding_mode=padding_mode, x_shape=x.shape, relu_out=y if relu else None)
        return y, cache
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
        wide = xp is np and sh == sw == 1
        xpad = _pad_wide(x, pads, padding_mode) if wide else pad2d(x, pads, padding_mode)  # (N, C, Hp(+1), Wp)
        padded_shape = xpad.shape
        im2col_fn = _im2col_wide if wide else _im2col_t
        lg = oh * (xpad.shape[3] if wide else ow)  # GEMM columns per sample
        per_sample = k * lg * x.dtype.itemsize
        size, blocks = _blocks(n, per_sample, xp)
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
        cache = dict(col=col, col_gemm=col_gemm, xpad=None if col is not None else xpad, w=w,
                     has_bias=b is not None, geom=g, groups=groups, pads=pads, padding_mode=padding_mode,
                     x_shape=x.shape, padded_shape=padded_shape, wide=wide, relu_out=y if relu else None)
    return y, cache


#: False sends the backward of direct-kernel convolutions back to im2col + GEMM (to compare the two)
DIRECT_BACKWARD = True


def _direct_dx_pads(cache):
    """Padding of dy that turns dx into a stride-1 convolution with the flipped filters, or None when the
    forward's padding was not zeros or wider than the kernel's reach, or the input has fewer channels than
    the kernel's block of 8 filters (mostly wasted then): dx takes the GEMM path."""
    g, ((pt, pb), (pl, pr)) = cache["geom"], cache["pads"]
    reach_h, reach_w = (g.kh - 1) * g.dh, (g.kw - 1) * g.dw
    if (cache["padding_mode"] != "zeros" or max(pt, pb) > reach_h or max(pl, pr) > reach_w
            or cache["x_shape"][1] < accel.direct.FILTER_BLOCK):
        return None
    return (reach_h - pt, reach_h - pb), (reach_w - pl, reach_w - pr)


def _direct_backward(dy, cache, dx_pads):
    """Backward of a convolution whose forward ran in the direct kernel (:mod:`convnp.accel.direct`); dx too
    when ``dx_pads`` (:func:`_direct_dx_pads`) is given.

    dw[o, c, i, j] = sum dy[n, o, r, q] * xpad[n, c, r + i*dh, q + j*dw] and db (``direct.conv2d_backward``);
    dx = dy zero-padded by (k-1)*d - pad on each side, correlated with the filters flipped and transposed to
    (C, O, kh, kw): the forward kernel run backwards, no patch matrix and no col2im.
    """
    w, g, xpad = cache["w"], cache["geom"], cache["xpad"]
    dy = np.ascontiguousarray(dy, dtype=np.float32)
    mask = cache.get("relu_out")  # a fused ReLU: dy counts where its output is > 0 (applied in the copies)
    dx_from = None
    if dx_pads is not None:
        slack = accel.direct.slack((g.kh, g.kw), (g.dh, g.dw), g.ow + sum(dx_pads[1]))
        dypad = _wide_buffer(dy.shape, dx_pads, np.float32, slack)  # (N, O, OH + pads + 1, OW + pads)
        w_flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, O, kh, kw)
        dx_from = (dypad, dx_pads[0][0], dx_pads[1][0], w_flipped, tuple(cache["x_shape"][2:]))
    dw, db, dx = accel.direct.conv2d_backward(xpad, dy, (g.kh, g.kw), (g.dh, g.dw), mask, dx_from)
    return dx, dw.astype(w.dtype, copy=False), (db if cache["has_bias"] else None)


def conv2d_backward(dy, cache, need_dx=True):
    """Gradients of :func:`conv2d_forward`: ``(dx, dw, db)``.

    Args:
        dy: upstream gradient (N, O, OH, OW).
        cache: the cache returned by the forward.
        need_dx: False skips the input gradient (the first layer of a network needs none).

    Returns: dx (N, C, H, W) or None, dw (O, C/groups, KH, KW), db (O,) or None without bias.
    """
    if cache is None:
        raise RuntimeError("conv2d_backward: no cache (the forward ran with save_cache=False or under no_grad())")
    w, g, groups, col = cache["w"], cache["geom"], cache["groups"], cache["col_gemm"]
    if cache.get("strided") is not None:  # a strided convolution in C (accel.direct.conv2d_strided)
        dw, db, dx = accel.direct.conv2d_strided_backward(cache["strided"], dy, w, (g.sh, g.sw), cache["pads"],
                                                          cache["x_shape"], cache["relu_out"], need_dx)
        return dx, dw.astype(w.dtype, copy=False), (db if cache["has_bias"] else None)
    if cache.get("direct") and DIRECT_BACKWARD:
        dx_pads = _direct_dx_pads(cache) if need_dx else None
        if not need_dx or dx_pads is not None:
            return _direct_backward(dy, cache, dx_pads)
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
    size, blocks = _blocks(n, k * lg * w.dtype.itemsize, xp)
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


# ----------------------------------------------------------------------------- transposed conv
def conv_transpose2d_output_shape(input_shape, kernel_size, stride=1, padding=0, output_padding=0, dilation=1,
                                  where="conv_transpose2d"):
    """((OH, OW), pads, (oph, opw)): OH = (H-1)*S - top - bottom + D*(KH-1) + output_padding + 1."""
    h, w = input_shape[-2:]
    kh, kw = _pair(kernel_size, "kernel_size", where)
    sh, sw = _pair(stride, "stride", where)
    dh, dw = _pair(dilation, "dilation", where)
    if isinstance(padding, str) and padding.lower() == "valid":
        padding = 0
    pads = normalize_pads(padding, where)
    if isinstance(output_padding, (int, np.integer)) and not isinstance(output_padding, bool):
        op = (int(output_padding),) * 2
    elif isinstance(output_padding, (tuple, list)) and len(output_padding) == 2:
        op = tuple(int(v) for v in output_padding)
    else:
        raise ValueError(f"{where}: output_padding must be an int or a pair, got {output_padding!r}")
    for name, p, s, d in (("height", op[0], sh, dh), ("width", op[1], sw, dw)):
        if p < 0 or (p >= s and p >= d):
            raise ValueError(f"{where}: output_padding ({p}) along {name} must be non-negative and smaller than "
                             f"the stride ({s}) or the dilation ({d})")
    oh = (h - 1) * sh - sum(pads[0]) + dh * (kh - 1) + op[0] + 1
    ow = (w - 1) * sw - sum(pads[1]) + dw * (kw - 1) + op[1] + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"{where}: output size {oh}x{ow} is not positive (input {h}x{w}, kernel {kh}x{kw}, "
                         f"stride {(sh, sw)}, padding {pads})")
    return (oh, ow), pads, op


def conv_transpose2d_forward(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1,
                             save_cache=None):
    """Transposed convolution (the input-gradient of conv2d), as PyTorch ``conv_transpose2d``.

    Args:
        x: input (N, Cin, H, W).
        w: weight (Cin, Cout/groups, KH, KW) (PyTorch layout).
        b: optional bias (Cout,).
        stride, dilation: int or pair. padding: int, pair or ((top, bottom), (left, right)): rows/columns
            cropped from the full output. output_padding: extra rows/columns at the bottom/right
            (must be smaller than the stride or the dilation).
        groups: channel groups.
        save_cache: as in :func:`conv2d_forward`.

    Returns: ``(y, cache)``.
    Shape: y is (N, Cout, OH, OW), OH = (H-1)*S - top - bottom + D*(KH-1) + output_padding + 1.
    Example: ``y, _ = conv_transpose2d_forward(x, w, stride=2, padding=1, output_padding=1)`` doubles H, W.
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv_transpose2d: expected x (N, Cin, H, W) and w (Cin, Cout/groups, KH, KW), got "
                         f"shapes {tuple(x.shape)} and {tuple(w.shape)}")
    n, cin, h, wd = x.shape
    if w.shape[0] != cin or groups < 1 or cin % groups:
        raise ValueError(f"conv_transpose2d: weight shape {tuple(w.shape)} does not fit {cin} input channels "
                         f"and {groups} groups (expected (Cin, Cout/groups, KH, KW), Cin divisible by groups)")
    cout = w.shape[1] * groups
    kh, kw = w.shape[2:]
    (oh, ow), pads, op = conv_transpose2d_output_shape(x.shape, (kh, kw), stride, padding, output_padding,
                                                       dilation)
    sh, sw = _pair(stride, "stride", "conv_transpose2d")
    dh, dw = _pair(dilation, "dilation", "conv_transpose2d")
    g = _Geom(kh, kw, sh, sw, dh, dw, h, wd)  # the conv that maps the (padded) output back to x
    xp = get_array_module(x)
    padded_shape = (n, cout, oh + sum(pads[0]), ow + sum(pads[1]))
    k = cout * kh * kw
    size, chunks = _blocks(n, k * h * wd * x.dtype.itemsize, xp)
    buf = xp.empty(size * k * h * wd, dtype=np.result_type(x.dtype, w.dtype))
    ypad = xp.zeros(padded_shape, dtype=buf.dtype)  # (N, Cout, Hp, Wp); output_padding rows stay zero
    for s, e in chunks:
        x2 = _nchw_to_gemm(x[s:e], wd)  # (Cin, n*H*W): plays conv2d's dy
        dcol = _gemm_wt_dy(w, x2, groups, out=buf[:k * x2.shape[1]].reshape(k, x2.shape[1]))  # (K, n*H*W)
        _col2im_t(dcol, (e - s,) + padded_shape[1:], g, out=ypad[s:e])
    (t, _), (l, _) = pads
    save = is_grad_enabled() if save_cache is None else bool(save_cache)
    y = ypad[:, :, t:t + oh, l:l + ow]
    if y.shape != ypad.shape:
        y = y.copy()
    if b is not None:
        y += b.reshape(1, cout, 1, 1)
    cache = dict(x=x, w=w, has_bias=b is not None, geom=g, groups=groups, pads=pads) if save else None
    return y, cache


def conv_transpose2d_backward(dy, cache, need_dx=True):
    """Gradients of :func:`conv_transpose2d_forward`: ``(dx, dw, db)`` (dx None when need_dx=False)."""
    if cache is None:
        raise RuntimeError("conv_transpose2d_backward: no cache (the forward ran with save_cache=False or "
                           "under no_grad())")
    x, w, g, groups = cache["x"], cache["w"], cache["geom"], cache["groups"]
    xp = get_array_module(dy)
    n, cin = x.shape[:2]
    db = dy.sum(axis=(0, 2, 3)) if cache["has_bias"] else None
    dypad = pad2d(dy, cache["pads"], "zeros")  # (N, Cout, Hp - op, Wp - op): the rows im2col reads
    k = dy.shape[1] * g.kh * g.kw
    size, chunks = _blocks(n, k * g.oh * g.ow * dy.dtype.itemsize, xp)
    buf = xp.empty(size * k * g.oh * g.ow, dtype=dy.dtype)
    dx = xp.empty(x.shape, dtype=np.result_type(dy.dtype, w.dtype)) if need_dx else None  # (N, Cin, H, W)
    dw = None
    for s, e in chunks:
        col = _im2col_t(dypad[s:e], g, buf)  # (Cout*kh*kw, n*H*W)
        x2 = _nchw_to_gemm(x[s:e], g.ow)  # (Cin, n*H*W)
        dw = _gemm_dy_colt(x2, col, groups, dw)  # (G, Cout/G*kh*kw, Cin/G)
        if need_dx:
            _gemm_to_nchw(_gemm_w_col(w, col, groups), e - s, g.oh, g.ow, out=dx[s:e])  # (n, Cin, H, W)
    return dx, _dw_from_acc(dw, w.shape), db


# ----------------------------------------------------------------------------- textbook pair
def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """The textbook im2col: (N, C, H, W) -> (N*OH*OW, C*FH*FW), rows (n, oh, ow), columns (c, fh, fw).

    OH = (H + 2*pad - FH) // stride + 1. Example: a (1, 3, 7, 7) input and a 5x5 filter give (9, 75).
    """
    n, c, h, w = input_data.shape
    (oh, ow), pads = conv2d_output_shape(input_data.shape, (filter_h, filter_w), stride, pad, 1, "im2col")
    g = _Geom(filter_h, filter_w, stride, stride, 1, 1, oh, ow)
    col = _im2col(pad2d(input_data, pads), g)  # (N, C*FH*FW, OH*OW)
    return col.transpose(0, 2, 1).reshape(n * oh * ow, -1)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The textbook col2im: (N*OH*OW, C*FH*FW) -> (N, C, H, W), summing where windows overlap."""
    n, c, h, w = input_shape
    (oh, ow), pads = conv2d_output_shape(input_shape, (filter_h, filter_w), stride, pad, 1, "col2im")
    g = _Geom(filter_h, filter_w, stride, stride, 1, 1, oh, ow)
    col3 = col.reshape(n, oh * ow, c * filter_h * filter_w).transpose(0, 2, 1)  # (N, C*FH*FW, OH*OW)
    img = _col2im(col3, (n, c, h + 2 * pad, w + 2 * pad), g)
    return img[:, :, pad:pad + h, pad:pad + w]
