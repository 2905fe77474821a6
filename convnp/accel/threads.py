"""Who uses the cores: convnp's own kernel threads instead of OpenBLAS's, where the C kernels do the work.

OpenBLAS's worker threads keep spinning on their cores for a while after every matrix product (its
``THREAD_TIMEOUT``, about 0.1 s by default), so a kernel thread that convnp starts right after one finds
its core busy. :func:`kernel_threads` gives a block NumPy's BLAS on one thread and :mod:`convnp.accel.direct`
splitting each call over all cores. :func:`step_threads` decides per training step or inference batch, from
the planner's choices (how much of the previous step's convolution work ran in the C kernels), and
``convnp.train`` wraps its steps in it: the layers in ``convnp.nn`` know nothing of threads. Measurements are in
docs/performance.md. It needs threadpoolctl (``pip install "convnp[fast]"``) to reach NumPy's BLAS; without
it, or with ``CONVNP_NUM_THREADS`` set, nothing changes.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import weakref

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


#: a step runs on kernel threads when at least this share of its convolution work (multiply-adds) ran in the
#: C providers in the previous step of the same model and input shape
KERNEL_SHARE = 0.8
_steps = weakref.WeakKeyDictionary()  # model -> {case: share of the last step's conv work in C kernels}


def blas_limited() -> bool:
    """True inside :func:`kernel_threads` when it put NumPy's BLAS on one thread."""
    return _state["limited"] > 0


@contextlib.contextmanager
def step_threads(model, x):
    """Run one training step (forward, loss, backward) or one inference batch of ``model`` on ``x`` on the thread
    setting its work needs, as the planner decided it: :func:`kernel_threads` when, in the previous step with
    the same input shape, at least :data:`KERNEL_SHARE` of the convolution work ran in the C providers (the
    planner's measured choice, ``convnp.accel.planner``), else NumPy's BLAS keeps its threads. The first step of
    a shape runs with BLAS's threads (and measures the plans). Used by ``convnp.train`` (fit, evaluate, predict).
    Yields True when kernel threads are in use.
    """
    from .. import backend
    from . import planner
    key = (tuple(x.shape), str(getattr(x, "dtype", "")), backend.is_grad_enabled(), bool(getattr(model, "training",
                                                                                                   False)))
    try:
        records = _steps.setdefault(model, {})
    except TypeError:  # an object that cannot be weakly referenced: no record, BLAS's threads
        records = {}
    share = records.get(key)
    use = share is not None and share >= KERNEL_SHARE
    planner.tally_reset()
    with (kernel_threads() if use else contextlib.nullcontext(False)) as changed:
        yield bool(changed)
    records[key] = planner.tally_share(("direct", "strided"))
