"""convnp.nn: Module, Parameter, containers, layers and initializers."""
from .module import Module, MODULE_REGISTRY
from .parameter import Parameter
from .containers import Sequential, Residual, Concat, Identity
from .serialize import module_to_config, module_from_config
from .summary import capture_activations
from . import init
from . import losses
from .layers import *  # noqa: F401,F403
from .layers import __all__ as _layer_names

__all__ = ["Module", "Parameter", "Sequential", "Residual", "Concat", "Identity", "init",
           "module_to_config", "module_from_config", "MODULE_REGISTRY", "capture_activations", "losses"] + list(_layer_names)
