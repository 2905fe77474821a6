"""convnp.workspace: large temporaries reuse freed memory, and memory still in use is never handed out twice."""
import numpy as np
import pytest

import convnp
from convnp import workspace
from convnp.functional import conv2d_backward, conv2d_forward
from convnp.nn.losses import CrossEntropyLoss

SHAPE = (64, 16, 28, 28)  # 3 MiB of float32: above MIN_BYTES


@pytest.fixture(autouse=True)
def fresh_cache():
    previous = workspace.set_enabled(True)
    workspace.clear()
    workspace.empty(SHAPE, np.float32)  # a size is cached from its second request on
    yield
    workspace.set_enabled(previous)
    workspace.clear()


def test_memory_of_a_freed_array_is_reused():
    a = workspace.empty(SHAPE, np.float32)
    address = a.ctypes.data
    del a
    b = workspace.empty(SHAPE, np.float32)
    assert b.ctypes.data == address
    assert b.shape == SHAPE and b.dtype == np.float32 and b.flags.c_contiguous and b.flags.writeable


def test_memory_in_use_is_never_handed_out_twice():
    a = workspace.empty(SHAPE, np.float32)
    b = workspace.empty(SHAPE, np.float32)
    assert a.ctypes.data != b.ctypes.data
    a.fill(1.0)
    b.fill(2.0)
    assert np.all(a == 1.0)


def test_a_view_keeps_its_memory_busy():
    a = workspace.empty(SHAPE, np.float32)
    address = a.ctypes.data
    view = a[1:].reshape(-1)[::2]  # a view of a view
    del a
    b = workspace.empty(SHAPE, np.float32)
    assert b.ctypes.data != address
    del view  # now the first buffer is free again (b still holds the second)
    assert workspace.empty(SHAPE, np.float32).ctypes.data == address


def test_same_bytes_other_dtype_and_shape():
    a = workspace.empty(SHAPE, np.float32)
    address = a.ctypes.data
    del a
    b = workspace.empty((np.prod(SHAPE) // 2,), np.float64)  # same byte count
    assert b.ctypes.data == address and b.dtype == np.float64


def test_zeros_are_zero_after_reuse():
    a = workspace.empty(SHAPE, np.float32)
    a.fill(7.0)
    del a
    z = workspace.zeros(SHAPE, np.float32)
    assert not z.any()


def test_a_size_asked_for_once_is_not_kept():
    once = workspace.empty((300, 1000), np.float32)
    assert workspace.cached_bytes() == 0  # plain memory, freed with the array
    again = workspace.empty((300, 1000), np.float32)
    assert workspace.cached_bytes() == again.nbytes


def test_small_arrays_and_disabled_cache_are_plain_numpy():
    small = workspace.empty((10, 10), np.float32)
    small = workspace.empty((10, 10), np.float32)
    assert small.base is None and workspace.cached_bytes() == 0
    workspace.set_enabled(False)
    workspace.empty(SHAPE, np.float32)
    big = workspace.empty(SHAPE, np.float32)
    assert big.base is None and workspace.cached_bytes() == 0


def test_cache_stops_growing_at_max_bytes(monkeypatch):
    monkeypatch.setattr(workspace, "MAX_BYTES", 2 * np.prod(SHAPE) * 4)
    held = [workspace.empty(SHAPE, np.float32) for _ in range(4)]  # all alive: 4 distinct buffers
    assert len({a.ctypes.data for a in held}) == 4
    assert workspace.cached_bytes() == 2 * np.prod(SHAPE) * 4


def test_conv_outputs_kept_by_the_caller_survive_later_steps():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 16, 28, 28)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32) * 0.1
    y1, cache1 = conv2d_forward(x, w, padding=1)
    dx1, dw1, _ = conv2d_backward(np.ones_like(y1), cache1)
    kept = y1.copy(), dx1.copy(), dw1.copy()
    for _ in range(3):  # more steps on other data: must not write into y1 / dx1
        y2, cache2 = conv2d_forward(x * 2, w, padding=1)
        conv2d_backward(np.ones_like(y2), cache2)
    np.testing.assert_array_equal(y1, kept[0])
    np.testing.assert_array_equal(dx1, kept[1])
    np.testing.assert_array_equal(dw1, kept[2])


def test_training_steps_match_with_and_without_the_cache():
    def losses():
        model = convnp.models.get_model("deep_convnet", seed=0)
        opt = convnp.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = CrossEntropyLoss()
        rng = np.random.default_rng(1)
        out = []
        for _ in range(3):
            xb = rng.standard_normal((50, 1, 28, 28)).astype(np.float32)
            tb = rng.integers(0, 10, 50)
            opt.zero_grad()
            out.append(loss_fn(model(xb), tb))
            model.backward(loss_fn.backward())
            opt.step()
        return np.array(out)

    with_cache = losses()
    workspace.set_enabled(False)
    without = losses()
    np.testing.assert_array_equal(with_cache, without)
