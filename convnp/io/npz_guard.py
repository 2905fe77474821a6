"""Bounded reading of ``.npz`` archives: look at every entry's header before decompressing any array.

``np.load(path)[name]`` inflates an entry whatever its size, so a 7 MB archive holding one 2 GiB entry of zeros
(deflate compresses zeros ~1000:1) costs 2 GiB of memory before anything is checked. Here instead:

1. :func:`inspect_npz` opens the zip directory and reads only the ``.npy`` header of each entry (a few hundred
   bytes): its shape and dtype. It checks that ``ZipInfo.file_size`` equals header length + prod(shape) x itemsize
   (an entry that lies about its size is refused), and refuses object (pickle) dtypes.
2. The caller compares names, shapes and dtypes with what it expects (a model's ``state_dict``).
3. :func:`read_entry` decompresses one entry; it never reads more than the declared ``prod(shape) x itemsize``.

A file that is not a zip archive gets ``"not an .npz (zip) file"`` (not numpy's advice about ``allow_pickle``).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass

import numpy as np
from numpy.lib import format as npy_format

#: an entry whose inflated size exceeds this many times its compressed size (and 1 MiB) looks like a zip bomb;
#: used only where no expected shapes are known (``np.savez`` stores entries uncompressed: ratio 1)
MAX_RATIO = 50
_SMALL = 1 << 20


class NpzError(ValueError):
    """An archive that is not a well-formed npz file (names the file and the entry)."""


class NpzDamaged(NpzError):
    """A zip archive that cannot be read to the end (truncated or corrupt)."""


@dataclass(frozen=True)
class Entry:
    """One array of an npz archive as its header declares it (nothing decompressed beyond the header)."""
    name: str            # the key, without ".npy"
    member: str          # the zip member name
    shape: tuple
    dtype: np.dtype
    file_size: int       # ZipInfo.file_size: inflated bytes
    compress_size: int   # ZipInfo.compress_size: stored bytes

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def _open(path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        with open(path, "rb") as f:
            start = f.read(8)
        if start.startswith(b"PK"):
            raise NpzDamaged(f"{path} is a damaged zip archive (corrupt or truncated file: {e})") from None
        kind = "a PNG image" if start.startswith(b"\x89PNG") else "a JPEG image" if start[:2] == b"\xff\xd8" else \
            "an empty file" if not start else f"starts with {start!r}"
        raise NpzError(f"{path} is not an .npz (zip) file ({kind}); it may be truncated or another format") from None
    except (OSError, EOFError, ValueError) as e:
        raise NpzError(f"{path} is not a readable .npz (zip) file ({type(e).__name__}: {e})") from None


def _header(zf, info, path):
    try:
        with zf.open(info) as fp:
            version = npy_format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(fp)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = npy_format.read_array_header_2_0(fp)
            else:
                raise ValueError(f"unknown .npy version {version}")
            offset = fp.tell()
    except (zipfile.BadZipFile, EOFError, OSError) as e:  # a CRC error can surface here on small entries
        raise NpzDamaged(f"{path}: entry {info.filename!r} cannot be read (corrupt or truncated file: "
                         f"{type(e).__name__}: {e})") from None
    except (ValueError, NotImplementedError) as e:
        raise NpzError(f"{path}: entry {info.filename!r} is not a valid .npy array ({type(e).__name__}: {e})") from None
    return tuple(int(s) for s in shape), np.dtype(dtype), offset


def inspect_npz(path) -> "dict[str, Entry]":
    """Names, shapes, dtypes and sizes of every array in ``path``, checking each entry's declared size.

    Raises :class:`NpzError` for a non-zip file, a non-``.npy`` member, an object (pickle) dtype, an entry whose
    inflated size differs from its header's ``shape x itemsize``, or a repeated name.
    """
    out = {}
    with _open(path) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            if not info.filename.endswith(".npy"):
                raise NpzError(f"{path}: entry {info.filename!r} is not a .npy array (an npz holds only .npy entries)")
            shape, dtype, offset = _header(zf, info, path)
            name = info.filename[:-4]
            if dtype.hasobject:
                raise NpzError(f"{path}: entry {name!r} has dtype {dtype} (Python objects, which would need pickle); "
                               "convnp reads only numeric and text arrays")
            entry = Entry(name, info.filename, shape, dtype, info.file_size, info.compress_size)
            if info.file_size != offset + entry.nbytes:
                raise NpzError(f"{path}: entry {name!r} declares shape {shape} of {dtype} ({entry.nbytes:,} bytes) "
                               f"but holds {info.file_size - offset:,} bytes; the file is corrupt or forged")
            if name in out:
                raise NpzError(f"{path}: entry {name!r} appears twice")
            out[name] = entry
    return out


def check_ratio(path, entries) -> None:
    """Refuse entries that inflate more than :data:`MAX_RATIO` times (and past 1 MiB): the zip-bomb rule used
    where the expected shapes are not known."""
    for e in entries:
        if e.file_size > _SMALL and e.file_size > MAX_RATIO * max(e.compress_size, 1):
            raise NpzError(f"{path}: entry {e.name!r} would inflate from {e.compress_size:,} to {e.file_size:,} "
                           f"bytes (more than {MAX_RATIO}x); refusing a likely zip bomb")


def read_entry(path, entry: Entry, zf: zipfile.ZipFile | None = None) -> np.ndarray:
    """Decompress one entry found by :func:`inspect_npz` (at most its declared bytes; CRC-checked)."""
    own = zf is None
    zf = _open(path) if own else zf
    try:
        with zf.open(entry.member) as fp:
            return npy_format.read_array(fp, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise NpzDamaged(f"{path}: cannot read entry {entry.name!r} (corrupt or truncated file: "
                         f"{type(e).__name__}: {e})") from None
    finally:
        if own:
            zf.close()


def read_entries(path, entries) -> "dict[str, np.ndarray]":
    """Decompress the given entries (in order) with one open archive: ``{name: array}``."""
    with _open(path) as zf:
        return {e.name: read_entry(path, e, zf) for e in entries}
