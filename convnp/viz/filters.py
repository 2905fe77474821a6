"""plot_filters: the learned kernels of a convolution layer as a grid of small images."""
from __future__ import annotations

import numpy as np

from ._mpl import conv_like, find_layer, finish, grid_shape, host, new_figure, scale01, show_tile

MODES = ("auto", "channels", "rgb", "mean")
SCALES = ("shared", "filter")


def filter_weights(source, layer=None, where: str = "plot_filters"):
    """The (O, I, kh, kw) weight to draw, as float64 NumPy, and a label for it.

    ``source`` is a conv layer, a model (``layer`` picks a conv layer by name, index or Module; default:
    the first layer with a 4-D weight, the one whose filters look like edges and blobs), or an array
    (O, I, kh, kw), (O, kh, kw) or (kh, kw).
    """
    from ..nn.module import Module
    if not isinstance(source, Module):
        w = host(source)
        if w.ndim == 2:
            w = w[None, None]
        elif w.ndim == 3:
            w = w[:, None]
        if w.ndim != 4:
            raise ValueError(f"{where}: expected a weight of shape (O, I, kh, kw), (O, kh, kw) or (kh, kw), got "
                             f"shape {tuple(np.shape(source))}")
        return w, "filters"
    if layer is not None:
        module, name = find_layer(source, layer, where), str(layer)
    elif conv_like(source) or (getattr(source, "weight", "absent") is None and not source._modules):
        module, name = source, type(source).__name__
    else:
        found = [(n, m) for n, m in source.named_modules() if conv_like(m)]
        if not found:
            unbuilt = [n for n, m in source.named_modules() if "Conv" in type(m).__name__]
            if unbuilt:
                raise ValueError(f"{where}: layer {unbuilt[0]!r} is not built yet; call the model on an input "
                                 "first so its weights exist")
            raise ValueError(f"{where}: {type(source).__name__} has no convolution layer (a layer with a 4-D "
                             "weight)")
        name, module = found[0]
    w = getattr(module, "weight", None)
    if w is None:
        raise ValueError(f"{where}: {type(module).__name__} {name!r} is not built yet; call the model on an input "
                         "first so its weights exist")
    data = host(getattr(w, "data", w))
    if data.ndim != 4:
        raise ValueError(f"{where}: {type(module).__name__} {name!r} has a {data.ndim}-D weight of shape "
                         f"{tuple(data.shape)}; plot_filters draws convolution weights (O, I, kh, kw)")
    return data, f"{name} ({type(module).__name__})"


def _tiles(w, mode, scale, lo, hi, max_filters, max_channels):
    """Scaled tiles: ``(flat, None)`` with (tile, title) pairs for a one-tile-per-filter grid, or
    ``(None, rows)`` with a row of per-channel tiles for each filter."""
    w = w[:max_filters]
    if mode == "rgb":
        rgb = np.moveaxis(w, 1, -1)  # (O, kh, kw, 3)
        return [(scale01(f, lo, hi) if scale == "shared" else scale01(f), f"{k}") for k, f in enumerate(rgb)], None
    if mode == "mean":
        w = w.mean(axis=1, keepdims=True)
    if w.shape[1] == 1:
        return [(scale01(f[0], lo, hi) if scale == "shared" else scale01(f[0]), f"{k}") for k, f in enumerate(w)], None
    w = w[:, :max_channels]
    rows = []
    for k, f in enumerate(w):
        fl, fh = (lo, hi) if scale == "shared" else (float(f.min()), float(f.max()))
        rows.append([(scale01(c, fl, fh), None) for c in f])
    return None, rows


def _draw_panel(fig, w, mode, scale, lo, hi, max_filters, max_channels, ncols, cmap, title):
    flat, rows = _tiles(w, mode, scale, lo, hi, max_filters, max_channels)
    if flat is not None:
        nr, nc = grid_shape(len(flat), ncols)
        axes = fig.subplots(nr, nc, squeeze=False)
        for k, ax in enumerate(axes.flat):
            if k < len(flat):
                tile, label = flat[k]
                show_tile(ax, tile, label if len(flat) <= 36 else None, cmap)
            else:
                ax.set_axis_off()
    else:
        axes = fig.subplots(len(rows), len(rows[0]), squeeze=False)
        for r, row in enumerate(rows):
            for c, (tile, _) in enumerate(row):
                show_tile(axes[r, c], tile, f"in {c}" if r == 0 else None, cmap)
                if c == 0:
                    axes[r, c].set_ylabel(f"f{r}", fontsize=7, rotation=0, labelpad=10, va="center")
    if title:
        fig.suptitle(title, fontsize=10)


