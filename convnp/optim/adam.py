"""Adam (Kingma & Ba 2015) with optional AMSGrad, and AdamW (decoupled weight decay, Loshchilov & Hutter)."""
from __future__ import annotations

import math

import numpy as np

from .. import accel
from ..backend import get_array_module
from ..cuda import ops as cuda_ops
from .optimizer import Optimizer, check_non_negative, check_unit_interval


class Adam(Optimizer):
    """Adam with PyTorch's update rule.

    At step t, for each parameter p with gradient g::

        g = g + weight_decay * p                     (L2, coupled: Adam only; AdamW decays p instead)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_hat = max(v_hat, v)                        (amsgrad; then v_hat is used below instead of v)
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Args:
        params: a Module, Parameters, (name, Parameter) pairs or a dict name -> Parameter.
        lr: learning rate (>= 0).
        betas: (beta1, beta2), each in [0, 1).
        eps: added to the denominator (>= 0).
        weight_decay: L2 penalty added to the gradient (>= 0).
        amsgrad: use the running maximum of v (Reddi et al. 2018).
        clipnorm, clipvalue, global_clipnorm: gradient clipping, see :class:`Optimizer`.

    State per parameter: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v), ``max_exp_avg_sq`` (amsgrad).
    Example: ``optim.Adam(model.parameters(), lr=1e-3)``.
    """

    hyperparameters = ("betas", "eps", "weight_decay", "amsgrad")
    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, **clip):
        super().__init__(params, lr, **clip)
        where = type(self).__name__
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"{where}: betas must be a pair (beta1, beta2), got {betas!r}") from None
        check_unit_interval(where, "betas[0]", beta1)
        check_unit_interval(where, "betas[1]", beta2)
        check_non_negative(where, eps=eps, weight_decay=weight_decay)
        self.betas = (float(beta1), float(beta2))
        self.eps, self.weight_decay, self.amsgrad = float(eps), float(weight_decay), bool(amsgrad)

    def _update(self, p, grad, state):
        xp = get_array_module(p.data)
        beta1, beta2 = self.betas
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p.data)
            state["exp_avg_sq"] = xp.zeros_like(p.data)
            if self.amsgrad:
                state["max_exp_avg_sq"] = xp.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]
        if self.amsgrad and "max_exp_avg_sq" not in state:  # amsgrad switched on after some steps
            state["max_exp_avg_sq"] = xp.zeros_like(p.data)
        if xp is not np and cuda_ops.adam_update(  # GPU: one fused kernel; None -> the xp code below
                p.data, grad, state["exp_avg"], state["exp_avg_sq"], lr=self.lr, beta1=beta1, beta2=beta2,
                eps=self.eps, weight_decay=self.weight_decay, step=t, decoupled=self.decoupled,
                max_exp_avg_sq=state["max_exp_avg_sq"] if self.amsgrad else None):
            return
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if not self.amsgrad and accel.direct_enabled_for(p.data, grad, m, v) and grad.shape == p.data.shape \
                and all(a.flags.c_contiguous for a in (p.data, grad, m, v)):
            accel.direct.adam_step(p.data, grad, m, v, self.lr, beta1, beta2, self.eps, self.weight_decay,
                                   self.decoupled, t)  # one pass in C, subnormals flushed (see adam.c)
            return
        if self.weight_decay:
            if self.decoupled:
                p.data *= 1.0 - self.lr * self.weight_decay
            else:
                grad = grad + self.weight_decay * p.data
        m += (1.0 - beta1) * (grad - m)  # torch's lerp: m = m + (1 - beta1) * (g - m)
        v *= beta2
        v += (1.0 - beta2) * (grad * grad)
        if self.amsgrad:
            xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        step_size = self.lr / (1.0 - beta1 ** t)
        denom = xp.sqrt(v)  # (same shape as p)
        denom /= math.sqrt(1.0 - beta2 ** t)
        denom += self.eps
        p.data -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (PyTorch's AdamW): p = p * (1 - lr * weight_decay), then Adam.

    Args: as :class:`Adam`, but ``weight_decay`` (default 0.01) shrinks the weights directly instead of
    being added to the gradient.

    Example: ``optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)``.
    """

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, amsgrad: bool = False, **clip):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, **clip)
