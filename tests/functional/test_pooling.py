"""Pooling: torch oracles (forward and backward), naive loop references, Keras shapes, ties, gradients, errors."""
import numpy as np
import pytest

import convnp
from convnp import nn
from convnp.backend import to_numpy
from convnp.functional import pooling as P
from convnp.gradcheck import check_module_gradients
from torch_oracle import assert_matches_torch

# (pool_size, strides, padding): non-overlapping, overlapping (3/2), stride > pool, PyTorch padding, pairs
GRID = [(2, None, "valid"), (3, 2, "valid"), (3, 2, 1), (2, 3, 0), (3, 1, 1), ((2, 3), (1, 2), (1, 1)),
        (4, 4, 2), (1, 1, 0)]


def _torch_args(k, s, p):
    return k, (k if s is None else s), (0 if p == "valid" else p)


@pytest.mark.parametrize("k,s,p", GRID)
def test_max_and_avg_pool_match_torch_forward_and_backward(k, s, p):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 8))
    for layer, fn, kw in ((nn.MaxPool2D(k, s, p), F.max_pool2d, {}),
                          (nn.AvgPool2D(k, s, p), F.avg_pool2d, {"count_include_pad": True})):
        y, _ = assert_matches_torch(layer, lambda t: fn(t, *_torch_args(k, s, p), **kw), x, rtol=1e-12, atol=1e-12)
        assert layer.output_shape(x.shape) == y.shape


def test_float32_stays_float32_and_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((2, 4, 12, 12)).astype(np.float32)
    y = nn.MaxPool2D(3, 2)(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2).numpy())
    assert nn.AvgPool2D(2)(x).dtype == np.float32


@pytest.mark.parametrize("k,s,p", GRID[:6] + [(2, None, "same"), (3, 2, "same"), (3, 1, "same"), ((3, 2), (2, 3), "same")])
@pytest.mark.parametrize("cls", [nn.MaxPool2D, nn.AvgPool2D])
def test_gradients_float64(cls, k, s, p):
    x = np.random.default_rng(3).standard_normal((2, 2, 7, 6))
    check_module_gradients(cls(k, s, p), x)


def _naive_pool(x, k, s, pads, reduce):
    """Loop reference over real cells only ("same" semantics: padded cells are ignored)."""
    n, c, h, w = x.shape
    (t, b), (l, r) = pads
    oh, ow = (h + t + b - k) // s + 1, (w + l + r - k) // s + 1
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * s - t, j * s - l
            win = x[:, :, max(r0, 0):min(r0 + k, h), max(c0, 0):min(c0 + k, w)]
            out[:, :, i, j] = reduce(win, axis=(2, 3))
    return out


