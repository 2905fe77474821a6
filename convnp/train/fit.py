"""The fit loop: Trainer.fit / evaluate / predict, data parallel over MPI ranks, resumable bit for bit.

One epoch: a permutation seeded by ``(seed, epoch)`` (the same on every rank) is cut into global batches
of ``batch_size``; each rank takes its contiguous share (``world.shard``), runs forward, loss and
backward, the gradients are averaged over ranks (``world.allreduce_gradients``) and the optimizer steps.
Every sample is visited once per epoch (the last partial batch is kept unless ``drop_last``).

Everything that decides the next epoch (weights, optimizer and schedule state, layer RNG states, epoch
counter, callback states, history, seed) goes into the checkpoint, so ``fit(..., resume="last.npz")``
continues exactly where an interrupted run stopped.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .. import accel
from ..backend import get_array_module, no_grad, to_device, to_numpy
from ..data.dataset import Subset, as_dataset
from ..data.loader import DataLoader
from .callbacks import CallbackList, ModelCheckpoint, ProgressBar
from .history import History
from .metrics import get_metric


def get_world_or_single():
    """The MPI world from :mod:`convnp.distributed`, or a one-process stand-in."""
    from ..distributed import get_world
    return get_world()


class Trainer:
    """Trains a model with an optimizer, a loss and metrics (what ``model.compile`` creates).

    Args:
        model: the Module to train.
        optimizer: an optimizer instance, or a name ("adam", "sgd", ...) built on the first ``fit`` once
            the model's lazy layers exist; ``optimizer_kwargs`` (e.g. ``lr=1e-3``) go to its constructor.
        loss: a loss name ("cross_entropy", "sparse_categorical_crossentropy", "mse", ...) or a loss object
            with ``value = loss(pred, target)`` and ``dpred = loss.backward()``.
        metrics: names ("accuracy", "top5_accuracy") or functions ``fn(pred, target) -> hits``.
        world: communicator (default: :func:`convnp.distributed.get_world`).

    Example::

        trainer = Trainer(model, "adam", "cross_entropy", ["accuracy"], lr=1e-3)
        history = trainer.fit(x_train, t_train, epochs=5, batch_size=100, validation_data=(x_test, t_test))
    """

    def __init__(self, model, optimizer="adam", loss="cross_entropy", metrics=("accuracy",), world=None,
                 **optimizer_kwargs):
        self.model = model
        if isinstance(loss, str) or isinstance(loss, type):
            from ..nn.losses import get_loss
            self.loss_fn = get_loss(loss)
        elif callable(loss) and hasattr(loss, "backward"):
            self.loss_fn = loss
        else:
            raise TypeError(f"compile: loss must be a name or an object with __call__(pred, target) and "
                            f"backward(), got {type(loss).__name__}")
        self.loss_name = loss if isinstance(loss, str) else type(self.loss_fn).__name__
        if isinstance(metrics, str) or callable(metrics):
            metrics = [metrics]
        self.metrics = [get_metric(m) for m in (metrics or [])]
        self.metric_names = [m if isinstance(m, str) else getattr(m, "__name__", "metric") for m in (metrics or [])]
        if isinstance(optimizer, str):
            self.optimizer, self.optimizer_name = None, optimizer
        elif hasattr(optimizer, "step") and hasattr(optimizer, "state_dict"):
            if optimizer_kwargs:
                raise TypeError(f"compile: optimizer options {sorted(optimizer_kwargs)} are only used with an "
                                "optimizer name; set them on the optimizer instance instead")
            self.optimizer, self.optimizer_name = optimizer, type(optimizer).__name__.lower()
        else:
            raise TypeError(f"compile: optimizer must be a name such as 'adam' or an optimizer object, "
                            f"got {type(optimizer).__name__}")
        self.optimizer_kwargs = dict(optimizer_kwargs)
        self.world = world if world is not None else get_world_or_single()
        self.history = History()
        self.epochs_done = 0
        self.epochs = 0
        self.seed = None
        self.input_shape = None
        self.stop_training = False
        self.callbacks = []
        self.extra_state = {}

    # ------------------------------------------------------------------ setup
    def _prepare(self, sample) -> None:
        """Build lazy layers with one sample and create the optimizer by name if needed."""
        if self.input_shape is None:
            self.input_shape = tuple(int(s) for s in sample.shape[1:])
        if not self.model.built:
            from ..io.checkpoint import build
            build(self.model, self.input_shape)
        if self.optimizer is None:
            from ..optim import get_optimizer
            self.optimizer = get_optimizer(self.optimizer_name, list(self.model.named_parameters()),
                                           **self.optimizer_kwargs)

    def _to_model(self, xb, yb=None):
        """Move a host batch to the model's device and dtype."""
        params = self.model.parameters()
        if params:
            dtype = params[0].dtype
            if xb.dtype.kind == "f" and xb.dtype != dtype:
                xb = xb.astype(dtype)
            if yb is not None and yb.dtype.kind == "f" and yb.dtype != dtype:
                yb = yb.astype(dtype)
        device = self.model.device
        if device != "cpu":
            xb = to_device(xb, device)
            yb = None if yb is None else to_device(yb, device)
        return xb, yb

    def compile_config(self) -> dict:
        return {"optimizer": self.optimizer_name, "optimizer_kwargs": self.optimizer_kwargs,
                "loss": self.loss_name, "metrics": [n for n in self.metric_names]}

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path) -> str:
        """Write the full training state (see :mod:`convnp.io.checkpoint`); rank 0 only."""
        from ..io.checkpoint import save_checkpoint
        if not self.world.is_root:
            return path
        state = {"history": self.history.to_dict(), "seed": self.seed, "stopped": bool(self.stop_training),
                 "callbacks": self._callback_list.state_dict() if hasattr(self, "_callback_list") else {},
                 "compile": self.compile_config()}
        state.update(self.extra_state)
        return save_checkpoint(path, self.model, self.optimizer, epoch=self.epochs_done, state=state,
                               input_shape=self.input_shape)

    def restore(self, path, callbacks: CallbackList | None = None):
        """Load weights, optimizer state, layer RNG states, epoch, seed, history and callback states."""
        from ..io.checkpoint import load_checkpoint, set_rng_states, CheckpointError
        ckpt = load_checkpoint(path)
        if ckpt.input_shape is not None:
            self.input_shape = ckpt.input_shape
        if not self.model.built and self.input_shape is not None:
            from ..io.checkpoint import build
            build(self.model, self.input_shape)
        try:
            self.model.load_state_dict(ckpt.model_state, strict=True)
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"resume: {ckpt.path} does not match this model: {e}") from None
        set_rng_states(self.model, ckpt.state.get("rng", {}))
        if self.optimizer is None:
            self._prepare(np.zeros((1,) + tuple(self.input_shape), np.float32))
        if ckpt.optimizer_state is not None:
            self.optimizer.load_state_dict(ckpt.optimizer_state)
        self.epochs_done = ckpt.epoch
        self.seed = ckpt.state.get("seed", self.seed)
        self.history = History.from_dict(ckpt.state.get("history", {}))
        self.stop_training = bool(ckpt.state.get("stopped", False))
        if callbacks is not None:
            callbacks.load_state_dict(ckpt.state.get("callbacks", {}))
        return ckpt

    # ------------------------------------------------------------------ fit
    def fit(self, x, y=None, epochs: int = 1, batch_size: int = 32, validation_data=None,
            validation_split: float = 0.0, callbacks=None, shuffle: bool = True, seed=None,
            drop_last: bool = False, transform=None, verbose: int = 1, resume=None, progress: str = "auto"):
        """Train for ``epochs`` epochs (counted from the start, so a resumed run stops at the same place).

        Args:
            x, y: inputs and targets (arrays), or a Dataset as ``x`` (then ``y`` None).
            epochs: total number of epochs.
            batch_size: global batch size (split over MPI ranks).
            validation_data: ``(x_val, y_val)`` or a Dataset, evaluated after each epoch (``val_`` logs).
            validation_split: fraction of (x, y), taken from the end before shuffling, held out for validation.
            callbacks: list of :class:`~convnp.train.callbacks.Callback`.
            shuffle: a new seeded permutation every epoch.
            seed: seed of the permutations and augmentations (random when None, recorded in checkpoints).
            drop_last: drop the last partial batch of each epoch.
            transform: batch augmentation ``t(xb, rng) -> xb`` (see :mod:`convnp.data.transforms`).
            verbose: 0 silent, 1 progress bar and one line per epoch, 2 one line per epoch.
            resume: path of a checkpoint to continue from (weights, optimizer, epoch, RNG, history).
            progress: "auto" (tqdm when installed), "tqdm" or "plain", for ``verbose=1``.

        Returns: the :class:`~convnp.train.history.History`.
        """
        if int(epochs) < 0:
            raise ValueError(f"fit: epochs must be >= 0, got {epochs}")
        if not 0.0 <= float(validation_split) < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
        if validation_split and validation_data is not None:
            raise ValueError("fit: pass validation_data or validation_split, not both")
        dataset = as_dataset(x, y)
        n = len(dataset)
        val_set = None
        if validation_split:
            n_val = int(round(n * float(validation_split)))
            if n_val < 1 or n_val >= n:
                raise ValueError(f"fit: validation_split={validation_split} of {n} samples leaves no "
                                 "training or no validation samples")
            val_set = Subset(dataset, np.arange(n - n_val, n))
            dataset = Subset(dataset, np.arange(n - n_val))
        elif validation_data is not None:
            val_set = validation_data if not isinstance(validation_data, (tuple, list)) else \
                as_dataset(*validation_data)
        if len(dataset) == 0:
            raise ValueError("fit: no training samples")
        self.epochs = int(epochs)
        callbacks = list(callbacks or [])
        if verbose and not any(isinstance(cb, ProgressBar) for cb in callbacks):
            callbacks.insert(0, ProgressBar(progress if verbose == 1 else "summary"))
        self.callbacks = callbacks
        cbs = self._callback_list = CallbackList(callbacks, self)
        if seed is None:  # a fresh random seed, the same on every rank (a resume restores the stored one)
            seed = int(np.random.SeedSequence().entropy % (2 ** 63))
            if hasattr(self.world, "bcast"):
                seed = self.world.bcast(seed)
        self.seed = int(seed)
        self.epochs_done, self.history, self.stop_training = 0, History(), False
        self._prepare(dataset.get_batch(np.arange(1))[0])
        if resume is not None:
            self.restore(resume, cbs)
        loader = DataLoader(dataset, batch_size, shuffle=shuffle, seed=self.seed, drop_last=drop_last,
                            transform=transform)
        self.world.broadcast_parameters(self.model)
        cbs.on_train_begin({})
        logs = {}
        for epoch in range(self.epochs_done, self.epochs):
            if self.stop_training:
                break
            start = time.perf_counter()
            logs = self._train_epoch(loader, epoch, cbs)
            if logs is None:  # non-finite loss handled by a NaNGuard
                break
            if val_set is not None:
                val = self.evaluate(val_set, batch_size=max(batch_size, 256))
                logs.update({f"val_{k}": v for k, v in val.items()})
            logs["lr"] = _current_lr(self.optimizer)
            logs["time"] = time.perf_counter() - start
            self.epochs_done = epoch + 1
            self.history.append(epoch + 1, logs)
            cbs.on_epoch_end(epoch, dict(logs))
        cbs.on_train_end(logs)
        self.model.eval()
        return self.history

    def _train_epoch(self, loader, epoch, cbs):
        model, world = self.model, self.world
        model.train()
        batches = loader.batch_indices(epoch)
        cbs.on_epoch_begin(epoch, {"steps": len(batches)})
        totals = np.zeros(2 + len(self.metrics), np.float64)  # loss * n, n, hits per metric
        for step, idx in enumerate(batches):
            if world.size > 1:  # every rank gets an equal share; at most size-1 samples of a batch are left out
                idx = idx[:len(idx) - len(idx) % world.size]
                if len(idx) == 0:
                    continue
                idx = world.shard(idx)
            xb, yb = loader.load(idx, epoch, step, rank=world.rank)
            xb, yb = self._to_model(xb, yb)
            model.zero_grad()
            with accel.threads.step_threads(model, xb):  # kernel threads when the planner put the convs in C
                pred, value, error = self._forward_loss(model, xb, yb)
                bad = not math.isfinite(value)
                if not bad:
                    model.backward(self.loss_fn.backward())
            if world.size > 1:
                bad = float(world.allreduce_sum(float(bad))) > 0
            if bad:
                message = (f"loss became {value} at epoch {epoch + 1}, step {step + 1}"
                           + (f" ({error})" if error is not None else ""))
                if cbs.on_nan(message):
                    self.stop_training = True
                    return None
                raise FloatingPointError(message + "; lower the learning rate, or pass callbacks=[NaNGuard()] "
                                                   "to stop cleanly")
            world.allreduce_gradients(model.parameters())
            self.optimizer.step()
            n = len(xb)
            batch = [value * n, n] + [fn(pred, yb) for _, fn in self.metrics]
            totals += batch
            running = {"loss": totals[0] / totals[1]}
            running.update({name: totals[2 + i] / totals[1] for i, (name, _) in enumerate(self.metrics)})
            running["size"] = n * world.size
            cbs.on_batch_end(step, running)
        if world.size > 1:
            totals = np.asarray(to_numpy(world.allreduce_sum(totals)), np.float64)
        count = max(totals[1], 1)
        logs = {"loss": float(totals[0] / count)}
        logs.update({name: float(totals[2 + i] / count) for i, (name, _) in enumerate(self.metrics)})
        return logs

    def _forward_loss(self, model, xb, yb):
        """(pred, loss value, FloatingPointError or None) of one training batch."""
        pred = model(xb)
        try:
            return pred, float(self.loss_fn(pred, yb)), None
        except FloatingPointError as e:
            return pred, float("nan"), e

    # ------------------------------------------------------------------ evaluate / predict
    def evaluate(self, x, y=None, batch_size: int = 256) -> dict:
        """Loss and metrics over (x, y) in eval mode under no_grad, split over ranks: ``{"loss": ..., ...}``."""
        dataset = as_dataset(x, y)
        n = len(dataset)
        if n == 0:
            raise ValueError("evaluate: no samples")
        if self.input_shape is None:
            self.input_shape = tuple(int(s) for s in dataset.get_batch(np.arange(1))[0].shape[1:])
        world = self.world
        mine = np.array_split(np.arange(n), world.size)[world.rank]
        totals = np.zeros(2 + len(self.metrics), np.float64)
        was_training = self.model.training
        self.model.eval()
        try:
            with no_grad():
                for start in range(0, len(mine), batch_size):
                    xb, yb = dataset.get_batch(mine[start:start + batch_size])
                    xb, yb = self._to_model(xb, yb)
                    with accel.threads.step_threads(self.model, xb):
                        pred = self.model(xb)
                    m = len(xb)
                    totals += [float(self.loss_fn(pred, yb)) * m, m] + [fn(pred, yb) for _, fn in self.metrics]
        finally:
            self.model.train(was_training)
        if world.size > 1:
            totals = np.asarray(to_numpy(world.allreduce_sum(totals)), np.float64)
        out = {"loss": float(totals[0] / totals[1])}
        out.update({name: float(totals[2 + i] / totals[1]) for i, (name, _) in enumerate(self.metrics)})
        return out


