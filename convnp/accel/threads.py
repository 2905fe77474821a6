"""Who uses the cores: convnp's own kernel threads instead of OpenBLAS's, where the C kernels do the work.

OpenBLAS's worker threads keep spinning on their cores for a while after every matrix product (its
``THREAD_TIMEOUT``, about 0.1 s by default), so a kernel thread that convnp starts right after one finds
its core busy. :func:`kernel_threads` gives a block NumPy's BLAS on one thread and :mod:`convnp.accel.direct`
splitting each call over all cores; there :func:`matmul` cuts large matrix products into one-thread BLAS calls
on the same cores. :func:`step_threads` decides per training step or inference batch, from
timings of the first steps in each setting, and ``convnp.train`` wraps its steps in it: the layers in ``convnp.nn`` know nothing of threads. Measurements are in
docs/performance.md. It needs threadpoolctl (``pip install "convnp[fast]"``) to reach NumPy's BLAS; without
it, or with ``CONVNP_NUM_THREADS`` set, nothing changes.
"""
from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import threading
import time
import weakref

import numpy as np

from ..backend import get_array_module

_lock = threading.Lock()
_state = {"controller": None, "looked": False, "active": 0, "limited": 0}


def _blas_controller():
    """threadpoolctl's view of the BLAS libraries NumPy loaded, or None (threadpoolctl missing)."""
    if not _state["looked"]:
        with _lock:
            if not _state["looked"]:
                if importlib.util.find_spec("threadpoolctl") is not None:
                    import numpy  # noqa: F401  (make sure its BLAS is loaded)
                    from threadpoolctl import ThreadpoolController
                    ctl = ThreadpoolController().select(user_api="blas")
                    _state["controller"] = ctl if len(ctl.lib_controllers) else None
                _state["looked"] = True
    return _state["controller"]


@contextlib.contextmanager
def kernel_threads():
    """Run a block with NumPy's BLAS on one thread and convnp's direct kernels on every core (see above).

    Yields True when the setting changed, False when it did not (no threadpoolctl, one core,
    ``CONVNP_NUM_THREADS`` given, the direct kernel not in use, or already inside such a block).
    """
    from . import direct, direct_enabled_for
    cores = os.cpu_count() or 1
    # without the direct kernel (no C compiler, accelerators off) the convolutions are GEMMs: keep BLAS's threads
    ctl = None if cores < 2 or os.environ.get("CONVNP_NUM_THREADS") or not direct_enabled_for() \
        else _blas_controller()
    with _lock:
        nested = _state["active"] > 0
        _state["active"] += 1
    try:
        if ctl is None or nested:
            yield False
            return
        previous = direct.num_threads()
        with ctl.limit(limits=1):
            direct.set_num_threads(cores)
            _state["limited"] += 1
            try:
                yield True
            finally:
                _state["limited"] -= 1
                direct.set_num_threads(previous)
    finally:
        with _lock:
            _state["active"] -= 1


#: the thread settings of a model's first steps, in blocks of STEPS_PER_BLOCK steps (False: BLAS's threads, True:
#: kernel threads); the first step of a block is not timed: switching leaves the other setting's threads
#: spinning for a while (alternating single steps made both settings 30-60% slower and the choice a coin toss)
TRIAL_ORDER = (False, True, False, True)
STEPS_PER_BLOCK = 3
_steps = weakref.WeakKeyDictionary()  # model -> {case: {"seen": steps so far, "times": {...}, "use": choice}}


def blas_limited() -> bool:
    """True inside :func:`kernel_threads` when it put NumPy's BLAS on one thread."""
    return _state["limited"] > 0


#: memory-bound passes (copies, ReLU) over fewer elements than this run on one thread (starting others costs more)
PASS_MIN_SIZE = 1 << 16
#: products below this many multiply-adds run as one call (handing a block to a thread costs ~20-50 us)
SPLIT_MACS = 1e6


def pass_threads(size) -> int | None:
    """Threads for a memory-bound pass over ``size`` elements, as ``direct.run_split`` takes them: every core
    (None) inside :func:`kernel_threads`, where BLAS is on one thread, else one (OpenBLAS's workers spin on the
    other cores after each GEMM), and one for small arrays."""
    return None if _state["limited"] and size >= PASS_MIN_SIZE else 1


