"""Model registry: ``@register_model("resnet18")`` on a factory function; ``get_model(name, **kwargs)``.

Models built through the registry remember ``(name, kwargs)`` in ``model._factory`` so that saved
models store a short config and ``convnp.load`` rebuilds them by name.
"""
from __future__ import annotations

import functools

MODELS: dict = {}


def register_model(name: str):
    """Decorator: register a factory ``fn(**kwargs) -> Module`` under ``name``."""
    def decorator(fn):
        @functools.wraps(fn)
        def factory(*args, **kwargs):
            if args:
                raise TypeError(f"models.{name}: pass options by keyword (got positional {args!r})")
            model = fn(**kwargs)
            # "weights" (a file loaded once at construction) is not part of the architecture
            object.__setattr__(model, "_factory", (name, {k: v for k, v in kwargs.items() if k != "weights"}))
            return model
        if name in MODELS:
            raise ValueError(f"model name {name!r} registered twice")
        MODELS[name] = factory
        return factory
    return decorator


def get_model(name: str, **kwargs):
    """Build a registered model by name, e.g. ``get_model("simple_convnet")``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)


def list_models() -> list:
    return sorted(MODELS)
