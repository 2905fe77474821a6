"""Weight files: read and write state dicts as .safetensors, .npz (no torch needed) and .pth (needs torch),
and read Keras's VGG16 .h5 (needs h5py). ``load_weights`` checks the keys strictly and names every mismatch.

A state dict is an ordered mapping of dotted keys (``layer1.0.conv1.weight``) to NumPy arrays, with
PyTorch's key names and layouts, so torchvision checkpoints load as they are.
"""
from __future__ import annotations

import json
import os
import re
import struct
from collections import OrderedDict

import numpy as np

from ..backend import to_numpy

PTH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_TORCHVISION_NAMES = ("DEFAULT", "IMAGENET1K_V1", "IMAGENET1K_V2")  # weights= enum names torchvision downloads

# safetensors dtype names <-> NumPy dtypes (BF16 is widened to float32 on reading)
_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
              "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_ST_NAMES = {np.dtype(v): k for k, v in _ST_DTYPES.items()}


def _suffix(path) -> str:
    return os.path.splitext(str(path))[1].lower()


# ---------------------------------------------------------------------------------------------- reading
def read_state_dict(path, expected=None) -> "OrderedDict[str, np.ndarray]":
    """Read a weight file into an ordered {key: NumPy array} by its suffix: .safetensors, .npz,
    .pth/.pt/.bin/.ckpt (torch), .h5 (Keras VGG16, returned in convnp/torchvision layout).

    ``expected`` (optional ``{key: array or (shape, dtype)}``, e.g. a model's ``state_dict()``) bounds the
    memory of an .npz: entries whose key or shape it does not list are not decompressed (a zero-stride
    placeholder of the declared shape stands in, for the caller's error message), and integer or text data
    for a float entry (or the reverse) is refused with the key and both dtypes.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        if path.upper() in _TORCHVISION_NAMES:
            raise FileNotFoundError(
                f"weights={path!r} is torchvision's way to download its pretrained file; convnp downloads nothing "
                "(no network at run time). Get the file once where you have a network connection (the table "
                "in docs/models.md names it, e.g. resnet18-f37072fd.pth from https://download.pytorch.org/models/) "
                "and pass its path: models.resnet18(weights=\"resnet18-f37072fd.pth\")")
        raise FileNotFoundError(f"weights file not found: {path}")
    suffix = _suffix(path)
    if suffix == ".safetensors":
        state = _read_safetensors(path)
    elif suffix == ".npz":
        state = _read_npz(path, expected)
    elif suffix in PTH_SUFFIXES:
        state = _read_pth(path)
    elif suffix in (".h5", ".hdf5", ".keras"):
        state = read_keras_vgg16(path)
    else:
        raise ValueError(f"unsupported weights file {path!r}: use .safetensors, .npz, .pth/.pt or Keras .h5")
    _check_dtypes(path, state, expected)
    return state


def _expected_specs(expected):
    """{key: (shape, dtype)} from a state dict or from such pairs."""
    out = {}
    for k, v in (expected or {}).items():
        out[k] = (tuple(v[0]), np.dtype(v[1])) if isinstance(v, tuple) else (tuple(v.shape), np.dtype(str(v.dtype)))
    return out


def _check_dtypes(path, state, expected):
    """Refuse text arrays, and integer data for float entries of ``expected`` (or the reverse): a cast
    would load quietly wrong weights."""
    specs = _expected_specs(expected)
    for key, a in state.items():
        if a.dtype.kind in "USO":
            raise ValueError(f"{path}: entry {key!r} holds {a.dtype} data (text or objects), not numbers")
        if key in specs and (specs[key][1].kind == "f") != (a.dtype.kind == "f"):
            raise ValueError(f"{path}: entry {key!r} has dtype {a.dtype} but the model's {key} is {specs[key][1]}; "
                             "refusing to cast integer and float weights into each other")


#: the largest safetensors header read (the format's own readers use the same bound)
MAX_ST_HEADER = 100 << 20


def _st_header(path, n, raw, data_len):
    """Validate a safetensors header: a JSON object of {name: {dtype, shape, data_offsets}}, each tensor's
    byte length equal to prod(shape) x itemsize, offsets inside the data section and not overlapping."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a safetensors file (bad header: {e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors file (the header is a JSON {type(header).__name__}, "
                         "not an object of tensors)")
    entries = []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        where = f"{path}: tensor {key!r}"
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise ValueError(f"{where}: header entry must be an object with dtype, shape and data_offsets, "
                             f"got {str(info)[:80]}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype != "BF16" and dtype not in _ST_DTYPES:
            raise ValueError(f"{where} has unsupported dtype {dtype!r} (supported: BF16, {', '.join(_ST_DTYPES)})")
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise ValueError(f"{where}: shape must be a list of non-negative integers, got {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise ValueError(f"{where}: data_offsets must be [begin, end] with 0 <= begin <= end, got {offsets!r}")
        itemsize = 2 if dtype == "BF16" else np.dtype(_ST_DTYPES[dtype]).itemsize
        need = int(np.prod(shape, dtype=np.int64)) * itemsize
        if offsets[1] - offsets[0] != need:
            raise ValueError(f"{where}: shape {shape} of {dtype} needs {need:,} bytes but data_offsets {offsets} "
                             f"span {offsets[1] - offsets[0]:,}")
        if offsets[1] > data_len:
            raise ValueError(f"{path}: file is truncated: tensor {key!r} needs bytes {offsets[0]}..{offsets[1]} of "
                             f"the data section, which has {data_len}")
        entries.append((key, dtype, shape, offsets))
    entries.sort(key=lambda e: e[3][0])
    for (k1, _, _, o1), (k2, _, _, o2) in zip(entries, entries[1:]):
        if o2[0] < o1[1]:
            raise ValueError(f"{path}: tensors {k1!r} (bytes {o1[0]}..{o1[1]}) and {k2!r} (bytes {o2[0]}..{o2[1]}) "
                             "overlap")
    return entries


def _read_safetensors(path):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: truncated or not a safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise ValueError(f"{path}: truncated or not a safetensors file (header of {n} bytes, file {size} bytes)")
        if n > MAX_ST_HEADER:
            raise ValueError(f"{path}: safetensors header of {n:,} bytes is larger than {MAX_ST_HEADER:,}")
        entries = _st_header(path, n, f.read(n), size - 8 - n)
        data = f.read()
    out = OrderedDict()
    for key, dtype, shape, (begin, end) in entries:
        raw = data[begin:end]
        if dtype == "BF16":  # bfloat16: the top half of a float32
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, np.dtype(_ST_DTYPES[dtype]).newbyteorder("<"))
        out[key] = a.reshape(shape).astype(a.dtype.newbyteorder("="), copy=True)
    return out


def _read_npz(path, expected=None):
    """Read an .npz through :mod:`convnp.io.npz_guard`: headers first; with ``expected``, only entries whose
    (legacy-renamed) key and shape it lists are decompressed; without it, the compression-ratio rule applies."""
    from .npz_guard import check_ratio, inspect_npz, read_entries
    from .checkpoint import _MARKER
    entries = inspect_npz(path)
    if _MARKER in entries:  # a training checkpoint or saved model: its model weights (load_checkpoint validates)
        from .checkpoint import load_checkpoint
        return OrderedDict((k, np.asarray(v)) for k, v in load_checkpoint(path).model_state.items())
    entries = {k: e for k, e in entries.items() if not k.startswith("__")}
    for key, e in entries.items():
        if e.dtype.kind in "US":
            raise ValueError(f"{path}: entry {key!r} holds {e.dtype} data (text), not numbers")
    if expected is None:
        check_ratio(path, entries.values())
        return OrderedDict(read_entries(path, entries.values()))
    specs = _expected_specs(expected)
    names = _rename_legacy_keys(OrderedDict((k, None) for k in entries), specs)
    out = OrderedDict()
    wanted = [e for (k, e) in zip(names, entries.values()) if k in specs and specs[k][0] == e.shape]
    arrays = read_entries(path, wanted)
    for key, e in zip(names, entries.values()):
        out[key] = arrays[e.name] if e.name in arrays else np.broadcast_to(np.zeros((), e.dtype), e.shape)
    return out


def _read_pth(path):
    try:
        import torch
    except ImportError:
        raise ImportError(f"reading {path} needs PyTorch (pip install torch); .safetensors and .npz weights load "
                          "without it (convert once with `convnp convert in.pth out.safetensors` where torch "
                          "is installed)") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: truncated or not a PyTorch checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    out = OrderedDict()
    for key, value in obj.items():
        if not hasattr(value, "detach"):
            continue
        t = value.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        out[key[7:] if key.startswith("module.") else key] = t.numpy().copy()  # DataParallel prefix
    return out


# ---------------------------------------------------------------------------------------------- Keras
def read_keras_vgg16(path):
    """Read a Keras VGG/ResNet50 file (see :func:`convnp.io.keras.read_keras`; kept under its old name)."""
    from .keras import read_keras
    return read_keras(path)


# ---------------------------------------------------------------------------------------------- writing
def write_state_dict(state, path) -> None:
    """Write {key: array} to ``path`` as .safetensors, .npz or .pth (torch) by its suffix."""
    path = os.fspath(path)
    arrays = OrderedDict((k, _contiguous(to_numpy(v))) for k, v in state.items())
    suffix = _suffix(path)
    if suffix == ".safetensors":
        _write_safetensors(arrays, path)
    elif suffix == ".npz":
        np.savez(path, **arrays)
    elif suffix in PTH_SUFFIXES:
        try:
            import torch
        except ImportError:
            raise ImportError(f"writing {path} needs PyTorch (pip install torch); use .safetensors or .npz") from None
        torch.save(OrderedDict((k, torch.from_numpy(a.copy())) for k, a in arrays.items()), path)
    else:
        raise ValueError(f"unsupported weights file {path!r}: use .safetensors, .npz or .pth")


def _contiguous(a):
    a = np.asarray(a)  # (np.ascontiguousarray would turn 0-d arrays such as num_batches_tracked into 1-d)
    return a if a.flags.c_contiguous else a.copy()


def _write_safetensors(arrays, path):
    header, offset, blobs = {}, 0, []
    for key, a in arrays.items():
        if a.dtype not in _ST_NAMES:
            raise ValueError(f"cannot store {key!r} of dtype {a.dtype} in safetensors")
        blob = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[key] = {"dtype": _ST_NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # align the data section to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


# ---------------------------------------------------------------------------------------------- models
def _listing(keys, limit=12):
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_weights(model, path, strict: bool = True):
    """Load a weight file into ``model`` (keys and shapes as ``model.state_dict()``; torchvision layout).

    With ``strict=True`` any missing key, unexpected key or shape mismatch raises a ValueError that lists
    them (with counts); ``strict=False`` loads the matching keys and returns ``(missing, unexpected)``.
    As in PyTorch, BatchNorm ``num_batches_tracked`` may be absent (old checkpoints); torchvision's old
    DenseNet key names (``denselayer1.norm.1.weight``) are renamed to the current ones.

    Example: ``load_weights(models.resnet18(), "resnet18-f37072fd.pth")``.
    """
    own = model.state_dict()
    raw = read_state_dict(path, expected=own)  # bounded: only entries that fit ``own`` are inflated
    state = _rename_legacy_keys(raw, own)
    # files saved before PyTorch 0.4.1 have no BatchNorm num_batches_tracked; PyTorch keeps its own then, and so do we
    missing = [k for k in own if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} (model {tuple(own[k].shape)}, file {tuple(state[k].shape)})"
                  for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {_listing(mismatched)}")
    if strict and missing:
        problems.append(f"{len(missing)} keys missing from the file: {_listing(missing)}")
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected keys in the file: {_listing(unexpected)}")
    if problems:
        raise ValueError(f"{os.fspath(path)} does not fit {_model_name(model)} ({len(own)} entries; the file has "
                         f"{len(state)}): " + "; ".join(problems))
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    raw_adapt = getattr(raw, "adapt_model", None)  # Keras ResNet50 is v1: its strides move (io/keras.py)
    if raw_adapt is not None:
        raw_adapt(model)
    return missing, unexpected


# torchvision's DenseNet files (densenet121-a639ec97.pth, ...) predate its current key names: they say
# "denselayer1.norm.1.weight" where the model has "denselayer1.norm1.weight" (torchvision renames them too)
_LEGACY_DENSENET = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def _rename_legacy_keys(state, own):
    out = OrderedDict()
    for key, value in state.items():
        m = _LEGACY_DENSENET.match(key)
        if m and key not in own and m.group(1) + m.group(2) in own:
            key = m.group(1) + m.group(2)
        out[key] = value
    return out


def save_weights(model, path) -> None:
    """Write ``model.state_dict()`` to ``path`` (.safetensors, .npz, or .pth when torch is installed)."""
    write_state_dict(model.state_dict(), path)


def convert_weights(src, dst) -> int:
    """Convert a weight file between formats (e.g. .pth -> .safetensors); returns the number of arrays."""
    state = read_state_dict(src)
    write_state_dict(state, dst)
    return len(state)


def _model_name(model):
    factory = getattr(model, "_factory", None)
    return f"models.{factory[0]}" if factory else type(model).__name__
