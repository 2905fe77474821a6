"""Checkpoints and saved models: ONE ``.npz`` file, no pickle, written atomically.

Layout of the archive (every entry a plain array; text entries are 0-d unicode arrays):

* ``__convnp__``: JSON metadata ``{"format": "convnp", "version": 1, "kind": "checkpoint"|"model",
  "epoch": ..., "input_shape": [...], "convnp_version": ...}``
* ``config``: the model as JSON (:func:`convnp.nn.serialize.module_to_config`)
* ``model/<key>``: weights and buffers (``state_dict`` keys, PyTorch names)
* ``optimizer/<key>``: optimizer state arrays; ``optimizer_scalars``: its numbers, as JSON
* ``state``: JSON with the training state (history, RNG states of the model's random layers, seed,
  callback states, compile settings)

``save_checkpoint`` writes a temporary file in the same directory and renames it over the target
(``os.replace``), so a crash never leaves a half-written checkpoint. ``load`` rebuilds the model.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

from ..backend import no_grad, to_numpy

FORMAT = "convnp"
VERSION = 1
_MARKER = "__convnp__"


class CheckpointError(ValueError):
    """A file that is not a readable convnp checkpoint (corrupt, truncated, foreign or too new)."""


def _text(value) -> np.ndarray:
    return np.array(value)


# ---------------------------------------------------------------------------- RNG state of layers
def rng_states(model) -> dict:
    """The state of every ``numpy.random.Generator`` held by a layer (e.g. Dropout), by ``path:attr``."""
    out = {}
    for path, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, np.random.Generator):
                out[f"{path}:{attr}"] = value.bit_generator.state
    return out


def set_rng_states(model, states: dict) -> None:
    """Restore :func:`rng_states` into the (identically structured) ``model``."""
    modules = dict(model.named_modules())
    for key, state in states.items():
        path, attr = key.rsplit(":", 1)
        value = getattr(modules.get(path), attr, None)
        if isinstance(value, np.random.Generator):
            value.bit_generator.state = state


# ---------------------------------------------------------------------------- writing
def save_checkpoint(path, model, optimizer=None, epoch: int = 0, state: dict | None = None, input_shape=None,
                    kind: str = "checkpoint") -> str:
    """Write ``model`` (config + weights), ``optimizer`` state and training ``state`` to one npz file.

    Args:
        path: target file (".npz" is appended when missing).
        model: the Module; its config must be JSON-serializable (zoo and Sequential models are).
        optimizer: optional optimizer with ``state_dict()`` (flat name -> array or number).
        epoch: number of completed epochs.
        state: JSON-able dict (history, seed, callback states, ...); RNG states are added here.
        input_shape: one sample's shape, e.g. (1, 28, 28), used to build lazy layers on load.
        kind: "checkpoint" or "model".

    Returns the path written. Example: ``save_checkpoint("runs/x/last.npz", model, opt, epoch=3)``.
    """
    from ..nn.serialize import module_to_config
    from .._version import __version__
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    meta = {"format": FORMAT, "version": VERSION, "kind": kind, "epoch": int(epoch),
            "input_shape": None if input_shape is None else [int(s) for s in input_shape],
            "convnp_version": __version__, "optimizer": None if optimizer is None else type(optimizer).__name__}
    entries = {_MARKER: _text(json.dumps(meta)), "config": _text(json.dumps(module_to_config(model)))}
    for key, value in model.state_dict().items():
        entries[f"model/{key}"] = np.asarray(to_numpy(value))
    if optimizer is not None:
        scalars = {}
        for key, value in optimizer.state_dict().items():
            value = to_numpy(value)
            if isinstance(value, np.ndarray):
                entries[f"optimizer/{key}"] = value
            elif isinstance(value, np.generic):
                scalars[key] = value.item()
            else:
                scalars[key] = value
        entries["optimizer_scalars"] = _text(json.dumps(scalars))
    full_state = dict(state or {})
    full_state["rng"] = rng_states(model)
    entries["state"] = _text(json.dumps(full_state))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    remove_stale_temp_files(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint follows the umask like other outputs
        os.replace(tmp, path)
    except OSError as e:
        raise type(e)(f"cannot write checkpoint {path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: a temporary file of a checkpoint write older than this many seconds is left over from a killed writer
STALE_SECONDS = 60.0


def remove_stale_temp_files(path, older_than: float = STALE_SECONDS) -> list:
    """Delete ``.NAME.npz.XXXX.tmp`` files of the target ``path`` left by a writer killed mid-write (SIGKILL
    skips the cleanup); only those older than ``older_than`` seconds, so a concurrent writer is not disturbed.
    Returns the removed paths."""
    import time
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    removed = []
    try:
        candidates = os.listdir(directory)
    except OSError:
        return removed
    now = time.time()
    for f in candidates:
        if f.startswith(f".{name}.") and f.endswith(".tmp"):
            full = os.path.join(directory, f)
            try:
                if now - os.path.getmtime(full) > older_than:
                    os.remove(full)
                    removed.append(full)
            except OSError:
                pass
    return removed


def save_model(model, path, input_shape=None, optimizer=None) -> str:
    """Save a model (config + weights, and the optimizer state when given) for :func:`load`."""
    return save_checkpoint(path, model, optimizer=optimizer, input_shape=input_shape, kind="model")


# ---------------------------------------------------------------------------- reading
class Checkpoint:
    """The parsed contents of a checkpoint file (see the module docstring): ``meta``, ``config``,
    ``model_state``, ``optimizer_state`` (None when absent), ``state``; ``build_model()`` rebuilds it."""

    def __init__(self, path, meta, config, model_state, optimizer_state, state):
        self.path, self.meta, self.config = path, meta, config
        self.model_state, self.optimizer_state, self.state = model_state, optimizer_state, state

    @property
    def epoch(self) -> int:
        return int(self.meta.get("epoch", 0))

    @property
    def input_shape(self):
        shape = self.meta.get("input_shape")
        return None if shape is None else tuple(shape)

    def build_model(self, device: str | None = None):
        """A new model from the stored config with the stored weights and layer RNG states (eval mode)."""
        model, self._model = getattr(self, "_model", None), None
        if model is None:
            from ..nn.serialize import module_from_config
            try:
                model = module_from_config(self.config)
            except Exception as e:
                raise CheckpointError(f"{self.path}: cannot rebuild the model from its stored config: {e}") from None
            build(model, self.input_shape)
        if device is not None:
            model.to(device)
        try:
            model.load_state_dict(self.model_state, strict=True)
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{self.path}: stored weights do not fit the stored model: {e}") from None
        set_rng_states(model, self.state.get("rng", {}))
        return model.eval()

    def _rebuild(self):
        """The model of the stored config with built (lazy) parameters, or None when it cannot be rebuilt."""
        from ..nn.serialize import module_from_config
        try:
            model = module_from_config(self.config)
            build(model, self.input_shape)
        except Exception:
            return None
        return model

    def __repr__(self):
        return (f"Checkpoint({self.path!r}, kind={self.meta.get('kind')}, epoch={self.epoch}, "
                f"{len(self.model_state)} tensors, optimizer={self.meta.get('optimizer')})")


def build(model, input_shape) -> None:
    """Create lazily shaped parameters by running one zero sample through ``model`` (eval mode, no_grad)."""
    if input_shape is None:
        return
    was_training = model.training
    model.eval()
    dtype = next((p.dtype for p in model.parameters()), np.float32)
    from ..backend import array_module_for
    xp = array_module_for(model.device)
    with no_grad():
        model(xp.zeros((1,) + tuple(input_shape), dtype=dtype))
    model.train(was_training)


#: a text entry (config, state, metadata) larger than this is refused before it is read
MAX_TEXT_BYTES = 64 << 20
_TEXT_ENTRIES = (_MARKER, "config", "state", "optimizer_scalars")


def _json_entry(path, entries, arrays, name, default=None, kind=dict):
    if name not in entries:
        if default is not None:
            return default
        raise CheckpointError(f"{path}: damaged checkpoint metadata: no {name!r} entry")
    try:
        value = json.loads(str(arrays[name]))
    except ValueError as e:
        raise CheckpointError(f"{path}: damaged checkpoint metadata: entry {name!r} is not valid JSON ({e})") from None
    if not isinstance(value, kind):
        raise CheckpointError(f"{path}: damaged checkpoint metadata: entry {name!r} must hold a JSON object, got a JSON "
                              f"{type(value).__name__} ({str(value)[:60]})")
    return value


def _check_text_entries(path, entries):
    for name in _TEXT_ENTRIES:
        e = entries.get(name)
        if e is not None and (e.dtype.kind != "U" or e.shape != () or e.file_size > MAX_TEXT_BYTES):
            raise CheckpointError(f"{path}: entry {name!r} must be a text scalar of at most {MAX_TEXT_BYTES:,} "
                                  f"bytes, got shape {e.shape} of {e.dtype} ({e.file_size:,} bytes)")


def _check_arrays(path, entries, model):
    """Names, shapes and dtypes of the ``model/`` and ``optimizer/`` entries against the rebuilt ``model``,
    from the headers only (nothing is inflated yet)."""
    from .weights import _listing
    own = {k: (tuple(v.shape), np.dtype(str(v.dtype))) for k, v in model.state_dict().items()}
    stored = {k[len("model/"):]: e for k, e in entries.items() if k.startswith("model/")}
    problems = []
    unexpected = [k for k in stored if k not in own]
    missing = [k for k in own if k not in stored]
    wrong = [f"{k} (model {own[k][0]}, file {e.shape})" for k, e in stored.items() if k in own and own[k][0] != e.shape]
    kinds = [f"{k} (model {own[k][1]}, file {e.dtype})" for k, e in stored.items()
             if k in own and (own[k][1].kind == "f") != (e.dtype.kind == "f")]
    for label, items in (("unexpected keys", unexpected), ("missing keys", missing), ("shape mismatches", wrong),
                         ("dtype mismatches (integer or text data for float parameters, or the reverse)", kinds)):
        if items:
            problems.append(f"{len(items)} {label}: {_listing(items)}")
    for k, e in entries.items():
        if not k.startswith("optimizer/"):
            continue
        rest = k[len("optimizer/state."):] if k.startswith("optimizer/state.") else ""
        pname = max((p for p in own if rest.startswith(p + ".")), key=len, default=None)
        limit = int(np.prod(own[pname][0], dtype=np.int64)) if pname else 1
        if int(np.prod(e.shape, dtype=np.int64)) > limit or e.dtype.kind not in "fiub" or e.dtype.itemsize > 8:
            problems.append(f"optimizer entry {k[len('optimizer/'):]} has shape {e.shape} of {e.dtype}; expected at "
                            f"most {limit} numbers" + (f" (the size of parameter {pname})" if pname else ""))
    if problems:
        raise CheckpointError(f"{path}: stored weights do not fit the stored model: " + "; ".join(problems))


def load_checkpoint(path) -> Checkpoint:
    """Read and validate a checkpoint file; a clear :class:`CheckpointError` for anything else.

    Memory stays bounded by the model's own size whatever the file holds: the entry headers are read first
    (:mod:`convnp.io.npz_guard`), the model is rebuilt from the stored config, and names, shapes and dtypes
    are compared with it before any array is decompressed.
    """
    from .npz_guard import NpzDamaged, NpzError, check_ratio, inspect_npz, read_entries
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a directory; pass a checkpoint file such as {os.path.join(path, 'best.npz')}")
    try:
        entries = inspect_npz(path)
        if _MARKER not in entries:
            raise CheckpointError(f"{path} is an npz archive but not a convnp checkpoint (no '{_MARKER}' "
                                  "entry); for bare weights use model.load_weights(path)")
        others = [k for k in entries if k not in _TEXT_ENTRIES and not k.startswith(("model/", "optimizer/"))]
        if others:
            from .weights import _listing
            raise CheckpointError(f"{path}: {len(others)} unexpected entries in the checkpoint: {_listing(others)}")
        _check_text_entries(path, entries)
        texts = read_entries(path, [entries[k] for k in _TEXT_ENTRIES if k in entries])
        meta = _json_entry(path, entries, texts, _MARKER)
        config = _json_entry(path, entries, texts, "config")
        state = _json_entry(path, entries, texts, "state", default={})
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path}: unknown checkpoint format {str(meta)[:80]}")
        if not isinstance(meta.get("version", 0), int) or meta.get("version", 0) > VERSION:
            raise CheckpointError(f"{path} was written by a newer convnp (format version {meta.get('version')}, "
                                  f"this one reads <= {VERSION}); upgrade convnp")
        scalars = _json_entry(path, entries, texts, "optimizer_scalars") if "optimizer_scalars" in entries else None
        arrays = [e for k, e in entries.items() if k not in _TEXT_ENTRIES]
        ckpt = Checkpoint(path, meta, config, {}, None, state)
        model = ckpt._rebuild()
        if model is None:  # a config this convnp cannot rebuild: fall back to the compression-ratio rule
            check_ratio(path, arrays)
        else:
            _check_arrays(path, entries, model)
        data = read_entries(path, arrays)
    except NpzError as e:
        if not isinstance(e, NpzDamaged):
            raise CheckpointError(str(e)) from None
        raise CheckpointError(f"{path} is not a readable convnp checkpoint ({str(e).split(' (', 1)[-1]}") from None
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise CheckpointError(f"{path} is not a readable convnp checkpoint (corrupt or truncated file: "
                              f"{type(e).__name__}: {e})") from None
    ckpt.model_state = {k[len("model/"):]: v for k, v in data.items() if k.startswith("model/")}
    if scalars is not None:
        scalars.update({k[len("optimizer/"):]: v for k, v in data.items() if k.startswith("optimizer/")})
        ckpt.optimizer_state = scalars
    ckpt._model = model
    return ckpt


def load(path, device: str | None = None):
    """Open a checkpoint or saved model and return the model, in eval mode, ready for ``predict``.

    Example::

        model = convnp.load("runs/latest/best.npz")
        probs = model.predict_proba(x_test[:5])
    """
    ckpt = load_checkpoint(path)
    model = ckpt.build_model(device)
    compile_cfg = ckpt.state.get("compile")
    model._checkpoint_info = {"path": ckpt.path, "epoch": ckpt.epoch, "input_shape": ckpt.input_shape,
                              "compile": compile_cfg, "class_names": ckpt.state.get("class_names"),
                              "dataset": ckpt.state.get("dataset")}
    return model
