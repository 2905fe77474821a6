"""Models as JSON-able configs (no pickle): ``{"class": "Conv2D", "config": {...}}``, recursively.

Two tables rebuild modules by name: ``MODULE_REGISTRY`` (every Module subclass, filled by
``Module.__init_subclass__``) and ``FACTORIES`` (functions ``fn(**kwargs) -> Module``, filled by
:func:`register_factory`; the zoo registers each of its models there, so a saved ``resnet18`` is stored as
``{"factory": "resnet18", "config": {...}}``). ``nn`` owns both tables and imports nothing above it.

A third table, ``EXPORTERS``, maps a Module class to the function that writes it as graph nodes
(``fn(g, module, name, x, y, path) -> output name``, see :mod:`convnp.io.onnx_export`): ``io`` fills it for
the layers of ``nn``, ``models`` for the zoo's own blocks, so the exporter imports neither.
"""
from __future__ import annotations

import numpy as np

from .module import MODULE_REGISTRY, Module

#: factory name -> function returning a Module; filled by convnp.models.register_model
FACTORIES: dict = {}


def register_factory(name: str, factory) -> None:
    """Let :func:`module_from_config` rebuild ``{"factory": name, "config": kwargs}`` as ``factory(**kwargs)``."""
    if not callable(factory):
        raise TypeError(f"register_factory: factory for {name!r} must be callable, got {type(factory).__name__}")
    if name in FACTORIES and FACTORIES[name] is not factory:
        raise ValueError(f"register_factory: a factory named {name!r} is already registered")
    FACTORIES[name] = factory

#: Module class -> exporter ``fn(g, module, name, x, y, path) -> output name``; filled by register_exporter
EXPORTERS: dict = {}


def register_exporter(*classes):
    """Decorator: ``fn`` writes instances of ``classes`` (and their subclasses, nearest class first)."""
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            raise TypeError(f"register_exporter: expected Module classes, got {cls!r}")

    def decorator(fn):
        for cls in classes:
            EXPORTERS[cls] = fn
        return fn
    return decorator


def exporter_for(module):
    """The exporter registered for ``type(module)`` or its nearest base class, or None."""
    for cls in type(module).__mro__:
        if cls in EXPORTERS:
            return EXPORTERS[cls]
    return None


def _encode(value):
    if isinstance(value, Module):
        return module_to_config(value)
    if isinstance(value, dict):
        return {"__dict__": {str(k): _encode(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.dtype, type)) and value in (np.float32, np.float64, np.float16):
        return {"__dtype__": np.dtype(value).name}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot serialize config value {value!r} of type {type(value).__name__}")


def _decode(value):
    if isinstance(value, dict):
        if "class" in value and "config" in value:
            return module_from_config(value)
        if "__dict__" in value:
            return {k: _decode(v) for k, v in value["__dict__"].items()}
        if "__dtype__" in value:
            return np.dtype(value["__dtype__"]).type
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def module_to_config(module: Module) -> dict:
    """A JSON-able description that :func:`module_from_config` turns back into an equal module.

    Models built by a zoo factory (``models.resnet18(num_classes=10)``) are stored by factory name and
    keyword arguments, so their configs stay short.
    """
    factory = getattr(module, "_factory", None)
    if factory is not None:
        name, kwargs = factory
        return {"factory": name, "config": {k: _encode(v) for k, v in kwargs.items()}}
    return {"class": type(module).__name__, "config": {k: _encode(v) for k, v in module.get_config().items()}}


def module_from_config(config: dict) -> Module:
    """Rebuild a module (without weights) from :func:`module_to_config`'s output."""
    if not isinstance(config, dict) or "config" not in config:
        raise ValueError(f"not a convnp module config: {str(config)[:200]}")
    kwargs = {k: _decode(v) for k, v in config["config"].items()}
    if "factory" in config:
        name = config["factory"]
        if name not in FACTORIES:
            raise ValueError(f"unknown model factory {name!r} in config (import the package that registers it); "
                             f"known: {', '.join(sorted(FACTORIES))}")
        return FACTORIES[name](**kwargs)
    name = config.get("class")
    if name not in MODULE_REGISTRY:
        raise ValueError(f"unknown layer class {name!r} in config; known: {', '.join(sorted(MODULE_REGISTRY))}")
    return MODULE_REGISTRY[name](**kwargs)
