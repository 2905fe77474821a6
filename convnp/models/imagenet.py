"""ImageNet helpers for the pretrained zoo: ``preprocess_imagenet`` (Pillow image -> normalized batch),
``decode_predictions`` (probabilities -> top-k class names) and the 1000 class names shipped as JSON."""
from __future__ import annotations

import functools
import json
import os

import numpy as np

from ..backend import to_numpy

#: torchvision's normalization (RGB, values in [0, 1])
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
#: caffe/Keras VGG normalization: BGR order, 0..255 values minus these per-channel means (B, G, R)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@functools.lru_cache(maxsize=1)
def _classes():
    path = os.path.join(os.path.dirname(__file__), "imagenet_classes.json")
    with open(path, encoding="utf-8") as f:
        rows = json.load(f)
    if len(rows) != 1000:
        raise RuntimeError(f"{path}: expected 1000 ImageNet classes, found {len(rows)}")
    return tuple((str(w), str(n)) for w, n in rows)


def imagenet_class_names(short: bool = False) -> list:
    """The 1000 ImageNet-1k class names in index order ("tench, Tinca tinca", ...; ``short``: "tench")."""
    return [n.split(",")[0] if short else n for _, n in _classes()]


def imagenet_wnids() -> list:
    """The WordNet ids of the 1000 classes in index order ("n01440764", ...)."""
    return [w for w, _ in _classes()]


def _to_rgb(image):
    """A Pillow image in RGB, whatever it was: grey, grey+alpha, palette, RGBA (composited on white),
    CMYK, 1-bit, or 16/32-bit integer grey (scaled to 0..255 by its bit depth)."""
    from PIL import Image

    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or (image.mode == "I" and a.max() > 255) else 255.0
        if image.mode == "F":
            top = max(float(a.max()), 1e-12) if a.max() > 1.0 else 1.0
        grey = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _open(image):
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        try:
            img = Image.open(image)
            img.load()
        except FileNotFoundError:
            raise FileNotFoundError(f"preprocess_imagenet: no such image file: {image}") from None
        except Exception as e:
            raise ValueError(f"preprocess_imagenet: cannot read {image} as an image ({e})") from None
        return img
    if isinstance(image, Image.Image):
        return image
    a = np.asarray(to_numpy(image))
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)  # CHW -> HWC
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ValueError(f"preprocess_imagenet: expected an image (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.dtype.kind == "f":
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
    elif a.dtype == np.uint16:
        a = (a.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    return Image.fromarray(a.astype(np.uint8))


def preprocess_imagenet(image, mode: str = "torch", size: int = 224, resize: int = 256, min_size: int = 32,
                        dtype=np.float32):
    """Read an image and make the (1, 3, size, size) batch that ImageNet weights expect.

    Steps (torchvision's evaluation transform): convert to RGB (grey, RGBA, palette, CMYK and 16-bit images
    are converted), resize so the shorter side is ``resize`` (bilinear), center-crop ``size`` x ``size``, then
    normalize: ``mode="torch"`` scales to [0, 1] and applies torchvision's mean/std (torchvision weights);
    ``mode="caffe"`` flips RGB to BGR and subtracts the ImageNet mean pixel from 0..255 values (Keras's VGG16
    weights, converted from caffe).

    Args:
        image: a path, a Pillow image, or an array (H, W[, 3|4]) (uint8, uint16, or floats in [0, 1]).
        mode: "torch" or "caffe".
        size: the crop size; resize: the shorter side before cropping (None: resize straight to ``size``).
        min_size: smaller images (shorter side in pixels) are rejected rather than blown up.

    Shape: any image -> (1, 3, size, size).
    Example: ``probs = softmax(model(preprocess_imagenet("cat.jpg")))``.
    """
    from PIL import Image

    if mode not in ("torch", "caffe"):
        raise ValueError(f"preprocess_imagenet: mode must be 'torch' or 'caffe', got {mode!r}")
    img = _to_rgb(_open(image))
    w, h = img.size
    if min(w, h) < min_size:
        raise ValueError(f"preprocess_imagenet: the image is {w}x{h} pixels, too small: the shorter side must be "
                         f"at least {min_size} pixels (it would be blown up to {size}x{size})")
    if resize is None:
        img = img.resize((size, size), Image.BILINEAR)
    else:
        if resize < size:
            raise ValueError(f"preprocess_imagenet: resize ({resize}) must be >= size ({size})")
        scale = resize / min(w, h)
        nw, nh = (resize, int(h * scale)) if w <= h else (int(w * scale), resize)
        img = img.resize((nw, nh), Image.BILINEAR)
        left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
        img = img.crop((left, top, left + size, top + size))
    x = np.asarray(img, dtype=np.float64)  # (size, size, 3) RGB in 0..255
    if mode == "torch":
        x = (x / 255.0 - np.array(TORCH_MEAN)) / np.array(TORCH_STD)
    else:
        x = x[..., ::-1] - np.array(CAFFE_MEAN_BGR)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=dtype)  # (1, 3, size, size)


def decode_predictions(probs, top: int = 5) -> list:
    """The ``top`` most likely classes of each row: ``[[(wnid, name, probability), ...], ...]``.

    Args:
        probs: (N, 1000) or (1000,) class probabilities (apply a softmax to logits first).
        top: how many classes per row.

    Example: ``decode_predictions(probs)[0][0]`` -> ``("n02123045", "tabby, tabby cat", 0.83)``.
    """
    p = np.asarray(to_numpy(probs), dtype=np.float64)
    if p.ndim == 1:
        p = p[None]
    if p.ndim != 2 or p.shape[1] != 1000:
        raise ValueError(f"decode_predictions: expected probabilities of shape (N, 1000) for the 1000 ImageNet "
                         f"classes, got shape {tuple(np.shape(probs))}")
    if not 1 <= int(top) <= 1000:
        raise ValueError(f"decode_predictions: top must be between 1 and 1000, got {top}")
    classes = _classes()
    out = []
    for row in p:
        idx = np.argsort(-row, kind="stable")[:int(top)]
        out.append([(classes[i][0], classes[i][1], float(row[i])) for i in idx])
    return out
