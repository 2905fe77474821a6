"""2-D pooling on (N, C, H, W) arrays as forward/backward pairs: max, average, global, adaptive.

Windows are strided views of the (padded) input, never copies: ``_windows`` builds the view
(N, C, OH, OW, kh, kw) with ``as_strided`` (a plain reshape to (N, C, OH, kh, OW, kw) when the windows
do not overlap, the fast path), and the ops reduce over it one window offset (i, j) at a time, so the
work is kh*kw passes over an output-sized array whatever the stride.

Padding (``padding`` argument of the pooling ops):

* ``"valid"`` or ``0``: no padding; OH = floor((H - kh) / sh) + 1 (rows that do not fill a window are
  dropped, as in PyTorch and Keras).
* int or pair ``(ph, pw)``: PyTorch's symmetric padding, at most half the pool size;
  OH = floor((H + 2*ph - kh) / sh) + 1. Max pooling pads with -inf (padded cells never win); average
  pooling pads with zeros that count in the average (PyTorch's ``count_include_pad=True``).
* ``"same"``: Keras. OH = ceil(H / sh), total padding max((OH-1)*sh + kh - H, 0) split top/bottom with the
  odd row at the bottom (right). Padded cells never win for max, and average pooling divides by the
  number of real cells in each window.

PyTorch's other options (int/pair padding only):

* ``ceil_mode=True``: OH = ceil((H + 2*ph - d*(kh-1) - 1) / sh) + 1, less one when the last window would
  start in the bottom padding ((OH-1)*sh >= H + ph), torch's rule. The windows that run past the padded
  input get extra bottom/right padding that never wins (max) and never counts (average).
* ``dilation`` (max pooling): taps d apart, effective pool d*(k-1)+1.
* ``count_include_pad=False`` (average): divide by the real cells only; ``divisor_override``: divide by it.
* ``return_indices``: :func:`max_pool2d_indices` gives torch's flat indices h*W + w of each maximum in its
  (N, C) plane, which :func:`max_unpool2d_forward` scatters back.
"""
from __future__ import annotations

import numpy as np

from .. import accel
from ..backend import get_array_module
from ..utils.args import pair
from ..cuda import ops as cuda_ops

__all__ = ["pool_output_shape", "max_pool2d_forward", "max_pool2d_backward", "max_pool2d_argmax",
           "max_pool2d_indices", "max_unpool2d_forward", "max_unpool2d_backward",
           "avg_pool2d_forward", "avg_pool2d_backward", "global_avg_pool2d_forward",
           "global_avg_pool2d_backward", "global_max_pool2d_forward", "global_max_pool2d_backward",
           "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward", "adaptive_pool_ranges"]


# ----------------------------------------------------------------------------- geometry
def _check_4d(x, where):
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"{where}: expected a 4-D input (N, C, H, W), got shape {tuple(getattr(x, 'shape', ()))}")


