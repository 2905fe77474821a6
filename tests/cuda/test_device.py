"""Devices: model.to("cuda"/"cpu"), the errors when CuPy or a GPU is missing or when devices are mixed, lazy
layers following model.to(), and checkpoints written from host arrays. Without a GPU a small fake CuPy (NumPy
arrays of a subclass, standing for device arrays) exercises the device logic; with a GPU the last tests run
on the real one."""
import types

import numpy as np
import pytest

import convnp
from convnp import accel, backend, nn
from convnp.cuda import ops


class FakeDeviceArray(np.ndarray):
    """Stands for a CuPy array: a different type that ``.get()`` copies back to the host."""

    def get(self):
        return np.array(self)


class FakeCupy(types.ModuleType):
    """Just enough of ``cupy`` for the device logic: ndarray, asarray, a runtime with a device count."""

    def __init__(self, devices=1, error=None):
        super().__init__("cupy")
        self.ndarray = FakeDeviceArray

        def count():
            if error is not None:
                raise error
            return devices
        self.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=count))

    def asarray(self, a, dtype=None):
        return np.array(a, dtype=dtype).view(FakeDeviceArray)

    def __getattr__(self, name):  # everything else computes with NumPy; allocations land "on the device"
        fn = getattr(np, name)
        if name in ("zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like"):
            return lambda *a, **k: fn(*a, **k).view(FakeDeviceArray)
        return fn


@pytest.fixture
def fake_gpu(monkeypatch):
    fake = FakeCupy()
    monkeypatch.setattr(backend, "_cupy", fake)
    previous = ops.set_kernels_enabled(False)  # no real kernels to launch on the fake device
    yield fake
    ops.set_kernels_enabled(previous)


def mlp(**kw):
    return nn.Sequential([nn.Flatten(), nn.Dense(4, activation="relu", seed=0, **kw), nn.Dense(3, seed=1)])


def host(shape=(2, 1, 2, 3)):
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


