"""convnp.accel.direct.conv2d_strided: strided convolutions in C (the filter-vectorized kernel at strided
positions, or a sum of stride-1 phases) give what the NumPy im2col + GEMM path and PyTorch give."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
import torch

from convnp import accel
from convnp.accel import direct
from convnp.functional import conv as C
from convnp.functional import conv_direct
from convnp.functional import conv2d_backward, conv2d_forward

# (N, C, H, W, O, (kh, kw), (sh, sw), padding, bias)
CASES = [
    (3, 16, 14, 14, 16, 3, 2, 1, True),            # phases: 2x2, 2x1, 1x2 and 1x1 taps
    (2, 8, 11, 10, 8, 5, 2, 2, False),             # 5x5: 3x3, 3x2, 2x3 and 2x2 taps, odd sizes
    (2, 9, 13, 12, 7, (4, 3), (3, 2), ((1, 2), (0, 1)), True),  # O not a multiple of 8, asymmetric everything
    (2, 8, 9, 9, 12, 2, 2, 0, True),               # kernel = stride: one tap per phase; the last row and
                                                   # column are read by no tap (dx = 0 there)
    (2, 8, 10, 10, 8, 3, (2, 1), 1, True),         # stride in one direction only
    (2, 8, 7, 7, 8, 3, 2, 5, True),                # padding larger than the kernel: whole phases of zeros
    (3, 32, 12, 12, 32, 3, 2, 1, True),            # 32 filters: the filter-vectorized kernel, dx by phases
    (2, 16, 11, 13, 64, 5, 2, 2, True),
    (2, 40, 9, 9, 96, (3, 5), (2, 3), 1, False),   # 3 filter blocks, a stride of 3
]


def _torch_padding(x, padding):
    if isinstance(padding, tuple) and isinstance(padding[0], tuple):
        (t, b), (l, r) = padding
        return torch.nn.functional.pad(x, (l, r, t, b)), 0
    return x, padding


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("n,c,h,w,o,k,stride,padding,bias", CASES)
def test_strided_conv_matches_numpy_and_torch(n, c, h, w, o, k, stride, padding, bias, relu):
    rng = np.random.default_rng(0)
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = (rng.standard_normal((o, c, kh, kw)) / np.sqrt(c * kh * kw)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) if bias else None

    def run():
        y, cache = conv2d_forward(x, wt, b, stride=stride, padding=padding, relu=relu)
        dy = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
        return (y,) + conv2d_backward(dy, cache), cache
    out, cache = run()
    assert cache.get("strided") is not None, "the strided C kernels were not used"
    with accel.disabled():
        ref, ref_cache = run()
    assert ref_cache.get("strided") is None
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(wt, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    xin, pad = _torch_padding(tx, padding)
    ty = torch.nn.functional.conv2d(xin, tw, tb, stride=stride, padding=pad)
    ty = torch.relu(ty) if relu else ty
    ty.backward(torch.tensor(np.cos(np.arange(ty.numel(), dtype=np.float32)).reshape(ty.shape)))
    oracle = (ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), None if tb is None else tb.grad.numpy())
    if relu:
        assert (out[0] >= 0).all() and (out[0] == 0).any()
    for got, want, want_torch in zip(out, ref, oracle):
        if want is None:
            assert got is None and want_torch is None
            continue
        assert got.shape == want.shape == want_torch.shape and got.dtype == want.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got, want_torch, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("filters", [16, 32])  # phases / filter-vectorized
def test_strided_weight_gradient_without_dx(filters):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 8, 10, 10)).astype(np.float32)
    wt = rng.standard_normal((filters, 8, 3, 3)).astype(np.float32) * 0.1
    y, cache = conv2d_forward(x, wt, stride=2, padding=1)
    dx, dw, db = conv2d_backward(np.sin(y), cache, need_dx=False)
    with accel.disabled():
        y_ref, cache_ref = conv2d_forward(x, wt, stride=2, padding=1)
        _, dw_ref, _ = conv2d_backward(np.sin(y_ref), cache_ref, need_dx=False)
    assert dx is None and db is None
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("filters", [16, 32])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_strided_results_do_not_depend_on_threads_or_runs(filters, threads, monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((11, 8, 12, 12)).astype(np.float32)  # 11 samples: uneven pieces
    wt = rng.standard_normal((filters, 8, 3, 3)).astype(np.float32) * 0.1
    b = rng.standard_normal(filters).astype(np.float32)
    monkeypatch.setattr(direct, "PIECES_PER_THREAD", 3)

    def run():
        y, cache = conv2d_forward(x, wt, b, stride=2, padding=1, relu=True)
        return (y,) + conv2d_backward(np.sin(y + 1), cache)
    previous = direct.num_threads()
    try:
        direct.set_num_threads(threads)
        runs = [run() for _ in range(3)]
    finally:
        direct.set_num_threads(previous)
    for again in runs[1:]:  # the same numbers on every run: per-piece sums added in piece order
        for got, first in zip(again, runs[0]):
            assert np.array_equal(got, first)
    with accel.disabled():
        ref = run()
    for got, want in zip(runs[0], ref):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_nan_in_the_input_stays_where_it_belongs():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 8, 9, 9)).astype(np.float32)
    x[1, 2, 4, 4] = np.nan
    for filters in (8, 32):
        wt = rng.standard_normal((filters, 8, 3, 3)).astype(np.float32)
        y, _ = conv2d_forward(x, wt, stride=2, padding=1, save_cache=False)
        assert np.isnan(y[1]).any() and not np.isnan(y[0]).any() and not np.isnan(y[2]).any()


def test_phase_gather_and_scatter_are_strided_copies():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)
    lib = direct.library()
    sh, sw, row0, col0, rows, cols = 2, 3, -1, 1, 5, 4  # row0 < 0: a row of padding on top
    out = np.full((2, 3, rows + 1, cols + 1), np.nan, np.float32)
    lib.convnp_phase_gather(x.ctypes.data, 6, 7, 8, sh, sw, row0, col0, rows, cols, rows + 1, cols + 1,
                            out.ctypes.data)
    padded = np.zeros((2, 3, 2 + sh * (rows + 1), 1 + sw * (cols + 1)), np.float32)
    padded[:, :, 1:8, :8] = x  # xpad row i = x row i - 1
    want = np.zeros_like(out)
    want[:, :, :rows, :cols] = padded[:, :, 0:sh * rows:sh, col0:col0 + sw * cols:sw]
    np.testing.assert_array_equal(out, want)
    back = np.full_like(x, 7.0)
    src = rng.standard_normal((2, 3, rows, cols)).astype(np.float32)
    lib.convnp_phase_scatter(src.ctypes.data, 6, rows, cols, sh, sw, row0, col0, 7, 8, back.ctypes.data)
    want_back = np.full((2, 3, 2 + sh * rows, 1 + sw * cols), 7.0, np.float32)
    want_back[:, :, 0:sh * rows:sh, col0:col0 + sw * cols:sw] = src
    np.testing.assert_array_equal(back, want_back[:, :, 1:8, :8])


def test_which_strided_convs_the_c_kernels_can_compute():
    w = np.zeros((8, 8, 3, 3), np.float32)

    def ok(x, w, stride=2, dilation=1, groups=1, mode="zeros"):
        kh, kw = w.shape[2:]
        return conv_direct.strided_can_run(x, w, None, C._Geom(kh, kw, stride, stride, dilation, dilation, 4, 4),
                                           groups, mode)
    x = np.zeros((2, 8, 8, 8), np.float32)
    assert ok(x, w)
    assert not ok(x, w, stride=1)  # stride 1: the stride-1 kernels
    assert not ok(x, w, stride=4)  # stride larger than the kernel: phases without taps
    assert not ok(x, w, dilation=2)
    assert not ok(x, w[:, :4], groups=2)
    assert not ok(x, w, mode="reflect")
    assert ok(x[:, :4], w[:, :4])  # fewer input channels than a filter block of dx: correct (the planner times it)
    assert not ok(x.astype(np.float64), w.astype(np.float64))
    with accel.disabled():
        assert not ok(x, w)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 5), c=st.integers(8, 12), o=st.sampled_from([3, 8, 13, 32]), h=st.integers(1, 13),
       w=st.integers(1, 13), kh=st.integers(1, 5), kw=st.integers(1, 5), sh=st.integers(1, 4), sw=st.integers(1, 4),
       pads=st.tuples(*[st.integers(0, 4)] * 4), relu=st.booleans(), seed=st.integers(0, 2**16))
def test_random_strided_geometries_match_numpy(n, c, o, h, w, kh, kw, sh, sw, pads, relu, seed):
    t, b, l, r = pads
    assume(h + t + b >= kh and w + l + r >= kw)  # at least one output position
    assume((sh, sw) != (1, 1))  # (stride 1: test_accel_direct.py)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = (rng.standard_normal((o, c, kh, kw)) / np.sqrt(c * kh * kw)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)

    def run():
        y, cache = conv2d_forward(x, wt, bias, stride=(sh, sw), padding=((t, b), (l, r)), relu=relu)
        return (y,) + conv2d_backward(np.cos(y * 3 + 1), cache), cache
    out, cache = run()
    assert (cache.get("strided") is not None) == (kh >= sh and kw >= sw and kh * kw > 1)
    with accel.disabled():
        ref, _ = run()
    for got, want in zip(out, ref):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
