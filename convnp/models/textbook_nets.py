"""The textbook's MNIST networks (Saito, "Deep Learning from Scratch", ch. 7-8) and convnp's best MNIST recipe.

* ``simple_convnet``: conv 30@5x5 - ReLU - maxpool 2 - dense 100 - ReLU - dense 10 (98.96% in the book).
* ``deep_convnet``: six 3x3 'same' convs (16, 16, 32, 32, 64, 64) with a 2x2 max pool after each pair,
  dense 50 - ReLU - dropout 0.5 - dense 10, He initialization (the book reports 99.38%).
* ``mnist_best``: the deep_convnet layout widened, with batch normalization after every conv; trained
  with small rotations/zooms/shifts and a one-cycle schedule (``TRAINING_RECIPES["mnist_best"]``).

All three output logits for a softmax cross-entropy loss and take ``(N, 1, 28, 28)`` images in [0, 1].
"""
from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ._zoo_utils import seed_stream
from .registry import register_model

#: defaults ``convnp train --model NAME`` uses (command-line flags override them)
TRAINING_RECIPES = {
    "simple_convnet": {"epochs": 5, "batch_size": 100, "optimizer": "adam", "lr": 1e-3, "augment": "shift",
                       "schedule": "cosine"},
    "deep_convnet": {"epochs": 20, "batch_size": 100, "optimizer": "adam", "lr": 1e-3, "augment": False,
                     "schedule": "cosine"},  # constant-rate Adam (the book's) ends at 99.15% (seed 0)
    "mnist_best": {"epochs": 15, "batch_size": 128, "optimizer": "adam", "lr": 3e-3, "augment": True,
                   "schedule": "onecycle"},
}


def _out(size, pools):
    for _ in range(pools):
        size //= 2
    return size


@register_model("simple_convnet")
def simple_convnet(num_classes: int = 10, in_channels: int = 1, input_size: int = 28, filters: int = 30,
                   kernel_size: int = 5, hidden: int = 100, seed=None):
    """SimpleConvNet of the textbook: conv (30 filters 5x5, stride 1, no padding) - ReLU - 2x2 max pool -
    dense 100 - ReLU - dense ``num_classes`` (logits). 433,890 parameters on MNIST.

    Args:
        num_classes: output units.
        in_channels: image channels (1 for MNIST).
        input_size: image height = width (28 for MNIST).
        filters, kernel_size, hidden: the conv width, its kernel size and the hidden dense width.
        seed: int for reproducible initial weights (He normal).

    Shape: (N, in_channels, S, S) -> (N, num_classes); after the conv (N, 30, S-4, S-4), after the pool
    (N, 30, (S-4)//2, (S-4)//2).
    Example: ``models.simple_convnet()(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)``.
    """
    seeds = seed_stream(seed)
    conv_size = input_size - kernel_size + 1
    if conv_size < 2:
        raise ValueError(f"simple_convnet: input_size {input_size} is too small for a {kernel_size}x{kernel_size} "
                         "convolution followed by a 2x2 pool")
    pooled = conv_size // 2
    conv = nn.Conv2D(filters, kernel_size, activation="relu", in_channels=in_channels, seed=next(seeds))
    conv.compute_input_grad = False  # first layer: the gradient of the image is never needed
    return nn.Sequential(OrderedDict([
        ("conv1", conv),                                                           # (N, 30, 24, 24)
        ("pool1", nn.MaxPool2D(2)),                                                # (N, 30, 12, 12)
        ("flatten", nn.Flatten()),                                                 # (N, 4320)
        ("fc1", nn.Dense(hidden, activation="relu", in_features=filters * pooled * pooled, seed=next(seeds))),
        ("fc2", nn.Dense(num_classes, in_features=hidden, seed=next(seeds))),
    ]))


