"""Keras weight files -> convnp (torchvision-layout) state dicts, for ``keras.applications`` VGG16, VGG19
and ResNet50. Needs h5py.

Four layouts are read, all reduced first to ``{layer name: [arrays in Keras's order]}``:

- Keras 3 ``model.save_weights("x.weights.h5")``: ``layers/<auto name>/vars/0, 1, ...``, the layer's real
  name in the ``name`` attribute of each ``vars`` group;
- Keras 3 ``model.save("x.keras")``: a zip holding ``config.json`` and that same ``model.weights.h5``;
- legacy ``model.save("x.h5")``: ``model_weights/<layer>/<weight name>`` listed by the ``layer_names`` and
  ``weight_names`` attributes;
- legacy weights-only ``.h5`` (the files ``keras.applications`` downloads): the same without ``model_weights``.

Mapping (Keras arrays are channels-last): conv kernels HWIO -> OIHW, dense kernels (in, out) -> (out, in),
VGG's fc1 rows from Keras's (h, w, c) flatten order to convnp's (c, h, w). Keras's ResNet50 differs from
torchvision's in three ways, all mapped: its BatchNorm epsilon is 1.001e-5 (the difference to convnp's
1e-5 is added to ``running_var``, so ``var + eps`` is the same), its convs before BatchNorm have biases
(folded into ``running_mean``: BN(z + b) uses ``mean - b``), and it is ResNet v1, with the stride of a
stage's first block in the first 1x1 conv (torchvision's v1.5 has it in the 3x3): ``load_weights`` moves
those strides in the model it loads into (:func:`adapt_resnet50_v1`). Files converted from a Keras
ResNet50 to another format lose that note; load them with ``keras_resnet50()``.
"""
from __future__ import annotations

import io
import os
import re
import zipfile
from collections import OrderedDict

import numpy as np

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
KERAS_BN_EPS = 1.001e-5   # keras.applications.resnet: BatchNormalization(epsilon=1.001e-5)
CONVNP_BN_EPS = 1e-5
_MAX_WEIGHTS_BYTES = 4 << 30  # a .keras member larger than this is refused before reading it


class KerasStateDict(OrderedDict):
    """A state dict read from a Keras file; ``architecture`` names what it was ("vgg16", "resnet50", ...)."""

    architecture = None

    def adapt_model(self, model):
        """Make ``model`` compute what the Keras model computed (ResNet50: v1 strides); returns it."""
        return adapt_resnet50_v1(model) if self.architecture == "resnet50" else model


# ---------------------------------------------------------------------------------------------- layouts
def read_keras_layers(path) -> "OrderedDict[str, list]":
    """Read any of the four Keras layouts into {layer name: [NumPy arrays in Keras's weight order]}."""
    try:
        import h5py
    except ImportError:
        raise ImportError(f"reading {path} needs h5py (pip install \"convnp[exchange]\")") from None
    path = os.fspath(path)
    if zipfile.is_zipfile(path):
        return _read_keras_zip(path, h5py)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path}: truncated or not an HDF5 file or .keras archive ({e})") from None
    with f:
        return _read_h5(f, path)


def _read_keras_zip(path, h5py):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if "model.weights.h5" not in names:
            raise ValueError(f"{path}: a zip archive without model.weights.h5 (found {', '.join(names[:8]) or 'nothing'}); "
                             "a Keras 3 .keras file holds config.json, metadata.json and model.weights.h5")
        size = z.getinfo("model.weights.h5").file_size
        if size > _MAX_WEIGHTS_BYTES:
            raise ValueError(f"{path}: model.weights.h5 would unpack to {size} bytes (limit {_MAX_WEIGHTS_BYTES})")
        data = z.read("model.weights.h5")
    try:
        f = h5py.File(io.BytesIO(data), "r")
    except OSError as e:
        raise ValueError(f"{path}: model.weights.h5 inside the archive is not an HDF5 file ({e})") from None
    with f:
        return _read_h5(f, path + ":model.weights.h5")


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_h5(f, path):
    if "layers" in f and "layer_names" not in f.attrs and "model_weights" not in f:
        return _read_keras3(f["layers"], path)
    root = f["model_weights"] if "model_weights" in f else f
    names = root.attrs.get("layer_names")
    if names is None:
        raise ValueError(f"{path}: an HDF5 file that is not a Keras weights file (top-level entries: "
                         f"{', '.join(list(f)[:8]) or 'none'}; expected layers/, model_weights/ or layer_names)")
    out = OrderedDict()
    for name in map(_text, names):
        group = root[name]
        wnames = [_text(w) for w in group.attrs.get("weight_names", [])]
        if wnames:
            out[name] = [np.array(group[w]) for w in wnames]
    return out


