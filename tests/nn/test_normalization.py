"""BatchNorm2D/1D and LocalResponseNorm: torch oracles over several steps, gradients, state dicts, errors."""
import numpy as np
import pytest

import convnp
from convnp import nn
from convnp.backend import to_numpy
from convnp.functional import normalization as N
from convnp.gradcheck import check_module_gradients
from torch_oracle import assert_matches_torch

BN_CASES = [(nn.BatchNorm2D, "BatchNorm2d", (4, 3, 5, 6)), (nn.BatchNorm1D, "BatchNorm1d", (6, 3)),
            (nn.BatchNorm1D, "BatchNorm1d", (5, 3, 4))]


@pytest.mark.parametrize("cls,tname,shape", BN_CASES)
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_batchnorm_matches_torch_over_several_steps_then_eval(cls, tname, shape, momentum):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ref = getattr(torch.nn, tname)(3, momentum=momentum).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(rng.standard_normal(3)))
        ref.bias.copy_(torch.tensor(rng.standard_normal(3)))
    layer = cls(3, momentum=momentum).astype(np.float64)
    layer.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    for step in range(4):
        for mode in ("train",) * 3 + ("eval",):
            layer.train(mode == "train")
            ref.train(mode == "train")
            x = rng.standard_normal(shape) * 3 + 2
            g = rng.standard_normal(shape)
            layer.zero_grad()
            ref.zero_grad()
            assert_matches_torch(layer, ref, x, dy=g, rtol=1e-10, atol=1e-12)
    ours = layer.state_dict()
    for key, value in ref.state_dict().items():
        np.testing.assert_allclose(ours[key], value.numpy(), rtol=1e-12, err_msg=key)
    assert int(ours["num_batches_tracked"]) == 12 and ours["num_batches_tracked"].dtype == np.int64


def test_running_update_uses_unbiased_variance_and_momentum_weights_the_new_batch():
    x = np.array([[1.0], [3.0]])  # mean 2, biased var 1, unbiased var 2
    layer = nn.BatchNorm1D(momentum=0.25).astype(np.float64)
    y = layer(x)
    np.testing.assert_allclose(y[:, 0], [-1 / np.sqrt(1 + 1e-5), 1 / np.sqrt(1 + 1e-5)])  # biased for normalizing
    np.testing.assert_allclose(layer.running_mean, [0.75 * 0 + 0.25 * 2])
    np.testing.assert_allclose(layer.running_var, [0.75 * 1 + 0.25 * 2])
    layer.eval()
    np.testing.assert_allclose(layer(np.array([[0.5]])), [[(0.5 - 0.5) / np.sqrt(1.25 + 1e-5)]])
    np.testing.assert_allclose(layer.running_mean, [0.5])  # eval does not update


@pytest.mark.parametrize("cls,shape", [(nn.BatchNorm2D, (3, 2, 3, 4)), (nn.BatchNorm1D, (5, 3)),
                                       (nn.BatchNorm1D, (4, 2, 3))])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_gradients_float64(cls, shape, training, affine):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape) * 2 + 1
    layer = cls(affine=affine)
    layer(x)
    layer.astype(np.float64)
    if affine:
        layer.weight.data = rng.standard_normal(shape[1])
        layer.bias.data = rng.standard_normal(shape[1])
    layer.running_mean = rng.standard_normal(shape[1])
    layer.running_var = rng.random(shape[1]) + 0.5
    layer.train(training)
    errors = check_module_gradients(layer, x, seed=3, tol=1e-5)
    assert set(errors) == ({"input", "weight", "bias"} if affine else {"input"})


def test_train_backward_is_not_the_affine_gradient():
    # the full batch-norm gradient of sum(y) w.r.t. x is 0 (y has zero mean per channel); eval's is not
    x = np.random.default_rng(1).standard_normal((4, 2, 3, 3))
    layer = nn.BatchNorm2D().astype(np.float64)
    layer(x)
    np.testing.assert_allclose(layer.backward(np.ones_like(x)), 0, atol=1e-12)
    layer.eval()
    layer(x)
    assert np.abs(layer.backward(np.ones_like(x))).min() > 0.5


