"""Reading the idx format of MNIST-style files (optionally gzipped), with checksum verification."""
from __future__ import annotations

import gzip
import hashlib
import os

import numpy as np

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_checksum(path, expected_sha256: str | None) -> None:
    """Raise ValueError when the file's SHA-256 differs from ``expected_sha256`` (None skips the check)."""
    if expected_sha256 is None:
        return
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise ValueError(f"checksum mismatch for {os.fspath(path)}: expected sha256 {expected_sha256}, "
                         f"got {actual}; the file is corrupt or not the expected data set file")


def read_idx(path) -> np.ndarray:
    """Read an idx file (``.gz`` or raw) into an array of its stored dtype and shape."""
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"cannot read idx file {os.fspath(path)}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{os.fspath(path)} is not an idx file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{os.fspath(path)}: header says shape {shape} ({expected} bytes) but the file "
                         f"holds {len(data) - header} bytes of data (truncated?)")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
