"""Graph exporters of the zoo's own blocks (ResNet, DenseNet), entered in ``convnp.nn.serialize.EXPORTERS``.

Each writes one block as ONNX nodes through the graph builder ``g`` it is handed
(:class:`convnp.io.onnx_export._Graph`: ``g.node``, ``g.const``, ``g.emit`` for a child, ``g.chain`` for
the children in order), so this file needs neither ``onnx`` nor ``convnp.io``. Signature of each:
``fn(g, module, name, x, y, path) -> output name`` (``x``, ``y``: sample input and output).
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..nn.serialize import register_exporter
from .densenet import DenseBlock, DenseLayer
from .resnet import BasicBlock, Bottleneck, PreActBlock, ResNet, ZeroPadShortcut


@register_exporter(ResNet, DenseLayer)
def _chain(g, m, name, x, y, path):
    """Modules whose forward runs their children in order."""
    return g.chain(m, name, x, path)


@register_exporter(BasicBlock, Bottleneck)
def _post_activation_block(g, m, name, x, y, path):
    """relu(body(x) + shortcut(x)); the body is every child but ``downsample`` and the final ReLU."""
    body = [c for n, c in m.named_children() if n != "downsample"][:-1]
    cur, sample = name, x
    for i, child in enumerate(body):
        cur, sample = g.emit(child, cur, sample, f"{path}.b{i}")
    short = name if m.downsample is None else g.emit(m.downsample, name, x, path + ".downsample")[0]
    return g.node("Relu", [g.node("Add", [cur, short], path + ".add")], path + ".relu")


@register_exporter(PreActBlock)
def _pre_activation_block(g, m, name, x, y, path):
    """a = relu(bn1(x)); conv2(relu(bn2(conv1(a)))) + shortcut (x, or downsample(a))."""
    bn, sample_bn = g.emit(m.bn1, name, x, path + ".bn1")
    a, sa = g.emit(m.relu1, bn, sample_bn, path + ".relu1")
    short = name if m.downsample is None else g.emit(m.downsample, a, sa, path + ".downsample")[0]
    cur, sample = a, sa
    for child in (m.conv1, m.bn2, m.relu2, m.conv2):
        cur, sample = g.emit(child, cur, sample, path)
    return g.node("Add", [cur, short], path + ".add")


@register_exporter(ZeroPadShortcut)
def _zero_pad_shortcut(g, m, name, x, y, path):
    """Every ``strides``-th pixel (Slice), then zero channels appended (Pad)."""
    s = m.strides
    sub = g.node("Slice", [name, g.const(np.array([0, 0], np.int64), "starts"),
                           g.const(np.array([2 ** 62, 2 ** 62], np.int64), "ends"),
                           g.const(np.array([2, 3], np.int64), "axes"), g.const(np.array([s, s], np.int64), "steps")],
                 path + ".slice")
    pads = np.array([0, 0, 0, 0, 0, m.out_channels - m.in_channels, 0, 0], np.int64)
    return g.node("Pad", [sub, g.const(pads, "pads")], path + ".pad", mode="constant")


@register_exporter(DenseBlock)
def _dense_block(g, m, name, x, y, path):
    """Each layer's new maps concatenated after everything before them."""
    cur, sample = name, x
    for child_name, child in m.named_children():
        new, new_sample = g.emit(child, cur, sample, f"{path}.{child_name}")
        cur = g.node("Concat", [cur, new], path + ".concat", axis=1)
        sample = get_array_module(sample).concatenate([sample, new_sample], axis=1)
    return cur