@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (5, 5), (3, 1), (4, 3)])
def test_same_padding_uses_only_real_cells(k, s):
    # all-negative input: a zero-padded max pool would return 0 at the borders
    x = -np.random.default_rng(4).random((2, 3, 11, 10)) - 0.5
    h, w = x.shape[2:]
    pads = []
    for size in (h, w):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    y_max = nn.MaxPool2D(k, s, "same")(x)
    y_avg = nn.AvgPool2D(k, s, "same")(x)
    assert y_max.shape[2:] == (-(-h // s), -(-w // s))
    np.testing.assert_allclose(y_max, _naive_pool(x, k, s, pads, np.max), rtol=1e-12)
    np.testing.assert_allclose(y_avg, _naive_pool(x, k, s, pads, np.mean), rtol=1e-12)


def test_same_padding_puts_the_extra_row_at_the_bottom():
    # H = 4, pool 2, stride 3: OH = 2, total pad = (2-1)*3 + 2 - 4 = 1 -> top 0, bottom 1
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    y = nn.AvgPool2D(2, 3, "same")(x)
    np.testing.assert_allclose(y[0, 0], [[x[0, 0, :2, :2].mean(), x[0, 0, :2, 3].mean()],
                                          [x[0, 0, 3, :2].mean(), x[0, 0, 3, 3]]])


@pytest.mark.parametrize("layer,expected", [
    (nn.MaxPool2D(2), (64, 64)),
    (nn.MaxPool2D(2, strides=5), (26, 26)),
    (nn.MaxPool2D(5, padding="valid"), (25, 25)),
    (nn.MaxPool2D(5, padding="same"), (26, 26)),
    (nn.AvgPool2D(2), (64, 64)),
])
def test_keras_shapes_on_a_128x128_batch(layer, expected):
    x = np.zeros((32, 3, 128, 128), np.float32)
    with convnp.no_grad():
        y = layer(x)
    assert y.shape == (32, 3) + expected
    assert layer.output_shape(x.shape) == y.shape


def test_ties_send_the_gradient_to_the_first_maximum_only():
    x = np.ones((1, 1, 4, 4))
    layer = nn.MaxPool2D(2)
    layer(x)
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    expected = np.zeros((4, 4))
    expected[0::2, 0::2] = 1  # top-left cell of every window
    np.testing.assert_array_equal(dx[0, 0], expected)
    # a tie between the 2nd and 4th cells of a window: the 2nd (row-major first) wins
    x = np.array([[[[0.0, 5.0], [1.0, 5.0]]]])
    layer(x)
    np.testing.assert_array_equal(layer.backward(np.array([[[[3.0]]]]))[0, 0], [[0, 3], [0, 0]])
    _, cache = P.max_pool2d_forward(x, 2)
    assert P.max_pool2d_argmax(cache)[0, 0, 0, 0] == 1


def test_overlapping_windows_accumulate_gradients():
    # pool 3 stride 2 on a 5x5 map whose centre is the global max: all four windows pick it
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 9.0
    layer = nn.MaxPool2D(3, 2)
    assert layer(x).shape == (1, 1, 2, 2)
    dx = layer.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    assert dx[0, 0, 2, 2] == 10.0 and dx.sum() == 10.0
    avg = nn.AvgPool2D(3, 2)
    avg(x)
    da = avg.backward(np.ones((1, 1, 2, 2)))
    assert da[0, 0, 2, 2] == pytest.approx(4 / 9) and da[0, 0, 0, 0] == pytest.approx(1 / 9)


def test_avg_pool_int_padding_counts_padded_zeros():
    x = np.ones((1, 1, 2, 2))
    y = nn.AvgPool2D(2, 2, padding=1)(x)  # every window holds one real 1 and three padded zeros
    np.testing.assert_allclose(y, np.full((1, 1, 2, 2), 0.25))
    np.testing.assert_allclose(nn.AvgPool2D(2, 2, padding="same")(np.ones((1, 1, 3, 3))), np.ones((1, 1, 2, 2)))


def test_max_pool_padding_never_wins():
    x = -np.ones((1, 1, 2, 2))
    np.testing.assert_array_equal(nn.MaxPool2D(2, 2, padding=1)(x), -np.ones((1, 1, 2, 2)))


def test_rows_that_do_not_fill_a_window_are_dropped_and_get_zero_gradient():
    x = np.random.default_rng(5).standard_normal((1, 2, 5, 5))
    layer = nn.MaxPool2D(2)
    assert layer(x).shape == (1, 2, 2, 2)
    dx = layer.backward(np.ones((1, 2, 2, 2)))
    assert dx.shape == x.shape and not dx[:, :, 4, :].any() and not dx[:, :, :, 4].any()


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pools(keepdims):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 4, 5, 6))
    for layer, ref in ((nn.GlobalAvgPool2D(keepdims), lambda t: t.mean(dim=(2, 3), keepdim=keepdims)),
                       (nn.GlobalMaxPool2D(keepdims), lambda t: t.amax(dim=(2, 3), keepdim=keepdims))):
        y = layer(x)
        assert y.shape == ((3, 4, 1, 1) if keepdims else (3, 4)) == layer.output_shape(x.shape)
        g = rng.standard_normal(y.shape)
        dx = layer.backward(g)
        xt = torch.tensor(x, requires_grad=True)
        yt = ref(xt)
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-15)
        check_module_gradients(type(layer)(keepdims), x)


