"""Activation layers: ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softmax, LogSoftmax, and Activation(name)."""
from __future__ import annotations

from ...functional import activation as A
from ..module import Module


class Activation(Module):
    """Apply an activation by name: "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax",
    "log_softmax", "identity"/"linear". Extra keyword arguments (``alpha``, ``axis``) go to the function.

    Shape: any input; output has the same shape. Example: ``Activation("relu")(x)``.
    """


    def __init__(self, name: str = "relu", **kwargs):
        super().__init__()
        key = str(name).lower()
        if key not in A.ACTIVATIONS:
            raise ValueError(f"Activation: unknown activation {name!r}; choose one of "
                             f"{', '.join(sorted(A.ACTIVATIONS))}")
        self.name = key
        self.kwargs = dict(kwargs)
        self._fwd, self._bwd = A.ACTIVATIONS[key]

    def forward(self, x):
        y = self._fwd(x, **self.kwargs)
        self._save_cache((x, y))
        return y

    def backward(self, dy):
        x, y = self._get_cache()
        return self._bwd(dy, x, y, **self.kwargs)


class ReLU(Activation):
    """y = max(x, 0)."""

    def __init__(self):
        super().__init__("relu")

    #: overwrite the input (set by Conv2D/Dense for their fused activation, whose input is their own fresh output)
    inplace = False

    def forward(self, x):  # cache only the output: y > 0 exactly where x > 0
        y = A.relu(x, out=x if self.inplace else None)
        self._save_cache((None, y))
        return y


class LeakyReLU(Activation):
    """y = x for x > 0, alpha * x otherwise (PyTorch's negative_slope, default 0.01)."""

    def __init__(self, alpha: float = 0.01):
        super().__init__("leaky_relu", alpha=alpha)


class ELU(Activation):
    """y = x for x > 0, alpha * (exp(x) - 1) otherwise."""

    def __init__(self, alpha: float = 1.0):
        super().__init__("elu", alpha=alpha)


class Sigmoid(Activation):
    """y = 1 / (1 + exp(-x)), stable for large |x|."""

    def __init__(self):
        super().__init__("sigmoid")


class Tanh(Activation):
    """y = tanh(x)."""

    def __init__(self):
        super().__init__("tanh")


class Softmax(Activation):
    """y = exp(x) / sum(exp(x)) along ``axis`` (default: the last)."""

    def __init__(self, axis: int = -1):
        super().__init__("softmax", axis=axis)


class LogSoftmax(Activation):
    """y = log(softmax(x)) along ``axis``, computed stably."""

    def __init__(self, axis: int = -1):
        super().__init__("log_softmax", axis=axis)


_BY_NAME = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "softmax": Softmax, "log_softmax": LogSoftmax,
            "leaky_relu": LeakyReLU, "elu": ELU}


def get_activation_layer(activation, fused: bool = False):
    """A layer for ``activation`` (a name, a Module, or None -> None).

    ``fused=True`` (Conv2D and Dense, whose activation input is their own fresh output) lets a ReLU made
    from a name work in place."""
    if activation is None or isinstance(activation, Module):
        return activation
    key = str(activation).lower()
    if key in ("identity", "linear"):
        return None
    if key in _BY_NAME:
        layer = _BY_NAME[key]()
        if fused and isinstance(layer, ReLU):
            layer.inplace = True
        return layer
    return Activation(key)  # raises the clear "unknown activation" error
