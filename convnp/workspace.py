"""Reused memory for the large temporaries of a training step (a small caching allocator for NumPy).

Why: a training step allocates and frees the same large arrays every time (patch matrices, padded
gradients, layer outputs). glibc hands big blocks back to the operating system when they are freed
(mmap, heap trimming), so the next step touches brand-new pages and pays one page fault per 4 KiB on
first write: measured on the 2-core benchmark VM, about 3,800 faults per DeepConvNet step, which made
the backward pass of its 28x28 layer 3x slower (49 ms instead of ~16 ms).

How: :func:`empty` returns a view of a cached byte buffer of exactly the requested size when no array
made from that buffer is alive any more, else a fresh one that joins the cache (from the second request
of a size on: training asks for the same sizes every step, a one-off forward pass mostly does not). Whether a buffer is
free is read from its reference count: every view of it (and every view of a view) holds one reference
to it, so a buffer whose only holder is the cache is free, and an array the caller keeps is never
handed out twice. Buffers below ``MIN_BYTES`` go straight to NumPy (its own small-block cache is fine),
and the cache holds at most ``MAX_BYTES`` in all (beyond that, plain ``np.empty``).

Only NumPy arrays are cached (CuPy has its own memory pool). ``CONVNP_WORKSPACE=0`` switches the cache
off (every call is plain ``np.empty``); :func:`clear` drops the cached buffers.

Example::

    from convnp import workspace
    a = workspace.empty((100, 16, 28, 28), np.float32)   # fresh the first time
    del a
    b = workspace.empty((100, 16, 28, 28), np.float32)   # same memory, no page faults
"""
from __future__ import annotations

import os
import sys
import threading

import numpy as np

__all__ = ["empty", "zeros", "clear", "cached_bytes", "enabled", "MIN_BYTES", "MAX_BYTES"]

#: smaller requests are plain np.empty (NumPy and malloc reuse small blocks without page faults)
MIN_BYTES = 256 * 2 ** 10
#: at most this many bytes stay cached
MAX_BYTES = 512 * 2 ** 20

_lock = threading.Lock()
_buffers: dict[int, list] = {}  # nbytes -> [sentinel, uint8 buffer, ...]
_state = {"bytes": 0, "enabled": os.environ.get("CONVNP_WORKSPACE", "1").strip() not in ("0", "false", "off", "no")}


def enabled() -> bool:
    """True when large temporaries are taken from the cache."""
    return _state["enabled"]


def _take(nbytes: int):
    """A free cached buffer of ``nbytes`` bytes, or a new one (cached when there is room and the size was
    asked for before: a size seen once, as in a one-off inference, is not worth keeping)."""
    with _lock:
        pool = _buffers.get(nbytes)
        if pool is None:  # first time this size is asked for; the list starts with a never-used sentinel
            _buffers[nbytes] = [np.empty(0, dtype=np.uint8)]
            return np.empty(nbytes, dtype=np.uint8)
        free_refs = None
        for buf in pool:  # a buffer is free when nothing but this list refers to it, like the sentinel
            if free_refs is None:  # the sentinel: the count of a free buffer on this interpreter, seen the
                free_refs = sys.getrefcount(buf)  # same way (list + loop variable + argument on CPython 3.11)
            elif sys.getrefcount(buf) == free_refs:
                return buf.view()  # the caller's view holds a reference: the buffer is busy from here on
        buf = np.empty(nbytes, dtype=np.uint8)
        if _state["bytes"] + nbytes <= MAX_BYTES:
            pool.append(buf)
            _state["bytes"] += nbytes
        return buf.view()


def empty(shape, dtype=np.float32, xp=np):
    """Like ``np.empty(shape, dtype)`` (C order), reusing the memory of large arrays that are gone.

    ``xp`` is the array module (:func:`convnp.backend.get_array_module`): anything but NumPy gets a plain
    ``xp.empty``.
    """
    if xp is not np:
        return xp.empty(shape, dtype=dtype)
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    count = 1
    for s in shape:
        count *= s
    nbytes = count * dtype.itemsize
    if not _state["enabled"] or nbytes < MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    return _take(nbytes).view(dtype).reshape(shape)


def zeros(shape, dtype=np.float32, xp=np):
    """Like ``np.zeros(shape, dtype)``, reusing memory as :func:`empty` does."""
    if xp is not np:
        return xp.zeros(shape, dtype=dtype)
    out = empty(shape, dtype)
    out.fill(0)
    return out


def clear() -> None:
    """Drop every cached buffer (arrays still in use keep their memory until they are freed)."""
    with _lock:
        _buffers.clear()
        _state["bytes"] = 0


def cached_bytes() -> int:
    """Bytes held by the cache (free or in use)."""
    return _state["bytes"]


def set_enabled(flag: bool) -> bool:
    """Switch the cache on or off for this process; returns the previous setting."""
    previous = _state["enabled"]
    _state["enabled"] = bool(flag)
    if not flag:
        clear()
    return previous
