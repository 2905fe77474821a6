"""convnp.accel.direct: the compiled stride-1 convolution gives what the NumPy im2col + GEMM path gives.

The kernel needs a C compiler; CI's machine has one, so these tests fail (not skip) when the build breaks.
"""
import numpy as np
import pytest

from convnp import accel
from convnp.accel import direct
from convnp.functional import conv as C
from convnp.functional import conv_direct
from convnp.functional import conv_gemm as G
from convnp.functional import conv2d_backward, conv2d_forward


def test_kernel_builds_here():
    assert direct.available(), direct.status()
    assert "built with" in direct.status()


def _both_ways(fn):
    out = fn()
    with accel.disabled():
        ref = fn()
    return out, ref


# (N, C, H, W, O, k, padding, dilation, bias, padding_mode)
CASES = [
    (4, 16, 28, 28, 16, 3, 1, 1, True, "zeros"),      # DeepConvNet's first wide layer
    (3, 8, 14, 14, 32, 3, 1, 1, False, "zeros"),
    (2, 5, 9, 11, 13, 3, "same", 1, True, "zeros"),   # O not a multiple of 8, H != W
    (2, 4, 12, 12, 6, 5, 2, 1, True, "zeros"),        # 5x5: the generic tap loop
    (2, 4, 12, 10, 8, 3, 2, 2, True, "zeros"),        # dilation
    (2, 3, 8, 8, 4, 2, ((0, 1), (1, 0)), 1, True, "zeros"),  # even kernel, asymmetric pads
    (2, 3, 8, 8, 4, 3, 4, 1, True, "zeros"),          # padding larger than the kernel
    (2, 6, 10, 10, 8, 3, 1, 1, True, "reflect"),
    (2, 6, 10, 10, 8, 3, 2, 1, True, "circular"),
    (5, 9, 7, 7, 64, 3, 1, 1, True, "replicate"),
    (1, 64, 7, 7, 64, 3, 1, 1, True, "zeros"),
    # filters in multiples of 32: the kernels vectorized over filters (direct_cv.c), 5x5 taps, 3 filter blocks
    (2, 32, 9, 9, 32, 5, 2, 1, True, "zeros"),
    (2, 8, 6, 6, 96, 3, 1, 1, False, "zeros"),
    (3, 32, 10, 13, 64, 3, 1, 2, True, "zeros"),      # dilation, a width that is not a multiple of 7
    # 16 or 48 filters over >= 16 channels: one vector of filters per block (direct_cv.c), forward and dx
    (3, 32, 14, 14, 16, 3, 1, 1, True, "zeros"),      # two rows per block, read at constant offsets
    (2, 16, 7, 7, 48, 3, 1, 1, False, "zeros"),       # the position table, a tail block; dx of 16 channels
    (2, 16, 5, 9, 16, 3, 1, 1, True, "zeros"),        # a short map's end
]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("n,c,h,w,o,k,padding,dilation,bias,mode", CASES)
def test_forward_and_gradients_match_the_numpy_path(n, c, h, w, o, k, padding, dilation, bias, mode, relu,
                                                    monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) if bias else None
    calls = {"forward": 0, "backward": 0}

    def run():
        y, cache = conv2d_forward(x, wt, b, padding=padding, dilation=dilation, padding_mode=mode, relu=relu)
        dy = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
        dx, dw, db = conv2d_backward(dy, cache)
        return y, dx, dw, db

    def counting(name, original):
        def spy(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)
        return spy

    monkeypatch.setattr(direct, "conv2d", counting("forward", direct.conv2d))
    monkeypatch.setattr(direct, "conv2d_backward", counting("backward", direct.conv2d_backward))
    out, ref = _both_ways(run)
    assert calls["forward"], "the direct kernel was not used"
    # dW always; dx too unless the padding is not zeros or wider than the kernel's reach (then GEMM + col2im)
    assert calls["backward"] == (1 if mode == "zeros" and padding != 4 and c >= direct.FILTER_BLOCK else 0)
    if relu:
        assert (out[0] >= 0).all() and (out[0] == 0).any()
    for got, want in zip(out, ref):
        if want is None:
            assert got is None
            continue
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_batch_split_over_threads_gives_the_same_result(threads):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 16, 12, 12)).astype(np.float32)
    wt = rng.standard_normal((24, 16, 3, 3)).astype(np.float32) * 0.1
    previous = direct.num_threads()
    try:
        direct.set_num_threads(threads)
        y, _ = conv2d_forward(x, wt, padding=1, save_cache=False)
    finally:
        direct.set_num_threads(previous)
    with accel.disabled():
        ref, _ = conv2d_forward(x, wt, padding=1, save_cache=False)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_gradients_split_over_threads_and_pieces_give_the_same_result(threads, monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((11, 16, 10, 10)).astype(np.float32)  # 11 samples: uneven pieces
    wt = rng.standard_normal((8, 16, 3, 3)).astype(np.float32) * 0.1
    b = rng.standard_normal(8).astype(np.float32)
    monkeypatch.setattr(direct, "PIECES_PER_THREAD", 3)

    def run():
        y, cache = conv2d_forward(x, wt, b, padding=1, relu=True)
        return (y,) + conv2d_backward(np.sin(y + 1), cache)
    previous = direct.num_threads()
    try:
        direct.set_num_threads(threads)
        out = run()
    finally:
        direct.set_num_threads(previous)
    with accel.disabled():
        ref = run()
    for got, want in zip(out, ref):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_gradients_are_the_same_on_every_run():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 16, 12, 12)).astype(np.float32)
    wt = rng.standard_normal((16, 16, 3, 3)).astype(np.float32) * 0.1
    previous = direct.num_threads()
    try:
        direct.set_num_threads(2)
        runs = []
        for _ in range(5):
            y, cache = conv2d_forward(x, wt, padding=1)
            runs.append(conv2d_backward(np.cos(y), cache))
    finally:
        direct.set_num_threads(previous)
    for dx, dw, _ in runs[1:]:  # whichever thread takes a piece, its sums are added in piece order
        assert np.array_equal(dx, runs[0][0]) and np.array_equal(dw, runs[0][1])


