"""convnp.cuda without a GPU: nvcc compiles every kernel, and the kernels' own CUDA source, compiled for the
CPU with g++ (convnp.cuda.emulate), matches convnp's NumPy ops and torch.optim. The last group runs the
functional conv/pooling ops through their GPU hooks with the emulated kernels (a fake GPU), end to end."""
import shutil

import numpy as np
import pytest

from convnp import backend
from convnp.cuda import emulate, kernels, ops
from convnp.functional import conv as C
from convnp.functional import conv_gemm as G
from convnp.functional import pooling as P

needs_cxx = pytest.mark.skipif(emulate.cpu_compiler() is None, reason="no C++ compiler (g++/clang++) to emulate "
                                                                      "the CUDA kernels on the CPU")
launch = emulate.launch


def rand(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------- sources
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
def test_every_kernel_compiles_with_nvcc_for_sm90():
    objects = emulate.nvcc_compile("sm_90")
    assert len(objects) == 2  # float and double modules


@pytest.mark.skipif(emulate.find_nvrtc() is None, reason="libnvrtc not found (pip install nvidia-cuda-nvrtc, or set "
                                                            "CONVNP_NVRTC to libnvrtc.so's path)")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_kernel_compiles_with_nvrtc_as_cupy_does(dtype, tmp_path):
    import subprocess
    ptx = emulate.nvrtc_compile(dtype, "compute_90")
    for name in kernels.KERNELS:
        assert f".entry {name}(" in ptx  # extern "C": unmangled names, as RawModule.get_function looks them up
    ptxas = shutil.which("ptxas")
    if ptxas is None:
        return
    (tmp_path / "k.ptx").write_text(ptx)
    res = subprocess.run([ptxas, "-arch=sm_90", str(tmp_path / "k.ptx"), "-o", str(tmp_path / "k.cubin")],
                         capture_output=True, text=True)
    if "Unsupported .version" in res.stderr:
        pytest.skip(f"this ptxas is older than the NVRTC that made the PTX: {res.stderr.strip()}")
    assert res.returncode == 0, res.stderr


def test_sources_stay_within_what_nvrtc_compiles_without_headers():
    for dtype in (np.float32, np.float64):
        src = kernels.module_source(dtype)
        for banned in ("#include", "INFINITY", "NAN", "printf", "std::", "atomic", "__syncthreads", "__shared__"):
            assert banned not in src, banned
        for name in kernels.KERNELS:
            assert f'extern "C" __global__ void {name}(' in src
    assert "typedef float T;" in kernels.module_source(np.float32)
    assert "typedef double T;" in kernels.module_source(np.float64)


def test_module_source_rejects_other_dtypes():
    with pytest.raises(ValueError, match="no kernels for dtype float16; expected float32 or float64"):
        kernels.module_source(np.float16)


# ----------------------------------------------------------------------------- im2col / col2im
GEOMS = [  # (C, H, W, kh, kw, sh, sw, dh, dw)
    (3, 7, 8, 3, 2, 2, 1, 1, 2), (2, 5, 5, 1, 1, 1, 1, 1, 1), (1, 9, 6, 3, 3, 3, 2, 2, 1),
    (4, 6, 7, 5, 5, 1, 1, 1, 1), (2, 8, 8, 2, 3, 2, 3, 3, 1),
]


def geom_for(c, h, w, kh, kw, sh, sw, dh, dw):
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    return C._Geom(kh, kw, sh, sw, dh, dw, oh, ow)


@needs_cxx
@pytest.mark.parametrize("spec", GEOMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_kernel_equals_numpy(spec, dtype, rng):
    g = geom_for(*spec)
    x = rand(rng, (2,) + spec[:3], dtype)
    got = ops.im2col(x, g, launcher=launch)
    np.testing.assert_array_equal(got, G._im2col(x, g))  # a copy: bitwise equal
    buf = np.full(got.size + 7, np.nan, dtype)
    into = ops.im2col(x, g, buf, launcher=launch)
    assert np.shares_memory(into, buf)
    np.testing.assert_array_equal(into, got)


@needs_cxx
@pytest.mark.parametrize("spec", GEOMS)
def test_col2im_gather_kernel_equals_numpy_scatter(spec, rng):
    g = geom_for(*spec)
    shape = (2,) + spec[:3]
    col = rand(rng, (2, spec[0] * g.kh * g.kw, g.oh * g.ow))
    np.testing.assert_allclose(ops.col2im(col, shape, g, launcher=launch), G._col2im(col, shape, g), rtol=1e-13,
                               atol=1e-13)
    base = rand(rng, shape)
    out = base.copy()
    assert ops.col2im(col, shape, g, out=out, launcher=launch) is out  # adds into out, like G._col2im
    np.testing.assert_allclose(out, G._col2im(col, shape, g, out=base.copy()), rtol=1e-13, atol=1e-13)


@needs_cxx
def test_col2im_float32_counts_overlaps_exactly(rng):
    g = geom_for(2, 9, 9, 3, 3, 1, 1, 1, 1)
    ones = np.ones((1, 2 * 9, g.oh * g.ow), np.float32)
    counts = ops.col2im(ones, (1, 2, 9, 9), g, launcher=launch)
    np.testing.assert_array_equal(counts, G._col2im(ones, (1, 2, 9, 9), g))
    assert counts[0, 0, 4, 4] == 9 and counts[0, 1, 0, 0] == 1


@needs_cxx
@pytest.mark.parametrize("grid,block", [(1, 1), (2, 3), (7, 64)])
def test_grid_stride_loop_covers_every_element_for_any_launch(grid, block, rng):
    g = geom_for(3, 7, 8, 3, 2, 2, 1, 1, 2)
    x = rand(rng, (2, 3, 7, 8))
    shape = (2, 3 * g.kh * g.kw, g.oh * g.ow)
    col = np.full(shape, np.nan)

    def run(name, dtype, total, args):
        emulate.launch(name, dtype, total, args, grid=grid, block=block)
    ops.im2col(x, g, col.reshape(-1), launcher=run)
    np.testing.assert_array_equal(col, G._im2col(x, g))


# ----------------------------------------------------------------------------- max pooling
POOLS = [  # (H, W, pool, strides, padding)
    (8, 8, 2, None, 0), (7, 9, 3, 2, 1), (6, 6, 3, 1, 0), (9, 7, (2, 3), (1, 2), "same"), (5, 5, 2, 3, "valid"),
    (10, 10, 5, 2, "same"),
]


def pool_setup(h, w, pool, strides, padding, x):
    out_hw, pads, k, s, _ = P.pool_output_shape((h, w), pool, strides, padding)
    return P._pad(x, pads, -np.inf), out_hw, pads, k, s


@needs_cxx
@pytest.mark.parametrize("spec", POOLS)
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_kernels_equal_numpy(spec, ties, rng):
    h, w, pool, strides, padding = spec
    x = rand(rng, (2, 3, h, w), np.float32)
    if ties:  # few distinct values: many windows hold several maxima (the first one must win)
        x = np.round(x).astype(np.float32)
    y_ref, cache = P.max_pool2d_forward(x, pool, strides, padding)
    xpad, out_hw, pads, k, s = pool_setup(h, w, pool, strides, padding, x)
    y, argmax = ops.max_pool2d_forward(xpad, out_hw, k, s, launcher=launch)
    np.testing.assert_array_equal(y, y_ref)
    assert argmax.dtype == np.int32
    np.testing.assert_array_equal(argmax, P.max_pool2d_argmax(cache))
    dy = rand(rng, y.shape, np.float32)
    dx = ops.max_pool2d_backward(dy, argmax, x.shape, pads, k, s, launcher=launch)
    np.testing.assert_allclose(dx, P.max_pool2d_backward(dy, cache), rtol=1e-6, atol=1e-6)


@needs_cxx
def test_max_pool_nan_propagates_like_max(rng):
    x = rand(rng, (1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    xpad, out_hw, pads, k, s = pool_setup(4, 4, 2, None, 0, x)
    y, argmax = ops.max_pool2d_forward(xpad, out_hw, k, s, launcher=launch)
    assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 3
    np.testing.assert_array_equal(y[0, 0].ravel()[1:], P.max_pool2d_forward(x, 2)[0][0, 0].ravel()[1:])


# ----------------------------------------------------------------------------- fused elementwise
@needs_cxx
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (4, 6), (2, 3, 7)])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_bias_activation_in_place(shape, activation, rng):
    y = rand(rng, shape, np.float32)
    b = rand(rng, shape[1], np.float32)
    expected = y + b.reshape((1, -1) + (1,) * (len(shape) - 2))
    if activation == "relu":
        expected = np.maximum(expected, 0)
    assert ops.bias_activation(y, b, activation, launcher=launch) is y
    np.testing.assert_array_equal(y, expected)


@needs_cxx
def test_relu_backward_kernel(rng):
    dy, y = rand(rng, (3, 4, 5)), np.maximum(rand(rng, (3, 4, 5)), 0)
    np.testing.assert_array_equal(ops.relu_backward(dy, y, launcher=launch), dy * (y > 0))


@needs_cxx
@pytest.mark.parametrize("kind", ["adam", "adam_l2", "adamw", "amsgrad"])
def test_fused_adam_matches_torch(kind, rng):
    torch = pytest.importorskip("torch")
    wd = {"adam": 0.0, "adam_l2": 0.1, "adamw": 0.05, "amsgrad": 0.01}[kind]
    hyper = dict(lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd, amsgrad=kind == "amsgrad")
    p0 = rand(rng, (4, 5))
    tp = torch.tensor(p0.copy(), requires_grad=True)
    topt = (torch.optim.AdamW if kind == "adamw" else torch.optim.Adam)([tp], **hyper)
    p, m, v, vmax = p0.copy(), np.zeros_like(p0), np.zeros_like(p0), np.zeros_like(p0)
    for step in range(1, 6):
        g = rand(rng, p0.shape)
        tp.grad = torch.tensor(g)
        topt.step()
        assert ops.adam_update(p, g, m, v, lr=0.01, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=wd, step=step,
                               decoupled=kind == "adamw", max_exp_avg_sq=vmax if kind == "amsgrad" else None,
                               launcher=launch)
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-12)
    state = topt.state[tp]
    np.testing.assert_allclose(m, state["exp_avg"].numpy(), rtol=1e-12)
    np.testing.assert_allclose(v, state["exp_avg_sq"].numpy(), rtol=1e-12)


@needs_cxx
@pytest.mark.parametrize("momentum,dampening,nesterov,wd", [(0.0, 0.0, False, 0.0), (0.9, 0.0, False, 1e-3),
                                                              (0.9, 0.0, True, 0.0), (0.5, 0.3, False, 0.01)])
def test_fused_sgd_matches_torch(momentum, dampening, nesterov, wd, rng):
    torch = pytest.importorskip("torch")
    p0 = rand(rng, (6,))
    tp = torch.tensor(p0.copy(), requires_grad=True)
    topt = torch.optim.SGD([tp], lr=0.1, momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=wd)
    p, buf = p0.copy(), (np.zeros_like(p0) if momentum else None)
    for step in range(4):
        g = rand(rng, p0.shape)
        tp.grad = torch.tensor(g)
        topt.step()
        assert ops.sgd_update(p, g, buf, lr=0.1, momentum=momentum, dampening=dampening, weight_decay=wd,
                              nesterov=nesterov, first=step == 0, launcher=launch)
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-13, atol=1e-14)


