"""DenseNet (Huang, Liu, van der Maaten, Weinberger 2017, "Densely connected convolutional networks"),
DenseNet-BC with torchvision's state-dict keys (``features.denseblock1.denselayer1.norm1.weight``, ...)."""
from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ..backend import get_array_module
from ..nn.module import Module
from ._zoo_utils import finish, seed_stream
from .registry import register_model


class DenseLayer(Module):
    """BN-ReLU-conv1x1 (bottleneck to ``bn_size * growth_rate`` channels), BN-ReLU-conv3x3 (``growth_rate``).

    Returns only the new feature maps; :class:`DenseBlock` appends them to its running buffer.

    Shape: (N, in_channels, H, W) -> (N, growth_rate, H, W).
    Example: ``DenseLayer(64, growth_rate=32)``.
    """

    def __init__(self, in_channels: int, growth_rate: int = 32, bn_size: int = 4, seed=None):
        super().__init__()
        s = seed_stream(seed)
        width = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2D(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2D(width, 1, use_bias=False, in_channels=in_channels, seed=next(s))
        self.norm2 = nn.BatchNorm2D(width)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2D(growth_rate, 3, padding=1, use_bias=False, in_channels=width, seed=next(s))

    def forward(self, x):
        out = self.conv1(self.relu1(self.norm1(x)))     # (N, bn_size*k, H, W)
        return self.conv2(self.relu2(self.norm2(out)))  # (N, k, H, W)

    def backward(self, dy):
        d = self.conv2.backward(dy)
        d = self.conv1.backward(self.norm2.backward(self.relu2.backward(d)))
        return self.norm1.backward(self.relu1.backward(d))


class DenseBlock(Module):
    """``num_layers`` dense layers; layer i sees the block input and all earlier layers' outputs.

    Memory-conscious concatenation: the block allocates its output (N, C + L*k, H, W) once, copies the
    input into the first C channels, and each layer reads the channels written so far (a view, no copy)
    and writes its k new channels after them, instead of concatenating a growing array L times. Backward
    walks the layers in reverse over one gradient buffer, adding each layer's input gradient into the
    channels it read.

    Shape: (N, in_channels, H, W) -> (N, in_channels + num_layers * growth_rate, H, W).
    Example: ``DenseBlock(64, 6)`` maps 64 -> 256 channels (DenseNet-121's first block).
    """

    def __init__(self, in_channels: int, num_layers: int, growth_rate: int = 32, bn_size: int = 4, seed=None):
        super().__init__()
        s = seed_stream(seed)
        self.in_channels, self.growth_rate = int(in_channels), int(growth_rate)
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}",
                            DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, next(s)))

    def forward(self, x):
        self.check_input(x, 4, self.in_channels)
        n, c, h, w = x.shape
        k = self.growth_rate
        out = get_array_module(x).empty((n, c + len(self._modules) * k, h, w), dtype=x.dtype)
        out[:, :c] = x
        for layer in self._modules.values():
            out[:, c:c + k] = layer(out[:, :c])  # reads channels [0, c), writes [c, c + k)
            c += k
        self._save_cache(x.shape[1])
        return out

    def backward(self, dy):
        c0 = self._get_cache()
        k = self.growth_rate
        grad = dy.copy()  # (N, C + L*k, H, W); channels [0, c) accumulate the gradients of layers reading them
        c = grad.shape[1]
        for layer in reversed(list(self._modules.values())):
            c -= k
            grad[:, :c] += layer.backward(get_array_module(dy).ascontiguousarray(grad[:, c:c + k]))
        return grad[:, :c0]


def _transition(cin, cout, seed):
    """BN-ReLU-conv1x1 (compression) - 2x2 average pool: ``transitionN.norm/conv``."""
    return nn.Sequential(OrderedDict([
        ("norm", nn.BatchNorm2D(cin)), ("relu", nn.ReLU()),
        ("conv", nn.Conv2D(cout, 1, use_bias=False, in_channels=cin, seed=seed)),
        ("pool", nn.AvgPool2D(2, strides=2)),
    ]))


def densenet(block_config=(6, 12, 24, 16), growth_rate: int = 32, num_init_features: int = 64, bn_size: int = 4,
             compression: float = 0.5, num_classes: int = 1000, in_channels: int = 3, seed=None):
    """Build a DenseNet-BC: 7x7/2 conv, BN, ReLU, 3x3/2 max pool, dense blocks joined by transitions that
    halve the channels (``compression``) and the resolution, BN, ReLU, global average pool, dense layer.

    Shape: (N, in_channels, H, W) -> (N, num_classes); any H, W >= 32 works.
    Example: ``densenet((6, 12, 24, 16))`` is DenseNet-121.
    """
    s = seed_stream(seed)
    features = OrderedDict([
        ("conv0", nn.Conv2D(num_init_features, 7, strides=2, padding=3, use_bias=False, in_channels=in_channels,
                            seed=next(s))),
        ("norm0", nn.BatchNorm2D(num_init_features)), ("relu0", nn.ReLU()),
        ("pool0", nn.MaxPool2D(3, strides=2, padding=1)),
    ])
    channels = num_init_features
    for i, n in enumerate(block_config):
        features[f"denseblock{i + 1}"] = DenseBlock(channels, n, growth_rate, bn_size, next(s))
        channels += n * growth_rate
        if i != len(block_config) - 1:
            out = int(channels * compression)
            features[f"transition{i + 1}"] = _transition(channels, out, next(s))
            channels = out
    features["norm5"] = nn.BatchNorm2D(channels)
    return nn.Sequential(OrderedDict([
        ("features", nn.Sequential(features)), ("relu", nn.ReLU()), ("avgpool", nn.GlobalAvgPool2D()),
        ("classifier", nn.Dense(num_classes, in_features=channels, seed=next(s))),
    ]))


@register_model("densenet121")
def densenet121(num_classes: int = 1000, in_channels: int = 3, weights=None, seed=None):
    """DenseNet-121 (Huang et al. 2017): growth rate 32, blocks (6, 12, 24, 16), 64 initial features,
    bottleneck 4k, compression 0.5; 7,978,856 parameters, torchvision keys.

    Shape: (N, 3, H, W) -> (N, num_classes).
    Example: ``models.densenet121(weights="densenet121.safetensors").eval()``.
    """
    return finish(densenet((6, 12, 24, 16), num_classes=num_classes, in_channels=in_channels, seed=seed), weights)


@register_model("densenet169")
def densenet169(num_classes: int = 1000, in_channels: int = 3, weights=None, seed=None):
    """DenseNet-169 (Huang et al. 2017): growth rate 32, blocks (6, 12, 32, 32); 14,149,480 parameters.

    Shape: (N, 3, H, W) -> (N, num_classes).
    Example: ``models.densenet169(num_classes=10)``.
    """
    return finish(densenet((6, 12, 32, 32), num_classes=num_classes, in_channels=in_channels, seed=seed), weights)
