"""One image pipeline for digit models: any picture of a digit -> a (1, 28, 28) float32 input like MNIST.

``convnp predict``, ``convnp evaluate`` on folders, ``convnp viz``, ``convnp classify`` with a digit model and the
playground (``convnp.serve``) all call :func:`digit_to_mnist`, so one picture gets one answer everywhere.

MNIST digits are white ink on black, their ink fits a 20x20 box, and that box sits in 28x28 with the centre
of mass at the middle. The steps, on a picture of shape (H, W) or (H, W, C):

1. **Grey, alpha flattened** (:func:`to_gray`): RGB -> luminance; a transparent background is replaced by the
   colour that contrasts with the visible strokes (white strokes on black, dark strokes on white), so a
   transparent PNG reads like paper or a dark canvas, never as nothing.
2. **Polarity**: the background level is the median of the border pixels; dark-on-light pictures (border
   above 0.5) are inverted to MNIST's light-on-dark (``invert="auto"``; ``"yes"``/``"no"`` force it).
3. **Background removed, contrast stretched**: ``g = clip((g - background) / (ink - background), 0, 1)``
   where ``ink`` is the brightest level; values under the noise floor become 0 (MNIST backgrounds are 0).
4. **Crop to the ink**: the bounding box of pixels above 0.3 of the ink level that have ink neighbours
   (lone noise pixels do not stretch the box).
5. **20 px box**: the longer side is scaled to 20 pixels (anti-aliased), keeping the aspect ratio.
6. **Centre of mass** moved to (14, 14) of a 28x28 black image.

A blank, uniform or NaN picture raises :class:`NoInkError` ("no ink found ...") instead of getting a
confident answer.

Example::

    from convnp.data.images import load_digit
    x = load_digit("photo_of_a_5.jpg")        # (1, 28, 28) float32 in [0, 1]
    model.predict(x[None]).argmax()
"""
from __future__ import annotations

import numpy as np

#: the size MNIST digits are drawn at, the box their ink fits in, and where their centre of mass lies
SIZE, BOX, CENTER = 28, 20, 14.0
#: a picture whose ink differs from its background by less than this (on a 0..1 scale) is blank
MIN_CONTRAST = 0.08
#: after stretching, values below this fraction of the ink level are background (noise floor)
NOISE_FLOOR = 0.2
#: pixels at or above this fraction of the ink level, with ink neighbours, decide the crop box
CROP_LEVEL = 0.3
#: image file extensions ``convnp predict`` and ``convnp evaluate`` read from folders
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
INSTALL_HINT = 'reading images needs Pillow: pip install "convnp[images]"'


class NoInkError(ValueError):
    """The picture has no digit in it: blank, uniform, or not finite."""


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return Image


# ---------------------------------------------------------------------------- reading
def pil_to_array(img) -> np.ndarray:
    """A Pillow image -> float32 array in [0, 1]: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA.

    Palette images with transparency become RGBA; 16-bit and 32-bit integer images are divided by 65535
    (by their maximum when larger); float images ("F", e.g. TIFF) are kept when in [0, 1], else divided by
    their maximum.
    """
    mode = img.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        return np.asarray(img.convert("RGBA"), np.float32) / 255.0
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, np.float64)
        finite = arr[np.isfinite(arr)]
        top = float(finite.max()) if finite.size else 1.0
        if mode == "F":
            scale = 1.0 if top <= 1.0 else top
        else:
            scale = 65535.0 if top <= 65535.0 else top
        return (arr / scale).astype(np.float32)
    if mode in ("L", "1"):
        return np.asarray(img.convert("L"), np.float32) / 255.0
    return np.asarray(img.convert("RGB"), np.float32) / 255.0


def read_image(source) -> np.ndarray:
    """An image file (path, file object or bytes) -> float32 array in [0, 1], as :func:`pil_to_array`.

    Raises ValueError naming the file when it cannot be read.
    """
    import io
    Image = _pil()
    name = "the upload" if isinstance(source, (bytes, bytearray)) else str(getattr(source, "name", source))
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with Image.open(stream) as img:
            img.load()
            return pil_to_array(img)
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {name}") from None
    except Exception as e:
        raise ValueError(f"{name} is not a readable image ({type(e).__name__})") from None


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 2) grey+alpha, (H, W, 3) RGB or (H, W, 4) RGBA in [0, 1] -> (H, W) float32.

    Luminance is ``0.299 R + 0.587 G + 0.114 B`` (ITU-R 601, as Pillow's "L"). With an alpha channel the
    picture is composited onto the background that contrasts with its visible strokes: black when the
    opaque pixels are light on average, white when they are dark.
    """
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 2:
        return a
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an image (H, W), (H, W, 1..4), got shape {a.shape}")
    channels = a.shape[2]
    if channels in (1, 2):
        gray = a[..., 0]
    else:
        gray = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114
    if channels in (2, 4):
        alpha = np.clip(a[..., -1], 0.0, 1.0)
        weight = float(alpha.sum())
        stroke = float((gray * alpha).sum() / weight) if weight > 0 else 0.0
        background = 0.0 if stroke > 0.5 else 1.0
        gray = gray * alpha + background * (1.0 - alpha)
    return gray.astype(np.float32)


# ---------------------------------------------------------------------------- the MNIST look
def _resize(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) float in [0, 1] -> (height, width), anti-aliased (Pillow's Lanczos on a float image)."""
    Image = _pil()
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
    return np.asarray(img.resize((width, height), Image.LANCZOS), np.float32)


def _neighbours(mask: np.ndarray) -> np.ndarray:
    """How many of the 8 neighbours of each pixel are set (zeros outside the picture)."""
    p = np.pad(mask.astype(np.int16), 1)
    h, w = mask.shape
    return sum(p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)
               if dy or dx)


