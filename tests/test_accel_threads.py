"""convnp.accel.threads: chunked inference runs NumPy's BLAS on one thread and the direct kernel on all cores,
and puts both back afterwards."""
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import convnp
from convnp import accel
from convnp.accel import direct, threads

pytestmark = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores (CI's machine has 2)")


def _blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture(autouse=True)
def no_thread_env(monkeypatch):
    monkeypatch.delenv("CONVNP_NUM_THREADS", raising=False)


def test_inside_blas_is_single_threaded_and_the_kernel_uses_every_core():
    before_blas, before_kernel = _blas_threads(), direct.num_threads()
    assert before_blas and max(before_blas) > 1  # OpenBLAS starts with one thread per core
    with threads.kernel_threads() as changed:
        assert changed
        assert _blas_threads() == [1] * len(before_blas)
        assert direct.num_threads() == os.cpu_count()
    assert _blas_threads() == before_blas and direct.num_threads() == before_kernel


def test_nested_blocks_and_explicit_thread_count_change_nothing(monkeypatch):
    with threads.kernel_threads() as outer:
        with threads.kernel_threads() as inner:
            assert outer and not inner
            assert _blas_threads()[0] == 1
        assert _blas_threads()[0] == 1  # the inner block did not restore early
    monkeypatch.setenv("CONVNP_NUM_THREADS", "2")
    before = _blas_threads()
    with threads.kernel_threads() as changed:
        assert not changed and _blas_threads() == before


def test_settings_come_back_after_an_error():
    before_blas, before_kernel = _blas_threads(), direct.num_threads()
    with pytest.raises(RuntimeError, match="boom"):
        with threads.kernel_threads():
            raise RuntimeError("boom")
    assert _blas_threads() == before_blas and direct.num_threads() == before_kernel


def test_chunked_inference_uses_it_and_matches_unchunked(monkeypatch):
    model = convnp.models.get_model("deep_convnet", seed=0).eval()
    x = np.random.default_rng(0).random((150, 1, 28, 28), dtype=np.float32)
    seen = []
    original = direct.conv2d

    def spy(*args, **kwargs):
        seen.append(direct.num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(direct, "conv2d", spy)
    with convnp.no_grad():
        chunked = model(x)  # 150 > INFERENCE_CHUNK: chunks, with the kernel on every core
        monkeypatch.setattr(convnp.nn.containers, "INFERENCE_CHUNK", None)
        whole = model(x)
    assert os.cpu_count() in seen
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-5)


def test_without_the_direct_kernel_blas_keeps_its_threads(monkeypatch):
    before = _blas_threads()
    with accel.disabled():  # convolutions are GEMMs then: single-threaded BLAS would only slow them down
        with threads.kernel_threads() as changed:
            assert not changed and _blas_threads() == before
    monkeypatch.setattr(direct, "available", lambda: False)  # no C compiler
    with threads.kernel_threads() as changed:
        assert not changed and _blas_threads() == before


def _threads_seen_in_a_training_step(monkeypatch, model, x):
    """One forward and backward of ``model`` in train mode: (BLAS's thread count, the kernel's) each time a
    conv layer's forward or backward runs."""
    from convnp.functional import conv as C
    seen = []
    for name in ("conv2d_forward", "conv2d_backward"):
        original = getattr(C, name)

        def spy(*args, _original=original, **kwargs):
            seen.append((_blas_threads()[0], direct.num_threads()))
            return _original(*args, **kwargs)
        monkeypatch.setattr(C, name, spy)
    model.train()
    y = model(x)
    model.backward(np.ones_like(y))
    return seen


def test_a_training_step_of_a_direct_kernel_model_runs_on_kernel_threads(monkeypatch):
    model = convnp.models.get_model("deep_convnet", seed=0)
    assert threads.trains_on_kernel_threads(model)
    before_blas, before_kernel = _blas_threads(), direct.num_threads()
    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    seen = _threads_seen_in_a_training_step(monkeypatch, model, x)
    assert len(seen) == 12 and set(seen) == {(1, os.cpu_count())}  # 6 conv layers, forward and backward
    assert _blas_threads() == before_blas and direct.num_threads() == before_kernel  # restored in between


def test_models_with_gemm_layers_keep_blas_threads_for_training(monkeypatch):
    from convnp.nn import Conv2D, Dense, Flatten, Sequential
    strided = Sequential([Conv2D(8, 3, strides=2, padding=1, in_channels=3), Flatten(), Dense(4)])
    pointwise = Sequential([Conv2D(8, 1, in_channels=3), Flatten(), Dense(4)])
    big_dense = Sequential([Conv2D(8, 3, padding=1, in_channels=3), Flatten(), Dense(2048, in_features=8 * 32 * 32)])
    for model in (strided, pointwise, big_dense):
        assert not threads.trains_on_kernel_threads(model)
    before = _blas_threads()
    x = np.random.default_rng(1).random((4, 3, 8, 8), dtype=np.float32)
    seen = _threads_seen_in_a_training_step(monkeypatch, strided, x)
    assert seen and all(blas == before[0] for blas, _ in seen)


def test_fused_relu_in_conv_layer_matches_a_separate_relu_layer():
    from convnp.nn import Conv2D, ReLU, Sequential
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 4, 9, 9)).astype(np.float32)
    fused = Conv2D(6, 3, padding=1, activation="relu", in_channels=4, seed=0)
    plain = Sequential([Conv2D(6, 3, padding=1, in_channels=4, seed=0), ReLU()])
    y1, y2 = fused(x), plain(x)
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal(y1.shape).astype(np.float32)
    dx1, dx2 = fused.backward(dy), plain.backward(dy)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fused.weight.grad, plain[0].weight.grad, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused.bias.grad, plain[0].bias.grad, rtol=1e-4, atol=1e-4)