def _natural(name):
    m = re.match(r"(.*?)(?:_(\d+))?$", name)
    return m.group(1), int(m.group(2) or -1)


def _read_keras3(layers, path, prefix=""):
    """Keras 3: ``layers/<auto>/vars/<i>``; nested models keep their own ``layers/`` inside."""
    out = OrderedDict()
    for key in sorted(layers, key=_natural):  # conv2d, conv2d_1, ..., conv2d_10: creation order, not h5py's
        group = layers[key]
        if "vars" in group and len(group["vars"]):
            name = _text(group["vars"].attrs.get("name", key))
            arrays = [np.array(group["vars"][i]) for i in sorted(group["vars"], key=int)]
            out[prefix + name] = arrays
        if "layers" in group:
            out.update(_read_keras3(group["layers"], path))
    return out


# ---------------------------------------------------------------------------------------------- mapping
def read_keras(path) -> KerasStateDict:
    """Read a Keras VGG16/VGG19/ResNet50 file (any layout above) as a convnp/torchvision state dict.

    Example: ``models.vgg16(weights="vgg16.weights.h5")``, ``models.resnet50(weights="resnet50.keras")``.
    """
    layers = read_keras_layers(path)
    names = list(layers)
    if any(n.startswith("conv1_conv") or re.match(r"conv\d_block\d+_\d_conv$", n) for n in names):
        state = _resnet50_state(layers, path)
    elif any(re.match(r"block\d_conv\d$", n) for n in names):
        state = _vgg_state(layers, path)
    else:
        shown = ", ".join(f"{n} {tuple(layers[n][0].shape)}" for n in names[:10])
        raise ValueError(f"{path}: not a keras.applications VGG16, VGG19 or ResNet50 file: it has {len(names)} "
                         f"layers with weights ({shown}{', ...' if len(names) > 10 else ''}); convnp reads Keras "
                         "files of those three (block1_conv1, ... or conv1_conv, conv2_block1_1_conv, ...)")
    return state


