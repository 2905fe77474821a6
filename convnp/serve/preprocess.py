"""Turn an uploaded image or a canvas drawing into an MNIST-like (1, 1, 28, 28) float32 input.

The size limits of uploads live here; the picture itself goes through the one digit pipeline of
:mod:`convnp.data.images` (the one ``convnp predict`` uses too): alpha flattened, polarity detected, cropped
to the ink, scaled into a 20x20 box, centre of mass at (14, 14) of 28x28.
"""
from __future__ import annotations

import io

import numpy as np

from ..data.images import NoInkError, digit_to_mnist, pil_to_array

MAX_BYTES = 5 * 1024 * 1024       # uploads larger than this are refused (413)
MAX_PIXELS = 4096 * 4096          # decoded images larger than this are refused (413)


class ImageError(ValueError):
    """A bad upload; ``status`` is the HTTP status code to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def decode_image(data: bytes) -> np.ndarray:
    """Bytes of a PNG/JPEG/... file -> float32 array in [0, 1]: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA."""
    if not data:
        raise ImageError("the upload is empty: send an image file in the field 'file'")
    if len(data) > MAX_BYTES:
        raise ImageError(f"the image is too large ({len(data):,} bytes; at most {MAX_BYTES:,})", 413)
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - pillow is in the serve extra
        raise ImageError('reading images needs Pillow: pip install "convnp[serve]"', 500) from e
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"the image is too large ({img.width}x{img.height} pixels; at most "
                                 f"{MAX_PIXELS:,} pixels)", 413)
            img.load()
            arr = pil_to_array(img)
    except ImageError:
        raise
    except Exception as e:
        raise ImageError("the upload is not a readable image: send a PNG, JPEG, GIF, BMP, TIFF or WebP file") from None
    return arr


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """(H, W) grey or (H, W, C) grey+alpha/RGB/RGBA in [0, 1] -> (1, 1, 28, 28) float32 like the training data.

    Raises ImageError (422) when no ink is found (blank, uniform or NaN picture).
    """
    try:
        return digit_to_mnist(gray)[None]
    except NoInkError as e:
        raise ImageError(f"{e}", 422) from None
    except ValueError as e:
        raise ImageError(str(e)) from None


def preprocess_upload(data: bytes) -> np.ndarray:
    """Bytes -> (1, 1, 28, 28) float32, or ImageError with an HTTP status."""
    return to_mnist(decode_image(data))
