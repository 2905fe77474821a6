"""Export a convnp model to ONNX (``pip install onnx``): one ONNX node per layer, weights as initializers.

The exporter walks the model like its forward pass, running each layer on a sample input (eval mode, no
caching) so every node knows its input shape (for "same" padding and adaptive pooling). The batch axis is
dynamic; height and width are those of ``input_shape``. Supported: Sequential, Residual, Concat, Identity,
Conv2D, Dense, Flatten, activations, MaxPool2D, AvgPool2D, global and adaptive average pooling,
BatchNorm2D/1D, Dropout (identity), LocalResponseNorm, and the zoo's ResNet/DenseNet blocks.

Each class has one exporter in the table :data:`convnp.nn.serialize.EXPORTERS`; this file fills it for
the layers of ``convnp.nn``, ``convnp/models/export.py`` for the zoo's blocks. An exporter is
``fn(g, module, name, x, y, path) -> output name``: ``name`` is the input tensor, ``x`` / ``y`` the sample
input and output (shapes for "same" padding and adaptive pooling), ``g`` the :class:`_Graph`.
"""
from __future__ import annotations

import numpy as np

from .. import nn
from ..backend import array_module_for, no_grad, to_numpy
from ..functional import conv as C, pooling as P
from ..nn.serialize import exporter_for, register_exporter


