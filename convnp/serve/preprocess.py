"""Turn an uploaded image or a canvas drawing into an MNIST-like (1, 1, 28, 28) float32 input.

MNIST digits are white on black, their ink fits a 20x20 box, and that box is centred in 28x28 by the
centre of mass. We do the same: grayscale -> invert if the background is light -> crop to the ink ->
scale the longer side to 20 px -> paste into 28x28 so the centre of mass lands at (14, 14), where the
training digits have theirs on average.
"""
from __future__ import annotations

import io

import numpy as np

MAX_BYTES = 5 * 1024 * 1024       # uploads larger than this are refused (413)
MAX_PIXELS = 4096 * 4096          # decoded images larger than this are refused (413)
INK_THRESHOLD = 0.1               # a pixel with intensity above this (0..1) counts as ink
MNIST_CENTER = 14.0               # mean centre of mass of the MNIST training digits (row and column)


class ImageError(ValueError):
    """A bad upload; ``status`` is the HTTP status code to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def decode_image(data: bytes) -> np.ndarray:
    """Bytes of a PNG/JPEG/... file -> float32 grayscale array in [0, 1], shape (H, W)."""
    if not data:
        raise ImageError("the upload is empty: send an image file in the field 'file'")
    if len(data) > MAX_BYTES:
        raise ImageError(f"the image is too large ({len(data):,} bytes; at most {MAX_BYTES:,})", 413)
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - pillow is in the serve extra
        raise ImageError("reading images needs Pillow: pip install convnp[serve]", 500) from e
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"the image is too large ({img.width}x{img.height} pixels; at most "
                                 f"{MAX_PIXELS:,} pixels)", 413)
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))  # transparent = black canvas
                img = Image.alpha_composite(background, rgba)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                arr = arr / max(float(arr.max()), 1.0)
            else:
                arr = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    except ImageError:
        raise
    except Exception as e:
        raise ImageError(f"the upload is not a readable image ({type(e).__name__}: {e})") from None
    return arr.astype(np.float32)


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """(H, W) grayscale in [0, 1] -> (1, 1, 28, 28) float32 like the training data. Raises ImageError if blank."""
    from PIL import Image
    g = np.asarray(gray, dtype=np.float32)
    if g.ndim != 2:
        raise ImageError(f"expected a 2-D grayscale image, got shape {g.shape}")
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    if np.median(border) > 0.5:  # dark ink on light paper: invert to MNIST's white-on-black
        g = 1.0 - g
    ink = g > INK_THRESHOLD
    if not ink.any():
        raise ImageError("the image is empty: draw a digit first", 422)
    rows, cols = np.where(ink.any(axis=1))[0], np.where(ink.any(axis=0))[0]
    crop = g[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize((new_w, new_h), Image.LANCZOS),
                       dtype=np.float32) / 255.0
    out = np.zeros((28, 28), np.float32)
    top, left = (28 - new_h) // 2, (28 - new_w) // 2
    out[top:top + new_h, left:left + new_w] = small
    total = out.sum()
    if total > 0:  # shift so that the centre of mass is at the centre, as MNIST does
        yy, xx = np.mgrid[:28, :28]
        dy = int(round(MNIST_CENTER - (yy * out).sum() / total))
        dx = int(round(MNIST_CENTER - (xx * out).sum() / total))
        dy = int(np.clip(dy, -top, 28 - top - new_h))
        dx = int(np.clip(dx, -left, 28 - left - new_w))
        out = np.roll(out, (dy, dx), axis=(0, 1))
    return np.clip(out, 0, 1).reshape(1, 1, 28, 28)


def preprocess_upload(data: bytes) -> np.ndarray:
    """Bytes -> (1, 1, 28, 28) float32, or ImageError with an HTTP status."""
    return to_mnist(decode_image(data))
