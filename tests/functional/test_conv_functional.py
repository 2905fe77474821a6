"""convnp.functional.conv / padding: textbook pair, conv2d and conv_transpose2d against loops and torch."""
import itertools
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convnp
from convnp.functional import conv as C
from convnp.utils.args import pair
from convnp.functional import conv_gemm as G
from convnp.functional.padding import normalize_pads, pad2d, pad2d_backward
from convnp.gradcheck import max_relative_error, numerical_gradient

TORCH_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def naive_conv2d(x, w, b, stride, pads, dilation, groups):
    """Loop reference: one dot product per output pixel."""
    (t, bo), (l, r) = pads
    xpad = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)))
    n, c, hp, wp = xpad.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    oh, ow = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    y = np.zeros((n, o, oh, ow))
    for i in range(n):
        for f in range(o):
            g = f // og
            for a in range(oh):
                for bb in range(ow):
                    patch = xpad[i, g * cg:(g + 1) * cg, a * sh:a * sh + dh * (kh - 1) + 1:dh,
                                 bb * sw:bb * sw + dw * (kw - 1) + 1:dw]
                    y[i, f, a, bb] = (patch * w[f]).sum() + (0 if b is None else b[f])
    return y


# ----------------------------------------------------------------------------- textbook pair
def test_textbook_correlation_example():
    x = np.array([[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]], np.float32).reshape(1, 1, 4, 4)
    w = np.array([[2, 0, 1], [0, 1, 2], [1, 0, 2]], np.float32).reshape(1, 1, 3, 3)
    y, _ = C.conv2d_forward(x, w)
    np.testing.assert_array_equal(y[0, 0], [[15, 16], [6, 15]])
    y, _ = C.conv2d_forward(x, w, np.array([3], np.float32))
    np.testing.assert_array_equal(y[0, 0], [[18, 19], [9, 18]])
    assert y.dtype == np.float32


def test_im2col_shapes_and_rows():
    x = np.random.default_rng(0).standard_normal((10, 3, 7, 7))
    assert C.im2col(x[:1], 5, 5, stride=1, pad=0).shape == (9, 75)
    col = C.im2col(x, 5, 5, stride=1, pad=0)
    assert col.shape == (90, 75)
    # row (n=1, oh=1, ow=2) is the window x[1, :, 1:6, 2:7] flattened in (C, FH, FW) order
    np.testing.assert_array_equal(col[9 + 1 * 3 + 2], x[1, :, 1:6, 2:7].ravel())
    col = C.im2col(x, 3, 3, stride=2, pad=1)
    xpad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    assert col.shape == (10 * 4 * 4, 27)
    np.testing.assert_array_equal(col[4 * 4 * 2 + 4 * 3 + 1], xpad[2, :, 6:9, 2:5].ravel())


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (3, 2)])
def test_col2im_counts_overlapping_windows(stride, pad):
    shape, fh, fw = (2, 3, 7, 7), 3, 3
    col = C.im2col(np.zeros(shape), fh, fw, stride, pad)
    counts = C.col2im(np.ones_like(col), shape, fh, fw, stride, pad)
    expected = np.zeros((7 + 2 * pad, 7 + 2 * pad))
    out = (7 + 2 * pad - fh) // stride + 1
    for a in range(out):
        for b in range(out):
            expected[a * stride:a * stride + fh, b * stride:b * stride + fw] += 1
    expected = expected[pad:pad + 7, pad:pad + 7]
    assert counts.shape == shape
    for n, c in itertools.product(range(2), range(3)):
        np.testing.assert_array_equal(counts[n, c], expected)


def test_col2im_is_adjoint_of_im2col():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 6, 5))
    col = C.im2col(x, 3, 2, stride=2, pad=1)
    g = rng.standard_normal(col.shape)
    # <im2col(x), g> == <x, col2im(g)>
    np.testing.assert_allclose((col * g).sum(), (x * C.col2im(g, x.shape, 3, 2, 2, 1)).sum())


