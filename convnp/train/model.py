"""Model: the Keras-style methods of a whole network — ``compile``, ``fit``, ``evaluate``, ``predict``,
``predict_proba``, ``save`` and ``load_weights``.

``nn.Module`` (every layer) knows nothing of training or files; a *model* is a Module that also carries
this mixin. ``nn.Sequential`` and the zoo's model classes are models: they live below ``train/`` in the
import order (docs/architecture.md), so instead of importing this file they are listed — ``nn.Sequential``
here, the zoo's classes in ``models.registry.MODEL_CLASSES`` — and :func:`use_model_api` puts ``Model``
first in their bases when ``convnp.train`` is imported (``import convnp`` does it). A network of your own
becomes a model by naming the mixin::

    class Net(Model, nn.Module):
        ...

Example::

    model = convnp.models.simple_convnet()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], lr=1e-3)
    history = model.fit(x_train, t_train, epochs=5, batch_size=100, validation_data=(x_test, t_test))
    model.evaluate(x_test, t_test)        # {"loss": 0.03, "accuracy": 0.99}
    model.predict(x_test[:3])             # (3, 10) logits
    model.predict_proba(x_test[:3])       # (3, 10) probabilities, rows sum to 1
    model.save("digits.npz"); convnp.load("digits.npz")
"""
from __future__ import annotations

import os

from ..models.registry import MODEL_CLASSES
from ..nn.containers import Sequential
from ..nn.module import Module
from .fit import Trainer, predict as _predict, softmax

__all__ = ["Model", "use_model_api"]


class Model:
    """Mixin for a Module that is a whole network: training (after :meth:`compile`), inference, files."""

    _trainer = None

    def compile(self, optimizer="adam", loss="cross_entropy", metrics=("accuracy",), **optimizer_kwargs):
        """Attach an optimizer, a loss and metrics for :meth:`fit`; returns the model.

        Args:
            optimizer: an optimizer object, or a name ("adam", "sgd", ...) built on the first ``fit``
                with ``optimizer_kwargs`` (e.g. ``lr=1e-3``) once lazy layers exist.
            loss: a name ("cross_entropy", Keras's "sparse_categorical_crossentropy", "mse", ...) or an
                object with ``value = loss(pred, target)`` and ``dpred = loss.backward()``.
            metrics: names ("accuracy", "top5_accuracy") or functions ``fn(pred, target) -> hits``.
            **optimizer_kwargs: options of the optimizer named by ``optimizer`` (refused with an object).
        """
        self._trainer = Trainer(self, optimizer, loss, metrics, **optimizer_kwargs)
        return self

    def _compiled(self, what: str) -> Trainer:
        if self._trainer is None:
            raise RuntimeError(f"{type(self).__name__}.{what}: call model.compile(optimizer, loss, metrics) first")
        return self._trainer

    def fit(self, x, y=None, epochs: int = 1, batch_size: int = 32, validation_data=None,
            validation_split: float = 0.0, callbacks=None, shuffle: bool = True, seed=None,
            drop_last: bool = False, transform=None, verbose: int = 1, resume=None, progress: str = "auto"):
        """Train the compiled model for ``epochs`` epochs (counted from the start: a resumed run stops at
        the same place); returns the :class:`~convnp.train.history.History`.

        Args:
            x: inputs ``(N, C, H, W)`` (or ``(N, features)``), or a Dataset (then ``y`` is None).
            y: targets ``(N,)`` class indices or ``(N, classes)`` one-hot / regression targets.
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
        """
        return self._compiled("fit").fit(
            x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
            validation_split=validation_split, callbacks=callbacks, shuffle=shuffle, seed=seed,
            drop_last=drop_last, transform=transform, verbose=verbose, resume=resume, progress=progress)

    def evaluate(self, x, y=None, batch_size: int = 256) -> dict:
        """Loss and metrics of the compiled model on (x, y), eval mode, no_grad:
        ``{"loss": 0.03, "accuracy": 0.99}``."""
        return self._compiled("evaluate").evaluate(x, y, batch_size=batch_size)

    def predict(self, x, batch_size: int = 256):
        """The model's raw outputs — logits for a classifier, *not* probabilities (see :meth:`predict_proba`) —
        computed in batches in eval mode under ``no_grad`` (the mode is restored afterwards).

        Shape: (N, ...) -> (N, outputs); a NumPy array for NumPy input even when the model is on the GPU.
        """
        return _predict(self, x, batch_size=batch_size)

    def predict_proba(self, x, batch_size: int = 256):
        """Class probabilities: the softmax of :meth:`predict`'s logits, shape (N, classes), rows sum to 1."""
        return softmax(_predict(self, x, batch_size=batch_size))

    def save(self, path, input_shape=None) -> str:
        """Write config + weights (+ optimizer state when compiled) to one ``.npz`` file; returns its path.

        ``path`` ends in ".npz" (written under that name) or has no extension (".npz" is added); any other
        extension (".keras", ".h5", ".pth") raises a ValueError, since the file is an npz archive that
        only ``convnp.load`` reads. For bare weights in other formats use
        :func:`convnp.io.weights.write_state_dict`. ``input_shape`` (one sample, e.g. ``(1, 28, 28)``)
        defaults to what ``fit`` saw or what the loaded checkpoint recorded.
        """
        from ..io.checkpoint import save_model
        path = os.fspath(path)
        extension = os.path.splitext(os.path.basename(path))[1]
        if extension.lower() not in ("", ".npz"):
            raise ValueError(f"{type(self).__name__}.save: {path!r} has the extension {extension!r}; a convnp "
                             f"model is saved as one .npz archive (config + weights) for convnp.load, so give "
                             f"a name ending in .npz; for weights only in .safetensors/.pth use "
                             f"convnp.io.weights.write_state_dict(model.state_dict(), path)")
        trainer = self._trainer
        if input_shape is None and trainer is not None:
            input_shape = trainer.input_shape
        if input_shape is None:
            input_shape = (getattr(self, "_checkpoint_info", None) or {}).get("input_shape")
        return save_model(self, path, input_shape=input_shape,
                          optimizer=None if trainer is None else trainer.optimizer)

    def load_weights(self, path, strict: bool = True):
        """Load a weight file whose keys match ``state_dict()`` — .safetensors, .npz, .pth (with torch),
        Keras VGG16 .h5 (with h5py); see :func:`convnp.io.weights.load_weights`. Returns ``(missing, unexpected)``."""
        from ..io.weights import load_weights
        return load_weights(self, path, strict=strict)


def use_model_api(cls: type) -> type:
    """Make the Module subclass ``cls`` a :class:`Model` in place (``Model`` goes first in its bases) and
    return it; subclasses follow. Used for classes that sit below ``train/`` in the import order."""
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"use_model_api: expected a Module subclass, got {cls!r}")
    if not issubclass(cls, Model):
        cls.__bases__ = (Model,) + cls.__bases__
    return cls


for _cls in (Sequential, *MODEL_CLASSES):
    use_model_api(_cls)
