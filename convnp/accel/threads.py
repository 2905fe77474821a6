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
(``no_grad()``, eval mode) and, with ``ResNet``, for the forward and backward of a training step when
:func:`trains_on_kernel_threads` says the heavy work runs in the direct kernels (stride-1 convs; models with
more strided, grouped or 1x1 convs, or a big Dense layer, keep OpenBLAS's threads for their GEMMs). It needs
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
#: at most one convolution on the GEMM path (strided, grouped, 1x1) per this many in the direct kernels
DIRECT_CONVS_PER_GEMM_CONV = 4


def _runs_direct(conv) -> bool:
    """True when a Conv2D layer runs in the direct kernels (see ``functional.conv``): one group, zero padding, a
    kernel larger than 1x1; stride 1, or a stride no larger than the kernel with no dilation and at least 8 input
    channels (the strided kernels of ``direct.conv2d_strided``)."""
    from . import direct
    (kh, kw), (sh, sw) = conv.kernel_size, conv.strides
    if conv.groups != 1 or conv.padding_mode != "zeros" or kh * kw == 1:
        return False
    if (sh, sw) == (1, 1):
        return True
    return (kh >= sh and kw >= sw and conv.dilation_rate == (1, 1) and conv.in_channels is not None
            and conv.in_channels >= direct.FILTER_BLOCK)


def trains_on_kernel_threads(model) -> bool:
    """True when a float32 training step of ``model`` does its heavy work in the direct kernels: most
    convolutions run in them (:func:`_runs_direct`; at most one in
    :data:`DIRECT_CONVS_PER_GEMM_CONV + 1` on the GEMM path, which then runs on one BLAS thread), every Dense
    layer has at most :data:`DENSE_WEIGHTS_ON_ONE_THREAD` weights, and every other module says it makes no
    matrix products (``gemm_free``: activations, pooling, dropout, batch norm, padding, flatten, containers,
    ResNet blocks). Measured: DeepConvNet step 85 -> 56 ms, ResNet-20 (2 strided convs, then on GEMMs)
    339 -> 262 ms; with the strided convs in C, ResNet-20 (batch 32) 148 -> 120 ms and ResNet-18 (batch 8,
    112x112) 600 -> 495 ms a step."""
    from ..nn.layers import conv, dense
    direct = gemm = 0
    for m in model.modules():
        if type(m) is conv.Conv2D:
            if _runs_direct(m):
                direct += 1
            else:
                gemm += 1
        elif type(m) is dense.Dense:
            if m.weight is not None and m.weight.data.size > DENSE_WEIGHTS_ON_ONE_THREAD:
                return False
        elif not m.gemm_free:
            return False
    return direct > 0 and gemm * DIRECT_CONVS_PER_GEMM_CONV <= direct


def training_threads(model, x):
    """The context for a training forward of ``model`` on ``x``: :func:`kernel_threads` when the step is a
    float32 NumPy one that :func:`trains_on_kernel_threads` accepts, else nothing. The choice is kept on the
    model for :func:`backward_threads` (used by ``Sequential`` and ``ResNet``)."""
    from .. import backend
    from . import direct_enabled_for  # (a float32 NumPy array, the C kernels built and switched on)
    use = (model.training and backend.is_grad_enabled() and direct_enabled_for(x)
           and trains_on_kernel_threads(model))
    model._step_on_kernel_threads = use
    return kernel_threads() if use else contextlib.nullcontext(False)


def backward_threads(model):
    """The context for the backward of the step that :func:`training_threads` started."""
    return kernel_threads() if getattr(model, "_step_on_kernel_threads", False) else contextlib.nullcontext(False)
