"""convnp.textbook layers: finite-difference gradients, torch oracles, the book's semantics, error messages."""
import numpy as np
import pytest

import convnp
from convnp.gradcheck import numerical_gradient
from convnp.textbook import (Affine, BatchNormalization, Convolution, Dropout, Pooling, Relu, Sigmoid,
                             SoftmaxWithLoss, StableSoftmaxWithLoss)


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def check_layer(layer, x, attrs=(), tol=1e-7, seed=0, **kwargs):
    """L = sum(forward(x) * G): backward's dx and d<attr> against central differences, all in float64."""
    y = layer.forward(x, **kwargs)
    g = np.random.default_rng(seed).standard_normal(y.shape)
    dx = layer.backward(g.copy())
    analytic = {"x": dx.copy(), **{a: getattr(layer, "d" + a).copy() for a in attrs}}

    def loss():
        return float((layer.forward(x, **kwargs) * g).sum())

    errors = {"x": rel_err(analytic["x"], numerical_gradient(loss, x))}
    for a in attrs:
        errors[a] = rel_err(analytic[a], numerical_gradient(loss, getattr(layer, a)))
    assert all(e < tol for e in errors.values()), errors
    return errors


@pytest.fixture
def r():
    return np.random.default_rng(0)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (1, 2)])
def test_convolution_gradients(r, stride, pad):
    layer = Convolution(r.standard_normal((3, 2, 3, 3)), r.standard_normal(3), stride=stride, pad=pad)
    errors = check_layer(layer, r.standard_normal((2, 2, 6, 5)), attrs=("W", "b"))
    assert set(errors) == {"x", "W", "b"}
    assert layer.dW.shape == (3, 2, 3, 3) and layer.db.shape == (3,)


@pytest.mark.parametrize("ph,pw,stride,pad", [(2, 2, 2, 0), (3, 3, 2, 1), (3, 2, 1, 1), (2, 2, 1, 1)])
def test_pooling_gradients(r, ph, pw, stride, pad):
    x = r.permutation(2 * 2 * 7 * 6).reshape(2, 2, 7, 6) / 10.0  # distinct values: no ties
    check_layer(Pooling(ph, pw, stride=stride, pad=pad), x)


def test_relu_sigmoid_affine_gradients(r):
    check_layer(Relu(), r.standard_normal((3, 4)) + 0.05)
    check_layer(Sigmoid(), r.standard_normal((3, 2, 2)))
    layer = Affine(r.standard_normal((12, 5)), r.standard_normal(5))
    x = r.standard_normal((4, 3, 2, 2))
    check_layer(layer, x, attrs=("W", "b"))
    assert layer.backward(np.ones((4, 5))).shape == (4, 3, 2, 2)  # dx has the original rank
    assert layer.original_x_shape == (4, 3, 2, 2)


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 2, 3)])
@pytest.mark.parametrize("train_flg", [True, False])
def test_batch_normalization_gradients(r, shape, train_flg):
    layer = BatchNormalization(1 + r.random(4), r.standard_normal(4), running_mean=r.standard_normal(4),
                               running_var=1 + r.random(4))
    check_layer(layer, r.standard_normal(shape), attrs=("gamma", "beta"), train_flg=train_flg)


def test_softmax_with_loss_gradients_int_and_one_hot(r):
    x = r.standard_normal((5, 4))
    t = np.array([0, 3, 1, 1, 2])
    for target, cls in ((t, StableSoftmaxWithLoss), (np.eye(4)[t], StableSoftmaxWithLoss), (t, SoftmaxWithLoss)):
        layer = cls()  # the book's loss has log(y + 1e-7): its numerical gradient is off by ~1e-7 / y
        layer.forward(x, target)
        dx = layer.backward()
        numeric = numerical_gradient(lambda: layer.forward(x, target), x)
        assert rel_err(dx, numeric) < (1e-7 if cls is StableSoftmaxWithLoss else 1e-5)
        layer.forward(x, target)  # the last numerical forward saw a perturbed x
        np.testing.assert_allclose(layer.backward(dout=2.0), 2 * dx)
        np.testing.assert_allclose(layer.y.sum(axis=1), 1.0)


