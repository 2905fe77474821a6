"""Learning-rate schedules: each sets ``optimizer.lr`` on ``step()``, with PyTorch's lr sequences.

Usage (call ``scheduler.step()`` after ``optimizer.step()``, once per epoch or once per batch)::

    optimizer = optim.SGD(model, lr=0.1, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
    for epoch in range(90):
        train_one_epoch(...)
        scheduler.step()

Creating a scheduler applies step 0 (lr = the schedule's first value), as in PyTorch. The base learning
rate is ``optimizer.initial_lr``, set from ``optimizer.lr`` by the first scheduler created on it. Each
schedule is a closed-form function of the step count (:meth:`LRScheduler.lr_at`), so its state is just
the step count and its settings (``state_dict()`` is a flat dict of python scalars).
"""
from __future__ import annotations

import math
from bisect import bisect_right

from ..utils.args import positive_int

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "OneCycleLR",
           "LinearWarmup", "SCHEDULERS", "get_scheduler"]


class LRScheduler:
    """Base class: subclasses implement ``lr_at(step)`` and list their settings in ``settings``.

    Args:
        optimizer: any object with a float attribute ``lr`` (a convnp optimizer, a textbook optimizer).
        last_epoch: the index of the last step taken; -1 starts fresh. To resume, prefer
            ``load_state_dict``.
    """

    #: attribute names saved in state_dict (besides the step count and the learning rates)
    settings: tuple = ()

    def __init__(self, optimizer, last_epoch: int = -1):
        where = type(self).__name__
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{where}: expected an optimizer with an `lr` attribute, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if int(last_epoch) == -1:
            if getattr(optimizer, "initial_lr", None) is None:
                optimizer.initial_lr = float(optimizer.lr)
        elif getattr(optimizer, "initial_lr", None) is None:
            raise ValueError(f"{where}: last_epoch={last_epoch} resumes a schedule, but the optimizer has no "
                             "initial_lr (load the optimizer's state dict first, or start with last_epoch=-1)")
        self.base_lr = float(optimizer.initial_lr)
        self.last_epoch = int(last_epoch)
        self._last_lr = float(optimizer.lr)
        self.step()

    def lr_at(self, step: int) -> float:  # pragma: no cover - abstract
        """The learning rate after ``step`` calls to :meth:`step` beyond the first (step 0 is the start)."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and set ``optimizer.lr``."""
        self.last_epoch += 1
        self._set(self.lr_at(self.last_epoch))

    def _set(self, lr: float) -> None:
        self.optimizer.lr = float(lr)
        self._last_lr = float(lr)

    def get_last_lr(self) -> float:
        """The learning rate set by the last step (a float: convnp optimizers have one learning rate)."""
        return self._last_lr

    def state_dict(self) -> dict:
        """A flat dict of python scalars: the step count, base and last learning rate, the settings."""
        out = {"scheduler": type(self).__name__, "last_epoch": self.last_epoch, "base_lr": self.base_lr,
               "last_lr": self._last_lr}
        for name in self.settings:
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved (like PyTorch, ``optimizer.lr`` is left to the optimizer's own
        state dict)."""
        kind = state.get("scheduler")
        if kind is not None and _item(kind) != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state dict is from {_item(kind)}")
        missing = [k for k in ("last_epoch", "base_lr", "last_lr") if k not in state]
        if missing:
            raise ValueError(f"{type(self).__name__}.load_state_dict: missing keys: {', '.join(missing)}")
        self.last_epoch = int(_item(state["last_epoch"]))
        self.base_lr = float(_item(state["base_lr"]))
        self._last_lr = float(_item(state["last_lr"]))
        for name in self.settings:
            if name in state:
                value = state[name]
                current = getattr(self, name)
                if isinstance(current, (tuple, list)):
                    value = type(current)(_item(v) for v in value)
                else:
                    value = _item(value)
                setattr(self, name, value)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.settings)
        return f"{type(self).__name__}({args}, last_epoch={self.last_epoch}, lr={self._last_lr:g})"


def _item(value):
    return value.item() if hasattr(value, "item") else value


class StepLR(LRScheduler):
    """Decay the learning rate by ``gamma`` every ``step_size`` steps: lr_t = base * gamma ** (t // step_size).

    Example: ``StepLR(optimizer, step_size=30, gamma=0.1)`` (0.1 -> 0.01 at epoch 30 -> 0.001 at 60).
    """

    settings = ("step_size", "gamma")

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        self.step_size = positive_int(step_size, "step_size", "StepLR")
        if not float(gamma) > 0:
            raise ValueError(f"StepLR: gamma must be > 0, got {gamma!r}")
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step):
        return self.base_lr * self.gamma ** (step // self.step_size)


class MultiStepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` at each milestone: lr_t = base * gamma ** #{m <= t}.

    Example: ``MultiStepLR(optimizer, milestones=[30, 80], gamma=0.1)``.
    """

    settings = ("milestones", "gamma")

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        try:
            steps = [int(m) for m in milestones]
        except (TypeError, ValueError):
            raise ValueError(f"MultiStepLR: milestones must be a list of integers, got {milestones!r}") from None
        if any(m < 0 for m in steps) or any(int(m) != m for m in milestones):
            raise ValueError(f"MultiStepLR: milestones must be non-negative integers, got {milestones!r}")
        if not float(gamma) > 0:
            raise ValueError(f"MultiStepLR: gamma must be > 0, got {gamma!r}")
        self.milestones = sorted(steps)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step):
        return self.base_lr * self.gamma ** bisect_right(self.milestones, step)


