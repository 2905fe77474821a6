"""Optimizers, learning-rate schedules and gradient clipping.

    from convnp import optim
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    optimizer = optim.get_optimizer("sgd", model, lr=0.1, momentum=0.9)

Every optimizer follows PyTorch's update formulas exactly; its state is keyed by parameter name and
saves to a flat dict (``state_dict()`` / ``load_state_dict()``).
"""
from . import lr_scheduler
from .adagrad import AdaGrad
from .adam import Adam, AdamW
from .clip import clip_grad_norm, clip_grad_value, global_norm
from .optimizer import Optimizer, named_parameter_list
from .rmsprop import RMSprop
from .lr_scheduler import (CosineAnnealingLR, ExponentialLR, LinearWarmup, LRScheduler, MultiStepLR, OneCycleLR,
                           StepLR, get_scheduler)
from .sgd import SGD, Momentum, Nesterov

Adagrad = AdaGrad  # PyTorch's spelling

OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": AdaGrad, "rmsprop": RMSprop,
              "adam": Adam, "adamw": AdamW}


def get_optimizer(name_or_instance, params=None, **kwargs) -> Optimizer:
    """An optimizer by (case-insensitive) name, class or instance.

    Args:
        name_or_instance: "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", an Optimizer
            subclass, or an Optimizer instance (returned as is; then ``params`` and ``kwargs`` must be empty).
        params: what the optimizer updates (a Module, Parameters or (name, Parameter) pairs).
        kwargs: the optimizer's hyper-parameters, e.g. ``lr=0.1``.

    Example: ``get_optimizer("Adam", model, lr=1e-3)``.
    """
    if isinstance(name_or_instance, Optimizer):
        if kwargs:
            raise ValueError(f"get_optimizer: got an {type(name_or_instance).__name__} instance and hyper-parameters "
                             f"{sorted(kwargs)}; set them when creating the instance")
        return name_or_instance
    if isinstance(name_or_instance, type) and issubclass(name_or_instance, Optimizer):
        cls = name_or_instance
    else:
        key = str(name_or_instance).lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name_or_instance!r}; choose one of {', '.join(OPTIMIZERS)}")
        cls = OPTIMIZERS[key]
    if params is None:
        raise ValueError(f"get_optimizer: {cls.__name__} needs the parameters to update (a Module or a list)")
    return cls(params, **kwargs)


__all__ = ["Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "Adagrad", "RMSprop", "Adam", "AdamW",
           "clip_grad_norm", "clip_grad_value", "global_norm", "get_optimizer", "named_parameter_list", "OPTIMIZERS",
           "lr_scheduler", "LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "OneCycleLR",
           "LinearWarmup", "get_scheduler"]
