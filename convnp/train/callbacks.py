"""Callbacks: hooks into the fit loop (Keras-style) for progress, logs, checkpoints, early stopping,
learning-rate schedules and a NaN guard.

A callback gets the :class:`~convnp.train.fit.Trainer` in ``set_trainer`` (``self.trainer.model``,
``.optimizer``, ``.history``, ``.world``) and may set ``self.trainer.stop_training = True``. Only rank 0
(``world.is_root``) writes files or prints. ``state_dict``/``load_state_dict`` carry a callback's
state through checkpoints so that resumed runs behave exactly like uninterrupted ones. Callbacks run in
list order, except that those with a higher ``order`` (checkpoints, loggers) run after the others at the
end of an epoch, so a checkpoint sees the already stepped schedule and early-stopping state.

Example::

    model.fit(x, y, epochs=10, validation_split=0.1, callbacks=[
        ModelCheckpoint("runs/latest"), EarlyStopping(patience=3), CSVLogger("runs/latest/log.csv")])
"""
from __future__ import annotations

import csv
import inspect
import json
import math
import os
import sys
import time

import numpy as np

from .progress import EpochProgress, format_logs, format_seconds


class Callback:
    """Base class; every hook is optional. ``logs`` are dicts of floats."""

    order = 0

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    @property
    def is_root(self) -> bool:
        trainer = getattr(self, "trainer", None)
        return trainer is None or trainer.world.is_root

    def on_train_begin(self, logs=None): pass
    def on_epoch_begin(self, epoch: int, logs=None): pass
    def on_batch_end(self, step: int, logs=None): pass
    def on_epoch_end(self, epoch: int, logs=None): pass
    def on_train_end(self, logs=None): pass

    def on_nan(self, message: str) -> bool:
        """Called when the loss is not finite (before the bad update is applied); return True to stop
        training cleanly instead of raising FloatingPointError."""
        return False

    def state_dict(self) -> dict:
        """JSON-able state saved in checkpoints."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class CallbackList:
    """Dispatch each hook to every callback (end-of-epoch hooks in ``order``)."""

    def __init__(self, callbacks, trainer):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected Callback objects, got {type(cb).__name__}")
            cb.set_trainer(trainer)

    def keys(self):
        return [f"{i}:{type(cb).__name__}" for i, cb in enumerate(self.callbacks)]

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)
        ordered = sorted(self.callbacks, key=lambda c: c.order) if hook == "on_epoch_end" else self.callbacks

        def call(*args):
            results = [getattr(cb, hook)(*args) for cb in ordered]
            return any(bool(r) for r in results) if hook == "on_nan" else None
        return call

    def state_dict(self) -> dict:
        return {key: cb.state_dict() for key, cb in zip(self.keys(), self.callbacks)}

    def load_state_dict(self, state: dict) -> None:
        for key, cb in zip(self.keys(), self.callbacks):
            if key in state:
                cb.load_state_dict(state[key])


class ProgressBar(Callback):
    """A per-epoch progress bar (tqdm when installed, else ~10 plain lines) and one summary line per epoch:
    ``epoch 2/5  loss 0.0412  accuracy 0.9871  val_loss ...  (21.4 s, 2803 samples/s)``.

    Args:
        mode: "auto", "tqdm", "plain", or "summary" (only the per-epoch lines).
        stream: text stream for the lines (default sys.stdout).
    """

    def __init__(self, mode: str = "auto", stream=None):
        if mode not in ("auto", "tqdm", "plain", "summary"):
            raise ValueError(f"ProgressBar: mode must be auto, tqdm, plain or summary, got {mode!r}")
        self.mode = mode
        self.stream = stream
        self.bar = None

    def _print(self, text):
        print(text, file=self.stream or sys.stdout, flush=True)

    def on_epoch_begin(self, epoch, logs=None):
        if not self.is_root:
            return
        self.start = time.perf_counter()
        self.samples = 0
        self.train_time = 0.0
        desc = f"epoch {epoch + 1}/{self.trainer.epochs}"
        self.bar = EpochProgress((logs or {}).get("steps", 0), desc, "none" if self.mode == "summary" else self.mode,
                                 stream=self.stream)

    def on_batch_end(self, step, logs=None):
        if self.bar is not None:
            logs = dict(logs or {})
            size = int(logs.pop("size", 0))
            self.samples += size
            self.train_time = time.perf_counter() - self.start
            self.bar.update(1, size, logs)

    def on_epoch_end(self, epoch, logs=None):
        if not self.is_root:
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        logs = dict(logs or {})
        elapsed = logs.pop("time", time.perf_counter() - self.start)
        rate = self.samples / self.train_time if self.train_time > 0 else 0.0  # training steps only
        self._print(f"epoch {epoch + 1}/{self.trainer.epochs}  {format_logs(logs)}  "
                    f"({format_seconds(elapsed)}, {rate:.0f} samples/s)")

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _atomic_write_text(path, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


class CSVLogger(Callback):
    """Write the history (one row per epoch: epoch, loss, accuracy, val_..., lr, time) to a CSV file,
    rewritten after every epoch so that it always matches the run (also after a resume)."""

    order = 10

    def __init__(self, path):
        self.path = os.fspath(path)

    def on_epoch_end(self, epoch, logs=None):
        if not self.is_root:
            return
        h = self.trainer.history
        keys = list(h.history)
        rows = [["epoch"] + keys]
        for i, e in enumerate(h.epoch):
            rows.append([e] + ["" if h.history[k][i] is None else repr(h.history[k][i]) for k in keys])
        import io
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        _atomic_write_text(self.path, buf.getvalue())


class JSONLogger(Callback):
    """Write the history (``{"epoch": [...], "history": {"loss": [...], ...}}``) as JSON after every epoch."""

    order = 10

    def __init__(self, path):
        self.path = os.fspath(path)

    def on_epoch_end(self, epoch, logs=None):
        if self.is_root:
            _atomic_write_text(self.path, json.dumps(self.trainer.history.to_dict(), indent=1))


def _mode_for(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if ("acc" in monitor or monitor.endswith("precision") or monitor.endswith("recall")) else "min"


def _monitored(logs, monitor, where):
    """The monitored value; falls back from val_X to X when there is no validation data."""
    if monitor in logs:
        return monitor, logs[monitor]
    if monitor.startswith("val_") and monitor[4:] in logs:
        return monitor[4:], logs[monitor[4:]]
    raise KeyError(f"{where}: monitored value {monitor!r} is not logged; available: {', '.join(sorted(logs))}")


class ModelCheckpoint(Callback):
    """Save ``last.npz`` after every epoch and ``best.npz`` whenever ``monitor`` improves, in ``directory``.

    Each file is a full checkpoint (model config + weights + optimizer state + epoch + RNG state + history,
    see :mod:`convnp.io.checkpoint`), written atomically, so training resumes from ``last.npz`` with
    ``fit(..., resume=path)`` and ``convnp.load("DIR/best.npz")`` gives a model ready for predict.

    Args:
        directory: output folder (created).
        monitor: logged value deciding "best" ("val_accuracy"; falls back to "accuracy" without validation).
        mode: "auto" (max for accuracies, min otherwise), "min" or "max".
        save_best, save_last: which files to write.
    """

    order = 20

    def __init__(self, directory, monitor: str = "val_accuracy", mode: str = "auto", save_best: bool = True,
                 save_last: bool = True):
        self.directory = os.fspath(directory)
        self.monitor = monitor
        self.mode = _mode_for(monitor, mode)
        self.save_best = bool(save_best)
        self.save_last = bool(save_last)
        self.best = None
        self.best_epoch = None

    @property
    def last_path(self) -> str:
        return os.path.join(self.directory, "last.npz")

    @property
    def best_path(self) -> str:
        return os.path.join(self.directory, "best.npz")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        improved = False
        if self.save_best:
            _, value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if value is not None and math.isfinite(value) and (
                    self.best is None or (value > self.best if self.mode == "max" else value < self.best)):
                self.best, self.best_epoch, improved = float(value), epoch + 1, True
        if not self.is_root:
            return
        if self.save_last:
            self.trainer.save_checkpoint(self.last_path)
        if improved:
            self.trainer.save_checkpoint(self.best_path)

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state):
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Args:
        monitor: logged value ("val_loss"; falls back to "loss" without validation data).
        patience: epochs without improvement before stopping.
        min_delta: smallest change that counts as an improvement.
        mode: "auto", "min" or "max".
        restore_best_weights: at the stop, load the weights of the best epoch (kept in memory).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = False):
        if int(patience) < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = abs(float(min_delta))
        self.mode = _mode_for(monitor, mode)
        self.restore_best_weights = bool(restore_best_weights)
        self.best = None
        self.wait = 0
        self.stopped_epoch = None
        self._best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        _, value = _monitored(logs or {}, self.monitor, "EarlyStopping")
        better = self.best is None or (value > self.best + self.min_delta if self.mode == "max"
                                       else value < self.best - self.min_delta)
        if better:
            self.best, self.wait = float(value), 0
            if self.restore_best_weights:
                self._best_weights = {k: v.copy() for k, v in self.trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch + 1
            self.trainer.stop_training = True
            self.trainer.history.stopped_reason = (f"early stopping: {self.monitor} did not improve for "
                                                   f"{self.patience} epochs (best {self.best:.4f})")
            if self.restore_best_weights and self._best_weights is not None:
                self.trainer.model.load_state_dict(self._best_weights)

    def state_dict(self):
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state):
        self.best, self.wait, self.stopped_epoch = state.get("best"), state.get("wait", 0), state.get("stopped_epoch")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"__array__": value.tolist(), "dtype": value.dtype.name}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_jsonable(value):
    if isinstance(value, dict):
        if "__array__" in value:
            return np.asarray(value["__array__"], dtype=value["dtype"])
        return {k: _from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_jsonable(v) for v in value]
    return value


class LRScheduler(Callback):
    """Step a learning-rate schedule every epoch (or every batch).

    Args:
        schedule: a scheduler object from :mod:`convnp.optim.lr_scheduler` (anything with ``step()``),
            a factory ``f(optimizer) -> scheduler`` (use it when the optimizer is created by ``compile``),
            or a Keras-style function ``f(epoch, lr) -> new lr`` applied at the start of each epoch.
        step_per: "epoch" or "batch" (for OneCycleLR / warm-up schedules counted in steps).

    Example: ``LRScheduler(lambda opt: CosineAnnealingLR(opt, T_max=10))``.
    """

    def __init__(self, schedule, step_per: str = "epoch"):
        if step_per not in ("epoch", "batch"):
            raise ValueError(f"LRScheduler: step_per must be 'epoch' or 'batch', got {step_per!r}")
        if not (hasattr(schedule, "step") or callable(schedule)):
            raise TypeError(f"LRScheduler: expected a scheduler object or a function, got {type(schedule).__name__}")
        self.schedule = schedule
        self.step_per = step_per
        self.scheduler = schedule if hasattr(schedule, "step") else None
        self._pending_state = None
        self._keras_fn = None
        if self.scheduler is None:
            n_args = len([p for p in inspect.signature(schedule).parameters.values()
                          if p.default is inspect.Parameter.empty])
            if n_args == 2:
                self._keras_fn = schedule

    def on_train_begin(self, logs=None):
        if self.scheduler is None and self._keras_fn is None:
            lr = self.trainer.optimizer.lr  # a scheduler's constructor may reset it to its base rate
            self.scheduler = self.schedule(self.trainer.optimizer)
            if self._pending_state is not None:  # resuming: keep the restored optimizer's rate
                self.trainer.optimizer.lr = lr
        if self._pending_state is not None and self.scheduler is not None:
            self.scheduler.load_state_dict(self._pending_state)
            self._pending_state = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._keras_fn is not None:
            self.trainer.optimizer.lr = float(self._keras_fn(epoch, float(self.trainer.optimizer.lr)))

    def on_batch_end(self, step, logs=None):
        if self.step_per == "batch" and self.scheduler is not None:
            self.scheduler.step()

    def on_epoch_end(self, epoch, logs=None):
        if self.step_per == "epoch" and self.scheduler is not None:
            self.scheduler.step()

    def state_dict(self):
        return {"scheduler": _jsonable(self.scheduler.state_dict())} if self.scheduler is not None else {}

    def load_state_dict(self, state):
        if "scheduler" in state:
            self._pending_state = _from_jsonable(state["scheduler"])
            if self.scheduler is not None and hasattr(self, "trainer"):
                self.scheduler.load_state_dict(self._pending_state)
                self._pending_state = None


class NaNGuard(Callback):
    """Stop training cleanly when the loss becomes NaN or infinite: the bad update is not applied, the
    epoch is not recorded (so no checkpoint of it is written and ``last.npz`` stays the last good one),
    and a clear message is printed and stored in ``history.stopped_reason``.

    Args:
        stream: where the message is printed (default stderr).
        divergence: optional k > 1: also stop when the loss rises above k x its first value (the first
            batch's running loss on one process; the first epoch's loss, which every rank shares, under MPI).
            Training stops at the end of that epoch.
        verbose: print the message (the CLI turns this off and prints it once itself as its error).

    Example: ``callbacks=[NaNGuard(divergence=10)]``.
    """

    def __init__(self, stream=None, divergence: float | None = None, verbose: bool = True):
        if divergence is not None and not (math.isfinite(divergence) and divergence > 1):
            raise ValueError(f"NaNGuard: divergence must be a finite number > 1 (k in 'loss > k x first loss'), "
                             f"got {divergence}")
        self.stream, self.divergence, self.verbose = stream, divergence, verbose
        self.message = None
        self.first_loss = None
        self._epoch = 0

    def _last_good(self):
        return next((cb.last_path for cb in getattr(self.trainer, "callbacks", [])
                     if isinstance(cb, ModelCheckpoint) and cb.save_last and os.path.exists(cb.last_path)), None)

    def _stop(self, message, advice):
        checkpoint = self._last_good()
        self.message = f"training stopped: {message}" + (
            f"; the last good checkpoint is {checkpoint}" if checkpoint else "") + advice
        self.trainer.history.stopped_reason = self.message
        if self.is_root and self.verbose:
            print(self.message, file=self.stream or sys.stderr, flush=True)

    def on_nan(self, message):
        self._stop(message, "; try a lower learning rate")
        return True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _watch(self, loss, where):
        if self.divergence is None or self.message is not None or loss is None or not math.isfinite(loss):
            return
        if self.first_loss is None:
            self.first_loss = float(loss)
        elif self.first_loss > 0 and loss > self.divergence * self.first_loss:
            self.trainer.stop_training = True
            self._stop(f"loss diverged: {loss:.4g} at {where} is above {self.divergence:g} x its first value "
                       f"{self.first_loss:.4g}", "; try a lower learning rate")

    def on_batch_end(self, step, logs=None):
        if self.trainer.world.size == 1:
            self._watch((logs or {}).get("loss"), f"epoch {self._epoch + 1}, step {step + 1}")

    def on_epoch_end(self, epoch, logs=None):
        if self.trainer.world.size > 1:
            self._watch((logs or {}).get("loss"), f"epoch {epoch + 1}")


class RankAgreement(Callback):
    """Under MPI, check before training and at each epoch that every rank has the same setup (data length,
    steps per epoch, batch size, epochs, seed, model and optimizer), so mismatched ranks stop with a message
    naming the ranks and values (see :func:`convnp.distributed.agree.check_agreement`) instead of hanging.

    Args:
        fields: extra JSON-able values that must agree (e.g. the command line).
        timeout: seconds to wait for all ranks at each check.
    """

    def __init__(self, fields: dict | None = None, timeout: float = 60.0):
        self.fields, self.timeout = dict(fields or {}), timeout

    def _setup(self, logs):
        t = self.trainer
        out = dict(self.fields)
        out.update({"model": type(t.model).__name__, "parameters": int(sum(p.size for p in t.model.parameters())),
                    "optimizer": type(t.optimizer).__name__ if t.optimizer is not None else None,
                    "epochs_done": int(t.epochs_done)})
        out.update({k: v for k, v in (logs or {}).items() if isinstance(v, (int, float, str))})
        return out

    def on_train_begin(self, logs=None):
        from ..distributed.agree import check_agreement
        check_agreement(self.trainer.world, self._setup(logs), "training setup", self.timeout)

    def on_epoch_begin(self, epoch, logs=None):
        from ..distributed.agree import check_agreement
        check_agreement(self.trainer.world, dict(self._setup(logs), epoch=int(epoch)),
                        f"setup of epoch {epoch + 1}", self.timeout)
