"""Import an ONNX graph as a trainable convnp Module (``pip install onnx``): what :mod:`convnp.io.onnx_export`
writes and what ``torch.onnx.export`` writes for CNNs with either exporter (TorchScript or ``dynamo=True``),
opsets 13-18.

Each ONNX node with weights becomes a convnp layer holding them; shape arithmetic and element-wise ops run
as array functions (:mod:`convnp.io.onnx_ops`). :class:`OnnxGraph` runs the steps in the file's
(topological) order and backpropagates in reverse, adding the gradients of tensors that feed several nodes.
Nodes whose inputs are all constants (Constant, initializers, folded results) are computed once at load
time (constant folding). Every operator the file uses that convnp lacks is listed in one error at load time.

Layers: Conv, ConvTranspose, Gemm / MatMul with a constant weight, Flatten, Relu/Tanh/Sigmoid/Softmax/
LogSoftmax/LeakyRelu/Elu, MaxPool/AveragePool (symmetric pads; ceil_mode, count_include_pad, dilations),
GlobalAveragePool/GlobalMaxPool, BatchNormalization, LRN. Functions: Add, Sub, Mul, Div, MatMul, Gemm, Clip,
Shape, Gather, Unsqueeze, Squeeze, Concat, Reshape, Flatten, Transpose, Cast, ReduceMean, Identity, Dropout.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..nn.module import Module
from .onnx_ops import OPS
from ..nn.parameter import Parameter


class ConstMatMul(Module):
    """y = x @ B (``side="right"``) or y = A @ x (``side="left"``) with a fixed matrix (e.g. adaptive pooling).

    Shape: (..., H, W) @ (W, K) -> (..., H, K); (M, H) @ (..., H, W) -> (..., M, W).
    Example: ``ConstMatMul(np.full((4, 2), 0.5), "right")``.
    """

    def __init__(self, matrix, side: str = "right"):
        super().__init__()
        if side not in ("left", "right"):
            raise ValueError(f"ConstMatMul: side must be 'left' or 'right', got {side!r}")
        self.side = side
        self.register_buffer("matrix", np.asarray(matrix, np.float32))

    def get_config(self):
        return {"matrix": np.asarray(self.matrix).tolist(), "side": self.side}

    def forward(self, x):
        m = self.matrix.astype(x.dtype, copy=False)
        return x @ m if self.side == "right" else m @ x

    def backward(self, dy):
        m = self.matrix.astype(dy.dtype, copy=False)
        return dy @ m.T if self.side == "right" else m.T @ dy


class OnnxGraph(Module):
    """A DAG of convnp layers imported from ONNX; built by :func:`load_onnx`.

    ``steps`` is a list of ``(kind, child_name, inputs, output)`` with kind "layer", "add" or "concat", or
    ``("op", op_type, inputs, output, attrs)`` for an :data:`convnp.io.onnx_ops.OPS` function; ``constants``
    maps the names of the constant tensors those read (NumPy arrays, kept out of the state dict).

    Shape: as the ONNX graph's single input and output.
    Example: ``model = load_onnx("resnet18.onnx"); y = model(x)``.
    """

    def __init__(self, steps=(), input_name: str = "input", output_name: str = "output", constants=None):
        super().__init__()
        self.steps = [tuple(s) for s in steps]
        self.input_name, self.output_name = input_name, output_name
        object.__setattr__(self, "constants", dict(constants or {}))

    def forward(self, x):
        values = dict(self.constants)
        values[self.input_name] = x
        sizes = {}
        for kind, child, ins, out, *rest in self.steps:
            if kind == "op":
                y, sizes[out] = OPS[child][0]([values[i] if i else None for i in ins], rest[0])
                values[out] = y
            elif kind == "add":
                values[out] = values[ins[0]] + values[ins[1]]
            elif kind == "concat":
                parts = [values[i] for i in ins]
                sizes[out] = [p.shape[1] for p in parts]
                values[out] = get_array_module(parts[0]).concatenate(parts, axis=1)
            else:
                values[out] = self._modules[child](values[ins[0]])
        self._save_cache(sizes)
        return values[self.output_name]

    def backward(self, dy):
        sizes = self._get_cache()
        grads = {self.output_name: dy}

        def add(name, g):
            grads[name] = g if name not in grads else grads[name] + g

        for kind, child, ins, out, *rest in reversed(self.steps):
            if out not in grads:
                continue  # an output nothing downstream used
            g = grads.pop(out)
            if kind == "op":
                for name, gi in zip(ins, OPS[child][1](g, sizes[out])):
                    if gi is not None and name and name not in self.constants:
                        add(name, gi)
            elif kind == "add":
                add(ins[0], g)
                add(ins[1], g)
            elif kind == "concat":
                start = 0
                for name, size in zip(ins, sizes[out]):
                    add(name, g[:, start:start + size])
                    start += size
            else:
                add(ins[0], self._modules[child].backward(g))
        return grads.get(self.input_name)


def _attrs(node, helper):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _layer(node, attrs, consts, nn):
    """A convnp layer for one ONNX node (consts: initializer name -> array)."""
    op = node.op_type
    w = consts.get(node.input[1]) if len(node.input) > 1 else None
    if op == "Conv":
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise NotImplementedError(f"ONNX import: Conv {node.name!r} uses auto_pad")
        b = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        layer = nn.Conv2D(w.shape[0], tuple(w.shape[2:]), strides=tuple(attrs.get("strides", [1, 1])),
                          padding=((pads[0], pads[2]), (pads[1], pads[3])),
                          dilation_rate=tuple(attrs.get("dilations", [1, 1])), groups=int(attrs.get("group", 1)),
                          use_bias=b is not None, in_channels=w.shape[1] * int(attrs.get("group", 1)))
        layer.weight.data = w.astype(np.float32)
        if b is not None:
            layer.bias.data = b.astype(np.float32)
        return layer
    if op == "ConvTranspose":
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or "output_shape" in attrs:
            raise NotImplementedError(f"ONNX import: ConvTranspose {node.name!r} uses auto_pad or output_shape")
        pads, group = list(attrs.get("pads", [0, 0, 0, 0])), int(attrs.get("group", 1))
        b = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        layer = nn.Conv2DTranspose(w.shape[1] * group, tuple(w.shape[2:]), strides=tuple(attrs.get("strides", [1, 1])),
                                   padding=((pads[0], pads[2]), (pads[1], pads[3])),
                                   output_padding=tuple(attrs.get("output_padding", [0, 0])),
                                   dilation_rate=tuple(attrs.get("dilations", [1, 1])), groups=group,
                                   use_bias=b is not None, in_channels=w.shape[0])
        layer.weight.data = w.astype(np.float32)
        if b is not None:
            layer.bias.data = b.astype(np.float32)
        return layer
    if op == "Gemm":
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            raise NotImplementedError(f"ONNX import: Gemm {node.name!r} with transA/alpha/beta is not supported")
        w = w if attrs.get("transB", 0) else w.T  # Dense keeps (units, in)
        b = consts.get(node.input[2]) if len(node.input) > 2 else None
        layer = nn.Dense(w.shape[0], use_bias=b is not None, in_features=w.shape[1])
        layer.weight.data = np.ascontiguousarray(w, np.float32)
        if b is not None:
            layer.bias.data = b.astype(np.float32)
        return layer
    if op == "MatMul":
        if node.input[1] in consts:
            return ConstMatMul(consts[node.input[1]], "right")
        if node.input[0] in consts:
            return ConstMatMul(consts[node.input[0]], "left")
        raise NotImplementedError(f"ONNX import: MatMul {node.name!r} of two computed tensors")
    if op == "Flatten":
        if attrs.get("axis", 1) != 1:
            raise NotImplementedError(f"ONNX import: Flatten {node.name!r} with axis {attrs['axis']}")
        return nn.Flatten()
    acts = {"Relu": lambda: nn.ReLU(), "Tanh": lambda: nn.Tanh(), "Sigmoid": lambda: nn.Sigmoid(),
            "Softmax": lambda: nn.Softmax(axis=attrs.get("axis", -1)),
            "LogSoftmax": lambda: nn.LogSoftmax(axis=attrs.get("axis", -1)),
            "LeakyRelu": lambda: nn.LeakyReLU(attrs.get("alpha", 0.01)), "Elu": lambda: nn.ELU(attrs.get("alpha", 1.0))}
    if op in acts:
        return acts[op]()
    if op in ("MaxPool", "AveragePool"):
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if pads[0] != pads[2] or pads[1] != pads[3]:
            raise NotImplementedError(f"ONNX import: {op} {node.name!r} has asymmetric pads {pads}")
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
            raise NotImplementedError(f"ONNX import: {op} {node.name!r} uses auto_pad {attrs['auto_pad']!r}")
        common = dict(strides=tuple(attrs.get("strides", [1, 1])), padding=(pads[0], pads[1]),
                      ceil_mode=bool(attrs.get("ceil_mode", 0)))
        if op == "MaxPool":
            if len(node.output) > 1 and node.output[1]:
                raise NotImplementedError(f"ONNX import: MaxPool {node.name!r} with an Indices output")
            return nn.MaxPool2D(tuple(attrs["kernel_shape"]), dilation=tuple(attrs.get("dilations", [1, 1])),
                                **common)
        return nn.AvgPool2D(tuple(attrs["kernel_shape"]), count_include_pad=bool(attrs.get("count_include_pad", 0)),
                            **common)
    if op == "GlobalAveragePool":
        return nn.GlobalAvgPool2D(keepdims=True)
    if op == "GlobalMaxPool":
        return nn.GlobalMaxPool2D(keepdims=True)
    if op == "BatchNormalization":
        scale, bias, mean, var = (consts[n] for n in node.input[1:5])
        layer = nn.BatchNorm2D(len(scale), eps=float(attrs.get("epsilon", 1e-5)))
        layer.weight.data, layer.bias.data = scale.astype(np.float32), bias.astype(np.float32)
        layer.running_mean = mean.astype(np.float32)
        layer.running_var = var.astype(np.float32)
        return layer
    if op == "LRN":
        return nn.LocalResponseNorm(int(attrs["size"]), float(attrs.get("alpha", 1e-4)),
                                    float(attrs.get("beta", 0.75)), float(attrs.get("bias", 1.0)))
    if op in ("Identity", "Dropout"):
        return nn.Identity()
    raise NotImplementedError(f"ONNX import: operator {op} (node {node.name!r}) is not supported")


def load_onnx(path) -> OnnxGraph:
    """Read an ONNX file (one input, one output) into an :class:`OnnxGraph` in eval mode.

    Example: ``model = load_onnx("resnet18.onnx"); model(x)`` equals the exported model's output.
    """
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("ONNX import needs the onnx package (pip install \"convnp[exchange]\")") from None
    from .. import nn

    try:
        proto = onnx.load(str(path))
    except Exception as e:
        raise ValueError(f"{path}: truncated or not an ONNX file ({type(e).__name__}: {e})") from None
    g = proto.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i.name for i in g.input if i.name not in consts]
    if len(inputs) != 1 or len(g.output) != 1:
        raise NotImplementedError(f"ONNX import: graphs with one input and one output only (got {len(inputs)} "
                                  f"inputs, {len(g.output)} outputs)")
    _check_supported(path, g)
    model = OnnxGraph([], inputs[0], g.output[0].name)
    problems = []
    for i, node in enumerate(g.node):
        attrs = _attrs(node, helper)
        op, out = node.op_type, node.output[0]
        if op == "Constant":
            consts[out] = _constant_value(attrs, numpy_helper)
            continue
        if op in OPS and all(n in consts or not n for n in node.input):  # constant folding
            consts[out] = np.asarray(OPS[op][0]([consts[n] if n else None for n in node.input], _plain(attrs))[0])
            continue
        try:
            step = _step(i, node, attrs, consts, nn, model)
        except NotImplementedError as e:
            problems.append(str(e).replace("ONNX import: ", ""))
            continue
        model.steps.append(step)
    if problems:
        raise NotImplementedError(f"{path}: ONNX import cannot map {len(problems)} nodes: " + "; ".join(problems))
    used = {n for step in model.steps for n in step[2]}
    object.__setattr__(model, "constants", {k: v for k, v in consts.items() if k in used})
    _check_wiring(path, model)
    return model.eval()


def _check_wiring(path, model) -> None:
    """Every step's inputs must be the graph input or an earlier step's output, and the graph output must be
    produced: a dangling name would otherwise be a KeyError at forward time."""
    known = {model.input_name} | set(model.constants) | {""}
    for kind, name, ins, out, *_ in model.steps:
        for i in ins:
            if i not in known:
                raise ValueError(f"{path}: ONNX node {name or kind!r} reads {i!r}, which is neither the graph input "
                                 f"{model.input_name!r} nor the output of an earlier node (dangling input)")
        known.add(out)
    if model.output_name not in known:
        raise ValueError(f"{path}: the ONNX graph output {model.output_name!r} is not produced by any node")


_LAYER_OPS = {"Conv", "ConvTranspose", "Relu", "Tanh", "Sigmoid", "Softmax", "LogSoftmax", "LeakyRelu", "Elu",
              "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "LRN"}


def _check_supported(path, graph) -> None:
    """Raise one NotImplementedError naming every operator of the file that convnp cannot run, with counts."""
    missing = {}
    for node in graph.node:
        if node.op_type not in _LAYER_OPS and node.op_type not in OPS and node.op_type != "Constant":
            missing.setdefault(node.op_type, []).append(node.name)
    if missing:
        listed = ", ".join(f"{op} ({len(names)}x, e.g. node {names[0]!r})" for op, names in sorted(missing.items()))
        raise NotImplementedError(f"{path}: ONNX import does not support {len(missing)} operators used in this "
                                  f"file: {listed}")


def _constant_value(attrs, numpy_helper):
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype)
    raise NotImplementedError(f"ONNX import: Constant with attributes {sorted(attrs)}")


def _plain(attrs):
    """Attributes as plain Python values (bytes -> str, tensors dropped) for the op steps."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, (list, tuple)):
            v = [x.decode() if isinstance(x, bytes) else x for x in v]
        elif not isinstance(v, (int, float, str)):
            continue
        out[k] = v
    return out