# ----------------------------------------------------------------------------- missing CuPy / GPU
def test_to_cuda_without_cupy_names_the_pip_extra(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_import_error", "ModuleNotFoundError: No module named 'cupy'")
    model = mlp(in_features=6)
    with pytest.raises(RuntimeError, match=r"device 'cuda' needs CuPy, which is not available; install it with "
                                           r"pip install \"convnp\[gpu\]\" \(CUDA 12: cupy-cuda12x\)"):
        model.to("cuda")
    assert model.device == "cpu" and isinstance(model.parameters()[0].data, np.ndarray)
    with pytest.raises(RuntimeError, match=r"convnp\[gpu-cuda13\]"):
        backend.to_device(host(), "gpu")
    assert not backend.cupy_available()


def test_cupy_import_failure_is_reported(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_import_error", "ImportError: libcudart.so.12: cannot open shared object")
    with pytest.raises(RuntimeError, match=r"not available \(importing it failed: ImportError: libcudart\.so\.12"):
        backend.require_cuda()


@pytest.mark.parametrize("fake,reason", [(FakeCupy(devices=0), "the CUDA runtime reports 0 devices"),
                                         (FakeCupy(error=RuntimeError("cudaErrorNoDevice")),
                                          "RuntimeError: cudaErrorNoDevice")])
def test_to_cuda_without_a_visible_gpu(monkeypatch, fake, reason):
    monkeypatch.setattr(backend, "_cupy", fake)
    assert not backend.cupy_available()
    with pytest.raises(RuntimeError, match=rf"CuPy is installed but no CUDA GPU is visible \({reason}\); check "
                                           r"nvidia-smi"):
        mlp(in_features=6).to("cuda")


def test_unknown_device_name():
    with pytest.raises(ValueError, match=r"unknown device 'tpu': expected 'cpu' or 'cuda'"):
        mlp(in_features=6).to("tpu")
    assert [backend.normalize_device(d) for d in ("CPU", "cuda:0", "gpu", "cuda")] == ["cpu", "cuda", "cuda", "cuda"]


def test_synchronize_is_a_no_op_without_a_gpu(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    backend.synchronize()


# ----------------------------------------------------------------------------- moving and mixing (fake GPU)
def test_to_moves_parameters_buffers_and_grads_both_ways(fake_gpu):
    model = nn.Sequential([nn.Conv2D(2, 3, in_channels=1, seed=0), nn.BatchNorm2D(), nn.Flatten()])
    model(host((2, 1, 5, 5)))
    model.parameters()[0].grad = np.ones((2, 1, 3, 3), np.float32)
    before = {k: np.array(v) for k, v in model.state_dict().items()}
    assert model.to("cuda") is model and model.device == "cuda"
    assert all(isinstance(v, FakeDeviceArray) for v in model.state_dict().values())
    assert isinstance(model.parameters()[0].grad, FakeDeviceArray)
    model.to("cpu")
    assert model.device == "cpu"
    for key, value in model.state_dict().items():
        assert type(value) is np.ndarray
        np.testing.assert_array_equal(value, before[key])


def test_numpy_input_to_a_gpu_model_names_layer_and_devices(fake_gpu):
    model = mlp(in_features=6).to("cuda")
    with pytest.raises(ValueError, match=r"^Dense: the input is a NumPy array on 'cpu' but the layer's parameters "
                                         r"are on 'cuda'; move the model with model.to\('cpu'\) or the input with "
                                         r"convnp.backend.to_device\(x, 'cuda'\)"):
        model(host())


def test_gpu_input_to_a_cpu_model_names_layer_and_devices(fake_gpu):
    model = nn.Sequential([nn.Conv2D(2, 3, seed=0)])
    model(host((1, 1, 4, 4)))  # built on the CPU
    with pytest.raises(ValueError, match=r"^Conv2D: the input is a CuPy array on 'cuda' but the layer's "
                                         r"parameters are on 'cpu'; move the model with model.to\('cuda'\)"):
        model(backend.to_device(host((1, 1, 4, 4)), "cuda"))


def test_matching_devices_run(fake_gpu):
    model = mlp(in_features=6)
    expected = model(host())
    model.to("cuda")
    y = model(backend.to_device(host(), "cuda"))
    np.testing.assert_allclose(backend.to_numpy(y), expected, rtol=1e-6)


def test_lazy_layers_built_after_to_cuda_follow_the_model(fake_gpu):
    model = mlp().to("cuda")  # nothing built yet
    assert model.device == "cuda" and model.parameters() == []
    model(backend.to_device(host(), "cuda"))
    assert model.device == "cuda"
    assert all(isinstance(p.data, FakeDeviceArray) for p in model.parameters())
    from convnp.io.checkpoint import build
    lazy = mlp().to("cuda")
    build(lazy, (1, 2, 3))  # what fit() does: a zero sample on the model's device
    assert all(isinstance(p.data, FakeDeviceArray) for p in lazy.parameters())


def test_parameterless_layers_take_either_device(fake_gpu):
    relu = nn.ReLU()
    relu(host())
    y = relu(backend.to_device(host(), "cuda"))
    assert isinstance(y, FakeDeviceArray)


def test_checkpoints_hold_host_arrays_and_load_on_either_device(fake_gpu, tmp_path):
    from convnp.io.checkpoint import load_checkpoint, save_checkpoint
    model = mlp(in_features=6)
    x = host()
    expected = model(x)
    model.to("cuda")
    path = save_checkpoint(tmp_path / "gpu.npz", model, input_shape=(1, 2, 3))
    with np.load(path, allow_pickle=False) as archive:
        assert all(type(archive[k]) is np.ndarray for k in archive.files if k.startswith("model/"))
    ckpt = load_checkpoint(path)
    on_cpu = ckpt.build_model()
    np.testing.assert_allclose(on_cpu(x), expected, rtol=1e-6)
    on_gpu = ckpt.build_model("cuda")
    assert on_gpu.device == "cuda"
    np.testing.assert_allclose(backend.to_numpy(on_gpu(backend.to_device(x, "cuda"))), expected, rtol=1e-6)


def test_load_state_dict_moves_values_to_the_parameters_device(fake_gpu):
    src = mlp(in_features=6)
    dst = mlp(in_features=6).to("cuda")
    dst.load_state_dict(src.state_dict())  # host arrays into a GPU model
    assert all(isinstance(p.data, FakeDeviceArray) for p in dst.parameters())
    back = mlp(in_features=6)
    back.load_state_dict(dst.state_dict())  # device arrays into a CPU model
    assert all(type(p.data) is np.ndarray for p in back.parameters())
    np.testing.assert_array_equal(back(host()), src(host()))


def test_no_device_check_cost_without_cupy(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    calls = []
    monkeypatch.setattr(backend, "check_same_device", lambda *a: calls.append(a))
    mlp(in_features=6)(host())
    assert calls == []


# ----------------------------------------------------------------------------- a real GPU
gpu = pytest.mark.skipif(not backend.cupy_available(), reason="needs CuPy and a CUDA GPU")


@gpu
def test_real_gpu_model_matches_cpu():
    import cupy
    model = nn.Sequential([nn.Conv2D(4, 3, activation="relu", in_channels=1, seed=0), nn.MaxPool2D(2),
                           nn.Flatten(), nn.Dense(3, seed=1)])
    x = host((3, 1, 8, 8))
    y_cpu = model(x)
    dx_cpu = model.backward(np.ones_like(y_cpu))
    grads_cpu = [np.array(p.grad) for p in model.parameters()]
    model.zero_grad()
    model.to("cuda")
    y = model(cupy.asarray(x))
    dx = model.backward(cupy.ones_like(y))
    assert isinstance(y, cupy.ndarray) and isinstance(dx, cupy.ndarray)
    np.testing.assert_allclose(y.get(), y_cpu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx.get(), dx_cpu, rtol=1e-4, atol=1e-5)
    for p, g in zip(model.parameters(), grads_cpu):
        np.testing.assert_allclose(p.grad.get(), g, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="Conv2D: the input is a NumPy array on 'cpu'"):
        model(x)


@gpu
def test_real_gpu_kernels_equal_the_plain_cupy_path():
    import cupy
    from convnp.functional import conv as C, pooling as P
    rng = np.random.default_rng(0)
    x = cupy.asarray(rng.standard_normal((4, 3, 11, 9)).astype(np.float32))
    w = cupy.asarray(rng.standard_normal((6, 3, 3, 3)).astype(np.float32))
    results = []
    for enabled in (True, False):
        previous = ops.set_kernels_enabled(enabled)
        try:
            y, cache = C.conv2d_forward(x, w, None, 2, "same")
            dx, dw, _ = C.conv2d_backward(cupy.ones_like(y), cache)
            yp, pc = P.max_pool2d_forward(x, 3, 2, 1)
            dxp = P.max_pool2d_backward(cupy.ones_like(yp), pc)
            results.append([a.get() for a in (y, dx, dw, yp, dxp)])
        finally:
            ops.set_kernels_enabled(previous)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_convnp_exports_the_device_helpers():
    assert convnp.backend.require_cuda is backend.require_cuda
    assert callable(backend.check_same_device) and callable(backend.synchronize)


@pytest.mark.skipif(backend.cupy_available(), reason="checks the message on a machine without a GPU")
def test_gpu_benchmark_exits_with_a_clear_message_without_cuda():
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    res = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--quick"], cwd=root, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2
    assert "benchmarks.gpu needs a CUDA GPU with CuPy and a CUDA build of PyTorch" in res.stderr
    assert "device 'cuda' needs CuPy" in res.stderr or "torch.cuda.is_available() is False" in res.stderr


# ----------------------------------------------------------------------------- NumPy/CuPy mixing, without a GPU
class StrictDeviceArray(np.ndarray):
    """Like a CuPy array for mixing: any NumPy ufunc or function that also gets a plain NumPy array (a host
    array) raises TypeError, as CuPy does; results stay device arrays."""

    @staticmethod
    def _check(values, what):
        for v in values:
            if type(v) is np.ndarray:
                raise TypeError(f"{what}: a host NumPy array {v.shape} was mixed with a device array")
            if isinstance(v, (list, tuple)):
                StrictDeviceArray._check(v, what)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        self._check(inputs + (out or ()), f"np.{ufunc.__name__}")
        plain = [np.asarray(a) if isinstance(a, StrictDeviceArray) else a for a in inputs]
        if out is not None:
            kwargs["out"] = tuple(np.asarray(o) for o in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        wrap = lambda r: r.view(StrictDeviceArray) if isinstance(r, np.ndarray) else r  # noqa: E731
        return tuple(wrap(r) for r in result) if isinstance(result, tuple) else wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        self._check(list(args) + list(kwargs.values()), f"np.{func.__name__}")
        unwrap = lambda a: np.asarray(a) if isinstance(a, StrictDeviceArray) else (  # noqa: E731
            type(a)(unwrap(v) for v in a) if isinstance(a, (list, tuple)) else a)
        result = func(*[unwrap(a) for a in args], **{k: unwrap(v) for k, v in kwargs.items()})
        wrap = lambda r: r.view(StrictDeviceArray) if type(r) is np.ndarray else r  # noqa: E731
        return tuple(wrap(r) for r in result) if isinstance(result, tuple) else wrap(result)

    def get(self):
        return np.array(self)


class StrictFakeCupy(FakeCupy):
    def __init__(self):
        super().__init__()
        self.ndarray = StrictDeviceArray

    def asarray(self, a, dtype=None):
        return np.array(a, dtype=dtype).view(StrictDeviceArray)

    def __getattr__(self, name):
        return _on_device(getattr(np, name))


class _DeviceProxy:
    """Attributes of a NumPy sub-module (np.random) or object (a Generator), returning device arrays."""

    def __init__(self, obj):
        self._obj = obj

    def __getattr__(self, name):
        return _on_device(getattr(self._obj, name))


def _on_device(obj):
    """A NumPy function or sub-module that returns device arrays instead of host arrays."""
    if isinstance(obj, types.ModuleType):
        return _DeviceProxy(obj)
    if isinstance(obj, type) or not callable(obj):
        return obj

    def device_fn(*a, **k):
        r = obj(*a, **k)
        if type(r) is np.ndarray:
            return r.view(StrictDeviceArray)
        return _DeviceProxy(r) if isinstance(r, np.random.Generator) else r
    return device_fn


@pytest.fixture
def strict_gpu(monkeypatch):
    from convnp.cuda import emulate
    fake = StrictFakeCupy()
    monkeypatch.setattr(backend, "_cupy", fake)
    previous = ops.set_kernels_enabled(True)
    if emulate.cpu_compiler() is not None:  # the custom kernels too, run by the CPU emulator
        monkeypatch.setattr(ops, "launch_cupy", emulate.launch)
    else:
        ops.set_kernels_enabled(False)
    yield fake
    ops.set_kernels_enabled(previous)


def test_strict_fake_device_rejects_mixing(strict_gpu):
    d = strict_gpu.asarray(np.ones(3))
    with pytest.raises(TypeError, match="mixed with a device array"):
        d + np.ones(3)
    with pytest.raises(TypeError, match="mixed with a device array"):
        np.concatenate([d, np.ones(3)])
    assert isinstance(d * 2 + strict_gpu.zeros(3), StrictDeviceArray)


@pytest.mark.parametrize("name", ["simple_convnet", "deep_convnet", "mnist_best"])
def test_zoo_models_train_on_a_device_without_mixing(strict_gpu, name):
    """Forward, backward, loss and an Adam step on 'device' arrays equal the CPU run: no op silently mixes in
    a host array (CuPy would raise). The custom kernels run through the CPU emulator."""
    from convnp import models, optim
    from convnp.nn.losses import CrossEntropyLoss
    x = np.random.default_rng(1).standard_normal((4, 1, 28, 28)).astype(np.float32)
    t = np.array([0, 3, 5, 9])
    runs = []
    kwargs = {} if name == "simple_convnet" else {"dropout": 0.0}  # the GPU draws other dropout masks
    for device in ("cpu", "cuda"):
        model = models.get_model(name, seed=0, **kwargs)
        if device == "cuda":
            model.to("cuda")
        opt = optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = CrossEntropyLoss()
        xb, tb = backend.to_device(x, device), backend.to_device(t, device)
        # the CPU run takes the NumPy reference path, the one the device code mirrors (the compiled direct conv
        # sums in another order, and Adam's first step turns tiny gradient differences into lr-sized ones)
        with accel.disabled():
            loss = loss_fn(model(xb), tb)
            model.backward(loss_fn.backward())
            opt.step()
            model.eval()
            with convnp.no_grad():
                y = model(xb)
        runs.append((float(loss), backend.to_numpy(y), [backend.to_numpy(p.data) for p in model.parameters()]))
        if device == "cuda":
            assert all(isinstance(p.data, StrictDeviceArray) for p in model.parameters())
            assert isinstance(y, StrictDeviceArray)
    if kwargs:  # with dropout on: no mixing either
        model = models.get_model(name, seed=0).to("cuda")
        y = model(backend.to_device(x, "cuda"))
        model.backward(y * 0 + 1)  # (None: the first conv skips its input gradient)
        assert all(isinstance(p.grad, StrictDeviceArray) for p in model.parameters())
    (loss0, y0, p0), (loss1, y1, p1) = runs
    assert loss1 == pytest.approx(loss0, rel=1e-5)
    np.testing.assert_allclose(y1, y0, rtol=1e-4, atol=1e-5)
    for a, b in zip(p1, p0):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name,shape", [("lenet5", (2, 1, 32, 32)), ("resnet20_cifar", (2, 3, 32, 32))])
def test_more_zoo_models_run_on_a_device_without_mixing(strict_gpu, name, shape):
    from convnp import models
    model = models.get_model(name, seed=0)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    with accel.disabled():  # the reference: the NumPy path, which the device code mirrors (batch norm over 2
        y_ref = model(x)     # samples magnifies the C kernel's other summation order into 1e-2 differences)
        dy = np.ones_like(y_ref)
        dx_ref = model.backward(dy)
    model.zero_grad()
    model.to("cuda")
    y = model(backend.to_device(x, "cuda"))
    dx = model.backward(backend.to_device(dy, "cuda"))
    assert isinstance(y, StrictDeviceArray)
    np.testing.assert_allclose(backend.to_numpy(y), y_ref, rtol=1e-4, atol=1e-5)
    if dx_ref is not None:
        np.testing.assert_allclose(backend.to_numpy(dx), dx_ref, rtol=1e-3, atol=1e-5)


def test_fit_evaluate_predict_on_a_device_without_mixing(strict_gpu):
    """The fit loop moves host batches to the model's device and never mixes host arrays into the step."""
    from convnp import models
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 1, 28, 28)).astype(np.float32)
    t = rng.integers(0, 10, 32)
    model = models.get_model("simple_convnet", seed=0).to("cuda")
    model.compile("adam", lr=1e-3)
    history = model.fit(x, t, epochs=1, batch_size=16, seed=0, verbose=0, validation_data=(x[:8], t[:8]))
    assert np.isfinite(history.history["loss"][-1])
    assert all(isinstance(p.data, StrictDeviceArray) for p in model.parameters())
    assert set(model.evaluate(x, t)) >= {"loss", "accuracy"}
    out = model.predict(x[:5])
    assert out.shape == (5, 10)


@pytest.mark.skipif(backend.cupy_available(), reason="checks the message on a machine without a GPU")
def test_cli_train_device_cuda_without_cupy_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    from convnp.cli import main
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_import_error", "ModuleNotFoundError: No module named 'cupy'")
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--model", "simple_convnet", "--device", "cuda", "--epochs", "1", "--subset", "10",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("convnp: error: device 'cuda' needs CuPy") and "convnp[gpu]" in err and "\n" not in err


@pytest.mark.parametrize("make", [
    lambda ps: __import__("convnp").optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: __import__("convnp").optim.SGD(ps, lr=0.1),
    lambda ps: __import__("convnp").optim.AdamW(ps, lr=1e-2, amsgrad=True),
], ids=["nesterov", "plain_sgd", "adamw_amsgrad"])
def test_optimizers_use_the_fused_kernels_on_a_device_and_match_the_cpu(strict_gpu, monkeypatch, make):
    """Three steps on 'device' parameters (fused kernels, emulated) equal three steps on the CPU."""
    from convnp import nn
    launched = []
    for name in ("adam_update", "sgd_update"):
        original = getattr(ops, name)
        monkeypatch.setattr(ops, name, lambda *a, _f=original, **k: launched.append(_f(*a, **k)) or launched[-1])
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    grads = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3)]
    results = []
    for device in ("cpu", "cuda"):
        p = nn.Parameter(backend.to_device(w0.copy(), device))
        opt = make([p])
        for g in grads:
            p.grad = backend.to_device(g.copy(), device)
            opt.step()
        results.append(backend.to_numpy(p.data))
    if ops.kernels_enabled():
        assert launched and all(r is True for r in launched)  # the fused path ran on the device
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-6)