def test_run_split_gives_every_sample_to_exactly_one_call(monkeypatch):
    seen = np.zeros(37, int)
    pieces = []

    def call(s, e, k):
        seen[s:e] += 1
        pieces.append((k, s, e))
    previous = direct.num_threads()
    try:
        direct.set_num_threads(3)
        direct.run_split(37, call)
        bounds = direct.pieces(37)
    finally:
        direct.set_num_threads(previous)
    assert (seen == 1).all()
    assert sorted(pieces) == [(k, bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]
    assert len(bounds) - 1 == 3 * direct.PIECES_PER_THREAD


def test_large_batches_take_fewer_pieces_per_thread():
    for n, per_thread in ((8, direct.PIECES_PER_THREAD), (direct.LARGE_BATCH - 1, direct.PIECES_PER_THREAD),
                          (direct.LARGE_BATCH, direct.PIECES_PER_THREAD_LARGE), (100, direct.PIECES_PER_THREAD_LARGE)):
        bounds = direct.pieces(n, 2)
        assert len(bounds) - 1 == min(n, 2 * per_thread) and bounds[0] == 0 and bounds[-1] == n
        assert all(b > a for a, b in zip(bounds, bounds[1:]))  # no empty piece
    assert direct.PIECES_PER_THREAD_LARGE < direct.PIECES_PER_THREAD


def test_pad_planes_with_a_relu_mask():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 5, 4)).astype(np.float32)
    mask = rng.standard_normal(x.shape).astype(np.float32)
    out = np.full((3, 2, 5 + 1 + 2 + 1, 4 + 2 + 1), np.nan, np.float32)
    direct.pad_planes(x, 1, 2, out, mask)
    want = np.zeros_like(out)
    want[:, :, 1:6, 2:6] = np.where(mask > 0, x, 0)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("h, w, top, left, hp1, wp", [(7, 7, 1, 1, 10, 9), (14, 14, 1, 1, 17, 16), (3, 5, 0, 2, 4, 9),
                                                  (6, 15, 2, 1, 10, 16), (5, 17, 1, 1, 8, 19)])
