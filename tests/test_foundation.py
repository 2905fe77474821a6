"""Module/Parameter contract, Dense, activations, serialization and the MNIST loader."""
import numpy as np
import pytest

import convnp
from convnp import nn
from convnp.functional import activation as A
from convnp.gradcheck import check_module_gradients, numerical_gradient, max_relative_error


def make_mlp():
    return nn.Sequential([nn.Flatten(), nn.Dense(5, activation="tanh", seed=0), nn.Dense(3, seed=1)])


def test_state_dict_keys_follow_attribute_paths():
    model = make_mlp()
    model(np.zeros((2, 1, 2, 2), np.float32))
    assert list(model.state_dict()) == ["1.weight", "1.bias", "2.weight", "2.bias"]
    assert model.state_dict()["1.weight"].shape == (5, 4)


def test_load_state_dict_roundtrip_and_errors():
    a, b = make_mlp(), nn.Sequential([nn.Flatten(), nn.Dense(5, activation="tanh", seed=7), nn.Dense(3, seed=8)])
    x = np.random.default_rng(0).standard_normal((2, 1, 2, 2)).astype(np.float32)
    a(x), b(x)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x), b(x))
    bad = dict(a.state_dict())
    bad["1.weight"] = np.zeros((4, 4), np.float32)
    bad["extra"] = np.zeros(1)
    del bad["2.bias"]
    with pytest.raises(ValueError) as err:
        b.load_state_dict(bad)
    msg = str(err.value)
    assert "1.weight: expected (5, 4), got (4, 4)" in msg and "missing keys: 2.bias" in msg and "unexpected keys: extra" in msg


def test_dense_gradients_float64():
    layer = nn.Dense(4, activation="sigmoid", in_features=3, seed=0).astype(np.float64)
    x = np.random.default_rng(1).standard_normal((5, 3))
    errors = check_module_gradients(layer, x)
    assert set(errors) == {"input", "weight", "bias"}


def test_backward_before_forward_is_clear():
    with pytest.raises(RuntimeError, match="Dense.backward called before forward"):
        nn.Dense(2, in_features=3).backward(np.zeros((1, 2), np.float32))


def test_dense_rejects_wrong_width_and_rank():
    layer = nn.Dense(2, in_features=3)
    with pytest.raises(ValueError, match="Dense: expected 3 input channels, got 4"):
        layer(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="add Flatten"):
        nn.Dense(2)(np.zeros((1, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="units must be a positive integer, got 0"):
        nn.Dense(0)


def test_accumulates_gradients_for_shared_weights():
    layer = nn.Dense(2, in_features=3, seed=0)
    x = np.ones((1, 3), np.float32)
    layer(x); layer.backward(np.ones((1, 2), np.float32))
    first = layer.weight.grad.copy()
    layer(x); layer.backward(np.ones((1, 2), np.float32))
    np.testing.assert_allclose(layer.weight.grad, 2 * first)
    layer.zero_grad()
    assert layer.weight.grad is None


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "log_softmax", "identity"])
def test_activation_gradients_and_stability(name):
    layer = nn.Activation(name)
    x = np.random.default_rng(2).standard_normal((3, 4)) + 0.05  # keep away from the ReLU kink
    check_module_gradients(layer, x)
    extreme = np.array([[-1000.0, 0.0, 1000.0]], np.float32)
    with np.errstate(over="raise", invalid="raise"):
        y = layer(extreme)
        dx = layer.backward(np.ones_like(y))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))