def pool_output_shape(input_hw, pool_size, strides=None, padding=0, where="pool2d", ceil_mode=False, dilation=1):
    """Geometry of a pooling window: ``((OH, OW), ((top, bottom), (left, right)), (kh, kw), (sh, sw), same)``.

    Args:
        input_hw: (H, W) of the input.
        pool_size: int or (kh, kw).
        strides: int, (sh, sw) or None (= pool_size).
        padding: "valid", "same", an int or a pair (ph, pw) (see the module docstring).
        ceil_mode: torch's ceil_mode (extra bottom/right padding is added to ``pads`` for the last windows).
        dilation: int or pair; the window spans d*(k-1)+1 cells.
    Raises ValueError (prefixed with ``where``) for a zero stride, negative padding, padding larger than
    half the pool, or a pool larger than the padded input.
    Example: ``pool_output_shape((128, 128), 5, padding="same")[0] == (26, 26)``.
    """
    kh, kw = pair(pool_size, "pool_size", where)
    sh, sw = pair(pool_size if strides is None else strides, "strides", where)
    dh, dw = pair(dilation, "dilation", where)
    ekh, ekw = dh * (kh - 1) + 1, dw * (kw - 1) + 1  # effective (dilated) window
    h, w = int(input_hw[0]), int(input_hw[1])
    if ceil_mode and isinstance(padding, str) and padding.lower() == "same":
        raise ValueError(f"{where}: ceil_mode=True needs an int or pair padding (PyTorch's), not 'same'")
    same = False
    if isinstance(padding, str):
        key = padding.lower()
        if key == "valid":
            pads = ((0, 0), (0, 0))
        elif key == "same":
            same = True
            pads = []
            for size, k, s in ((h, ekh, sh), (w, ekw, sw)):
                out = -(-size // s)  # ceil(size / s)
                total = max((out - 1) * s + k - size, 0)
                pads.append((total // 2, total - total // 2))
            pads = tuple(pads)
        else:
            raise ValueError(f"{where}: unknown padding {padding!r}; expected 'valid', 'same', an int or a pair (ph, pw)")
    else:
        ph, pw = pair(padding, "padding", where, minimum=0)
        if 2 * ph > ekh or 2 * pw > ekw:
            raise ValueError(f"{where}: padding {(ph, pw)} must be at most half the pool size {(ekh, ekw)}")
        pads = ((ph, ph), (pw, pw))
    hp, wp = h + sum(pads[0]), w + sum(pads[1])
    if hp < ekh or wp < ekw:
        raise ValueError(f"{where}: pool {ekh}x{ekw} is larger than the padded input {hp}x{wp} "
                         f"(input {h}x{w}, padding {pads})")
    out = ((hp - ekh) // sh + 1, (wp - ekw) // sw + 1)
    if ceil_mode:
        out, extra = [], []
        for size, (before, after), k, s in ((h, pads[0], ekh, sh), (w, pads[1], ekw, sw)):
            o = -(-(size + before + after - k) // s) + 1
            if (o - 1) * s >= size + before:  # the last window would start in the padding: torch drops it
                o -= 1
            out.append(o)
            extra.append(max((o - 1) * s + k - (size + before + after), 0))
        out = tuple(out)
        pads = ((pads[0][0], pads[0][1] + extra[0]), (pads[1][0], pads[1][1] + extra[1]))
    return out, pads, (kh, kw), (sh, sw), same


def _pad(x, pads, value):
    (t, b), (l, r) = pads
    if t == b == l == r == 0:
        return x
    xp = get_array_module(x)
    out = xp.full((x.shape[0], x.shape[1], x.shape[2] + t + b, x.shape[3] + l + r), value, dtype=x.dtype)
    out[:, :, t:t + x.shape[2], l:l + x.shape[3]] = x
    return out


def _windows(xpad, out_hw, k, s, d=(1, 1)):
    """A strided view (N, C, OH, kh, OW, kw) of the pooling windows (no copy).

    Non-overlapping windows (stride == pool) are a reshape of the cropped input (the fast path); otherwise
    ``as_strided`` builds the view with strides (sN, sC, sH*sh, sH, sW*sw, sW).
    """
    n, c = xpad.shape[:2]
    (oh, ow), (kh, kw), (sh, sw), (dh, dw) = out_hw, k, s, d
    if (kh, kw) == (sh, sw) and d == (1, 1):
        return xpad[:, :, :oh * kh, :ow * kw].reshape(n, c, oh, kh, ow, kw)
    xp = get_array_module(xpad)
    if xp is np:
        from numpy.lib.stride_tricks import as_strided
    else:  # pragma: no cover - GPU only
        from cupy.lib.stride_tricks import as_strided
    sn, sc, s_h, s_w = xpad.strides
    return as_strided(xpad, (n, c, oh, kh, ow, kw), (sn, sc, s_h * sh, s_h * dh, s_w * sw, s_w * dw))


def _scatter_target(dxpad, out_hw, k, s, i, j, d=(1, 1)):
    """Writable view of the input-gradient cells that window offset (i, j) touches: (N, C, OH, OW)."""
    (oh, ow), (sh, sw) = out_hw, s
    i, j = i * d[0], j * d[1]
    return dxpad[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]


# ----------------------------------------------------------------------------- max pooling
def max_pool2d_forward(x, pool_size, strides=None, padding=0, ceil_mode=False, dilation=1):
    """Max pooling: y[n, c, i, j] = max of the window at (i*sh, j*sw) of the (-inf padded) input.

    Args:
        x: (N, C, H, W) float array.
        pool_size: int or (kh, kw); strides: int, pair or None (= pool_size);
        padding: "valid", "same", int or (ph, pw) (see the module docstring).
        ceil_mode, dilation: PyTorch's (see the module docstring).
    Returns:
        (y, cache); cache is what :func:`max_pool2d_backward` needs.
    Shape: (N, C, H, W) -> (N, C, OH, OW) with OH = floor((H + top + bottom - kh) / sh) + 1
        ("same": OH = ceil(H / sh)).
    Ties: the gradient goes to the FIRST maximum of each window in row-major (kh, kw) scan order only, as
    in PyTorch's CPU kernel (:func:`max_pool2d_argmax` gives that index).
    Example: ``y, cache = max_pool2d_forward(x, 2)`` halves H and W.
    """
    _check_4d(x, "max_pool2d")
    out_hw, pads, k, s, _ = pool_output_shape(x.shape[2:], pool_size, strides, padding, "max_pool2d",
                                              ceil_mode, dilation)
    d = pair(dilation, "dilation", "max_pool2d")
    kernels_fit = d == (1, 1) and x.size > 0  # dilated windows and empty batches take the loop below
    if kernels_fit and k in accel.POOL_WINDOWS and accel.enabled_for(x):  # CPU: the compiled max + argmax
        y, flat_argmax = accel.kernels.max_pool2d(x, pads, out_hw, k, s)  # (reads the padding, no copy)
        cache = _KernelArgmaxCache((x, y, x.shape, out_hw, pads, k, s))
        cache.unpadded = True
        cache.flat_argmax = flat_argmax  # (N, C, OH, OW) int32: row * Wp + col in the padded plane
        return y, cache
    xpad = _pad(x, pads, -np.inf)
    if kernels_fit and get_array_module(x) is not np:  # GPU: convnp.cuda's one-pass max+argmax kernel
        found = cuda_ops.max_pool2d_forward(xpad, out_hw, k, s)
        if found is not None:
            cache = _KernelArgmaxCache((xpad, found[0], x.shape, out_hw, pads, k, s))
            cache.argmax = found[1]  # (N, C, OH, OW) int32, read by max_pool2d_backward
            return found[0], cache
    win = _windows(xpad, out_hw, k, s, d)  # (N, C, OH, kh, OW, kw) view
    # an elementwise maximum over the kh*kw window offsets (strided slices) is ~20x faster than a
    # reduction over the window axes of the view, for overlapping and disjoint windows alike
    y = win[:, :, :, 0, :, 0].copy()  # (N, C, OH, OW)
    xp = get_array_module(x)
    for i in range(k[0]):
        for j in range(k[1]):
            if i or j:
                xp.maximum(y, win[:, :, :, i, :, j], out=y)
    cache = _KernelArgmaxCache((xpad, y, x.shape, out_hw, pads, k, s))
    cache.dilation = d
    return y, cache


class _KernelArgmaxCache(tuple):
    """The max-pool cache tuple (xpad, y, x_shape, out_hw, pads, k, s) plus the argmax a kernel found (unpacks
    like the plain tuple): ``argmax`` (GPU: window index) or ``flat_argmax`` (CPU accel: index in the padded
    plane). With ``unpadded`` the first item is the input itself (the CPU kernel reads the padding, so none
    was made): :func:`_padded_input` pads it when a NumPy path needs the windows."""
    argmax = None
    flat_argmax = None
    dilation = (1, 1)
    unpadded = False


def _padded_input(cache):
    """The -inf padded input of a max-pool forward: (N, C, top + H + bottom, left + W + right)."""
    return _pad(cache[0], cache[4], -np.inf) if getattr(cache, "unpadded", False) else cache[0]


def _padded_shape(cache):
    (n, c, h, w), ((t, b), (l, r)) = cache[2], cache[4]
    return n, c, t + h + b, l + w + r


def max_pool2d_argmax(cache):
    """Flat index i*kw + j (row-major in the window) of the first maximum of every window: (N, C, OH, OW) int64."""
    _, y, _, out_hw, _, k, s = cache
    xp = get_array_module(y)
    win = _windows(_padded_input(cache), out_hw, k, s, getattr(cache, "dilation", (1, 1)))
    idx = xp.full(y.shape, -1, dtype=xp.int64)
    for i in range(k[0]):
        for j in range(k[1]):
            hit = (win[:, :, :, i, :, j] == y) & (idx < 0)
            idx[hit] = i * k[1] + j
    return idx


def max_pool2d_backward(dy, cache):
    """dx of :func:`max_pool2d_forward`: each dy goes to the first maximum of its window; overlapping
    windows (stride < pool) add their contributions. Shape: (N, C, OH, OW) -> (N, C, H, W)."""
    _, y, x_shape, out_hw, pads, k, s = cache
    flat_argmax = getattr(cache, "flat_argmax", None)
    if flat_argmax is not None and accel.enabled_for(dy, cache[0]):  # CPU: the compiled scatter over the argmax
        dxpad = accel.kernels.max_pool2d_backward(dy, flat_argmax, _padded_shape(cache))
        (t, _), (l, _) = pads
        return dxpad[:, :, t:t + x_shape[2], l:l + x_shape[3]]
    if getattr(cache, "argmax", None) is not None:  # GPU: gather kernel over the forward's argmax
        dx = cuda_ops.max_pool2d_backward(dy, cache.argmax, x_shape, pads, k, s)
        if dx is not None:
            return dx
    xp = get_array_module(dy)
    d = getattr(cache, "dilation", (1, 1))
    xpad = _padded_input(cache)
    win = _windows(xpad, out_hw, k, s, d)
    dxpad = xp.zeros(xpad.shape, dtype=dy.dtype)
    free = xp.ones(y.shape, dtype=bool)  # window has not given its gradient away yet (first max only)
    hit = xp.empty(y.shape, dtype=bool)
    disjoint = k == s and d == (1, 1)
    part = None if disjoint else xp.empty(y.shape, dtype=dy.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            xp.equal(win[:, :, :, i, :, j], y, out=hit)
            hit &= free
            free ^= hit  # hit is a subset of free: xor clears exactly the windows served now
            target = _scatter_target(dxpad, out_hw, k, s, i, j, d)  # (N, C, OH, OW) strided view
            if disjoint:  # disjoint windows: every cell is written once
                xp.multiply(hit, dy, out=target)
            else:  # overlapping windows add up
                xp.multiply(hit, dy, out=part)
                target += part
    (t, _), (l, _) = pads
    return dxpad[:, :, t:t + x_shape[2], l:l + x_shape[3]]


def max_pool2d_indices(cache):
    """PyTorch's ``return_indices``: flat index row * W + col of each maximum in its (unpadded) (N, C) plane,
    (N, C, OH, OW) int64, with row = oh*sh + (a // kw)*dh - top for window index a, col likewise."""
    _, y, x_shape, out_hw, pads, k, s = cache
    d = getattr(cache, "dilation", (1, 1))
    xp = get_array_module(y)
    a = max_pool2d_argmax(cache)                                     # (N, C, OH, OW) index in the window
    rows = xp.arange(out_hw[0])[:, None] * s[0] + (a // k[1]) * d[0] - pads[0][0]
    cols = xp.arange(out_hw[1])[None, :] * s[1] + (a % k[1]) * d[1] - pads[1][0]
    return (rows * x_shape[3] + cols).astype(xp.int64)


def max_unpool2d_forward(x, indices, output_hw):
    """Inverse of max pooling (PyTorch's ``max_unpool2d``): y[n, c].flat[indices[n, c, i, j]] = x[n, c, i, j],
    zeros elsewhere. Shape: (N, C, H, W) with indices of the same shape -> (N, C, *output_hw).
    Returns (y, cache)."""
    _check_4d(x, "max_unpool2d")
    if tuple(indices.shape) != tuple(x.shape):
        raise ValueError(f"max_unpool2d: indices shape {tuple(indices.shape)} differs from the input shape "
                         f"{tuple(x.shape)}")
    xp = get_array_module(x)
    n, c = x.shape[:2]
    oh, ow = int(output_hw[0]), int(output_hw[1])
    flat = indices.reshape(n, c, -1)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= oh * ow):
        raise ValueError(f"max_unpool2d: indices must lie in [0, {oh * ow}) for an output of {oh}x{ow}, "
                         f"got {int(flat.min())}..{int(flat.max())}")
    y = xp.zeros((n, c, oh * ow), dtype=x.dtype)
    xp.put_along_axis(y, flat, x.reshape(n, c, -1), axis=2)
    return y.reshape(n, c, oh, ow), (flat, x.shape)


def max_unpool2d_backward(dy, cache):
    """dx = dy gathered at the indices. Shape: (N, C, OH, OW) -> (N, C, H, W)."""
    flat, x_shape = cache
    xp = get_array_module(dy)
    return xp.take_along_axis(dy.reshape(dy.shape[0], dy.shape[1], -1), flat, axis=2).reshape(x_shape)


# ----------------------------------------------------------------------------- average pooling
def _real_cell_counts(xp, size, out, k, s, before, dtype, pad_end=None):
    """How many real (non-padded) cells each window covers along one axis: (out,). With ``pad_end`` (torch's
    count_include_pad), the cells up to ``size + pad_end`` count too (the user's padding, not ceil_mode's)."""
    start = np.arange(out) * s - before
    if pad_end is not None:
        counts = np.minimum(start + k, size + pad_end) - start
    else:
        counts = np.minimum(start + k, size) - np.maximum(start, 0)
    return xp.asarray(counts.astype(dtype))


def avg_pool2d_forward(x, pool_size, strides=None, padding=0, ceil_mode=False, count_include_pad=True,
                       divisor_override=None):
    """Average pooling: y = mean of each window.

    With an int/pair padding the padded zeros count in the mean (divisor kh*kw, PyTorch's
    ``count_include_pad=True``); with "same" only the real cells are averaged (Keras).
    ``count_include_pad=False`` divides by the real cells; ``divisor_override`` (a positive int) replaces
    the divisor; ``ceil_mode`` as PyTorch (the cells past the user's padding never count).

    Args: as :func:`max_pool2d_forward`. Returns (y, cache).
    Shape: (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + top + bottom - kh) / sh) + 1.
    Example: ``y, cache = avg_pool2d_forward(x, 3, 2, padding=1)``.
    """
    _check_4d(x, "avg_pool2d")
    out_hw, pads, k, s, same = pool_output_shape(x.shape[2:], pool_size, strides, padding, "avg_pool2d", ceil_mode)
    if divisor_override is not None and (isinstance(divisor_override, bool) or int(divisor_override) != divisor_override
                                         or divisor_override < 1):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive integer, got {divisor_override!r}")
    xp = get_array_module(x)
    xpad = _pad(x, pads, 0)
    win = _windows(xpad, out_hw, k, s)
    if k == s:
        y = win.sum(axis=(3, 5))
    else:
        y = win[:, :, :, 0, :, 0].copy()
        for i in range(k[0]):
            for j in range(k[1]):
                if i or j:
                    y += win[:, :, :, i, :, j]
    if divisor_override is not None:
        divisor = x.dtype.type(divisor_override)
    elif same or not count_include_pad or ceil_mode:
        ends = (None, None) if same or not count_include_pad else (pads[0][0], pads[1][0])  # user's symmetric pad
        ch = _real_cell_counts(xp, x.shape[2], out_hw[0], k[0], s[0], pads[0][0], x.dtype, ends[0])
        cw = _real_cell_counts(xp, x.shape[3], out_hw[1], k[1], s[1], pads[1][0], x.dtype, ends[1])
        divisor = ch[:, None] * cw[None, :]  # (OH, OW)
    else:
        divisor = x.dtype.type(k[0] * k[1])
    y /= divisor
    return y, (x.shape, xpad.shape, out_hw, pads, k, s, divisor)


def avg_pool2d_backward(dy, cache):
    """dx of :func:`avg_pool2d_forward`: each cell of a window receives dy / divisor (summed over
    overlapping windows; padded cells are dropped). Shape: (N, C, OH, OW) -> (N, C, H, W)."""
    x_shape, pad_shape, out_hw, pads, k, s, divisor = cache
    xp = get_array_module(dy)
    g = dy / divisor  # (N, C, OH, OW)
    dxpad = xp.zeros(pad_shape, dtype=dy.dtype)
    if k == s:  # fast path: every window is a disjoint block
        n, c, (oh, ow), (kh, kw) = pad_shape[0], pad_shape[1], out_hw, k
        block = dxpad[:, :, :oh * kh, :ow * kw].reshape(n, c, oh, kh, ow, kw)
        block[...] = g[:, :, :, None, :, None]
    else:
        for i in range(k[0]):
            for j in range(k[1]):
                _scatter_target(dxpad, out_hw, k, s, i, j)[...] += g
    (t, _), (l, _) = pads
    return dxpad[:, :, t:t + x_shape[2], l:l + x_shape[3]]


# ----------------------------------------------------------------------------- global pooling
def global_avg_pool2d_forward(x, keepdims=False):
    """Mean over H and W. Shape: (N, C, H, W) -> (N, C), or (N, C, 1, 1) with keepdims. Returns (y, cache)."""
    _check_4d(x, "global_avg_pool2d")
    return x.mean(axis=(2, 3), keepdims=keepdims), (x.shape, keepdims)


def global_avg_pool2d_backward(dy, cache):
    """dx = dy / (H*W) broadcast over every cell. Shape: (N, C) or (N, C, 1, 1) -> (N, C, H, W)."""
    shape, _ = cache
    xp = get_array_module(dy)
    g = dy.reshape(shape[0], shape[1], 1, 1) / dy.dtype.type(shape[2] * shape[3])
    return xp.broadcast_to(g, shape).copy()


def global_max_pool2d_forward(x, keepdims=False):
    """Max over H and W. Shape: (N, C, H, W) -> (N, C), or (N, C, 1, 1) with keepdims. Returns (y, cache).
    The gradient goes to the first maximum in row-major order."""
    _check_4d(x, "global_max_pool2d")
    n, c, h, w = x.shape
    idx = x.reshape(n, c, h * w).argmax(axis=2)  # (N, C)
    y = x.max(axis=(2, 3), keepdims=keepdims)
    return y, (x.shape, idx)


def global_max_pool2d_backward(dy, cache):
    """dx: dy at the first maximum of each (n, c) map, zeros elsewhere. Shape -> (N, C, H, W)."""
    shape, idx = cache
    xp = get_array_module(dy)
    n, c, h, w = shape
    first = xp.arange(h * w) == idx[:, :, None]  # (N, C, H*W) one-hot of the first maximum
    return (first * dy.reshape(n, c, 1)).astype(dy.dtype, copy=False).reshape(shape)


# ----------------------------------------------------------------------------- adaptive average pooling
def adaptive_pool_ranges(size, out):
    """PyTorch's windows: [floor(i*size/out), ceil((i+1)*size/out)) for i in range(out)."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def _adaptive_matrix(xp, size, out, dtype):
    m = np.zeros((out, size), dtype=np.float64)
    for i, (a, b) in enumerate(adaptive_pool_ranges(size, out)):
        m[i, a:b] = 1.0 / (b - a)
    return xp.asarray(m.astype(dtype))


def adaptive_avg_pool2d_forward(x, output_size):
    """Average pooling to a fixed output size with PyTorch's windows (see :func:`adaptive_pool_ranges`).

    Computed as two small matrix products: y = Ph @ x @ Pw.T with Ph (OH, H), Pw (OW, W) holding
    1/window_length inside each window. ``output_size``: int or (OH, OW); None in the pair keeps that size.
    Shape: (N, C, H, W) -> (N, C, OH, OW). Example: ``adaptive_avg_pool2d_forward(x, (6, 6))`` (AlexNet).
    """
    _check_4d(x, "adaptive_avg_pool2d")
    h, w = x.shape[2:]
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        oh, ow = (h if output_size[0] is None else output_size[0]), (w if output_size[1] is None else output_size[1])
    else:
        oh = ow = output_size
    oh, ow = pair((oh, ow), "output_size", "adaptive_avg_pool2d")
    xp = get_array_module(x)
    ph, pw = _adaptive_matrix(xp, h, oh, x.dtype), _adaptive_matrix(xp, w, ow, x.dtype)
    y = ph @ x @ pw.T  # (N, C, OH, W) then (N, C, OH, OW)
    return y, (ph, pw)


def adaptive_avg_pool2d_backward(dy, cache):
    """dx = Ph.T @ dy @ Pw. Shape: (N, C, OH, OW) -> (N, C, H, W)."""
    ph, pw = cache
    return ph.T @ dy @ pw
