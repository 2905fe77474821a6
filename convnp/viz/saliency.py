"""Why did the model predict that? Input-gradient saliency and Grad-CAM, through the explicit backward.

* ``saliency``: |d score_c / d input| (Simonyan, Vedaldi, Zisserman 2014), one model.backward call.
* ``grad_cam``: ReLU(sum_k alpha_k A_k) with alpha_k = mean over (h, w) of d score_c / d A_k, where A is the
  output of a conv layer (Selvaraju et al. 2017). The model is run step by step (its chain of layers)
  so that A is recorded, then the backward goes from the one-hot class score down to that layer only.

Both leave the model as they found it: mode (train/eval), parameter gradients, ``compute_input_grad``.
"""
from __future__ import annotations

import contextlib

import numpy as np

from ..backend import get_array_module, to_numpy
from ._mpl import (as_batch, conv_like, find_layer, finish, host, image_hw, layer_chain, new_figure, scale01,
                   show_tile)

CHANNEL_REDUCTIONS = ("max", "sum", "mean", None)


@contextlib.contextmanager
def _probe(model):
    """Eval mode, input gradients switched on, parameter gradients saved and restored afterwards."""
    was_training = model.training
    grads = [(p, p.grad) for p in model.parameters()]
    flags = [(m, m.compute_input_grad) for m in model.modules() if hasattr(m, "compute_input_grad")]
    model.eval()
    for m, _ in flags:
        m.compute_input_grad = True
    for p, _ in grads:
        p.grad = None
    try:
        yield
    finally:
        for p, g in grads:
            p.grad = g
        for m, flag in flags:
            m.compute_input_grad = flag
        model.train(was_training)


def _one_hot_scores(scores, class_index, where):
    """The chosen class per sample and the upstream gradient d(score_c)/d(scores) (a one-hot)."""
    if scores.ndim != 2:
        raise ValueError(f"{where}: the model must output class scores (N, K), got shape {tuple(scores.shape)}")
    n, k = scores.shape
    xp = get_array_module(scores)
    if class_index is None:
        classes = np.asarray(to_numpy(scores.argmax(axis=1)), np.int64)
    else:
        classes = np.broadcast_to(np.asarray(class_index, np.int64), (n,)).copy() if np.ndim(class_index) == 0 \
            else np.asarray(class_index, np.int64)
        if classes.shape != (n,):
            raise ValueError(f"{where}: class_index must be an int or {n} ints, got shape {classes.shape}")
        if np.any(classes < 0) or np.any(classes >= k):
            raise ValueError(f"{where}: class_index {classes.tolist()} is out of range for {k} classes")
    dy = np.zeros((n, k), dtype=np.dtype(str(scores.dtype)))
    dy[np.arange(n), classes] = 1.0
    return classes, xp.asarray(dy)


def saliency(model, x, class_index=None, channels="max", return_class: bool = False):
    """Gradient saliency: how much each input pixel moves the chosen class score, |d score_c / d x|.

    Args:
        model: a classifier with explicit backward, outputting scores (N, K) (logits; the score before
            any softmax is the usual choice).
        x: one image (H, W) / (C, H, W) or a batch (N, C, H, W).
        class_index: the class whose score is explained: None (the predicted class), an int, or N ints.
        channels: reduce |grad| over input channels with "max" (Simonyan et al.), "sum" or "mean";
            None keeps them.
        return_class: also return the explained classes (N,).

    Shape: (N, C, H, W) input -> (N, H, W) (``channels=None``: (N, C, H, W)); a single image gives
    (H, W) (or (C, H, W)). Same array module as the model.
    Example: ``heat = viz.saliency(model, x_test[0])``.
    """
    where = "saliency"
    if channels not in CHANNEL_REDUCTIONS:
        raise ValueError(f"{where}: unknown channels {channels!r}; expected 'max', 'sum', 'mean' or None")
    batch, single = as_batch(model, x, where)
    with _probe(model):
        scores = model(batch)
        classes, dy = _one_hot_scores(scores, class_index, where)
        dx = model.backward(dy)
    if dx is None or tuple(dx.shape) != tuple(batch.shape):
        raise RuntimeError(f"{where}: {type(model).__name__}.backward returned "
                           f"{None if dx is None else tuple(dx.shape)} instead of an input gradient of shape "
                           f"{tuple(batch.shape)}")
    heat = abs(dx)
    if channels is not None:
        heat = getattr(heat, channels)(axis=1)  # (N, H, W)
    heat = heat[0] if single else heat
    return (heat, classes) if return_class else heat


def _default_target(model, chain, where):
    convs = [i for i, (_, m) in enumerate(chain) if any(conv_like(s) for s in m.modules())]  # m itself included
    if not convs:
        raise ValueError(f"{where}: {type(model).__name__} has no convolution layer in its chain of layers; "
                         "pass layer=")
    return convs[-1]


