"""MNIST test digits re-drawn the ways people photograph or save them, as image files (for the pipeline tests).

Each digit (28x28, white on black) is drawn in one of five styles, chosen by its index modulo 5:

0. ``corner``: small (1.5x) in the top-left corner of a large 320x240 white page, black ink.
1. ``paper``: 3x, black on white, in a 120x120 page, saved as JPEG (quality 90).
2. ``transparent``: 2x, black ink on a fully transparent background (RGBA; the hidden colour is black).
3. ``wide``: 4x, white on black, off centre in a non-square 200x120 canvas.
4. ``noisy``: 2x, dark ink on grey paper (0.9) with Gaussian noise (sigma 0.04), 90x70 page.
"""
import io

import numpy as np

STYLES = ("corner", "paper", "transparent", "wide", "noisy")


def _scaled(digit, factor):
    from PIL import Image
    size = int(round(28 * factor))
    img = Image.fromarray(np.asarray(digit, np.float32), mode="F").resize((size, size), Image.BILINEAR)
    return np.clip(np.asarray(img, np.float32), 0, 1)


def _save(array01, fmt, mode):
    from PIL import Image
    img = Image.fromarray((np.clip(array01, 0, 1) * 255).round().astype(np.uint8), mode=mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def redraw(digit, index, rng):
    """(file bytes, extension, style name) of MNIST ``digit`` (28, 28) in [0, 1] drawn in style ``index % 5``."""
    style = STYLES[index % 5]
    if style == "corner":
        d = _scaled(digit, 1.5)
        page = np.ones((240, 320))
        page[8:8 + d.shape[0], 8:8 + d.shape[1]] = 1 - d
        return _save(page, "PNG", "L"), ".png", style
    if style == "paper":
        d = _scaled(digit, 3)
        page = np.ones((120, 120))
        page[18:18 + d.shape[0], 18:18 + d.shape[1]] = 1 - d
        return _save(page, "JPEG", "L"), ".jpg", style
    if style == "transparent":
        d = _scaled(digit, 2)
        rgba = np.zeros((80, 80, 4))
        rgba[12:12 + d.shape[0], 12:12 + d.shape[1], 3] = d  # black ink, alpha = ink
        return _save(rgba, "PNG", "RGBA"), ".png", style
    if style == "wide":
        d = _scaled(digit, 4)
        page = np.zeros((120, 200))
        page[4:4 + d.shape[0], 70:70 + d.shape[1]] = d
        return _save(page, "PNG", "L"), ".png", style
    d = _scaled(digit, 2)
    page = np.full((70, 90), 0.9)
    page[7:7 + d.shape[0], 17:17 + d.shape[1]] -= 0.8 * d
    page += rng.normal(0, 0.04, page.shape)
    return _save(page, "PNG", "L"), ".png", style


def write_pages(folder, digits, labels, seed=0):
    """Write every digit as ``{index:05d}_{label}_{style}{ext}`` into ``folder``; returns the paths in order."""
    import os
    rng = np.random.default_rng(seed)
    paths = []
    for i, (digit, label) in enumerate(zip(digits, labels)):
        data, ext, style = redraw(digit, i, rng)
        path = os.path.join(folder, f"{i:05d}_{int(label)}_{style}{ext}")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    return paths
