"""plot_feature_maps: what chosen layers output for one input image."""
from __future__ import annotations

import math

from ..backend import no_grad
from ._mpl import (as_batch, conv_like, find_layer, finish, host, image_hw, layer_chain, new_figure, scale01,
                   show_tile)

SCALES = ("layer", "map")


def feature_maps(model, image, layers=None):
    """Run ``model`` on one image (eval mode, no caching) and return ``[(name, activation), ...]``.

    Args:
        model: any Module.
        image: (H, W), (C, H, W) or (1, C, H, W).
        layers: names, chain indices or Modules (see ``plot_feature_maps``); default: every layer with a
            4-D weight (the conv layers; their output includes a fused activation).

    Shape: each activation is a NumPy array (C, H', W') for 4-D outputs or (features,) for 2-D ones.
    """
    from ..nn.summary import capture_activations
    where = "plot_feature_maps"
    x, _ = as_batch(model, image, where)
    if x.shape[0] != 1:
        raise ValueError(f"{where}: expected one image, got a batch of {x.shape[0]} (shape {tuple(x.shape)})")
    names = {id(m): n for n, m in model.named_modules()}
    if layers is None:
        chosen = [m for _, m in model.named_modules() if conv_like(m)]
        if not chosen:  # no conv layer: every step of the chain with a 4-D output is drawn below
            chosen = [m for _, m in layer_chain(model)]
    else:
        if isinstance(layers, (str, int)) or hasattr(layers, "forward"):
            layers = [layers]
        chosen = [find_layer(model, spec, where) for spec in layers]
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            captured, _ = capture_activations(model, x, leaves_only=False)
    finally:
        model.train(was_training)
    first = {}
    for _, m, out in captured:
        first.setdefault(id(m), out)
    result = []
    for m in chosen:
        if id(m) not in first:
            if layers is None:
                continue
            raise ValueError(f"{where}: layer {names.get(id(m), type(m).__name__)!r} did not run in the forward pass")
        out = host(first[id(m)])[0]
        if layers is None and out.ndim != 3:
            continue
        result.append((f"{names.get(id(m), '')} ({type(m).__name__})", out))
    if not result:
        raise ValueError(f"{where}: {type(model).__name__} has no layer with a 4-D output to draw; pass layers=")
    return result


def plot_feature_maps(model, image, layers=None, max_maps: int = 16, ncols: int = 8, scale: str = "layer",
                      cmap: str = "viridis", show_input: bool = True, tile_size: float = 0.9, title=None,
                      path=None, dpi: int = 100):
    """Draw the activations of chosen layers for one input: a block of channel maps per layer.

    Args:
        model: a Module (Sequential, zoo model, ...).
        image: one input, (H, W), (C, H, W) or (1, C, H, W), converted to the model's dtype and device.
        layers: a name ("conv1", "features.3"), an index into the model's chain of layers (negative
            from the end), a Module, or a list of these. Default: every conv layer.
        max_maps: at most this many channels per layer. ncols: maps per row.
        scale: "layer" (one colour scale per layer, so dead maps look dark) or "map" (each map stretched
            to its own range). A zero-variance map draws as one flat colour, never NaN.
        show_input: draw the input image first.
        path: save a PNG there when given.

    Shape: a 4-D output (1, C, H', W') gives C maps of H' x W'; a 2-D output (1, F) is drawn as one strip.
    Returns the matplotlib Figure.
    Example: ``viz.plot_feature_maps(model, x_test[0], layers=["0", "2"], path="features.png")``.
    """
    if scale not in SCALES:
        raise ValueError(f"plot_feature_maps: unknown scale {scale!r}; expected 'layer' or 'map'")
    if int(max_maps) < 1 or int(ncols) < 1:
        raise ValueError(f"plot_feature_maps: max_maps and ncols must be positive, got {max_maps} and {ncols}")
    maps = feature_maps(model, image, layers)
    blocks = []
    if show_input:
        blocks.append(("input", [image_hw(image, "plot_feature_maps")], None))
    for name, act in maps:
        if act.ndim == 1:  # a vector (Dense output): one strip
            blocks.append((name, [scale01(act[None, :])], None))
            continue
        act = act.reshape((-1,) + act.shape[-2:])[:max_maps]  # (C, H', W')
        lo_hi = (float(act.min()), float(act.max())) if scale == "layer" else None
        tiles = [scale01(a, *lo_hi) if lo_hi else scale01(a) for a in act]
        blocks.append((name, tiles, cmap))
    cols = max(min(ncols, max(len(t) for _, t, _ in blocks)), 1)
    rows = sum(math.ceil(len(t) / cols) for _, t, _ in blocks)
    fig = new_figure(cols * tile_size + 0.6, rows * (tile_size + 0.25) + 0.5, dpi=dpi)
    grid = fig.add_gridspec(rows, cols, hspace=0.5, wspace=0.1)
    r = 0
    for name, tiles, colormap in blocks:
        for k, tile in enumerate(tiles):
            strip = tile.ndim == 2 and tile.shape[0] == 1  # a vector output: one strip across the row
            ax = fig.add_subplot(grid[r, :] if strip else grid[r + k // cols, k % cols])
            show_tile(ax, tile, name if k == 0 else None, colormap or "gray", fontsize=7)
            if strip:
                ax.set_aspect("auto")
        r += math.ceil(len(tiles) / cols)
    if title:
        fig.suptitle(title, fontsize=10)
    return finish(fig, path)


__all__ = ["feature_maps", "plot_feature_maps"]
