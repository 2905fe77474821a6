"""2-D convolution: one entry point, several providers, the planner's choice between them.

``conv2d_forward`` checks its arguments, works out the geometry (``conv_geometry``), asks the planner
(``convnp.accel.planner``) which provider computes this case fastest on this machine, and runs that provider's
forward; the cache it returns names the provider, whose own backward ``conv2d_backward`` then runs:

=========  ==========================================================  =================================
provider   what                                                        runs
=========  ==========================================================  =================================
reference  im2col + one GEMM, the textbook algorithm (conv_reference)  always (NumPy and CuPy)
gemm       blocked im2col + GEMMs, the wide stride-1 layout (conv_gemm) always; CuPy through convnp.cuda
direct     C kernels, stride 1, no patch matrix (conv_direct)          float32 NumPy, stride 1, groups 1
strided    C kernels, strided (conv_direct)                            float32 NumPy, zero padding, k >= s
winograd   F(2x2, 3x3): 16 GEMMs on transformed tiles (conv_winograd)  float32 NumPy, 3x3, stride 1
winograd4  F(4x4, 3x3): 36 GEMMs, 1.78x fewer multiply-adds (the same)  float32 NumPy, 3x3, stride 1
=========  ==========================================================  =================================

``CONVNP_PLAN=reference`` runs the reference everywhere, ``fixed`` picks by geometry without timing (the rule
in :func:`_fixed_rule`), ``measure`` (default) times the candidates the first time a case is seen.
``conv_transpose2d`` is the input-gradient of ``conv2d`` (it reuses the GEMM provider's helpers), and
:func:`im2col` / :func:`col2im` keep the textbook's interface.
"""
from __future__ import annotations

import math

import numpy as np

from .. import accel
from ..accel import planner
from ..backend import get_array_module, is_grad_enabled
from . import conv_direct, conv_gemm, conv_reference, conv_winograd
from ..utils.args import pair
from .conv_geometry import (Geom, conv2d_output_shape, conv_output_size,  # noqa: F401 (re-exported)
                            conv_transpose2d_output_shape, resolve_padding)
from .conv_gemm import (_blocks, _col2im_t, _dw_from_acc, _gemm_dy_colt, _gemm_to_nchw, _gemm_w_col, _gemm_wt_dy,
                        _im2col_t, _nchw_to_gemm)
from .padding import PAD_MODES, pad2d

__all__ = ["im2col", "col2im", "conv_output_size", "conv2d_output_shape", "resolve_padding",
           "conv2d_forward", "conv2d_backward", "conv_transpose2d_forward", "conv_transpose2d_backward",
           "conv_transpose2d_output_shape", "PROVIDERS"]

_Geom = Geom  # (the name the tests and convnp.cuda use)

#: name -> (can_run(x, w, b, g, groups, padding_mode), forward, backward), in the order the planner times them:
#: the C kernels first (before any GEMM's spinning threads), the reference last (often dropped after one call)
PROVIDERS = {
    "direct": (conv_direct.direct_can_run, conv_direct.direct_forward, conv_direct.direct_backward),
    "strided": (conv_direct.strided_can_run, conv_direct.strided_forward, conv_direct.strided_backward),
    "winograd": (conv_winograd.can_run, conv_winograd.forward, conv_winograd.backward),
    "winograd4": (conv_winograd.can_run, conv_winograd.forward4, conv_winograd.backward),
    "gemm": (lambda *case: True, conv_gemm.forward, conv_gemm.backward),
    "reference": (lambda *case: True, conv_reference.forward, conv_reference.backward),
}
#: the planner times candidates on the whole batch up to this many multiply-adds, else on a slice of about this
#: size (a small slice misleads: measured on 6 of 32 samples, a 64->64 3x3 layer's GEMMs ran as fast as the C
#: kernels, on all 32 they were 5x slower)
TRIAL_MACS = 3e9


def _fixed_rule(names, x, w, g: Geom):
    """The ``fixed`` mode's choice (geometry only): the C kernels where they were measured faster on the machine
    they were tuned on (stride 1; with fewer patch rows than filters only on several threads; strided with at
    least 8 input channels), else the blocked GEMM."""
    k, o, c = w[0].size, w.shape[0], x.shape[1]
    if "direct" in names and (k >= o or accel.direct.num_threads() > 1):
        return "direct"
    if "strided" in names and c >= accel.direct.FILTER_BLOCK:
        return "strided"
    return "gemm"


def _case(x, w, g: Geom, pads, groups, padding_mode, relu, save):
    """What a plan depends on: shapes, geometry, dtype, mode flags and the threads the kernels may use."""
    threads = accel.direct.num_threads() if accel.direct_enabled_for() else 0
    return (np.dtype(x.dtype).name, *x.shape, *w.shape, g.sh, g.sw, g.dh, g.dw, pads, groups, padding_mode,
            int(relu), f"train ({save})" if save else "infer", f"t{threads}",
            "blas1" if accel.threads.blas_limited() else "")


def _trial(name, x, w, b, g, pads, padding_mode, groups, relu, save):
    """run() for the planner: provider ``name`` on a slice of the batch (about TRIAL_MACS multiply-adds),
    forward and, when training (``save`` is "dx" or "no dx"), backward with or without dx."""
    macs = max(1, w.size * g.oh * g.ow)  # per sample
    n = min(x.shape[0], max(2, math.ceil(TRIAL_MACS / macs)))
    xt = x[:n]
    _, forward, backward = PROVIDERS[name]
    dy = None

    def run():
        nonlocal dy
        y, cache = forward(xt, w, b, g, pads, padding_mode, groups, relu, save)
        if save:
            dy = get_array_module(y).ones_like(y) if dy is None else dy
            backward(dy, cache, save == "dx")
    return run


