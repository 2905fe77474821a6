"""Convolution layers: Conv2D, DepthwiseConv2D, Conv2DTranspose (Keras names, PyTorch weights).

Thin wrappers over :mod:`convnp.functional.conv`. Output sizes round down like PyTorch and Keras
(a trailing partial window is dropped).
"""
from __future__ import annotations

import numpy as np

from ...functional import conv as C
from ...functional.padding import PAD_MODES, normalize_pads
from ...backend import get_array_module, make_rng
from ...utils.args import pair, positive_int
from .. import init as initializers
from ..module import Module
from ..parameter import Parameter
from ._checks import check_numeric
from .activation import ReLU, get_activation_layer


class Conv2D(Module):
    """2-D convolution (cross-correlation), as Keras ``Conv2D`` with a PyTorch ``Conv2d`` weight.

    Args:
        filters: number of output channels O.
        kernel_size: int or (kh, kw).
        strides: int or (sh, sw).
        padding: "valid" (none), "same" (Keras: OH = ceil(H / S) for any stride; the odd extra row/column
            goes to the bottom/right), an int, a pair (ph, pw) or ((top, bottom), (left, right)).
        dilation_rate: int or pair (spacing between kernel taps).
        groups: split input channels and filters into independent groups (in_channels = groups: depthwise).
        use_bias: add a bias per filter.
        activation: optional activation name applied to the output ("relu", ...).
        padding_mode: "zeros", "reflect", "replicate" or "circular" (PyTorch's ``padding_mode``).
        in_channels: input channels; inferred from the first input when None (lazy build).
        kernel_initializer: initializer name or function (default "he_normal"); the bias starts at zero.
        seed: seed or Generator for the initializer.

    Set ``layer.compute_input_grad = False`` on the first layer of a network to skip the input gradient
    (``backward`` then returns None).

    Shape: (N, C, H, W) -> (N, filters, OH, OW), OH = floor((H + top + bottom - D*(KH-1) - 1) / S) + 1.
    Weight (filters, in_channels / groups, kh, kw), bias (filters,); state keys ``weight``, ``bias``.
    Example: ``Conv2D(30, 5, activation="relu")`` on (N, 1, 28, 28) gives (N, 30, 24, 24) and has 780 parameters.
    """

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", dilation_rate=1, groups: int = 1,
                 use_bias: bool = True, activation=None, padding_mode: str = "zeros", in_channels: int | None = None,
                 kernel_initializer="he_normal", seed=None):
        super().__init__()
        self._setup(filters, kernel_size, strides, padding, dilation_rate, groups, use_bias, activation,
                    padding_mode, in_channels, kernel_initializer, seed)
        if self.filters % self.groups:
            raise ValueError(f"{self._name}: filters ({self.filters}) must be divisible by groups ({self.groups})")
        if self.in_channels is not None:
            self.build((None, self.in_channels, None, None))
            self.built = True

    def _setup(self, filters, kernel_size, strides, padding, dilation_rate, groups, use_bias, activation,
               padding_mode, in_channels, kernel_initializer, seed):
        name = self._name
        positive_int(filters, "filters", name)
        positive_int(groups, "groups", name)
        self.filters = int(filters)
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.strides = pair(strides, "strides", name)
        self.dilation_rate = pair(dilation_rate, "dilation_rate", name)
        self.groups = int(groups)
        if isinstance(padding, str):
            if padding.lower() not in ("valid", "same"):
                raise ValueError(f"{name}: unknown padding {padding!r}; expected 'valid', 'same', an int, "
                                 "a pair (ph, pw) or ((top, bottom), (left, right))")
            self.padding = padding.lower()
        else:
            self.padding = normalize_pads(padding, name)
        if padding_mode not in PAD_MODES:
            raise ValueError(f"{name}: unknown padding_mode {padding_mode!r}; choose one of {', '.join(PAD_MODES)}")
        self.padding_mode = padding_mode
        self.use_bias = bool(use_bias)
        self.activation = activation
        object.__setattr__(self, "act", get_activation_layer(activation, fused=True))  # not a child: no params, no row
        self.in_channels = None if in_channels is None else int(in_channels)
        self.kernel_initializer = kernel_initializer
        self.seed = seed
        self.compute_input_grad = True
        self.weight = None
        self.bias = None

    @property
    def _name(self):
        return type(self).__name__

    def build(self, input_shape):
        _build_conv_params(self, input_shape, lambda c: (self.filters, c // self.groups))  # (O, C/g, kh, kw)

    def output_shape(self, input_shape):
        """(N, filters, OH, OW) for an (N, C, H, W) input (raises the layer's error when it does not fit)."""
        (oh, ow), pads = C.conv2d_output_shape(input_shape, self.kernel_size, self.strides, self.padding,
                                               self.dilation_rate, where=self._name)
        if self.padding_mode == "reflect":
            for (before, after), size, axis in zip(pads, input_shape[-2:], ("height", "width")):
                if max(before, after) >= size:
                    raise ValueError(f"{self._name}: reflect padding ({max(before, after)}) must be smaller than "
                                     f"the input {axis} ({size})")
        return (input_shape[0], self.filters, oh, ow)

    def forward(self, x):
        check_numeric(self, x)
        self.check_input(x, 4, self.in_channels)
        out_shape = self.output_shape(x.shape)  # validates kernel vs padded input, naming this layer
        if x.shape[0] == 0:
            return _empty_batch(self, x, out_shape)
        fuse_relu = type(self.act) is ReLU  # max(y, 0) inside the convolution, its backward too
        y, cache = C.conv2d_forward(x, self.weight.data, None if self.bias is None else self.bias.data,
                                    self.strides, self.padding, self.dilation_rate, self.groups, self.padding_mode,
                                    relu=fuse_relu, input_grad=self.compute_input_grad)
        self._save_cache(cache)
        return self.act(y) if self.act is not None and not fuse_relu else y

    def backward(self, dy):
        return _conv_layer_backward(self, dy, C.conv2d_backward)

    def get_config(self):
        cfg = super().get_config()
        cfg["in_channels"] = self.in_channels
        return cfg


class DepthwiseConv2D(Conv2D):
    """Depthwise convolution: each input channel is convolved with its own ``depth_multiplier`` filters.

    A grouped :class:`Conv2D` with groups = in_channels and filters = in_channels * depth_multiplier
    (PyTorch: ``Conv2d(C, C*m, k, groups=C)``). Other arguments as in :class:`Conv2D`.

    Shape: (N, C, H, W) -> (N, C * depth_multiplier, OH, OW) with OH as in Conv2D (rounded down).
    Weight (C * depth_multiplier, 1, kh, kw).
    Example: ``DepthwiseConv2D(3, padding="same")`` on (N, 32, 56, 56) gives (N, 32, 56, 56).
    """

    def __init__(self, kernel_size, depth_multiplier: int = 1, strides=1, padding="valid", dilation_rate=1,
                 use_bias: bool = True, activation=None, padding_mode: str = "zeros", in_channels: int | None = None,
                 kernel_initializer="he_normal", seed=None):
        Module.__init__(self)
        positive_int(depth_multiplier, "depth_multiplier", "DepthwiseConv2D")
        self.depth_multiplier = int(depth_multiplier)
        self._setup(1, kernel_size, strides, padding, dilation_rate, 1, use_bias, activation, padding_mode,
                    in_channels, kernel_initializer, seed)
        if self.in_channels is not None:
            self.build((None, self.in_channels, None, None))
            self.built = True

    def build(self, input_shape):
        if input_shape is None or len(input_shape) != 4:
            raise ValueError(f"DepthwiseConv2D: expected a 4-D input (N, C, H, W), got shape {input_shape}")
        self.groups = int(input_shape[1])
        self.filters = self.groups * self.depth_multiplier
        super().build(input_shape)

    def output_shape(self, input_shape):
        """(N, C * depth_multiplier, OH, OW) for an (N, C, H, W) input."""
        n, _, oh, ow = super().output_shape(input_shape)
        return (n, input_shape[1] * self.depth_multiplier, oh, ow)


class Conv2DTranspose(Module):
    """Transposed convolution ("deconvolution"), as PyTorch ``ConvTranspose2d`` / Keras ``Conv2DTranspose``.

    It is the input-gradient of a Conv2D with the same arguments: it maps a conv's output size back to its
    input size (stride 2 upsamples by 2).

    Args:
        filters: output channels.
        kernel_size, strides, dilation_rate: int or pair.
        padding: int, pair, ((top, bottom), (left, right)) or "valid" (0): rows/columns cropped from the output.
        output_padding: int or pair added at the bottom/right to pick among the sizes a strided conv maps to
            the same output (must be smaller than the stride or the dilation).
        groups, use_bias, activation, in_channels, kernel_initializer, seed: as in :class:`Conv2D`.

    Shape: (N, C, H, W) -> (N, filters, OH, OW), OH = (H-1)*S - top - bottom + D*(KH-1) + output_padding + 1.
    Weight (in_channels, filters / groups, kh, kw) (PyTorch layout), bias (filters,).
    Example: ``Conv2DTranspose(16, 3, strides=2, padding=1, output_padding=1)`` maps 14x14 to 28x28.
    """

    def __init__(self, filters: int, kernel_size, strides=1, padding=0, output_padding=0, dilation_rate=1,
                 groups: int = 1, use_bias: bool = True, activation=None, in_channels: int | None = None,
                 kernel_initializer="he_normal", seed=None):
        super().__init__()
        positive_int(filters, "filters", "Conv2DTranspose")
        positive_int(groups, "groups", "Conv2DTranspose")
        if filters % groups:
            raise ValueError(f"Conv2DTranspose: filters ({filters}) must be divisible by groups ({groups})")
        self.filters = int(filters)
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2DTranspose")
        self.strides = pair(strides, "strides", "Conv2DTranspose")
        self.dilation_rate = pair(dilation_rate, "dilation_rate", "Conv2DTranspose")
        if isinstance(padding, str) and padding.lower() != "valid":
            raise ValueError(f"Conv2DTranspose: padding must be 'valid', an int, a pair or "
                             f"((top, bottom), (left, right)), got {padding!r}")
        self.padding = normalize_pads(0 if isinstance(padding, str) else padding, "Conv2DTranspose")
        self.output_padding = output_padding
        # validate output_padding against stride/dilation now (any input size will do)
        C.conv_transpose2d_output_shape((4096, 4096), self.kernel_size, self.strides, self.padding, output_padding,
                                        self.dilation_rate, where="Conv2DTranspose")
        self.groups = int(groups)
        self.use_bias = bool(use_bias)
        self.activation = activation
        object.__setattr__(self, "act", get_activation_layer(activation, fused=True))
        self.in_channels = None if in_channels is None else int(in_channels)
        self.kernel_initializer = kernel_initializer
        self.seed = seed
        self.compute_input_grad = True
        self.weight = None
        self.bias = None
        if self.in_channels is not None:
            self.build((None, self.in_channels, None, None))
            self.built = True

    def build(self, input_shape):
        _build_conv_params(self, input_shape, lambda c: (c, self.filters // self.groups))  # (C, O/g, kh, kw)

    def output_shape(self, input_shape):
        """(N, filters, OH, OW) for an (N, C, H, W) input."""
        (oh, ow), _, _ = C.conv_transpose2d_output_shape(input_shape, self.kernel_size, self.strides, self.padding,
                                                         self.output_padding, self.dilation_rate,
                                                         where="Conv2DTranspose")
        return (input_shape[0], self.filters, oh, ow)

    def forward(self, x):
        self.check_input(x, 4, self.in_channels)
        out_shape = self.output_shape(x.shape)
        if x.shape[0] == 0:
            return _empty_batch(self, x, out_shape)
        y, cache = C.conv_transpose2d_forward(x, self.weight.data, None if self.bias is None else self.bias.data,
                                              self.strides, self.padding, self.output_padding, self.dilation_rate,
                                              self.groups)
        self._save_cache(cache)
        return self.act(y) if self.act is not None else y

    def backward(self, dy):
        return _conv_layer_backward(self, dy, C.conv_transpose2d_backward)

    def get_config(self):
        cfg = super().get_config()
        cfg["in_channels"] = self.in_channels
        return cfg


def _conv_layer_backward(layer, dy, backward_fn):
    """Shared backward of the conv layers: through the fused activation, then ``backward_fn``
    (conv2d_backward or conv_transpose2d_backward); accumulates dW, db and returns dx (None when
    ``layer.compute_input_grad`` is False)."""
    cache = layer._get_cache()
    x_shape = cache.get("x_shape") if isinstance(cache, dict) else None
    expected = tuple(layer.output_shape(tuple(x_shape))) if x_shape is not None else None
    if expected is not None and tuple(getattr(dy, "shape", ())) != expected:
        raise ValueError(f"{type(layer).__name__}.backward: dy must have the shape of the forward output "
                         f"{expected}, got {tuple(getattr(dy, 'shape', ()))}")
    if "empty_input" in cache:  # N = 0: zero parameter gradients, an empty input gradient
        xp = get_array_module(dy)
        layer.weight.accumulate_grad(xp.zeros(layer.weight.data.shape, dtype=dy.dtype))
        if layer.bias is not None:
            layer.bias.accumulate_grad(xp.zeros(layer.bias.data.shape, dtype=dy.dtype))
        return xp.zeros(cache["empty_input"], dtype=dy.dtype) if layer.compute_input_grad else None
    fused_relu = cache.get("relu_out") is not None  # then backward_fn applies the ReLU's backward itself
    if layer.act is not None and not fused_relu:
        dy = layer.act.backward(dy)
    dx, dw, db = backward_fn(dy, cache, need_dx=layer.compute_input_grad)
    layer.weight.accumulate_grad(dw)
    if layer.bias is not None:
        layer.bias.accumulate_grad(db)
    return dx


def _empty_batch(layer, x, out_shape):
    """Forward of an empty batch (N = 0), kept out of functional.conv: an empty (0, filters, OH, OW) output
    (the activation of nothing is nothing) and a cache that ``_conv_layer_backward`` recognizes."""
    layer._save_cache({"empty_input": tuple(x.shape)})
    return get_array_module(x).zeros(out_shape, dtype=x.dtype)


def _build_conv_params(layer, input_shape, weight_lead):
    """Shared lazy build of the conv layers: infer ``in_channels`` from an (N, C, H, W) shape, check it against
    ``groups``, and create the weight ``weight_lead(C) + kernel_size`` (initialized by the layer's
    initializer) and the zero bias."""
    name = type(layer).__name__
    if input_shape is None or len(input_shape) != 4:
        raise ValueError(f"{name}: expected a 4-D input (N, C, H, W), got shape {input_shape}")
    layer.in_channels = int(input_shape[1])
    if layer.in_channels % layer.groups:
        raise ValueError(f"{name}: in_channels ({layer.in_channels}) must be divisible by groups ({layer.groups})")
    shape = tuple(weight_lead(layer.in_channels)) + tuple(layer.kernel_size)
    w = initializers.get_initializer(layer.kernel_initializer)(shape, rng=make_rng(layer.seed))
    layer.weight = Parameter(w.astype(np.float32))
    layer.bias = Parameter(np.zeros(layer.filters, np.float32)) if layer.use_bias else None
