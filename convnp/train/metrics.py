"""Classification metrics: accuracy, top-k accuracy, confusion matrix, per-class precision/recall.

Functions accept logits or probabilities ``(N, K)`` as ``pred`` and targets as class indices ``(N,)``
or one-hot rows ``(N, K)``; NumPy or CuPy arrays; results are Python floats / NumPy arrays.
"""
from __future__ import annotations

import re

import numpy as np

from ..backend import get_array_module, to_numpy


def _labels(target, pred_ndim: int = 2):
    """Class indices from int labels (N,) or one-hot / probability rows (N, K)."""
    if target.ndim == pred_ndim and target.ndim >= 2:
        return target.argmax(axis=1)
    return target


def correct_count(pred, target) -> int:
    """Number of rows whose arg-max equals the target class."""
    return int((pred.argmax(axis=1) == _labels(target, pred.ndim)).sum())


def top_k_count(pred, target, k: int = 5) -> int:
    """Number of rows whose target is among the ``k`` highest scores."""
    xp = get_array_module(pred)
    k = min(int(k), pred.shape[1])
    top = xp.argpartition(-pred, k - 1, axis=1)[:, :k]  # (N, k), unordered
    return int((top == _labels(target, pred.ndim)[:, None]).any(axis=1).sum())


def accuracy(pred, target) -> float:
    """Fraction of rows whose arg-max is the target. Example: ``accuracy(logits, labels) == 0.98``."""
    if len(pred) != len(target):
        raise ValueError(f"accuracy: pred has {len(pred)} rows but target has {len(target)}")
    return correct_count(pred, target) / max(len(pred), 1)


def top_k_accuracy(pred, target, k: int = 5) -> float:
    """Fraction of rows whose target is among the ``k`` highest scores (top-5 error = 1 - this)."""
    if int(k) < 1:
        raise ValueError(f"top_k_accuracy: k must be >= 1, got {k}")
    return top_k_count(pred, target, k) / max(len(pred), 1)


def confusion_matrix(pred, target, num_classes: int | None = None):
    """``M[i, j]`` = number of samples of true class i predicted as j (int64 NumPy array (K, K)).

    ``pred`` is (N, K) scores or (N,) predicted classes.
    """
    pred = to_numpy(pred)
    target = to_numpy(target)
    predicted = pred.argmax(axis=1) if pred.ndim == 2 else pred
    true = _labels(target, pred.ndim if pred.ndim == 2 else 2)
    if num_classes is None:
        num_classes = pred.shape[1] if pred.ndim == 2 else int(max(predicted.max(initial=-1), true.max(initial=-1)) + 1)
    k = int(num_classes)
    if len(true) and (true.min() < 0 or true.max() >= k or predicted.min() < 0 or predicted.max() >= k):
        raise ValueError(f"confusion_matrix: class indices must lie in [0, {k})")
    m = np.zeros((k, k), np.int64)
    np.add.at(m, (np.asarray(true, np.int64), np.asarray(predicted, np.int64)), 1)
    return m


def precision_recall(confusion):
    """Per-class ``{"precision", "recall", "f1", "support"}`` arrays from a confusion matrix.

    precision_j = M[j, j] / sum_i M[i, j] (0 when class j is never predicted); recall_i = M[i, i] / sum_j M[i, j].
    """
    m = np.asarray(confusion, np.float64)
    tp = np.diag(m)
    predicted = m.sum(axis=0)
    support = m.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def classification_report(pred, target, class_names=None) -> str:
    """A text table of per-class precision, recall, F1 and support, plus overall accuracy."""
    m = confusion_matrix(pred, target)
    pr = precision_recall(m)
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(m))]
    width = max(12, max(len(n) for n in names) + 2)
    lines = [f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for i, name in enumerate(names):
        lines.append(f"{name:<{width}}{pr['precision'][i]:>10.4f}{pr['recall'][i]:>10.4f}{pr['f1'][i]:>10.4f}"
                     f"{pr['support'][i]:>10d}")
    total = m.sum()
    lines.append(f"{'accuracy':<{width}}{'':>20}{np.trace(m) / max(total, 1):>10.4f}{total:>10d}")
    return "\n".join(lines)


def get_metric(name):
    """``(log name, count_fn)`` for a metric name; ``count_fn(pred, target)`` returns the number of hits in
    the batch, so that metrics add up over batches and ranks.

    Names: "accuracy"/"acc", "top5"/"top5_accuracy"/"top_k_accuracy" (k=5), "topK_accuracy" for any K.
    A callable ``fn(pred, target) -> hits`` is accepted as is (logged under its ``__name__``).
    """
    if callable(name):
        return getattr(name, "__name__", "metric"), name
    key = str(name).lower()
    if key in ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy"):
        return "accuracy", correct_count
    if key == "top_k_accuracy":
        key = "top5"
    match = re.fullmatch(r"top_?(\d+)(_accuracy)?", key)
    if match:
        k = int(match.group(1))
        return f"top{k}_accuracy", lambda pred, target: top_k_count(pred, target, k)
    raise ValueError(f"unknown metric {name!r}; use 'accuracy', 'top5_accuracy' (any k) or a function "
                     "fn(pred, target) -> number of correct samples")
