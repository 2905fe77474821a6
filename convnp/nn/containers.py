"""Containers: Sequential, Residual (skip connection), Concat (channel concatenation), Identity."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .. import backend
from ..backend import get_array_module
from . import module as _module
from .module import Module

#: under ``no_grad()`` in eval mode, a Sequential runs a NumPy batch larger than this in chunks of this many
#: samples: the same outputs, but each chunk's activations stay in the CPU cache instead of streaming through
#: memory (DeepConvNet inference at batch 1000: ~2x the throughput). None switches it off.
INFERENCE_CHUNK = 64


def _fusion():
    from . import fusion  # (it imports the layers, which import this module's package)
    return fusion


class Identity(Module):
    """y = x. Useful as a no-op shortcut or placeholder."""


    def forward(self, x):
        return x

    def backward(self, dy):
        return dy


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse.

    Args:
        layers: a list of modules (named "0", "1", ... as in PyTorch) or a dict/OrderedDict of
            name -> module (torchvision DenseNet's ``features.denseblock1`` style names).

    Example::

        model = Sequential([Conv2D(30, 5, activation="relu"), MaxPool2D(2), Flatten(), Dense(10)])
    """


    def __init__(self, layers=(), *more_layers):
        super().__init__()
        if isinstance(layers, Module):
            layers = [layers]
        if isinstance(layers, dict):
            for name, layer in layers.items():
                self.add(layer, name)
        else:
            for layer in list(layers) + list(more_layers):
                self.add(layer)

    def add(self, layer: Module, name: str | None = None) -> "Sequential":
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential: expected a Module, got {type(layer).__name__}")
        self.add_module(str(len(self._modules)) if name is None else str(name), layer)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        if isinstance(index, str):
            return self._modules[index]
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(layers[index])
        return layers[index]

    def forward(self, x):
        if self._infer_in_chunks(x):
            xp = get_array_module(x)
            return xp.concatenate([self._forward_layers(x[i:i + INFERENCE_CHUNK])
                                   for i in range(0, x.shape[0], INFERENCE_CHUNK)])
        return self._forward_layers(x)

    def _forward_layers(self, x):
        layers = list(self._modules.values())
        i = 0
        while i < len(layers):  # a conv + ReLU + max pool runs as one operation where it may (nn.fusion)
            if i + 1 < len(layers) and _fusion().conv_pool_fusable(layers[i], layers[i + 1], x):
                x = _fusion().conv_relu_pool(layers[i], layers[i + 1], x)
                i += 2
            else:
                x = layers[i](x)
                i += 1
        return x

    def _infer_in_chunks(self, x) -> bool:
        """Chunk only what cannot tell the difference: inference (no cache, eval mode: every built-in layer is
        then per-sample) on the CPU, outside summary()/capture_activations(), without layers that say they mix
        samples (``mixes_samples = True``)."""
        return (INFERENCE_CHUNK is not None and type(x) is np.ndarray and x.ndim >= 1
                and x.shape[0] > INFERENCE_CHUNK and not backend.is_grad_enabled()
                and _module._summary_recorder is None
                and not any(m.training or m.mixes_samples for m in self.modules()))

    def backward(self, dy):
        return self._backward_layers(dy)

    def _backward_layers(self, dy):
        layers = list(self._modules.values())
        i = len(layers) - 1
        while i >= 0:
            if i > 0 and _fusion().ran_fused(layers[i - 1], layers[i]):
                dy = _fusion().conv_relu_pool_backward(layers[i - 1], layers[i], dy)
                i -= 2
            else:
                dy = layers[i].backward(dy)
                i -= 1
        return dy

    def get_config(self):
        names = list(self._modules)
        if names == [str(i) for i in range(len(names))]:
            return {"layers": list(self._modules.values())}
        return {"layers": OrderedDict(self._modules)}

    def extra_repr(self):
        return ""


class Residual(Module):
    """Skip connection: ``y = activation(body(x) + shortcut(x))``.

    Args:
        body: the residual branch F(x).
        shortcut: None for the identity mapping, or a projection (e.g. 1x1 conv + BN) when shapes change.
        activation: optional name of an activation applied after the sum ("relu" in ResNet v1;
            None for pre-activation blocks).

    Backward: dL/dx = body.backward(g) + shortcut.backward(g), where g is the gradient after the activation.
    """


    def __init__(self, body: Module, shortcut: Module | None = None, activation: str | None = None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut if shortcut is not None else Identity()
        if activation is not None:
            from .layers.activation import get_activation_layer
            self.activation = get_activation_layer(activation)
        else:
            self.activation = None

    def forward(self, x):
        y = self.body(x)
        s = self.shortcut(x)
        if y.shape != s.shape:
            raise ValueError(f"Residual: body output {tuple(y.shape)} and shortcut output {tuple(s.shape)} "
                             "differ; use a projection shortcut")
        out = y + s
        return self.activation(out) if self.activation is not None else out

    def backward(self, dy):
        if self.activation is not None:
            dy = self.activation.backward(dy)
        return self.body.backward(dy) + self.shortcut.backward(dy)


class Concat(Module):
    """Run branches on the same input and concatenate their outputs along ``axis`` (channels by default).

    DenseNet uses ``Concat([Identity(), layer])`` to append new feature maps to the input.
    """


    def __init__(self, branches, axis: int = 1):
        super().__init__()
        for i, branch in enumerate(branches):
            self.add_module(str(i), branch)
        self.axis = axis

    def forward(self, x):
        outs = [branch(x) for branch in self._modules.values()]
        self._save_cache([o.shape[self.axis] for o in outs])
        return get_array_module(outs[0]).concatenate(outs, axis=self.axis)

    def backward(self, dy):
        sizes = self._get_cache()
        xp = get_array_module(dy)
        splits = xp.split(dy, list(_cumsum(sizes[:-1])), axis=self.axis)
        dx = None
        for branch, g in zip(self._modules.values(), splits):
            d = branch.backward(xp.ascontiguousarray(g))
            dx = d if dx is None else dx + d
        return dx

    def get_config(self):
        return {"branches": list(self._modules.values()), "axis": self.axis}


def _cumsum(values):
    total = 0
    for v in values:
        total += v
        yield total
