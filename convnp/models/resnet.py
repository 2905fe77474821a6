"""ResNet (He, Zhang, Ren, Sun 2016, "Deep residual learning for image recognition") with torchvision's
state-dict keys, pre-activation ResNet (He et al. 2016, "Identity mappings in deep residual networks"), and
CIFAR-style small-input variants.

Each block is a Module with an explicit forward and backward: the gradient of the sum ``F(x) + shortcut(x)``
goes unchanged into both branches, and the input gradient is the sum of the two branch gradients.
"""
from __future__ import annotations

from .. import nn
from ..nn import fusion
from ..backend import get_array_module
from ..nn.module import Module
from ._zoo_utils import finish, seed_stream
from .registry import model_class, register_model


def _conv(filters, k, cin, stride=1, seed=None):
    return nn.Conv2D(filters, k, strides=stride, padding=k // 2, use_bias=False, in_channels=cin, seed=seed)


def _projection(cin, cout, stride, seed, batch_norm=True):
    """The ``downsample`` shortcut: 1x1 conv with stride (+ BN), torchvision's ``downsample.0/.1``."""
    layers = [_conv(cout, 1, cin, stride, seed)]
    if batch_norm:
        layers.append(nn.BatchNorm2D(cout))
    return nn.Sequential(layers)


class BasicBlock(Module):
    """Two 3x3 convs with BN: y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)) (ResNet-18/34).

    Args:
        in_channels: input channels.
        channels: output channels (``expansion`` = 1).
        strides: stride of conv1 (2 halves the resolution at the start of a stage).
        shortcut: "B" projection (1x1 conv + BN, as torchvision) when the shape changes, or "A" (He 2016
            CIFAR: subsample and zero-pad the new channels, no parameters).
        seed: int for reproducible initial weights.

    Shape: (N, in_channels, H, W) -> (N, channels, ceil(H / strides), ceil(W / strides)).
    Example: ``BasicBlock(64, 128, strides=2)`` has a ``downsample`` projection.
    """


    expansion = 1

    def __init__(self, in_channels: int, channels: int, strides: int = 1, shortcut: str = "B", seed=None):
        super().__init__()
        s = seed_stream(seed)
        self.conv1 = _conv(channels, 3, in_channels, strides, next(s))
        self.bn1 = nn.BatchNorm2D(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = _conv(channels, 3, channels, 1, next(s))
        self.bn2 = nn.BatchNorm2D(channels)
        self.relu2 = nn.ReLU()
        self.downsample = _shortcut(in_channels, channels * self.expansion, strides, shortcut, next(s))

    def forward(self, x):
        out = fusion.bn_add_relu(self.bn1, self.conv1(x), self.relu1)  # (one pass at inference: nn.fusion)
        identity = x if self.downsample is None else self.downsample(x)
        return fusion.bn_add_relu(self.bn2, self.conv2(out), self.relu2, add=identity)

    def backward(self, dy):
        g = self.relu2.backward(dy)  # gradient of the sum, shared by both branches
        d_body = self.conv1.backward(self.bn1.backward(self.relu1.backward(self.conv2.backward(self.bn2.backward(g)))))
        d_short = g if self.downsample is None else self.downsample.backward(g)
        return d_body + d_short


class Bottleneck(Module):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision "v1.5"), 1x1 expand by 4, with BN; ResNet-50+.

    Args: as :class:`BasicBlock`; ``channels`` is the bottleneck width and the output has 4 * channels.

    Shape: (N, in_channels, H, W) -> (N, 4 * channels, ceil(H / strides), ceil(W / strides)).
    Example: ``Bottleneck(64, 64)`` maps 64 -> 256 channels with a projection shortcut.
    """


    expansion = 4

    def __init__(self, in_channels: int, channels: int, strides: int = 1, shortcut: str = "B", seed=None):
        super().__init__()
        s = seed_stream(seed)
        self.conv1 = _conv(channels, 1, in_channels, 1, next(s))
        self.bn1 = nn.BatchNorm2D(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = _conv(channels, 3, channels, strides, next(s))
        self.bn2 = nn.BatchNorm2D(channels)
        self.relu2 = nn.ReLU()
        self.conv3 = _conv(channels * 4, 1, channels, 1, next(s))
        self.bn3 = nn.BatchNorm2D(channels * 4)
        self.relu3 = nn.ReLU()
        self.downsample = _shortcut(in_channels, channels * 4, strides, shortcut, next(s))

    def forward(self, x):
        out = fusion.bn_add_relu(self.bn1, self.conv1(x), self.relu1)  # (one pass at inference: nn.fusion)
        out = fusion.bn_add_relu(self.bn2, self.conv2(out), self.relu2)
        identity = x if self.downsample is None else self.downsample(x)
        return fusion.bn_add_relu(self.bn3, self.conv3(out), self.relu3, add=identity)

    def backward(self, dy):
        g = self.relu3.backward(dy)
        d = self.conv3.backward(self.bn3.backward(g))
        d = self.conv2.backward(self.bn2.backward(self.relu2.backward(d)))
        d_body = self.conv1.backward(self.bn1.backward(self.relu1.backward(d)))
        d_short = g if self.downsample is None else self.downsample.backward(g)
        return d_body + d_short


class PreActBlock(Module):
    """Pre-activation basic block (He et al. 2016, identity mappings): BN-ReLU-conv twice, nothing after
    the sum, so the identity path is clean: y = conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut.

    When the shape changes, the projection (a 1x1 conv, ``downsample.0``) is applied to relu(bn1(x)).

    Shape: (N, in_channels, H, W) -> (N, channels, ceil(H / strides), ceil(W / strides)).
    Example: ``PreActBlock(64, 64)``.
    """


    expansion = 1

    def __init__(self, in_channels: int, channels: int, strides: int = 1, shortcut: str = "B", seed=None):
        super().__init__()
        s = seed_stream(seed)
        self.bn1 = nn.BatchNorm2D(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = _conv(channels, 3, in_channels, strides, next(s))
        self.bn2 = nn.BatchNorm2D(channels)
        self.relu2 = nn.ReLU()
        self.conv2 = _conv(channels, 3, channels, 1, next(s))
        if shortcut == "A":
            self.downsample = _shortcut(in_channels, channels, strides, "A", None)
        elif strides != 1 or in_channels != channels:
            self.downsample = _projection(in_channels, channels, strides, next(s), batch_norm=False)
        else:
            self.downsample = None

    def forward(self, x):
        a = fusion.bn_add_relu(self.bn1, x, self.relu1)  # (one pass at inference: nn.fusion)
        identity = x if self.downsample is None else self.downsample(a)
        out = self.conv2(fusion.bn_add_relu(self.bn2, self.conv1(a), self.relu2))
        return out + identity

    def backward(self, dy):
        da = self.conv1.backward(self.bn2.backward(self.relu2.backward(self.conv2.backward(dy))))
        if self.downsample is None:
            return self.bn1.backward(self.relu1.backward(da)) + dy
        da = da + self.downsample.backward(dy)
        return self.bn1.backward(self.relu1.backward(da))


class ZeroPadShortcut(Module):
    """Option-A shortcut (He et al. 2016, CIFAR): take every ``strides``-th pixel and append zero channels.

    Shape: (N, C, H, W) -> (N, out_channels, ceil(H / strides), ceil(W / strides)); no parameters.
    Example: ``ZeroPadShortcut(16, 32, 2)``.
    """


    def __init__(self, in_channels: int, out_channels: int, strides: int = 1):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"ZeroPadShortcut: out_channels ({out_channels}) must be >= in_channels ({in_channels})")
        self.in_channels, self.out_channels, self.strides = int(in_channels), int(out_channels), int(strides)

    def forward(self, x):
        xp = get_array_module(x)
        sub = x[:, :, ::self.strides, ::self.strides]
        out = xp.zeros((x.shape[0], self.out_channels) + sub.shape[2:], dtype=x.dtype)
        out[:, :self.in_channels] = sub
        self._save_cache(x.shape)
        return out

    def backward(self, dy):
        shape = self._get_cache()
        dx = get_array_module(dy).zeros(shape, dtype=dy.dtype)
        dx[:, :, ::self.strides, ::self.strides] = dy[:, :self.in_channels]
        return dx


def _shortcut(cin, cout, stride, kind, seed):
    if kind not in ("A", "B"):
        raise ValueError(f"ResNet: shortcut must be 'A' (zero-padding) or 'B' (projection), got {kind!r}")
    if stride == 1 and cin == cout:
        return None
    return ZeroPadShortcut(cin, cout, stride) if kind == "A" else _projection(cin, cout, stride, seed)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck, "preact": PreActBlock}


@model_class
class ResNet(Module):
    """A residual network: stem, stages of blocks, global average pooling, dense classifier.

    Args:
        block: "basic", "bottleneck" or "preact".
        layers: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18; the first block of every stage after
            the first has stride 2.
        num_classes: outputs.
        in_channels: input channels.
        widths: channels of each stage (bottleneck stages output 4x as many).
        stem: "imagenet" (7x7/2 conv, BN, ReLU, 3x3/2 max pool) or "cifar" (3x3/1 conv, BN, ReLU; for 32x32).
        shortcut: "B" (projection) or "A" (zero-padding, He 2016's CIFAR networks).
        seed: int for reproducible initial weights.

    Keys are torchvision's: ``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``, ``fc``; the
    pre-activation network adds the final ``bn_final``. Ends in global average pooling, so any input large
    enough for the strides works.

    Shape: (N, in_channels, H, W) -> (N, num_classes).
    Example: ``ResNet("basic", (2, 2, 2, 2))`` is ResNet-18.
    """


    def __init__(self, block: str = "basic", layers=(2, 2, 2, 2), num_classes: int = 1000, in_channels: int = 3,
                 widths=(64, 128, 256, 512), stem: str = "imagenet", shortcut: str = "B", seed=None):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"ResNet: block must be one of {sorted(BLOCKS)}, got {block!r}")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"ResNet: stem must be 'imagenet' or 'cifar', got {stem!r}")
        if len(layers) != len(widths) or not layers:
            raise ValueError(f"ResNet: layers {tuple(layers)} and widths {tuple(widths)} must have the same length")
        block_cls, s = BLOCKS[block], seed_stream(seed)
        preact = block == "preact"
        if stem == "imagenet":
            self.conv1 = nn.Conv2D(widths[0], 7, strides=2, padding=3, use_bias=False, in_channels=in_channels,
                                   seed=next(s))
        else:
            self.conv1 = _conv(widths[0], 3, in_channels, 1, next(s))
        if not preact:  # a pre-activation network normalizes at the start of its first block instead
            self.bn1 = nn.BatchNorm2D(widths[0])
            self.relu = nn.ReLU()
        if stem == "imagenet":
            self.maxpool = nn.MaxPool2D(3, strides=2, padding=1)
        channels = widths[0]
        for i, (n, width) in enumerate(zip(layers, widths)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block_cls(channels, width, stride, shortcut, next(s)))
                channels = width * block_cls.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(blocks))
        if preact:
            self.bn_final = nn.BatchNorm2D(channels)
            self.relu_final = nn.ReLU()
        self.avgpool = nn.GlobalAvgPool2D()                       # (N, C)
        self.fc = nn.Dense(num_classes, in_features=channels, seed=next(s))

    def forward(self, x):
        self.check_input(x, 4, self.conv1.in_channels)
        # in assignment order: stem, layer1..layerK, head (the stem's bn + relu one pass at inference)
        return fusion.run_chain(self._modules.values(), x)

    def backward(self, dy):
        for layer in reversed(list(self._modules.values())):
            dy = layer.backward(dy)
        return dy


def _resnet(block, layers, num_classes, in_channels, weights, seed, **kw):
    return finish(ResNet(block, tuple(layers), num_classes, in_channels, seed=seed, **kw), weights)


_DOC = """ResNet-{depth} (He et al. 2016, "Deep residual learning for image recognition"), torchvision keys.

    {block} blocks {layers}; {params} parameters with the defaults.

    Args:
        num_classes: outputs (1000 ImageNet classes).
        in_channels: input channels.
        weights: optional path to torchvision-format weights (.pth, .safetensors, .npz).
        seed: int for reproducible initial weights.

    Shape: (N, 3, H, W) -> (N, num_classes); H, W >= 32 (global average pooling at the end).
    Example: ``model = models.resnet{depth}(weights="resnet{depth}.pth").eval()``.
    """


def _make(depth, block, layers, params):
    def factory(num_classes: int = 1000, in_channels: int = 3, weights=None, seed=None):
        return _resnet(block, layers, num_classes, in_channels, weights, seed)

    factory.__name__ = factory.__qualname__ = f"resnet{depth}"
    factory.__doc__ = _DOC.format(depth=depth, block="Basic" if block == "basic" else "Bottleneck",
                                  layers=layers, params=params)
    return register_model(f"resnet{depth}")(factory)


resnet18 = _make(18, "basic", (2, 2, 2, 2), "11,689,512")
resnet34 = _make(34, "basic", (3, 4, 6, 3), "21,797,672")
resnet50 = _make(50, "bottleneck", (3, 4, 6, 3), "25,557,032")
resnet101 = _make(101, "bottleneck", (3, 4, 23, 3), "44,549,160")
resnet152 = _make(152, "bottleneck", (3, 8, 36, 3), "60,192,808")


@register_model("preact_resnet18")
def preact_resnet18(num_classes: int = 1000, in_channels: int = 3, stem: str = "imagenet", weights=None,
                    seed=None):
    """Pre-activation ResNet-18 (He, Zhang, Ren, Sun 2016, "Identity mappings in deep residual networks").

    BN-ReLU-conv blocks with a clean identity path, a final BN-ReLU (``bn_final``) before global average
    pooling. ``stem="cifar"`` gives the 3x3, no-max-pool stem for 32x32 inputs. 11,687,720 parameters
    with the defaults (ResNet-18 has 11,689,512: here the projections have no BN, the stem BN moves to
    the end, and each block's first BN normalizes its input instead of its output).

    Shape: (N, 3, H, W) -> (N, num_classes).
    Example: ``models.preact_resnet18(num_classes=10, stem="cifar")``.
    """
    return _resnet("preact", (2, 2, 2, 2), num_classes, in_channels, weights, seed, stem=stem)


@register_model("resnet18_cifar")
def resnet18_cifar(num_classes: int = 10, in_channels: int = 3, weights=None, seed=None):
    """ResNet-18 for 32x32 images (He et al. 2016 blocks with a 3x3 stride-1 stem and no max pool, the
    common CIFAR-10 adaptation). 11,173,962 parameters for 10 classes; keys as torchvision's ResNet-18.

    Shape: (N, 3, 32, 32) -> (N, num_classes).
    Example: ``models.resnet18_cifar()(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)``.
    """
    return _resnet("basic", (2, 2, 2, 2), num_classes, in_channels, weights, seed, stem="cifar")


@register_model("resnet20_cifar")
def resnet20_cifar(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A", weights=None, seed=None):
    """ResNet-20 for CIFAR-10 exactly as in He et al. 2016, section 4.2: a 3x3 conv with 16 filters, three
    stages of three basic blocks with 16, 32, 64 channels on 32x32, 16x16, 8x8 maps, global average pooling
    and a 10-way dense layer; option-A (zero-padding) shortcuts, 0.27M (269,722) parameters.

    Shape: (N, 3, 32, 32) -> (N, num_classes).
    Example: ``models.resnet20_cifar()``.
    """
    return _resnet("basic", (3, 3, 3), num_classes, in_channels, weights, seed, widths=(16, 32, 64),
                   stem="cifar", shortcut=shortcut)
