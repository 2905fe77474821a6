"""Loss objects: ``value = loss_fn(pred, target)`` (a float), then ``dpred = loss_fn.backward()``.

    loss_fn = CrossEntropyLoss(label_smoothing=0.1)
    value = loss_fn(model(x), labels)
    model.backward(loss_fn.backward())

``get_loss("cross_entropy")`` (or a Keras name such as "sparse_categorical_crossentropy") builds one by
name. All losses use mean reduction; the formulas are in :mod:`convnp.functional.loss`.
"""
from __future__ import annotations

import inspect

from ..functional import loss as L

__all__ = ["Loss", "CrossEntropyLoss", "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss", "get_loss", "LOSSES"]


class Loss:
    """Base class: subclasses set ``_forward``/``_backward`` (a pair from :mod:`convnp.functional.loss`)."""

    _forward = _backward = None

    def __init__(self):
        self._cache = None

    def __call__(self, pred, target) -> float:
        value, cache = type(self)._forward(pred, target, **self._kwargs(), where=type(self).__name__)
        self._cache = cache
        return value

    forward = __call__

    def _kwargs(self) -> dict:
        return {}

    def backward(self):
        """d(loss)/d(pred) of the last call: an array like ``pred``."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before the loss was computed "
                               "(call loss_fn(pred, target) first)")
        return type(self)._backward(self._cache)

    def get_config(self) -> dict:
        return self._kwargs()

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__).parameters
        args = [f"{k}={v!r}" for k, v in self._kwargs().items() if k not in sig or sig[k].default != v]
        return f"{type(self).__name__}({', '.join(args)})"


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy from logits, as ``torch.nn.CrossEntropyLoss`` (mean over the batch).

    Args:
        label_smoothing: eps in [0, 1]; the target becomes (1 - eps) * target + eps / K.

    Shape: logits (N, K); target int labels (N,) or probabilities / one-hot (N, K) -> float.
    Example: ``CrossEntropyLoss()(logits, np.array([1, 0, 3]))``.
    """
    _forward = staticmethod(L.softmax_cross_entropy_forward)
    _backward = staticmethod(L.softmax_cross_entropy_backward)

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def _kwargs(self):
        return {"label_smoothing": self.label_smoothing}


class MSELoss(Loss):
    """Mean squared error mean((pred - target)^2). Shape: pred and target the same shape -> float.
    Example: ``MSELoss()(y, t)``."""
    _forward = staticmethod(L.mse_forward)
    _backward = staticmethod(L.mse_backward)


class L1Loss(Loss):
    """Mean absolute error mean|pred - target|. Shape: pred and target the same shape -> float."""
    _forward = staticmethod(L.l1_forward)
    _backward = staticmethod(L.l1_backward)


class BCELoss(Loss):
    """Binary cross-entropy on probabilities in [0, 1] (logs clipped at -100, as PyTorch).
    Shape: pred and target the same shape -> float. Prefer :class:`BCEWithLogitsLoss` on raw scores."""
    _forward = staticmethod(L.binary_cross_entropy_forward)
    _backward = staticmethod(L.binary_cross_entropy_backward)


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on raw scores (sigmoid folded in, stable for any magnitude).
    Shape: logits and target the same shape -> float. Example: ``BCEWithLogitsLoss()(z, t)``."""
    _forward = staticmethod(L.bce_with_logits_forward)
    _backward = staticmethod(L.bce_with_logits_backward)


#: loss classes by name (Keras and PyTorch spellings)
LOSSES = {
    "cross_entropy": CrossEntropyLoss, "sparse_categorical_crossentropy": CrossEntropyLoss,
    "categorical_crossentropy": CrossEntropyLoss, "softmax_cross_entropy": CrossEntropyLoss,
    "mse": MSELoss, "mean_squared_error": MSELoss, "l2": MSELoss,
    "l1": L1Loss, "mae": L1Loss, "mean_absolute_error": L1Loss,
    "binary_crossentropy": BCELoss, "bce": BCELoss,
    "bce_with_logits": BCEWithLogitsLoss,
}


def get_loss(loss) -> Loss:
    """A Loss from a name (see ``LOSSES``), a Loss class, or a Loss instance (returned as is).

    Example: ``get_loss("sparse_categorical_crossentropy")`` -> ``CrossEntropyLoss()``.
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, str):
        key = loss.strip().lower().replace("-", "_").replace(" ", "_")
        if key in LOSSES:
            return LOSSES[key]()
        raise ValueError(f"get_loss: unknown loss {loss!r}; choose one of {', '.join(sorted(LOSSES))}")
    raise TypeError(f"get_loss: expected a loss name or a Loss object, got {type(loss).__name__}")