def test_state_dict_names_match_torch_and_load_from_torch():
    torch = pytest.importorskip("torch")
    layer = nn.BatchNorm2D(4)
    assert list(layer.state_dict()) == list(torch.nn.BatchNorm2d(4).state_dict())
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert layer.state_dict()["num_batches_tracked"].shape == ()
    assert list(nn.BatchNorm1D(3, affine=False).state_dict()) == list(torch.nn.BatchNorm1d(3, affine=False).state_dict())


def test_lazy_num_features_and_config_roundtrip():
    layer = nn.BatchNorm2D(momentum=0.01)
    assert layer.state_dict() == {}
    x = np.random.default_rng(2).standard_normal((2, 5, 3, 3)).astype(np.float32)
    y = layer(x)
    assert y.dtype == np.float32 and layer.num_features == 5 and layer.weight.shape == (5,)
    cfg = layer.get_config()
    assert cfg == {"num_features": 5, "momentum": 0.01}
    clone = nn.BatchNorm2D(**cfg)
    clone.load_state_dict(layer.state_dict())
    layer.eval(), clone.eval()
    np.testing.assert_array_equal(clone(x), layer(x))
    assert repr(nn.BatchNorm2D(8)) == "BatchNorm2D(num_features=8)"


def test_no_grad_still_updates_running_stats_in_training_mode():
    layer = nn.BatchNorm1D(2)
    with convnp.no_grad():
        layer(np.array([[1.0, 2.0], [3.0, 6.0]], np.float32))
    np.testing.assert_allclose(layer.running_mean, [0.2, 0.4])
    with pytest.raises(RuntimeError, match="BatchNorm1D.backward called before forward"):
        layer.backward(np.zeros((2, 2), np.float32))


@pytest.mark.parametrize("size,alpha,beta,k", [(5, 1e-4, 0.75, 1.0), (3, 0.5, 0.75, 2.0), (4, 1.0, 0.5, 1.0),
                                               (1, 0.3, 1.2, 1.5), (9, 0.2, 0.75, 1.0)])
def test_lrn_matches_torch_forward_and_backward(size, alpha, beta, k):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 7, 3, 4)) * 2
    g = rng.standard_normal(x.shape)
    layer = nn.LocalResponseNorm(size, alpha, beta, k)
    y = layer(x)
    dx = layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.LocalResponseNorm(size, alpha, beta, k)(xt)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("size", [2, 3, 5])
def test_lrn_gradients_float64(size):
    x = np.random.default_rng(6).standard_normal((2, 6, 2, 3))
    check_module_gradients(nn.LocalResponseNorm(size, alpha=0.8, beta=0.75, k=1.0), x)
    check_module_gradients(nn.LocalResponseNorm(size, alpha=0.5), x[:, :, 0])  # 3-D input (N, C, L)


def test_lrn_window_is_the_pytorch_one():
    # one nonzero channel c=2 of 5: with size 4 the window of channel j is [j-2, j+1] -> channels 1..4 see it
    x = np.zeros((1, 5, 1, 1))
    x[0, 2] = 2.0
    s = N.local_response_norm_forward(x, size=4, alpha=4.0, beta=1.0, k=1.0)[1][1]
    np.testing.assert_allclose(s[0, :, 0, 0], [1, 5, 5, 5, 5])  # k + alpha/size * 4 where the window holds c=2


