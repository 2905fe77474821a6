"""Shared plotting helpers: lazy matplotlib, headless figures, NaN-free scaling, grids, layer lookup.

Figures are ``matplotlib.figure.Figure`` objects made without pyplot, so nothing is shown, no GUI
backend is needed and no global figure list keeps them alive; ``savefig`` renders them with Agg.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..backend import to_numpy


def require_matplotlib():
    """Import matplotlib (the ``plots`` extra) or explain how to install it."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - matplotlib is in the test extra
        raise ImportError("convnp.viz needs matplotlib: pip install \"convnp[plots]\"") from e
    return Figure


def new_figure(width: float, height: float, dpi: int = 100):
    """A headless Figure of ``width`` x ``height`` inches (no pyplot, no display)."""
    figure_cls = require_matplotlib()
    return figure_cls(figsize=(max(float(width), 1.0), max(float(height), 1.0)), dpi=dpi)


def finish(fig, path=None, dpi=None):
    """Save ``fig`` to ``path`` (PNG by the extension; folders are created) when given; return ``fig``."""
    if path is not None:
        path = os.fspath(path)
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(path, dpi=dpi or fig.dpi, facecolor="white")
    return fig


def host(a) -> np.ndarray:
    """A float64 NumPy copy of an array (CuPy -> NumPy), for drawing."""
    return np.asarray(to_numpy(a), dtype=np.float64)


def scale01(a, lo=None, hi=None, symmetric: bool = False) -> np.ndarray:
    """Map ``a`` linearly to [0, 1] using [lo, hi] (default: its own min and max).

    With ``symmetric`` the range is [-m, m], m = max|a|, so that zero maps to 0.5 (signed filters).
    A constant array (hi == lo) maps to 0.5 everywhere instead of dividing by zero; NaN/inf become 0.5.
    """
    a = host(a)
    finite = a[np.isfinite(a)]
    lo = (float(finite.min()) if finite.size else 0.0) if lo is None else float(lo)
    hi = (float(finite.max()) if finite.size else 0.0) if hi is None else float(hi)
    if symmetric:
        m = max(abs(lo), abs(hi))
        lo, hi = -m, m
    span = hi - lo
    if not span > 0:
        out = np.full(a.shape, 0.5)
    else:
        out = np.clip((a - lo) / span, 0.0, 1.0)
    out[~np.isfinite(a)] = 0.5
    return out


def grid_shape(n: int, ncols: int | None = None):
    """(rows, cols) for n tiles: ``ncols`` columns, or a near-square grid."""
    n = max(int(n), 1)
    cols = int(ncols) if ncols else int(math.ceil(math.sqrt(n)))
    cols = max(1, min(cols, n))
    return int(math.ceil(n / cols)), cols


def blank_axis(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def show_tile(ax, tile, title=None, cmap="gray", fontsize=7):
    """Draw a [0, 1] grey (H, W) or colour (H, W, 3) tile without ticks; pixels stay sharp."""
    if tile.ndim == 2:
        ax.imshow(tile, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(np.clip(tile, 0.0, 1.0), interpolation="nearest")
    blank_axis(ax)
    if title is not None:
        ax.set_title(str(title), fontsize=fontsize, pad=2)


def image_hw(image, where: str) -> np.ndarray:
    """One image as a drawable array: (H, W) grey or (H, W, 3) colour, from (H, W), (C, H, W) or (1, C, H, W)."""
    a = host(image)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[0] == 3:
        return scale01(np.moveaxis(a, 0, -1))
    if a.ndim == 3 and a.shape[-1] in (1, 3) and a.shape[0] not in (1, 3):
        return scale01(a[..., 0] if a.shape[-1] == 1 else a)
    if a.ndim != 2:
        raise ValueError(f"{where}: expected one image (H, W), (C, H, W) or (1, C, H, W) with C = 1 or 3, "
                         f"got shape {tuple(np.shape(image))}")
    return scale01(a)


def as_batch(model, x, where: str):
    """Input for ``model``: a single (C, H, W) / (H, W) image or an (N, ...) batch, in the model's dtype
    and on its device. Returns (batch, was_single)."""
    from ..backend import array_module_for, get_array_module
    params = model.parameters() if hasattr(model, "parameters") else []
    dtype = params[0].dtype if params else np.float32
    xp = array_module_for(model.device) if hasattr(model, "device") else get_array_module(x)
    arr = x if get_array_module(x) is xp else xp.asarray(to_numpy(x))
    single = False
    if arr.ndim == 2:
        arr, single = arr[None, None], True
    elif arr.ndim == 3:
        arr, single = arr[None], True
    elif arr.ndim != 4:
        raise ValueError(f"{where}: expected an image (H, W) or (C, H, W), or a batch (N, C, H, W); got shape "
                         f"{tuple(arr.shape)}")
    return arr.astype(dtype, copy=False), single


def find_layer(model, layer, where: str):
    """A sub-module of ``model`` by dotted name (``"features.0"``), by Module, or by index into
    :func:`layer_chain` (negative counts from the end)."""
    from ..nn.module import Module
    if isinstance(layer, Module):
        for _, m in model.named_modules():
            if m is layer:
                return layer
        raise ValueError(f"{where}: the given {type(layer).__name__} is not a layer of this "
                         f"{type(model).__name__}")
    if isinstance(layer, str):
        named = dict(model.named_modules())
        if layer in named:
            return named[layer]
        names = [n for n in named if n]
        raise ValueError(f"{where}: no layer named {layer!r}; layers: {', '.join(names[:40])}")
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        chain = layer_chain(model)
        if not -len(chain) <= layer < len(chain):
            raise ValueError(f"{where}: layer index {layer} is out of range for a model with {len(chain)} layers")
        return chain[layer][1]
    raise TypeError(f"{where}: a layer is a name, an index or a Module, got {type(layer).__name__}")


def layer_chain(model):
    """The model as a list of ``(name, module)`` steps applied in order: nested Sequentials are opened,
    other modules (layers, Residual blocks, ...) are single steps. A non-Sequential model is one step."""
    from ..nn.containers import Sequential

    def walk(module, prefix):
        if isinstance(module, Sequential):
            out = []
            for name, child in module.named_children():
                out += walk(child, f"{prefix}.{name}" if prefix else name)
            return out
        return [(prefix, module)]

    return walk(model, "")


def conv_like(module) -> bool:
    """True for layers with a 4-D weight (Conv2D, DepthwiseConv2D, Conv2DTranspose, ...)."""
    w = getattr(module, "weight", None)
    return w is not None and getattr(w, "ndim", 0) == 4
