"""Dispatch to the custom CUDA kernels: each op returns its result, or ``None`` when it cannot run.

An op runs its kernel when CuPy is importable, custom kernels are enabled, every array is a CuPy array
of float32 or float64 (one dtype) and the in-place targets are C-contiguous; otherwise it returns
``None`` and the caller falls back to its ``xp`` code (which is also the NumPy path), so callers write::

    col = cuda_ops.im2col(xpad, geom)
    if col is None:
        col = ...  # the xp code

Every op also takes ``launcher=``: a function ``launcher(kernel_name, dtype, total, args)``. The default
launches on the GPU through CuPy; :func:`convnp.cuda.emulate.launch` runs the same kernel source on the
CPU (compiled with g++), which is how the tests check this module and the kernels without a GPU.

Switch the kernels off (to compare with the plain CuPy path) with ``CONVNP_CUDA_KERNELS=0`` in the
environment, :func:`set_kernels_enabled(False) <set_kernels_enabled>` or ``with kernels_disabled():``.
"""
from __future__ import annotations

import contextlib
import math
import os

import numpy as np

from .. import backend
from .kernels import DTYPES, KERNELS, NVRTC_OPTIONS, module_source

__all__ = ["kernels_enabled", "set_kernels_enabled", "kernels_disabled", "im2col", "col2im",
           "max_pool2d_forward", "max_pool2d_backward", "bias_activation", "relu_backward", "adam_update",
           "sgd_update", "launch_cupy"]

THREADS = 256  # threads per block
MAX_BLOCKS = 1 << 20  # the grid-stride loop covers the rest

_enabled = os.environ.get("CONVNP_CUDA_KERNELS", "1").strip().lower() not in ("0", "false", "no", "off")
_modules: dict = {}  # (dtype, device id) -> cupy.RawModule


# ----------------------------------------------------------------------------- switches
def kernels_enabled() -> bool:
    """True when CuPy is importable and the custom kernels are switched on."""
    return _enabled and backend._cupy is not None


def set_kernels_enabled(flag: bool) -> bool:
    """Switch the custom kernels on or off (off: the plain CuPy path everywhere); returns the previous value."""
    global _enabled
    previous, _enabled = _enabled, bool(flag)
    return previous


@contextlib.contextmanager
def kernels_disabled():
    """``with kernels_disabled():`` runs the plain ``xp`` path on the GPU (for comparisons)."""
    previous = set_kernels_enabled(False)
    try:
        yield
    finally:
        set_kernels_enabled(previous)


# ----------------------------------------------------------------------------- launching
def _module(dtype):
    cp = backend._cupy
    key = (np.dtype(dtype), cp.cuda.Device().id)
    if key not in _modules:
        _modules[key] = cp.RawModule(code=module_source(dtype), options=NVRTC_OPTIONS)
    return _modules[key]


def _cast_args(name, dtype, args):
    """Scalars as the C types of the kernel's parameters (int32, int64, T); arrays pass through."""
    params = KERNELS[name].params
    if len(args) != len(params):
        raise TypeError(f"{name}: expected {len(params)} arguments, got {len(args)}")
    out = []
    for (_, kind), value in zip(params, args):
        if kind == "i32":
            out.append(np.int32(value))
        elif kind == "i64":
            out.append(np.int64(value))
        elif kind == "T":
            out.append(np.dtype(dtype).type(value))
        else:
            out.append(value)
    return tuple(out)