class _Graph:
    """What an exporter gets: ``node`` adds an ONNX node, ``const`` an initializer, ``emit`` writes a child
    module (through its own exporter), ``chain`` a module's children in order, ``activation`` a fused one."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, array, hint):
        name = self.name(hint)
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, hint, **attrs):
        out = self.name(hint or op)
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def emit(self, m, name, x, path):
        """Add the nodes of module ``m`` applied to tensor ``name`` (sample value ``x``); return (name, sample)."""
        fn = exporter_for(m)
        if fn is None:
            raise NotImplementedError(f"ONNX export: no converter for {type(m).__name__} at {path or 'the model'} "
                                      "(register one with convnp.nn.serialize.register_exporter)")
        y = m(x)
        return fn(self, m, name, x, y, path), y

    def chain(self, m, name, x, path):
        """The children of ``m`` one after the other (Sequential, or any module whose forward is that chain)."""
        cur, sample = name, x
        for child_name, child in m.named_children():
            cur, sample = self.emit(child, cur, sample, f"{path}.{child_name}" if path else child_name)
        return cur

    def activation(self, layer, name, path):
        """The node of a fused activation layer (None: no node)."""
        return _activation(self, layer, name, path)


_ACTS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "elu": "Elu", "leaky_relu": "LeakyRelu",
         "softmax": "Softmax", "log_softmax": "LogSoftmax"}


def _activation(g, layer, name, path):
    if layer is None:
        return name
    kind = getattr(layer, "name", None)
    if kind not in _ACTS:
        raise NotImplementedError(f"ONNX export: activation {kind!r} at {path} has no ONNX operator here")
    attrs = {}
    kwargs = getattr(layer, "kwargs", {})
    if kind in ("softmax", "log_softmax"):
        attrs["axis"] = int(kwargs.get("axis", -1))
    if kind in ("elu", "leaky_relu"):
        attrs["alpha"] = float(kwargs.get("alpha", 1.0 if kind == "elu" else 0.01))
    return g.node(_ACTS[kind], [name], path, **attrs)


# ------------------------------------------------------------------------ the layers of convnp.nn
# (the zoo's own blocks register theirs in convnp/models/export.py)
@register_exporter(nn.Sequential)
def _sequential(g, m, name, x, y, path):
    return g.chain(m, name, x, path)


@register_exporter(nn.Residual)
def _residual(g, m, name, x, y, path):
    body = g.emit(m.body, name, x, path + ".body")[0]
    short = g.emit(m.shortcut, name, x, path + ".shortcut")[0]
    return _activation(g, m.activation, g.node("Add", [body, short], path + ".add"), path)


@register_exporter(nn.Concat)
def _concat(g, m, name, x, y, path):
    outs = [g.emit(b, name, x, f"{path}.{i}")[0] for i, b in enumerate(m.children())]
    return g.node("Concat", outs, path, axis=int(m.axis))


@register_exporter(nn.Identity, nn.Dropout)
def _identity(g, m, name, x, y, path):
    return g.node("Identity", [name], path)


@register_exporter(nn.Conv2D)  # (DepthwiseConv2D too: a grouped Conv)
def _conv(g, m, name, x, y, path):
    if m.padding_mode != "zeros":
        raise NotImplementedError(f"ONNX export: {path} uses padding_mode={m.padding_mode!r}; only zeros")
    _, ((t, b), (l, r)) = C.conv2d_output_shape(x.shape, m.kernel_size, m.strides, m.padding, m.dilation_rate)
    inputs = [name, g.const(to_numpy(m.weight.data).astype(np.float32), path + ".weight")]
    if m.bias is not None:
        inputs.append(g.const(to_numpy(m.bias.data).astype(np.float32), path + ".bias"))
    out = g.node("Conv", inputs, path, kernel_shape=list(m.kernel_size), strides=list(m.strides),
                 dilations=list(m.dilation_rate), pads=[t, l, b, r], group=m.groups)
    return _activation(g, m.act, out, path)


@register_exporter(nn.Dense)
def _dense(g, m, name, x, y, path):
    inputs = [name, g.const(to_numpy(m.weight.data).astype(np.float32), path + ".weight")]
    if m.bias is not None:
        inputs.append(g.const(to_numpy(m.bias.data).astype(np.float32), path + ".bias"))
    return _activation(g, m.act, g.node("Gemm", inputs, path, transB=1), path)


@register_exporter(nn.Flatten)
def _flatten(g, m, name, x, y, path):
    return g.node("Flatten", [name], path, axis=1)


@register_exporter(nn.Activation)
def _activation_layer(g, m, name, x, y, path):
    return _activation(g, m, name, path)


@register_exporter(nn.MaxPool2D, nn.AvgPool2D)
def _pool(g, m, name, x, y, path):
    _, ((t, b), (l, r)), k, s, same = P.pool_output_shape(x.shape[2:], m.pool_size, m.strides, m.padding)
    attrs = dict(kernel_shape=list(k), strides=list(s), pads=[t, l, b, r])
    if isinstance(m, nn.AvgPool2D):
        attrs["count_include_pad"] = 0 if same else 1
    return g.node("MaxPool" if isinstance(m, nn.MaxPool2D) else "AveragePool", [name], path, **attrs)


@register_exporter(nn.GlobalAvgPool2D, nn.GlobalMaxPool2D)
def _global_pool(g, m, name, x, y, path):
    out = g.node("GlobalAveragePool" if isinstance(m, nn.GlobalAvgPool2D) else "GlobalMaxPool", [name], path)
    return out if m.keepdims else g.node("Flatten", [out], path + ".flatten", axis=1)


@register_exporter(nn.AdaptiveAvgPool2D)
def _adaptive_avg_pool(g, m, name, x, y, path):  # y = Ph @ x @ Pw.T with PyTorch's windows, as convnp computes it
    oh, ow = y.shape[2:]
    ph, pw = (P._adaptive_matrix(np, size, out, np.float32) for size, out in ((x.shape[2], oh), (x.shape[3], ow)))
    t = g.node("MatMul", [name, g.const(np.ascontiguousarray(pw.T), path + ".pw")], path + ".w")
    return g.node("MatMul", [g.const(ph, path + ".ph"), t], path + ".h")


@register_exporter(nn.BatchNorm2D, nn.BatchNorm1D)
def _batch_norm(g, m, name, x, y, path):
    c = m.num_features
    scale = to_numpy(m.weight.data) if m.weight is not None else np.ones(c)
    shift = to_numpy(m.bias.data) if m.bias is not None else np.zeros(c)
    inputs = [name] + [g.const(np.asarray(a, np.float32), path + "." + n) for a, n in
                       ((scale, "weight"), (shift, "bias"), (to_numpy(m.running_mean), "mean"),
                        (to_numpy(m.running_var), "var"))]
    return g.node("BatchNormalization", inputs, path, epsilon=float(m.eps))


@register_exporter(nn.LocalResponseNorm)
def _lrn(g, m, name, x, y, path):
    return g.node("LRN", [name], path, size=m.size, alpha=m.alpha, beta=m.beta, bias=m.k)


def export_onnx(model, path, input_shape=(3, 224, 224), opset: int = 17):
    """Write ``model`` (in eval mode) to ``path`` as an ONNX graph with input "input" (N, *input_shape)
    and output "output"; returns the ``onnx.ModelProto``.

    Example: ``export_onnx(models.resnet18(weights="resnet18.pth"), "resnet18.onnx")``.
    """
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("ONNX export needs the onnx package (pip install \"convnp[exchange]\")") from None
    was_training = model.training
    model.eval()
    dtype = next((p.dtype for p in model.parameters()), np.float32)
    x = array_module_for(model.device).zeros((1,) + tuple(int(s) for s in input_shape), dtype=dtype)  # CPU or GPU
    g = _Graph(helper, numpy_helper)
    try:
        with no_grad():
            out, y = g.emit(model, "input", x, "")
    finally:
        model.train(was_training)
    g.nodes.append(helper.make_node("Identity", [out], ["output"], name="output"))
    graph = helper.make_graph(
        g.nodes, type(model).__name__, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *x.shape[1:]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", *y.shape[1:]])], g.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="convnp")
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return proto
