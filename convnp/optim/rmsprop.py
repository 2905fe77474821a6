"""RMSprop (Hinton's lecture 6e): divide by a running root-mean-square of the gradients."""
from __future__ import annotations

from ..backend import get_array_module
from .optimizer import Optimizer, check_non_negative, check_unit_interval


class RMSprop(Optimizer):
    """RMSprop with PyTorch's update rule.

    For each parameter p with gradient g::

        g = g + weight_decay * p                           (if weight_decay)
        s = alpha * s + (1 - alpha) * g * g
        a = alpha * a + (1 - alpha) * g;  d = sqrt(s - a*a) + eps     (centered)
                                           d = sqrt(s) + eps           (otherwise)
        b = momentum * b + g / d;  p = p - lr * b                      (momentum > 0)
        p = p - lr * g / d                                             (otherwise)

    Args:
        params: a Module, Parameters, (name, Parameter) pairs or a dict name -> Parameter.
        lr: learning rate (>= 0).
        alpha: smoothing constant of the running mean of g*g, in [0, 1).
        eps: added to the denominator (>= 0).
        weight_decay: L2 penalty added to the gradient (>= 0).
        momentum: momentum factor (>= 0).
        centered: normalize by the estimated variance (subtract the squared running mean of g).
        clipnorm, clipvalue, global_clipnorm: gradient clipping, see :class:`Optimizer`.

    State per parameter: ``step``, ``square_avg`` (s), ``momentum_buffer`` (b), ``grad_avg`` (a).
    Example: ``optim.RMSprop(model.parameters(), lr=0.01)``.
    """

    hyperparameters = ("alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, **clip):
        super().__init__(params, lr, **clip)
        where = type(self).__name__
        check_unit_interval(where, "alpha", alpha)
        check_non_negative(where, eps=eps, weight_decay=weight_decay, momentum=momentum)
        self.alpha, self.eps, self.weight_decay = float(alpha), float(eps), float(weight_decay)
        self.momentum, self.centered = float(momentum), bool(centered)

    def _update(self, p, grad, state):
        xp = get_array_module(p.data)
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p.data)
        state["step"] += 1
        if self.weight_decay:
            grad = grad + self.weight_decay * p.data
        s = state["square_avg"]
        s *= self.alpha
        s += (1.0 - self.alpha) * (grad * grad)
        if self.centered:
            a = state.setdefault("grad_avg", xp.zeros_like(p.data))
            a += (1.0 - self.alpha) * (grad - a)  # torch's lerp
            denom = s - a * a
            xp.sqrt(denom, out=denom)
        else:
            denom = xp.sqrt(s)
        denom += self.eps
        if self.momentum > 0:
            b = state.setdefault("momentum_buffer", xp.zeros_like(p.data))
            b *= self.momentum
            b += grad / denom
            p.data -= self.lr * b
        else:
            p.data -= self.lr * (grad / denom)
