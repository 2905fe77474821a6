"""Shapes of 2-D convolutions: the output-size formula, "same"/"valid" padding, and the geometry record.

Output size (rounded down, like PyTorch and Keras: a trailing partial window is dropped)::

    OH = floor((H + top + bottom - D*(KH-1) - 1) / S) + 1

:func:`conv_output_size` is the textbook's strict version (it refuses a non-integer OH).
"""
from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from ..utils.args import pair
from .padding import normalize_pads

__all__ = ["Geom", "conv_output_size", "resolve_padding", "conv2d_output_shape", "conv_transpose2d_output_shape"]

#: kernel (kh, kw), stride (sh, sw), dilation (dh, dw), output (oh, ow) of one convolution
Geom = namedtuple("Geom", "kh kw sh sw dh dw oh ow")


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
            kh, kw = pair(kernel_hw, "kernel_size", where)
            sh, sw = pair(stride, "stride", where)
            dh, dw = pair(dilation, "dilation", where)
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
    kh, kw = pair(kernel_size, "kernel_size", where)
    sh, sw = pair(stride, "stride", where)
    dh, dw = pair(dilation, "dilation", where)
    pads = resolve_padding(padding, (h, w), (kh, kw), (sh, sw), (dh, dw), where)
    hp, wp = h + sum(pads[0]), w + sum(pads[1])
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if hp < eh or wp < ew:
        raise ValueError(f"{where}: kernel {kh}x{kw} (dilated extent {eh}x{ew}) is larger than the padded input "
                         f"{hp}x{wp} (input {h}x{w}, padding {pads})")
    return ((hp - eh) // sh + 1, (wp - ew) // sw + 1), pads


def conv_transpose2d_output_shape(input_shape, kernel_size, stride=1, padding=0, output_padding=0, dilation=1,
                                  where="conv_transpose2d"):
    """((OH, OW), pads, (oph, opw)): OH = (H-1)*S - top - bottom + D*(KH-1) + output_padding + 1."""
    h, w = input_shape[-2:]
    kh, kw = pair(kernel_size, "kernel_size", where)
    sh, sw = pair(stride, "stride", where)
    dh, dw = pair(dilation, "dilation", where)
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
