"""Direct convolution, forward and backward, through small C kernels compiled on first use.

The same library holds the zero-padding copy (``pad.c``), im2col/col2im for strided convolutions
(``patches.c``, :func:`im2col`, :func:`col2im`) and the fused Adam step (``adam.c``, :func:`adam_step`,
used by ``convnp.optim.Adam``).

Why: for the 16-64-channel layers of small CNNs, im2col + GEMM spends more time building and reading the
patch matrix (every input value copied kh*kw times) than multiplying, and GEMMs with 16-32 rows run far
below the machine's peak. The kernels read each tap's contiguous run of the padded image directly:

* ``direct_conv.c`` (:func:`conv2d`): y = x * w, an 8-filter x 48-pixel block of sums in registers; also dx,
  as dy zero-padded by (k-1)*d - pad and convolved with the flipped, transposed filters;
* ``direct_dw.c`` (:func:`conv2d_backward`): dW as 16-lane sums over the batch, 4 filters x up to 6 taps in
  registers, db on the way; a fused ReLU's backward (dy only where its output is > 0) happens in the copies;
* ``direct_cv.c``: the same products vectorized over filters, for layers with a multiple of 32 filters (no
  padding columns computed and dropped; the forward and dx also for 16 filters over >= 16 channels,
  :func:`_cv_forward`); it also reads strided positions (forward and dW of strided convs);
* ``phases.c`` (:func:`conv2d_strided`): other strided convolutions as a sum of stride-1 convolutions over
  the phases xpad[a::sh, b::sw] with the taps w[a::sh, b::sw]; the dx of every strided convolution, phase by
  phase, written back to the phase's positions.

What uses it: the ``direct`` and ``strided`` providers of ``convnp.functional.conv`` (``conv_direct.py``), for
float32 convolutions the planner gives them.

Threads: each call cuts the batch into pieces that :func:`num_threads` Python threads (the caller and
``crew.py``'s helpers) take in turn (ctypes releases the GIL); a layer's pad + convolution, and its backward's
dW + dy padding + dx, run piece by piece so that a piece stays in one core's cache. ``convnp.accel.threads``
decides when the kernels get every core.

How it is built: :mod:`convnp.utils.build` compiles the sources once per instruction-set variant (avx512, avx2,
generic: ``isa.h`` sets the register blocking of each; ``CONVNP_ISA`` forces one) into ``$CONVNP_CACHE_DIR``
(default ``~/.cache/convnp``), keyed by a hash of the sources, the flags and the compiler, and loads it with
ctypes. Without a C compiler, or when the build fails, :func:`available` is False (:func:`status` says why) and
convnp uses its NumPy path, which stays the reference: ``tests/accel/test_accel_direct.py`` compares the two.
``CONVNP_ACCEL=0`` switches the C kernels off. Which provider runs a convolution is the planner's choice
(``convnp.accel.planner``); measurements are in docs/performance.md.
"""
from __future__ import annotations

import ctypes
import itertools
import math
import os
import threading
from pathlib import Path

import numpy as np

from .. import workspace
from . import crew
from ..utils import build

__all__ = ["available", "status", "library", "conv2d", "conv2d_backward", "conv2d_strided", "conv2d_strided_backward",
           "pad_planes", "slack", "wide_buffer", "im2col", "col2im", "adam_step", "num_threads", "set_num_threads",
           "pieces", "run_split"]

#: compiled together into one library (adam.c: the fused Adam step used by convnp.optim.Adam)
SOURCES = _SOURCES = tuple(Path(__file__).with_name(name) for name in (
    "isa.h", "direct_conv.c", "direct_dw.c", "direct_cv.c", "pad.c", "phases.c", "patches.c", "adam.c", "layout.c",
    "winograd.c"))
FILTER_BLOCK, _PIXEL_BLOCK = 8, 48  # OB and PB in direct_conv.c
_STORE_RELU, _STORE_ADD = 1, 2  # the forward kernels' store flags (direct_conv.c)
_LANES = 16  # LANES in direct_dw.c (runs of dy are rounded up to it)
_lock = threading.Lock()
_state = {"lib": None, "tried": False, "why": "not built yet", "threads": None, "variant": None}