@needs_cxx
def test_float32_adam_close_to_float64(rng):
    p64, g64 = rand(rng, (50,)), rand(rng, (50,))
    arrays = {}
    for dtype in (np.float32, np.float64):
        p, m, v = p64.astype(dtype), np.zeros(50, dtype), np.zeros(50, dtype)
        ops.adam_update(p, g64.astype(dtype), m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=1,
                        launcher=launch)
        arrays[dtype] = p
    np.testing.assert_allclose(arrays[np.float32], arrays[np.float64], rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- dispatch rules and errors
def test_ops_return_none_without_cupy_arrays(rng):
    x = rand(rng, (1, 2, 5, 5), np.float32)
    g = geom_for(2, 5, 5, 3, 3, 1, 1, 1, 1)
    assert ops.im2col(x, g) is None  # NumPy arrays (or no CuPy): the caller's xp code runs
    assert ops.col2im(np.zeros((1, 18, 9), np.float32), x.shape, g) is None
    assert ops.max_pool2d_forward(x, (2, 2), (2, 2), (2, 2)) is None
    assert ops.bias_activation(x, np.zeros(2, np.float32), "relu") is None
    p = np.zeros(3, np.float32)
    assert ops.adam_update(p, p.copy(), p.copy(), p.copy(), lr=1, beta1=.9, beta2=.9, eps=1, step=1) is None
    assert ops.sgd_update(p, p.copy(), lr=1) is None


def test_kernels_switch(monkeypatch):
    previous = ops.set_kernels_enabled(True)
    try:
        monkeypatch.setattr(backend, "_cupy", object())  # pretend CuPy imports
        assert ops.kernels_enabled()
        with ops.kernels_disabled():
            assert not ops.kernels_enabled()
        assert ops.kernels_enabled()
        monkeypatch.setattr(backend, "_cupy", None)
        assert not ops.kernels_enabled()
    finally:
        ops.set_kernels_enabled(previous)


@needs_cxx
def test_unsuitable_arrays_fall_back(rng):
    g = geom_for(2, 5, 5, 3, 3, 1, 1, 1, 1)
    x16 = rand(rng, (1, 2, 5, 5), np.float16)
    assert ops.im2col(x16, g, launcher=launch) is None  # no half-precision kernels
    col = rand(rng, (1, 18, 9), np.float32)
    assert ops.col2im(col, (1, 2, 5, 5), g, out=np.zeros((1, 2, 5, 5)), launcher=launch) is None  # mixed dtypes
    strided = np.zeros((1, 2, 5, 10), np.float32)[..., ::2]
    assert ops.col2im(col, (1, 2, 5, 5), g, out=strided, launcher=launch) is None  # out not contiguous
    y = np.zeros((2, 3, 4), np.float32)
    assert ops.bias_activation(y, np.zeros(3, np.float32), "tanh", launcher=launch) is None
    assert ops.bias_activation(y, np.zeros(4, np.float32), launcher=launch) is None  # wrong bias length
    p = np.zeros((4, 4), np.float32)
    assert ops.adam_update(p, p.T, p.copy(), p.copy(), lr=1, beta1=.9, beta2=.9, eps=1, step=1, launcher=launch) \
        is None  # non-contiguous grad


@needs_cxx
def test_error_messages(rng):
    g = geom_for(2, 5, 5, 3, 3, 1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"col2im: col of shape \(1, 18, 8\) does not match the padded shape "
                                         r"\(1, 2, 5, 5\)"):
        ops.col2im(np.zeros((1, 18, 8)), (1, 2, 5, 5), g, launcher=launch)
    with pytest.raises(ValueError, match="momentum is non-zero but no momentum_buffer was given"):
        ops.sgd_update(np.zeros(2), np.zeros(2), lr=0.1, momentum=0.9, launcher=launch)
    with pytest.raises(TypeError, match="a ptr argument must be a C-contiguous NumPy array of float64"):
        emulate.launch("convnp_relu_bwd", np.float64, 2, (np.zeros(2), np.zeros(2), np.zeros(2, np.float32), 2))
    with pytest.raises(TypeError, match="convnp_relu_bwd: expected 4 arguments, got 3"):
        emulate.launch("convnp_relu_bwd", np.float64, 2, (np.zeros(2), np.zeros(2), 2))
    with pytest.raises(TypeError, match="convnp_sgd: expected 10 arguments, got 1"):
        ops._cast_args("convnp_sgd", np.float32, (1,))


def test_cast_args_uses_the_kernel_parameter_types():
    args = ops._cast_args("convnp_bias_act", np.float32, ("y", "b", 10, 3, 5, 1))
    assert [type(a) for a in args[2:]] == [np.int64, np.int32, np.int64, np.int32]
    adam = ops._cast_args("convnp_adam", np.float32, ("p", "g", "m", "v", "vm", 4) + (0.5,) * 7 + (0, 1))
    assert all(type(a) is np.float32 for a in adam[6:13]) and type(adam[13]) is np.int32


# ----------------------------------------------------------------------------- the hooks, on a fake GPU
class _NumpyAsOtherModule:
    """Looks like a different array module to the hooks (``xp is not np``) but computes with NumPy."""

    def __getattr__(self, name):
        return getattr(np, name)


@pytest.fixture
def fake_gpu(monkeypatch):
    """Route the conv/pooling GPU hooks to the emulated kernels; yields the list of launched kernel names."""
    launched = []

    def record(name, dtype, total, args):
        launched.append(name)
        emulate.launch(name, dtype, total, args)
    fake = _NumpyAsOtherModule()
    monkeypatch.setattr(C, "get_array_module", lambda *a: fake)  # the planner sends "GPU" arrays to the GEMM provider
    monkeypatch.setattr(G, "get_array_module", lambda *a: fake)
    monkeypatch.setattr(P, "get_array_module", lambda *a: fake)
    monkeypatch.setattr(ops, "kernels_enabled", lambda: True)
    monkeypatch.setattr(backend, "is_cupy_array", lambda a: True)
    monkeypatch.setattr(ops, "launch_cupy", record)
    return launched


@needs_cxx
@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 0, 1, 1), (2, "same", 1, 2), (1, 2, 2, 1),
                                                            (2, 1, 1, 4)])