def test_a_few_gemm_path_convs_among_many_direct_ones_still_train_on_kernel_threads():
    from convnp.nn import Conv2D, Flatten, Dense, Sequential

    def net(direct_convs, last=None):  # a 1x1 stride-2 conv (a projection shortcut) stays on the GEMM path
        layers = [Conv2D(8, 3, padding=1, in_channels=8) for _ in range(direct_convs)]
        return Sequential(layers + [last or Conv2D(8, 1, strides=2, in_channels=8), Flatten(), Dense(4)])
    per_gemm = threads.DIRECT_CONVS_PER_GEMM_CONV
    assert threads.trains_on_kernel_threads(net(per_gemm))
    assert not threads.trains_on_kernel_threads(net(per_gemm - 1))
    # a strided 3x3 conv with 8 input channels runs in the direct kernels (direct.conv2d_strided); with 4 it does not
    assert threads.trains_on_kernel_threads(net(1, Conv2D(8, 3, strides=2, padding=1, in_channels=8)))
    assert not threads.trains_on_kernel_threads(net(1, Conv2D(8, 3, strides=2, padding=1, in_channels=4)))
    assert threads.trains_on_kernel_threads(convnp.models.get_model("resnet20_cifar"))  # 2 of 21 convs on GEMMs
    # 4 of 20 on GEMMs (the 7x7 stem on 3 channels, three 1x1 stride-2 shortcuts): measured 495 vs 600 ms a step
    assert threads.trains_on_kernel_threads(convnp.models.get_model("resnet18"))


def test_resnet_training_step_runs_on_kernel_threads(monkeypatch):
    model = convnp.models.get_model("resnet20_cifar", seed=0)
    before_blas = _blas_threads()
    x = np.random.default_rng(3).random((4, 3, 32, 32), dtype=np.float32)
    seen = _threads_seen_in_a_training_step(monkeypatch, model, x)
    assert len(seen) == 2 * 19 and set(seen) == {(1, os.cpu_count())}
    assert _blas_threads() == before_blas