def test_conv_output_size_strict():
    assert C.conv_output_size(28, 5) == 24
    assert C.conv_output_size(28, 5, stride=1, pad=2) == 28
    assert C.conv_output_size(7, 3, stride=2, pad=0) == 3
    assert C.conv_output_size(9, 3, stride=1, pad=0, dilation=3) == 3
    with pytest.raises(ValueError, match=r"^conv_output_size: \(28 \+ 2\*0 - 5\) / 2 \+ 1 = 12\.5 is not an integer$"):
        C.conv_output_size(28, 5, stride=2)
    with pytest.raises(ValueError, match=r"\(3 \+ 2\*0 - 5\) / 1 \+ 1 = -1 is not positive"):
        C.conv_output_size(3, 5)
    with pytest.raises(ValueError, match=r"\(8 \+ 2\*0 - 2\*\(3-1\) - 1\) / 2 \+ 1 = 2.5 is not an integer"):
        C.conv_output_size(8, 3, stride=2, dilation=2)
    with pytest.raises(ValueError, match="stride must be positive, got 0"):
        C.conv_output_size(8, 3, stride=0)


# ----------------------------------------------------------------------------- padding resolution
@pytest.mark.parametrize("h,k,s,d,expected", [
    (7, 3, 2, 1, (1, 1)),   # out 4: total (4-1)*2 + 3 - 7 = 2
    (8, 3, 2, 1, (0, 1)),   # out 4: total 1, the extra row at the bottom
    (28, 5, 1, 1, (2, 2)),
    (6, 4, 1, 1, (1, 2)),   # even kernel: extra at the bottom
    (5, 3, 1, 2, (2, 2)),   # dilation 2: extent 5
    (9, 1, 3, 1, (0, 0)),
])
def test_same_padding_keras_semantics(h, k, s, d, expected):
    pads = C.resolve_padding("same", (h, h), (k, k), s, d)
    assert pads == (expected, expected)
    x = np.zeros((1, 1, h, h), np.float32)
    y, _ = C.conv2d_forward(x, np.zeros((2, 1, k, k), np.float32), stride=s, padding="same", dilation=d)
    assert y.shape == (1, 2, -(-h // s), -(-h // s))


def test_resolve_padding_forms_and_errors():
    assert C.resolve_padding(2, (5, 5), 3) == ((2, 2), (2, 2))
    assert C.resolve_padding((1, 2), (5, 5), 3) == ((1, 1), (2, 2))
    assert C.resolve_padding(((0, 1), (2, 3)), (5, 5), 3) == ((0, 1), (2, 3))
    assert C.resolve_padding("VALID", (5, 5), 3) == ((0, 0), (0, 0))
    with pytest.raises(ValueError, match="conv2d: unknown padding 'full'; expected 'valid', 'same'"):
        C.resolve_padding("full", (5, 5), 3)
    with pytest.raises(ValueError, match=r"padding must be non-negative, got \(\(-1, -1\), \(0, 0\)\)"):
        C.resolve_padding((-1, 0), (5, 5), 3)
    with pytest.raises(ValueError, match=r"padding must be an int, a pair \(ph, pw\) or .* got \(1, 2, 3\)"):
        normalize_pads((1, 2, 3))


# ----------------------------------------------------------------------------- conv2d vs loops and torch
@pytest.mark.parametrize("stride,padding,dilation,groups,use_bias", [
    (1, 0, 1, 1, True), (2, 1, 1, 2, False), ((1, 2), ((0, 2), (1, 0)), (2, 1), 1, True), (3, "same", 1, 3, True),
])
def test_conv2d_matches_loop_reference(stride, padding, dilation, groups, use_bias):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 7, 8))
    w = rng.standard_normal((6, 6 // groups, 3, 2))
    b = rng.standard_normal(6) if use_bias else None
    y, _ = C.conv2d_forward(x, w, b, stride, padding, dilation, groups)
    pads = C.resolve_padding(padding, (7, 8), (3, 2), stride, dilation)
    sp = pair(stride, "stride", "t")
    dp = pair(dilation, "dilation", "t")
    np.testing.assert_allclose(y, naive_conv2d(x, w, b, sp, pads, dp, groups), rtol=1e-12, atol=1e-12)


def _torch_conv(torch, x, w, b, stride, pads, dilation, groups, mode):
    F = torch.nn.functional
    (t, bo), (l, r) = pads
    xt = F.pad(x, (l, r, t, bo), mode=TORCH_PAD_MODE[mode]) if any((t, bo, l, r)) else x
    return F.conv2d(xt, w, b, stride, 0, dilation, groups)


CONV_GRID = list(itertools.product(
    [1, 2, (2, 1)],                                          # stride
    [0, 1, (1, 2), "same", "valid", ((2, 0), (1, 1))],       # padding
    ["zeros", "reflect", "replicate", "circular"],           # padding_mode
    [1, (2, 1)],                                             # dilation
))


@pytest.mark.parametrize("stride,padding,mode,dilation", CONV_GRID)
def test_conv2d_forward_backward_match_torch(stride, padding, mode, dilation):
    torch = pytest.importorskip("torch")
    i = CONV_GRID.index((stride, padding, mode, dilation))
    groups, use_bias = (1, 2, 3)[i % 3], i % 2 == 0
    rng = np.random.default_rng(i)
    x = rng.standard_normal((2, 6, 7, 9)).astype(np.float32)
    w = rng.standard_normal((6, 6 // groups, 3, 2)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32) if use_bias else None
    y, cache = C.conv2d_forward(x, w, b, stride, padding, dilation, groups, mode)
    assert y.dtype == np.float32
    pads = C.resolve_padding(padding, (7, 9), (3, 2), stride, dilation)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True) if use_bias else None
    ty = _torch_conv(torch, tx, tw, tb, stride, pads, dilation, groups, mode)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(torch.tensor(dy))
    _assert_grads_like_torch(C.conv2d_backward(dy, cache), tx, tw, tb)


@pytest.mark.parametrize("groups,stride", [(1, 1), (2, 1), (1, 2), (4, 1)])
def test_pointwise_conv_matches_torch(groups, stride):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    w = rng.standard_normal((8, 4 // groups, 1, 1)).astype(np.float32)
    y, cache = C.conv2d_forward(x, w, None, stride, 0, 1, groups)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, None, stride, 0, 1, groups)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(torch.tensor(dy))
    dx, dw, _ = C.conv2d_backward(dy, cache)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-5, atol=1e-4)
    if stride == 1:
        assert cache["col"].base is x or np.shares_memory(cache["col"], x)  # no im2col copy for 1x1 stride 1


def test_conv2d_gradients_float64_numerical():
    rng = np.random.default_rng(4)
    for stride, padding, dilation, groups, mode in [(2, "same", 1, 2, "zeros"), (1, ((1, 0), (0, 2)), 2, 1, "reflect"),
                                                   ((2, 1), 1, 1, 1, "circular"), (1, 2, 1, 1, "replicate")]:
        x = rng.standard_normal((2, 4, 5, 6))
        w = rng.standard_normal((4, 4 // groups, 3, 2))
        b = rng.standard_normal(4)
        y, cache = C.conv2d_forward(x, w, b, stride, padding, dilation, groups, mode)
        g = rng.standard_normal(y.shape)
        dx, dw, db = C.conv2d_backward(g, cache)
        loss = lambda: (C.conv2d_forward(x, w, b, stride, padding, dilation, groups, mode)[0] * g).sum()  # noqa: E731
        assert max_relative_error(dx, numerical_gradient(loss, x)) < 1e-5
        assert max_relative_error(dw, numerical_gradient(loss, w)) < 1e-5
        assert max_relative_error(db, numerical_gradient(loss, b)) < 1e-5


def test_need_dx_false_skips_input_gradient():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    y, cache = C.conv2d_forward(x, w, padding=1)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = C.conv2d_backward(dy, cache, need_dx=False)
    assert dx is None and db is None
    np.testing.assert_allclose(dw, C.conv2d_backward(dy, cache)[1])


def test_no_grad_skips_cache_and_bounds_memory(monkeypatch):
    rng = np.random.default_rng(6)  # the blocked GEMM provider's patch cache and chunks
    x = rng.standard_normal((8, 16, 32, 32)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    full, cache = C.conv2d_forward(x, w, b, padding=1, provider="gemm")
    assert cache["col"].nbytes == 8 * 16 * 9 * 32 * 32 * 4  # 4.7 MB: fits in one 8 MB chunk, cached
    monkeypatch.setattr(G, "COL_CHUNK_BYTES", 600_000)  # one sample's col is 590 KB -> 1 sample per chunk
    tracemalloc.start()
    with convnp.no_grad():
        y, cache = C.conv2d_forward(x, w, b, padding=1, provider="gemm")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert cache is None
    np.testing.assert_allclose(y, full, rtol=1e-5, atol=1e-5)
    # padded input (0.6 MB) + output (0.5 MB) + one sample's col: far below the 4.7 MB full col
    assert peak < 2.0e6, peak
    with pytest.raises(RuntimeError, match="conv2d_backward: no cache"):
        C.conv2d_backward(y, cache)


@pytest.mark.parametrize("stride,padding,dilation,groups,mode", [
    (1, 1, 1, 1, "zeros"), (2, "same", 1, 2, "reflect"), ((1, 2), ((2, 0), (1, 1)), 2, 1, "circular")])
def test_chunked_im2col_matches_single_chunk(monkeypatch, stride, padding, dilation, groups, mode):
    """Large batches rebuild the patches chunk by chunk in backward: same numbers as the cached path."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 4, 9, 8))
    w, b = rng.standard_normal((6, 4 // groups, 3, 2)), rng.standard_normal(6)
    y_ref, cache_ref = C.conv2d_forward(x, w, b, stride, padding, dilation, groups, mode)
    dy = rng.standard_normal(y_ref.shape)
    grads_ref = C.conv2d_backward(dy, cache_ref)
    wt = rng.standard_normal((4, 6 // groups, 3, 2))
    yt_ref, ct_ref = C.conv_transpose2d_forward(x, wt, b, stride, 1, 0, dilation, groups)
    dyt = rng.standard_normal(yt_ref.shape)
    gt_ref = C.conv_transpose2d_backward(dyt, ct_ref)
    per_sample = 4 * 3 * 2 * y_ref.shape[2] * y_ref.shape[3] * 8  # K * L * itemsize
    for chunk_bytes in (1, 2 * per_sample):  # one sample per chunk; 2 per chunk (and a last partial one)
        monkeypatch.setattr(G, "COL_CHUNK_BYTES", chunk_bytes)
        y, cache = C.conv2d_forward(x, w, b, stride, padding, dilation, groups, mode)
        assert cache["col"] is None and cache["xpad"] is not None
        np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
        for got, ref in zip(C.conv2d_backward(dy, cache), grads_ref):
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
        dx, dw, db = C.conv2d_backward(dy, cache, need_dx=False)
        assert dx is None
        np.testing.assert_allclose(dw, grads_ref[1], rtol=1e-12, atol=1e-12)
        yt, ct = C.conv_transpose2d_forward(x, wt, b, stride, 1, 0, dilation, groups)
        np.testing.assert_allclose(yt, yt_ref, rtol=1e-12, atol=1e-12)
        for got, ref in zip(C.conv_transpose2d_backward(dyt, ct), gt_ref):
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- transposed convolution
TRANSPOSE_GRID = [(s, p, op, d) for s, p, op, d in itertools.product(
    [1, 2, (3, 2)],              # stride
    [0, 1, (1, 0)],              # padding
    [0, 1],                      # output_padding
    [1, 2],                      # dilation
) if not (op and s == 1 and d == 1)]  # output_padding must be smaller than the stride or the dilation


def _assert_grads_like_torch(grads, tx, tw, tb):
    """(dx, dw, db) against the .grad of torch's input, weight and bias (db None when there is no bias)."""
    dx, dw, db = grads
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-4, atol=1e-3)
    if tb is not None:
        np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-4, atol=1e-4)
    else:
        assert db is None


@pytest.mark.parametrize("stride,padding,output_padding,dilation", TRANSPOSE_GRID)
def test_conv_transpose2d_matches_torch(stride, padding, output_padding, dilation):
    torch = pytest.importorskip("torch")
    i = TRANSPOSE_GRID.index((stride, padding, output_padding, dilation))
    groups, use_bias = (1, 2)[i % 2], i % 3 != 0
    rng = np.random.default_rng(i)
    x = rng.standard_normal((2, 4, 4, 5)).astype(np.float32)
    w = rng.standard_normal((4, 6 // groups, 3, 2)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32) if use_bias else None
    y, cache = C.conv_transpose2d_forward(x, w, b, stride, padding, output_padding, dilation, groups)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True) if use_bias else None
    ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, stride, padding, output_padding, groups, dilation)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(torch.tensor(dy))
    _assert_grads_like_torch(C.conv_transpose2d_backward(dy, cache), tx, tw, tb)
    assert C.conv_transpose2d_backward(dy, cache, need_dx=False)[0] is None


def test_conv_transpose2d_is_the_input_gradient_of_conv2d():
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((5, 3, 3, 3))
    y, cache = C.conv2d_forward(x, w, stride=2, padding=1)
    dy = rng.standard_normal(y.shape)
    dx, _, _ = C.conv2d_backward(dy, cache)
    # 9 -> 5 with stride 2: output_padding 0 recovers 9 rows; 8 -> 4 needs output_padding 1 for 8 columns
    yt, _ = C.conv_transpose2d_forward(dy, w, stride=2, padding=1, output_padding=(0, 1))
    np.testing.assert_allclose(yt, dx, rtol=1e-12, atol=1e-12)


def test_conv_transpose2d_gradients_float64_numerical():
    rng = np.random.default_rng(8)
    x, w, b = rng.standard_normal((2, 4, 3, 4)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(6)
    args = dict(stride=(2, 3), padding=((1, 0), (0, 1)), output_padding=1, dilation=1, groups=2)
    y, cache = C.conv_transpose2d_forward(x, w, b, **args)
    g = rng.standard_normal(y.shape)
    dx, dw, db = C.conv_transpose2d_backward(g, cache)
    loss = lambda: (C.conv_transpose2d_forward(x, w, b, **args)[0] * g).sum()  # noqa: E731
    assert max_relative_error(dx, numerical_gradient(loss, x)) < 1e-5
    assert max_relative_error(dw, numerical_gradient(loss, w)) < 1e-5
    assert max_relative_error(db, numerical_gradient(loss, b)) < 1e-5


# ----------------------------------------------------------------------------- pad2d
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("pads", [1, (2, 0), ((0, 3), (2, 1))])
def test_pad2d_matches_torch_forward_and_backward(mode, pads):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    (t, b), (l, r) = normalize_pads(pads)
    y = pad2d(x, pads, mode)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.pad(tx, (l, r, t, b), mode=TORCH_PAD_MODE[mode])
    np.testing.assert_array_equal(y, ty.detach().numpy())
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(pad2d_backward(dy, pads, mode, x.shape), tx.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_pad2d_table_rows_and_errors():
    row = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    assert pad2d(row, ((0, 0), (2, 2)), "reflect")[0, 0, 0].tolist() == [3, 2, 1, 2, 3, 2, 1]
    assert pad2d(row, ((0, 0), (2, 2)), "replicate")[0, 0, 0].tolist() == [1, 1, 1, 2, 3, 3, 3]
    assert pad2d(row, ((0, 0), (2, 2)), "circular")[0, 0, 0].tolist() == [2, 3, 1, 2, 3, 1, 2]
    assert pad2d(row, 0, "reflect") is row
    with pytest.raises(ValueError, match=r"pad2d: reflect padding \(3\) must be smaller than the input width \(3\)"):
        pad2d(row, ((0, 0), (3, 0)), "reflect")
    with pytest.raises(ValueError, match="pad2d: unknown padding_mode 'mirror'; choose one of zeros, reflect"):
        pad2d(row, 1, "mirror")


# ----------------------------------------------------------------------------- shapes and errors
@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), kh=st.integers(1, 5), kw=st.integers(1, 5),
       s=st.integers(1, 4), p=st.integers(0, 3), d=st.integers(1, 3),
       padding_kind=st.sampled_from(["int", "same", "valid"]))
def test_output_shape_property(h, w, kh, kw, s, p, d, padding_kind):
    padding = {"int": p, "same": "same", "valid": "valid"}[padding_kind]
    x = np.ones((1, 2, h, w), np.float32)
    wt = np.ones((3, 2, kh, kw), np.float32)
    pads = C.resolve_padding(padding, (h, w), (kh, kw), s, d)
    hp, wp = h + sum(pads[0]), w + sum(pads[1])
    if hp < d * (kh - 1) + 1 or wp < d * (kw - 1) + 1:
        with pytest.raises(ValueError, match="is larger than the padded input"):
            C.conv2d_forward(x, wt, stride=s, padding=padding, dilation=d)
        return
    y, _ = C.conv2d_forward(x, wt, stride=s, padding=padding, dilation=d)
    assert y.shape == (1, 3, (hp - d * (kh - 1) - 1) // s + 1, (wp - d * (kw - 1) - 1) // s + 1)
    if padding == "same":
        assert y.shape[2:] == (-(-h // s), -(-w // s))
    # every output is a sum over the kernel taps that hit the input (ones): between 0 and 2*kh*kw
    assert 0 <= y.min() and y.max() <= 2 * kh * kw


def test_conv2d_error_messages():
    x = np.zeros((1, 4, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"conv2d: kernel 8x8 \(dilated extent 8x8\) is larger than the padded "
                                         r"input 7x7 \(input 5x5, padding \(\(1, 1\), \(1, 1\)\)\)"):
        C.conv2d_forward(x[:, :, :5, :5], np.zeros((2, 4, 8, 8), np.float32), padding=1)
    with pytest.raises(ValueError, match=r"conv2d: kernel 3x3 \(dilated extent 7x7\) is larger than the padded input 5x5"):
        C.conv2d_forward(x, np.zeros((2, 4, 3, 3), np.float32), dilation=3)
    with pytest.raises(ValueError, match="conv2d: stride must be positive, got 0"):
        C.conv2d_forward(x, np.zeros((2, 4, 3, 3), np.float32), stride=0)
    with pytest.raises(ValueError, match=r"input channels \(4\) and filters \(2\) must be divisible by groups \(3\)"):
        C.conv2d_forward(x, np.zeros((2, 1, 3, 3), np.float32), groups=3)
    with pytest.raises(ValueError, match=r"got weight shape \(2, 3, 3, 3\)"):
        C.conv2d_forward(x, np.zeros((2, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected x \(N, C, H, W\) .* got shapes \(4, 5, 5\)"):
        C.conv2d_forward(x[0], np.zeros((2, 4, 3, 3), np.float32))
    with pytest.raises(ValueError, match="unknown padding 'full'"):
        C.conv2d_forward(x, np.zeros((2, 4, 3, 3), np.float32), padding="full")
    with pytest.raises(ValueError, match="unknown padding_mode 'wrap'"):
        C.conv2d_forward(x, np.zeros((2, 4, 3, 3), np.float32), padding=1, padding_mode="wrap")
    with pytest.raises(ValueError, match=r"output_padding \(2\) along height must be non-negative and smaller than "
                                         r"the stride \(2\) or the dilation \(1\)"):
        C.conv_transpose2d_forward(x, np.zeros((4, 2, 3, 3), np.float32), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"weight shape \(3, 2, 3, 3\) does not fit 4 input channels"):
        C.conv_transpose2d_forward(x, np.zeros((3, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"output size -1x-1 is not positive"):
        C.conv_transpose2d_forward(x[:, :, :1, :1], np.zeros((4, 2, 1, 1), np.float32), padding=1)


def test_backend_xp_fixture(xp):
    """Runs on CuPy too when a GPU is present: same numbers as NumPy."""
    rng = np.random.default_rng(10)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((2, 4, 6, 6), (6, 2, 3, 3), (6,)))
    y_ref, cache_ref = C.conv2d_forward(x, w, b, 2, "same", 1, 2, "reflect")
    y, cache = C.conv2d_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b), 2, "same", 1, 2, "reflect")
    assert isinstance(y, xp.ndarray)
    np.testing.assert_allclose(convnp.to_numpy(y), y_ref, rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    for got, ref in zip(C.conv2d_backward(xp.asarray(dy), cache), C.conv2d_backward(dy, cache_ref)):
        np.testing.assert_allclose(convnp.to_numpy(got), ref, rtol=1e-4, atol=1e-4)
    wt = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    yt, _ = C.conv_transpose2d_forward(xp.asarray(x), xp.asarray(wt), None, 2, 1, 1)
    yt_ref, _ = C.conv_transpose2d_forward(x, wt, None, 2, 1, 1)
    np.testing.assert_allclose(convnp.to_numpy(yt), yt_ref, rtol=1e-5, atol=1e-5)


def test_chunked_path_agrees_on_every_backend(xp, monkeypatch):
    """Several batch chunks through one buffer (GPU: im2col into the buffer, col2im adding into dx slices)."""
    monkeypatch.setattr(G, "COL_CHUNK_BYTES", 4096)
    rng = np.random.default_rng(12)
    x, w = rng.standard_normal((6, 3, 8, 8)).astype(np.float32), rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y_ref, cache_ref = C.conv2d_forward(x, w, None, 1, 1)
    y, cache = C.conv2d_forward(xp.asarray(x), xp.asarray(w), None, 1, 1)
    assert cache["col"] is None  # the chunked path
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    np.testing.assert_allclose(convnp.to_numpy(y), y_ref, rtol=1e-5, atol=1e-5)
    for got, ref in zip(C.conv2d_backward(xp.asarray(dy), cache)[:2], C.conv2d_backward(dy, cache_ref)[:2]):
        np.testing.assert_allclose(convnp.to_numpy(got), ref, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- GEMM layouts (issue 5)
def test_batched_patch_layouts_match_the_per_sample_im2col():
    """_im2col_t is the per-sample col with N and K swapped; _im2col_wide adds Wp - OW junk columns per row."""
    rng = np.random.default_rng(20)
    x = rng.standard_normal((3, 2, 7, 6))
    g = C._Geom(3, 2, 1, 1, 2, 1, 3, 5)  # dilation 2 along H: OH = 7 - 4 = 3, OW = 6 - 1 = 5
    col = G._im2col(x, g)  # (N, K, L)
    np.testing.assert_array_equal(G._im2col_t(x, g), col.transpose(1, 0, 2).reshape(12, 3 * 15))
    xpad1 = np.concatenate([x, np.zeros((3, 2, 1, 6))], axis=2)  # the extra bottom row _pad_wide adds
    wide = G._im2col_wide(xpad1, g).reshape(12, 3, 3, 6)  # (K, N, OH, Wp)
    np.testing.assert_array_equal(wide[..., :5], col.reshape(3, 12, 3, 5).transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(G._pad_wide(x, ((0, 0), (0, 0)), "zeros"), xpad1)


@pytest.mark.parametrize("layout", ["strided", "wide"])
def test_batched_col2im_is_the_adjoint_of_im2col(layout):
    rng = np.random.default_rng(21)
    if layout == "wide":  # the input carries the extra bottom row
        x = G._pad_wide(rng.standard_normal((2, 3, 9, 8)), ((0, 0), (0, 0)), "zeros")  # (2, 3, 10, 8)
        g = C._Geom(3, 3, 1, 1, 1, 2, 7, 4)
        fwd, adj = G._im2col_wide, G._col2im_wide
    else:
        x, g = rng.standard_normal((2, 3, 9, 8)), C._Geom(3, 2, 2, 3, 1, 1, 4, 3)
        fwd, adj = G._im2col_t, G._col2im_t
    col = fwd(x, g)
    c = rng.standard_normal(col.shape)
    np.testing.assert_allclose((col * c).sum(), (x * adj(c, x.shape, g)).sum(), rtol=1e-12)
    base = rng.standard_normal(x.shape)
    out = base.copy()
    assert adj(c, x.shape, g, out=out) is out  # adds into out
    np.testing.assert_allclose(out, base + adj(c, x.shape, g), rtol=1e-12, atol=1e-12)


LAYOUT_CASES = [  # (x shape, w shape, stride, padding, dilation, groups, mode, expected path)
    ((3, 2, 8, 7), (8, 2, 3, 3), 1, 1, 1, 1, "zeros", "wide"),             # K = 18 >= O = 8: one GEMM per block
    ((3, 1, 8, 7), (6, 1, 2, 2), 1, 1, 1, 1, "zeros", "per_sample"),       # K = 4 < O = 6: per-sample GEMMs
    ((3, 4, 8, 7), (6, 2, 3, 2), 1, ((2, 0), (1, 1)), (2, 1), 2, "reflect", "wide"),
    ((3, 4, 8, 7), (4, 1, 3, 3), 1, "same", 1, 4, "circular", "wide"),    # depthwise
    ((3, 4, 9, 8), (5, 4, 3, 3), (2, 1), 1, 1, 1, "replicate", "strided"),
]


@pytest.mark.parametrize("case", LAYOUT_CASES)
@pytest.mark.parametrize("blocks", ["cached", "cached_blocks", "streamed"])
def test_every_gemm_layout_matches_torch(monkeypatch, case, blocks):
    """Per-sample GEMMs (K < O), the wide stride-1 layout and the strided one; patches cached whole, cached
    and read block by block, or rebuilt block by block: forward and backward equal torch's."""
    torch = pytest.importorskip("torch")
    xs, ws, stride, padding, dilation, groups, mode, path = case
    rng = np.random.default_rng(22)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    oh, ow = C.conv2d_forward(x, w, b, stride, padding, dilation, groups, mode, save_cache=False)[0].shape[2:]
    dw_ = dilation if isinstance(dilation, int) else dilation[1]
    per_sample_bytes = ws[1] * groups * ws[2] * ws[3] * oh * (ow + dw_ * (ws[3] - 1)) * 8  # K * OH * Wp * 8
    if blocks == "cached_blocks":
        monkeypatch.setattr(G, "COL_BLOCK_BYTES", per_sample_bytes)  # about one sample per block
    elif blocks == "streamed":
        monkeypatch.setattr(G, "COL_CHUNK_BYTES", 2 * per_sample_bytes)  # 3 samples: too big to cache
    y, cache = C.conv2d_forward(x, w, b, stride, padding, dilation, groups, mode)
    if blocks == "streamed":  # too big for per-sample GEMMs or a cache: the batched layout, rebuilt
        assert cache["col"] is None and cache["xpad"] is not None and cache["wide"] == (stride == 1)
    elif path == "per_sample":
        assert cache["col"].ndim == 3 and cache["col"].shape[0] == xs[0]  # (N, K, L)
    else:
        assert cache["wide"] == (path == "wide") and cache["col"].ndim == 4  # (K, N, OH, OW)
    (t, bo), (l, r) = C.resolve_padding(padding, xs[2:], ws[2:], stride, dilation)
    tx = torch.tensor(x, requires_grad=True)
    txp = torch.nn.functional.pad(tx, (l, r, t, bo), mode=TORCH_PAD_MODE[mode])
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    ty = torch.nn.functional.conv2d(txp, tw, tb, stride, 0, dilation, groups)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    dx, dw, db = C.conv2d_backward(dy, cache)
    assert dx.flags.c_contiguous and dx.shape == xs
    for got, ref in ((dx, tx.grad), (dw, tw.grad), (db, tb.grad)):
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-10, atol=1e-10)
    assert C.conv2d_backward(dy, cache, need_dx=False)[0] is None


def test_wide_layout_gradients_float64_numerical():
    rng = np.random.default_rng(23)
    x, w, b = rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((6, 2, 2, 3)), rng.standard_normal(6)
    args = (1, ((0, 1), (2, 0)), (1, 2), 2, "zeros")
    y, cache = C.conv2d_forward(x, w, b, *args)
    assert cache["wide"] and cache["col"].shape == (4 * 2 * 3, 2, 6, 3)  # the patches: a view, wide columns cut
    g = rng.standard_normal(y.shape)
    dx, dw, db = C.conv2d_backward(g, cache)
    loss = lambda: (C.conv2d_forward(x, w, b, *args)[0] * g).sum()  # noqa: E731
    for got, arr in ((dx, x), (dw, w), (db, b)):
        assert max_relative_error(got, numerical_gradient(loss, arr)) < 1e-6


def test_blocks_fit_the_cpu_cache_and_are_larger_on_a_gpu(monkeypatch):
    monkeypatch.setattr(G, "COL_CHUNK_BYTES", 1000)
    monkeypatch.setattr(G, "COL_BLOCK_BYTES", 300)
    monkeypatch.setattr(G, "MIN_BLOCK_COLUMNS", 8)
    assert G._blocks(10, 100, 4) == (3, [(0, 3), (3, 6), (6, 9), (9, 10)])
    assert G._blocks(10, 100, 4, xp=object()) == (10, [(0, 10)])  # another array module: COL_CHUNK_BYTES blocks
    assert G._blocks(3, 5000, 4) == (2, [(0, 2), (2, 3)])  # at least MIN_BLOCK_COLUMNS GEMM columns per block
    assert G._blocks(3, 5000, 8) == (1, [(0, 1), (1, 2), (2, 3)])  # and at least one sample
