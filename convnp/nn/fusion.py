"""Inference fusion: an eval-mode batch norm, the residual add after it and the ReLU after that in one pass.

In a ResNet block ``relu(bn(conv(x)) + identity)`` is three memory-bound passes (four with the temporary
sum) over a large activation; at inference the batch norm is a fixed affine map per channel, so the three
fold into one (``functional.normalization.batch_norm_inference``, one C loop). ResNet-18 at batch 8 spends
about a tenth of its time in these passes (docs/performance.md).

The fused path is taken only when nothing can tell the difference: eval mode (running statistics), gradients
off (no backward will ask for the layers' caches), no ``summary()``/``capture_activations()`` recording each
layer's output, a plain :class:`~convnp.nn.ReLU` (or none) and NumPy arrays. Otherwise the layers run one by
one, as written. Example (in a block's forward)::

    out = fusion.bn_add_relu(self.bn2, self.conv2(out), self.relu2, add=identity)
"""
from __future__ import annotations

import numpy as np

from .. import backend
from . import module as module_lib
from .layers.activation import ReLU
from .layers.normalization import _BatchNorm


def fusable(bn, relu=None, x=None) -> bool:
    """Whether ``relu(bn(x) + add)`` may run as one fused inference pass (see the module docstring)."""
    return (not backend.is_grad_enabled() and module_lib._summary_recorder is None
            and isinstance(bn, _BatchNorm) and bn.built and not bn.training and bn.track_running_stats
            and type(bn.running_mean) is np.ndarray
            and (relu is None or type(relu) is ReLU) and (x is None or type(x) is np.ndarray))


def bn_add_relu(bn, x, relu=None, add=None):
    """``relu(bn(x) + add)``, each of ``relu`` (a ReLU layer) and ``add`` (an array of x's shape) optional:
    one fused pass at inference, else the layers one by one (caches kept for their backward)."""
    if fusable(bn, relu, x) and (add is None or type(add) is np.ndarray):
        if relu is not None:
            relu._save_cache(None)  # (no stale cache of an earlier training step survives the skipped layer)
        return bn.inference(x, add=add, relu=relu is not None)
    y = bn(x)
    if add is not None:
        y = y + add
    return y if relu is None else relu(y)


def run_chain(layers, x):
    """Run ``layers`` one after the other on x, fusing each batch norm with the ReLU right after it where
    :func:`fusable` allows (a ResNet stem: conv, bn, relu, maxpool, ...). Returns the last output."""
    layers = list(layers)
    i = 0
    while i < len(layers):
        layer = layers[i]
        after = layers[i + 1] if i + 1 < len(layers) else None
        if type(after) is ReLU and fusable(layer, after, x):
            x = bn_add_relu(layer, x, after)
            i += 2
        else:
            x = layer(x)
            i += 1
    return x
