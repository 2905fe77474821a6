"""The textbook's optimizers (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam) on convnp.optim.

Same names, constructors and ``update(params, grads)`` as "Deep Learning from Scratch" (ch. 6): ``params``
and ``grads`` are dicts of arrays with the same keys, and ``params`` is updated in place. Each array is
wrapped once in a :class:`convnp.nn.Parameter` that shares its memory, and the step is convnp's optimizer
(PyTorch's update rules), so the state (velocities, moments) lives in one place and can be saved with
``state_dict()``.

Differences from the book's formulas, all at the level of rounding or of an equivalent reparametrization:
Momentum keeps PyTorch's buffer b = momentum*b + g and steps lr*b (the book's v = momentum*v - lr*g is
-lr*b for a constant lr); Nesterov is PyTorch's (p -= lr*(g + momentum*b)); Adam adds eps to the
bias-corrected sqrt(v) (the book adds it before the correction). AdaGrad, RMSprop and Adam use the book's
eps = 1e-7.

Example::

    optimizer = Adam(lr=0.001)
    for i in range(10000):
        grads = network.gradient(x_batch, t_batch)
        optimizer.update(network.params, grads)
"""
from __future__ import annotations

from ..nn.parameter import Parameter

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "get_textbook_optimizer"]


class _BookOptimizer:
    """Base: wraps the dict of arrays once, then delegates every step to a convnp optimizer."""

    def __init__(self, lr):
        if not float(lr) >= 0:
            raise ValueError(f"{type(self).__name__}: lr must be non-negative, got {lr!r}")
        self._lr = float(lr)
        self._params = None  # OrderedDict key -> Parameter sharing memory with params[key]
        self._optimizer = None

    # the convnp optimizer for a list of (name, Parameter) pairs
    def _make(self, named):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = float(value)
        if self._optimizer is not None:
            self._optimizer.lr = self._lr

    def _wrap(self, params):
        self._params = {key: Parameter(value) for key, value in params.items()}
        self._optimizer = self._make(list(self._params.items()))

    def update(self, params, grads):
        """One step on every array of ``params`` (in place) with the matching array of ``grads``."""
        where = type(self).__name__
        missing = [k for k in params if k not in grads]
        if missing:
            raise ValueError(f"{where}.update: grads has no entry for {missing}")
        if self._params is None:
            self._wrap(params)
        elif set(self._params) != set(params):
            raise ValueError(f"{where}.update: the parameter names changed from {sorted(self._params)} to "
                             f"{sorted(params)}; use a new optimizer for a new network")
        for key, p in self._params.items():
            value, g = params[key], grads[key]
            if tuple(g.shape) != tuple(value.shape):
                raise ValueError(f"{where}.update: grads[{key!r}] has shape {tuple(g.shape)} but params[{key!r}] "
                                 f"has {tuple(value.shape)}")
            if p.data is not value:  # the caller rebound params[key] (e.g. moved it): follow, keep the state
                if tuple(p.data.shape) != tuple(value.shape):
                    raise ValueError(f"{where}.update: params[{key!r}] changed shape from {tuple(p.data.shape)} "
                                     f"to {tuple(value.shape)}")
                p.data = value
            p.grad = g
        self._optimizer.step()
        for key, p in self._params.items():
            if p.data is not params[key]:  # the step made a new array: write it back into the caller's
                params[key][...] = p.data
                p.data = params[key]
            p.grad = None

    def state_dict(self):
        """The convnp optimizer's state (empty before the first update)."""
        return {} if self._optimizer is None else self._optimizer.state_dict()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._args().items())
        return f"{type(self).__name__}({args})"

    def _args(self):
        return {"lr": self._lr}


class SGD(_BookOptimizer):
    """Stochastic gradient descent: W -= lr * dW. Example: ``SGD(lr=0.01).update(params, grads)``."""

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def _make(self, named):
        from .. import optim
        return optim.SGD(named, lr=self._lr)


class Momentum(_BookOptimizer):
    """SGD with momentum: b = momentum*b + dW; W -= lr*b (the book's v = momentum*v - lr*dW; W += v)."""

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = float(momentum)

    def _make(self, named):
        from .. import optim
        return optim.SGD(named, lr=self._lr, momentum=self.momentum)

    def _args(self):
        return {"lr": self._lr, "momentum": self.momentum}


class Nesterov(Momentum):
    """Nesterov's accelerated gradient (PyTorch's form): b = momentum*b + dW; W -= lr*(dW + momentum*b)."""

    def _make(self, named):
        from .. import optim
        return optim.SGD(named, lr=self._lr, momentum=self.momentum, nesterov=True)


class AdaGrad(_BookOptimizer):
    """AdaGrad: h += dW*dW; W -= lr * dW / (sqrt(h) + eps), eps = 1e-7 as in the book."""

    def __init__(self, lr=0.01, eps=1e-7):
        super().__init__(lr)
        self.eps = float(eps)

    def _make(self, named):
        from .. import optim
        return optim.AdaGrad(named, lr=self._lr, eps=self.eps)


class RMSprop(_BookOptimizer):
    """RMSprop: h = decay_rate*h + (1 - decay_rate)*dW*dW; W -= lr * dW / (sqrt(h) + eps)."""

    def __init__(self, lr=0.01, decay_rate=0.99, eps=1e-7):
        super().__init__(lr)
        if not 0 <= float(decay_rate) < 1:
            raise ValueError(f"RMSprop: decay_rate must be in [0, 1), got {decay_rate!r}")
        self.decay_rate, self.eps = float(decay_rate), float(eps)

    def _make(self, named):
        from .. import optim
        return optim.RMSprop(named, lr=self._lr, alpha=self.decay_rate, eps=self.eps)

    def _args(self):
        return {"lr": self._lr, "decay_rate": self.decay_rate}


class Adam(_BookOptimizer):
    """Adam (Kingma & Ba): bias-corrected first and second moments with beta1, beta2; eps = 1e-7."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7):
        super().__init__(lr)
        for name, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= float(b) < 1:
                raise ValueError(f"Adam: {name} must be in [0, 1), got {b!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def _make(self, named):
        from .. import optim
        return optim.Adam(named, lr=self._lr, betas=(self.beta1, self.beta2), eps=self.eps)

    def _args(self):
        return {"lr": self._lr, "beta1": self.beta1, "beta2": self.beta2}


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