# ----------------------------------------------------------------------------- build and load
def _build():
    """Compile (or find in the cache) and load the C library for this CPU's variant: ``(CDLL or None, how)``."""
    variant = build.isa_variant()
    lib, how = build.compile_library(
        f"convnp_kernels_{variant}", _SOURCES, build.kernel_flags(variant),
        announce=f"compiling convnp kernels for {variant} (one time, a few seconds)")
    if lib is None:
        build.notice(f"C kernels unavailable, using the NumPy reference ({how.splitlines()[0][:200]})")
        return None, how
    lib.convnp_variant.restype = ctypes.c_char_p
    _state["variant"] = lib.convnp_variant().decode()
    p, i, f = ctypes.c_void_p, ctypes.c_long, ctypes.c_float
    lib.convnp_conv2d_s1.argtypes = [p, i, i, i, p, i, p, i, i, i, i, p, ctypes.c_int, p]
    lib.convnp_conv2d_s1.restype = None
    lib.convnp_conv2d_dw_s1.argtypes = [p, i, i, i, p, p, i, i, i, i, p, i, p, p]
    lib.convnp_conv2d_dw_s1.restype = ctypes.c_int
    lib.convnp_conv2d_dw_wide_s1.argtypes = [p, i, i, i, p, i, i, i, i, p, i, p, p]
    lib.convnp_conv2d_dw_wide_s1.restype = None
    lib.convnp_conv2d_cv.argtypes = [p, i, i, i, p, i, p, i, i, i, i, i, i, p, ctypes.c_int, p]
    lib.convnp_conv2d_cv.restype = ctypes.c_int
    lib.convnp_conv2d_cv_padding.argtypes = [p, p] + [i] * 7 + [p, i, p, i, i, i, i, i, i, p, ctypes.c_int, p]
    lib.convnp_conv2d_cv_padding.restype = ctypes.c_int
    lib.convnp_conv2d_dw_cv.argtypes = [p, i, i, i, p, p, i, i, i, i, i, i, p, i, p, p]
    lib.convnp_conv2d_dw_cv.restype = ctypes.c_int
    for name in ("convnp_im2col", "convnp_col2im"):
        getattr(lib, name).argtypes = [p] + [i] * 14 + [p]
        getattr(lib, name).restype = None
    lib.convnp_pad_planes.argtypes = [p, p, i, i, i, i, i, i, i, p]
    lib.convnp_pad_planes.restype = None
    lib.convnp_phase_gather.argtypes = [p] + [i] * 11 + [p]
    lib.convnp_phase_gather.restype = None
    lib.convnp_phase_scatter.argtypes = [p] + [i] * 9 + [p]
    lib.convnp_phase_scatter.restype = None
    lib.convnp_adam_f32.argtypes = [p, p, p, p, i, f, f, f, f, f, ctypes.c_int, f, f]
    lib.convnp_adam_f32.restype = None
    return lib, f"{how} ({_state['variant']} variant)"


def library():
    """The loaded C library (ctypes.CDLL), or None when it is not available (see :func:`status`)."""
    if not _state["tried"]:
        with _lock:
            if not _state["tried"]:
                _state["lib"], _state["why"] = _build()
                _state["tried"] = True
    return _state["lib"]


def available() -> bool:
    """True when the C kernels are (or can be) compiled and loaded."""
    return library() is not None


def status() -> str:
    """How the kernels were built, or why they are not available."""
    library()
    return _state["why"]


def variant():
    """The instruction-set variant the loaded library was built for ("avx512", "avx2", "generic"), or None."""
    library()
    return _state["variant"]


# ----------------------------------------------------------------------------- threads
def num_threads() -> int:
    """Threads a call splits its batch over: ``set_num_threads``, else $CONVNP_NUM_THREADS, else every core.

    Every core, as PyTorch does: a lone convolution then runs 1.5-2x faster than on one thread. Where
    OpenBLAS's worker threads are still spinning after a matrix product (about 0.1 s), a second kernel thread
    finds its core busy: in a ResNet-20 training step (strided convs on BLAS, the rest here) two kernel threads
    were ~4% slower than one, and running the whole step under :func:`convnp.accel.threads.kernel_threads`
    (BLAS on one thread) faster still: ``convnp.accel.threads.step_threads`` times both settings on a model's
    first steps and keeps the faster.
    """
    if _state["threads"] is None:
        env = os.environ.get("CONVNP_NUM_THREADS", "").strip()
        _state["threads"] = max(1, int(env)) if env.isdigit() else max(1, os.cpu_count() or 1)
    return _state["threads"]


def set_num_threads(n: int) -> None:
    """Use ``n`` threads per call (see also :func:`convnp.accel.threads.kernel_threads`)."""
    if isinstance(n, bool) or int(n) < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    _state["threads"] = int(n)


