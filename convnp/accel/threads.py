"""Who uses the cores: convnp's own kernel threads instead of OpenBLAS's, where the direct kernels do the work.

OpenBLAS's worker threads keep spinning on their cores for a while after every matrix product (its
``THREAD_TIMEOUT``, about 0.1 s by default), so a kernel thread that convnp starts right after one finds
its core busy. Measured on the 2-core benchmark machine (DeepConvNet inference, batch 1,000, in one
process, alternating): direct kernel on 1 thread with OpenBLAS on 2: ~3,000 images/s; kernel on 2 threads,
OpenBLAS on 2: ~2,350; kernel on 2 threads, OpenBLAS on 1: ~3,550. Training (DeepConvNet, batch 100, Adam,
forward and both gradients in the direct kernels): 85 ms a step with OpenBLAS on 2 threads and GEMM
gradients, 78 ms with the direct gradients on 1 kernel thread, 56 ms with the kernel on 2 and OpenBLAS on 1.

:func:`kernel_threads` gives a block exactly that last setting: NumPy's BLAS on one thread, and
:mod:`convnp.accel.direct` splitting each call over all cores. ``Sequential`` uses it for chunked inference
(``no_grad()``, eval mode) and for the forward and backward of a training step when
:func:`trains_on_kernel_threads` says every layer's heavy work runs in the direct kernels (stride-1 convs;
a strided, grouped or 1x1 conv or a big Dense layer keeps OpenBLAS's threads for its GEMMs). It needs
threadpoolctl (``pip install "convnp[fast]"``) to reach NumPy's BLAS; without it, or with
``CONVNP_NUM_THREADS`` set, nothing changes.
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
            try:
                yield True
            finally:
                direct.set_num_threads(previous)
    finally:
        with _lock:
            _state["active"] -= 1


#: a Dense layer with more weights than this keeps OpenBLAS's threads for training (its GEMMs are big)
DENSE_WEIGHTS_ON_ONE_THREAD = 1 << 20


def trains_on_kernel_threads(model) -> bool:
    """True when a float32 training step of ``model`` does its heavy work in the direct kernels: every
    convolution has stride 1, one group, a kernel larger than 1x1 and zero padding, every Dense layer has
    at most :data:`DENSE_WEIGHTS_ON_ONE_THREAD` weights, and every other layer is a built-in one without
    matrix products (activations, pooling, dropout, batch norm, padding, flatten, containers)."""
    from ..nn import containers
    from ..nn.layers import activation, conv, dense, dropout, normalization, padding, pooling
    light = (activation.Activation, pooling._Pool2D, pooling._GlobalPool2D, pooling.AdaptiveAvgPool2D,
             dropout.Dropout, normalization._BatchNorm, padding.Padding2D, dense.Flatten, containers.Sequential,
             containers.Identity)
    for m in model.modules():
        if type(m) is conv.Conv2D:
            if (m.strides != (1, 1) or m.groups != 1 or m.kernel_size == (1, 1) or m.padding_mode != "zeros"):
                return False
        elif type(m) is dense.Dense:
            if m.weight is not None and m.weight.data.size > DENSE_WEIGHTS_ON_ONE_THREAD:
                return False
        elif not isinstance(m, light):
            return False
    return True
