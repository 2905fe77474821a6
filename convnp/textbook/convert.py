"""Convert a list of textbook layers into a regular convnp model (``network.to_model()``).

==========================  =================================================================
textbook layer              convnp layer (weights copied)
==========================  =================================================================
Convolution(W, b, s, p)     Conv2D(FN, (FH, FW), strides=s, padding=p): weight = W, bias = b
Pooling(ph, pw, s, p)       MaxPool2D((ph, pw), strides=s, padding=p)
Affine(W, b)                Flatten() (when the input is not flat yet), Dense(out): weight = W.T, bias = b
Relu / Sigmoid              ReLU / Sigmoid
BatchNormalization          BatchNorm2D (4-D input) or BatchNorm1D, momentum = 1 - momentum
Dropout(r)                  Dropout(r), see below
==========================  =================================================================

The book's Dropout multiplies by the mask in training and by (1 - r) at test time; convnp's is inverted
(mask / (1 - r) in training, identity at test). The factor (1 - r) is folded into the weights of the next
Convolution/Affine, looking past layers that commute with a positive scale (Relu, Pooling); a trailing
dropout (DeepConvNet's last layer) folds it into the weights and bias of the preceding Affine instead.
The converted model then computes exactly the book network's function in both modes (with the same masks).
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .layers import Affine, BatchNormalization, Convolution, Dropout, Pooling, Relu, Sigmoid

__all__ = ["layers_to_model"]

_HOMOGENEOUS = (Relu, Pooling)  # f(c * x) = c * f(x) for c > 0


def _dropout_scales(layers):
    """(weight_scale, bias_scale) per layer index: the book's test-time dropout factors, folded."""
    w_scale, b_scale = [1.0] * len(layers), [1.0] * len(layers)
    for i, layer in enumerate(layers):
        if not isinstance(layer, Dropout) or layer.dropout_ratio == 0:
            continue
        keep = 1.0 - layer.dropout_ratio
        j = i + 1
        while j < len(layers) and isinstance(layers[j], _HOMOGENEOUS):
            j += 1
        if j < len(layers) and isinstance(layers[j], (Affine, Convolution)):
            w_scale[j] *= keep  # W (x * keep) + b
            continue
        k = i - 1
        while k >= 0 and isinstance(layers[k], _HOMOGENEOUS):
            k -= 1
        if j == len(layers) and k >= 0 and isinstance(layers[k], (Affine, Convolution)):
            w_scale[k] *= keep  # keep * (W x + b)
            b_scale[k] *= keep
            continue
        raise ValueError(f"to_model: cannot fold the book's test-time dropout scaling of layer {i} "
                         f"({type(layer).__name__}) into a neighbouring Affine/Convolution layer; "
                         "convnp's inverted Dropout would change the function")
    return w_scale, b_scale


def _set(param, array, xp):
    param.data = xp.ascontiguousarray(xp.asarray(array, dtype=param.data.dtype))


def layers_to_model(layers, input_dim):
    """An :class:`convnp.nn.Sequential` equivalent to the textbook ``layers`` (list) on (N, *input_dim) input,
    with copies of the weights, on the device and in the dtype of the textbook parameters."""
    from .. import nn

    arrays = [a for layer in layers for a in (getattr(layer, "W", None), getattr(layer, "gamma", None))
              if a is not None]
    xp = get_array_module(*arrays) if arrays else np
    dtype = arrays[0].dtype if arrays else np.dtype(np.float64)
    w_scale, b_scale = _dropout_scales(layers)
    out, flat = [], len(tuple(input_dim)) <= 1
    todo = []  # (convnp layer, function that copies the weights) once the model has its dtype/device
    for i, layer in enumerate(layers):
        ws, bs = w_scale[i], b_scale[i]
        if isinstance(layer, Convolution):
            fn, c, fh, fw = layer.W.shape
            m = nn.Conv2D(fn, (fh, fw), strides=layer.stride, padding=layer.pad or "valid", in_channels=c)
            todo.append(lambda m=m, L=layer, ws=ws, bs=bs: (_set(m.weight, L.W * ws, xp), _set(m.bias, L.b * bs, xp)))
        elif isinstance(layer, Pooling):
            m = nn.MaxPool2D((layer.pool_h, layer.pool_w), strides=layer.stride, padding=layer.pad or "valid")
        elif isinstance(layer, Affine):
            if not flat:
                out.append(nn.Flatten())
                flat = True
            n_in, n_out = layer.W.shape
            m = nn.Dense(n_out, in_features=n_in)
            todo.append(lambda m=m, L=layer, ws=ws, bs=bs: (_set(m.weight, (L.W * ws).T, xp),
                                                             _set(m.bias, L.b * bs, xp)))
        elif isinstance(layer, Relu):
            m = nn.ReLU()
        elif isinstance(layer, Sigmoid):
            m = nn.Sigmoid()
        elif isinstance(layer, Dropout):
            m = nn.Dropout(layer.dropout_ratio)
        elif isinstance(layer, BatchNormalization):
            cls = nn.BatchNorm1D if flat else nn.BatchNorm2D
            m = cls(layer.gamma.shape[0], eps=layer.eps, momentum=1.0 - layer.momentum)

            def copy_bn(m=m, L=layer):
                _set(m.weight, L.gamma, xp)
                _set(m.bias, L.beta, xp)
                m.running_mean = xp.asarray(L.running_mean, dtype=dtype).copy()
                m.running_var = xp.asarray(L.running_var, dtype=dtype).copy()
            todo.append(copy_bn)
        else:
            raise TypeError(f"to_model: no convnp equivalent for layer {i} ({type(layer).__name__})")
        out.append(m)
    model = nn.Sequential(out).astype(dtype)
    if xp is not np:
        model.to("cuda")
    for copy in todo:
        copy()
    return model