def digit_to_mnist(image, invert: str = "auto") -> np.ndarray:
    """A picture of one digit -> (1, 28, 28) float32 in [0, 1], drawn the way MNIST draws its digits.

    Args:
        image: (H, W) grey or (H, W, C) grey+alpha/RGB/RGBA array in [0, 1] (see :func:`to_gray`).
        invert: "auto" (invert when the border is light: dark ink on paper), "yes" or "no".

    Returns:
        (1, 28, 28) float32: ink in [0, 1] on 0, the ink's longer side 20 px, centre of mass at (14, 14).

    Raises:
        NoInkError: blank, uniform or non-finite picture ("no ink found ...").
    """
    if invert not in ("auto", "yes", "no"):
        raise ValueError(f"invert must be auto, yes or no, got {invert!r}")
    g = to_gray(image).astype(np.float64)
    h0, w0 = g.shape
    if g.size == 0:
        raise NoInkError(f"no ink found: the picture is empty ({h0}x{w0} pixels)")
    if not np.isfinite(g).all():
        raise NoInkError(f"no ink found: the picture has {int((~np.isfinite(g)).sum())} NaN or infinite pixels")
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    if invert == "yes" or (invert == "auto" and np.median(border) > 0.5):
        g = 1.0 - g
        border = 1.0 - border
    background = float(np.median(border))
    ink = float(g.max())
    if ink - background < MIN_CONTRAST:
        raise NoInkError(f"no ink found in the {w0}x{h0} picture (it is blank or all one shade, contrast "
                         f"{ink - background:.2f}): draw or photograph a digit")
    g = np.clip((g - background) / (ink - background), 0.0, 1.0)
    g[g < NOISE_FLOOR] = 0.0
    strong = g >= CROP_LEVEL
    core = strong & (_neighbours(strong) >= 2)  # strokes keep their pixels; lone specks of noise do not count
    if not core.any():
        core = strong
    rows, cols = np.nonzero(core.any(axis=1))[0], np.nonzero(core.any(axis=0))[0]
    crop = g[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    small = np.clip(_resize(crop, new_h, new_w), 0.0, 1.0)
    total = float(small.sum())
    yy, xx = np.mgrid[:new_h, :new_w]
    cy = float((yy * small).sum() / total) if total > 0 else (new_h - 1) / 2
    cx = float((xx * small).sum() / total) if total > 0 else (new_w - 1) / 2
    top = int(np.clip(round(CENTER - cy), 0, SIZE - new_h))   # the centre of mass lands at (14, 14),
    left = int(np.clip(round(CENTER - cx), 0, SIZE - new_w))  # as far as the 28x28 frame allows
    out = np.zeros((SIZE, SIZE), np.float32)
    out[top:top + new_h, left:left + new_w] = small
    return out[None]


def load_digit(source, invert: str = "auto") -> np.ndarray:
    """An image file (path, file object or bytes) of a digit -> (1, 28, 28) float32, see :func:`digit_to_mnist`.

    A :class:`NoInkError` names the file.
    """
    arr = read_image(source)
    try:
        return digit_to_mnist(arr, invert)
    except NoInkError as e:
        name = "the upload" if isinstance(source, (bytes, bytearray)) else str(getattr(source, "name", source))
        raise NoInkError(f"{name}: {e}") from None


def is_digit_input(input_shape) -> bool:
    """True for models that take MNIST-like inputs: one channel, 28x28 (the shape this pipeline makes)."""
    return input_shape is not None and tuple(input_shape) == (1, SIZE, SIZE)


def load_model_image(path, input_shape=(1, SIZE, SIZE), invert: str = "auto") -> np.ndarray:
    """An image file as a (C, H, W) float32 input for a model taking ``input_shape`` inputs.

    Digit models (1x28x28) get :func:`load_digit`; other models get the whole picture resized to H x W,
    grey (C=1, inverted when its border is light unless ``invert="no"``) or RGB (C=3), alpha flattened.
    """
    if is_digit_input(input_shape):
        return load_digit(path, invert)
    c, h, w = (int(v) for v in input_shape)
    if c not in (1, 3):
        raise ValueError(f"image files can feed models with 1 or 3 input channels, not {c} (input shape {input_shape})")
    arr = read_image(path)
    if c == 1:
        g = to_gray(arr)
        border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
        if invert == "yes" or (invert == "auto" and np.median(border) > 0.5):
            g = 1.0 - g
        return np.clip(_resize(g, h, w), 0.0, 1.0)[None]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.shape[2] in (2, 4):  # flatten alpha onto white, the usual look of a photo's background
        rgb = arr[..., :3] if arr.shape[2] == 4 else np.repeat(arr[..., :1], 3, axis=2)
        alpha = arr[..., -1:]
        arr = rgb * alpha + (1.0 - alpha)
    out = np.stack([_resize(arr[..., k], h, w) for k in range(3)])
    return np.clip(out, 0.0, 1.0).astype(np.float32)