#: a call's batch is cut into this many pieces per thread, each taken by whichever thread is free (a thread
#: whose core is busy, e.g. with another library's spinning threads, then does less), small enough that a
#: layer's steps on one piece (pad, then convolve) find it in the core's cache. Sums over the batch (dW) are
#: kept per piece and added in piece order: the same numbers on every run.
PIECES_PER_THREAD = 4
#: ... and this many from LARGE_BATCH samples on, where each piece's fixed cost (calls, setup, the wait for the
#: last piece) weighs more than the balance: DeepConvNet's batch-100 step 30.2 -> 29.1 ms with 3, SimpleConvNet's
#: and the VGG-BN net's (batch 64) the same; ResNet-18 at batch 8 needs the 4 (155 against 165 ms with 3)
PIECES_PER_THREAD_LARGE = 3
LARGE_BATCH = 64


def pieces(n, threads=None):
    """The bounds [0, ..., n] of the pieces :func:`run_split` cuts a batch of n into."""
    threads = max(1, min(num_threads() if threads is None else threads, n))
    per_thread = PIECES_PER_THREAD_LARGE if n >= LARGE_BATCH else PIECES_PER_THREAD
    count = 1 if threads == 1 else min(n, threads * per_thread)
    return [n * k // count for k in range(count + 1)]


def run_split(n, call, threads=None):
    """call(start, stop, k) for each piece k of the batch 0..n (:func:`pieces`), on ``threads`` (default
    num_threads()) threads at once (the caller and :mod:`convnp.accel.crew`'s helpers), each taking the next
    piece when it is free. While another thread's call holds the helpers, this one runs its pieces alone."""
    threads = min(num_threads() if threads is None else threads, n)
    bounds = pieces(n, threads)
    if threads <= 1:
        call(0, n, 0)
        return
    taken = itertools.count()  # next() on it is atomic under the GIL: each piece goes to exactly one thread
    failed = []

    def work():
        k = next(taken)
        while k < len(bounds) - 1 and not failed:
            try:
                call(bounds[k], bounds[k + 1], k)
            except BaseException:
                failed.append(k)  # the other threads take no further pieces
                raise
            k = next(taken)
    if not crew.crew(threads - 1).try_run(work, threads - 1):
        work()


# ----------------------------------------------------------------------------- the operations
def slack(kernel_hw, dilation, wp):
    """Floats the kernel may read past the last padded plane (at positions whose outputs it drops): the
    padded input handed to :func:`conv2d` must have this many (zeroed) floats after it in memory."""
    (kh, kw), (dh, dw) = kernel_hw, dilation
    return _PIXEL_BLOCK + (kh - 1) * dh * wp + (kw - 1) * dw + 16


#: byte alignment of packed weights: a vector load from an address that is not a multiple of 64 spans two
#: cache lines on AVX-512 (NumPy's large arrays start 16 bytes into a page): 130 -> 150 GFLOP/s in a 3x3 block
ALIGN = 64


def aligned(a):
    """A C-contiguous float32 copy of ``a`` starting at a multiple of :data:`ALIGN` bytes."""
    a = np.asarray(a, dtype=np.float32)
    buf = np.empty(a.size + ALIGN // 4, np.float32)
    start = (-buf.ctypes.data % ALIGN) // 4
    out = buf[start:start + a.size].reshape(a.shape)
    out[...] = a
    return out


def _pack(w):
    """(O, C, kh, kw) -> (ceil(O/8), C, kh*kw, 8) float32, filters padded with zeros, 64-byte aligned."""
    o, c, kh, kw = w.shape
    ob = -(-o // FILTER_BLOCK)
    wpk = np.zeros((ob * FILTER_BLOCK, c, kh * kw), np.float32)
    wpk[:o] = w.reshape(o, c, kh * kw)
    return aligned(wpk.reshape(ob, FILTER_BLOCK, c, kh * kw).transpose(0, 2, 3, 1))


#: layers with a multiple of this many filters take the kernels vectorized over filters (direct_cv.c): they
#: skip the padding columns that the wide-row kernels compute and drop (a fifth of the work on a 7x7 map),
#: single-threaded 1.2-2x faster on 7x7 and 14x14 maps, as fast or faster on 28x28 and 32x32 ones
CV_FILTERS = 32


def _over_filters(o):
    """True when a layer with ``o`` filters takes direct_cv.c (forward, dW, strides)."""
    return o % CV_FILTERS == 0


def _cv_forward(o, c):
    """True when a stride-1 forward of ``c`` channels to ``o`` filters takes direct_cv.c: a multiple of 32
    filters, or of 16 over at least 16 channels (one vector of filters and twice the positions per block on
    AVX-512; see docs/performance.md)."""
    return _over_filters(o) or (o % 16 == 0 and c >= 16)


def _tap_offsets(kernel_hw, dilation, wp):
    """Flat offset of each kernel tap (i, j) in a padded plane with rows ``wp`` long: i*dh*wp + j*dw (int64)."""
    (kh, kw), (dh, dw) = kernel_hw, dilation
    return np.array([i * dh * wp + j * dw for i in range(kh) for j in range(kw)], dtype=np.int64)


# Each operation is planned as call(start, stop, piece) over pieces of the batch, so that a layer's steps can
# run piece by piece on one thread while that piece's data is in its core's cache (pad, then convolve).
def _conv_plan(xpad, w, b, dilation, out_hw, relu, add=False, y=None, stride=(1, 1), offset=0):
    """(y, call): y (N, O, OH, OW) float32 that call(s, e, _) fills for samples s..e-1 (see :func:`conv2d`);
    with ``add`` the sums are added to what the given ``y`` holds (the ReLU, if any, then applies to the total);
    ``offset``: each plane's origin is that many floats into it (a smaller window of a padded plane).
    A ``stride`` other than 1 needs a multiple of 32 filters (direct_cv.c; the wide-row kernel is stride-1)."""
    n, c, hp1, wp = xpad.shape
    o, _, kh, kw = w.shape
    oh, ow = out_hw
    plane = hp1 * wp
    if y is None:
        y = workspace.empty((n, o, oh, ow), np.float32)
    flags = (_STORE_RELU if relu else 0) | (_STORE_ADD if add else 0)
    offs = _tap_offsets((kh, kw), dilation, wp)
    bias = None if b is None else np.ascontiguousarray(b, dtype=np.float32)
    xa, ya, item = xpad.ctypes.data + offset * 4, y.ctypes.data, 4
    if _cv_forward(o, c):  # direct_cv.c takes the stride after wp
        fn, strides = library().convnp_conv2d_cv, tuple(stride)
        wpk = aligned(w.transpose(1, 2, 3, 0))  # (C, kh, kw, O)
    else:
        assert tuple(stride) == (1, 1), "the wide-row kernel (direct_conv.c) is stride-1 only"
        fn, strides = library().convnp_conv2d_s1, ()
        wpk = _pack(w)

    def call(s, e, _):
        status = fn(xa + s * c * plane * item, e - s, c, plane, wpk.ctypes.data, o, offs.ctypes.data, kh * kw, oh,
                    ow, wp, *strides, None if bias is None else bias.ctypes.data, flags, ya + s * o * oh * ow * item)
        if status:  # (direct_cv.c's forward allocates its position table)
            raise MemoryError("convnp.accel.direct: the convolution kernel could not allocate its position table")
    return y, call


def _padding_conv_plan(x, mask, top, left, padded_hw, w, dilation, out_hw):
    """(y, call) of a stride-1 convolution, no bias, over filters (direct_cv.c), of x (N, C, H, W) zero-padded at
    (top, left) to planes ``padded_hw`` = (Hp + 1, Wp) (masked: x counts where mask > 0) sample by sample inside
    the kernel: the padded copy stays in the core's cache instead of going through memory (the backward's
    dx of a 7x7 map spent 0.2 ms of 0.7 per 12 samples writing it)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (hp1, wp), (oh, ow) = padded_hw, out_hw
    y = workspace.empty((n, o, oh, ow), np.float32)
    offs = _tap_offsets((kh, kw), dilation, wp)
    wpk = aligned(w.transpose(1, 2, 3, 0))  # (C, kh, kw, O)
    fn, xa, ya, item = library().convnp_conv2d_cv_padding, x.ctypes.data, y.ctypes.data, 4
    ma = None if mask is None else mask.ctypes.data

    def call(s, e, _):
        at = s * c * h * wd * item
        status = fn(xa + at, None if ma is None else ma + at, h, wd, top, left, hp1, e - s, c, wpk.ctypes.data, o,
                    offs.ctypes.data, kh * kw, oh, ow, wp, 1, 1, None, 0, ya + s * o * oh * ow * item)
        if status:
            raise MemoryError("convnp.accel.direct: the convolution kernel could not allocate its buffers")
    return y, call


def _pad_plan(x, top, left, out, mask):
    """call(s, e, _) that pads samples s..e-1 of x into out (see :func:`pad_planes`)."""
    fn = library().convnp_pad_planes
    n, c, h, w = x.shape
    hp1, wp = out.shape[2:]
    xa, oa, item = x.ctypes.data, out.ctypes.data, 4
    ma = None if mask is None else mask.ctypes.data

    def call(s, e, _):
        fn(xa + s * c * h * w * item, None if ma is None else ma + s * c * h * w * item, (e - s) * c, h, w, top,
           left, hp1, wp, oa + s * c * hp1 * wp * item)
    return call


def _dw_plan(xpad, dy, kernel_hw, dilation, mask, threads, dy_wide=None, stride=(1, 1)):
    """(call, finish): call(s, e, k) sums samples s..e-1 into piece k's partial dW and db; finish() adds the
    pieces in order -> (dw (O, C, kh, kw), db (O,)) (see :func:`conv2d_backward`).
    ``dy_wide=(dypad, top, left)``: read dy (masked already) from the interior of dypad, whose rows are as long
    as xpad's, instead of copying it (the wide-row kernel only: direct_cv.c transposes dy itself).
    A ``stride`` other than 1 needs a multiple of 32 filters (direct_cv.c)."""
    lib = library()
    n, c, hp1, wp = xpad.shape
    _, o, oh, ow = dy.shape
    kh, kw = kernel_hw
    plane = hp1 * wp
    offs = _tap_offsets(kernel_hw, dilation, wp)
    count = len(pieces(n, threads)) - 1
    over_filters = _over_filters(o)
    parts = np.zeros((count, c, kh, kw, o) if over_filters else (count, o, c, kh, kw), np.float32)
    bias_parts = np.zeros((count, o), np.float32)
    xa, da, item = xpad.ctypes.data, dy.ctypes.data, 4
    failed = []
    assert over_filters or tuple(stride) == (1, 1), "the wide-row dW kernel (direct_dw.c) is stride-1 only"
    wide = None if over_filters else dy_wide

    def call(s, e, k):
        if wide is not None:
            dypad, top, left = wide
            dplane = dypad.shape[2] * dypad.shape[3]
            lib.convnp_conv2d_dw_wide_s1(xa + s * c * plane * item, e - s, c, plane,
                                         dypad.ctypes.data + (s * o * dplane + top * wp + left) * item, dplane, o,
                                         oh, wp, offs.ctypes.data, kh * kw, parts[k].ctypes.data,
                                         bias_parts[k].ctypes.data)
            return
        at = s * o * oh * ow * item
        ma = None if mask is None else mask.ctypes.data + at
        if over_filters:
            status = lib.convnp_conv2d_dw_cv(xa + s * c * plane * item, e - s, c, plane, da + at, ma, o, oh, ow, wp,
                                             *stride, offs.ctypes.data, kh * kw, parts[k].ctypes.data,
                                             bias_parts[k].ctypes.data)
        else:
            status = lib.convnp_conv2d_dw_s1(xa + s * c * plane * item, e - s, c, plane, da + at, ma, o, oh, ow, wp,
                                             offs.ctypes.data, kh * kw, parts[k].ctypes.data, bias_parts[k].ctypes.data)
        if status != 0:
            failed.append(s)

    def finish():
        if failed:
            raise MemoryError("convnp.accel.direct: the weight-gradient kernel could not allocate its buffers")
        dw = parts.sum(axis=0)
        if over_filters:  # (C, kh, kw, O) -> (O, C, kh, kw)
            dw = np.ascontiguousarray(dw.transpose(3, 0, 1, 2))
        return dw, bias_parts.sum(axis=0)
    return call, finish


def conv2d(xpad, w, b, dilation, out_hw, relu=False, pad_from=None, stride=(1, 1)):
    """Stride-1 convolution of a padded input -> y (N, O, OH, OW) float32 (max(y, 0) with ``relu``).

    ``xpad`` (N, C, Hp + 1, Wp): C-contiguous float32, followed in memory by :func:`slack` zeroed floats
    (``convnp.functional.conv._pad_wide(x, pads, mode, slack)`` makes it); ``w`` (O, C, kh, kw), ``b`` (O,)
    or None, ``dilation`` (dh, dw), ``out_hw`` (OH, OW) with OH = Hp - dh*(kh-1), OW = Wp - dw*(kw-1).
    ``pad_from=(x, top, left)``: xpad is only allocated (with its zeroed slack); each thread first zero-pads
    its piece of x into it (:func:`pad_planes`), then convolves that piece while it is in its cache.
    A ``stride`` other than 1 needs a multiple of 32 filters (the filter-vectorized kernel of direct_cv.c).
    """
    y, conv_call = _conv_plan(xpad, w, b, dilation, out_hw, relu, stride=stride)
    if pad_from is None:
        run_split(xpad.shape[0], conv_call)
    else:
        pad_call = _pad_plan(np.ascontiguousarray(pad_from[0]), pad_from[1], pad_from[2], xpad, None)

        def call(s, e, k):  # (a piece may read past its last plane into the next piece's first one, at
            pad_call(s, e, k)  # positions whose outputs the kernel drops)
            conv_call(s, e, k)
        run_split(xpad.shape[0], call)
    return y


def pad_planes(x, top, left, out, mask=None):
    """Copy x (N, C, H, W) into the middle of ``out`` (N, C, Hp1, Wp), zeroing everything around it: ``top``
    rows above, ``left`` columns on the left, the rest of ``out`` below and on the right (``pad.c``).
    With ``mask`` (the shape of x) only entries where mask > 0 are copied, the others become 0 (ReLU backward).
    x, mask: C-contiguous float32; out: C-contiguous float32."""
    run_split(x.shape[0], _pad_plan(x, top, left, out, mask))
    return out


def conv2d_backward(xpad, dy, kernel_hw, dilation, mask=None, dx_from=None):
    """dw (O, C, kh, kw), db (O,) and dx of a stride-1 convolution in ONE pass over the batch, float32.

    ``xpad`` is the padded input :func:`conv2d` took (same layout and slack), ``dy`` (N, O, OH, OW) the
    upstream gradient: dw[o, c, i, j] = sum over n, r, q of dy[n, o, r, q] * xpad[n, c, r + i*dh, q + j*dw],
    db[o] = sum of dy; with ``mask`` (the output of a ReLU fused into the forward) dy counts only where
    mask > 0. Each piece of the batch has its own partial sums, added in piece order at the end (the same
    numbers whichever thread ran which piece).
    With ``dx_from=(dypad, top, left, w_flipped, dx_hw)`` the piece then zero-pads its dy (masked the same
    way) into ``dypad`` (allocated by the caller, slack included) at (top, left) and convolves it with
    ``w_flipped`` (C, O, kh, kw) -> dx (N, C) + dx_hw, while that dy is still in the core's cache.
    """
    n = xpad.shape[0]
    dy = np.ascontiguousarray(dy, dtype=np.float32)
    mask = None if mask is None else np.ascontiguousarray(mask, dtype=np.float32)
    threads = max(1, min(num_threads(), n))
    call, finish, dx = _backward_plan(xpad, dy, kernel_hw, dilation, mask, threads, dx_from)
    run_split(n, call, threads)
    dw, db = finish()
    return dw, db, dx


def _backward_plan(xpad, dy, kernel_hw, dilation, mask, threads, dx_from):
    """(call, finish, dx) of :func:`conv2d_backward`: call(s, e, k) runs piece k, finish() -> (dw, db)."""
    if dx_from is None:
        call, finish = _dw_plan(xpad, dy, kernel_hw, dilation, mask, threads)
        return call, finish, None
    dypad, top, left, w_flipped, dx_hw = dx_from
    oh, wp = dy.shape[2], xpad.shape[3]
    # dW can read dy straight from dypad when its rows are as long as xpad's ("same" padding) and the
    # zeros below the last row cover the 16-float rounding of the run
    shared = dypad.shape[3] == wp and (dypad.shape[2] - top - oh) * wp - left >= _LANES
    dw_call, finish = _dw_plan(xpad, dy, kernel_hw, dilation, mask, threads, (dypad, top, left) if shared else None)
    if _cv_forward(*w_flipped.shape[:2]) and not (shared and not _over_filters(dy.shape[1])):
        # nothing reads dypad but dx's convolution: it pads each sample of dy itself (dypad stays unused)
        dx, conv_call = _padding_conv_plan(dy, mask, top, left, dypad.shape[2:], w_flipped, dilation, dx_hw)
        pad_call = None
    else:
        pad_call = _pad_plan(dy, top, left, dypad, mask)
        dx, conv_call = _conv_plan(dypad, w_flipped, None, dilation, dx_hw, False)

    def call(s, e, k):
        if pad_call is not None:
            pad_call(s, e, k)  # dy of this piece, masked, into dypad (dW reads it there when shared)
        dw_call(s, e, k)
        conv_call(s, e, k)
    return call, finish, dx


# ----------------------------------------------------------------------------- strided convolutions
def wide_buffer(shape, slack_floats, dtype=np.float32, xp=np):
    """An uninitialised array of ``shape`` followed in memory by ``slack_floats`` zeros (a view of a 1-D
    workspace buffer: the kernels read past the last plane at positions whose outputs they drop)."""
    size = math.prod(shape)
    buf = workspace.empty(size + slack_floats, dtype, xp)
    buf[size:] = 0
    return buf[:size].reshape(shape)


def _phase_taps(w, stride):
    """[(a, b, w_ab)]: the phases (a, b) of a strided kernel with their taps w[:, :, a::sh, b::sw] (i % sh == a,
    j % sw == b), for every phase that holds taps."""
    (sh, sw), (kh, kw) = stride, w.shape[2:]
    return [(a, b, w[:, :, a::sh, b::sw]) for a in range(min(sh, kh)) for b in range(min(sw, kw))]


def conv2d_strided(x, w, b, stride, pads, out_hw, relu=False):
    """Strided convolution of x (N, C, H, W) float32, zero-padded by ``pads`` ((top, bottom), (left, right)).

    With a multiple of 32 filters the filter-vectorized kernel (direct_cv.c) reads the padded input at the
    strided positions itself. Otherwise it is a sum of stride-1 convolutions, one per phase (``phases.c``):

        y = sum over (a, b) of conv_stride1(xpad[:, :, a::sh, b::sw], w[:, :, a::sh, b::sw])

    each piece of the batch gathering its phases (padding them on the way) and convolving them while they are
    in its core's cache; the first phase stores y (with the bias), the others add to it, the last applies the
    fused ReLU. Returns ``(y, saved)``: y (N, O, OH, OW) and what :func:`conv2d_strided_backward` needs (the
    padded input, or each phase's input in the order of :func:`_phase_taps`).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (sh, sw), ((pt, pb), (pl, pr)) = stride, pads
    if _over_filters(o):
        wp = wd + pl + pr
        xpad = wide_buffer((n, c, h + pt + pb + 1, wp), slack((kh, kw), (1, 1), wp) + _PIXEL_BLOCK * sw)
        y = conv2d(xpad, w, b, (1, 1), out_hw, relu, pad_from=(x, pt, pl), stride=stride)
        return y, {"xpad": xpad}
    oh, ow = out_hw
    y = workspace.empty((n, o, oh, ow), np.float32)
    gather = library().convnp_phase_gather
    taps = _phase_taps(w, stride)
    phases, calls = [], []
    for k, (a, bb, w_ab) in enumerate(taps):
        ka, kb = w_ab.shape[2:]
        rows, cols = oh + ka - 1, ow + kb - 1  # the phase's input, in the wide layout (one more row)
        x_ab = wide_buffer((n, c, rows + 1, cols), slack((ka, kb), (1, 1), cols))
        _, conv_call = _conv_plan(x_ab, w_ab, b if k == 0 else None, (1, 1), out_hw, relu and k == len(taps) - 1,
                                  add=k > 0, y=y)

        def gather_call(s, e, _, x_ab=x_ab, a=a, bb=bb, rows=rows, cols=cols):
            gather(x[s:].ctypes.data, (e - s) * c, h, wd, sh, sw, a - pt, bb - pl, rows, cols, rows + 1, cols,
                   x_ab[s:].ctypes.data)
        phases.append(x_ab)
        calls.append((gather_call, conv_call))

    def call(s, e, k):
        for gather_call, conv_call in calls:
            gather_call(s, e, k)
            conv_call(s, e, k)
    run_split(n, call)
    return y, {"phases": phases}


def conv2d_strided_backward(saved, dy, w, stride, pads, x_shape, mask=None, need_dx=True):
    """dw (O, C, kh, kw), db (O,) and dx (N, C, H, W) (None without ``need_dx``) of :func:`conv2d_strided`.

    dW: the filter-vectorized kernel on the strided positions of the padded input, or each phase's stride-1 dW.
    dx: phase (a, b) of the padded input gets dy convolved with its taps flipped, as for a stride-1
    convolution (dy zero-padded by the phase's kernel size - 1; one padded copy of dy serves every phase),
    written back to the phase's positions by ``phases.c``'s scatter. The phases cover disjoint positions;
    rows and columns past the last one any tap reads get dx = 0.
    """
    n, c, h, wd = x_shape
    o, _, kh, kw = w.shape
    (sh, sw), (pt, pl) = stride, (pads[0][0], pads[1][0])
    dy = np.ascontiguousarray(dy, dtype=np.float32)
    mask = None if mask is None else np.ascontiguousarray(mask, dtype=np.float32)
    _, _, oh, ow = dy.shape
    threads = max(1, min(num_threads(), n))
    taps = _phase_taps(w, stride)
    if "xpad" in saved:
        call, finish = _dw_plan(saved["xpad"], dy, (kh, kw), (1, 1), mask, threads, stride=stride)
        calls, finishes = [call], [(None, None, finish)]
    else:
        plans = [(a, bb) + _dw_plan(x_ab, dy, w_ab.shape[2:], (1, 1), mask, threads)
                 for (a, bb, w_ab), x_ab in zip(taps, saved["phases"])]
        calls = [call for _, _, call, _ in plans]
        finishes = [(a, bb, finish) for a, bb, _, finish in plans]
    dx, keep = None, []
    if need_dx:
        dx = workspace.empty(x_shape, np.float32)
        last_row, last_col = sh * (oh - 1) + kh - 1 - pt, sw * (ow - 1) + kw - 1 - pl
        dx[:, :, last_row + 1:] = 0  # read by no tap
        dx[:, :, :, last_col + 1:] = 0
        top, left = taps[0][2].shape[2] - 1, taps[0][2].shape[3] - 1  # the largest phase's kernel size - 1
        dypad = wide_buffer((n, o, oh + 2 * top + 1, ow + 2 * left),
                            slack((top + 1, left + 1), (1, 1), ow + 2 * left))
        calls.append(_pad_plan(dy, top, left, dypad, mask))  # the piece's dy, masked, padded once for every phase
        scatter = library().convnp_phase_scatter
        for a, bb, w_ab in taps:
            ka, kb = w_ab.shape[2:]
            rows, cols = oh + ka - 1, ow + kb - 1
            dx_ab, conv_call = _conv_plan(dypad, w_ab[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), None, (1, 1),
                                          (rows, cols), False, offset=(top - ka + 1) * dypad.shape[3] + left - kb + 1)

            def scatter_call(s, e, _, dx_ab=dx_ab, a=a, bb=bb, rows=rows, cols=cols):
                scatter(dx_ab[s:].ctypes.data, (e - s) * c, rows, cols, sh, sw, a - pt, bb - pl, h, wd,
                        dx[s:].ctypes.data)
            calls += [conv_call, scatter_call]
            keep.append(dx_ab)
        keep.append(dypad)  # (the calls hold addresses, not the arrays)

    def call(s, e, k):
        for part in calls:
            part(s, e, k)
    run_split(n, call, threads)
    if finishes[0][0] is None:  # one dW over all taps
        dw, db = finishes[0][2]()
        return dw, db, dx
    dw = np.zeros(w.shape, np.float32)
    for a, bb, finish in finishes:
        dw[:, :, a::sh, bb::sw], db = finish()  # (every phase sums the same dy: any db will do)
    return dw, db, dx


def _patches(fn, src, dst, padded_shape, g):
    # one thread: these copies sit between OpenBLAS's GEMMs, whose spinning workers hold the other cores
    # (split over two threads, a stride-2 5x5 layer's fwd+bwd took 67-81 ms instead of 57-61)
    n, c, hp, wp = padded_shape
    fn(src.ctypes.data, n, c, 0, c, hp, wp, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.oh, g.ow, dst.ctypes.data)


def im2col(xpad, col, g):
    """Patches of the C-contiguous padded float32 ``xpad`` (N, C, Hp, Wp) into ``col`` (C, kh, kw, N, OH, OW)
    for any stride and dilation (``patches.c``; ``g`` a ``convnp.functional.conv._Geom``). Returns ``col``."""
    _patches(library().convnp_im2col, xpad, col, xpad.shape, g)
    return col


def col2im(col, out, g):
    """Adjoint of :func:`im2col`: the patches ``col`` (C, kh, kw, N, OH, OW) added into the C-contiguous
    float32 ``out`` (N, C, Hp, Wp), overlapping windows summed. Returns ``out``."""
    _patches(library().convnp_col2im, col, out, out.shape, g)
    return out


def adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam/AdamW step in place on C-contiguous float32 arrays of one shape (``adam.c``; the rule of
    ``convnp.optim.Adam``, with subnormal numbers flushed to zero)."""
    lib = library()
    lib.convnp_adam_f32(p.ctypes.data, g.ctypes.data, m.ctypes.data, v.ctypes.data, p.size, lr, beta1, beta2, eps,
                        weight_decay, int(bool(decoupled)), lr / (1.0 - beta1 ** step),
                        math.sqrt(1.0 - beta2 ** step))
