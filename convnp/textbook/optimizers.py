"""The textbook's optimizers (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam), with the book's formulas.

Same names, constructors and ``update(params, grads)`` as "Deep Learning from Scratch" (ch. 6): ``params``
and ``grads`` are dicts of arrays with the same keys, and ``params`` is updated in place, with the book's
arithmetic operation for operation, so a run reproduces the book's numbers bit for bit:

* SGD: W -= lr * dW
* Momentum: v = momentum * v - lr * dW; W += v
* Nesterov (the book's form): v *= momentum; v -= lr * dW; W += momentum * momentum * v; W -= (1 + momentum) * lr * dW
* AdaGrad: h += dW * dW; W -= lr * dW / (sqrt(h) + 1e-7)
* RMSprop: h *= decay_rate; h += (1 - decay_rate) * dW * dW; W -= lr * dW / (sqrt(h) + 1e-7)
* Adam: t += 1; lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t); m += (1 - beta1) * (dW - m);
  v += (1 - beta2) * (dW**2 - v); W -= lr_t * m / (sqrt(v) + 1e-7)

PyTorch's update rules (which differ from these by where eps goes and how momentum is scaled) are
:mod:`convnp.optim`'s.

Example::

    optimizer = Adam(lr=0.001)
    for i in range(10000):
        grads = network.gradient(x_batch, t_batch)
        optimizer.update(network.params, grads)
"""
from __future__ import annotations

import math

from ..backend import get_array_module

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "get_textbook_optimizer"]


class _BookOptimizer:
    """Base: checks the dicts, keeps per-key state arrays (``self.state[name][key]``), calls ``_step``."""

    _slots = ()  # names of the per-key state arrays, created as zeros on the first update

    def __init__(self, lr):
        if not float(lr) >= 0:
            raise ValueError(f"{type(self).__name__}: lr must be non-negative, got {lr!r}")
        self.lr = float(lr)
        self.state = None

    def update(self, params, grads):
        """One step on every array of ``params`` (in place) with the matching array of ``grads``."""
        where = type(self).__name__
        missing = [k for k in params if k not in grads]
        if missing:
            raise ValueError(f"{where}.update: grads has no entry for {missing}")
        for key, value in params.items():
            g = grads[key]
            if tuple(g.shape) != tuple(value.shape):
                raise ValueError(f"{where}.update: grads[{key!r}] has shape {tuple(g.shape)} but params[{key!r}] "
                                 f"has {tuple(value.shape)}")
        if self.state is None:
            self.state = {name: {k: get_array_module(v).zeros_like(v) for k, v in params.items()} for name in self._slots}
        elif self._slots and set(self.state[self._slots[0]]) != set(params):
            raise ValueError(f"{where}.update: the parameter names changed from {sorted(self.state[self._slots[0]])} "
                             f"to {sorted(params)}; use a new optimizer for a new network")
        self._begin()
        for key in params:
            self._step(key, params[key], grads[key], get_array_module(params[key]))

    def _begin(self):
        """Once per update, before the per-key steps (Adam's iteration count)."""

    def _step(self, key, w, g, xp):  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self):
        """The per-key state arrays by slot name (empty before the first update)."""
        return {} if self.state is None else {name: dict(arrays) for name, arrays in self.state.items()}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._args().items())
        return f"{type(self).__name__}({args})"

    def _args(self):
        return {"lr": self.lr}


class SGD(_BookOptimizer):
    """Stochastic gradient descent: W -= lr * dW. Example: ``SGD(lr=0.01).update(params, grads)``."""

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def _step(self, key, w, g, xp):
        w -= self.lr * g


class Momentum(_BookOptimizer):
    """SGD with momentum, the book's form: v = momentum*v - lr*dW; W += v."""

    _slots = ("v",)

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = float(momentum)

    def _step(self, key, w, g, xp):
        v = self.state["v"]
        v[key] = self.momentum * v[key] - self.lr * g
        w += v[key]

    def _args(self):
        return {"lr": self.lr, "momentum": self.momentum}


class Nesterov(Momentum):
    """Nesterov's accelerated gradient, the book's form: v *= momentum; v -= lr*dW;
    W += momentum*momentum*v; W -= (1 + momentum)*lr*dW."""

    def _step(self, key, w, g, xp):
        v = self.state["v"][key]
        v *= self.momentum
        v -= self.lr * g
        w += self.momentum * self.momentum * v
        w -= (1 + self.momentum) * self.lr * g


class AdaGrad(_BookOptimizer):
    """AdaGrad: h += dW*dW; W -= lr * dW / (sqrt(h) + eps), eps = 1e-7 as in the book."""

    _slots = ("h",)

    def __init__(self, lr=0.01, eps=1e-7):
        super().__init__(lr)
        self.eps = float(eps)

    def _step(self, key, w, g, xp):
        h = self.state["h"][key]
        h += g * g
        w -= self.lr * g / (xp.sqrt(h) + self.eps)


class RMSprop(_BookOptimizer):
    """RMSprop: h *= decay_rate; h += (1 - decay_rate)*dW*dW; W -= lr * dW / (sqrt(h) + eps), eps = 1e-7."""

    _slots = ("h",)

    def __init__(self, lr=0.01, decay_rate=0.99, eps=1e-7):
        super().__init__(lr)
        if not 0 <= float(decay_rate) < 1:
            raise ValueError(f"RMSprop: decay_rate must be in [0, 1), got {decay_rate!r}")
        self.decay_rate, self.eps = float(decay_rate), float(eps)

    def _step(self, key, w, g, xp):
        h = self.state["h"][key]
        h *= self.decay_rate
        h += (1 - self.decay_rate) * g * g
        w -= self.lr * g / (xp.sqrt(h) + self.eps)

    def _args(self):
        return {"lr": self.lr, "decay_rate": self.decay_rate}


class Adam(_BookOptimizer):
    """Adam as the book writes it (Kingma & Ba's "efficient version"): lr_t = lr*sqrt(1 - beta2**t)/(1 - beta1**t),
    m += (1 - beta1)*(dW - m), v += (1 - beta2)*(dW**2 - v), W -= lr_t*m/(sqrt(v) + 1e-7)."""

    _slots = ("m", "v")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7):
        super().__init__(lr)
        for name, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= float(b) < 1:
                raise ValueError(f"Adam: {name} must be in [0, 1), got {b!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.iter = 0

    def _begin(self):
        self.iter += 1
        self._lr_t = self.lr * math.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)

    def _step(self, key, w, g, xp):
        m, v = self.state["m"][key], self.state["v"][key]
        m += (1 - self.beta1) * (g - m)
        v += (1 - self.beta2) * (g ** 2 - v)
        w -= self._lr_t * m / (xp.sqrt(v) + self.eps)

    def _args(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2}


_BY_NAME = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": AdaGrad, "rmsprop": RMSprop,
            "rmsprpo": RMSprop,  # the book's Trainer spells it this way
            "adam": Adam}


def get_textbook_optimizer(name, **kwargs):
    """A textbook optimizer by (case-insensitive) name, e.g. ``get_textbook_optimizer('Adam', lr=0.001)``;
    an object with an ``update(params, grads)`` method is returned as is."""
    if hasattr(name, "update") and not isinstance(name, str):
        return name
    key = str(name).lower()
    if key not in _BY_NAME:
        raise ValueError(f"unknown optimizer {name!r}; choose one of SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam")
    return _BY_NAME[key](**kwargs)
