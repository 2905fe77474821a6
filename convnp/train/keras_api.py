"""Keras-style methods on every Module: ``model.compile``, ``fit``, ``evaluate``, ``predict``,
``predict_proba`` and ``save`` (Module's methods delegate here; this module is imported lazily).

Example::

    model = convnp.models.simple_convnet()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], lr=1e-3)
    history = model.fit(x_train, t_train, epochs=5, batch_size=100, validation_data=(x_test, t_test))
    model.evaluate(x_test, t_test)        # {"loss": 0.03, "accuracy": 0.99}
    model.predict_proba(x_test[:3])       # (3, 10) probabilities
    model.save("digits.npz"); convnp.load("digits.npz")
"""
from __future__ import annotations

from .fit import Trainer, predict as _predict, softmax


def compile(model, optimizer="adam", loss="cross_entropy", metrics=("accuracy",), **optimizer_kwargs):
    """Attach an optimizer (instance or name, ``optimizer_kwargs`` such as ``lr`` for a name), a loss
    (name, Keras alias or object) and metrics to ``model``; returns the model."""
    trainer = Trainer(model, optimizer, loss, metrics, **optimizer_kwargs)
    object.__setattr__(model, "_trainer", trainer)
    return model


def _trainer(model, what):
    trainer = getattr(model, "_trainer", None)
    if trainer is None:
        raise RuntimeError(f"{what}: call model.compile(optimizer, loss, metrics) first")
    return trainer


def fit(model, x, y=None, **kwargs):
    """Train the compiled model; see :meth:`convnp.train.fit.Trainer.fit` for the arguments. Returns History."""
    return _trainer(model, "fit").fit(x, y, **kwargs)


def evaluate(model, x, y=None, batch_size: int = 256) -> dict:
    """``{"loss": ..., "accuracy": ...}`` of the compiled model on (x, y)."""
    return _trainer(model, "evaluate").evaluate(x, y, batch_size=batch_size)


def predict(model, x, batch_size: int = 256):
    """Outputs (logits) for ``x``, batched, in eval mode under ``convnp.no_grad()``."""
    return _predict(model, x, batch_size=batch_size)


def predict_proba(model, x, batch_size: int = 256):
    """Class probabilities: the softmax of :func:`predict`'s logits (rows sum to 1)."""
    return softmax(_predict(model, x, batch_size=batch_size))


def save(model, path, input_shape=None) -> str:
    """Save config + weights (+ optimizer state when compiled) to one npz file for ``convnp.load``."""
    from ..io.checkpoint import save_model
    trainer = getattr(model, "_trainer", None)
    if input_shape is None and trainer is not None:
        input_shape = trainer.input_shape
    if input_shape is None:
        input_shape = (getattr(model, "_checkpoint_info", None) or {}).get("input_shape")
    return save_model(model, path, input_shape=input_shape,
                      optimizer=None if trainer is None else trainer.optimizer)
