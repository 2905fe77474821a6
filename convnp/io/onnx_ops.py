"""The ONNX operators that :mod:`convnp.io.onnx_import` runs as array functions rather than layers: shape
arithmetic (Shape, Gather, Unsqueeze, Squeeze, Concat, Reshape, Cast), element-wise arithmetic with NumPy
broadcasting (Add, Sub, Mul, Div), MatMul/Gemm of computed tensors, Transpose, Flatten, ReduceMean, Clip.

Each entry of :data:`OPS` is ``forward(inputs, attrs) -> (output, cache)`` and ``backward(dy, cache) ->``
one gradient per input (None where the input is an integer shape tensor or gets no gradient). The load-time
constant folding runs the same forwards on constant inputs (opsets 13-18: axes as an attribute before 13
or 18, as an input after).
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module

# ONNX TensorProto data types -> NumPy (Cast)
ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_,
               10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


def _unbroadcast(g, shape):
    """Sum ``g`` over the axes NumPy broadcasting added or stretched, back to ``shape``."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


def _float(x):
    return np.issubdtype(np.dtype(x.dtype), np.floating)


def _match(a, b):
    """Cast a constant operand to the other operand's float dtype (float32 weights meet float64 inputs)."""
    if _float(a) and _float(b) and a.dtype != b.dtype:
        return (a, b.astype(a.dtype)) if a.ndim >= b.ndim else (a.astype(b.dtype), b)
    return a, b


def _axes(inputs, attrs, index=1):
    if len(inputs) > index and inputs[index] is not None:
        return [int(v) for v in np.asarray(inputs[index]).reshape(-1)]
    return None if attrs.get("axes") is None else [int(v) for v in attrs["axes"]]


# ------------------------------------------------------------------------------ element-wise
def _binary(fn, grads):
    def forward(inputs, attrs):
        a, b = _match(*inputs[:2])
        return fn(a, b), (a, b)

    def backward(dy, cache):
        a, b = cache
        ga, gb = grads(dy, a, b)
        return (_unbroadcast(ga, a.shape) if _float(a) else None, _unbroadcast(gb, b.shape) if _float(b) else None)
    return forward, backward


_add = _binary(lambda a, b: a + b, lambda g, a, b: (g, g))
_sub = _binary(lambda a, b: a - b, lambda g, a, b: (g, -g))
_mul = _binary(lambda a, b: a * b, lambda g, a, b: (g * b, g * a))
_div = _binary(lambda a, b: a / b if _float(a) or _float(b) else a // b, lambda g, a, b: (g / b, -g * a / (b * b)))


def _matmul_fwd(inputs, attrs):
    a, b = _match(*inputs[:2])
    return a @ b, (a, b)


def _matmul_bwd(dy, cache):
    a, b = cache
    a2, b2 = (a[None] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
    g = dy.reshape(dy.shape[:-1] + (1,)) if b.ndim == 1 else dy
    g = g[..., None, :] if a.ndim == 1 else g
    ga = _unbroadcast(g @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
    gb = _unbroadcast(np.swapaxes(a2, -1, -2) @ g, b2.shape).reshape(b.shape)
    return ga, gb


def _gemm_fwd(inputs, attrs):
    a, b = _match(*inputs[:2])
    a2 = a.T if attrs.get("transA", 0) else a
    b2 = b.T if attrs.get("transB", 0) else b
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    y = (a2 @ b2) * a.dtype.type(alpha)
    c = inputs[2] if len(inputs) > 2 else None
    if c is not None:
        y = y + c.astype(y.dtype) * y.dtype.type(beta)
    return y, (a, b, c, attrs)


def _gemm_bwd(dy, cache):
    a, b, c, attrs = cache
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    a2 = a.T if attrs.get("transA", 0) else a
    b2 = b.T if attrs.get("transB", 0) else b
    ga2, gb2 = dy @ b2.T * alpha, a2.T @ dy * alpha
    ga = ga2.T if attrs.get("transA", 0) else ga2
    gb = gb2.T if attrs.get("transB", 0) else gb2
    gc = None if c is None else _unbroadcast(dy * beta, c.shape)
    return ga, gb, gc


def _clip_fwd(inputs, attrs):
    x = inputs[0]
    lo = inputs[1] if len(inputs) > 1 and inputs[1] is not None else attrs.get("min")
    hi = inputs[2] if len(inputs) > 2 and inputs[2] is not None else attrs.get("max")
    y = x
    if lo is not None:
        y = get_array_module(x).maximum(y, x.dtype.type(np.asarray(lo)))
    if hi is not None:
        y = get_array_module(x).minimum(y, x.dtype.type(np.asarray(hi)))
    return y, (x, y)


def _clip_bwd(dy, cache):
    x, y = cache
    return (dy * (x == y),)


# ------------------------------------------------------------------------------ shapes
def _shape_fwd(inputs, attrs):
    shape = np.array(inputs[0].shape, np.int64)
    start, end = attrs.get("start", 0), attrs.get("end")
    return shape[start:end], None


def _gather_fwd(inputs, attrs):
    data, idx = inputs[0], np.asarray(inputs[1]).astype(np.int64)
    axis = int(attrs.get("axis", 0)) % max(data.ndim, 1)
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    xp = get_array_module(data)
    return xp.take(data, xp.asarray(idx), axis=axis), (data.shape, idx, axis, data.dtype)


def _gather_bwd(dy, cache):
    shape, idx, axis, dtype = cache
    if not np.issubdtype(np.dtype(dtype), np.floating):
        return None, None
    xp = get_array_module(dy)
    g = xp.zeros(shape, dtype=dy.dtype)
    flat = dy.reshape(tuple(shape[:axis]) + (idx.size,) + tuple(shape[axis + 1:]))  # index axes flattened
    xp.add.at(xp.moveaxis(g, axis, 0), xp.asarray(idx.reshape(-1)), xp.moveaxis(flat, axis, 0))
    return g, None


def _unsqueeze_fwd(inputs, attrs):
    x, axes = inputs[0], _axes(inputs, attrs)
    axes = sorted(a % (x.ndim + len(axes)) for a in axes)
    y = x
    for a in axes:
        y = get_array_module(x).expand_dims(y, a)
    return y, x.shape


def _squeeze_fwd(inputs, attrs):
    x = inputs[0]
    axes = _axes(inputs, attrs)
    axes = tuple(i for i, s in enumerate(x.shape) if s == 1) if axes is None else tuple(a % x.ndim for a in axes)
    return x.reshape(tuple(s for i, s in enumerate(x.shape) if i not in axes)), x.shape


def _reshape_bwd(dy, shape):
    return (dy.reshape(shape),)


def _reshape_fwd(inputs, attrs):
    x, target = inputs[0], [int(v) for v in np.asarray(inputs[1]).reshape(-1)]
    if not attrs.get("allowzero", 0):
        target = [x.shape[i] if v == 0 else v for i, v in enumerate(target)]
    if -1 in target:  # (N = 0 batches cannot infer a -1: compute it from the other sizes)
        known = int(np.prod([v for v in target if v != -1])) or 1
        target[target.index(-1)] = int(np.prod(x.shape)) // known if x.size else int(np.prod(x.shape[1:]) or 0)
    return x.reshape(target), x.shape


def _flatten_fwd(inputs, attrs):
    x = inputs[0]
    axis = int(attrs.get("axis", 1)) % (x.ndim + 1)
    return x.reshape(int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:]))), x.shape