# ----------------------------------------------------------------------------- semantics
def test_convolution_matches_a_loop_reference(r):
    W, b, x = r.standard_normal((2, 3, 3, 3)), r.standard_normal(2), r.standard_normal((2, 3, 5, 5))
    out = Convolution(W, b, stride=2, pad=1).forward(x)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros((2, 2, 3, 3))
    for n in range(2):
        for f in range(2):
            for i in range(3):
                for j in range(3):
                    ref[n, f, i, j] = (xp[n, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3] * W[f]).sum() + b[f]
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_layers_share_weights_with_the_caller(r):
    W, b = r.standard_normal((2, 1, 3, 3)), np.zeros(2)
    conv, x = Convolution(W, b), r.standard_normal((1, 1, 4, 4))
    before = conv.forward(x)
    W *= 2  # the book's optimizers update params in place; the layer must see it
    np.testing.assert_allclose(conv.forward(x), 2 * before)


def test_pooling_with_padding_works(r):
    x = -1 - r.random((1, 2, 5, 5))  # all negative: a zero-padded cell must not win
    layer = Pooling(3, 3, stride=2, pad=1)
    out = layer.forward(x)
    assert out.shape == (1, 2, 3, 3)  # (5 + 2 - 3) // 2 + 1; the book's class ignores pad here
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    ref = np.array([[[[xp[0, c, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max() for j in range(3)] for i in range(3)]
                     for c in range(2)]])
    np.testing.assert_array_equal(out, ref)
    dx = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape and dx.sum() == out.size  # every window sends its gradient to a real cell
    assert Pooling(2, 2).stride == 2  # default stride 2 (the book's networks always pass stride=2)


def test_relu_keeps_the_books_mask(r):
    layer = Relu()
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(layer.forward(x), [[0, 0, 2]])
    np.testing.assert_array_equal(layer.mask, [[True, True, False]])
    dout = np.ones((1, 3))
    np.testing.assert_array_equal(layer.backward(dout), [[0, 0, 1]])
    assert dout.sum() == 3  # unlike the book, dout is not modified in place


def test_softmax_with_loss_value_and_extremes():
    x = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    layer = SoftmaxWithLoss()
    loss = layer.forward(x, np.array([0, 1]))
    assert loss == pytest.approx(np.log(3) / 2)  # first row: loss 0; second: log 3
    assert np.all(np.isfinite(layer.backward()))


def test_dropout_book_semantics():
    x = np.ones((200, 50))
    layer = Dropout(0.3, seed=0)
    y = layer.forward(x, train_flg=True)
    assert set(np.unique(y)) <= {0.0, 1.0}  # no rescaling in training (the book's dropout)
    assert abs((y == 0).mean() - 0.3) < 0.02
    np.testing.assert_array_equal(layer.backward(np.full_like(x, 2.0)), 2.0 * y)
    np.testing.assert_allclose(layer.forward(x, train_flg=False), 0.7 * x)  # test time: scale by 1 - ratio
    np.testing.assert_allclose(layer.backward(np.ones_like(x)), 0.7)
    a, b = Dropout(0.5, seed=3), Dropout(0.5, seed=3)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))


def test_batch_normalization_book_momentum_and_running_stats(r):
    gamma, beta = np.ones(3), np.zeros(3)
    rm, rv = np.zeros(3), np.ones(3)
    layer = BatchNormalization(gamma, beta, momentum=0.9, running_mean=rm, running_var=rv)
    x = r.standard_normal((4, 3, 2, 2)) * 3 + 5
    y = layer.forward(x, train_flg=True)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-10)  # per channel on 4-D input
    batch_mean, batch_var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(rm, 0.1 * batch_mean)  # 0.9 * old + 0.1 * new, updated in place
    np.testing.assert_allclose(rv, 0.9 + 0.1 * batch_var)
    expected = (x - rm.reshape(1, 3, 1, 1)) / np.sqrt(rv.reshape(1, 3, 1, 1) + 10e-7)
    np.testing.assert_allclose(layer.forward(x, train_flg=False), expected)


