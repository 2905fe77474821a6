"""The Winograd F(2x2, 3x3) and F(4x4, 3x3) providers: their C transforms against their NumPy twins, their forward
and backward against the float64 reference within a bound that follows the transforms, and its hand-over to the GEMM
provider where Winograd would change NaN/inf patterns. The kernels are on here whatever CONVNP_ACCEL says
(tests/accel/conftest.py), and these tests fail, not skip, when the C build breaks (CI has a compiler)."""
import numpy as np
import pytest

from convnp import accel
from convnp.functional import conv as C
from convnp.functional import conv_winograd as W
from float_sums import U32, gamma

CASES = [  # (N, C, H, W, O, padding)
    (2, 3, 7, 9, 5, 1), (2, 4, 8, 8, 6, 0), (3, 5, 6, 5, 7, 2), (1, 2, 1, 1, 3, 1),
    (2, 3, 5, 6, 4, ((1, 2), (0, 1))), (1, 8, 14, 14, 16, "same"), (2, 16, 3, 3, 32, 1)]


PROVIDERS = {2: "winograd", 4: "winograd4"}  # output tile size m -> provider name


def _tiles(oh, ow, m):
    return -(-oh // m), -(-ow // m)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("case", CASES)
def test_c_transforms_equal_their_numpy_twins(case, m):
    n, c, h, w, o, padding = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    (oh, ow), pads = C.conv2d_output_shape(x.shape, (3, 3), 1, padding, 1)
    tiles = _tiles(oh, ow, m)
    v = accel.kernels.winograd_input(x, pads[0][0], pads[1][0], tiles, m)
    if m == 2:  # the same few adds, in the same order
        np.testing.assert_array_equal(v, W.input_transform(x, pads, tiles, m))
    else:  # (products by 2, 4, 5: the C compiler may fuse a multiply and an add)
        np.testing.assert_allclose(v, W.input_transform(x, pads, tiles, m), rtol=1e-6, atol=1e-5)
    mm = rng.standard_normal(((m + 2) ** 2, o, n * tiles[0] * tiles[1])).astype(np.float32)
    mm[0, 0, 0] = np.nan
    b = rng.standard_normal(o).astype(np.float32)
    for bias, relu in ((None, False), (b, False), (b, True)):
        got = accel.kernels.winograd_output(mm, n, tiles, (oh, ow), bias, relu, m)
        want = W.output_transform(mm, n, tiles, (oh, ow), bias, relu, m)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)  # (bias added after, or with, the sum)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))  # the fused ReLU keeps NaN
        assert np.isnan(got).sum() == 1  # M[0] reaches only y[0, 0] of its tile (A^T's first column: 1, 0, ...)


