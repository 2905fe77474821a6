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


def test_chunked_inference_matches_unchunked_and_predict_tries_kernel_threads(monkeypatch):
    from convnp.train.fit import predict
    monkeypatch.setenv("CONVNP_PLAN", "measure")
    model = convnp.models.get_model("deep_convnet", seed=0).eval()
    x = np.random.default_rng(0).random((150, 1, 28, 28), dtype=np.float32)
    seen = []
    from convnp.functional import conv as C

    def spy(forward):
        def run(*args, **kwargs):
            seen.append(_blas_threads()[0])
            return forward(*args, **kwargs)
        return run
    for name, (can_run, forward, backward) in list(C.PROVIDERS.items()):  # whichever provider the plan picks
        monkeypatch.setitem(C.PROVIDERS, name, (can_run, spy(forward), backward))
    chunked = predict(model, x, batch_size=25)  # 6 batches: 3 on BLAS's threads, then 3 on kernel threads
    assert seen[0] == _blas_threads()[0] and seen[-1] == 1
    monkeypatch.setattr(convnp.nn.containers, "INFERENCE_CHUNK", None)
    with convnp.no_grad():
        whole = model(x)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-5)


def test_without_the_direct_kernel_blas_keeps_its_threads(monkeypatch):
    before = _blas_threads()
    with accel.disabled():  # convolutions are GEMMs then: single-threaded BLAS would only slow them down
        with threads.kernel_threads() as changed:
            assert not changed and _blas_threads() == before
    monkeypatch.setattr(direct, "available", lambda: False)  # no C compiler
    with threads.kernel_threads() as changed:
        assert not changed and _blas_threads() == before


def _threads_seen_in_training_steps(monkeypatch, model, x, steps=2):
    """``steps`` forward+backward passes of ``model`` in train mode, each inside ``threads.step_threads`` as
    ``convnp.train`` runs them: per step, the (BLAS threads, kernel threads) seen by each conv forward/backward."""
    from convnp.functional import conv as C
    from convnp.functional import conv_pool as CP  # conv + ReLU + pool layers run fused (convnp.nn.fusion)
    seen = []
    for module, name in ((C, "conv2d_forward"), (C, "conv2d_backward"), (CP, "conv2d_relu_max_pool2d_forward"),
                         (CP, "conv2d_relu_max_pool2d_backward")):
        original = getattr(module, name)

        def spy(*args, _original=original, **kwargs):
            seen[-1].append((_blas_threads()[0], direct.num_threads()))
            return _original(*args, **kwargs)
        monkeypatch.setattr(module, name, spy)
    model.train()
    for _ in range(steps):
        seen.append([])
        with threads.step_threads(model, x):
            y = model(x)
            model.backward(np.ones_like(y))
    return seen


def test_training_steps_try_both_settings_and_restore_them(monkeypatch):
    monkeypatch.setenv("CONVNP_PLAN", "measure")
    model = convnp.models.get_model("deep_convnet", seed=0)
    before_blas, before_kernel = _blas_threads(), direct.num_threads()
    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    steps = _threads_seen_in_training_steps(monkeypatch, model, x, steps=2 * threads.STEPS_PER_BLOCK)
    first, second = steps[0], steps[-1]
    assert len(first) == len(second) == 12  # 6 conv layers, forward and backward
    assert set(first) == {(before_blas[0], before_kernel)}  # the first block of steps: BLAS's threads
    assert set(second) == {(1, os.cpu_count())}  # the second: kernel threads, BLAS on one
    assert _blas_threads() == before_blas and direct.num_threads() == before_kernel  # restored in between


def test_the_faster_setting_is_kept(monkeypatch):
    monkeypatch.setenv("CONVNP_PLAN", "measure")
    clock = [0.0]
    monkeypatch.setattr(threads.time, "perf_counter", lambda: clock[0])
    x = np.zeros((4, 3), np.float32)
    for kernel_cost, blas_cost, expect in ((1.0, 2.0, True), (3.0, 2.0, False)):
        model = convnp.nn.Sequential([])
        used = []
        trial = [use for use in threads.TRIAL_ORDER for _ in range(threads.STEPS_PER_BLOCK)]
        for _ in range(len(trial) + 3):
            with threads.step_threads(model, x) as kernel:
                used.append(kernel)
                clock[0] += kernel_cost if kernel else blas_cost
        assert used[:len(trial)] == trial
        assert used[-3:] == [expect] * 3


def test_fixed_and_reference_modes_keep_blas_threads(monkeypatch):
    model = convnp.models.get_model("deep_convnet", seed=0)
    x = np.random.default_rng(1).random((4, 1, 28, 28), dtype=np.float32)
    before = _blas_threads()
    for mode in ("fixed", "reference"):
        monkeypatch.setenv("CONVNP_PLAN", mode)
        steps = _threads_seen_in_training_steps(monkeypatch, model, x, steps=3)
        assert all(blas == before[0] for step in steps for blas, _ in step)


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


def test_resnet_training_step_on_kernel_threads(monkeypatch):
    monkeypatch.setenv("CONVNP_PLAN", "measure")
    model = convnp.models.get_model("resnet20_cifar", seed=0)
    before_blas = _blas_threads()
    x = np.random.default_rng(3).random((4, 3, 32, 32), dtype=np.float32)
    second = _threads_seen_in_training_steps(monkeypatch, model, x, steps=2 * threads.STEPS_PER_BLOCK)[-1]
    assert len(second) == 2 * 19 and set(second) == {(1, os.cpu_count())}  # the second block's setting
    assert _blas_threads() == before_blas


@pytest.mark.parametrize("shapes", [((512, 600), (600, 300)),  # rows
                                    ((20, 600), (600, 3000)),  # few rows: columns
                                    ((16, 64, 48), (16, 48, 700)),  # a stack: by index
                                    ((64, 30), (8, 30, 900)),  # a broadcast operand
                                    ((2, 3, 64, 300), (300, 500)),  # several stack axes: rows
                                    ((4, 4), (4, 4))])  # small: one call
def test_matmul_on_kernel_threads_equals_numpy(shapes, monkeypatch):
    monkeypatch.setattr(threads, "SPLIT_MACS", 1)
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    want = np.matmul(a, b)
    with threads.kernel_threads() as changed:
        got = threads.matmul(a, b)
        out = np.full_like(want, np.nan)
        assert threads.matmul(a, b, out=out) is out
    assert changed == (os.cpu_count() > 1 and accel.direct_enabled_for())
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)  # every block written
    np.testing.assert_array_equal(threads.matmul(a, b), want)  # outside: NumPy's matmul itself
