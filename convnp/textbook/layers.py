"""The textbook's layer classes ("Deep Learning from Scratch", ch. 5-7), as thin wrappers over convnp ops.

Each layer keeps the book's constructor, its ``forward(x)`` / ``backward(dout)`` methods and its
attributes (``W``, ``b``, ``dW``, ``db``, ``gamma``, ``beta``, ``dgamma``, ``dbeta``), but the work is done
by :mod:`convnp.functional` (im2col convolution, strided-window max pooling, log-softmax cross-entropy,
batch norm), so the code runs at convnp's speed, on NumPy or CuPy arrays alike.

The layers are plain classes (not :class:`convnp.nn.Module`), as in the book; the networks in
:mod:`convnp.textbook.networks` convert to regular convnp models with ``to_model()``.

Example::

    conv = Convolution(W, b, stride=1, pad=1)     # W (FN, C, FH, FW), b (FN,)
    out = conv.forward(x)                        # (N, FN, OH, OW)
    dx = conv.backward(dout)                     # conv.dW, conv.db now hold the gradients
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, make_rng
from ..functional import activation as A
from ..functional import conv as C
from ..functional import loss as L
from ..functional import normalization as N
from ..functional import pooling as P
from ..nn.module import ForwardCache

__all__ = ["Convolution", "Pooling", "Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Dropout",
           "BatchNormalization"]


# ----------------------------------------------------------------------------- helpers
def _int_arg(value, name, where, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive integer" if minimum == 1 else "a non-negative integer"
        raise ValueError(f"{where}: {name} must be {kind}, got {value!r}")
    return int(value)


def _check_ndim(x, ndim, where, layout):
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) != ndim:
        raise ValueError(f"{where}: expected a {ndim}-D input {layout}, got shape {shape}")


class _Layer(ForwardCache):
    """Shared bits: the forward cache and its clear error when backward comes first (convnp.nn's own)."""

    def __repr__(self):
        return f"{type(self).__name__}({self._describe()})"

    def _describe(self):
        return ""


# ----------------------------------------------------------------------------- convolution, pooling
class Convolution(_Layer):
    """The book's convolution layer, computed by :func:`convnp.functional.conv2d_forward` (im2col + matmul).

    Args:
        W: filters (FN, C, FH, FW), used as is (not copied: updating ``W`` in place updates the layer).
        b: biases (FN,).
        stride: int.
        pad: int, zero padding on every side.

    Shape: (N, C, H, W) -> (N, FN, OH, OW), OH = (H + 2*pad - FH) // stride + 1 (rounded down, as the book).
    After ``backward``: ``dW`` (FN, C, FH, FW) and ``db`` (FN,).
    Example: ``Convolution(0.01 * np.random.randn(30, 1, 5, 5), np.zeros(30)).forward(x)`` on (N, 1, 28, 28)
    gives (N, 30, 24, 24).
    """

    def __init__(self, W, b, stride=1, pad=0):
        if getattr(W, "ndim", None) != 4:
            raise ValueError(f"Convolution: W must be 4-D (FN, C, FH, FW), got shape {tuple(np.shape(W))}")
        if tuple(np.shape(b)) != (W.shape[0],):
            raise ValueError(f"Convolution: b must have shape ({W.shape[0]},) (one bias per filter), "
                             f"got {tuple(np.shape(b))}")
        self.W, self.b = W, b
        self.stride = _int_arg(stride, "stride", "Convolution", 1)
        self.pad = _int_arg(pad, "pad", "Convolution", 0)
        self.dW = self.db = None

    def forward(self, x):
        _check_ndim(x, 4, "Convolution", "(N, C, H, W)")
        fn, c, fh, fw = self.W.shape
        if x.shape[1] != c:
            raise ValueError(f"Convolution: input has {x.shape[1]} channels (shape {tuple(x.shape)}) but W "
                             f"{tuple(self.W.shape)} expects {c}")
        hp, wp = x.shape[2] + 2 * self.pad, x.shape[3] + 2 * self.pad
        if hp < fh or wp < fw:
            raise ValueError(f"Convolution: filter {fh}x{fw} is larger than the padded input {hp}x{wp} "
                             f"(input shape {tuple(x.shape)}, pad {self.pad})")
        out, cache = C.conv2d_forward(x, self.W, self.b, stride=self.stride, padding=self.pad)
        self._save_cache(cache)
        return out

    def backward(self, dout):
        dx, self.dW, self.db = C.conv2d_backward(dout, self._get_cache())
        return dx

    def _describe(self):
        return f"W={tuple(self.W.shape)}, stride={self.stride}, pad={self.pad}"


class Pooling(_Layer):
    """The book's max-pooling layer, computed by :func:`convnp.functional.max_pool2d_forward`.

    Args:
        pool_h, pool_w: window size.
        stride: int (default 2, as the book's ``Pooling`` since its repository changed it from 1 in 2020).
        pad: int, at most half the window. Padding works (the book's version ignores it in the output
            size): padded cells never win the max, as in PyTorch.

    Shape: (N, C, H, W) -> (N, C, OH, OW), OH = (H + 2*pad - pool_h) // stride + 1.
    Example: ``Pooling(2, 2, stride=2).forward(x)`` halves H and W.
    """

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        self.pool_h = _int_arg(pool_h, "pool_h", "Pooling", 1)
        self.pool_w = _int_arg(pool_w, "pool_w", "Pooling", 1)
        self.stride = _int_arg(stride, "stride", "Pooling", 1)
        self.pad = _int_arg(pad, "pad", "Pooling", 0)
        if 2 * self.pad > min(self.pool_h, self.pool_w):
            raise ValueError(f"Pooling: pad ({self.pad}) must be at most half the window "
                             f"({self.pool_h}x{self.pool_w})")

    def forward(self, x):
        _check_ndim(x, 4, "Pooling", "(N, C, H, W)")
        P.pool_output_shape(x.shape[2:], (self.pool_h, self.pool_w), self.stride, self.pad, "Pooling")
        out, cache = P.max_pool2d_forward(x, (self.pool_h, self.pool_w), self.stride, self.pad)
        self._save_cache(cache)
        return out

    def backward(self, dout):
        return P.max_pool2d_backward(dout, self._get_cache())

    def _describe(self):
        return f"pool_h={self.pool_h}, pool_w={self.pool_w}, stride={self.stride}, pad={self.pad}"


# ----------------------------------------------------------------------------- activations, affine
class Relu(_Layer):
    """y = max(x, 0) (:func:`convnp.functional.relu`). Keeps the book's ``mask`` (True where x <= 0)."""

    def __init__(self):
        self.mask = None

    def forward(self, x):
        out = A.relu(x)
        self.mask = out <= 0
        self._save_cache(out)
        return out

    def backward(self, dout):
        return A.relu_backward(dout, y=self._get_cache())


class Sigmoid(_Layer):
    """y = 1 / (1 + exp(-x)), stable for large |x| (:func:`convnp.functional.sigmoid`); keeps ``out``."""

    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = A.sigmoid(x)
        self._save_cache(self.out)
        return self.out

    def backward(self, dout):
        return A.sigmoid_backward(dout, y=self._get_cache())


class Affine(_Layer):
    """Fully connected layer with the book's layout: out = x @ W + b, W (in, out).

    Args:
        W: weights (in, out) (the transpose of convnp's ``Dense.weight``); b: biases (out,).

    Shape: x of any rank (N, ...) is flattened to (N, in) with in = prod(x.shape[1:]) -> (N, out).
    After ``backward``: ``dW`` (in, out), ``db`` (out,); dx has the shape of the original x.
    Example: ``Affine(0.01 * np.random.randn(4320, 100), np.zeros(100))`` after a (N, 30, 12, 12) pooling.
    """

    def __init__(self, W, b):
        if getattr(W, "ndim", None) != 2:
            raise ValueError(f"Affine: W must be 2-D (in, out), got shape {tuple(np.shape(W))}")
        if tuple(np.shape(b)) != (W.shape[1],):
            raise ValueError(f"Affine: b must have shape ({W.shape[1]},), got {tuple(np.shape(b))}")
        self.W, self.b = W, b
        self.dW = self.db = None
        self.original_x_shape = None

    def forward(self, x):
        if getattr(x, "ndim", 0) < 2:
            raise ValueError(f"Affine: expected an input (N, ...) with a batch axis, got shape {tuple(np.shape(x))}")
        self.original_x_shape = x.shape
        x2 = x.reshape(x.shape[0], -1)  # (N, in)
        if x2.shape[1] != self.W.shape[0]:
            raise ValueError(f"Affine: input {tuple(x.shape)} has {x2.shape[1]} features per sample but W "
                             f"{tuple(self.W.shape)} expects {self.W.shape[0]}")
        self._save_cache((x2, x.shape))
        return x2 @ self.W + self.b  # (N, out)

    def backward(self, dout):
        x2, shape = self._get_cache()
        self.dW = x2.T @ dout  # (in, out)
        self.db = dout.sum(axis=0)
        return (dout @ self.W.T).reshape(shape)

    def _describe(self):
        return f"W={tuple(self.W.shape)}"


# ----------------------------------------------------------------------------- loss
def softmax(x):
    """The book's softmax: exp(x - max) / sum(exp(x - max)) along the last axis. Shape: x's."""
    xp = get_array_module(x)
    x = x - xp.max(x, axis=-1, keepdims=True)
    return xp.exp(x) / xp.sum(xp.exp(x), axis=-1, keepdims=True)


def cross_entropy_error(y, t):
    """The book's cross-entropy error: -sum(log(y[n, t_n] + 1e-7)) / N.

    Args: y probabilities (N, K) or (K,); t labels (N,) or one-hot (N, K) (taken as argmax).
    Returns a float (the 1e-7 keeps log finite at y = 0 and shifts the value by about 1e-7 / y).
    """
    xp = get_array_module(y)
    if y.ndim == 1:
        t, y = t.reshape(1, t.size), y.reshape(1, y.size)
    if t.size == y.size:
        t = t.argmax(axis=1)
    n = y.shape[0]
    return float(-xp.sum(xp.log(y[xp.arange(n), t] + 1e-7)) / n)


class SoftmaxWithLoss(_Layer):
    """The book's softmax + cross-entropy layer, with its formulas: y = :func:`softmax` (x),
    loss = :func:`cross_entropy_error` (y, t) (log(y + 1e-7)), dx = dout * (y - t_one_hot) / N.

    ``forward(x, t)``: x logits (N, K); t class indices (N,) or one-hot rows (N, K). Returns the mean loss
    and keeps ``loss``, ``y`` (probabilities) and ``t``. :class:`StableSoftmaxWithLoss` is the log-softmax
    variant (exact log, finite for any logits).
    Example: ``loss = SoftmaxWithLoss().forward(scores, labels)``.
    """

    def __init__(self):
        self.loss = self.y = self.t = None

    def forward(self, x, t):
        _check_ndim(x, 2, "SoftmaxWithLoss", "(N, classes)")
        t = get_array_module(x).asarray(t)
        if t.shape[0] != x.shape[0]:
            raise ValueError(f"SoftmaxWithLoss: batch size mismatch: {x.shape[0]} predictions but {t.shape[0]} labels")
        if t.ndim == 1 and t.size and (int(t.max()) >= x.shape[1] or int(t.min()) < 0):
            bad = int(t.max()) if int(t.max()) >= x.shape[1] else int(t.min())
            raise ValueError(f"SoftmaxWithLoss: label {bad} is out of range for {x.shape[1]} classes")
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        if self.y is None:
            raise RuntimeError("SoftmaxWithLoss.backward called before forward")
        xp = get_array_module(self.y)
        n = self.t.shape[0]
        if self.t.size == self.y.size:
            dx = (self.y - self.t) / n
        else:
            dx = self.y.copy()
            dx[xp.arange(n), self.t] -= 1
            dx = dx / n
        return dx if dout == 1 else dx * dout


class StableSoftmaxWithLoss(_Layer):
    """Softmax followed by the cross-entropy error, computed by :mod:`convnp.functional.loss`
    (log-softmax: finite even for logits of +-1000; no 1e-7 inside the log, so it differs from the book's
    :class:`SoftmaxWithLoss` by about 1e-7 / y).

    ``forward(x, t)``: x logits (N, K); t class indices (N,) or one-hot rows (N, K). Returns the mean loss
    over the batch (a float) and keeps ``loss``, ``y`` (softmax probabilities) and ``t``.
    ``backward(dout=1)``: d(loss)/dx = dout * (y - t_one_hot) / N, shape (N, K).
    Example: ``loss = SoftmaxWithLoss().forward(scores, labels)``.
    """

    def __init__(self):
        self.loss = self.y = self.t = None

    def forward(self, x, t):
        _check_ndim(x, 2, "StableSoftmaxWithLoss", "(N, classes)")
        t = get_array_module(x).asarray(t)
        value, cache = L.softmax_cross_entropy_forward(x, t, where="StableSoftmaxWithLoss")
        self.loss, self.t = value, t
        self.y = cache[0]  # softmax probabilities (N, K)
        self._save_cache(cache)
        return self.loss

    def backward(self, dout=1):
        dx = L.softmax_cross_entropy_backward(self._get_cache())  # (y - t) / N
        return dx if dout == 1 else dx * dout


# ----------------------------------------------------------------------------- regularization
class Dropout(_Layer):
    """The book's dropout: in training keep each unit with probability 1 - dropout_ratio (no rescaling);
    at test time multiply by (1 - dropout_ratio), so both have the same expected value.

    (convnp's ``nn.Dropout`` is "inverted": it scales by 1/(1 - rate) in training and is the identity at
    test time; ``to_model()`` folds the (1 - dropout_ratio) factor into the next layer's weights, so the
    converted model computes exactly the same function.)

    Args:
        dropout_ratio: probability of dropping a unit, in [0, 1).
        seed: seed or numpy Generator for the masks (None: fresh entropy); on CuPy arrays the mask is drawn by
            a CuPy generator seeded from it.

    Shape: any; ``forward(x, train_flg=True)`` returns the same shape.
    """

    def __init__(self, dropout_ratio=0.5, seed=None):
        if isinstance(dropout_ratio, bool) or not 0 <= float(dropout_ratio) < 1:
            raise ValueError(f"Dropout: dropout_ratio must be in [0, 1), got {dropout_ratio!r}")
        self.dropout_ratio = float(dropout_ratio)
        self.mask = None
        self._rng = make_rng(seed)

    def forward(self, x, train_flg=True):
        if not train_flg:
            scale = x.dtype.type(1.0 - self.dropout_ratio)
            self._save_cache(scale)
            return x * scale
        xp = get_array_module(x)
        if xp is np:
            u = self._rng.random(x.shape)
        else:  # pragma: no cover - GPU only: a CuPy generator seeded from ours, as nn.Dropout does
            u = xp.random.default_rng(int(self._rng.integers(2 ** 63))).random(x.shape)
        self.mask = u > self.dropout_ratio
        self._save_cache(self.mask)
        return x * self.mask

    def backward(self, dout):
        return dout * self._get_cache()  # the mask (training) or the scale (test)

    def _describe(self):
        return f"dropout_ratio={self.dropout_ratio}"


class BatchNormalization(_Layer):
    """Batch normalization with the book's signature, computed by :mod:`convnp.functional.normalization`.

    Args:
        gamma, beta: scale and shift, shape (D,): D features for 2-D input (N, D), D channels for
            4-D input (N, D, H, W) (statistics per channel over N, H, W, as in convnp's BatchNorm2D;
            the book instead normalizes each of the C*H*W values separately).
        momentum: the book's convention, the weight of the OLD running value (0.9 here is PyTorch's 0.1).
        running_mean, running_var: initial running statistics (default zeros and ones, as PyTorch;
            the book starts the variance at zero).
        eps: added to the variance (the book's 10e-7).

    Training (``train_flg=True``) normalizes with the batch statistics and updates the running ones
    (unbiased variance, as PyTorch); test mode uses the running statistics.
    After ``backward``: ``dgamma``, ``dbeta`` (D,). Shape: same as the input.
    """

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None, eps=10e-7):
        if getattr(gamma, "ndim", None) != 1 or tuple(np.shape(beta)) != tuple(gamma.shape):
            raise ValueError(f"BatchNormalization: gamma and beta must be 1-D of the same length, got shapes "
                             f"{tuple(np.shape(gamma))} and {tuple(np.shape(beta))}")
        if not 0 <= float(momentum) <= 1:
            raise ValueError(f"BatchNormalization: momentum must be in [0, 1], got {momentum!r}")
        xp = get_array_module(gamma)
        d = gamma.shape[0]
        self.gamma, self.beta = gamma, beta
        self.momentum, self.eps = float(momentum), float(eps)
        self.running_mean = xp.zeros(d, dtype=gamma.dtype) if running_mean is None else running_mean
        self.running_var = xp.ones(d, dtype=gamma.dtype) if running_var is None else running_var
        for name in ("running_mean", "running_var"):
            if tuple(getattr(self, name).shape) != (d,):
                raise ValueError(f"BatchNormalization: {name} must have shape ({d},), got "
                                 f"{tuple(getattr(self, name).shape)}")
        self.dgamma = self.dbeta = None

    def forward(self, x, train_flg=True):
        if getattr(x, "ndim", None) not in (2, 4):
            raise ValueError(f"BatchNormalization: expected a 2-D (N, D) or 4-D (N, D, H, W) input, "
                             f"got shape {tuple(np.shape(x))}")
        if x.shape[1] != self.gamma.shape[0]:
            raise ValueError(f"BatchNormalization: input {tuple(x.shape)} has {x.shape[1]} features/channels "
                             f"but gamma has {self.gamma.shape[0]}")
        out, cache, (batch_mean, batch_var) = N.batch_norm_forward(
            x, self.gamma, self.beta, self.running_mean, self.running_var, training=bool(train_flg), eps=self.eps)
        if train_flg:  # the book's momentum weighs the old value: PyTorch's momentum is 1 - momentum
            new_mean, new_var = N.update_running_stats(self.running_mean, self.running_var, batch_mean, batch_var,
                                                       1.0 - self.momentum)
            self.running_mean[...] = new_mean  # in place: the arrays the caller passed stay in sync
            self.running_var[...] = new_var
        self._save_cache(cache)
        return out

    def backward(self, dout):
        dx, self.dgamma, self.dbeta = N.batch_norm_backward(dout, self._get_cache())
        return dx

    def _describe(self):
        return f"features={self.gamma.shape[0]}, momentum={self.momentum}"
