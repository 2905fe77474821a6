"""Normalization layers: BatchNorm2D, BatchNorm1D (PyTorch semantics and names), LocalResponseNorm."""
from __future__ import annotations

import numpy as np

from ...backend import get_array_module
from ...functional import normalization as N
from ...utils.args import positive_int
from ..module import Module
from ..parameter import Parameter


class _BatchNorm(Module):

    _ndims = (4,)
    _layout = "(N, C, H, W)"

    def __init__(self, num_features: int | None = None, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, bias: bool = True):
        super().__init__()
        name = type(self).__name__
        if num_features is not None and (isinstance(num_features, bool) or int(num_features) != num_features
                                         or int(num_features) < 1):
            raise ValueError(f"{name}: num_features must be a positive integer, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"{name}: eps must be positive, got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1] (the weight of the new batch) or None, "
                             f"got {momentum!r}")
        self.num_features = None if num_features is None else int(num_features)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        self.use_bias = bool(bias)  # (PyTorch's keyword ``bias``; the attribute ``bias`` is the Parameter)
        self.weight = None
        self.bias = None
        self.register_buffer("running_mean", None)
        self.register_buffer("running_var", None)
        self.register_buffer("num_batches_tracked", None)
        if self.num_features is not None:
            self.build((None, self.num_features))
            self.built = True

    def _check(self, shape):
        if shape is None or len(shape) not in self._ndims:
            raise ValueError(f"{type(self).__name__}: expected a {' or '.join(f'{d}-D' for d in self._ndims)} "
                             f"input {self._layout}, got shape {None if shape is None else tuple(shape)}")

    def build(self, input_shape):
        if self.num_features is None:
            self._check(input_shape)
        c = int(input_shape[1])
        self.num_features = c
        if self.affine:
            self.weight = Parameter(np.ones(c, np.float32))
            if self.use_bias:
                self.bias = Parameter(np.zeros(c, np.float32))
        if self.track_running_stats:
            self.running_mean = np.zeros(c, np.float32)
            self.running_var = np.ones(c, np.float32)
            self.num_batches_tracked = np.array(0, np.int64)

    def _check_input(self, x):
        self._check(x.shape)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} input channels, got "
                             f"{x.shape[1]} (input shape {tuple(x.shape)})")

    def forward(self, x):
        self._check_input(x)
        w = self.weight.data if self.weight is not None else None
        b = self.bias.data if self.bias is not None else None
        batch_stats = self.training or not self.track_running_stats  # no running stats: always the batch's
        y, cache, (mean, var) = N.batch_norm_forward(x, w, b, self.running_mean, self.running_var,
                                                     training=batch_stats, eps=self.eps)
        if self.training and self.track_running_stats:
            xp = get_array_module(self.running_mean)
            tracked = self.num_batches_tracked + 1
            self.num_batches_tracked = xp.asarray(tracked, dtype=xp.int64)
            momentum = self.momentum if self.momentum is not None else 1.0 / int(tracked)
            if mean is not None:  # an empty batch counts (as in PyTorch) but moves no statistic
                rm, rv = N.update_running_stats(self.running_mean, self.running_var, mean, var, momentum)
                self.running_mean = rm
                self.running_var = rv
        self._save_cache(cache)
        return y

    def inference(self, x, add=None, relu=False):
        """Eval-mode output with the residual ``add`` and a ReLU fused in (one pass, no cache): what
        ``relu(self(x) + add)`` gives in eval mode under ``no_grad()``; see :mod:`convnp.nn.fusion`."""
        self._check_input(x)
        w = self.weight.data if self.weight is not None else None
        b = self.bias.data if self.bias is not None else None
        self._save_cache(None)
        return N.batch_norm_inference(x, w, b, self.running_mean, self.running_var, self.eps, add, relu)

    def backward(self, dy):
        dx, dw, db = N.batch_norm_backward(dy, self._get_cache())
        if self.weight is not None:
            self.weight.accumulate_grad(dw)
        if self.bias is not None:
            self.bias.accumulate_grad(db)
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg["num_features"] = self.num_features
        return cfg


class BatchNorm2D(_BatchNorm):
    """Batch normalization per channel over (N, H, W), exactly as PyTorch's ``nn.BatchNorm2d``.

    Training mode normalizes with the batch mean and biased variance and updates
    running = (1 - momentum) * running + momentum * batch (unbiased variance); eval mode uses the running
    statistics. y = weight * (x - mean) / sqrt(var + eps) + bias.

    Args:
        num_features: channels C; inferred from the first input when None.
        eps: added to the variance (1e-5).
        momentum: weight of the new batch in the running averages (0.1); None = cumulative average.
        affine: learn ``weight`` (ones) and ``bias`` (zeros).
        track_running_stats: False keeps no running statistics (no buffers): batch statistics in training
            and in eval, as PyTorch.
        bias: False (with affine) learns the scale ``weight`` only (PyTorch's ``bias=False``).

    State: parameters ``weight``, ``bias``; buffers ``running_mean``, ``running_var``,
    ``num_batches_tracked`` (int64), so torchvision state dicts load as they are.
    An empty batch (N = 0) passes through (forward and backward), counted in ``num_batches_tracked``.
    Shape: (N, C, H, W) -> (N, C, H, W). Example: ``BatchNorm2D()`` after ``Conv2D(64, 3, use_bias=False)``.
    """


class BatchNorm1D(_BatchNorm):
    """Batch normalization per feature over N (and L for (N, C, L) inputs), as PyTorch's ``nn.BatchNorm1d``.

    Args: as :class:`BatchNorm2D`.
    Shape: (N, C) -> (N, C) or (N, C, L) -> (N, C, L). Example: ``BatchNorm1D()`` after ``Dense(100)``.
    """
    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class LocalResponseNorm(Module):
    """Local response normalization across channels, as PyTorch's ``nn.LocalResponseNorm`` (AlexNet):
    y_c = x_c / (k + alpha/size * sum_{c'=c-size//2}^{c+(size-1)//2} x_c'^2)^beta, zero outside the channels.

    Args:
        size: number of neighbouring channels summed (5).
        alpha: scale (1e-4; divided by ``size`` as in PyTorch); beta: exponent (0.75); k: additive constant (1.0).

    Shape: (N, C, H, W) -> (N, C, H, W) (any (N, C, ...) with 3+ axes).
    Example: ``LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)`` (the AlexNet paper's values).
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        positive_int(size, "size", "LocalResponseNorm")
        if not k > 0:
            raise ValueError(f"LocalResponseNorm: k must be positive (it keeps the denominator away from 0), got {k!r}")
        if alpha < 0:
            raise ValueError(f"LocalResponseNorm: alpha must be non-negative, got {alpha!r}")
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    def forward(self, x):
        if getattr(x, "ndim", 0) < 3:
            raise ValueError(f"LocalResponseNorm: expected an input with 3 or more dimensions (N, C, ...), "
                             f"got shape {tuple(getattr(x, 'shape', ()))}")
        y, cache = N.local_response_norm_forward(x, self.size, self.alpha, self.beta, self.k)
        self._save_cache(cache)
        return y

    def backward(self, dy):
        return N.local_response_norm_backward(dy, self._get_cache())