def test_backends_agree(xp):
    x = np.random.default_rng(7).standard_normal((4, 3, 5, 5)).astype(np.float32)
    for layer in (nn.BatchNorm2D(3), nn.LocalResponseNorm(3, 0.1)):
        y_ref = layer(x)
        dx_ref = layer.backward(x)
        layer.to("cuda" if xp is not np else "cpu")
        y = layer(xp.asarray(x))
        dx = layer.backward(xp.asarray(x))
        layer.to("cpu")
        np.testing.assert_allclose(to_numpy(y), y_ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(to_numpy(dx), dx_ref, rtol=1e-4, atol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2D: num_features must be a positive integer, got 0"):
        nn.BatchNorm2D(0)
    with pytest.raises(ValueError, match=r"BatchNorm2D: eps must be positive, got 0"):
        nn.BatchNorm2D(eps=0)
    with pytest.raises(ValueError, match=r"BatchNorm1D: momentum must be in \[0, 1\] \(the weight of the new batch\) or None, got 1.5"):
        nn.BatchNorm1D(momentum=1.5)
    with pytest.raises(ValueError, match=r"BatchNorm2D: expected a 4-D input \(N, C, H, W\), got shape \(2, 3\)"):
        nn.BatchNorm2D()(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"BatchNorm1D: expected a 2-D or 3-D input \(N, C\) or \(N, C, L\), got shape \(2, 3, 4, 5\)"):
        nn.BatchNorm1D(3)(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"BatchNorm2D: expected 3 input channels, got 4 \(input shape \(2, 4, 2, 2\)\)"):
        nn.BatchNorm2D(3)(np.zeros((2, 4, 2, 2)))
    with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per channel when training, got input shape \(1, 3\)"):
        nn.BatchNorm1D(3)(np.zeros((1, 3)))
    nn.BatchNorm1D(3).eval()(np.zeros((1, 3), np.float32))  # a single sample is fine in eval mode
    with pytest.raises(ValueError, match=r"LocalResponseNorm: size must be a positive integer, got 0"):
        nn.LocalResponseNorm(0)
    with pytest.raises(ValueError, match=r"LocalResponseNorm: k must be positive"):
        nn.LocalResponseNorm(k=0)
    with pytest.raises(ValueError, match=r"LocalResponseNorm: alpha must be non-negative, got -1"):
        nn.LocalResponseNorm(alpha=-1)
    with pytest.raises(ValueError, match=r"LocalResponseNorm: expected an input with 3 or more dimensions \(N, C, \.\.\.\), got shape \(2, 3\)"):
        nn.LocalResponseNorm()(np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="LocalResponseNorm.backward called before forward"):
        nn.LocalResponseNorm().backward(np.zeros((1, 2, 2, 2)))


# ----------------------------------------------------------------------------- PyTorch's options (issue 20)
@pytest.mark.parametrize("kw", [dict(track_running_stats=False), dict(bias=False), dict(affine=False),
                                dict(track_running_stats=False, bias=False)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_options_match_torch(kw, training):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(4, 3, 5, 5)) * 2 + 1
    layer, ref = nn.BatchNorm2D(3, **kw), torch.nn.BatchNorm2d(3, **kw).double()
    if layer.weight is not None:
        w = np.random.default_rng(1).uniform(0.5, 1.5, 3)
        layer.weight.data = w.copy()
        ref.weight.data = torch.tensor(w)
    layer.train(training)
    ref.train(training)
    assert sorted(layer.state_dict()) == sorted(ref.state_dict())
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    y = layer(x)
    g = np.random.default_rng(2).normal(size=y.shape)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    if layer.weight is not None:
        np.testing.assert_allclose(layer.weight.grad, ref.weight.grad.numpy(), rtol=1e-10)
    assert (layer.bias is None) == (ref.bias is None)
    for key, value in ref.state_dict().items():
        np.testing.assert_allclose(layer.state_dict()[key], value.numpy(), rtol=1e-6, err_msg=key)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_empty_batch(training, dtype):
    for layer, shape in ((nn.BatchNorm2D(3), (0, 3, 4, 4)), (nn.BatchNorm1D(3), (0, 3))):
        layer.running_mean = np.full(3, 0.5, np.float32)
        layer.train(training)
        y = layer(np.zeros(shape, dtype))
        assert y.shape == shape and y.dtype == dtype
        dx = layer.backward(np.zeros(shape, dtype))
        assert dx.shape == shape
        np.testing.assert_array_equal(layer.weight.grad, np.zeros(3))
        np.testing.assert_array_equal(layer.running_mean, np.full(3, 0.5))  # as torch: no statistic moves
        assert int(layer.num_batches_tracked) == int(training)
