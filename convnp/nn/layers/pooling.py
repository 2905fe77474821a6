"""Pooling layers: MaxPool2D, AvgPool2D, MaxUnpool2D, GlobalAvgPool2D, GlobalMaxPool2D, AdaptiveAvgPool2D."""
from __future__ import annotations

from ...functional import pooling as P
from ...utils.args import pair
from ..module import Module


class _Pool2D(Module):

    _forward = _backward = None

    def _options(self):
        """Keyword arguments of the functional op beyond pool_size, strides, padding."""
        return {}

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
                                           type(self).__name__, getattr(self, "ceil_mode", False),
                                           getattr(self, "dilation", 1))
        return (input_shape[0], input_shape[1], oh, ow)

    def forward(self, x):
        self.check_input(x, 4)
        self.output_shape(x.shape)  # raises errors that name this layer
        y, cache = type(self)._forward(x, self.pool_size, self.strides, self.padding, **self._options())
        self._save_cache(cache)
        if getattr(self, "return_indices", False):
            return y, P.max_pool2d_indices(cache)
        return y

    def backward(self, dy):
        return type(self)._backward(dy, self._get_cache())


class MaxPool2D(_Pool2D):
    """Max pooling over (pool_size) windows of an (N, C, H, W) input.

    Args:
        pool_size: int or (kh, kw).
        strides: int, (sh, sw), or None (= pool_size, non-overlapping windows).
        padding: "valid" (default), "same" (Keras: OH = ceil(H / sh), padded cells never win), or an
            int / pair (PyTorch's padding, at most half the (dilated) pool size).
        dilation: int or pair, spacing of the window taps (PyTorch's ``dilation``).
        ceil_mode: round the output size up, with PyTorch's rule (a window must start inside the input or
            its left/top padding).
        return_indices: forward returns ``(y, indices)``, indices (N, C, OH, OW) int64 = row * W + col of
            each maximum, for :class:`MaxUnpool2D`.

    Shape: (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2*ph - d*(kh-1) - 1) / sh) + 1 (rounded down like
    PyTorch and Keras; ``ceil_mode``: up); "same": OH = ceil(H / sh).
    Ties: the gradient goes to the first maximum of each window (row-major scan), as in PyTorch.
    Example: ``MaxPool2D(2)`` maps (N, 30, 24, 24) to (N, 30, 12, 12); AlexNet uses ``MaxPool2D(3, 2)``.
    """
    _forward = staticmethod(P.max_pool2d_forward)
    _backward = staticmethod(P.max_pool2d_backward)

    def __init__(self, pool_size=2, strides=None, padding="valid", dilation=1, ceil_mode: bool = False,
                 return_indices: bool = False):
        super().__init__(pool_size, strides, padding)
        pair(dilation, "dilation", "MaxPool2D")
        self.dilation, self.ceil_mode, self.return_indices = dilation, bool(ceil_mode), bool(return_indices)

    def _options(self):
        return {"ceil_mode": self.ceil_mode, "dilation": self.dilation}


class AvgPool2D(_Pool2D):
    """Average pooling over (pool_size) windows of an (N, C, H, W) input.

    Args: pool_size, strides, padding, ceil_mode as :class:`MaxPool2D`. With an int/pair padding the padded
    zeros count in the average (PyTorch's ``count_include_pad=True``); with "same" only real cells are
    averaged (Keras).
        count_include_pad: False divides each window by its real (unpadded) cells.
        divisor_override: a positive int that replaces every divisor (PyTorch's).

    Shape: (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2*ph - kh) / sh) + 1; "same": ceil(H / sh).
    Example: ``AvgPool2D(2)`` (LeNet-5 subsampling).
    """
    _forward = staticmethod(P.avg_pool2d_forward)
    _backward = staticmethod(P.avg_pool2d_backward)

    def __init__(self, pool_size=2, strides=None, padding="valid", ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):
        super().__init__(pool_size, strides, padding)
        if divisor_override is not None and (isinstance(divisor_override, bool)
                                             or not float(divisor_override).is_integer() or divisor_override < 1):
            raise ValueError(f"AvgPool2D: divisor_override must be a positive integer, got {divisor_override!r}")
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        self.divisor_override = divisor_override

    def _options(self):
        return {"ceil_mode": self.ceil_mode, "count_include_pad": self.count_include_pad,
                "divisor_override": self.divisor_override}


class MaxUnpool2D(Module):
    """Partial inverse of :class:`MaxPool2D` (PyTorch's ``MaxUnpool2d``): puts each value back at the
    position its max came from (the pool's ``return_indices``), zeros elsewhere.

    Args:
        pool_size, strides (None = pool_size), padding (int or pair): those of the pool it inverts.

    ``forward(x, indices, output_size=None)``; ``output_size`` (H, W) or (N, C, H, W) picks among the
    sizes that pool to x's (needed after ``ceil_mode`` or odd inputs).
    Shape: (N, C, H, W) -> (N, C, OH, OW), OH = (H - 1)*sh - 2*ph + kh.
    Example: ``y, i = MaxPool2D(2, return_indices=True)(x); MaxUnpool2D(2)(y, i)``.
    """


    def __init__(self, pool_size=2, strides=None, padding=0):
        super().__init__()
        pair(pool_size, "pool_size", "MaxUnpool2D")
        pair(pool_size if strides is None else strides, "strides", "MaxUnpool2D")
        pair(padding, "padding", "MaxUnpool2D", minimum=0)
        self.pool_size, self.strides, self.padding = pool_size, strides, padding

    def output_shape(self, input_shape, output_size=None):
        n, c, h, w = input_shape
        if output_size is not None:
            return (n, c) + tuple(int(v) for v in tuple(output_size)[-2:])
        (kh, kw), (ph, pw) = pair(self.pool_size, "pool_size", "MaxUnpool2D"), pair(self.padding, "padding", "MaxUnpool2D", minimum=0)
        sh, sw = pair(self.pool_size if self.strides is None else self.strides, "strides", "MaxUnpool2D")
        return (n, c, (h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw)

    def forward(self, x, indices, output_size=None):
        self.check_input(x, 4)
        shape = self.output_shape(x.shape, output_size)
        y, cache = P.max_unpool2d_forward(x, indices, shape[2:])
        self._save_cache(cache)
        return y

    def backward(self, dy):
        return P.max_unpool2d_backward(dy, self._get_cache())


class _GlobalPool2D(Module):

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
