"""Fashion-MNIST and CIFAR-10: read from local files or a cache directory, checksums verified,
downloaded from the standard public mirrors on request. ``load_dataset(name)`` covers MNIST too.

Files are looked for in ``directory`` when given, else in ``$CONVNP_DATA/<name>`` or
``$XDG_CACHE_HOME/convnp/<name>`` (default ``~/.cache/convnp/<name>``). Nothing touches the network unless ``download=True``.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.request

import numpy as np

from .mnist import load_idx_dataset, load_mnist

FASHION_MNIST_MIRRORS = [
    "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
]
#: file key -> (file name, MD5 published with the data set)
FASHION_MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
}
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]

#: the binary version (fixed-size records, no pickle) of CIFAR-10
CIFAR10_MIRRORS = ["https://www.cs.toronto.edu/~kriz/"]
CIFAR10_ARCHIVE = ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530")
CIFAR10_MEMBERS = {"train": [f"cifar-10-batches-bin/data_batch_{i}.bin" for i in range(1, 6)],
                   "test": ["cifar-10-batches-bin/test_batch.bin"]}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
MNIST_CLASSES = [str(i) for i in range(10)]
_CIFAR_RECORD = 1 + 3 * 32 * 32  # label byte + 3 planes of 32x32 pixels


def data_home(name: str) -> str:
    """The cache directory of a data set: ``$CONVNP_DATA/<name>``, else ``$XDG_CACHE_HOME/convnp/<name>``, else
    ``~/.cache/convnp/<name>`` (the compiled kernels follow the same XDG rule)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = os.environ.get("CONVNP_DATA") or os.path.join(cache, "convnp")
    return os.path.join(root, name)