def _transpose_fwd(inputs, attrs):
    x = inputs[0]
    perm = attrs.get("perm") or list(range(x.ndim))[::-1]
    return x.transpose(perm), np.argsort(perm)


def _transpose_bwd(dy, inverse):
    return (dy.transpose(inverse),)


def _concat_fwd(inputs, attrs):
    axis = int(attrs.get("axis", 0))
    parts = [np.atleast_1d(p) if getattr(p, "ndim", 1) == 0 else p for p in inputs]
    xp = get_array_module(parts[0])
    sizes = [p.shape[axis] for p in parts]
    return xp.concatenate(parts, axis=axis), (axis, sizes, [p.dtype for p in parts])


def _concat_bwd(dy, cache):
    axis, sizes, dtypes = cache
    out, start = [], 0
    for size, dtype in zip(sizes, dtypes):
        index = [slice(None)] * dy.ndim
        index[axis] = slice(start, start + size)
        out.append(dy[tuple(index)] if np.issubdtype(np.dtype(dtype), np.floating) else None)
        start += size
    return tuple(out)


def _cast_fwd(inputs, attrs):
    x, to = inputs[0], ONNX_DTYPES.get(int(attrs["to"]))
    if to is None:
        raise NotImplementedError(f"ONNX import: Cast to data type {attrs['to']} is not supported")
    if _float(x) and np.issubdtype(to, np.floating):
        return x, True  # float -> float: keep the model's precision (the gradient passes)
    return x.astype(to), False


def _cast_bwd(dy, passes):
    return (dy if passes else None,)


def _reduce_mean_fwd(inputs, attrs):
    x = inputs[0]
    axes = _axes(inputs, attrs)
    if axes is None and attrs.get("noop_with_empty_axes", 0):
        return x, (x.shape, None, True)
    axes = tuple(range(x.ndim)) if axes is None else tuple(a % x.ndim for a in axes)
    keep = bool(attrs.get("keepdims", 1))
    return x.mean(axis=axes, keepdims=keep), (x.shape, axes, keep)


def _reduce_mean_bwd(dy, cache):
    shape, axes, keep = cache
    if axes is None:
        return (dy,)
    xp = get_array_module(dy)
    count = int(np.prod([shape[a] for a in axes]))
    g = dy if keep else xp.expand_dims(dy, axes)
    return (xp.broadcast_to(g / dy.dtype.type(max(count, 1)), shape).copy(),) + (None,)


def _identity_fwd(inputs, attrs):
    return inputs[0], None


#: op type -> (forward, backward)
OPS = {
    "Add": _add, "Sub": _sub, "Mul": _mul, "Div": _div,
    "MatMul": (_matmul_fwd, _matmul_bwd), "Gemm": (_gemm_fwd, _gemm_bwd), "Clip": (_clip_fwd, _clip_bwd),
    "Shape": (_shape_fwd, lambda dy, c: (None,)), "Gather": (_gather_fwd, _gather_bwd),
    "Unsqueeze": (_unsqueeze_fwd, _reshape_bwd), "Squeeze": (_squeeze_fwd, _reshape_bwd),
    "Reshape": (_reshape_fwd, lambda dy, shape: (dy.reshape(shape), None)),
    "Flatten": (_flatten_fwd, _reshape_bwd), "Transpose": (_transpose_fwd, _transpose_bwd),
    "Concat": (_concat_fwd, _concat_bwd), "Cast": (_cast_fwd, _cast_bwd),
    "ReduceMean": (_reduce_mean_fwd, _reduce_mean_bwd),
    "Identity": (_identity_fwd, lambda dy, c: (dy,)), "Dropout": (_identity_fwd, lambda dy, c: (dy,)),
}
