"""Tests for convnp.nn.init: fans, seeded reproducibility, empirical std and bounds against the formulas, errors."""
import math

import numpy as np
import pytest

from convnp.nn import init

CONV = (128, 32, 3, 3)  # fan_in 288, fan_out 1152, 36864 samples
DENSE = (300, 500)  # fan_in 500, fan_out 300, 150000 samples


@pytest.mark.parametrize("shape,fans", [
    ((10, 20), (20, 10)),  # Dense (out, in)
    ((8, 3, 5, 5), (75, 200)),  # Conv2D (out, in, kh, kw)
    ((4, 2, 3), (6, 12)),  # Conv1D
    ((6, 1, 3, 3), (9, 54)),  # depthwise (groups = channels): in/groups = 1
])
def test_compute_fans(shape, fans):
    assert init.compute_fans(shape) == fans


def test_compute_fans_matches_torch():
    torch = pytest.importorskip("torch")
    for shape in [(10, 20), (8, 3, 5, 5), (4, 2, 3), (2, 3, 1, 4, 5)]:
        assert init.compute_fans(shape) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


# name -> (expected std of the distribution, bound for uniform ones or None) as functions of (fan_in, fan_out)
FORMULAS = {
    "glorot_normal": (lambda i, o: math.sqrt(2 / (i + o)), None),
    "glorot_uniform": (lambda i, o: math.sqrt(6 / (i + o)) / math.sqrt(3), lambda i, o: math.sqrt(6 / (i + o))),
    "he_normal": (lambda i, o: math.sqrt(2 / i), None),
    "he_uniform": (lambda i, o: math.sqrt(6 / i) / math.sqrt(3), lambda i, o: math.sqrt(6 / i)),
    "lecun_normal": (lambda i, o: math.sqrt(1 / i), None),
    "lecun_uniform": (lambda i, o: math.sqrt(3 / i) / math.sqrt(3), lambda i, o: math.sqrt(3 / i)),
    "torch_default": (lambda i, o: 1 / math.sqrt(i) / math.sqrt(3), lambda i, o: 1 / math.sqrt(i)),
}


@pytest.mark.parametrize("shape", [CONV, DENSE], ids=["conv", "dense"])
@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_empirical_std_and_bounds_match_formula(name, shape):
    fan_in, fan_out = init.compute_fans(shape)
    std_fn, bound_fn = FORMULAS[name]
    w = init.get_initializer(name)(shape, rng=0)
    assert w.shape == shape and w.dtype == np.float32
    expected = std_fn(fan_in, fan_out)
    assert abs(float(w.mean())) < 0.03 * expected
    assert float(w.std()) == pytest.approx(expected, rel=0.02)
    if bound_fn is not None:
        a = bound_fn(fan_in, fan_out)
        assert float(np.abs(w).max()) <= a * (1 + 1e-6)
        assert float(np.abs(w).max()) > 0.99 * a  # the whole interval is used
    else:
        assert float(np.abs(w).max()) > 3.5 * expected  # a normal, not a uniform or a truncated normal


def test_fan_out_mode_and_gain():
    w = init.he_normal(CONV, rng=1, mode="fan_out")
    assert float(w.std()) == pytest.approx(math.sqrt(2 / 1152), rel=0.02)
    a = init.he_uniform(DENSE, rng=1, mode="fan_out")
    assert float(np.abs(a).max()) <= math.sqrt(6 / 300) * (1 + 1e-6)
    g = init.glorot_uniform(DENSE, rng=2, gain=2.0)
    assert float(np.abs(g).max()) == pytest.approx(2 * math.sqrt(6 / 800), rel=0.01)
    n = init.glorot_normal(DENSE, rng=2, gain=0.5)
    assert float(n.std()) == pytest.approx(0.5 * math.sqrt(2 / 800), rel=0.02)


def test_torch_default_matches_torch_linear_and_conv_bounds():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for layer, shape in [(torch.nn.Linear(500, 300), DENSE), (torch.nn.Conv2d(32, 128, 3), CONV)]:
        ours = init.torch_default(shape, rng=0)
        theirs = layer.weight.detach().numpy()
        assert float(np.abs(ours).max()) == pytest.approx(float(np.abs(theirs).max()), rel=0.01)
        assert float(ours.std()) == pytest.approx(float(theirs.std()), rel=0.03)


