"""plot_kernel_response: classic and learned kernels applied to one image, side by side."""
from __future__ import annotations

import math

import numpy as np

from .. import signal
from ._mpl import finish, host, new_figure, scale01, show_tile

DEFAULT_KERNELS = ("sobel_x", "sobel_y", "laplacian", "gaussian")


def _grey_or_channels(image, where):
    """(H, W) grey image, or (C, H, W) kept as channels (for learned multi-channel filters)."""
    a = host(image)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[-1] in (3, 4) and a.shape[0] not in (3, 4):  # (H, W, 3) from an image file
        a = np.moveaxis(a[..., :3], -1, 0)
    if a.ndim not in (2, 3):
        raise ValueError(f"{where}: expected an image (H, W), (C, H, W) or (1, C, H, W), got shape "
                         f"{tuple(np.shape(image))}")
    return a


def kernel_set(kernels=None, where: str = "plot_kernel_response"):
    """Normalize ``kernels`` to a list of ``(name, weight)`` with weight (kh, kw) or (I, kh, kw).

    Accepts None (Sobel x/y, Laplacian, Gaussian), names from ``signal.kernels`` ("sobel_x", "box", ...),
    a dict name -> 2-D array, a list of 2-D arrays or names, an array (K, kh, kw) or (O, I, kh, kw), or a
    conv layer / model (its first conv layer's learned filters).
    """
    from ..nn.module import Module
    from .filters import filter_weights
    if kernels is None:
        kernels = list(DEFAULT_KERNELS)
    if isinstance(kernels, str):
        kernels = [kernels]
    if isinstance(kernels, Module):
        w, _ = filter_weights(kernels, None, where)
        return [(f"learned {o}", w[o, 0] if w.shape[1] == 1 else w[o]) for o in range(w.shape[0])]
    if isinstance(kernels, dict):
        items = list(kernels.items())
    elif isinstance(kernels, (list, tuple)):
        items = [(k if isinstance(k, str) else f"k{i}", k) for i, k in enumerate(kernels)]
    else:
        w = host(kernels)
        if w.ndim == 2:
            items = [("kernel", w)]
        elif w.ndim == 3:
            items = [(f"k{i}", k) for i, k in enumerate(w)]
        elif w.ndim == 4:
            items = [(f"filter {o}", w[o, 0] if w.shape[1] == 1 else w[o]) for o in range(w.shape[0])]
        else:
            raise ValueError(f"{where}: kernels as an array must be (kh, kw), (K, kh, kw) or (O, I, kh, kw), "
                             f"got shape {w.shape}")
    named = signal.kernels.named()
    out = []
    for name, k in items:
        if isinstance(k, str):
            if k not in named:
                raise ValueError(f"{where}: unknown kernel {k!r}; named kernels: {', '.join(named)}")
            k = named[k]
        k = host(k)
        if k.ndim not in (2, 3):
            raise ValueError(f"{where}: kernel {name!r} must be 2-D (kh, kw) or 3-D (I, kh, kw), got shape {k.shape}")
        out.append((str(name), k))
    if not out:
        raise ValueError(f"{where}: no kernels given")
    return out


def kernel_response(image, kernel, mode: str = "same", boundary: str = "symm", where="kernel_response"):
    """correlate2d of the image with one kernel; a 3-D kernel (I, kh, kw) on a (I, H, W) image sums the
    channel responses, exactly what a Conv2D filter computes (without the bias)."""
    if kernel.ndim == 2:
        grey = image if image.ndim == 2 else image.mean(axis=0)
        return signal.correlate2d(grey, kernel, mode=mode, boundary=boundary)
    if image.ndim != 3 or image.shape[0] != kernel.shape[0]:
        raise ValueError(f"{where}: a {kernel.shape[0]}-channel filter needs a {kernel.shape[0]}-channel image "
                         f"(C, H, W), got shape {image.shape}")
    return sum(signal.correlate2d(c, k, mode=mode, boundary=boundary) for c, k in zip(image, kernel))


def plot_kernel_response(image, kernels=None, mode: str = "same", boundary: str = "symm", ncols: int = 6,
                         max_kernels: int = 24, cmap: str = "gray", tile_size: float = 1.6, title=None,
                         path=None, dpi: int = 100):
    """Apply kernels (Sobel, Laplacian, Gaussian, learned filters, ...) to one image and draw each kernel
    above its response.

    Args:
        image: (H, W), (C, H, W) (colour images are averaged to grey for 2-D kernels) or (1, C, H, W).
        kernels: see :func:`kernel_set`; default Sobel x, Sobel y, Laplacian and a 5x5 Gaussian. A conv
            layer or model gives its learned first-layer filters.
        mode, boundary: passed to :func:`convnp.signal.correlate2d` (correlation, as a CNN layer computes).
        ncols: kernel/response pairs per row. max_kernels: draw at most this many.
        path: save a PNG there when given.

    Shape: each response is (H, W) in "same" mode. Each tile is stretched to its own range (a constant
    response draws as mid-grey, not NaN). Returns the matplotlib Figure.
    Example: ``viz.plot_kernel_response(digit, ["sobel_x", "sobel_y", "laplacian"], path="edges.png")``.
    """
    where = "plot_kernel_response"
    img = _grey_or_channels(image, where)
    items = kernel_set(kernels, where)[: int(max_kernels)]
    responses = [kernel_response(img, k, mode, boundary, where) for _, k in items]
    cols = max(1, min(int(ncols), len(items)))
    block_rows = math.ceil(len(items) / cols)
    fig = new_figure((cols + 1) * tile_size, block_rows * 2 * (tile_size + 0.2) + 0.3, dpi=dpi)
    grid = fig.add_gridspec(2 * block_rows, cols + 1, hspace=0.35, wspace=0.15)
    shown = img if img.ndim == 2 else (np.moveaxis(img, 0, -1) if img.shape[0] == 3 else img.mean(axis=0))
    show_tile(fig.add_subplot(grid[0:2, 0]), scale01(shown), "image", cmap, fontsize=8)
    for idx, ((name, k), response) in enumerate(zip(items, responses)):
        r, c = 2 * (idx // cols), 1 + idx % cols
        k_tile = k if k.ndim == 2 else (np.moveaxis(k, 0, -1) if k.shape[0] == 3 else k.mean(axis=0))
        show_tile(fig.add_subplot(grid[r, c]), scale01(k_tile), name, cmap, fontsize=7)
        show_tile(fig.add_subplot(grid[r + 1, c]), scale01(response), None, cmap)
    if title:
        fig.suptitle(title, fontsize=10)
    return finish(fig, path)


__all__ = ["plot_kernel_response", "kernel_response", "kernel_set"]
