"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to document recognition").

Layer names follow the paper: C1, S2, C3, S4, C5, F6 and the output layer.
"""
from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ._zoo_utils import seed_stream
from .registry import register_model


def _lenet(activation, pooling, num_classes, in_channels, input_size, seed):
    if input_size not in (28, 32):
        raise ValueError(f"lenet5: input_size must be 32 (the paper's input) or 28 (MNIST, C1 pads by 2), "
                         f"got {input_size!r}")
    if pooling not in ("avg", "max"):
        raise ValueError(f"lenet5: pooling must be 'avg' (the paper's subsampling) or 'max', got {pooling!r}")
    seeds = seed_stream(seed)
    pool = nn.AvgPool2D if pooling == "avg" else nn.MaxPool2D
    pad = 2 if input_size == 28 else 0
    return nn.Sequential(OrderedDict([
        ("c1", nn.Conv2D(6, 5, padding=pad, activation=activation, in_channels=in_channels, seed=next(seeds))),
        ("s2", pool(2)),                                                                  # (N, 6, 14, 14)
        ("c3", nn.Conv2D(16, 5, activation=activation, in_channels=6, seed=next(seeds))),  # (N, 16, 10, 10)
        ("s4", pool(2)),                                                                  # (N, 16, 5, 5)
        ("c5", nn.Conv2D(120, 5, activation=activation, in_channels=16, seed=next(seeds))),  # (N, 120, 1, 1)
        ("flatten", nn.Flatten()),
        ("f6", nn.Dense(84, activation=activation, in_features=120, seed=next(seeds))),
        ("output", nn.Dense(num_classes, in_features=84, seed=next(seeds))),
    ]))


@register_model("lenet5")
def lenet5(num_classes: int = 10, in_channels: int = 1, activation: str = "tanh", pooling: str = "avg",
           input_size: int = 32, seed=None):
    """LeNet-5 as in LeCun et al. 1998: C1 6@5x5, S2 2x2 average subsampling, C3 16@5x5, S4, C5 120@5x5,
    F6 84, 10 outputs; tanh (or ``activation="sigmoid"``).

    Differences from the paper, as in most textbooks: C3 connects to all six S2 maps (the paper's
    partial connection table saved compute in 1998), S2/S4 are plain average pools (the paper's have a
    trainable coefficient and bias), and the output layer is a Dense layer giving logits for a softmax
    cross-entropy loss instead of Euclidean RBF units. 61,706 parameters.

    Args:
        num_classes: output units (10 digits).
        in_channels: input channels (1 for grey images).
        activation: "tanh" (paper), "sigmoid", or any activation name.
        pooling: "avg" (the paper's subsampling) or "max".
        input_size: 32 (the paper's 32x32 field) or 28 (MNIST as is: C1 pads by 2, same shapes after).
        seed: int for reproducible initial weights.

    Shape: (N, in_channels, 32, 32) -> (N, num_classes).
    Example: ``models.lenet5()(np.zeros((8, 1, 32, 32), np.float32)).shape == (8, 10)``.
    """
    return _lenet(activation, pooling, num_classes, in_channels, input_size, seed)


@register_model("lenet5_modern")
def lenet5_modern(num_classes: int = 10, in_channels: int = 1, input_size: int = 28, seed=None):
    """LeNet-5 with today's choices (after LeCun et al. 1998): ReLU activations and 2x2 max pooling.

    Same layers and 61,706 parameters as :func:`lenet5`; defaults to 28x28 MNIST input (C1 pads by 2).

    Shape: (N, in_channels, 28, 28) -> (N, num_classes) (or 32x32 with ``input_size=32``).
    Example: ``models.lenet5_modern()(np.zeros((8, 1, 28, 28), np.float32)).shape == (8, 10)``.
    """
    return _lenet("relu", "max", num_classes, in_channels, input_size, seed)
