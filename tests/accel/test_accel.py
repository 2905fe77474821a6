"""convnp.accel: every compiled kernel gives what its NumPy twin gives (the NumPy path is the reference).

The rest of the suite runs with the kernels on (the C kernels build wherever a C compiler is), so torch conformance and the
gradient checks cover the accelerated path; here each hooked function runs both ways on a grid.
"""
import os
import subprocess
import sys

import numpy as np
import pytest


import convnp  # noqa: E402
from convnp import accel, optim  # noqa: E402
from convnp.functional import activation as A  # noqa: E402
from convnp.functional import conv as C
from convnp.functional import conv_gemm as G  # noqa: E402
from convnp.functional import pooling as P  # noqa: E402
from convnp.nn.losses import CrossEntropyLoss  # noqa: E402
from float_sums import assert_close_in_sum_order  # noqa: E402


def both_ways(fn):
    """(result with the kernels, result on the NumPy path)."""
    assert accel.available()
    with_kernels = fn()
    with accel.disabled():
        reference = fn()
    return with_kernels, reference


def assert_same(a, b, dtype):
    if a is None or b is None:
        assert a is None and b is None
        return
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert a.shape == b.shape and a.dtype == b.dtype
    # float32 sums of thousands of products (a weight gradient over 20*14*14 positions) come out in another
    # order in the compiled kernels: both paths are ~4e-4 off the float64 result on |values| ~150, so the
    # absolute tolerance follows the size of the values (measured difference between the paths: 6e-5)
    scale = float(np.abs(b).max()) if b.size and dtype == np.float32 else 1.0
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, scale / 10))


