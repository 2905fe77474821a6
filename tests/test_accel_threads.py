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