def _resize_bilinear(maps, size):
    """(N, h, w) -> (N, H, W), bilinear with half-pixel centres (like PyTorch align_corners=False)."""
    xp = get_array_module(maps)
    n, h, w = maps.shape
    out_h, out_w = size

    def coords(n_in, n_out):
        c = (xp.arange(n_out, dtype=maps.dtype) + 0.5) * (n_in / n_out) - 0.5
        c = xp.clip(c, 0, n_in - 1)
        lo = xp.floor(c).astype(np.int64)
        hi = xp.minimum(lo + 1, n_in - 1)
        return lo, hi, (c - lo).astype(maps.dtype)

    y0, y1, fy = coords(h, out_h)
    x0, x1, fx = coords(w, out_w)
    top = maps[:, y0][:, :, x0] * (1 - fx) + maps[:, y0][:, :, x1] * fx  # (N, H, W)
    bottom = maps[:, y1][:, :, x0] * (1 - fx) + maps[:, y1][:, :, x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def grad_cam(model, x, layer=None, class_index=None, upsample: bool = True, return_class: bool = False):
    """Grad-CAM heat map of the chosen class on a conv layer's output (default: the last conv layer).

    Args:
        model: a Sequential-style model (nested Sequentials are opened; Residual blocks and other layers
            are single steps of the chain); its output must be class scores (N, K).
        x: one image (H, W) / (C, H, W) or a batch (N, C, H, W).
        layer: the conv layer (or block) to explain: a dotted name, an index into the chain of steps, or a
            Module; it must be a step of the chain. Default: the last step that is or contains a conv layer.
        class_index: None (the predicted class), an int, or N ints.
        upsample: resize the map to the input's (H, W) bilinearly; False keeps the layer's (h, w).
        return_class: also return the explained classes (N,).

    Shape: (N, H, W) for a batch, (H, W) for one image; values in [0, 1] (each map divided by its
    maximum; an all-zero map stays zero, never NaN).
    Example: ``cam = viz.grad_cam(model, x_test[0], layer="conv2")``.
    """
    where = "grad_cam"
    chain = layer_chain(model)
    if layer is None:
        target = _default_target(model, chain, where)
    else:
        module = find_layer(model, layer, where)
        steps = [i for i, (_, m) in enumerate(chain) if m is module]
        if not steps:
            raise ValueError(f"{where}: layer {layer!r} is inside a block; choose a step of the model's chain: "
                             f"{', '.join(n for n, _ in chain)}")
        target = steps[0]
    batch, single = as_batch(model, x, where)
    with _probe(model):
        a = batch
        for _, step in chain[: target + 1]:
            a = step(a)
        activation = a  # (N, K, h, w)
        for _, step in chain[target + 1:]:
            a = step(a)
        classes, dy = _one_hot_scores(a, class_index, where)
        for _, step in reversed(chain[target + 1:]):
            dy = step.backward(dy)
    if activation.ndim != 4:
        raise ValueError(f"{where}: layer {chain[target][0]!r} outputs shape {tuple(activation.shape)}; Grad-CAM "
                         "needs a 4-D (N, C, h, w) feature map")
    weights = dy.mean(axis=(2, 3), keepdims=True)  # (N, K, 1, 1): alpha_k
    cam = (weights * activation).sum(axis=1)  # (N, h, w)
    cam = cam * (cam > 0)
    if upsample:
        cam = _resize_bilinear(cam, batch.shape[-2:])
    peak = cam.reshape(cam.shape[0], -1).max(axis=1).reshape(-1, 1, 1)
    xp = get_array_module(cam)
    cam = xp.where(peak > 0, cam / xp.where(peak > 0, peak, 1), 0).astype(batch.dtype)
    cam = cam[0] if single else cam
    return (cam, classes) if return_class else cam


def plot_saliency(model, image, class_index=None, layer=None, class_names=None, method: str = "both",
                  cmap: str = "jet", title=None, path=None, dpi: int = 100):
    """Draw one image next to its gradient saliency and (for conv models) its Grad-CAM overlay.

    Args:
        model, image, class_index, layer: as in :func:`saliency` and :func:`grad_cam` (one image).
        class_names: names for the class in the titles.
        method: "both", "saliency" or "grad_cam" ("both" falls back to saliency alone when the model has
            no conv layer in its chain).
        title: text put before "class c" in the figure title.
        path: save a PNG there when given.

    Returns the matplotlib Figure.
    """
    where = "plot_saliency"
    if method not in ("both", "saliency", "grad_cam"):
        raise ValueError(f"{where}: unknown method {method!r}; expected 'both', 'saliency' or 'grad_cam'")
    batch, _ = as_batch(model, image, where)
    if batch.shape[0] != 1:
        raise ValueError(f"{where}: expected one image, got a batch of {batch.shape[0]}")
    panels = [("input", image_hw(batch[0], where), None)]
    label = None
    if method in ("both", "saliency"):
        heat, classes = saliency(model, batch, class_index, return_class=True)
        label = int(classes[0])
        panels.append(("saliency |d score / d x|", scale01(host(heat[0])), "hot"))
    if method == "grad_cam" or (method == "both" and any(conv_like(m) for m in model.modules())):
        cam, classes = grad_cam(model, batch, layer, class_index, return_class=True)
        label = int(classes[0])
        panels.append(("Grad-CAM", host(cam[0]), cmap))
    fig = new_figure(2.6 * len(panels), 2.9, dpi=dpi)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, tile, colormap) in zip(axes, panels):
        if name == "Grad-CAM":
            show_tile(ax, panels[0][1], name, fontsize=9)  # the input, then the heat map over it
            ax.imshow(tile, cmap=colormap, alpha=0.5, vmin=0.0, vmax=1.0, interpolation="bilinear")
        else:
            show_tile(ax, tile, name, colormap or "gray", fontsize=9)
    shown = class_names[label] if class_names is not None and label is not None else label
    fig.suptitle(f"{title}: class {shown}" if title else f"class {shown}", fontsize=10)
    return finish(fig, path)


__all__ = ["saliency", "grad_cam", "plot_saliency"]