@register_model("deep_convnet")
def deep_convnet(num_classes: int = 10, in_channels: int = 1, input_size: int = 28, hidden: int = 50,
                 dropout: float = 0.5, seed=None):
    """DeepConvNet of the textbook: [conv3x3 16 - ReLU] x2 - pool - [conv3x3 32 - ReLU] x2 - pool -
    [conv3x3 64 - ReLU] x2 - pool - dense 50 - ReLU - dropout 0.5 - dense ``num_classes``; He init.

    All convs use 'same' padding (the book pads its fourth conv by 2, giving 4x4 instead of 3x3 maps at
    the end). 101,152 parameters on MNIST.

    Shape: (N, in_channels, S, S) -> (N, num_classes); spatial size S -> S//2 -> S//4 -> S//8 (28 -> 3).
    Example: ``models.deep_convnet(seed=0)(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)``.
    """
    seeds = seed_stream(seed)
    layers = OrderedDict()
    channels = in_channels
    for block, width in enumerate((16, 32, 64), start=1):
        for j in (1, 2):
            conv = nn.Conv2D(width, 3, padding="same", activation="relu", in_channels=channels, seed=next(seeds))
            if block == 1 and j == 1:
                conv.compute_input_grad = False
            layers[f"conv{2 * block + j - 2}"] = conv
            channels = width
        layers[f"pool{block}"] = nn.MaxPool2D(2)
    final = _out(input_size, 3)
    if final < 1:
        raise ValueError(f"deep_convnet: input_size {input_size} is too small for three 2x2 pools")
    layers["flatten"] = nn.Flatten()
    layers["fc1"] = nn.Dense(hidden, activation="relu", in_features=64 * final * final, seed=next(seeds))
    layers["dropout"] = nn.Dropout(dropout, seed=next(seeds))
    layers["fc2"] = nn.Dense(num_classes, in_features=hidden, seed=next(seeds))
    return nn.Sequential(layers)


@register_model("mnist_best")
def mnist_best(num_classes: int = 10, in_channels: int = 1, input_size: int = 28, widths=(32, 64, 128),
               hidden: int = 256, dropout: float = 0.3, seed=None):
    """convnp's MNIST recipe: [conv3x3 - BN - ReLU] x2 per stage (widths 32, 64, 128), 2x2 max pool after
    each stage, dense 256 - BN - ReLU - dropout 0.3 - dense ``num_classes``.

    Trained by ``convnp train --model mnist_best`` with rotations up to 10 degrees, zoom 0.9-1.1, shifts up
    to 2 pixels, Adam and a one-cycle learning rate (peak 3e-3) for 15 epochs; target >= 99.6% on the
    MNIST test set.

    Shape: (N, in_channels, S, S) -> (N, num_classes); S -> S//2 -> S//4 -> S//8 (28 -> 3).
    Example: ``models.mnist_best(seed=0)(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)``.
    """
    seeds = seed_stream(seed)
    layers = OrderedDict()
    channels = in_channels
    widths = [int(w) for w in widths]
    for stage, width in enumerate(widths, start=1):
        for j in (1, 2):
            conv = nn.Conv2D(width, 3, padding="same", use_bias=False, in_channels=channels, seed=next(seeds))
            if stage == 1 and j == 1:
                conv.compute_input_grad = False
            layers[f"conv{stage}_{j}"] = conv
            layers[f"bn{stage}_{j}"] = nn.BatchNorm2D(width)
            layers[f"relu{stage}_{j}"] = nn.ReLU()
            channels = width
        layers[f"pool{stage}"] = nn.MaxPool2D(2)
    final = _out(input_size, len(widths))
    if final < 1:
        raise ValueError(f"mnist_best: input_size {input_size} is too small for {len(widths)} 2x2 pools")
    layers["flatten"] = nn.Flatten()
    layers["fc1"] = nn.Dense(hidden, use_bias=False, in_features=channels * final * final, seed=next(seeds))
    layers["bn_fc1"] = nn.BatchNorm1D(hidden)
    layers["relu_fc1"] = nn.ReLU()
    layers["dropout"] = nn.Dropout(dropout, seed=next(seeds))
    layers["fc2"] = nn.Dense(num_classes, in_features=hidden, seed=next(seeds))
    return nn.Sequential(layers)