def _vgg_state(layers, path):
    out, convs = KerasStateDict(), []
    dense = {"fc1": 0, "fc2": 3, "predictions": 6}
    for name, arrays in layers.items():
        m = re.match(r"block(\d)_conv(\d)$", name)
        if m:
            convs.append(((int(m.group(1)), int(m.group(2))), *arrays[:2]))
        elif name not in dense:
            raise ValueError(f"{path}: unexpected layer {name!r} with weights for a Keras VGG "
                             "(expected block*_conv*, fc1, fc2, predictions)")
    convs.sort(key=lambda c: c[0])
    for name in (n for n in dense if n in layers):
        kernel, bias = layers[name][:2]
        if name == "fc1":
            kernel = _fc1_rows(kernel, convs[-1][1].shape[3], path)
        out[f"classifier.{dense[name]}.weight"] = np.ascontiguousarray(kernel.T)  # (in, out) -> (out, in)
        out[f"classifier.{dense[name]}.bias"] = bias
    from ..models.vgg import CONFIGS
    depth = {8: 11, 10: 13, 13: 16, 16: 19}.get(len(convs))
    if depth is None:
        raise ValueError(f"Keras VGG file {path} has {len(convs)} conv layers; expected 8, 10, 13 or 16")
    positions, i = [], 0
    for v in CONFIGS[depth]:
        if v == "M":
            i += 1
        else:
            positions.append(i)
            i += 2
    feats = OrderedDict()
    for pos, (_, kernel, bias) in zip(positions, convs):
        feats[f"features.{pos}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # HWIO -> OIHW
        feats[f"features.{pos}.bias"] = bias
    feats.update(out)
    state = KerasStateDict(feats)
    state.architecture = f"vgg{depth}"
    return state


def _fc1_rows(kernel, channels, path):
    """fc1's rows from Keras's flatten order (h, w, c) to convnp's: Flatten after AdaptiveAvgPool2D((7, 7)).

    A 7x7 map (224x224 input) is reordered to (c, h, w). A 1x1 map (32x32 input: Keras flattens 512 values)
    reaches convnp's Flatten as 49 copies of each channel, so each row is repeated 49 times and divided by 49.
    """
    rows = kernel.shape[0]
    side = int(round((rows / max(channels or 1, 1)) ** 0.5))
    if channels is None or side * side * channels != rows or side not in (1, 7):
        raise ValueError(f"{path}: fc1 has {rows} inputs ({channels} channels); convnp's VGG classifier takes "
                         "a 7x7 map (Keras input 224x224) or a 1x1 map (input 32x32)")
    if side == 1:
        return np.repeat(kernel, 49, axis=0) / np.asarray(49, kernel.dtype)
    k = kernel.reshape(side, side, channels, -1)                          # (h, w, c, out)
    return k.transpose(2, 0, 1, 3).reshape(rows, -1)                       # (c*h*w, out)


_RESNET50_STAGES = (3, 4, 6, 3)


def _resnet50_state(layers, path):
    out = KerasStateDict()
    out.architecture = "resnet50"
    used = set()

    def conv_bn(conv_name, bn_name, key_conv, key_bn):
        for n in (conv_name, bn_name):
            if n not in layers:
                raise ValueError(f"{path}: Keras ResNet50 layer {n!r} is missing; this file has "
                                 f"{len(layers)} layers with weights (a ResNet101/152 or another model?)")
            used.add(n)
        kernel, bias = layers[conv_name][:2]
        gamma, beta, mean, var = layers[bn_name][:4]
        out[key_conv + ".weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # HWIO -> OIHW
        out[key_bn + ".weight"] = gamma
        out[key_bn + ".bias"] = beta
        out[key_bn + ".running_mean"] = mean - bias            # BN(z + b) with mean m == BN(z) with mean m - b
        out[key_bn + ".running_var"] = var + np.asarray(KERAS_BN_EPS - CONVNP_BN_EPS, var.dtype)
        out[key_bn + ".num_batches_tracked"] = np.array(0, np.int64)

    conv_bn("conv1_conv", "conv1_bn", "conv1", "bn1")
    for s, blocks in enumerate(_RESNET50_STAGES):
        for b in range(blocks):
            k, p = f"conv{s + 2}_block{b + 1}", f"layer{s + 1}.{b}"
            for i in (1, 2, 3):
                conv_bn(f"{k}_{i}_conv", f"{k}_{i}_bn", f"{p}.conv{i}", f"{p}.bn{i}")
            if b == 0:
                conv_bn(f"{k}_0_conv", f"{k}_0_bn", f"{p}.downsample.0", f"{p}.downsample.1")
    if "predictions" in layers:
        kernel, bias = layers["predictions"][:2]
        out["fc.weight"] = np.ascontiguousarray(kernel.T)
        out["fc.bias"] = bias
        used.add("predictions")
    extra = [n for n in layers if n not in used]
    if extra:
        raise ValueError(f"{path}: layers a Keras ResNet50 does not have: {', '.join(extra[:10])}"
                         f"{' ...' if len(extra) > 10 else ''} ({len(extra)} in all)")
    return out


def adapt_resnet50_v1(model):
    """Move the stride of each stage's first bottleneck from its 3x3 conv to its first 1x1 conv (ResNet v1,
    as Keras's ResNet50). Returns the model. Shapes are unchanged; the network computes what Keras's does."""
    for i in range(2, 5):
        stage = getattr(model, f"layer{i}", None)
        block = None if stage is None else stage[0]
        if block is None or not hasattr(block, "conv3"):
            raise ValueError(f"a Keras ResNet50 file needs a bottleneck ResNet (models.resnet50); "
                             f"got {type(model).__name__} without layer{i}.0.conv3")
        stride = block.conv2.strides
        if stride != (1, 1):
            block.conv1.strides, block.conv2.strides = stride, (1, 1)
    return model


def keras_resnet50(num_classes: int = 1000, weights=None, seed=None):
    """``models.resnet50`` as Keras builds it (v1 strides), optionally loading ``weights`` (any format,
    e.g. a .safetensors converted from a Keras file). Example: ``keras_resnet50(weights="r50.safetensors")``."""
    from ..models import resnet50
    model = adapt_resnet50_v1(resnet50(num_classes=num_classes, seed=seed))
    if weights is not None:
        from .weights import load_weights
        load_weights(model, weights, strict=True)
    return model