def test_normal_uniform_constant():
    w = init.normal((200, 300), std=0.5, mean=2.0, rng=3)
    assert float(w.mean()) == pytest.approx(2.0, abs=0.01) and float(w.std()) == pytest.approx(0.5, rel=0.02)
    u = init.uniform((200, 300), low=1.0, high=3.0, rng=3)
    assert 1.0 <= float(u.min()) < 1.01 and 2.99 < float(u.max()) < 3.0
    np.testing.assert_array_equal(init.constant((2, 3), 0.25), np.full((2, 3), 0.25, np.float32))
    np.testing.assert_array_equal(init.zeros((2, 2)), np.zeros((2, 2)))
    np.testing.assert_array_equal(init.ones((3,)), np.ones(3))
    assert init.normal((4,), std=0.0, mean=1.5).tolist() == [1.5] * 4


@pytest.mark.parametrize("name", sorted(init.INITIALIZERS))
def test_seeded_reproducibility_and_dtype(name):
    fn = init.get_initializer(name)
    a, b = fn((6, 4, 3, 3), rng=7), fn((6, 4, 3, 3), rng=7)
    np.testing.assert_array_equal(a, b)
    # an explicit Generator in the same state gives the same draw; the Generator advances
    g1, g2 = np.random.default_rng(11), np.random.default_rng(11)
    np.testing.assert_array_equal(fn((5, 4), rng=g1), fn((5, 4), rng=g2))
    assert fn((5, 4), rng=np.random.default_rng(0), dtype=np.float64).dtype == np.float64
    if name not in ("zeros", "ones", "constant"):
        assert not np.array_equal(a, fn((6, 4, 3, 3), rng=8))  # another seed, another draw
        g = np.random.default_rng(0)
        assert not np.array_equal(fn((5, 4), rng=g), fn((5, 4), rng=g))


def test_get_initializer_names_aliases_and_callables():
    assert init.get_initializer("He_Normal") is init.he_normal
    assert init.get_initializer("kaiming_uniform") is init.he_uniform
    assert init.get_initializer("xavier_normal") is init.glorot_normal
    assert init.get_initializer("gaussian") is init.normal
    fn = lambda shape, rng=None: np.zeros(shape)  # noqa: E731
    assert init.get_initializer(fn) is fn


def test_layer_uses_its_seeded_initializer():
    from convnp.nn import Dense
    a, b = Dense(30, in_features=40, seed=5), Dense(30, in_features=40, seed=5)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.weight.data, init.he_normal((30, 40), rng=np.random.default_rng(5)))
    c = Dense(30, in_features=40, seed=5, kernel_initializer="glorot_uniform")
    assert float(np.abs(c.weight.data).max()) <= math.sqrt(6 / 70)


@pytest.mark.parametrize("call,message", [
    (lambda: init.get_initializer("he"), r"unknown initializer 'he'; choose one of constant, gaussian, glorot_normal"),
    (lambda: init.compute_fans((5,)), r"compute_fans: need a weight with at least 2 dimensions, got shape \(5,\)"),
    (lambda: init.he_normal((5,)), r"compute_fans: need a weight with at least 2 dimensions"),
    (lambda: init.normal((2, 2), std=-1.0), r"normal: std must be >= 0, got -1.0"),
    (lambda: init.normal((2, 2), std=float("nan")), r"normal: std must be >= 0, got nan"),
    (lambda: init.uniform((2, 2), low=1.0, high=0.0), r"uniform: high \(0.0\) must be >= low \(1.0\)"),
    (lambda: init.he_normal((3, 0)), r"he_normal: fan_in of shape \(3, 0\) is 0; cannot scale by it"),
    (lambda: init.torch_default((0, 2, 0, 3)), r"torch_default: fan_in of shape \(0, 2, 0, 3\) is 0"),
    (lambda: init.glorot_uniform((0, 0)), r"glorot_uniform: fan_avg of shape \(0, 0\) is 0"),
    (lambda: init.he_uniform((3, 4), mode="avg"), r"he_uniform: mode must be 'fan_in', 'fan_out' or 'fan_avg', "
                                                  r"got 'avg'"),
    (lambda: init.glorot_normal((3, 4), gain=0), r"glorot_normal: gain must be > 0, got 0"),
    (lambda: init.glorot_uniform((3, 4), gain=-1.0), r"glorot_uniform: gain must be > 0, got -1.0"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