def predict(model, x, batch_size: int = 256):
    """Model outputs (logits) for ``x`` in batches, in eval mode under no_grad (mode restored afterwards).

    Returns an array of the input's kind: NumPy for NumPy input even when the model is on the GPU.
    Shape: (N, ...) -> (N, outputs).
    """
    if hasattr(x, "get_batch"):
        n = len(x)
        fetch = lambda idx: x.get_batch(idx)[0]  # noqa: E731
        host = True
    else:
        n = len(x)
        fetch = lambda idx: x[idx[0]:idx[-1] + 1]  # noqa: E731
        host = get_array_module(x) is np
    if int(batch_size) < 1:
        raise ValueError(f"predict: batch_size must be a positive integer, got {batch_size}")
    params = model.parameters()
    dtype = params[0].dtype if params else None
    device = model.device
    outs = []
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for start in range(0, n, batch_size):
                xb = fetch(np.arange(start, min(start + batch_size, n)))
                if dtype is not None and xb.dtype != dtype and xb.dtype.kind in "fiu":
                    xb = xb.astype(dtype)
                if device != "cpu":
                    xb = to_device(xb, device)
                with accel.threads.step_threads(model, xb):
                    y = model(xb)
                outs.append(to_numpy(y) if host else y)
    finally:
        model.train(was_training)
    if not outs:
        raise ValueError("predict: no samples")
    xp = get_array_module(outs[0])
    return xp.concatenate(outs)


def softmax(logits, axis: int = 1):
    """Row-wise softmax (stable)."""
    xp = get_array_module(logits)
    z = logits - logits.max(axis=axis, keepdims=True)
    e = xp.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _current_lr(optimizer):
    lr = getattr(optimizer, "lr", None)
    return None if lr is None else float(lr)


def attach_checkpoint_dir(callbacks, directory):
    """``callbacks`` plus a ModelCheckpoint(directory) unless one is already there."""
    callbacks = list(callbacks or [])
    if not any(isinstance(cb, ModelCheckpoint) for cb in callbacks):
        callbacks.append(ModelCheckpoint(directory))
    return callbacks