def test_torch_oracle_conv_pool_loss(r):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    W, b, x = r.standard_normal((4, 2, 3, 3)), r.standard_normal(4), r.standard_normal((3, 2, 7, 7))
    t = np.array([0, 5, 2])
    conv, pool, aff, last = Convolution(W, b, 2, 1), Pooling(3, 3, 2, 1), Affine(r.standard_normal((16, 6)), np.zeros(6)), StableSoftmaxWithLoss()
    loss = last.forward(aff.forward(pool.forward(conv.forward(x))), t)
    dx = conv.backward(pool.backward(aff.backward(last.backward())))
    tx, tW = torch.tensor(x, requires_grad=True), torch.tensor(W, requires_grad=True)
    z = F.max_pool2d(F.conv2d(tx, tW, torch.tensor(b), stride=2, padding=1), 3, 2, padding=1)
    tl = F.cross_entropy(z.flatten(1) @ torch.tensor(aff.W), torch.tensor(t))
    tl.backward()
    assert loss == pytest.approx(tl.item(), rel=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(conv.dW, tW.grad.numpy(), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- errors
def test_error_messages(r):
    with pytest.raises(ValueError, match=r"Convolution: W must be 4-D \(FN, C, FH, FW\), got shape \(3, 3\)"):
        Convolution(np.zeros((3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"Convolution: b must have shape \(2,\)"):
        Convolution(np.zeros((2, 1, 3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="Convolution: stride must be a positive integer, got 0"):
        Convolution(np.zeros((2, 1, 3, 3)), np.zeros(2), stride=0)
    conv = Convolution(np.zeros((2, 1, 3, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"Convolution: input has 3 channels \(shape \(1, 3, 5, 5\)\) but W \(2, 1, 3, 3\) expects 1"):
        conv.forward(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"Convolution: expected a 4-D input \(N, C, H, W\), got shape \(5, 5\)"):
        conv.forward(np.zeros((5, 5)))
    with pytest.raises(ValueError, match="Convolution: filter 3x3 is larger than the padded input 2x2"):
        conv.forward(np.zeros((1, 1, 2, 2)))
    with pytest.raises(RuntimeError, match="Convolution.backward called before forward"):
        conv.backward(np.zeros((1, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"Pooling: pad \(2\) must be at most half the window \(2x2\)"):
        Pooling(2, 2, pad=2)
    with pytest.raises(ValueError, match="Pooling: pool 2x2 is larger than the padded input 1x1"):
        Pooling(2, 2).forward(np.zeros((1, 1, 1, 1)))
    with pytest.raises(ValueError, match=r"Affine: input \(2, 3, 2\) has 6 features per sample but W \(5, 4\) expects 5"):
        Affine(np.zeros((5, 4)), np.zeros(4)).forward(np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match=r"Affine: b must have shape \(4,\), got \(5,\)"):
        Affine(np.zeros((5, 4)), np.zeros(5))
    with pytest.raises(ValueError, match="SoftmaxWithLoss: batch size mismatch: 2 predictions but 3 labels"):
        SoftmaxWithLoss().forward(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="SoftmaxWithLoss: label 3 is out of range for 3 classes"):
        SoftmaxWithLoss().forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"SoftmaxWithLoss: expected a 2-D input \(N, classes\)"):
        SoftmaxWithLoss().forward(np.zeros((2, 3, 1)), np.array([0, 1]))
    with pytest.raises(RuntimeError, match="SoftmaxWithLoss.backward called before forward"):
        SoftmaxWithLoss().backward()
    with pytest.raises(ValueError, match=r"Dropout: dropout_ratio must be in \[0, 1\), got 1"):
        Dropout(1)
    with pytest.raises(ValueError, match="BatchNormalization: gamma and beta must be 1-D of the same length"):
        BatchNormalization(np.ones(3), np.zeros(2))
    bn = BatchNormalization(np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"BatchNormalization: input \(2, 4\) has 4 features/channels but gamma has 3"):
        bn.forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="BatchNormalization: expected a 2-D .* or 4-D .* input, got shape"):
        bn.forward(np.zeros((2, 3, 4)))


def test_no_grad_skips_the_cache(r):
    conv = Convolution(r.standard_normal((2, 1, 3, 3)), np.zeros(2))
    with convnp.no_grad():
        conv.forward(r.standard_normal((1, 1, 4, 4)))
    with pytest.raises(RuntimeError, match="under convnp.no_grad"):
        conv.backward(np.zeros((1, 2, 2, 2)))
