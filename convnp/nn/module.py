"""Module: the base class of every layer and model.

The layer contract (docs/architecture.md, "Where to add a new layer"):

* ``y = layer.forward(x)`` caches only what backward needs (and nothing under ``convnp.no_grad()``);
* ``dx = layer.backward(dy)`` returns the input gradient and *adds* into each ``param.grad``;
* ``layer(x)`` builds the layer on first use (lazy shapes), then calls ``forward``;
* backward before forward raises a clear error (use :meth:`Module._get_cache`).

A Module registers the Parameters, sub-Modules and buffers assigned to its attributes, in assignment
order, so ``state_dict()`` keys are dotted attribute paths (``features.0.weight``,
``layer1.0.bn1.running_mean``) exactly as in PyTorch.

Buffers follow torch's rule: ``register_buffer(name, array)`` registers an array, and assigning
``self.name = new_array`` later keeps it registered (a new shape or dtype is allowed); only assigning a
Parameter or a Module under that name replaces the buffer.

Constructor arguments are captured automatically (``Module.__new__`` binds them to ``__init__``'s
signature), so ``get_config()`` and ``repr`` work for every subclass without boilerplate.

Module knows nothing of training or files: ``compile`` / ``fit`` / ``evaluate`` / ``predict`` /
``save`` / ``load_weights`` belong to :class:`convnp.train.model.Model`, which ``nn.Sequential`` and the
zoo's model classes carry (docs/architecture.md).
"""
from __future__ import annotations

import inspect
from collections import OrderedDict

import numpy as np

from .. import backend as _backend
from ..backend import get_array_module, is_grad_enabled, normalize_device, to_device, to_numpy
from .parameter import Parameter

#: every Module subclass by class name, for rebuilding models from configs
MODULE_REGISTRY: dict[str, type] = {}

_summary_recorder: list | None = None  # set by summary()/capture_activations() while they trace a forward


