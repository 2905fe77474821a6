"""Optimizer: the base class. Parameters by name, per-parameter state, saveable flat state dicts.

Every optimizer takes the parameters first, as in PyTorch::

    optimizer = optim.Adam(model.parameters(), lr=1e-3)      # names "0", "1", ...
    optimizer = optim.Adam(model, lr=1e-3)                   # names "conv1.weight", ... (dotted paths)
    optimizer = optim.Adam(model.named_parameters(), lr=1e-3)

and is used as::

    model.zero_grad(); loss.backward(...); model.backward(dloss)
    optimizer.step()

``step()`` updates ``p.data`` in place for every parameter that has a gradient and ``requires_grad``.
The per-parameter state (moments, momentum buffers, step counts) is keyed by the parameter's name, so
``state_dict()`` is a flat ``{str: array or python scalar}`` dict (npz and JSON friendly)::

    {"optimizer": "Adam", "lr": 0.001, "betas": [0.9, 0.999], ..., "step": 5,
     "param_names": ["conv1.weight", ...], "state.conv1.weight.step": 5,
     "state.conv1.weight.exp_avg": array(...), ...}

and ``load_state_dict`` puts it back (the hyper-parameters too, including ``lr``).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..backend import get_array_module, to_numpy
from ..nn.parameter import Parameter
from .clip import clip_grad_norm

_COMMON = ("lr", "clipnorm", "clipvalue", "global_clipnorm")


def named_parameter_list(params, where: str = "Optimizer"):
    """Normalize what an optimizer accepts into a list of (name, Parameter) pairs.

    Accepts a Module (dotted names), a dict name -> Parameter, an iterable of (name, Parameter) pairs,
    or an iterable of Parameters (names "0", "1", ...). A Parameter listed twice (shared weights) is
    kept once, under its first name.
    """
    if hasattr(params, "named_parameters") and callable(params.named_parameters):
        items = list(params.named_parameters())
    elif isinstance(params, Parameter):
        items = [("0", params)]
    elif isinstance(params, dict):
        items = list(params.items())
    elif isinstance(params, (str, bytes)) or not hasattr(params, "__iter__"):
        raise TypeError(f"{where}: params must be a Module or an iterable of Parameters, got {type(params).__name__}")
    else:
        items = []
        for i, item in enumerate(params):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                items.append(item)
            else:
                items.append((str(i), item))
    if not items:
        raise ValueError(f"{where}: got an empty parameter list (did the model build? call it once on an "
                         "input, or give in_channels/in_features, before creating the optimizer)")
    out, seen_ids, seen_names = [], set(), set()
    for name, p in items:
        if not isinstance(p, Parameter):
            raise TypeError(f"{where}: parameter {name!r} is a {type(p).__name__}, not a convnp.nn.Parameter")
        if id(p) in seen_ids:
            continue
        if name in seen_names:
            raise ValueError(f"{where}: duplicate parameter name {name!r}")
        seen_ids.add(id(p))
        seen_names.add(name)
        out.append((name, p))
    return out


def check_non_negative(where: str, **values) -> None:
    for name, value in values.items():
        if not float(value) >= 0:  # also rejects NaN
            raise ValueError(f"{where}: {name} must be >= 0, got {value!r}")


def check_unit_interval(where: str, name: str, value) -> None:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{where}: {name} must be in [0, 1), got {value!r}")


CLIP_OPTIONS = ("clipnorm", "clipvalue", "global_clipnorm")


def reject_unknown_options(optimizer, options: dict) -> None:
    """A TypeError naming the unexpected keyword arguments and the ones ``optimizer`` accepts."""
    unknown = [k for k in options if k not in CLIP_OPTIONS]
    if unknown:
        where = type(optimizer).__name__
        accepted = ", ".join(("lr",) + tuple(optimizer.hyperparameters) + CLIP_OPTIONS)
        raise TypeError(f"{where}: unexpected argument(s) {', '.join(map(repr, unknown))}; {where} takes {accepted}")


class Optimizer:
    """Base class: subclasses define ``_update(p, grad, state)`` and list their hyper-parameters.

    Args:
        params: a Module, Parameters, (name, Parameter) pairs or a dict name -> Parameter.
        lr: learning rate (>= 0); a plain attribute that learning-rate schedulers change.
        clipnorm: clip each parameter's gradient to this L2 norm before the update (Keras' ``clipnorm``).
        clipvalue: clip each gradient element into [-clipvalue, clipvalue] (Keras' ``clipvalue``).
        global_clipnorm: clip all gradients together to this global L2 norm (Keras' ``global_clipnorm``,
            ``torch.nn.utils.clip_grad_norm_``).
        Clipping rewrites ``p.grad`` in place.
    """

    #: names of the subclass's hyper-parameters (attributes), saved in state_dict next to "lr"
    hyperparameters: tuple = ()

    def __init__(self, params, lr: float, clipnorm=None, clipvalue=None, global_clipnorm=None, **unknown):
        where = type(self).__name__
        reject_unknown_options(self, unknown)
        self.named_params = named_parameter_list(params, where)
        check_non_negative(where, lr=lr)
        for name, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm)):
            if value is not None and not float(value) > 0:
                raise ValueError(f"{where}: {name} must be > 0 or None, got {value!r}")
        self.lr = float(lr)
        self.clipnorm = None if clipnorm is None else float(clipnorm)
        self.clipvalue = None if clipvalue is None else float(clipvalue)
        self.global_clipnorm = None if global_clipnorm is None else float(global_clipnorm)
        self.initial_lr = None  # set by the first learning-rate scheduler (PyTorch's group["initial_lr"])
        self.step_count = 0  # number of step() calls
        self.state: dict[str, dict] = {name: {} for name, _ in self.named_params}

    # ------------------------------------------------------------------ the step
    @property
    def param_names(self) -> list:
        return [name for name, _ in self.named_params]

    def parameters(self) -> list:
        return [p for _, p in self.named_params]

    def zero_grad(self) -> None:
        """Set every parameter's gradient to None (the next backward starts a fresh sum)."""
        for _, p in self.named_params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient (and ``requires_grad``) in place."""
        active = [(name, p) for name, p in self.named_params if p.grad is not None and p.requires_grad]
        for name, p in active:  # check everything before changing anything
            if tuple(p.grad.shape) != tuple(p.data.shape):
                raise ValueError(f"{type(self).__name__}.step: gradient of {name!r} has shape "
                                 f"{tuple(p.grad.shape)}, parameter has {tuple(p.data.shape)}")
        if self.global_clipnorm is not None:
            clip_grad_norm([p for _, p in active], self.global_clipnorm)
        for name, p in active:
            grad = p.grad
            if self.clipnorm is not None:
                clip_grad_norm(p, self.clipnorm)
            if self.clipvalue is not None:
                xp = get_array_module(grad)
                xp.clip(grad, -self.clipvalue, self.clipvalue, out=grad)
            self._update(p, grad, self.state[name])
        self.step_count += 1

    def _update(self, p: Parameter, grad, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}._update is not implemented")

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict:
        """The constructor's keyword arguments (without the parameters)."""
        config = {"lr": self.lr}
        for name in self.hyperparameters:
            value = getattr(self, name)
            config[name] = list(value) if isinstance(value, tuple) else value
        for name in CLIP_OPTIONS:
            if getattr(self, name) is not None:
                config[name] = getattr(self, name)
        return config

    def state_dict(self) -> "OrderedDict[str, object]":
        """A flat dict of hyper-parameters, the step count and per-parameter state (copies of the arrays)."""
        out = OrderedDict()
        out["optimizer"] = type(self).__name__
        for name in _COMMON + tuple(self.hyperparameters):
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value) if isinstance(value, tuple) else value
        if self.initial_lr is not None:
            out["initial_lr"] = self.initial_lr
        out["step"] = self.step_count
        out["param_names"] = self.param_names
        for pname, state in self.state.items():
            for key, value in state.items():
                out[f"state.{pname}.{key}"] = value.copy() if hasattr(value, "copy") else value
        return out

    def load_state_dict(self, state_dict) -> None:
        """Restore hyper-parameters, step count and per-parameter state saved by :meth:`state_dict`.

        Works with the dict itself or with it read back from an npz/JSON file. Raises a ValueError listing
        unknown and missing parameter names and shape mismatches, and when the dict is another optimizer's.
        """
        where = f"{type(self).__name__}.load_state_dict"
        d = dict(state_dict)
        kind = d.get("optimizer")
        if kind is not None and str(_scalar(kind)) != type(self).__name__:
            raise ValueError(f"{where}: the state dict is from {_scalar(kind)}, not {type(self).__name__}")
        saved_names = [str(n) for n in to_numpy(d["param_names"])] if "param_names" in d else None
        own = dict(self.named_params)
        per_param: dict[str, dict] = {}
        for key, value in d.items():
            if key.startswith("state."):
                pname, _, skey = key[len("state."):].rpartition(".")
                per_param.setdefault(pname, {})[skey] = value
        names = saved_names if saved_names is not None else list(per_param)
        unknown = [n for n in dict.fromkeys(list(names) + list(per_param)) if n not in own]
        missing = [n for n in own if n not in names] if saved_names is not None else []
        mismatched = [f"{n}.{k}: expected {tuple(own[n].shape)}, got {tuple(np.shape(v))}"
                      for n, entries in per_param.items() if n in own
                      for k, v in entries.items() if k != "step" and tuple(np.shape(v)) != tuple(own[n].shape)]
        problems = []
        if unknown:
            problems.append("unknown parameter names: " + ", ".join(unknown))
        if missing:
            problems.append("missing parameter names: " + ", ".join(missing))
        if mismatched:
            problems.append("shape mismatch for " + "; ".join(mismatched))
        if problems:
            raise ValueError(f"{where}: " + " | ".join(problems) + f" (this optimizer has {', '.join(own)})")
        # hyper-parameters
        for name in _COMMON + tuple(self.hyperparameters):
            if name in d:
                setattr(self, name, _restore_hyper(getattr(self, name), d[name]))
            elif name in ("clipnorm", "clipvalue", "global_clipnorm"):
                setattr(self, name, None)
        self.initial_lr = float(_scalar(d["initial_lr"])) if "initial_lr" in d else None
        self.step_count = int(_scalar(d.get("step", 0)))
        # per-parameter state, on the device and in the dtype of each parameter
        self.state = {name: {} for name in own}
        for pname, entries in per_param.items():
            data = own[pname].data
            xp = get_array_module(data)
            for key, value in entries.items():
                if key == "step":
                    self.state[pname][key] = int(_scalar(value))
                else:
                    host = to_numpy(value) if xp is np else value
                    self.state[pname][key] = xp.array(host, dtype=data.dtype).reshape(data.shape)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({len(self.named_params)} parameters, {args})"


def _scalar(value):
    """A python scalar from a python scalar, a 0-d array or a 1-element array (as read back from npz)."""
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:
        return value.item()
    return value


def _restore_hyper(current, saved):
    if isinstance(current, tuple) or (hasattr(saved, "__len__") and not isinstance(saved, str) and np.ndim(saved) > 0):
        return tuple(float(v) for v in to_numpy(saved))
    value = _scalar(saved)
    if isinstance(current, bool):
        return bool(value)
    if value is None:
        return None
    return float(value)