def _choose(x, w, b, g: Geom, pads, padding_mode, groups, relu, save):
    """The provider for this convolution (see the module docstring); ``save``: False (inference), "dx" or
    "no dx" (training, with or without the input gradient)."""
    if get_array_module(x) is not np:
        return "gemm"  # CuPy: the GEMM provider with convnp.cuda's im2col/col2im kernels
    names = [name for name, (can_run, _, _) in PROVIDERS.items() if can_run(x, w, b, g, groups, padding_mode)]
    rule = _fixed_rule(names, x, w, g)
    if planner.mode() != "measure":
        return planner.choose("conv2d", (), {name: None for name in names}, rule)
    case = _case(x, w, g, pads, groups, padding_mode, relu, save)
    return planner.choose("conv2d", case, {name: _trial(name, x, w, b, g, pads, padding_mode, groups, relu, save)
                                           for name in names}, rule)


def conv2d_provider(x, w, b, g: Geom, pads, padding_mode="zeros", groups=1, relu=False, save=False,
                    input_grad=True):
    """The provider :func:`conv2d_forward` takes for this case (the planner's choice); ``save``: a training step."""
    return _choose(x, w, b, g, pads, padding_mode, groups, relu, ("dx" if input_grad else "no dx") if save else False)


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
                   save_cache=None, relu=False, provider=None, input_grad=True):
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
        relu: return max(y, 0) (a ReLU fused into the convolution; NaN stays NaN); :func:`conv2d_backward` then
            takes the gradient of that output.
        provider: force one of :data:`PROVIDERS` (default: the planner's choice).
        input_grad: whether the backward will be asked for dx (a first layer's is not): the planner times the
            providers' backward that way.

    Returns: ``(y, cache)``; cache is None when not saved, else it names the provider whose backward runs.
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
    sh, sw = pair(stride, "stride", "conv2d")
    dh, dw = pair(dilation, "dilation", "conv2d")
    g = Geom(kh, kw, sh, sw, dh, dw, oh, ow)
    save = is_grad_enabled() if save_cache is None else bool(save_cache)
    if provider is None:
        provider = conv2d_provider(x, w, b, g, pads, padding_mode, groups, relu, save, input_grad)
    elif provider not in PROVIDERS or not PROVIDERS[provider][0](x, w, b, g, groups, padding_mode):
        raise ValueError(f"conv2d: provider {provider!r} cannot compute this case (providers: "
                         f"{', '.join(PROVIDERS)}; direct and strided need float32 NumPy arrays and their geometry)")
    return PROVIDERS[provider][1](x, w, b, g, pads, padding_mode, groups, relu, bool(save))


def conv2d_backward(dy, cache, need_dx=True):
    """Gradients of :func:`conv2d_forward`: ``(dx, dw, db)``, by the backward of the provider that ran forward.

    Args:
        dy: upstream gradient (N, O, OH, OW).
        cache: the cache returned by the forward.
        need_dx: False skips the input gradient (the first layer of a network needs none).

    Returns: dx (N, C, H, W) or None, dw (O, C/groups, KH, KW), db (O,) or None without bias.
    """
    if cache is None:
        raise RuntimeError("conv2d_backward: no cache (the forward ran with save_cache=False or under no_grad())")
    g = cache["geom"]
    expected = (cache["x_shape"][0], cache["w"].shape[0], g.oh, g.ow)
    if tuple(dy.shape) != expected:
        raise ValueError(f"conv2d_backward: dy must have the forward output's shape {expected}, got "
                         f"{tuple(dy.shape)}")
    return PROVIDERS[cache["provider"]][2](dy, cache, need_dx)


# ----------------------------------------------------------------------------- transposed conv
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
    sh, sw = pair(stride, "stride", "conv_transpose2d")
    dh, dw = pair(dilation, "dilation", "conv_transpose2d")
    g = Geom(kh, kw, sh, sw, dh, dw, h, wd)  # the conv that maps the (padded) output back to x
    xp = get_array_module(x)
    padded_shape = (n, cout, oh + sum(pads[0]), ow + sum(pads[1]))
    k = cout * kh * kw
    size, chunks = _blocks(n, k * h * wd * x.dtype.itemsize, h * wd, xp)
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
    size, chunks = _blocks(n, k * g.oh * g.ow * dy.dtype.itemsize, g.oh * g.ow, xp)
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
    (oh, ow), pads = conv2d_output_shape(input_data.shape, (filter_h, filter_w), stride, pad, 1, "im2col")
    g = Geom(filter_h, filter_w, stride, stride, 1, 1, oh, ow)
    return conv_reference.im2col(pad2d(input_data, pads), g)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The textbook col2im: (N*OH*OW, C*FH*FW) -> (N, C, H, W), summing where windows overlap."""
    n, c, h, w = input_shape
    (oh, ow), pads = conv2d_output_shape(input_shape, (filter_h, filter_w), stride, pad, 1, "col2im")
    g = Geom(filter_h, filter_w, stride, stride, 1, 1, oh, ow)
    img = conv_reference.col2im(col, (n, c, h + 2 * pad, w + 2 * pad), g)
    return img[:, :, pad:pad + h, pad:pad + w]
