"""Classification results: confusion matrix and the misclassified images."""
from __future__ import annotations

import numpy as np

from ..backend import no_grad
from ._mpl import as_batch, blank_axis, finish, grid_shape, host, image_hw, new_figure, show_tile

NORMALIZE = (None, "true", "pred", "all")


def _labels(y, where, name):
    y = host(y)
    if y.ndim == 2:  # one-hot or scores
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise ValueError(f"{where}: {name} must be class indices (N,) or one-hot (N, K), got shape {y.shape}")
    if y.size and (np.any(y < 0) or np.any(y != np.round(y))):
        raise ValueError(f"{where}: {name} must hold non-negative integer class indices")
    return y.astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts ``cm[i, j]`` = number of samples of true class i predicted as class j.

    Args:
        y_true, y_pred: class indices (N,) or one-hot/scores (N, K) (argmax is taken).
        num_classes: K (default: 1 + the largest label seen).

    Shape: (K, K), int64. Example: ``confusion_matrix([0, 1, 1], [0, 1, 0])`` -> [[1, 0], [1, 1]].
    """
    where = "confusion_matrix"
    t, p = _labels(y_true, where, "y_true"), _labels(y_pred, where, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"{where}: y_true has {t.size} labels but y_pred has {p.size}")
    k = int(max(t.max(initial=-1), p.max(initial=-1)) + 1) if num_classes is None else int(num_classes)
    if t.size and max(t.max(), p.max()) >= k:
        raise ValueError(f"{where}: label {int(max(t.max(), p.max()))} is out of range for num_classes={k}")
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def plot_confusion_matrix(y_true, y_pred=None, class_names=None, normalize=None, num_classes=None,
                          cmap: str = "Blues", title: str | None = None, path=None, dpi: int = 100):
    """Draw a confusion matrix (rows: true class, columns: predicted class), counts written in the cells.

    Args:
        y_true, y_pred: labels as for :func:`confusion_matrix`; or pass a ready (K, K) matrix as the only
            argument.
        class_names: K tick labels (default 0..K-1).
        normalize: None (counts), "true" (each row sums to 1: recall per class), "pred" (each column sums
            to 1: precision) or "all". Empty rows/columns stay 0 (no NaN).
        path: save a PNG there when given.

    Returns the matplotlib Figure. Example: ``viz.plot_confusion_matrix(y_test, model_pred, normalize="true")``.
    """
    where = "plot_confusion_matrix"
    if normalize not in NORMALIZE:
        raise ValueError(f"{where}: unknown normalize {normalize!r}; expected None, 'true', 'pred' or 'all'")
    if y_pred is None:
        cm = host(y_true)
        if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
            raise ValueError(f"{where}: with one argument it must be a square (K, K) matrix, got shape {cm.shape}")
    else:
        cm = confusion_matrix(y_true, y_pred, num_classes).astype(np.float64)
    k = cm.shape[0]
    if class_names is not None and len(class_names) != k:
        raise ValueError(f"{where}: {len(class_names)} class_names for {k} classes")
    shown = cm
    if normalize is not None:
        axis = {"true": 1, "pred": 0, "all": None}[normalize]
        total = cm.sum(axis=axis, keepdims=axis is not None)
        shown = np.divide(cm, total, out=np.zeros_like(cm), where=np.asarray(total) > 0)
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    side = min(max(3.0, 0.45 * k + 1.5), 14.0)
    fig = new_figure(side + 1.0, side, dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    vmax = float(shown.max()) if shown.size and shown.max() > 0 else 1.0
    image = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names), default=0) > 3 else 0, fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                v = shown[i, j]
                text = f"{v:.2f}" if normalize is not None else f"{int(round(v))}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if v > 0.6 * vmax else "black")
    ax.set_title(title or ("confusion matrix" + (f" (normalized over {normalize})" if normalize else "")))
    fig.tight_layout()
    return finish(fig, path)


def predict_classes(model, x, batch_size: int = 256) -> np.ndarray:
    """argmax of ``model(x)`` over batches, in eval mode without caching; returns NumPy int64 (N,)."""
    batch, _ = as_batch(model, x, "predict_classes")
    was_training = model.training
    model.eval()
    out = []
    try:
        with no_grad():
            for start in range(0, batch.shape[0], int(batch_size)):
                scores = model(batch[start:start + int(batch_size)])
                out.append(host(scores).reshape(scores.shape[0], -1).argmax(axis=1))
    finally:
        model.train(was_training)
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def plot_misclassified(model, x, y, max_images: int = 25, ncols: int | None = None, class_names=None,
                       y_pred=None, batch_size: int = 256, tile_size: float = 1.2, title=None, path=None,
                       dpi: int = 100):
    """A grid of the images ``model`` gets wrong, each titled "true t / pred p".

    Args:
        model: a classifier returning scores (N, K) (not used when ``y_pred`` is given).
        x: images (N, C, H, W) or (N, H, W). y: true labels (N,) or one-hot (N, K).
        max_images: draw the first this many mistakes. class_names: names instead of indices.
        y_pred: predicted labels, if already computed.
        path: save a PNG there when given.

    Returns the matplotlib Figure (saying "no misclassified images" when there are none).
    Example: ``viz.plot_misclassified(model, x_test[:1000], t_test[:1000], path="wrong.png")``.
    """
    where = "plot_misclassified"
    images = host(x)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"{where}: x must be a batch (N, C, H, W) or (N, H, W), got shape {tuple(images.shape)}")
    truth = _labels(y, where, "y")
    if truth.shape[0] != images.shape[0]:
        raise ValueError(f"{where}: x has {images.shape[0]} images but y has {truth.shape[0]} labels")
    pred = predict_classes(model, x, batch_size) if y_pred is None else _labels(y_pred, where, "y_pred")
    if pred.shape != truth.shape:
        raise ValueError(f"{where}: y_pred has {pred.shape[0]} labels for {truth.shape[0]} images")
    wrong = np.flatnonzero(pred != truth)[: int(max_images)]

    def name(c):
        return str(class_names[c]) if class_names is not None else str(c)

    if wrong.size == 0:
        fig = new_figure(4, 1.5, dpi=dpi)
        ax = fig.add_subplot(1, 1, 1)
        blank_axis(ax)
        ax.text(0.5, 0.5, f"no misclassified images among {truth.size}", ha="center", va="center")
        return finish(fig, path)
    rows, cols = grid_shape(wrong.size, ncols)
    fig = new_figure(cols * tile_size, rows * (tile_size + 0.3) + 0.4, dpi=dpi)
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= wrong.size:
            ax.set_axis_off()
            continue
        i = wrong[k]
        show_tile(ax, image_hw(images[i], where), f"true {name(truth[i])} / pred {name(pred[i])}", fontsize=7)
    n_wrong = int((pred != truth).sum())
    fig.suptitle(title or f"{n_wrong} of {truth.size} misclassified ({100.0 * n_wrong / truth.size:.1f}%)",
                 fontsize=9)
    return finish(fig, path)


__all__ = ["confusion_matrix", "plot_confusion_matrix", "plot_misclassified", "predict_classes"]
