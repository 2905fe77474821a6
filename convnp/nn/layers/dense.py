"""Dense (fully connected) and Flatten layers."""
from __future__ import annotations

import numpy as np

from ...accel.threads import matmul  # (a @ b, on every core also when BLAS is on one thread)
from ...backend import make_rng
from .. import init as initializers
from ..module import Module
from ..parameter import Parameter
from ._checks import check_numeric
from .activation import get_activation_layer


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W), in C-order (channels first, as PyTorch's ``nn.Flatten``)."""


    def forward(self, x):
        check_numeric(self, x)
        if x.ndim < 2:  # (5,) would become (5, 1): five samples of one feature, never what was meant
            raise ValueError(f"Flatten: expected a batch (N, ...) of at least 2 dimensions, got shape {tuple(x.shape)}; "
                             "add the batch axis, e.g. x[None]")
        self._save_cache(x.shape)
        return x.reshape(x.shape[0], -1 if x.shape[0] else int(np.prod(x.shape[1:])))  # (N = 0 has no -1)

    def backward(self, dy):
        return dy.reshape(self._get_cache())


class Dense(Module):
    """Fully connected layer: y = x @ W.T + b (PyTorch ``Linear`` layout, weight (units, in_features)).

    Args:
        units: number of output features.
        activation: optional activation name applied after the affine map ("relu", "softmax", ...).
        use_bias: add a bias vector.
        in_features: input size; inferred from the first input when None (lazy build).
        kernel_initializer: initializer name or function (default "he_normal"); bias starts at zero.
        seed: seed or Generator for the initializer.

    Shape: (N, in_features) -> (N, units). Inputs with more axes are rejected: add ``Flatten()`` first.
    Example: ``Dense(100, activation="relu")``.
    """

    def __init__(self, units: int, activation=None, use_bias: bool = True, in_features: int | None = None,
                 kernel_initializer="he_normal", seed=None):
        super().__init__()
        if int(units) < 1:
            raise ValueError(f"Dense: units must be a positive integer, got {units}")
        self.units = int(units)
        self.use_bias = bool(use_bias)
        self.in_features = None if in_features is None else int(in_features)
        self.kernel_initializer = kernel_initializer
        self.seed = seed
        self.activation = activation
        object.__setattr__(self, "act", get_activation_layer(activation, fused=True))  # not a child: no params, no row
        self.weight = None
        self.bias = None
        if self.in_features is not None:
            self.build((None, self.in_features))
            self.built = True

    def build(self, input_shape):
        if input_shape is None or len(input_shape) != 2:
            raise ValueError(f"Dense: expected a 2-D input (N, features), got shape {input_shape}; "
                             "add Flatten() before Dense")
        self.in_features = int(input_shape[1])
        rng = make_rng(self.seed)
        w = initializers.get_initializer(self.kernel_initializer)((self.units, self.in_features), rng=rng)
        self.weight = Parameter(w.astype(np.float32))
        self.bias = Parameter(np.zeros(self.units, np.float32)) if self.use_bias else None

    def forward(self, x):
        self.check_input(x, 2, self.in_features)
        y = matmul(x, self.weight.data.T)  # (N, units)
        if self.bias is not None:
            y += self.bias.data
        self._save_cache(x)
        return self.act(y) if self.act is not None else y

    def backward(self, dy):
        x = self._get_cache()
        if self.act is not None:
            dy = self.act.backward(dy)
        self.weight.accumulate_grad(matmul(dy.T, x))  # (units, in)
        if self.bias is not None:
            self.bias.accumulate_grad(dy.sum(axis=0))
        return matmul(dy, self.weight.data)  # (N, in)

    def get_config(self):
        cfg = super().get_config()
        cfg["in_features"] = self.in_features
        return cfg