def _layout(w, mode, max_filters, max_channels, ncols):
    """(rows, cols) of one panel's grid."""
    o, i = w.shape[:2]
    n = min(o, max_filters)
    if mode in ("rgb", "mean") or i == 1:
        return grid_shape(n, ncols)
    return n, min(i, max_channels)


def plot_filters(model_or_layer, layer=None, mode: str = "auto", scale: str = "shared", before=None,
                 max_filters: int = 64, max_channels: int = 8, ncols: int | None = None, cmap: str = "gray",
                 title: str | None = None, tile_size: float = 0.6, path=None, dpi: int = 100):
    """Draw a convolution layer's filters: one tile per output channel (and per input channel).

    Args:
        model_or_layer: a conv layer, a model (its first conv layer unless ``layer`` is given), or an
            array of weights (O, I, kh, kw).
        layer: which layer of a model: a dotted name ("conv1", "features.0"), an index into the model's
            chain of layers, or the Module.
        mode: "channels" (a row per filter, a column per input channel; one grid of tiles when I = 1),
            "rgb" (each 3-channel filter as one colour image, as in AlexNet's conv1), "mean" (the mean
            over input channels, one tile per filter) or "auto" ("rgb" when I = 3, else "channels").
        scale: "shared" (one grey scale for every tile, so strengths compare; before and after share it
            too) or "filter" (each filter stretched to its own min..max). Constant filters draw as mid-grey.
        before: another layer/model/array with the same filter shape, e.g. a copy taken before
            training; it is drawn on the left, ``model_or_layer`` on the right.
        max_filters, max_channels: draw at most this many filters / input channels.
        ncols: columns of the grid (default near-square).
        path: save a PNG there when given. dpi: pixels per inch.

    Shape: weights (O, I, kh, kw) (for Conv2DTranspose, whose weight is (in, out, kh, kw), a "filter"
    is what one input channel paints). Returns the matplotlib Figure.
    Example: ``viz.plot_filters(model, before=initial_model, path="filters.png")``.
    """
    where = "plot_filters"
    if mode not in MODES:
        raise ValueError(f"{where}: unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if scale not in SCALES:
        raise ValueError(f"{where}: unknown scale {scale!r}; expected 'shared' or 'filter'")
    w, label = filter_weights(model_or_layer, layer, where)
    panels = [(w, title or label)]
    if before is not None:
        wb, _ = filter_weights(before, layer, where)
        if wb.shape != w.shape:
            raise ValueError(f"{where}: before= has filters of shape {wb.shape}, but the layer has {w.shape}")
        panels = [(wb, "before"), (w, "after")]
    i = w.shape[1]
    if mode == "auto":
        mode = "rgb" if i == 3 else "channels"
    if mode == "rgb" and i != 3:
        raise ValueError(f"{where}: mode='rgb' needs 3 input channels, the filters have {i} (shape {w.shape})")
    drawn = [p[0][:max_filters] for p in panels]
    if mode == "mean":
        drawn = [d.mean(axis=1, keepdims=True) for d in drawn]
    elif mode == "channels":
        drawn = [d[:, :max_channels] for d in drawn]
    lo = min(float(d.min()) for d in drawn)
    hi = max(float(d.max()) for d in drawn)
    rows, cols = _layout(w, mode, max_filters, max_channels, ncols)
    width, height = cols * tile_size + 0.4, rows * tile_size + 0.7
    fig = new_figure(width * len(panels) + 0.2 * (len(panels) - 1), height, dpi=dpi)
    subfigs = fig.subfigures(1, len(panels), squeeze=False)[0] if len(panels) > 1 else [fig]
    for sub, (weights, panel_title) in zip(subfigs, panels):
        _draw_panel(sub, weights, mode, scale, lo, hi, max_filters, max_channels, ncols, cmap, panel_title)
    if before is not None and title:
        fig.suptitle(title, fontsize=11)
    return finish(fig, path)
