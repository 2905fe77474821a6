"""Custom CUDA kernels for CuPy arrays (im2col, col2im, max pooling, fused bias+ReLU, fused optimizer steps).

``convnp.cuda.ops`` holds the dispatch functions; each returns ``None`` when CuPy is absent, the custom
kernels are switched off, or the arrays do not suit the kernel, and the caller then runs its ordinary
``xp`` code. ``convnp.cuda.kernels`` holds the CUDA C sources; ``convnp.cuda.emulate`` runs those sources
on the CPU (g++) and compile-checks them (nvcc), so they are tested without a GPU.
"""
from .ops import (adam_update, bias_activation, col2im, im2col, kernels_disabled, kernels_enabled,
                  max_pool2d_backward, max_pool2d_forward, relu_backward, set_kernels_enabled, sgd_update)

__all__ = ["adam_update", "bias_activation", "col2im", "im2col", "kernels_disabled", "kernels_enabled",
           "max_pool2d_backward", "max_pool2d_forward", "relu_backward", "set_kernels_enabled", "sgd_update"]
