"""Pooling layers: MaxPool2D, AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, AdaptiveAvgPool2D."""
from __future__ import annotations

from ...functional import pooling as P
from ...utils.args import pair
from ..module import Module


class _Pool2D(Module):
    gemm_free = True  # (convnp.nn.Module.gemm_free)

    _forward = _backward = None

    def __init__(self, pool_size=2, strides=None, padding="valid"):
        super().__init__()
        name = type(self).__name__
        pair(pool_size, "pool_size", name)
        if strides is not None:
            pair(strides, "strides", name)
        if isinstance(padding, str):
            if padding.lower() not in ("valid", "same"):
                raise ValueError(f"{name}: unknown padding {padding!r}; expected 'valid', 'same', an int or a pair (ph, pw)")
        else:
            pair(padding, "padding", name, minimum=0)
        self.pool_size, self.strides, self.padding = pool_size, strides, padding

    def output_shape(self, input_shape):
        (oh, ow), *_ = P.pool_output_shape(input_shape[2:], self.pool_size, self.strides, self.padding,
                                           type(self).__name__)
        return (input_shape[0], input_shape[1], oh, ow)

    def forward(self, x):
        self.check_input(x, 4)
        self.output_shape(x.shape)  # raises errors that name this layer
        y, cache = type(self)._forward(x, self.pool_size, self.strides, self.padding)
        self._save_cache(cache)
        return y

    def backward(self, dy):
        return type(self)._backward(dy, self._get_cache())


class MaxPool2D(_Pool2D):
    """Max pooling over (pool_size) windows of an (N, C, H, W) input.

    Args:
        pool_size: int or (kh, kw).
        strides: int, (sh, sw), or None (= pool_size, non-overlapping windows).
        padding: "valid" (default), "same" (Keras: OH = ceil(H / sh), padded cells never win), or an
            int / pair (PyTorch's padding, at most half the pool size).

    Shape: (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2*ph - kh) / sh) + 1 (rounded down like PyTorch
    and Keras); "same": OH = ceil(H / sh).
    Ties: the gradient goes to the first maximum of each window (row-major scan), as in PyTorch.
    Example: ``MaxPool2D(2)`` maps (N, 30, 24, 24) to (N, 30, 12, 12); AlexNet uses ``MaxPool2D(3, 2)``.
    """
    _forward = staticmethod(P.max_pool2d_forward)
    _backward = staticmethod(P.max_pool2d_backward)


class AvgPool2D(_Pool2D):
    """Average pooling over (pool_size) windows of an (N, C, H, W) input.

    Args: as :class:`MaxPool2D`. With an int/pair padding the padded zeros count in the average (PyTorch's
    ``count_include_pad=True``); with "same" only real cells are averaged (Keras).

    Shape: (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2*ph - kh) / sh) + 1; "same": ceil(H / sh).
    Example: ``AvgPool2D(2)`` (LeNet-5 subsampling).
    """
    _forward = staticmethod(P.avg_pool2d_forward)
    _backward = staticmethod(P.avg_pool2d_backward)


class _GlobalPool2D(Module):
    gemm_free = True  # (convnp.nn.Module.gemm_free)

    def __init__(self, keepdims: bool = False):
        super().__init__()
        self.keepdims = bool(keepdims)

    def output_shape(self, input_shape):
        return tuple(input_shape[:2]) + ((1, 1) if self.keepdims else ())

    def forward(self, x):
        self.check_input(x, 4)
        y, cache = type(self)._forward(x, self.keepdims)
        self._save_cache(cache)
        return y

    def backward(self, dy):
        return type(self)._backward(dy, self._get_cache())


class GlobalAvgPool2D(_GlobalPool2D):
    """Mean over the whole height and width of each channel.

    Args:
        keepdims: keep the spatial axes as size 1.

    Shape: (N, C, H, W) -> (N, C), or (N, C, 1, 1) with keepdims. Example: ``GlobalAvgPool2D()`` (ResNet head).
    """
    _forward = staticmethod(P.global_avg_pool2d_forward)
    _backward = staticmethod(P.global_avg_pool2d_backward)


class GlobalMaxPool2D(_GlobalPool2D):
    """Max over the whole height and width of each channel (gradient to the first maximum).

    Args:
        keepdims: keep the spatial axes as size 1.

    Shape: (N, C, H, W) -> (N, C), or (N, C, 1, 1) with keepdims. Example: ``GlobalMaxPool2D(keepdims=True)``.
    """
    _forward = staticmethod(P.global_max_pool2d_forward)
    _backward = staticmethod(P.global_max_pool2d_backward)


class AdaptiveAvgPool2D(Module):
    """Average pooling to a fixed output size, with PyTorch's ``AdaptiveAvgPool2d`` windows:
    output cell i covers rows floor(i*H/OH) to ceil((i+1)*H/OH) (exclusive).

    Args:
        output_size: int or (OH, OW); None in the pair keeps that input size.

    Shape: (N, C, H, W) -> (N, C, OH, OW).
    Example: ``AdaptiveAvgPool2D((7, 7))`` before VGG's classifier, as in torchvision.
    """

    gemm_free = True  # (convnp.nn.Module.gemm_free)

    def __init__(self, output_size):
        super().__init__()
        if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
            sizes = tuple(output_size)
            pair(tuple(1 if v is None else v for v in sizes), "output_size", "AdaptiveAvgPool2D")
        else:
            pair(output_size, "output_size", "AdaptiveAvgPool2D")
        self.output_size = output_size

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        if isinstance(self.output_size, (tuple, list)):
            oh, ow = self.output_size
            return (n, c, h if oh is None else oh, w if ow is None else ow)
        return (n, c, self.output_size, self.output_size)

    def forward(self, x):
        self.check_input(x, 4)
        y, cache = P.adaptive_avg_pool2d_forward(x, self.output_size)
        self._save_cache(cache)
        return y

    def backward(self, dy):
        return P.adaptive_avg_pool2d_backward(dy, self._get_cache())