class ForwardCache:
    """What a layer's forward keeps for its backward, and the clear error when backward comes first.

    Shared by :class:`Module` and the textbook-style layers of :mod:`convnp.textbook`.
    """

    _cache = None

    def _save_cache(self, cache) -> None:
        """Keep what backward needs; skipped under ``no_grad()``."""
        self._cache = cache if is_grad_enabled() else None

    def _get_cache(self):
        """The cache of the last forward, or a clear error if there is none."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward "
                               "(or the forward ran under convnp.no_grad())")
        return self._cache


class Module(ForwardCache):
    """Base class for layers and models. Subclasses implement ``forward`` and ``backward``
    (and optionally ``build(input_shape)`` for lazily inferred sizes)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        MODULE_REGISTRY.setdefault(cls.__name__, cls)

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        try:
            bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
        except TypeError:
            bound = None  # __init__ itself will raise the real error
        config = OrderedDict()
        if bound is not None:
            for name, value in list(bound.arguments.items())[1:]:
                kind = inspect.signature(cls.__init__).parameters[name].kind
                if kind == inspect.Parameter.VAR_POSITIONAL:
                    config[name] = list(value)
                elif kind == inspect.Parameter.VAR_KEYWORD:
                    config.update(value)
                else:
                    config[name] = value
        object.__setattr__(obj, "_config", config)
        object.__setattr__(obj, "_parameters", OrderedDict())
        object.__setattr__(obj, "_modules", OrderedDict())
        object.__setattr__(obj, "_buffers", OrderedDict())
        object.__setattr__(obj, "_non_persistent", set())
        object.__setattr__(obj, "training", True)
        object.__setattr__(obj, "built", False)
        object.__setattr__(obj, "_cache", None)
        return obj

    def __init__(self):
        pass

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if name in self._buffers and not isinstance(value, (Parameter, Module)):
            object.__setattr__(self, name, value)  # a registered buffer stays registered (torch's rule)
            return
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        self._non_persistent.discard(name)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        self._non_persistent.discard(name)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array, persistent: bool = True) -> None:
        """A non-trainable array saved in ``state_dict`` (e.g. BatchNorm running statistics) unless
        ``persistent=False``. Later ``self.name = other_array`` keeps it registered, as in torch."""
        for table in (self._parameters, self._modules):
            table.pop(name, None)
        object.__setattr__(self, name, array)
        self._buffers[name] = True
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: "Module") -> None:
        setattr(self, str(name), module)

    # ------------------------------------------------------------------ calling
    def build(self, input_shape) -> None:
        """Create parameters once the input shape is known. Default: nothing to build."""

    #: True for a layer whose eval-mode output for one sample depends on the other samples of the batch
    #: (none of convnp's); Sequential then never splits an inference batch into chunks
    mixes_samples = False

    def __call__(self, x, *args, **kwargs):
        if not self.built:
            self.build(getattr(x, "shape", None))
            self.built = True
            if (self._parameters or self._buffers) and getattr(self, "_device_hint", "cpu") != "cpu":
                self.to(self._device_hint)  # lazily built after model.to("cuda"): follow the model
        if _backend._cupy is not None and self._parameters:  # NumPy input to a GPU layer or the reverse
            for p in self._parameters.values():
                _backend.check_same_device(type(self).__name__, x, p.data)
                break
        y = self.forward(x, *args, **kwargs)
        if _summary_recorder is not None:
            _summary_recorder.append((self, y))
        return y

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    def check_input(self, x, ndim: int, channels: int | None = None, channel_axis: int = 1) -> None:
        """Raise a ValueError naming this layer when ``x`` has the wrong rank or channel count."""
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) != ndim:
            layout = {4: "(N, C, H, W)", 2: "(N, features)", 3: "(N, C, L)"}.get(ndim, f"{ndim}-D")
            raise ValueError(f"{type(self).__name__}: expected a {ndim}-D input {layout}, got shape {shape}")
        if channels is not None and shape[channel_axis] != channels:
            raise ValueError(f"{type(self).__name__}: expected {channels} input channels, got "
                             f"{shape[channel_axis]} (input shape {shape})")

    # ------------------------------------------------------------------ traversal
    def children(self):
        return iter(self._modules.values())

    def named_children(self):
        return iter(self._modules.items())

    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, module in self._modules.items():
            yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = ""):
        for name, p in self._parameters.items():
            yield (f"{prefix}.{name}" if prefix else name), p
        for name, module in self._modules.items():
            yield from module.named_parameters(f"{prefix}.{name}" if prefix else name)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = ""):
        for name in self._buffers:
            yield (f"{prefix}.{name}" if prefix else name), getattr(self, name)
        for name, module in self._modules.items():
            yield from module.named_buffers(f"{prefix}.{name}" if prefix else name)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    # ------------------------------------------------------------------ modes, device, dtype
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def _map_arrays(self, fn) -> None:
        for m in self.modules():
            for p in m._parameters.values():
                p.data = fn(p.data)
                if p.grad is not None:
                    p.grad = fn(p.grad)
            for name in m._buffers:
                value = getattr(m, name)
                if value is not None:
                    setattr(m, name, fn(value))
            m._cache = None

    def to(self, device) -> "Module":
        """Move parameters and buffers to 'cpu' (NumPy) or 'cuda' (CuPy), in place; returns self."""
        device = normalize_device(device)
        self._map_arrays(lambda a: to_device(a, device))
        for m in self.modules():  # layers built later (lazy shapes) move there on their first call
            m._device_hint = device
        return self

    @property
    def device(self) -> str:
        """'cpu' or 'cuda': where the parameters are (before they exist: where ``to()`` asked them to be)."""
        for _, a in list(self.named_parameters()) + list(self.named_buffers()):
            data = a.data if isinstance(a, Parameter) else a
            return "cpu" if get_array_module(data) is np else "cuda"
        return getattr(self, "_device_hint", "cpu")

    def astype(self, dtype) -> "Module":
        """Cast floating parameters and buffers to ``dtype`` (float64 for gradient checks); returns self."""
        def cast(a):
            return a.astype(dtype) if a.dtype.kind == "f" else a
        self._map_arrays(cast)
        return self

    # ------------------------------------------------------------------ state dict
    def state_dict(self) -> "OrderedDict[str, object]":
        """Parameters and persistent buffers by dotted path (PyTorch key names), as the arrays themselves."""
        out = OrderedDict()
        self._collect_state("", out)
        return out

    def _collect_state(self, prefix, out):
        for name, p in self._parameters.items():
            out[prefix + name] = p.data
        for name in self._buffers:
            if name not in self._non_persistent and getattr(self, name) is not None:
                out[prefix + name] = getattr(self, name)
        for name, module in self._modules.items():
            module._collect_state(f"{prefix}{name}.", out)

    def load_state_dict(self, state, strict: bool = True):
        """Copy arrays from ``state`` into this module's parameters and buffers.

        Values are converted to the dtype and device of the existing array. With ``strict=True`` any
        missing key, unexpected key or shape mismatch raises one KeyError/ValueError that lists them
        all. Returns ``(missing, unexpected)``.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        mismatched = [f"{k}: expected {tuple(own[k].shape)}, got {tuple(np.shape(state[k]))}"
                      for k in own if k in state and tuple(own[k].shape) != tuple(np.shape(state[k]))]
        problems = []
        if mismatched:
            problems.append("shape mismatch for " + "; ".join(mismatched))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + " | ".join(problems))
        for key, target in own.items():
            if key in state:
                self._assign(key, state[key])
        return missing, unexpected

    def _assign(self, dotted_key, value):
        *path, leaf = dotted_key.split(".")
        owner = self
        for part in path:
            owner = owner._modules[part]
        current = getattr(owner, leaf)
        current_data = current.data if isinstance(current, Parameter) else current
        xp = get_array_module(current_data)
        new = xp.asarray(to_numpy(value) if xp is np else value, dtype=current_data.dtype).reshape(current_data.shape)
        if isinstance(current, Parameter):
            current.data = new.copy()
        else:
            setattr(owner, leaf, new.copy())

    # ------------------------------------------------------------------ config and printing
    def get_config(self) -> dict:
        """The constructor arguments, so that ``type(layer)(**layer.get_config())`` rebuilds it."""
        return dict(self._config)

    def extra_repr(self) -> str:
        sig = inspect.signature(type(self).__init__).parameters
        parts = []
        for name, value in self.get_config().items():
            if isinstance(value, Module) or (isinstance(value, (list, tuple)) and value
                                             and all(isinstance(v, Module) for v in value)):
                continue
            default = sig[name].default if name in sig else inspect.Parameter.empty
            if default is inspect.Parameter.empty or not _equal(default, value):
                parts.append(f"{name}={value!r}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return "\n".join(lines) + "\n)"

    def summary(self, input_shape=None, print_fn=print, batch_size: int = 1) -> str:
        """Print (and return) a Keras-style table: Layer (type) | Output Shape | Param #.

        ``input_shape`` excludes the batch axis, e.g. ``(1, 28, 28)``. It traces one forward pass on zeros
        in eval mode (which also builds lazy layers); without it only parameter counts are shown.
        """
        from .summary import summarize
        text = summarize(self, input_shape, batch_size=batch_size)
        if print_fn is not None:
            print_fn(text)
        return text


def _equal(a, b) -> bool:
    try:
        return bool(a == b) if not isinstance(a, (list, tuple)) else tuple(a) == tuple(b)
    except Exception:
        return False


def _set_summary_recorder(recorder):
    global _summary_recorder
    _summary_recorder = recorder
