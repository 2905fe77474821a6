"""MNIST, shipped inside the package (``convnp/data/mnist/``, CC BY-SA 3.0, LeCun, Cortes and Burges)."""
from __future__ import annotations

import os

import numpy as np

from .idx import read_idx, verify_checksum

MNIST_DIR = os.path.join(os.path.dirname(__file__), "mnist")

#: SHA-256 of the shipped gz files
MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b"),
}

_cache: dict = {}


def _read(directory, key, checksums):
    name, sha = MNIST_FILES[key]
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"MNIST file not found: {path}")
    verify_checksum(path, sha if checksums else None)
    return read_idx(path)


def load_idx_dataset(directory, files, normalize=True, flatten=False, one_hot=False, checksums=None,
                     num_classes=10):
    """Shared by MNIST-format data sets: returns ``(x_train, t_train), (x_test, t_test)``."""
    arrays = {}
    for key, (name, sha) in files.items():
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            raise FileNotFoundError(f"data file not found: {path}")
        verify_checksum(path, sha if checksums is not False else None)
        arrays[key] = read_idx(path)
    return _format(arrays, normalize, flatten, one_hot, num_classes)


def _format(arrays, normalize, flatten, one_hot, num_classes=10):
    out = []
    for split in ("train", "test"):
        images = arrays[f"{split}_images"]
        labels = arrays[f"{split}_labels"].astype(np.int64)
        x = images.astype(np.float32)
        if normalize:
            x /= 255.0
        x = x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, images.shape[1], images.shape[2])
        t = np.eye(num_classes, dtype=np.float32)[labels] if one_hot else labels
        out.append((x, t))
    return tuple(out)


def load_mnist(normalize: bool = True, flatten: bool = False, one_hot: bool = False, directory: str | None = None):
    """Load MNIST: ``(x_train, t_train), (x_test, t_test)``.

    Args:
        normalize: scale pixels to [0, 1] (else 0..255 as float32).
        flatten: return (N, 784) instead of NCHW (N, 1, 28, 28).
        one_hot: labels as (N, 10) float32 one-hot rows instead of int64 class indices.
        directory: read the four idx gz files from here instead of the copy shipped in the package
            (checksums are verified only for the shipped copy).

    Shapes: x_train (60000, 1, 28, 28) float32, t_train (60000,) int64; x_test (10000, 1, 28, 28).
    """
    directory = MNIST_DIR if directory is None else os.fspath(directory)
    key = (os.path.abspath(directory),)
    if key not in _cache:
        shipped = os.path.abspath(directory) == os.path.abspath(MNIST_DIR)
        _cache[key] = {k: _read(directory, k, shipped) for k in MNIST_FILES}
    return _format(_cache[key], normalize, flatten, one_hot)