def file_digest(path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_file(path, expected: str | None) -> None:
    """Raise ValueError when ``path``'s MD5 (32 hex digits) or SHA-256 (64) differs from ``expected``."""
    if not expected:
        return
    algorithm = {32: "md5", 64: "sha256"}.get(len(expected))
    if algorithm is None:
        raise ValueError(f"check_file: {expected!r} is neither an MD5 nor a SHA-256 hex digest")
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise ValueError(f"checksum mismatch for {os.fspath(path)}: expected {algorithm} {expected}, got {actual}; "
                         "the file is corrupt, incomplete or not the expected data set file (delete it and retry)")


def download_file(urls, destination, expected: str | None = None, quiet: bool = False) -> str:
    """Fetch the first of ``urls`` that works into ``destination`` (atomically) and verify its checksum.

    ``urls`` is one URL or a list of mirrors tried in order. Returns ``destination``; raises OSError
    listing every failure when no mirror delivers a file with the right checksum.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    destination = os.fspath(destination)
    os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(prefix=".download-", dir=os.path.dirname(os.path.abspath(destination)))
        try:
            if not quiet:
                print(f"downloading {url}")
            with urllib.request.urlopen(url, timeout=60) as response, os.fdopen(fd, "wb") as out:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
            check_file(tmp, expected)
            os.replace(tmp, destination)
            return destination
        except (OSError, ValueError) as e:
            errors.append(f"{url}: {e}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise OSError("download failed from every mirror: " + "; ".join(errors))


def _expected(checksums, name, default):
    if checksums is False:
        return None
    if isinstance(checksums, dict):
        return checksums.get(name, default)
    return default


def _fetch(directory, name, mirrors, default_sum, checksums, download, dataset):
    path = os.path.join(directory, name)
    expected = _expected(checksums, name, default_sum)
    if not os.path.exists(path):
        if not download:
            raise FileNotFoundError(f"{dataset}: {path} not found; pass download=True (CLI: --download) to fetch "
                                    f"it from {mirrors[0]}, or put the file there yourself")
        download_file([m + name for m in mirrors], path, expected)
    check_file(path, expected)
    return path


def load_fashion_mnist(directory=None, download: bool = False, normalize: bool = True, flatten: bool = False,
                       one_hot: bool = False, checksums=None):
    """Fashion-MNIST (Xiao, Rasul, Vollgraf 2017; MIT licence): 28x28 grey images of 10 clothing classes.

    Args:
        directory: folder with the four idx ``.gz`` files (default: :func:`data_home` ``("fashion_mnist")``).
        download: fetch missing files from the public mirrors (never done otherwise).
        normalize, flatten, one_hot: as in :func:`~convnp.data.load_mnist`.
        checksums: None verifies the published MD5s; a dict ``{file name: md5 or sha256}`` overrides them;
            False skips the check.

    Shapes: x_train (60000, 1, 28, 28) float32, t_train (60000,) int64; x_test (10000, 1, 28, 28).
    Example: ``(x, t), (xt, tt) = load_fashion_mnist(download=True)``.
    """
    directory = data_home("fashion_mnist") if directory is None else os.fspath(directory)
    files = {}
    for key, (name, md5) in FASHION_MNIST_FILES.items():
        _fetch(directory, name, FASHION_MNIST_MIRRORS, md5, checksums, download, "fashion_mnist")
        files[key] = (name, None)  # verified above
    return load_idx_dataset(directory, files, normalize, flatten, one_hot, checksums=False)


def _read_cifar_records(blob: bytes, where: str):
    if len(blob) % _CIFAR_RECORD:
        raise ValueError(f"cifar10: {where} holds {len(blob)} bytes, not a whole number of "
                         f"{_CIFAR_RECORD}-byte records (truncated?)")
    records = np.frombuffer(blob, np.uint8).reshape(-1, _CIFAR_RECORD)
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].astype(np.int64)


def _cifar_blobs(directory, split, download, checksums):
    """Bytes of each batch file of ``split``, from the extracted folder or straight from the archive."""
    extracted = [os.path.join(directory, m) for m in CIFAR10_MEMBERS[split]]
    if all(os.path.exists(p) for p in extracted):
        out = []
        for p in extracted:
            check_file(p, _expected(checksums, os.path.basename(p), None))
            with open(p, "rb") as f:
                out.append((p, f.read()))
        return out
    name, md5 = CIFAR10_ARCHIVE
    archive = _fetch(directory, name, CIFAR10_MIRRORS, md5, checksums, download, "cifar10")
    out = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in CIFAR10_MEMBERS[split]:
                f = tar.extractfile(member)
                if f is None:
                    raise KeyError(member)
                out.append((f"{archive}:{member}", f.read()))
    except KeyError as e:
        raise ValueError(f"cifar10: {archive} has no member {e}; is it the binary version "
                         f"({CIFAR10_ARCHIVE[0]})?") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(f"cifar10: cannot read {archive}: {e}") from None
    return out


def load_cifar10(directory=None, download: bool = False, normalize: bool = True, one_hot: bool = False,
                 checksums=None):
    """CIFAR-10 (Krizhevsky 2009): 32x32 colour images of 10 classes, from the binary version.

    Args:
        directory: folder holding ``cifar-10-binary.tar.gz`` (read without extracting) or the extracted
            ``cifar-10-batches-bin/`` (default: :func:`data_home` ``("cifar10")``).
        download: fetch the archive (162 MB) from the dataset authors' site when it is missing.
        normalize: scale pixels to [0, 1] (float32; else 0..255 as float32).
        one_hot: labels as (N, 10) one-hot rows instead of int64 indices.
        checksums: None verifies the archive's published MD5; a dict ``{file name: digest}`` overrides
            (also for the extracted ``.bin`` files); False skips the check.

    Shapes: x_train (50000, 3, 32, 32), t_train (50000,); x_test (10000, 3, 32, 32).
    """
    directory = data_home("cifar10") if directory is None else os.fspath(directory)
    out = []
    for split in ("train", "test"):
        xs, ts = zip(*(_read_cifar_records(blob, where) for where, blob in
                       _cifar_blobs(directory, split, download, checksums)))
        x = np.concatenate(xs).astype(np.float32)
        if normalize:
            x /= 255.0
        t = np.concatenate(ts)
        out.append((x, np.eye(10, dtype=np.float32)[t] if one_hot else t))
    return tuple(out)


#: name -> (loader, input shape, class names)
DATASETS = {
    "mnist": (lambda directory=None, download=False: load_mnist(directory=directory), (1, 28, 28), MNIST_CLASSES),
    "fashion_mnist": (load_fashion_mnist, (1, 28, 28), FASHION_MNIST_CLASSES),
    "cifar10": (load_cifar10, (3, 32, 32), CIFAR10_CLASSES),
}


def load_dataset(name: str, directory=None, download: bool = False):
    """``(x_train, t_train), (x_test, t_test)`` of "mnist" (shipped), "fashion_mnist" or "cifar10"."""
    key = str(name).lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    loader = DATASETS[key][0]
    if key == "mnist":
        return loader(directory=directory)
    return loader(directory=directory, download=download)


def dataset_info(name: str):
    """``(input_shape, class_names)`` of a data set known to :func:`load_dataset`."""
    key = str(name).lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return DATASETS[key][1], DATASETS[key][2]