def launch_cupy(name, dtype, total, args) -> None:
    """Launch kernel ``name`` (for ``dtype``) over ``total`` elements on the current GPU."""
    if total <= 0:
        return
    blocks = min(-(-int(total) // THREADS), MAX_BLOCKS)
    _module(dtype).get_function(name)((blocks,), (THREADS,), _cast_args(name, dtype, args))


def _launcher(launcher, *arrays):
    """The launcher to use for ``arrays``, or None when the kernels cannot run on them."""
    dtype = arrays[0].dtype
    if np.dtype(dtype) not in DTYPES or any(a.dtype != dtype for a in arrays):
        return None
    if launcher is not None:
        return launcher
    if not kernels_enabled() or not all(backend.is_cupy_array(a) for a in arrays):
        return None
    return launch_cupy


def _xp(a):
    return backend.get_array_module(a)


# ----------------------------------------------------------------------------- convolution
def im2col(xpad, geom, buf=None, launcher=None):
    """Patches of a padded (N, C, Hp, Wp) array as (N, C*kh*kw, OH*OW), columns ordered (c, i, j).

    ``geom`` has fields kh kw sh sw dh dw oh ow (``convnp.functional.conv._Geom``); ``buf`` (1-D, large
    enough, same dtype) is reused as the storage. Returns None when the kernel cannot run.
    """
    run = _launcher(launcher, xpad) if buf is None else _launcher(launcher, xpad, buf)
    if run is None:
        return None
    xp = _xp(xpad)
    xpad = xp.ascontiguousarray(xpad)
    n, c, hp, wp = xpad.shape
    shape = (n, c * geom.kh * geom.kw, geom.oh * geom.ow)
    total = math.prod(shape)
    if buf is None:
        col = xp.empty(shape, dtype=xpad.dtype)
    else:
        if not buf.flags.c_contiguous or buf.size < total:
            return None
        col = buf[:total].reshape(shape)
    run("convnp_im2col", xpad.dtype, total, (xpad, col, total, c, hp, wp, geom.kh, geom.kw, geom.sh, geom.sw,
                                              geom.dh, geom.dw, geom.oh, geom.ow))
    return col  # (N, C*kh*kw, OH*OW)


def col2im(col, padded_shape, geom, out=None, launcher=None):
    """Adjoint of :func:`im2col`: (N, C*kh*kw, OH*OW) -> (N, C, Hp, Wp), overlaps summed, written into a new
    array or ADDED into ``out`` (C-contiguous, same dtype). Each thread gathers its own pixel: no atomics."""
    run = _launcher(launcher, col) if out is None else _launcher(launcher, col, out)
    if run is None or (out is not None and (not out.flags.c_contiguous or tuple(out.shape) != tuple(padded_shape))):
        return None
    xp = _xp(col)
    col = xp.ascontiguousarray(col)
    n, c, hp, wp = padded_shape
    if col.size != n * c * geom.kh * geom.kw * geom.oh * geom.ow:
        raise ValueError(f"convnp.cuda.col2im: col of shape {tuple(col.shape)} does not match the padded shape "
                         f"{tuple(padded_shape)} and geometry {tuple(geom)}")
    accumulate = out is not None
    if out is None:
        out = xp.empty(tuple(padded_shape), dtype=col.dtype)
    total = n * c * hp * wp
    run("convnp_col2im", col.dtype, total, (col, out, total, c, hp, wp, geom.kh, geom.kw, geom.sh, geom.sw,
                                             geom.dh, geom.dw, geom.oh, geom.ow, int(accumulate)))
    return out  # (N, C, Hp, Wp)


# ----------------------------------------------------------------------------- max pooling
def max_pool2d_forward(xpad, out_hw, k, s, launcher=None):
    """Max over each window of a (-inf padded) (N, C, Hp, Wp) input in one pass.

    Returns ``(y, argmax)``: y (N, C, OH, OW) and the int32 row-major index r*kw + j of the FIRST maximum of
    each window (PyTorch's tie rule), or None when the kernel cannot run.
    """
    run = _launcher(launcher, xpad)
    if run is None:
        return None
    xp = _xp(xpad)
    xpad = xp.ascontiguousarray(xpad)
    n, c, hp, wp = xpad.shape
    (oh, ow), (kh, kw), (sh, sw) = out_hw, k, s
    y = xp.empty((n, c, oh, ow), dtype=xpad.dtype)
    argmax = xp.empty((n, c, oh, ow), dtype=np.int32)
    total = y.size
    run("convnp_maxpool_fwd", xpad.dtype, total, (xpad, y, argmax, total, hp, wp, kh, kw, sh, sw, oh, ow))
    return y, argmax


def max_pool2d_backward(dy, argmax, x_shape, pads, k, s, launcher=None):
    """dx (N, C, H, W) of max pooling from dy and the forward's argmax: each input pixel sums dy over the
    windows whose first maximum it is (a gather: no atomics). None when the kernel cannot run."""
    run = _launcher(launcher, dy)
    if run is None or argmax.dtype != np.int32 or tuple(argmax.shape) != tuple(dy.shape):
        return None
    xp = _xp(dy)
    dy = xp.ascontiguousarray(dy)
    argmax = xp.ascontiguousarray(argmax)
    n, c, h, w = x_shape
    oh, ow = dy.shape[2:]
    (top, _), (left, _) = pads
    dx = xp.empty((n, c, h, w), dtype=dy.dtype)
    total = dx.size
    run("convnp_maxpool_bwd", dy.dtype, total, (dy, argmax, dx, total, h, w, top, left, k[0], k[1], s[0], s[1],
                                                 oh, ow))
    return dx


# ----------------------------------------------------------------------------- fused elementwise steps
def bias_activation(y, b, activation=None, launcher=None):
    """In place: y = act(y + b) with b broadcast along axis 1 (y (N, C, ...) or (N, C)); act is None
    (identity) or "relu". Returns y, or None when the kernel cannot run (y is then untouched)."""
    if activation not in (None, "relu"):
        return None
    run = _launcher(launcher, y, b)
    if run is None or not y.flags.c_contiguous or y.ndim < 2 or b.size != y.shape[1]:
        return None
    b = _xp(b).ascontiguousarray(b)
    inner = math.prod(y.shape[2:])
    total = y.size
    run("convnp_bias_act", y.dtype, total, (y, b, total, y.shape[1], inner, int(activation == "relu")))
    return y


def relu_backward(dy, y, launcher=None):
    """dx = dy * (y > 0) in one kernel (a new array), or None when the kernel cannot run."""
    run = _launcher(launcher, dy, y)
    if run is None or dy.shape != y.shape:
        return None
    xp = _xp(dy)
    dy, y = xp.ascontiguousarray(dy), xp.ascontiguousarray(y)
    dx = xp.empty(dy.shape, dtype=dy.dtype)
    run("convnp_relu_bwd", dy.dtype, dx.size, (dy, y, dx, dx.size))
    return dx


def _inplace_ok(*arrays):
    return all(a.flags.c_contiguous for a in arrays) and len({tuple(a.shape) for a in arrays}) == 1


def adam_update(param, grad, exp_avg, exp_avg_sq, *, lr, beta1, beta2, eps, weight_decay=0.0, step,
                decoupled=False, max_exp_avg_sq=None, launcher=None):
    """One fused Adam (``decoupled=False``, L2 weight decay as PyTorch ``Adam``) or AdamW (``decoupled=True``,
    PyTorch ``AdamW``) step, in place on ``param``, ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``
    for AMSGrad). ``step`` is the 1-based step count after this update (for the bias corrections).

    Returns True when the kernel ran, None when it cannot run (nothing was changed: use the xp code).
    """
    arrays = [param, grad, exp_avg, exp_avg_sq] + ([] if max_exp_avg_sq is None else [max_exp_avg_sq])
    run = _launcher(launcher, *arrays)
    if run is None or not _inplace_ok(*arrays) or int(step) < 1:
        return None
    bc1 = 1.0 - float(beta1) ** int(step)
    bc2_sqrt = math.sqrt(1.0 - float(beta2) ** int(step))
    vmax = exp_avg_sq if max_exp_avg_sq is None else max_exp_avg_sq  # never written unless amsgrad
    total = param.size
    run("convnp_adam", param.dtype, total, (param, grad, exp_avg, exp_avg_sq, vmax, total, lr, beta1, beta2, eps,
                                             weight_decay, float(lr) / bc1, bc2_sqrt, int(bool(decoupled)),
                                             int(max_exp_avg_sq is not None)))
    return True


def sgd_update(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
               nesterov=False, first=False, launcher=None):
    """One fused SGD step as PyTorch ``SGD``, in place on ``param`` (and ``momentum_buffer`` when momentum
    is non-zero; ``first=True`` on the step that initializes the buffer: buf = grad).

    Returns True when the kernel ran, None when it cannot run (nothing was changed).
    """
    if float(momentum) != 0 and momentum_buffer is None:
        raise ValueError("convnp.cuda.sgd_update: momentum is non-zero but no momentum_buffer was given")
    arrays = [param, grad] + ([] if momentum_buffer is None else [momentum_buffer])
    run = _launcher(launcher, *arrays)
    if run is None or not _inplace_ok(*arrays):
        return None
    buf = param if momentum_buffer is None else momentum_buffer  # only touched when momentum != 0
    total = param.size
    run("convnp_sgd", param.dtype, total, (param, grad, buf, total, lr, momentum, dampening, weight_decay,
                                            int(bool(nesterov)), int(bool(first))))
    return True