def _step(i, node, attrs, consts, nn, model):
    """One OnnxGraph step for ``node``: a layer (weights in ``consts``) where convnp has one, else an op."""
    op, ins, out = node.op_type, tuple(node.input), node.output[0]
    dynamic = [n for n in ins if n and n not in consts]
    as_layer = op in _LAYER_OPS
    if op == "Gemm":
        as_layer = (ins[1] in consts and not attrs.get("transA", 0) and attrs.get("alpha", 1.0) == 1.0
                    and attrs.get("beta", 1.0) == 1.0 and (len(ins) < 3 or not ins[2] or ins[2] in consts)
                    and consts[ins[1]].ndim == 2)
    elif op == "MatMul":
        as_layer = len(dynamic) == 1 and consts[ins[1] if ins[0] in dynamic else ins[0]].ndim == 2
    elif op == "Flatten":
        as_layer = attrs.get("axis", 1) == 1
    elif op == "Concat" and attrs.get("axis") == 1 and len(dynamic) == len(ins):
        return ("concat", None, ins, out)
    if op in ("Conv", "ConvTranspose", "BatchNormalization") and any(n not in consts for n in ins[1:] if n):
        raise NotImplementedError(f"ONNX import: {op} {node.name!r} has computed weights")
    if not as_layer:
        return ("op", op, ins, out, _plain(attrs))
    layer = _layer(node, attrs, consts, nn)
    name = f"n{i}_{op.lower()}"
    model.add_module(name, layer)
    return ("layer", name, (dynamic[0],), out)