def matmul(a, b, out=None):
    """``a @ b`` (NumPy's matmul: 2-D or stacked (..., M, K) @ (..., K, N)) on every core, also inside
    :func:`kernel_threads`.

    There NumPy's BLAS runs on one thread (so that its spinning workers leave the C kernels' cores alone), and a
    large product is cut into as many blocks as the kernels have threads (a stack of products by index, a
    single one by output rows or columns, whichever are more), each a one-thread BLAS call on the kernels'
    thread pool (``direct.run_split``; NumPy releases the GIL in BLAS): on 2 cores a ResNet-18 layer-4 GEMM
    (512x4608 @ 4608x392) took 7.1 ms this way, 13.5 ms on one thread, 7.1 ms on OpenBLAS's 2 threads; the
    16 Winograd products of a 64-channel 32x32 layer (batch 64) 19 ms by index, 29 ms by rows. Each output
    element is one BLAS dot product either way: the blocks change speed, not the numbers beyond BLAS's own
    blocking. Anywhere else (CuPy arrays, BLAS on its own threads, small products) it is
    ``matmul(a, b, out=out)``.
    """
    if not (_state["limited"] and type(a) is np.ndarray and type(b) is np.ndarray) or a.ndim < 2 or b.ndim < 2:
        return get_array_module(a).matmul(a, b, out=out)
    from . import direct
    workers = direct.num_threads()
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    stack = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if workers < 2 or math.prod(stack) * m * k * n < SPLIT_MACS or max(m, n) < 2 * workers:
        return np.matmul(a, b, out=out)
    if out is None:
        out = np.empty(stack + (m, n), np.result_type(a, b))
    stacked = out.ndim == 3 and out.shape[0] >= workers  # whole products per thread: a stack is cut by index
    rows = m >= n  # cut the longer side: (100, 100) @ (100, 4320) 0.71 ms by rows, 0.52 by columns
    size = out.shape[0] if stacked else m if rows else n
    cuts = [size * i // workers for i in range(workers + 1)]

    def part(array, lo, hi):  # a stack's slice (an operand without the stack axis is broadcast whole)
        return array[lo:hi] if array.ndim == 3 and array.shape[0] > 1 else array

    def block(_start, _stop, k):  # block k of the output, on the kernels' thread pool
        lo, hi = cuts[k], cuts[k + 1]
        if stacked:
            np.matmul(part(a, lo, hi), part(b, lo, hi), out=out[lo:hi])
        elif rows:
            np.matmul(a[..., lo:hi, :], b, out=out[..., lo:hi, :])
        else:
            np.matmul(a, b[..., lo:hi], out=out[..., lo:hi])
    direct.run_split(workers, block, workers)
    return out


def _can_switch(x) -> bool:
    """kernel_threads() would change something for a step on x: several cores, no CONVNP_NUM_THREADS, a float32
    NumPy array with the C kernels built, threadpoolctl reaching NumPy's BLAS."""
    from . import direct_enabled_for
    return ((os.cpu_count() or 1) > 1 and not os.environ.get("CONVNP_NUM_THREADS") and direct_enabled_for(x)
            and _blas_controller() is not None)


@contextlib.contextmanager
def step_threads(model, x):
    """Run one training step (forward, loss, backward) or one inference batch of ``model`` on ``x`` on the
    thread setting measured fastest for it: :func:`kernel_threads` (NumPy's BLAS on one thread, the C kernels on
    every core) or BLAS's own threads. The first steps of each model and input shape take turns in the two
    settings, in blocks (:data:`TRIAL_ORDER`, :data:`STEPS_PER_BLOCK`; the first step of a block, and the time
    spent measuring new convolution cases, left out of the timings), and the faster setting is kept. The ``reference`` and ``fixed``
    planning modes time nothing and keep BLAS's threads. Used by ``convnp.train`` (fit, evaluate, predict);
    yields True on kernel threads.
    """
    from .. import backend
    from . import planner
    if planner.mode() != "measure" or not _can_switch(x):
        yield False
        return
    key = (tuple(x.shape), str(x.dtype), backend.is_grad_enabled(), bool(getattr(model, "training", False)))
    try:
        records = _steps.setdefault(model, {})
    except TypeError:  # an object that cannot be weakly referenced: no record kept
        records = {}
    rec = records.setdefault(key, {"seen": 0, "times": {False: [], True: []}, "use": None})
    seen = rec["seen"]
    rec["seen"] += 1
    if rec["use"] is not None:
        use, timed = rec["use"], False
    else:  # a trial step: its block's setting, timed unless it is the block's first
        use, timed = TRIAL_ORDER[seen // STEPS_PER_BLOCK], seen % STEPS_PER_BLOCK > 0
    planning = planner.measured_seconds()
    start = time.perf_counter()
    with (kernel_threads() if use else contextlib.nullcontext(False)) as changed:
        yield bool(changed)
    if timed:
        rec["times"][use].append(time.perf_counter() - start - (planner.measured_seconds() - planning))
        if seen + 1 >= len(TRIAL_ORDER) * STEPS_PER_BLOCK:
            rec["use"] = min(rec["times"][True]) < min(rec["times"][False])
