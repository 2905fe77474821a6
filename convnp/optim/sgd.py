"""Stochastic gradient descent, with optional (Nesterov) momentum, dampening and L2 weight decay."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..cuda import ops as cuda_ops
from .optimizer import Optimizer, check_non_negative, reject_unknown_options


class SGD(Optimizer):
    """SGD with PyTorch's update rule.

    For each parameter p with gradient g::

        g = g + weight_decay * p                      (if weight_decay)
        b = g                      on the first step  (if momentum)
        b = momentum * b + (1 - dampening) * g        afterwards
        g = g + momentum * b  if nesterov  else  b
        p = p - lr * g

    Args:
        params: a Module, Parameters, (name, Parameter) pairs or a dict name -> Parameter.
        lr: learning rate (>= 0).
        momentum: momentum factor (>= 0); 0 is plain SGD.
        dampening: dampening of the gradient in the momentum buffer (>= 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0, as in PyTorch).
        weight_decay: L2 penalty coefficient added to the gradient (>= 0).
        clipnorm, clipvalue, global_clipnorm: gradient clipping, see :class:`Optimizer`.

    Example: ``optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)``.
    """

    hyperparameters = ("momentum", "dampening", "nesterov", "weight_decay")

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, **clip):
        super().__init__(params, lr, **clip)
        where = type(self).__name__
        check_non_negative(where, momentum=momentum, dampening=dampening, weight_decay=weight_decay)
        if nesterov and (float(momentum) <= 0 or float(dampening) != 0):
            raise ValueError(f"{where}: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={momentum!r}, dampening={dampening!r}")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.nesterov, self.weight_decay = bool(nesterov), float(weight_decay)

    def _update(self, p, grad, state):
        if get_array_module(p.data) is not np:  # GPU: one fused kernel; None -> the xp code below
            buf = state.get("momentum_buffer")
            first = bool(self.momentum) and buf is None
            if first:
                buf = get_array_module(p.data).empty_like(p.data)
            if cuda_ops.sgd_update(p.data, grad, buf if self.momentum else None, lr=self.lr,
                                   momentum=self.momentum, dampening=self.dampening,
                                   weight_decay=self.weight_decay, nesterov=self.nesterov, first=first):
                if self.momentum:
                    state["momentum_buffer"] = buf
                return
        if self.weight_decay:
            grad = grad + self.weight_decay * p.data
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= self.momentum
                buf += (1.0 - self.dampening) * grad
            if self.nesterov:
                grad = grad + self.momentum * buf
            else:
                grad = buf
        p.data -= self.lr * grad


class Momentum(SGD):
    """SGD with (heavy-ball) momentum, the textbook's name: ``SGD(params, lr, momentum=0.9)``.

    Example: ``optim.Momentum(model.parameters(), lr=0.01, momentum=0.9)``.
    """

    hyperparameters = ("momentum", "dampening", "weight_decay")

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9, dampening: float = 0.0,
                 weight_decay: float = 0.0, **clip):
        reject_unknown_options(self, clip)
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, **clip)


class Nesterov(SGD):
    """Nesterov's accelerated gradient, the textbook's name: ``SGD(params, lr, momentum=0.9, nesterov=True)``.

    Example: ``optim.Nesterov(model.parameters(), lr=0.01, momentum=0.9)``.
    """

    hyperparameters = ("momentum", "weight_decay")

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0, **clip):
        reject_unknown_options(self, clip)
        super().__init__(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay, **clip)
