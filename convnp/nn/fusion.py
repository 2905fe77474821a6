"""Fused layers: where nothing can tell the difference, two or three layers run as one operation.

Two fusions, each taken only where the result is the same and nothing else (a recorder, a hook, a gradient)
expects the layers' separate outputs:

* **conv + ReLU + max pool** (training and inference): a ``Conv2D(activation="relu")`` followed by a
  ``MaxPool2D(k)`` (k x k windows, stride k) in a :class:`~convnp.nn.Sequential` runs as
  :func:`convnp.functional.conv_pool.conv2d_relu_max_pool2d_forward` (the convolution's full-size output never
  goes through memory), and its backward as one step too (:func:`conv_relu_pool`, :func:`conv_relu_pool_backward`).
* **batch norm + add + ReLU** (inference), below.

Inference fusion: an eval-mode batch norm, the residual add after it and the ReLU after that in one pass.

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

from .. import accel, backend
from ..functional import conv_pool
from ..utils.args import pair
from . import module as module_lib
from .layers._checks import check_numeric
from .layers.activation import ReLU
from .layers.conv import Conv2D
from .layers.normalization import _BatchNorm
from .layers.pooling import MaxPool2D


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


# ----------------------------------------------------------------------------- conv + ReLU + max pool
class _PooledByConv:
    """The cache a MaxPool2D keeps when it ran fused into the convolution before it (its gradient comes from
    :func:`conv_relu_pool_backward`); unpacking it as a pool cache is an error that says so."""

    def __init__(self, conv):
        self.conv = conv

    def __iter__(self):
        raise RuntimeError("MaxPool2D.backward: this pool ran fused with the Conv2D before it (convnp.nn.fusion); "
                           "take the gradient through the Sequential that holds both")


def conv_pool_fusable(conv, pool, x) -> bool:
    """Whether ``pool(conv(x))`` may run as :func:`conv_relu_pool`: a built Conv2D with a plain ReLU activation,
    stride 1, no dilation, one group, zero padding, followed by a MaxPool2D whose windows are its strides (2x2 or
    3x3, no padding, dilation or ceil mode, no indices), on a float32 NumPy batch the direct C provider takes
    (:func:`convnp.functional.conv_pool.can_run`), outside summary()/capture_activations()."""
    if not (type(conv) is Conv2D and type(pool) is MaxPool2D and conv.built and type(conv.act) is ReLU
            and module_lib._summary_recorder is None and type(x) is np.ndarray and accel.direct_enabled_for(x)):
        return False
    k = pair(pool.pool_size, "pool_size", "MaxPool2D")
    if (conv.strides != (1, 1) or conv.dilation_rate != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros"
            or k[0] != k[1] or pair(pool.strides if pool.strides is not None else k, "strides", "MaxPool2D") != k
            or pool.padding not in ("valid", 0, (0, 0)) or pair(pool.dilation, "dilation", "MaxPool2D") != (1, 1)
            or pool.ceil_mode or pool.return_indices):
        return False
    bias = None if conv.bias is None else conv.bias.data
    return conv_pool.can_run(x, conv.weight.data, bias, conv.padding, k[0], backend.is_grad_enabled(),
                             conv.compute_input_grad)


def conv_relu_pool(conv, pool, x):
    """``pool(conv(x))`` as one operation (see :func:`conv_pool_fusable`); both layers keep caches that send the
    gradient through :func:`conv_relu_pool_backward`."""
    check_numeric(conv, x)
    conv.check_input(x, 4, conv.in_channels)
    bias = None if conv.bias is None else conv.bias.data
    y, cache = conv_pool.conv2d_relu_max_pool2d_forward(x, conv.weight.data, bias, conv.padding,
                                                        pair(pool.pool_size, "pool_size", "MaxPool2D")[0],
                                                        save_cache=backend.is_grad_enabled())
    conv._save_cache(cache)
    pool._save_cache(_PooledByConv(conv))
    return y


def ran_fused(conv, pool) -> bool:
    """True when the last forward of ``pool`` ran fused into ``conv`` (:func:`conv_relu_pool`)."""
    cache = getattr(pool, "_cache", None)
    return type(cache) is _PooledByConv and cache.conv is conv


def conv_relu_pool_backward(conv, pool, dy):
    """Backward of :func:`conv_relu_pool`: accumulates the convolution's dW and db, returns dx (None when the
    convolution computes no input gradient)."""
    cache = conv._get_cache()
    dx, dw, db = conv_pool.conv2d_relu_max_pool2d_backward(dy, cache, conv.compute_input_grad)
    conv.weight.accumulate_grad(dw)
    if conv.bias is not None:
        conv.bias.accumulate_grad(db)
    return dx
