"""AdaGrad (Duchi et al. 2011): per-element learning rates from the running sum of squared gradients."""
from __future__ import annotations

from ..backend import get_array_module
from .optimizer import Optimizer, check_non_negative


class AdaGrad(Optimizer):
    """AdaGrad with PyTorch's update rule.

    At step t, for each parameter p with gradient g::

        g = g + weight_decay * p                   (if weight_decay)
        h = h + g * g                              (h starts at initial_accumulator_value)
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(h) + eps)

    Args:
        params: a Module, Parameters, (name, Parameter) pairs or a dict name -> Parameter.
        lr: learning rate (>= 0).
        eps: added to sqrt(h) (>= 0).
        weight_decay: L2 penalty added to the gradient (>= 0).
        initial_accumulator_value: starting value of h (>= 0).
        lr_decay: learning-rate decay per step (>= 0).
        clipnorm, clipvalue, global_clipnorm: gradient clipping, see :class:`Optimizer`.

    State per parameter: ``step``, ``sum`` (h). Example: ``optim.AdaGrad(model.parameters(), lr=0.01)``.
    """

    hyperparameters = ("eps", "weight_decay", "initial_accumulator_value", "lr_decay")

    def __init__(self, params, lr: float = 0.01, eps: float = 1e-10, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, lr_decay: float = 0.0, **clip):
        super().__init__(params, lr, **clip)
        check_non_negative(type(self).__name__, eps=eps, weight_decay=weight_decay,
                           initial_accumulator_value=initial_accumulator_value, lr_decay=lr_decay)
        self.eps, self.weight_decay = float(eps), float(weight_decay)
        self.initial_accumulator_value, self.lr_decay = float(initial_accumulator_value), float(lr_decay)

    def _update(self, p, grad, state):
        xp = get_array_module(p.data)
        if not state:
            state["step"] = 0
            state["sum"] = xp.full(p.data.shape, self.initial_accumulator_value, dtype=p.data.dtype)
        state["step"] += 1
        if self.weight_decay:
            grad = grad + self.weight_decay * p.data
        clr = self.lr / (1.0 + (state["step"] - 1) * self.lr_decay)
        h = state["sum"]
        h += grad * grad
        std = xp.sqrt(h)  # (same shape as p)
        std += self.eps
        p.data -= clr * (grad / std)
