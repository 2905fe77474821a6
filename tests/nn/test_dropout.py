"""Dropout: statistics of the mask, inverted scaling, eval identity, seeding, gradient, errors."""
import numpy as np
import pytest

import convnp
from convnp import nn
from convnp.backend import to_numpy


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_drop_fraction_and_scaling(rate):
    layer = nn.Dropout(rate, seed=0)
    x = np.ones((200, 500), np.float32)
    y = layer(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    dropped = (y == 0).mean()
    assert abs(dropped - rate) < 0.01  # 100k Bernoulli draws: std ~0.0016
    np.testing.assert_allclose(np.unique(y), [0, 1 / (1 - rate)], rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.03  # inverted dropout keeps the expectation


def test_backward_uses_the_same_mask():
    layer = nn.Dropout(0.5, seed=1)
    x = np.random.default_rng(0).standard_normal((10, 20))
    y = layer(x)
    g = np.random.default_rng(1).standard_normal(x.shape)
    dx = layer.backward(g)
    mask = y / x
    np.testing.assert_allclose(dx, g * mask)
    assert set(np.round(np.unique(mask), 12)) == {0.0, 2.0}


def test_eval_is_identity_and_rate_zero_is_identity():
    x = np.random.default_rng(2).standard_normal((4, 5)).astype(np.float32)
    layer = nn.Dropout(0.9).eval()
    assert layer(x) is x
    g = np.ones_like(x)
    assert layer.backward(g) is g
    assert nn.Dropout(0.0)(x) is x


def test_seed_reproducible_and_masks_change_between_calls():
    x = np.ones((50, 50))
    a, b = nn.Dropout(0.5, seed=7), nn.Dropout(0.5, seed=7)
    ya1, ya2 = a(x), a(x)
    np.testing.assert_array_equal(ya1, b(x))
    assert not np.array_equal(ya1, ya2)
    gen = np.random.default_rng(3)
    assert nn.Dropout(0.5, seed=gen).rng is gen


def test_float64_and_dict_config():
    y = nn.Dropout(0.25, seed=0)(np.ones((3, 4)))
    assert y.dtype == np.float64
    layer = nn.Dropout(0.3, seed=5)
    assert layer.get_config() == {"rate": 0.3, "seed": 5}
    assert repr(nn.Dropout(0.3)) == "Dropout(rate=0.3)"
    assert nn.Dropout(**layer.get_config())(np.ones((8, 8))).tolist() == layer(np.ones((8, 8))).tolist()


def test_no_grad_skips_cache():
    layer = nn.Dropout(0.5, seed=0)
    with convnp.no_grad():
        layer(np.ones((2, 2)))
    with pytest.raises(RuntimeError, match="Dropout.backward called before forward"):
        layer.backward(np.ones((2, 2)))


def test_backends(xp):
    x = xp.ones((100, 100), dtype=xp.float32)
    layer = nn.Dropout(0.5, seed=0)
    y = to_numpy(layer(x))
    assert abs((y == 0).mean() - 0.5) < 0.03
    np.testing.assert_array_equal(to_numpy(layer.backward(xp.ones_like(x))), y)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, "a", None])
def test_rate_outside_0_1_raises(rate):
    with pytest.raises(ValueError, match=r"Dropout: rate must be in \[0, 1\), got"):
        nn.Dropout(rate)