def test_global_max_tie_goes_to_first():
    layer = nn.GlobalMaxPool2D()
    layer(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(layer.backward(np.array([[2.0]]))[0, 0], [[2, 0], [0, 0]])


@pytest.mark.parametrize("hw,out", [((13, 13), (6, 6)), ((6, 6), (6, 6)), ((7, 7), 7), ((5, 9), 3),
                                    ((10, 7), (4, 3)), ((3, 3), (6, 6)), ((8, 5), (None, 2)), ((14, 14), 7)])
def test_adaptive_avg_pool_matches_torch(hw, out):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3) + hw)
    layer = nn.AdaptiveAvgPool2D(out)
    y = layer(x)
    assert y.shape == layer.output_shape(x.shape)
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.adaptive_avg_pool2d(xt, out)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_adaptive_ranges_formula_and_gradients():
    assert P.adaptive_pool_ranges(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert P.adaptive_pool_ranges(6, 6) == [(i, i + 1) for i in range(6)]
    check_module_gradients(nn.AdaptiveAvgPool2D((3, 2)), np.random.default_rng(8).standard_normal((1, 2, 5, 7)))


def test_backends_agree(xp):
    x = np.random.default_rng(9).standard_normal((2, 3, 9, 9)).astype(np.float32)
    for layer in (nn.MaxPool2D(3, 2), nn.MaxPool2D(2), nn.AvgPool2D(3, 2, "same"), nn.AdaptiveAvgPool2D(4),
                  nn.GlobalMaxPool2D(), nn.GlobalAvgPool2D()):
        y_ref = layer(x)
        dx_ref = layer.backward(np.ones_like(y_ref))
        y = layer(xp.asarray(x))
        dx = layer.backward(xp.ones_like(y))
        np.testing.assert_allclose(to_numpy(y), y_ref, rtol=1e-6)
        np.testing.assert_allclose(to_numpy(dx), dx_ref, rtol=1e-6)


def test_config_roundtrip_and_repr():
    layer = nn.MaxPool2D(3, 2, "same")
    assert type(layer)(**layer.get_config()).get_config() == layer.get_config()
    assert repr(layer) == "MaxPool2D(pool_size=3, strides=2, padding='same')"
    assert repr(nn.AvgPool2D()) == "AvgPool2D()"
    assert nn.AdaptiveAvgPool2D((6, 6)).get_config() == {"output_size": (6, 6)}
    assert nn.GlobalAvgPool2D(keepdims=True).get_config() == {"keepdims": True}


def test_no_grad_skips_cache():
    layer = nn.MaxPool2D(2)
    with convnp.no_grad():
        layer(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(RuntimeError, match="MaxPool2D.backward called before forward"):
        layer.backward(np.zeros((1, 1, 2, 2), np.float32))


def test_errors_name_the_layer():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"MaxPool2D: strides must be positive, got 0"):
        nn.MaxPool2D(2, strides=0)
    with pytest.raises(ValueError, match=r"AvgPool2D: pool_size must be positive, got \(0, 2\)"):
        nn.AvgPool2D((0, 2))
    with pytest.raises(ValueError, match=r"MaxPool2D: pool_size must be an int or a pair of ints, got 'x'"):
        nn.MaxPool2D("x")
    with pytest.raises(ValueError, match=r"MaxPool2D: unknown padding 'full'"):
        nn.MaxPool2D(2, padding="full")
    with pytest.raises(ValueError, match=r"MaxPool2D: padding must be >= 0, got -1"):
        nn.MaxPool2D(2, padding=-1)
    with pytest.raises(ValueError, match=r"MaxPool2D: pool 5x5 is larger than the padded input 4x4"):
        nn.MaxPool2D(5)(x)
    with pytest.raises(ValueError, match=r"AvgPool2D: padding \(2, 2\) must be at most half the pool size \(3, 3\)"):
        nn.AvgPool2D(3, padding=2)(x)
    with pytest.raises(ValueError, match=r"MaxPool2D: expected a 4-D input \(N, C, H, W\), got shape \(4, 4\)"):
        nn.MaxPool2D(2)(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"GlobalAvgPool2D: expected a 4-D input"):
        nn.GlobalAvgPool2D()(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2D: output_size must be positive, got 0"):
        nn.AdaptiveAvgPool2D(0)
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2D: expected a 4-D input"):
        nn.AdaptiveAvgPool2D(2)(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 4-D input \(N, C, H, W\), got shape \(3,\)"):
        P.max_pool2d_forward(np.zeros(3), 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: pool 3x3 is larger than the padded input 2x2"):
        P.avg_pool2d_forward(np.zeros((1, 1, 2, 2)), 3)


@pytest.mark.parametrize("pool,strides,padding", [(3, 2, 1), (3, 2, "same"), (2, 1, 0), ((2, 3), (2, 1), "same")])
def test_max_pool_padding_and_overlap_agree_on_every_backend(xp, pool, strides, padding):
    """On a GPU machine this runs the max-pool kernels (argmax in the forward, a gather in the backward)."""
    rng = np.random.default_rng(13)
    x = np.round(rng.standard_normal((2, 3, 9, 8)) * 2).astype(np.float32)  # ties: the first maximum wins
    y_ref, cache_ref = P.max_pool2d_forward(x, pool, strides, padding)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    y, cache = P.max_pool2d_forward(xp.asarray(x), pool, strides, padding)
    np.testing.assert_array_equal(to_numpy(y), y_ref)
    np.testing.assert_array_equal(to_numpy(P.max_pool2d_argmax(cache)), P.max_pool2d_argmax(cache_ref))
    np.testing.assert_allclose(to_numpy(P.max_pool2d_backward(xp.asarray(dy), cache)),
                               P.max_pool2d_backward(dy, cache_ref), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- PyTorch's options (issue 20)
@pytest.mark.parametrize("k,s,p,d,ceil", [(3, 2, 0, 1, True), (2, 2, 1, 1, True), (3, 2, 1, 2, False),
                                          (3, 3, 0, (2, 1), True), (2, 1, 0, 2, False), (3, 2, 1, 1, True)])
def test_max_pool_ceil_dilation_indices_match_torch(k, s, p, d, ceil):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(2, 3, 9, 10))
    layer = nn.MaxPool2D(k, s, padding=p, dilation=d, ceil_mode=ceil, return_indices=True)
    y, idx = layer(x)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = torch.nn.MaxPool2d(k, s, padding=p, dilation=d, ceil_mode=ceil, return_indices=True)(xt)
    g = np.random.default_rng(1).normal(size=y.shape)
    yt.backward(torch.tensor(g))
    assert y.shape == tuple(yt.shape)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-12)
    if d != 1:  # torch's max_unpool2d has no dilation (its size check refuses these)
        return
    unpool = nn.MaxUnpool2D(k, s, padding=p)
    z = unpool(y, idx, output_size=x.shape)
    zt = torch.nn.functional.max_unpool2d(yt.detach(), it, k, s, p, output_size=x.shape[2:])
    np.testing.assert_array_equal(z, zt.numpy())
    np.testing.assert_array_equal(unpool.backward(x), np.take_along_axis(x.reshape(2, 3, -1), idx.reshape(2, 3, -1),
                                                                         2).reshape(y.shape))


@pytest.mark.parametrize("k,s,p,ceil,cip,div", [(3, 2, 1, True, True, None), (3, 2, 1, True, False, None),
                                                (3, 2, 1, False, False, None), (2, 2, 0, True, True, None),
                                                (3, 1, 1, False, True, 5), (3, 2, 1, True, False, 2)])
def test_avg_pool_options_match_torch(k, s, p, ceil, cip, div):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).normal(size=(2, 2, 7, 8))
    layer = nn.AvgPool2D(k, s, padding=p, ceil_mode=ceil, count_include_pad=cip, divisor_override=div)
    y = layer(x)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=cip, divisor_override=div)(xt)
    g = np.random.default_rng(3).normal(size=y.shape)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-12)
    assert type(layer)(**layer.get_config()).get_config() == layer.get_config()


def test_pool_option_errors():
    with pytest.raises(ValueError, match="divisor_override must be a positive integer, got 0"):
        nn.AvgPool2D(2, divisor_override=0)
    with pytest.raises(ValueError, match="ceil_mode=True needs an int or pair padding"):
        nn.MaxPool2D(2, padding="same", ceil_mode=True)(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 16\)"):
        nn.MaxUnpool2D(2)(np.ones((1, 1, 2, 2)), np.full((1, 1, 2, 2), 99))


@pytest.mark.parametrize("layer", [nn.MaxPool2D(2), nn.MaxPool2D(3, 2, dilation=2), nn.AvgPool2D(3, 2, padding=1),
                                   nn.GlobalAvgPool2D(), nn.GlobalMaxPool2D(), nn.AdaptiveAvgPool2D(2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_empty_batch(layer, dtype):
    y = layer(np.zeros((0, 3, 7, 7), dtype))
    assert y.shape[0] == 0 and y.dtype == dtype
    dx = layer.backward(np.zeros(y.shape, dtype))
    assert dx.shape == (0, 3, 7, 7)