def test_pad_planes_short_and_long_rows_keep_nan(h, w, top, left, hp1, wp):
    # rows of <= 16 floats take AVX-512's masked loads and stores, longer ones the general copy
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, h, w)).astype(np.float32)
    x[0, 0, 0], x[3, h - 1, w - 1] = np.nan, np.inf
    mask = rng.standard_normal(x.shape).astype(np.float32)
    mask[1, 0, 0], mask[0, 0, 0] = np.nan, 1.0
    for m in (None, mask):
        out = np.full((4, hp1, wp), -7.0, np.float32)
        direct.pad_planes(x.reshape(2, 2, h, w), top, left, out.reshape(2, 2, hp1, wp), m)
        want = np.zeros_like(out)
        want[:, top:top + h, left:left + w] = x if m is None else np.where(m > 0, x, 0)
        np.testing.assert_array_equal(out, want)  # (NaN compares equal here)
        assert np.isnan(out[0, top, left]) and np.isposinf(out[3, top + h - 1, left + w - 1]) == (m is None or
                                                                                                   m[3, -1, -1] > 0)


def test_non_contiguous_input_and_nan_propagate():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 8, 10, 20)).astype(np.float32)[:, :, :, ::2]  # strided view
    x[1, 2, 3, 4] = np.nan
    wt = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    y, _ = conv2d_forward(x, wt, padding=1, save_cache=False)
    with accel.disabled():
        ref, _ = conv2d_forward(x, wt, padding=1, save_cache=False)
    assert np.array_equal(np.isnan(y), np.isnan(ref)) and np.isnan(y[1]).any() and not np.isnan(y[0]).any()
    np.testing.assert_allclose(y[0], ref[0], rtol=1e-4, atol=1e-4)


def test_which_cases_the_stride_1_kernels_can_compute():
    x32 = np.zeros((2, 4, 8, 8), np.float32)
    w32 = np.zeros((4, 4, 3, 3), np.float32)
    geom = C._Geom(3, 3, 1, 1, 1, 1, 8, 8)
    ok = conv_direct.direct_can_run
    assert ok(x32, w32, None, geom, 1, "zeros") and ok(x32, w32, None, geom, 1, "reflect")
    assert not ok(x32.astype(np.float64), w32.astype(np.float64), None, geom, 1, "zeros")  # float64
    assert not ok(x32, w32, None, C._Geom(3, 3, 2, 2, 1, 1, 4, 4), 1, "zeros")  # stride 2
    assert not ok(x32, w32[:, :2], None, geom, 2, "zeros")  # groups
    assert not ok(x32, w32[:, :, :1, :1], None, C._Geom(1, 1, 1, 1, 1, 1, 8, 8), 1, "zeros")  # 1x1
    with accel.disabled():
        assert not ok(x32, w32, None, geom, 1, "zeros")
    with pytest.raises(ValueError, match="provider 'direct' cannot compute"):
        C.conv2d_forward(x32.astype(np.float64), w32.astype(np.float64), provider="direct")


def test_missing_compiler_means_not_available_with_a_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("CONVNP_CACHE_DIR", str(tmp_path / "cache"))
    fn, why = direct._build()
    assert fn is None and "failed" in why


def test_build_goes_to_the_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVNP_CACHE_DIR", str(tmp_path))
    fn, why = direct._build()
    assert fn is not None, why
    built = list(tmp_path.glob("convnp_kernels_*.so"))
    assert len(built) == 1 and str(built[0]) in why
    assert not list(tmp_path.glob("*.so.tmp*")) and len(list(tmp_path.iterdir())) == 1  # no temporary left


def test_set_num_threads_rejects_zero():
    with pytest.raises(ValueError, match="at least 1"):
        direct.set_num_threads(0)


def test_compiler_error_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVNP_CACHE_DIR", str(tmp_path))
    broken = tmp_path / "broken.c"
    broken.write_text("this is not C\n")
    monkeypatch.setattr(direct, "_SOURCES", (broken,))
    fn, why = direct._build()
    assert fn is None and "failed" in why
    assert not list(tmp_path.glob("*.so"))  # no half-built library left behind


