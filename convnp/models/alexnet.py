"""AlexNet (Krizhevsky, Sutskever, Hinton 2012, "ImageNet classification with deep convolutional neural
networks"): the torchvision variant (loads torchvision weights) and the network as published."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .. import nn
from ._zoo_utils import finish, seed_stream
from .registry import register_model


@register_model("alexnet")
def alexnet(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, weights=None, seed=None):
    """AlexNet as in torchvision (the "one weird trick" single-GPU variant of Krizhevsky et al. 2012).

    features: conv 64@11x11/4 pad 2, max pool 3/2, conv 192@5x5 pad 2, max pool 3/2, conv 384, 256, 256
    @3x3 pad 1, max pool 3/2; avgpool: adaptive average pooling to 6x6 (so inputs from 63x63 up work);
    classifier: dropout, 4096, dropout, 4096, num_classes. 61,100,840 parameters; state-dict keys are
    torchvision's (``features.0.weight`` ... ``classifier.6.bias``).

    Args:
        num_classes: outputs (1000 ImageNet classes).
        in_channels: input channels.
        dropout: dropout rate before the first two dense layers.
        weights: optional path to torchvision-format weights (.pth, .safetensors, .npz).
        seed: int for reproducible initial weights.

    Shape: (N, 3, 224, 224) -> (N, num_classes).
    Example: ``models.alexnet(weights="alexnet.pth").eval()``.
    """
    s = seed_stream(seed)
    features = nn.Sequential([
        nn.Conv2D(64, 11, strides=4, padding=2, in_channels=in_channels, seed=next(s)),  # 0: (N, 64, 55, 55)
        nn.ReLU(),
        nn.MaxPool2D(3, strides=2),                                                       # 2: (N, 64, 27, 27)
        nn.Conv2D(192, 5, padding=2, in_channels=64, seed=next(s)),                       # 3
        nn.ReLU(),
        nn.MaxPool2D(3, strides=2),                                                       # 5: (N, 192, 13, 13)
        nn.Conv2D(384, 3, padding=1, in_channels=192, seed=next(s)),                      # 6
        nn.ReLU(),
        nn.Conv2D(256, 3, padding=1, in_channels=384, seed=next(s)),                      # 8
        nn.ReLU(),
        nn.Conv2D(256, 3, padding=1, in_channels=256, seed=next(s)),                      # 10
        nn.ReLU(),
        nn.MaxPool2D(3, strides=2),                                                       # 12: (N, 256, 6, 6)
    ])
    classifier = nn.Sequential([
        nn.Dropout(dropout, seed=next(s)),
        nn.Dense(4096, in_features=256 * 6 * 6, seed=next(s)),                            # 1
        nn.ReLU(),
        nn.Dropout(dropout, seed=next(s)),
        nn.Dense(4096, in_features=4096, seed=next(s)),                                   # 4
        nn.ReLU(),
        nn.Dense(num_classes, in_features=4096, seed=next(s)),                            # 6
    ])
    model = nn.Sequential(OrderedDict([("features", features), ("avgpool", nn.AdaptiveAvgPool2D((6, 6))),
                                       ("flatten", nn.Flatten()), ("classifier", classifier)]))
    return finish(model, weights)


@register_model("alexnet_paper")
def alexnet_paper(num_classes: int = 1000, in_channels: int = 3, groups: int = 2, seed=None):
    """AlexNet as published by Krizhevsky, Sutskever and Hinton (NIPS 2012).

    conv1 96@11x11 stride 4 -> ReLU -> local response normalization -> overlapping max pool 3/2;
    conv2 256@5x5 pad 2 -> ReLU -> LRN -> max pool 3/2; conv3 384, conv4 384, conv5 256 @3x3 pad 1 -> max
    pool 3/2; fc6 4096, fc7 4096 (ReLU, dropout 0.5), fc8 num_classes. The input is 227x227 (the paper's
    "224" plus the padding its arithmetic implies). ``groups=2`` reproduces the paper's two-GPU split
    (conv2, conv4 and conv5 see only their own GPU's half of the channels: 60,965,224 parameters);
    ``groups=1`` connects everything (62,378,344).

    LRN uses the paper's constants k=2, n=5, alpha=1e-4, beta=0.75; convnp's LocalResponseNorm follows
    PyTorch and divides alpha by n, so it is given alpha=5e-4. Weights start N(0, 0.01) with biases 1 in
    conv2, conv4, conv5 and the dense layers, 0 elsewhere, as in the paper.

    Shape: (N, 3, 227, 227) -> (N, num_classes).
    Example: ``models.alexnet_paper().summary((3, 227, 227))``.
    """
    if groups not in (1, 2):
        raise ValueError(f"alexnet_paper: groups must be 1 or 2 (the paper's two GPUs), got {groups!r}")
    s = seed_stream(seed)

    def conv(filters, k, cin, stride=1, pad=0, g=1):
        return nn.Conv2D(filters, k, strides=stride, padding=pad, groups=g, activation="relu", in_channels=cin,
                         kernel_initializer="normal", seed=next(s))

    def lrn():
        return nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0)

    features = nn.Sequential(OrderedDict([
        ("conv1", conv(96, 11, in_channels, stride=4)), ("norm1", lrn()), ("pool1", nn.MaxPool2D(3, strides=2)),
        ("conv2", conv(256, 5, 96, pad=2, g=groups)), ("norm2", lrn()), ("pool2", nn.MaxPool2D(3, strides=2)),
        ("conv3", conv(384, 3, 256, pad=1)),
        ("conv4", conv(384, 3, 384, pad=1, g=groups)),
        ("conv5", conv(256, 3, 384, pad=1, g=groups)), ("pool5", nn.MaxPool2D(3, strides=2)),
    ]))
    dense = dict(kernel_initializer="normal")
    classifier = nn.Sequential(OrderedDict([
        ("fc6", nn.Dense(4096, activation="relu", in_features=256 * 6 * 6, seed=next(s), **dense)),
        ("drop6", nn.Dropout(0.5, seed=next(s))),
        ("fc7", nn.Dense(4096, activation="relu", in_features=4096, seed=next(s), **dense)),
        ("drop7", nn.Dropout(0.5, seed=next(s))),
        ("fc8", nn.Dense(num_classes, in_features=4096, seed=next(s), **dense)),
    ]))
    for layer in (features.conv2, features.conv4, features.conv5, classifier.fc6, classifier.fc7, classifier.fc8):
        layer.bias.data = np.ones_like(layer.bias.data)
    return nn.Sequential(OrderedDict([("features", features), ("flatten", nn.Flatten()),
                                      ("classifier", classifier)]))