class ExponentialLR(LRScheduler):
    """Decay the learning rate by ``gamma`` every step: lr_t = base * gamma ** t.

    Example: ``ExponentialLR(optimizer, gamma=0.95)``.
    """

    settings = ("gamma",)

    def __init__(self, optimizer, gamma: float, last_epoch: int = -1):
        if not float(gamma) > 0:
            raise ValueError(f"ExponentialLR: gamma must be > 0, got {gamma!r}")
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step):
        return self.base_lr * self.gamma ** step


class CosineAnnealingLR(LRScheduler):
    """Cosine decay from base to ``eta_min`` over ``T_max`` steps (SGDR without restarts, Loshchilov & Hutter):
    lr_t = eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2 (it rises again after T_max, as in PyTorch).

    Example: ``CosineAnnealingLR(optimizer, T_max=100, eta_min=1e-5)``.
    """

    settings = ("T_max", "eta_min")

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        self.T_max = positive_int(T_max, "T_max", "CosineAnnealingLR")
        if not float(eta_min) >= 0:
            raise ValueError(f"CosineAnnealingLR: eta_min must be >= 0, got {eta_min!r}")
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * step / self.T_max)) / 2


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin 2017): warm up to ``max_lr``, then anneal far below the start.

    Phases (PyTorch's): steps 0 .. pct_start*total_steps - 1 go from max_lr/div_factor up to max_lr, the rest
    down to max_lr/(div_factor*final_div_factor), by cosine or linear interpolation. With ``three_phase`` the
    second phase returns to the initial lr and a third anneals to the minimum. When ``cycle_momentum`` is on,
    the optimizer's ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam) moves the other way between
    ``max_momentum`` and ``base_momentum``, as in PyTorch.

    Args:
        optimizer: the optimizer; its ``lr`` is replaced by the schedule (``initial_lr`` = max_lr / div_factor).
        max_lr: the peak learning rate.
        total_steps: the number of steps in the cycle, or give ``epochs`` and ``steps_per_epoch``.
        pct_start: the fraction of the cycle spent increasing the lr.
        anneal_strategy: "cos" or "linear".
        div_factor: initial lr = max_lr / div_factor.
        final_div_factor: minimum lr = initial lr / final_div_factor.
        three_phase: use the three-phase variant (fast.ai's).
        cycle_momentum, base_momentum, max_momentum: momentum cycling (needs an optimizer with ``momentum``
            or ``betas``).

    Example: ``OneCycleLR(optimizer, max_lr=0.1, epochs=10, steps_per_epoch=len(loader))``, stepped every batch.
    Stepping past ``total_steps`` raises a ValueError, as in PyTorch.
    """

    settings = ("max_lr", "total_steps", "pct_start", "anneal_strategy", "div_factor", "final_div_factor",
                "three_phase", "cycle_momentum", "base_momentum", "max_momentum")

    def __init__(self, optimizer, max_lr: float, total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95,
                 last_epoch: int = -1):
        where = "OneCycleLR"
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError(f"{where}: give total_steps, or both epochs and steps_per_epoch")
            total_steps = (positive_int(epochs, "epochs", where)
                           * positive_int(steps_per_epoch, "steps_per_epoch", where))
        self.total_steps = positive_int(total_steps, "total_steps", where)
        if not 0.0 <= float(pct_start) <= 1.0:
            raise ValueError(f"{where}: pct_start must be in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{where}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        for name, value in (("max_lr", max_lr), ("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            if not float(value) > 0:
                raise ValueError(f"{where}: {name} must be > 0, got {value!r}")
        self.max_lr, self.pct_start, self.anneal_strategy = float(max_lr), float(pct_start), anneal_strategy
        self.div_factor, self.final_div_factor = float(div_factor), float(final_div_factor)
        self.three_phase = bool(three_phase)
        self.cycle_momentum = bool(cycle_momentum)
        self.base_momentum, self.max_momentum = float(base_momentum), float(max_momentum)
        if self.cycle_momentum:
            if not (hasattr(optimizer, "momentum") or hasattr(optimizer, "betas")):
                raise ValueError(f"{where}: cycle_momentum=True needs an optimizer with `momentum` or `betas` "
                                 f"({type(optimizer).__name__} has neither); pass cycle_momentum=False")
            if not 0.0 <= self.base_momentum <= self.max_momentum < 1.0:
                raise ValueError(f"{where}: need 0 <= base_momentum <= max_momentum < 1, got "
                                 f"{base_momentum!r} and {max_momentum!r}")
        if int(last_epoch) == -1:
            optimizer.initial_lr = self.max_lr / self.div_factor
        super().__init__(optimizer, last_epoch)

    def _phases(self):
        initial = self.max_lr / self.div_factor
        minimum = initial / self.final_div_factor
        up = float(self.pct_start * self.total_steps) - 1
        if self.three_phase:  # (end step, start lr, end lr, start momentum, end momentum)
            return [(up, initial, self.max_lr, self.max_momentum, self.base_momentum),
                    (float(2 * self.pct_start * self.total_steps) - 2, self.max_lr, initial,
                     self.base_momentum, self.max_momentum),
                    (self.total_steps - 1.0, initial, minimum, self.max_momentum, self.max_momentum)]
        return [(up, initial, self.max_lr, self.max_momentum, self.base_momentum),
                (self.total_steps - 1.0, self.max_lr, minimum, self.base_momentum, self.max_momentum)]

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _values_at(self, step):
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times; the cycle has total_steps={self.total_steps}")
        phases = self._phases()
        start_step = 0.0
        for i, (end_step, lr0, lr1, m0, m1) in enumerate(phases):
            if step <= end_step or i == len(phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                return self._anneal(lr0, lr1, pct), self._anneal(m0, m1, pct)
            start_step = end_step
        raise AssertionError("unreachable")  # pragma: no cover

    def lr_at(self, step):
        return self._values_at(step)[0]

    def step(self):
        self.last_epoch += 1
        lr, momentum = self._values_at(self.last_epoch)
        self._set(lr)
        if self.cycle_momentum:
            if hasattr(self.optimizer, "betas"):
                self.optimizer.betas = (momentum, *tuple(self.optimizer.betas)[1:])
            else:
                self.optimizer.momentum = momentum


class LinearWarmup(LRScheduler):
    """Raise the learning rate linearly for ``warmup_steps`` steps, then hand over to ``after`` (or stay at base).

    lr_t = base * (start_factor + (1 - start_factor) * t / warmup_steps) for t < warmup_steps, then
    ``after``'s lr at step t - warmup_steps. The same sequence as PyTorch's
    ``SequentialLR(opt, [LinearLR(opt, start_factor, total_iters=warmup_steps), after], [warmup_steps])``.

    Args:
        optimizer: the optimizer.
        warmup_steps: length of the warm-up (positive).
        after: a scheduler created on the same optimizer, started when the warm-up ends.
        start_factor: the first lr as a fraction of the base lr, in [0, 1].

    Example: ``LinearWarmup(opt, 5, after=CosineAnnealingLR(opt, T_max=95))``.
    """

    settings = ("warmup_steps", "start_factor")

    def __init__(self, optimizer, warmup_steps: int, after: LRScheduler | None = None, start_factor: float = 0.1,
                 last_epoch: int = -1):
        self.warmup_steps = positive_int(warmup_steps, "warmup_steps", "LinearWarmup")
        if not 0.0 <= float(start_factor) <= 1.0:
            raise ValueError(f"LinearWarmup: start_factor must be in [0, 1], got {start_factor!r}")
        if after is not None:
            if not isinstance(after, LRScheduler):
                raise TypeError(f"LinearWarmup: after must be a learning-rate scheduler, got {type(after).__name__}")
            if after.optimizer is not optimizer:
                raise ValueError("LinearWarmup: after must schedule the same optimizer")
        self.start_factor = float(start_factor)
        self.after = after
        if after is not None and int(last_epoch) == -1:
            after.last_epoch = -1  # it starts when the warm-up ends
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step):
        if step < self.warmup_steps:
            return self.base_lr * (self.start_factor + (1.0 - self.start_factor) * step / self.warmup_steps)
        if self.after is None:
            return self.base_lr
        return self.after.lr_at(step - self.warmup_steps)

    def step(self):
        self.last_epoch += 1
        if self.after is not None and self.last_epoch >= self.warmup_steps:
            self.after.last_epoch = self.last_epoch - self.warmup_steps - 1
            self.after.step()  # also cycles OneCycleLR's momentum
            self._last_lr = self.after.get_last_lr()
        else:
            self._set(self.lr_at(self.last_epoch))

    def state_dict(self):
        out = super().state_dict()
        if self.after is not None:
            out.update({f"after.{k}": v for k, v in self.after.state_dict().items()})
        return out

    def load_state_dict(self, state):
        super().load_state_dict({k: v for k, v in state.items() if not k.startswith("after.")})
        inner = {k[len("after."):]: v for k, v in state.items() if k.startswith("after.")}
        if (self.after is None) != (not inner):
            raise ValueError("LinearWarmup.load_state_dict: the saved warm-up "
                             + ("has" if inner else "has no") + " `after` scheduler but this one "
                             + ("has none" if self.after is None else "has one"))
        if self.after is not None:
            self.after.load_state_dict(inner)


SCHEDULERS = {"step": StepLR, "multistep": MultiStepLR, "exponential": ExponentialLR, "cosine": CosineAnnealingLR,
              "onecycle": OneCycleLR, "warmup": LinearWarmup, "linearwarmup": LinearWarmup}


def get_scheduler(name_or_instance, optimizer=None, **kwargs) -> LRScheduler:
    """A scheduler by (case-insensitive) name ("step", "multistep", "exponential", "cosine", "onecycle",
    "warmup"), or an LRScheduler instance returned as is. Example: ``get_scheduler("cosine", opt, T_max=50)``."""
    if isinstance(name_or_instance, LRScheduler):
        return name_or_instance
    key = str(name_or_instance).lower().replace("_", "").replace("lr", "")
    cls = SCHEDULERS.get(key) or SCHEDULERS.get(key.replace("annealing", ""))
    if cls is None:
        raise ValueError(f"unknown scheduler {name_or_instance!r}; choose one of {', '.join(SCHEDULERS)}")
    if optimizer is None:
        raise ValueError(f"get_scheduler: {cls.__name__} needs the optimizer to schedule")
    return cls(optimizer, **kwargs)