def test_unwritable_cache_dir_means_not_available_with_a_reason(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("CONVNP_CACHE_DIR", str(blocker / "cache"))
    fn, why = direct._build()
    assert fn is None and "failed" in why


def test_a_forked_child_gets_its_own_thread_pool():
    import multiprocessing as mp
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 8, 10, 10)).astype(np.float32)
    wt = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    previous = direct.num_threads()
    direct.set_num_threads(2)
    try:
        y, _ = conv2d_forward(x, wt, padding=1, save_cache=False)  # the parent's pool exists now
        ctx = mp.get_context("fork")
        with ctx.Pool(1) as pool:  # the child inherits the pool object but not its threads
            y_child = pool.apply_async(_child_conv, (x, wt)).get(timeout=60)
    finally:
        direct.set_num_threads(previous)
    np.testing.assert_array_equal(y_child, y)


def _child_conv(x, wt):
    direct.set_num_threads(2)
    return conv2d_forward(x, wt, padding=1, save_cache=False)[0]


@pytest.mark.parametrize("stride,dilation", [((2, 2), (1, 1)), ((1, 3), (2, 1)), ((3, 2), (1, 2))])
def test_strided_patches_match_numpy(stride, dilation):
    rng = np.random.default_rng(6)
    xpad = rng.standard_normal((3, 5, 13, 14)).astype(np.float32)
    kh, kw = 3, 2
    oh = (13 - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (14 - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    g = C._Geom(kh, kw, stride[0], stride[1], dilation[0], dilation[1], oh, ow)
    col = G._im2col_t(xpad, g)
    back = G._col2im_t(np.cos(col), xpad.shape, g)
    with accel.disabled():
        col_ref = G._im2col_t(xpad, g)
        back_ref = G._col2im_t(np.cos(col_ref), xpad.shape, g)
    np.testing.assert_array_equal(col, col_ref)
    np.testing.assert_allclose(back, back_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("filters", [16, 32])  # the wide-row and the filter-vectorized weight-gradient kernels
def test_weight_gradient_out_of_memory_is_a_clear_error(filters, monkeypatch):
    real = direct.library()

    class OutOfMemory:  # the C kernels return -1 when malloc fails
        def __getattr__(self, name):
            if name in ("convnp_conv2d_dw_s1", "convnp_conv2d_dw_cv"):
                return lambda *args: -1
            return getattr(real, name)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 16, 8, 8)).astype(np.float32)
    wt = rng.standard_normal((filters, 16, 3, 3)).astype(np.float32)
    y, cache = conv2d_forward(x, wt, padding=0)  # "valid": dW copies dy (no shared padded dy)
    monkeypatch.setattr(direct, "library", lambda: OutOfMemory())
    with pytest.raises(MemoryError, match="weight-gradient kernel could not allocate its buffers"):
        conv2d_backward(y, cache)


def test_forced_isa_variant_is_used_or_refused_with_a_notice(monkeypatch, capsys):
    from convnp.utils import build
    monkeypatch.setattr(build, "_noticed", set())
    monkeypatch.setattr(build, "cpu_features", lambda: {"model": "test CPU", "machine": "x86_64",
                                                        "flags": {"avx2", "fma"}})
    assert build.supported_variants() == ["avx2", "generic"]
    monkeypatch.setenv("CONVNP_ISA", "generic")
    assert build.isa_variant() == "generic"
    monkeypatch.setenv("CONVNP_ISA", "avx512")  # the CPU lacks it: the best one it has, and one line naming why
    assert build.isa_variant() == "avx2"
    assert "CONVNP_ISA=avx512: this CPU lacks avx512bw, avx512dq, avx512f, avx512vl; using avx2" in capsys.readouterr().err
    monkeypatch.setenv("CONVNP_ISA", "sse9")
    assert build.isa_variant() == "avx2"
    assert "CONVNP_ISA='sse9' is not one of avx512, avx2, generic; using avx2" in capsys.readouterr().err
    monkeypatch.setattr(build, "cpu_features", lambda: {"model": "arm", "machine": "aarch64", "flags": {"asimd"}})
    assert build.supported_variants() == ["generic"]


def test_a_failed_build_leaves_a_one_line_notice(monkeypatch, tmp_path, capsys):
    from convnp.utils import build
    monkeypatch.setattr(build, "_noticed", set())
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("CONVNP_CACHE_DIR", str(tmp_path / "cache"))
    assert direct._build()[0] is None
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("convnp: C kernels unavailable, using the NumPy reference (")