def test_the_twins_are_the_transform_matrices():
    """The written-out additions of the NumPy twins (and so of the C kernels) are B^T d B and A^T M A."""
    rng = np.random.default_rng(5)
    for m, b_t, a_t in ((2, W.B_T, W.A_T), (4, W.B_T4, W.A_T4)):
        a = m + 2
        x = rng.standard_normal((1, 1, a, a)).astype(np.float32)
        v = W.input_transform(x, ((0, 0), (0, 0)), (1, 1), m).reshape(a, a)
        np.testing.assert_allclose(v, b_t @ x[0, 0] @ b_t.T, rtol=1e-5, atol=1e-5)
        mm = rng.standard_normal((a * a, 1, 1)).astype(np.float32)
        y = W.output_transform(mm, 1, (1, 1), (m, m), m=m)[0, 0]
        np.testing.assert_allclose(y, a_t @ mm.reshape(a, a) @ a_t.T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m,g", [(2, W.G), (4, W.G4)])
def test_the_kernel_transform_is_g_g_gt(m, g):
    w = np.random.default_rng(1).standard_normal((3, 2, 3, 3)).astype(np.float32)
    u = W.kernel_transform(w, m=m)
    for o in range(3):
        for c in range(2):
            np.testing.assert_allclose(u[:, o, c].reshape(m + 2, m + 2), g @ w[o, c] @ g.T, rtol=1e-6, atol=1e-6)


def _bound(magnitude, n_terms, m):
    """Winograd adds inputs before multiplying: its rounding errors are those of direct summation times a
    constant of the transforms. F(2x2, 3x3) (|B| rows add up to 2, |G| to 1.5, |A| to 3; measured below 0.3
    times gamma_n * magnitude): 32 is generous. F(4x4, 3x3) (|B| rows up to 10, |A| up to 19; measured up to
    5): 64. Both stay below the error of one wrong or missing term (about magnitude / n_terms) here."""
    return {2: 32, 4: 64}[m] * gamma(n_terms) * magnitude + 4 * U32 * magnitude


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_forward_and_backward_match_the_float64_reference(case, relu, m):
    n, c, h, w, o, padding = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    y, cache = C.conv2d_forward(x, wt, b, padding=padding, relu=relu, save_cache=True, provider=PROVIDERS[m])
    assert cache["provider"] == PROVIDERS[m]
    x64, w64, b64 = x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64)
    y64, cache64 = C.conv2d_forward(x64, w64, b64, padding=padding, relu=relu, save_cache=True,
                                    provider="reference")
    mag, _ = C.conv2d_forward(np.abs(x64), np.abs(w64), np.abs(b64), padding=padding, provider="reference",
                              save_cache=False)
    assert np.all(np.abs(y - y64) <= _bound(mag, c * 9, m))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, db = C.conv2d_backward(dy, cache)
    dx64, dw64, db64 = C.conv2d_backward(dy.astype(np.float64), cache64)
    mask = (y64 > 0) if relu else np.ones(y.shape, bool)
    dy_abs = np.abs(dy.astype(np.float64)) * mask
    _, cache_abs = C.conv2d_forward(np.abs(x64), np.abs(w64), None, padding=padding, provider="reference",
                                    save_cache=True)
    mag_dx, mag_dw, _ = C.conv2d_backward(dy_abs, cache_abs)
    assert np.all(np.abs(dx - dx64) <= _bound(mag_dx, o * 9, m))
    assert np.all(np.abs(dw - dw64) <= 2 * gamma(n * y.shape[2] * y.shape[3]) * mag_dw + 4 * U32 * mag_dw)
    np.testing.assert_allclose(db, db64, rtol=1e-5, atol=1e-5)
    assert C.conv2d_backward(dy, cache, need_dx=False)[0] is None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("provider", PROVIDERS.values())
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs_and_wide_padding_go_to_the_gemm_provider(bad, provider):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    _, cache = C.conv2d_forward(x, w, padding=3, save_cache=True, provider=provider)
    assert cache["provider"] == "gemm"  # dx would need a negative padding
    x[1, 2, 3, 3] = bad
    y, cache = C.conv2d_forward(x, w, padding=1, save_cache=True, provider=provider)
    assert cache["provider"] == "gemm"
    y_ref, _ = C.conv2d_forward(x, w, padding=1, save_cache=False, provider="reference")
    np.testing.assert_array_equal(np.isfinite(y), np.isfinite(y_ref))
    assert np.isfinite(y[0]).all() and not np.isfinite(y[1]).all()


def test_only_3x3_stride_1_one_group_zero_padding():
    x = np.zeros((1, 4, 8, 8), np.float32)
    g = C.Geom(3, 3, 1, 1, 1, 1, 6, 6)
    w = np.zeros((4, 4, 3, 3), np.float32)
    assert W.can_run(x, w, None, g, 1, "zeros")
    assert not W.can_run(x, w, None, g, 1, "reflect")
    assert not W.can_run(x, w[:, :2], None, g, 2, "zeros")
    assert not W.can_run(x, w, None, C.Geom(3, 3, 2, 2, 1, 1, 3, 3), 1, "zeros")
    assert not W.can_run(x, np.zeros((4, 4, 5, 5), np.float32), None, C.Geom(5, 5, 1, 1, 1, 1, 4, 4), 1, "zeros")
    assert not W.can_run(x.astype(np.float64), w.astype(np.float64), None, g, 1, "zeros")


@pytest.mark.parametrize("pairs", [0, W.DIRECT_DW_PAIRS])
def test_weight_gradient_in_either_kernel_matches_the_reference(pairs, monkeypatch):
    """dW from the GEMM patches (wide layers) or the direct C kernels (the rest): both the float64 reference's."""
    monkeypatch.setattr(W, "DIRECT_DW_PAIRS", pairs)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 8, 9, 7)).astype(np.float32)
    w = rng.standard_normal((32, 8, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    y, cache = C.conv2d_forward(x, w, b, padding=((1, 2), (0, 1)), relu=True, save_cache=True, provider="winograd4")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    _, dw, db = C.conv2d_backward(dy, cache)
    y64, cache64 = C.conv2d_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                    padding=((1, 2), (0, 1)), relu=True, save_cache=True, provider="reference")
    _, dw64, db64 = C.conv2d_backward(dy.astype(np.float64), cache64)
    np.testing.assert_allclose(dw, dw64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, db64, rtol=1e-5, atol=1e-5)