# (N, C, H, W, filters, kernel, stride, padding, dilation, groups, padding_mode): the wide stride-1 layout,
# strided, dilated, grouped, non-zero padding modes, the per-sample path (K < O) and 1x1
CONV_GRID = [
    (3, 4, 9, 8, 5, 3, 1, 1, 1, 1, "zeros"), (3, 4, 9, 8, 6, 3, 2, 1, 1, 1, "zeros"),
    (2, 4, 10, 11, 4, 3, 1, "same", 2, 1, "zeros"), (2, 6, 8, 8, 6, 3, 1, 1, 1, 3, "zeros"),
    (2, 3, 8, 9, 4, (3, 2), (2, 1), ((1, 0), (2, 1)), 1, 1, "reflect"), (2, 2, 7, 7, 8, 5, 1, 0, 1, 1, "zeros"),
    (2, 2, 7, 7, 8, 3, 2, 1, 1, 1, "circular"), (2, 5, 6, 6, 3, 1, 1, 0, 1, 1, "zeros"),
    (2, 4, 9, 9, 4, 3, 1, 1, 1, 1, "replicate"), (20, 16, 14, 14, 32, 3, 1, 1, 1, 1, "zeros"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_GRID)
def test_conv2d_forward_and_backward_equal_numpy_path(case, dtype, monkeypatch):
    n, c, h, w, f, k, s, p, d, groups, mode = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    kh, kw = (k, k) if isinstance(k, int) else k
    wt = rng.standard_normal((f, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)

    dy = np.cos(C.conv2d_forward(x, wt, b, stride=s, padding=p, dilation=d, groups=groups, padding_mode=mode,
                                 save_cache=False)[0])  # deterministic, shaped like y, the same for both paths

    def run(x=x, wt=wt, b=b, dy=dy):
        y, cache = C.conv2d_forward(x, wt, b, stride=s, padding=p, dilation=d, groups=groups, padding_mode=mode)
        return (y,) + C.conv2d_backward(dy, cache)

    # sum|terms| of every output: the same sums in float64 on absolute values (see tests/float_sums.py)
    with accel.disabled():
        magnitudes = run(*(np.abs(v).astype(np.float64) for v in (x, wt, b, dy)))
    n_terms = max(c // groups * kh * kw + 1, n * dy.shape[2] * dy.shape[3], f * kh * kw)
    # the default sizes (patches cached for backward) and tiny ones (patches streamed block by block)
    for block_bytes, chunk_bytes in ((G.COL_BLOCK_BYTES, G.COL_CHUNK_BYTES), (4096, 4096)):
        monkeypatch.setattr(G, "COL_BLOCK_BYTES", block_bytes)
        monkeypatch.setattr(G, "COL_CHUNK_BYTES", chunk_bytes)
        fast, ref = both_ways(run)
        for a, r, mag in zip(fast, ref, magnitudes):
            assert_close_in_sum_order(a, r, mag, n_terms, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (2, 1, 0), (2, 3, 0), (2, 2, 1), (2, 2, "same"), ((2, 2), (1, 2), (1, 0)),
                                   (3, 2, 0), (3, 1, 1), (3, 3, 0), (3, 2, "same"), ((3, 3), (2, 1), (1, 1))])
def test_max_pool_kernels_equal_numpy_path_with_ties(k, s, p, dtype):
    rng = np.random.default_rng(1)
    x = rng.integers(-2, 3, size=(3, 4, 9, 7)).astype(dtype)  # many ties, many all-equal windows
    x[0, 0] = 0.0  # whole plane tied: the first cell of every window takes the gradient
    dy = rng.standard_normal(P.max_pool2d_forward(x, k, s, p)[0].shape).astype(dtype)

    def run():
        y, cache = P.max_pool2d_forward(x, k, s, p)
        return y, P.max_pool2d_backward(dy, cache)

    (y, dx), (y_ref, dx_ref) = both_ways(run)
    np.testing.assert_array_equal(y, y_ref)
    assert_same(dx, dx_ref, dtype)
    assert dx.shape == x.shape


@pytest.mark.parametrize("width", [7, 14, 17, 24, 32, 34, 40])  # 3 to 20 outputs a row: both 2x2/2 kernels on
def test_max_pool_2x2_stride_2_rows_equal_numpy_path(width):  # AVX-512 (<= 16 outputs a row, more)
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 3, size=(3, 5, 6, width)).astype(np.float32)  # ties everywhere
    x[0, 0] = 0.0
    x[1, 2, 2, 5] = np.nan
    x[2, 1, 4, 6] = -np.inf
    dy = rng.standard_normal((3, 5, 3, width // 2)).astype(np.float32)

    def run():
        y, cache = P.max_pool2d_forward(x, 2)
        return y, P.max_pool2d_backward(dy, cache), P.max_pool2d_indices(cache)

    (y, dx, idx), (y_ref, dx_ref, idx_ref) = both_ways(run)
    np.testing.assert_array_equal(y, y_ref)  # (NaN == NaN here)
    np.testing.assert_array_equal(dx, dx_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    assert np.isnan(y[1, 2, 1, 2]) and dx[1, 2, 2:4, 4:6].sum() == 0


@pytest.mark.parametrize("k,s,p", [(3, 2, 1), (2, 2, 1), (3, 1, "same")])
def test_max_pool_kernel_reads_the_padding_as_minus_inf_without_a_copy(k, s, p):
    """The kernel pads one plane at a time: windows over -inf inputs and padding, argmax and indices as NumPy's."""
    rng = np.random.default_rng(2)
    x = rng.integers(-1, 2, size=(2, 3, 7, 8)).astype(np.float32)
    x[0, 0] = -np.inf  # every window all -inf, padding included: the first cell (maybe padding) is the argmax
    x[1, 2, :, 0] = -np.inf
    dy = rng.standard_normal(P.max_pool2d_forward(x, k, s, p)[0].shape).astype(np.float32)

    def run():
        y, cache = P.max_pool2d_forward(x, k, s, p)
        return y, P.max_pool2d_backward(dy, cache), P.max_pool2d_indices(cache), P.max_pool2d_argmax(cache)

    (y, dx, indices, argmax), (y_ref, dx_ref, indices_ref, argmax_ref) = both_ways(run)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(indices, indices_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    assert_same(dx, dx_ref, np.float32)  # (overlapping windows add in another order)
    assert np.isneginf(y[0, 0]).all() and dx.shape == x.shape


@pytest.mark.parametrize("k", [2, 3])
def test_max_pool_nan_window_gives_nan_and_no_gradient_both_ways(k):
    x = np.arange(2 * 6 * 6, dtype=np.float32).reshape(1, 2, 6, 6)
    x[0, 0, 1, 1] = np.nan
    dy = np.ones((1, 2, 6 // k, 6 // k), np.float32)

    def run():
        y, cache = P.max_pool2d_forward(x, k)
        return y, P.max_pool2d_backward(dy, cache)

    (y, dx), (y_ref, dx_ref) = both_ways(run)
    np.testing.assert_array_equal(y, y_ref)  # NaN where the window holds one (assert_array_equal: NaN == NaN)
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 1, 1])
    np.testing.assert_array_equal(dx, dx_ref)
    assert dx[0, 0, :k, :k].sum() == 0 and dx[0, 1].sum() == (6 // k) ** 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_equal_numpy_path(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 5, 5)).astype(dtype)
    x[0, 0, 0] = 0.0  # the boundary: no gradient at exactly 0
    dy = rng.standard_normal(x.shape).astype(dtype)
    fast, ref = both_ways(lambda: A.relu_backward(dy, x))
    np.testing.assert_array_equal(fast, ref)
    assert fast[0, 0, 0].sum() == 0


@pytest.mark.parametrize("model_name", ["simple_convnet", "deep_convnet"])
def test_training_step_of_textbook_nets_equal_numpy_path(model_name):
    rng = np.random.default_rng(4)
    x = rng.random((8, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, 8)

    def run():
        model = convnp.models.get_model(model_name, seed=0)
        model.train()
        if hasattr(model, "dropout"):
            model.dropout.rate = 0.0  # both runs must see the same network
        opt = optim.SGD(model.parameters(), lr=0.002)  # (see below: why not Adam)
        loss_fn = CrossEntropyLoss()
        losses = []
        for _ in range(3):
            opt.zero_grad()
            losses.append(float(loss_fn(model(x), t)))
            model.backward(loss_fn.backward())
            opt.step()
        return np.array(losses), np.concatenate([p.data.ravel() for p in model.parameters()])

    (losses, weights), (losses_ref, weights_ref) = both_ways(run)
    np.testing.assert_allclose(losses, losses_ref, rtol=1e-5)
    # the kernels sum in another order (each variant its own: tests/float_sums.py); SGD keeps the weights'
    # difference proportional to the gradients' rounding, where Adam's first steps turn a rounding-level
    # gradient of a weight near a zero gradient into an lr-sized step of either sign
    np.testing.assert_allclose(weights, weights_ref, rtol=1e-4, atol=1e-5)
    assert losses[-1] < losses[0]


def test_enabled_for_checks_type_dtype_and_switch():
    a32, a64 = np.zeros(3, np.float32), np.zeros(3, np.float64)
    assert accel.enabled_for(a32, a32)
    assert not accel.enabled_for(a32, a64)  # mixed dtypes stay on NumPy
    assert not accel.enabled_for(np.zeros(3, np.int64))
    assert not accel.enabled_for(a32.view(np.ma.MaskedArray))
    with accel.disabled():
        assert not accel.available() and not accel.enabled_for(a32)
    assert accel.available()


def test_environment_variable_switches_the_kernels_off():
    code = "import convnp.accel as a; print(a.available())"
    env = dict(os.environ, CONVNP_ACCEL="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    env["CONVNP_ACCEL"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_importing_convnp_loads_no_second_toolchain():
    code = ("import sys, convnp, numpy as np; m = convnp.models.get_model('simple_convnet'); "
            "m(np.zeros((2, 1, 28, 28), np.float32)); print('numba' in sys.modules or 'scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_max_pool_kernel_refuses_windows_it_has_no_code_for():
    x = np.zeros((1, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"only 2x2 and 3x3 windows, got \(4, 4\)"):
        accel.kernels.max_pool2d(x, ((0, 0), (0, 0)), (2, 2), (4, 4), (4, 4))
    y, _ = P.max_pool2d_forward(x + np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8), 4)  # NumPy path instead
    np.testing.assert_array_equal(y[0, 0], [[27, 31], [59, 63]])


@pytest.mark.parametrize("shape", [(8, 5, 7, 9), (6, 4, 33), (16, 3)])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_batch_norm_kernels_equal_numpy_path(shape, affine):
    from convnp.functional import normalization as Nm
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    c = shape[1]
    weight = None if affine == "none" else rng.standard_normal(c).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32) if affine == "both" else None
    dy = rng.standard_normal(shape).astype(np.float32)
    rm, rv = rng.standard_normal(c).astype(np.float32), rng.random(c).astype(np.float32) + 0.5

    def run():
        y, cache, (mean, var) = Nm.batch_norm_forward(x, weight, bias, training=True)
        grads = Nm.batch_norm_backward(dy, cache)
        with convnp.no_grad():
            y_eval = Nm.batch_norm_forward(x, weight, bias, rm, rv, training=False)[0]
        y_eval_grad, cache_eval, _ = Nm.batch_norm_forward(x, weight, bias, rm, rv, training=False)
        return (y, mean, var, y_eval, y_eval_grad) + tuple(grads) + tuple(Nm.batch_norm_backward(dy, cache_eval))

    fast, ref = both_ways(run)
    for a, r in zip(fast, ref):
        if r is None:
            assert a is None
            continue
        np.testing.assert_allclose(a, r, rtol=2e-5, atol=2e-5 * max(1.0, float(np.abs(r).max())))


def test_batch_norm_kernel_propagates_nan_like_numpy():
    from convnp.functional import normalization as Nm
    x = np.random.default_rng(8).standard_normal((4, 3, 5, 5)).astype(np.float32)
    x[1, 2, 3, 3] = np.nan

    def run():
        y, cache, (mean, _) = Nm.batch_norm_forward(x, None, None, training=True)
        return y, mean, Nm.batch_norm_backward(np.ones_like(x), cache)[0]

    fast, ref = both_ways(run)
    for a, r in zip(fast, ref):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(r))
    assert np.isnan(fast[0][:, 2]).all() and not np.isnan(fast[0][:, :2]).any()  # only channel 2
