"""Who uses the cores during inference: convnp's own kernel threads instead of OpenBLAS's.

OpenBLAS's worker threads keep spinning on their cores for a while after every matrix product (its
``THREAD_TIMEOUT``, about 0.1 s by default), so a kernel thread that convnp starts right after one finds
its core busy. Measured on the 2-core benchmark machine (DeepConvNet inference, batch 1,000, in one
process, alternating): direct kernel on 1 thread with OpenBLAS on 2: ~3,000 images/s; kernel on 2 threads,
OpenBLAS on 2: ~2,350; kernel on 2 threads, OpenBLAS on 1: ~3,550.

:func:`kernel_threads_for_inference` gives inference exactly that last setting: for the duration of a
chunked ``Sequential`` inference (``no_grad()``, eval mode) NumPy's BLAS runs on one thread, its matrix
products there being small (64-sample chunks), and :mod:`convnp.accel.direct` splits each convolution over
all cores. It needs threadpoolctl (``pip install "convnp[fast]"``) to reach NumPy's BLAS; without it, or with
``CONVNP_NUM_THREADS`` set, nothing changes. Training keeps OpenBLAS's threads: its large weight-gradient
products need them.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import threading

_lock = threading.Lock()
_state = {"controller": None, "looked": False, "active": 0}


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
def kernel_threads_for_inference():
    """Run a block with NumPy's BLAS on one thread and convnp's direct kernel on every core (see above).

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
            try:
                yield True
            finally:
                direct.set_num_threads(previous)
    finally:
        with _lock:
            _state["active"] -= 1