def test_conv2d_through_the_gpu_hooks(fake_gpu, monkeypatch, stride, padding, dilation, groups, rng):
    x, w, b = rand(rng, (3, 4, 9, 8)), rand(rng, (8, 4 // groups, 3, 3)), rand(rng, (8,))
    y, cache = C.conv2d_forward(x, w, b, stride, padding, dilation, groups)
    dy = rand(rng, y.shape)
    got = (y,) + C.conv2d_backward(dy, cache)
    assert "convnp_im2col" in fake_gpu and "convnp_col2im" in fake_gpu
    monkeypatch.setattr(C, "get_array_module", lambda *a: np)  # the plain NumPy path
    monkeypatch.setattr(G, "get_array_module", lambda *a: np)
    y0, cache0 = C.conv2d_forward(x, w, b, stride, padding, dilation, groups)
    for a, ref in zip(got, (y0,) + C.conv2d_backward(dy, cache0)):
        np.testing.assert_allclose(a, ref, rtol=1e-12, atol=1e-12)


@needs_cxx
def test_chunked_conv_and_transpose_through_the_gpu_hooks(fake_gpu, monkeypatch, rng):
    monkeypatch.setattr(G, "COL_CHUNK_BYTES", 2000)  # several batch chunks through one reused buffer
    monkeypatch.setattr(G, "MIN_BLOCK_COLUMNS", 1)
    x, w, dy = rand(rng, (5, 2, 7, 7)), rand(rng, (3, 2, 3, 3)), rand(rng, (5, 3, 7, 7))
    y, cache = C.conv2d_forward(x, w, None, 1, 1)
    dx, dw, _ = C.conv2d_backward(dy, cache)
    assert cache["col"] is None and fake_gpu.count("convnp_im2col") >= 5 + 5
    wt = rand(rng, (2, 3, 3, 3))
    yt, ct = C.conv_transpose2d_forward(x, wt, None, 2, 1, 1)
    dxt, dwt, _ = C.conv_transpose2d_backward(rand(np.random.default_rng(2), yt.shape), ct)
    monkeypatch.setattr(C, "get_array_module", lambda *a: np)
    monkeypatch.setattr(G, "get_array_module", lambda *a: np)
    y0, cache0 = C.conv2d_forward(x, w, None, 1, 1)
    for got, ref in zip((y, dx, dw), (y0,) + C.conv2d_backward(dy, cache0)[:2]):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    yt0, ct0 = C.conv_transpose2d_forward(x, wt, None, 2, 1, 1)
    for got, ref in zip((yt, dxt, dwt), (yt0,) + C.conv_transpose2d_backward(
            rand(np.random.default_rng(2), yt.shape), ct0)[:2]):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@needs_cxx
@pytest.mark.parametrize("spec", POOLS)
def test_max_pool_through_the_gpu_hooks(fake_gpu, monkeypatch, spec, rng):
    h, w, pool, strides, padding = spec
    x = np.round(rand(rng, (2, 3, h, w)) * 2)  # ties
    y, cache = P.max_pool2d_forward(x, pool, strides, padding)
    assert fake_gpu == ["convnp_maxpool_fwd"] and cache.argmax is not None
    dy = rand(rng, y.shape)
    dx = P.max_pool2d_backward(dy, cache)
    assert fake_gpu[-1] == "convnp_maxpool_bwd"
    monkeypatch.setattr(P, "get_array_module", lambda *a: np)
    argmax = P.max_pool2d_argmax(cache)  # the kernel cache still unpacks like the plain tuple
    y0, cache0 = P.max_pool2d_forward(x, pool, strides, padding)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(argmax, P.max_pool2d_argmax(cache0))
    np.testing.assert_allclose(dx, P.max_pool2d_backward(dy, cache0), rtol=1e-13, atol=1e-13)


def test_numpy_path_never_calls_the_kernels(monkeypatch, rng):
    def boom(*a, **k):
        raise AssertionError("a CUDA op was called on NumPy arrays")
    for name in ("im2col", "col2im", "max_pool2d_forward", "max_pool2d_backward"):
        monkeypatch.setattr(ops, name, boom)
    x = rand(rng, (2, 3, 6, 6), np.float32)
    y, cache = C.conv2d_forward(x, rand(rng, (4, 3, 3, 3), np.float32), None, 1, 1)
    C.conv2d_backward(np.ones_like(y), cache)
    yp, pc = P.max_pool2d_forward(x, 2)
    assert getattr(pc, "argmax", None) is None  # no GPU argmax (the CPU accel kernels keep `flat_argmax`)
    P.max_pool2d_backward(np.ones_like(yp), pc)


# ----------------------------------------------------------------------------- the CuPy launch path, on a fake CuPy
class _FakeDeviceArray(np.ndarray):
    pass


class _FakeRawModule:
    """Records what ops.launch_cupy hands to CuPy and runs it with the CPU emulator."""
    created = []

    def __init__(self, code, options=()):
        self.dtype = np.float32 if "typedef float T;" in code else np.float64
        self.options = options
        _FakeRawModule.created.append(self)
        self.calls = []

    def get_function(self, name):
        def kernel(grid, block, args):
            self.calls.append((name, grid, block, args))
            total = args[[p for p, _ in kernels.KERNELS[name].params].index("total")]
            emulate.launch(name, self.dtype, total, args)
        return kernel


@pytest.fixture
def fake_cupy(monkeypatch):
    import types

    class FakeCupy(types.ModuleType):
        ndarray = _FakeDeviceArray
        RawModule = _FakeRawModule
        cuda = types.SimpleNamespace(Device=lambda: types.SimpleNamespace(id=0))

        def __getattr__(self, name):
            fn = getattr(np, name)
            return lambda *a, **k: np.asarray(fn(*a, **k)).view(_FakeDeviceArray)
    monkeypatch.setattr(backend, "_cupy", FakeCupy("cupy"))
    monkeypatch.setattr(ops, "_modules", {})
    _FakeRawModule.created = []
    previous = ops.set_kernels_enabled(True)
    yield _FakeRawModule
    ops.set_kernels_enabled(previous)


@needs_cxx
def test_launch_cupy_compiles_once_per_dtype_and_passes_typed_arguments(fake_cupy, rng):
    g = geom_for(3, 7, 8, 3, 2, 2, 1, 1, 2)
    x = rand(rng, (2, 3, 7, 8), np.float32)
    col = ops.im2col(x.view(_FakeDeviceArray), g)  # no launcher: the CuPy path
    np.testing.assert_array_equal(col, G._im2col(x, g))
    ops.im2col(x.view(_FakeDeviceArray), g)
    ops.im2col(x.astype(np.float64).view(_FakeDeviceArray), g)
    assert [m.dtype for m in fake_cupy.created] == [np.float32, np.float64]  # one module per dtype, cached
    assert fake_cupy.created[0].options == kernels.NVRTC_OPTIONS
    name, grid, block, args = fake_cupy.created[0].calls[0]
    total = col.size
    assert name == "convnp_im2col" and block == (ops.THREADS,) and grid == (-(-total // ops.THREADS),)
    assert [type(a) for a in args[2:]] == [np.int64] + [np.int32] * 11
    p = np.ones(5, np.float32).view(_FakeDeviceArray)
    assert ops.adam_update(p, p * 0 + 1, p * 0, p * 0, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, step=1)
    np.testing.assert_allclose(np.asarray(p), 1 - 0.1, rtol=1e-6)  # first Adam step moves by lr
    adam_args = fake_cupy.created[0].calls[-1][3]
    assert all(type(a) is np.float32 for a in adam_args[6:13])


def test_launch_grid_is_capped_and_empty_launches_are_skipped(monkeypatch):
    seen = []

    class Module:
        def get_function(self, name):
            return lambda grid, block, args: seen.append(grid)
    monkeypatch.setattr(ops, "_module", lambda dtype: Module())
    ops.launch_cupy("convnp_relu_bwd", np.float32, 0, (None, None, None, 0))
    ops.launch_cupy("convnp_relu_bwd", np.float32, ops.THREADS * ops.MAX_BLOCKS * 3, (None, None, None, 1))
    assert seen == [(ops.MAX_BLOCKS,)]  # the grid-stride loop covers the rest
