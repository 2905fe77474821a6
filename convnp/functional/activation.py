"""Activation functions as forward/backward pairs, numerically stable at +-1000.

Each ``NAME(x)`` returns y; each ``NAME_backward(dy, x, y)`` returns dx (using whichever of x, y it
needs: ReLU uses x, sigmoid/tanh/softmax use y). Formulas:

* relu: y = max(x, 0); dx = dy * (x > 0)
* leaky_relu: y = x if x > 0 else alpha*x; dx = dy * (1 if x > 0 else alpha)
* elu: y = x if x > 0 else alpha*(e^x - 1); dx = dy * (1 if x > 0 else y + alpha)
* sigmoid: y = 1 / (1 + e^-x) (evaluated without overflow); dx = dy * y * (1 - y)
* tanh: dx = dy * (1 - y^2)
* softmax (along axis): y = e^(x - max) / sum; dx = y * (dy - sum(dy * y))
* log_softmax: y = x - max - log(sum(e^(x - max))); dx = dy - softmax(x) * sum(dy)
"""
from __future__ import annotations

import numpy as np

from .. import accel, workspace
from ..backend import get_array_module


def identity(x):
    return x


def identity_backward(dy, x=None, y=None):
    return dy


def relu(x, out=None):
    xp = get_array_module(x)
    if out is None and type(x) is np.ndarray:  # large outputs reuse freed memory (convnp.workspace)
        out = workspace.empty(x.shape, x.dtype)
    threads = accel.threads.pass_threads(x.size) if xp is np else 1
    if threads != 1 and x.flags.c_contiguous and out.flags.c_contiguous:  # BLAS on one thread: slices per core
        flat_x, flat_out = x.reshape(-1), out.reshape(-1)
        accel.direct.run_split(x.size, lambda s, e, _: np.maximum(flat_x[s:e], 0, out=flat_out[s:e]), threads)
        return out
    return xp.maximum(x, 0, out=out)  # out=x: in place


def relu_backward(dy, x=None, y=None):
    ref = x if x is not None else y  # y > 0 exactly where x > 0
    if accel.enabled_for(dy, ref) and dy.shape == ref.shape and dy.flags.c_contiguous and ref.flags.c_contiguous:
        return accel.kernels.relu_backward(dy, ref)  # one pass, no boolean temporary
    return dy * (ref > 0)


def leaky_relu(x, alpha=0.01):
    xp = get_array_module(x)
    return xp.where(x > 0, x, x * x.dtype.type(alpha))


def leaky_relu_backward(dy, x, y=None, alpha=0.01):
    xp = get_array_module(dy)
    return dy * xp.where(x > 0, dy.dtype.type(1), dy.dtype.type(alpha))


def elu(x, alpha=1.0):
    xp = get_array_module(x)
    return xp.where(x > 0, x, x.dtype.type(alpha) * xp.expm1(xp.minimum(x, 0)))


def elu_backward(dy, x, y, alpha=1.0):
    xp = get_array_module(dy)
    return dy * xp.where(x > 0, dy.dtype.type(1), y + dy.dtype.type(alpha))


def sigmoid(x):
    xp = get_array_module(x)
    z = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
    return xp.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)


def sigmoid_backward(dy, x=None, y=None):
    return dy * y * (1 - y)


def tanh(x):
    return get_array_module(x).tanh(x)


def tanh_backward(dy, x=None, y=None):
    return dy * (1 - y * y)


def softmax(x, axis=-1):
    xp = get_array_module(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(dy, x=None, y=None, axis=-1):
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def log_softmax(x, axis=-1):
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def log_softmax_backward(dy, x=None, y=None, axis=-1):
    xp = get_array_module(dy)
    return dy - xp.exp(y) * dy.sum(axis=axis, keepdims=True)


#: name -> (forward, backward)
ACTIVATIONS = {
    "identity": (identity, identity_backward), "linear": (identity, identity_backward),
    "relu": (relu, relu_backward), "leaky_relu": (leaky_relu, leaky_relu_backward),
    "elu": (elu, elu_backward), "sigmoid": (sigmoid, sigmoid_backward), "tanh": (tanh, tanh_backward),
    "softmax": (softmax, softmax_backward), "log_softmax": (log_softmax, log_softmax_backward),
}
