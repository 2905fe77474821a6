"""Model registry: ``@register_model("resnet18")`` on a factory function; ``get_model(name, **kwargs)``.

Models built through the registry remember ``(name, kwargs)`` in ``model._factory`` so that saved
models store a short config and ``convnp.load`` rebuilds them by name: each factory is also entered in
:mod:`convnp.nn.serialize`'s factory table, which ``nn`` owns and ``models`` fills (``nn`` never imports
``models``).

Zoo model classes that are not ``nn.Sequential`` (``ResNet``) are listed with ``@model_class`` so that
:mod:`convnp.train.model` gives them the Keras-style methods (compile, fit, predict, save, ...).
"""
from __future__ import annotations

import functools

from ..nn.serialize import register_factory

MODELS: dict = {}

#: zoo classes that are whole models; convnp.train.model mixes its ``Model`` methods into each
MODEL_CLASSES: list = []


def model_class(cls):
    """Class decorator: ``cls`` is a whole model (gets compile / fit / predict / save from convnp.train)."""
    MODEL_CLASSES.append(cls)
    return cls


def register_model(name: str):
    """Decorator: register a factory ``fn(**kwargs) -> Module`` under ``name``."""
    def decorator(fn):
        @functools.wraps(fn)
        def factory(*args, **kwargs):
            if args:
                raise TypeError(f"models.{name}: pass options by keyword (got positional {args!r})")
            model = fn(**kwargs)
            # "weights" (a file loaded once at construction) is not part of the architecture
            model._factory = (name, {k: v for k, v in kwargs.items() if k != "weights"})
            return model
        if name in MODELS:
            raise ValueError(f"model name {name!r} registered twice")
        MODELS[name] = factory
        register_factory(name, factory)
        return factory
    return decorator


def get_model(name: str, **kwargs):
    """Build a registered model by name, e.g. ``get_model("simple_convnet")``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)


#: the input (C, H, W) each model is built for when called with no arguments (summary, export, ...)
_MNIST, _IMAGENET, _CIFAR = (1, 28, 28), (3, 224, 224), (3, 32, 32)
DEFAULT_INPUT_SHAPES = {
    "simple_convnet": _MNIST, "deep_convnet": _MNIST, "mnist_best": _MNIST, "lenet5": (1, 32, 32),
    "lenet5_modern": (1, 32, 32), "resnet18_cifar": _CIFAR, "resnet20_cifar": _CIFAR,
    "alexnet_paper": (3, 227, 227),
}


def default_input_shape(name: str, in_channels: int | None = None, input_size: int | None = None) -> tuple:
    """(C, H, W) that ``models.NAME()`` expects: MNIST nets 1x28x28 (LeNet-5 32x32), CIFAR nets 3x32x32,
    ImageNet nets 3x224x224; ``in_channels`` / ``input_size`` override the defaults."""
    c, h, w = DEFAULT_INPUT_SHAPES.get(name, _IMAGENET)
    if input_size is not None:
        h = w = int(input_size)
    return (int(in_channels) if in_channels is not None else c, h, w)


def list_models() -> list:
    return sorted(MODELS)