def test_activations_match_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32) * 3
    tx = torch.tensor(x)
    pairs = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
             "softmax": lambda t: torch.softmax(t, -1), "log_softmax": lambda t: torch.log_softmax(t, -1),
             "elu": torch.nn.functional.elu, "leaky_relu": torch.nn.functional.leaky_relu}
    for name, fn in pairs.items():
        fwd, _ = A.ACTIVATIONS[name]
        np.testing.assert_allclose(fwd(x), fn(tx).numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_unknown_activation_lists_choices():
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        nn.Dense(3, activation="swishy")


def test_config_roundtrip_rebuilds_same_outputs():
    model = make_mlp()
    x = np.random.default_rng(4).standard_normal((2, 1, 2, 2)).astype(np.float32)
    y = model(x)
    clone = nn.module_from_config(nn.module_to_config(model))
    clone(x)
    clone.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(clone(x), y)
    assert "Dense(units=5, activation='tanh'" in repr(model)


def test_summary_counts_parameters():
    model = make_mlp()
    text = model.summary((1, 2, 2), print_fn=None)
    assert "(None, 5)" in text and "(None, 3)" in text
    assert f"Total params: {5*4+5+3*5+3:,}" in text
    assert model.num_parameters() == sum(p.size for p in model.parameters())


def test_no_grad_skips_cache():
    layer = nn.Dense(2, in_features=3)
    with convnp.no_grad():
        layer(np.zeros((1, 3), np.float32))
    with pytest.raises(RuntimeError, match="no_grad"):
        layer.backward(np.zeros((1, 2), np.float32))


def test_numerical_gradient_of_quadratic():
    x = np.array([1.0, -2.0, 3.0])
    g = numerical_gradient(lambda: float((x ** 2).sum()), x)
    assert max_relative_error(g, 2 * x) < 1e-8


def test_load_mnist_shapes_and_labels():
    (x, t), (xt, tt) = convnp.data.load_mnist()
    assert x.shape == (60000, 1, 28, 28) and x.dtype == np.float32
    assert xt.shape == (10000, 1, 28, 28) and tt.shape == (10000,)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert t[:5].tolist() == [5, 0, 4, 1, 9] and tt[:3].tolist() == [7, 2, 1]
    (xf, th), _ = convnp.data.load_mnist(normalize=False, flatten=True, one_hot=True)
    assert xf.shape == (60000, 784) and xf.max() == 255.0
    assert th.shape == (60000, 10) and th[0, 5] == 1.0 and th.sum() == 60000


def test_corrupt_mnist_file_is_rejected(tmp_path):
    from convnp.data import verify_checksum, read_idx
    p = tmp_path / "x.gz"
    p.write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="checksum mismatch"):
        verify_checksum(p, "0" * 64)
    with pytest.raises(ValueError, match="cannot read idx file"):
        read_idx(p)


def test_dense_activations_and_sequential_agree_on_every_backend(xp):
    """On a GPU machine: a Sequential of Dense and activation layers on CuPy gives NumPy's numbers."""
    rng = np.random.default_rng(14)
    x = rng.standard_normal((4, 2, 3, 2)).astype(np.float32)
    model = nn.Sequential([nn.Flatten(), nn.Dense(7, activation="relu", seed=0), nn.Dense(6, activation="tanh", seed=1),
                           nn.LeakyReLU(0.1), nn.Dense(5, activation="elu", seed=2), nn.Sigmoid(), nn.Dense(3, seed=3),
                           nn.LogSoftmax()])
    y_ref = model(x)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    dx_ref = model.backward(dy)
    grads_ref = [np.array(p.grad) for p in model.parameters()]
    model.zero_grad()
    model.to("cpu" if xp is np else "cuda")
    y = model(xp.asarray(x))
    dx = model.backward(xp.asarray(dy))
    assert isinstance(y, xp.ndarray)
    np.testing.assert_allclose(convnp.to_numpy(y), y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(convnp.to_numpy(dx), dx_ref, rtol=1e-4, atol=1e-6)
    for p, g in zip(model.parameters(), grads_ref):
        np.testing.assert_allclose(convnp.to_numpy(p.grad), g, rtol=1e-4, atol=1e-6)
    for name, (fwd, bwd) in A.ACTIVATIONS.items():
        z = x.reshape(4, -1)
        ref_y = fwd(z)
        got_y = fwd(xp.asarray(z))
        np.testing.assert_allclose(convnp.to_numpy(got_y), ref_y, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(convnp.to_numpy(bwd(xp.asarray(z), xp.asarray(z), got_y)), bwd(z, z, ref_y),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
