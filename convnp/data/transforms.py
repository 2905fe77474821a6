"""Batch transforms for images (N, C, H, W): normalization and augmentation.

Every transform is a callable ``t(x, rng=None) -> x`` on a whole batch; random ones draw from the
``numpy.random.Generator`` they are given (the DataLoader passes one seeded by seed, epoch and step,
so augmented runs are reproducible and resumable). Inputs are not modified in place.

Example::

    augment = Compose([RandomAffine(degrees=10, scale=(0.9, 1.1)), RandomShift(2)])
    loader = DataLoader(x_train, 100, shuffle=True, seed=0, transform=augment, y=t_train)
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, make_rng


def _rng(rng):
    """A Generator from a seed or None; Generator-like objects (with ``integers``) pass through."""
    return rng if hasattr(rng, "integers") else make_rng(rng)


def _check_images(x, where):
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"{where}: expected a batch of images (N, C, H, W), got shape {tuple(np.shape(x))}")


class Compose:
    """Apply transforms in order, all drawing from the same Generator."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        rng = _rng(rng)
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self):
        return f"Compose({self.transforms!r})"


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel.

    Args:
        mean, std: a number or one value per channel.

    Shape: (N, C, H, W) -> same. Example: ``Normalize(0.1307, 0.3081)`` (MNIST statistics).
    """

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, np.float64))
        self.std = np.atleast_1d(np.asarray(std, np.float64))
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}")

    def __call__(self, x, rng=None):
        _check_images(x, "Normalize")
        if self.mean.size not in (1, x.shape[1]) or self.std.size not in (1, x.shape[1]):
            raise ValueError(f"Normalize: got {self.mean.size} means / {self.std.size} stds for "
                             f"{x.shape[1]} channels")
        xp = get_array_module(x)
        mean = xp.asarray(self.mean, dtype=x.dtype).reshape(1, -1, 1, 1)
        std = xp.asarray(self.std, dtype=x.dtype).reshape(1, -1, 1, 1)
        return (x - mean) / std

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop:
    """Pad by ``padding`` (with ``fill``), then crop a ``size`` window at a random offset per image.

    Args:
        size: output (h, w) or an int for square crops; None keeps the input size (a random shift).
        padding: pixels added on every side before cropping.
        fill: value of the padded border.

    Shape: (N, C, H, W) -> (N, C, h, w). Example: ``RandomCrop(32, padding=4)`` (CIFAR-10).
    """

    def __init__(self, size=None, padding: int = 0, fill: float = 0.0):
        self.size = None if size is None else ((int(size), int(size)) if np.ndim(size) == 0 else tuple(map(int, size)))
        self.padding = int(padding)
        if self.padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.fill = float(fill)

    def __call__(self, x, rng=None):
        _check_images(x, type(self).__name__)
        rng = _rng(rng)
        xp = get_array_module(x)
        n, c, h, w = x.shape
        oh, ow = self.size if self.size is not None else (h, w)
        p = self.padding
        if oh > h + 2 * p or ow > w + 2 * p:
            raise ValueError(f"{type(self).__name__}: crop {oh}x{ow} is larger than the padded image "
                             f"{h + 2 * p}x{w + 2 * p}")
        padded = xp.full((n, c, h + 2 * p, w + 2 * p), self.fill, dtype=x.dtype)
        padded[:, :, p:p + h, p:p + w] = x
        tops = rng.integers(0, h + 2 * p - oh + 1, size=n)
        lefts = rng.integers(0, w + 2 * p - ow + 1, size=n)
        out = xp.empty((n, c, oh, ow), dtype=x.dtype)
        for i in range(n):  # one slice copy per image: cheap next to the network
            out[i] = padded[i, :, tops[i]:tops[i] + oh, lefts[i]:lefts[i] + ow]
        return out

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class RandomShift(RandomCrop):
    """Shift each image by a random whole number of pixels in [-max_shift, max_shift] on each axis,
    filling the uncovered border with ``fill``. Shape: unchanged. Example: ``RandomShift(2)`` (MNIST)."""

    def __init__(self, max_shift: int = 2, fill: float = 0.0):
        super().__init__(None, padding=max_shift, fill=fill)
        self.max_shift = int(max_shift)

    def __repr__(self):
        return f"RandomShift(max_shift={self.max_shift})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p`` (for natural images, not digits)."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x, rng=None):
        _check_images(x, "RandomHorizontalFlip")
        xp = get_array_module(x)
        flip = xp.asarray(_rng(rng).random(len(x)) < self.p)
        return xp.where(flip[:, None, None, None], x[..., ::-1], x)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomAffine:
    """Random rotation, scaling and translation about the image centre, with bilinear interpolation.

    Args:
        degrees: rotation angle drawn from [-degrees, degrees].
        scale: (low, high) zoom factor range (1 = unchanged).
        translate: maximum shift as a fraction of the image size (0 = none).
        fill: value outside the source image.

    Shape: (N, C, H, W) -> same. Output pixel p samples the input at
    ``c + R(-angle) (p - c - t) / scale`` (c the centre, t the shift).
    Example: ``RandomAffine(degrees=10, scale=(0.9, 1.1))``.
    """

    def __init__(self, degrees: float = 10.0, scale=(1.0, 1.0), translate: float = 0.0, fill: float = 0.0):
        self.degrees = float(degrees)
        self.scale = (float(scale[0]), float(scale[1]))
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"RandomAffine: scale must be (low, high) with 0 < low <= high, got {scale}")
        self.translate = float(translate)
        self.fill = float(fill)

    def __call__(self, x, rng=None):
        _check_images(x, "RandomAffine")
        rng = _rng(rng)
        xp = get_array_module(x)
        n, c, h, w = x.shape
        angle = np.deg2rad(rng.uniform(-self.degrees, self.degrees, n))
        zoom = rng.uniform(self.scale[0], self.scale[1], n)
        tx = rng.uniform(-self.translate, self.translate, n) * w
        ty = rng.uniform(-self.translate, self.translate, n) * h
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
        cos = xp.asarray(np.cos(angle) / zoom)[:, None, None]  # (N, 1, 1)
        sin = xp.asarray(np.sin(angle) / zoom)[:, None, None]
        gy, gx = xp.meshgrid(xp.arange(h, dtype=xp.float64), xp.arange(w, dtype=xp.float64), indexing="ij")
        u = gx[None] - cx - xp.asarray(tx)[:, None, None]  # (N, H, W) offsets from the centre
        v = gy[None] - cy - xp.asarray(ty)[:, None, None]
        sx = cos * u + sin * v + cx  # inverse rotation of the offset, divided by the zoom
        sy = -sin * u + cos * v + cy
        x0, y0 = xp.floor(sx).astype(xp.int64), xp.floor(sy).astype(xp.int64)
        fx, fy = (sx - x0).astype(x.dtype), (sy - y0).astype(x.dtype)
        batch = xp.arange(n)[:, None, None]
        out = xp.zeros((n, h, w, c), dtype=x.dtype)  # advanced indexing puts C last
        for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            yy, xx = y0 + dy, x0 + dx
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            vals = x[batch, :, xp.clip(yy, 0, h - 1), xp.clip(xx, 0, w - 1)]  # (N, H, W, C)
            vals = xp.where(inside[..., None], vals, xp.asarray(self.fill, dtype=x.dtype))
            out += wgt[..., None] * vals
        return xp.ascontiguousarray(out.transpose(0, 3, 1, 2))

    def __repr__(self):
        return f"RandomAffine(degrees={self.degrees}, scale={self.scale}, translate={self.translate})"


def default_augmentation(dataset: str, kind: str = "full"):
    """The augmentation ``convnp train --augment`` uses: small rotations/zooms and shifts for digits and
    clothes (no flips: a mirrored digit is another symbol), padded crops and flips for CIFAR-10.
    ``kind="shift"`` gives only the shifts of up to 2 pixels for digits and clothes (SimpleConvNet's recipe)."""
    name = str(dataset).lower()
    if kind not in ("full", "shift"):
        raise ValueError(f"default_augmentation: kind must be 'full' or 'shift', got {kind!r}")
    if name in ("mnist", "fashion_mnist"):
        if kind == "shift":
            return RandomShift(2)
        return Compose([RandomAffine(degrees=10, scale=(0.9, 1.1)), RandomShift(2)])
    if name == "cifar10":
        return Compose([RandomCrop(32, padding=4), RandomHorizontalFlip()])
    raise ValueError(f"default_augmentation: unknown dataset {dataset!r}; expected mnist, fashion_mnist or cifar10")
