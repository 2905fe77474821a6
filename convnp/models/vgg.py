"""VGG (Simonyan & Zisserman 2015, "Very deep convolutional networks for large-scale image recognition"),
configurations A (VGG11), B (VGG13), D (VGG16), E (VGG19), with torchvision's layout and state-dict keys."""
from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ._zoo_utils import finish, seed_stream
from .registry import register_model

#: channels of each 3x3 conv, "M" = 2x2 max pool (the paper's table 1)
CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}

#: number of 3x3 convs -> depth (VGG11 has 8 convs, VGG13 10, VGG16 13, VGG19 16)
DEPTH_BY_CONVS = {sum(v != "M" for v in cfg): depth for depth, cfg in CONFIGS.items()}


def conv_indices(depth: int, batch_norm: bool = False) -> list:
    """The ``features.N`` index of every 3x3 conv of VGG{depth} in torchvision's layout.

    Each conv is followed by [BatchNorm2D and] ReLU and some by a max pool, so the indices skip those:
    ``conv_indices(16) == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]``. Files that number convs
    one by one (Keras's ``block{b}_conv{i}``) are renamed with it.
    """
    if depth not in CONFIGS:
        raise ValueError(f"vgg: depth must be one of {sorted(CONFIGS)}, got {depth!r}")
    indices, i = [], 0
    for v in CONFIGS[depth]:
        if v == "M":
            i += 1
        else:
            indices.append(i)
            i += 3 if batch_norm else 2
    return indices


def vgg_features(depth: int, batch_norm: bool = False, in_channels: int = 3, width: float = 1.0, seed=None):
    """The convolutional part: 3x3 convs (pad 1) each followed by [BatchNorm2D and] ReLU, 2x2 max pools.

    Indices match torchvision (``features.0`` is the first conv, ``features.1`` its BN or ReLU, ...).
    ``width`` scales every channel count (1.0 = the paper; smaller for quick experiments and tests).
    """
    if depth not in CONFIGS:
        raise ValueError(f"vgg: depth must be one of {sorted(CONFIGS)}, got {depth!r}")
    s = seed_stream(seed)
    layers, channels = [], in_channels
    for v in CONFIGS[depth]:
        if v == "M":
            layers.append(nn.MaxPool2D(2, strides=2))
            continue
        out = max(1, int(round(v * width)))
        layers.append(nn.Conv2D(out, 3, padding=1, in_channels=channels, seed=next(s)))
        if batch_norm:
            layers.append(nn.BatchNorm2D(out))
        layers.append(nn.ReLU())
        channels = out
    return nn.Sequential(layers)


def _vgg(depth, batch_norm, num_classes, in_channels, dropout, width, weights, seed):
    s = seed_stream(seed)
    features = vgg_features(depth, batch_norm, in_channels, width, next(s))
    last = max(1, int(round(512 * width)))
    hidden = max(1, int(round(4096 * width)))
    classifier = nn.Sequential([
        nn.Dense(hidden, in_features=last * 7 * 7, seed=next(s)),  # 0
        nn.ReLU(),
        nn.Dropout(dropout, seed=next(s)),
        nn.Dense(hidden, in_features=hidden, seed=next(s)),        # 3
        nn.ReLU(),
        nn.Dropout(dropout, seed=next(s)),
        nn.Dense(num_classes, in_features=hidden, seed=next(s)),   # 6
    ])
    model = nn.Sequential(OrderedDict([("features", features), ("avgpool", nn.AdaptiveAvgPool2D((7, 7))),
                                       ("flatten", nn.Flatten()), ("classifier", classifier)]))
    return finish(model, weights)


_DOC = """VGG{depth}{bn} (Simonyan & Zisserman 2015, configuration {letter}{bn_note}), torchvision layout.

    features (3x3 convs, pad 1, ReLU, 2x2 max pools) -> adaptive average pool to 7x7 (so inputs of 32x32
    and up work; at 224x224 it is the identity) -> flatten -> classifier 4096, 4096, num_classes with
    ReLU and dropout. {params} parameters with the defaults. Keys are torchvision's (``features.0.weight``,
    ``classifier.6.bias``).

    Args:
        num_classes: outputs (1000 ImageNet classes).
        in_channels: input channels.
        dropout: dropout rate in the classifier.
        width: scales all channel counts and the hidden dense size (1.0 = the paper).
        weights: optional path to weights (.pth, .safetensors, .npz{h5}).
        seed: int for reproducible initial weights.

    Shape: (N, 3, 224, 224) -> (N, num_classes).
    Example: ``model = models.vgg{depth}{bn_suffix}(weights="vgg{depth}{bn_suffix}.pth").eval()``.
    """


def _make(depth, batch_norm, letter, params):
    name = f"vgg{depth}" + ("_bn" if batch_norm else "")

    def factory(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, width: float = 1.0,
                weights=None, seed=None):
        return _vgg(depth, batch_norm, num_classes, in_channels, dropout, width, weights, seed)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = _DOC.format(depth=depth, bn=" with batch normalization" if batch_norm else "",
                                  letter=letter, bn_note=", plus BatchNorm after every conv" if batch_norm else "",
                                  params=params, bn_suffix="_bn" if batch_norm else "",
                                  h5=", or Keras's VGG16 .h5" if depth == 16 and not batch_norm else "")
    return register_model(name)(factory)


vgg11 = _make(11, False, "A", "132,863,336")
vgg13 = _make(13, False, "B", "133,047,848")
vgg16 = _make(16, False, "D", "138,357,544")
vgg19 = _make(19, False, "E", "143,667,240")
vgg16_bn = _make(16, True, "D", "138,365,992")
