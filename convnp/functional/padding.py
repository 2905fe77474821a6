"""2-D padding of (N, C, H, W) arrays and its gradient: zeros, reflect, replicate, circular.

``pads`` is always ``((top, bottom), (left, right))``; :func:`normalize_pads` turns an int, a pair
``(ph, pw)`` or the nested form into it. The modes match ``torch.nn.functional.pad``:

==========  =====================================  ===========================
mode        padded row/col i (p = i - top) reads    example, row [a b c], pad 2
==========  =====================================  ===========================
zeros       0 outside the input                     0 0 a b c 0 0
reflect     x[|p|], mirrored at both edges          c b a b c b a
replicate   x[clip(p, 0, H-1)]                      a a a b c c c
circular    x[p mod H]                              b c a b c a b
==========  =====================================  ===========================

The backward pass folds the gradient of every padded position back onto the input element it was
read from (a sum, since reflect/replicate/circular read some elements several times).
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .. import workspace

__all__ = ["PAD_MODES", "normalize_pads", "pad2d", "pad2d_backward"]

PAD_MODES = ("zeros", "reflect", "replicate", "circular")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def normalize_pads(padding, where: str = "pad2d"):
    """``int``, ``(ph, pw)`` or ``((top, bottom), (left, right))`` -> ``((top, bottom), (left, right))``.

    Raises ValueError naming ``where`` for anything else, or for negative amounts.
    Example: ``normalize_pads((1, 2)) == ((1, 1), (2, 2))``.
    """
    if _is_int(padding):
        pads = ((int(padding),) * 2,) * 2
    elif isinstance(padding, (tuple, list)) and len(padding) == 2 and all(_is_int(p) for p in padding):
        pads = ((int(padding[0]),) * 2, (int(padding[1]),) * 2)
    elif (isinstance(padding, (tuple, list)) and len(padding) == 2
          and all(isinstance(p, (tuple, list)) and len(p) == 2 and all(_is_int(v) for v in p) for p in padding)):
        pads = tuple((int(p[0]), int(p[1])) for p in padding)
    else:
        raise ValueError(f"{where}: padding must be an int, a pair (ph, pw) or ((top, bottom), (left, right)), "
                         f"got {padding!r}")
    if min(pads[0] + pads[1]) < 0:
        raise ValueError(f"{where}: padding must be non-negative, got {pads}")
    return pads


def _check_mode(mode, where):
    if mode not in PAD_MODES:
        raise ValueError(f"{where}: unknown padding_mode {mode!r}; choose one of {', '.join(PAD_MODES)}")


def _source_index(mode, size, before, after, axis_name, where):
    """For each padded position along one axis, the input index it reads (NumPy int array)."""
    if mode == "reflect" and max(before, after) >= size:
        raise ValueError(f"{where}: reflect padding ({max(before, after)}) must be smaller than the input "
                         f"{axis_name} ({size})")
    p = np.arange(-before, size + after)
    if mode == "reflect":
        p = np.abs(p)
        p = np.where(p > size - 1, 2 * (size - 1) - p, p)
    elif mode == "replicate":
        p = np.clip(p, 0, size - 1)
    else:  # circular
        p = np.mod(p, size)
    return p


def pad2d(x, pads, mode: str = "zeros"):
    """Pad the last two axes of ``x`` (N, C, H, W).

    Args:
        x: array (N, C, H, W).
        pads: ((top, bottom), (left, right)) (or anything :func:`normalize_pads` accepts).
        mode: "zeros", "reflect", "replicate" or "circular" (see the module table).

    Shape: (N, C, H, W) -> (N, C, H + top + bottom, W + left + right). Returns ``x`` itself when all
    pads are 0.
    Example: ``pad2d(x, 1, "reflect")``.
    """
    _check_mode(mode, "pad2d")
    (t, b), (l, r) = normalize_pads(pads)
    if t == b == l == r == 0:
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    if mode == "zeros":
        out = workspace.zeros((n, c, h + t + b, w + l + r), x.dtype, xp)
        out[:, :, t:t + h, l:l + w] = x
        return out
    rows = _source_index(mode, h, t, b, "height", "pad2d")
    cols = _source_index(mode, w, l, r, "width", "pad2d")
    out = xp.take(x, xp.asarray(rows), axis=2)  # (N, C, Hp, W)
    return xp.take(out, xp.asarray(cols), axis=3)  # (N, C, Hp, Wp)


def _fold_axis(g, mode, size, before, after, axis):
    """Sum the gradient of the padded positions along ``axis`` back onto the ``size`` input positions."""
    inner = [slice(None)] * 4
    inner[axis] = slice(before, before + size)
    out = g[tuple(inner)].copy()  # gradient of the positions that are the input itself
    if mode == "zeros":
        return out
    src = _source_index(mode, size, before, after, "size", "pad2d_backward")
    for i in list(range(before)) + list(range(before + size, before + size + after)):  # pad rows only: few
        dst = [slice(None)] * 4
        dst[axis] = int(src[i])
        pad_row = [slice(None)] * 4
        pad_row[axis] = i
        out[tuple(dst)] += g[tuple(pad_row)]
    return out


def pad2d_backward(dx_padded, pads, mode: str, input_shape):
    """Gradient of :func:`pad2d`: fold ``dx_padded`` (N, C, Hp, Wp) back to ``input_shape`` (N, C, H, W).

    For "zeros" this is the central crop; for the other modes each padded position's gradient is
    added to the input element it copied.
    """
    _check_mode(mode, "pad2d_backward")
    (t, b), (l, r) = normalize_pads(pads)
    if t == b == l == r == 0:
        return dx_padded
    h, w = input_shape[2], input_shape[3]
    if mode == "zeros":
        out = workspace.empty(tuple(dx_padded.shape[:2]) + (h, w), dx_padded.dtype, get_array_module(dx_padded))
        out[...] = dx_padded[:, :, t:t + h, l:l + w]
        return out  # (N, C, H, W)
    g = _fold_axis(dx_padded, mode, h, t, b, axis=2)  # (N, C, H, Wp)
    return _fold_axis(g, mode, w, l, r, axis=3)  # (N, C, H, W)
