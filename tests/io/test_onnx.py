"""ONNX export checked with onnxruntime against convnp's own output, for every zoo family."""
import numpy as np
import pytest

from convnp import models, nn
from convnp.cli import main
from convnp.io.onnx_export import export_onnx
from convnp.models.densenet import densenet
from convnp.models.resnet import ResNet

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def _randomize_bn(model, seed=0):
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2D):
            m.weight.data = rng.uniform(0.5, 1.5, m.weight.shape).astype(np.float32)
            m.bias.data = rng.normal(0, 0.2, m.bias.shape).astype(np.float32)
            object.__setattr__(m, "running_mean", rng.normal(0, 0.2, m.running_mean.shape).astype(np.float32))
            object.__setattr__(m, "running_var", rng.uniform(0.5, 1.5, m.running_var.shape).astype(np.float32))
    return model


CASES = [
    ("resnet_basic", lambda: ResNet("basic", (1, 1, 1, 1), 6, 3, (4, 8, 8, 16), seed=0), (3, 48, 40)),
    ("resnet_bottleneck", lambda: ResNet("bottleneck", (1, 1), 6, 3, (4, 8), seed=0), (3, 33, 33)),
    ("preact_cifar", lambda: ResNet("preact", (1, 1), 6, 3, (4, 8), stem="cifar", seed=0), (3, 16, 16)),
    ("resnet20_optionA", lambda: models.resnet20_cifar(seed=0), (3, 32, 32)),
    ("densenet", lambda: densenet((2, 2), 4, 8, 2, num_classes=6, seed=0), (3, 32, 32)),
    ("vgg16_bn", lambda: models.vgg16_bn(width=1 / 16, num_classes=6, seed=0), (3, 45, 37)),
    ("lrn_groups", lambda: nn.Sequential([nn.Conv2D(8, 5, strides=2, padding=2, in_channels=3, activation="relu",
                                                    seed=0), nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0),
                                          nn.MaxPool2D(3, strides=2), nn.Conv2D(6, 3, groups=2, in_channels=8, seed=1),
                                          nn.Dropout(0.5), nn.Flatten()]), (3, 23, 23)),
    ("lenet5", lambda: models.lenet5(seed=0), (1, 32, 32)),
    ("same_padding", lambda: nn.Sequential([nn.Conv2D(4, 3, strides=2, padding="same", in_channels=2, seed=0,
                                                      activation="tanh"),
                                            nn.AvgPool2D(3, strides=2, padding="same"),
                                            nn.MaxPool2D(2, padding="same"), nn.GlobalAvgPool2D(),
                                            nn.Dense(3, in_features=4, activation="softmax", seed=1)]), (2, 11, 9)),
]


@pytest.mark.parametrize("name,build,shape", CASES, ids=[c[0] for c in CASES])
def test_onnxruntime_matches_convnp(tmp_path, name, build, shape):
    model = _randomize_bn(build()).eval()
    path = tmp_path / f"{name}.onnx"
    export_onnx(model, path, shape)
    x = np.random.default_rng(1).standard_normal((2,) + shape).astype(np.float32)
    expected = model(x)
    got = _run(path, x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(expected).max())))
    assert model.training is False


def test_export_keeps_training_mode_and_dynamic_batch(tmp_path):
    m = ResNet("basic", (1, 1), 3, 3, (4, 8), stem="cifar", seed=0)
    export_onnx(m, tmp_path / "m.onnx", (3, 8, 8))
    assert m.training is True
    x = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(tmp_path / "m.onnx", x), m.eval()(x), rtol=1e-4, atol=1e-5)


def test_unsupported_layer_is_named(tmp_path):
    class Odd(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(NotImplementedError, match="ONNX export: no converter for Odd at 1"):
        export_onnx(nn.Sequential([nn.Flatten(), Odd()]), tmp_path / "x.onnx", (1, 2, 2))


def test_cli_export(tmp_path, capsys):
    from convnp.io.weights import save_weights
    w = tmp_path / "r20.safetensors"
    m = models.resnet20_cifar(seed=3)
    save_weights(m, w)
    out = tmp_path / "r20.onnx"
    assert main(["export", str(out), "--model", "resnet20_cifar", "--weights", str(w)]) == 0
    assert "wrote" in capsys.readouterr().out
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(_run(out, x), m.eval()(x), rtol=1e-4, atol=1e-4)
    assert main(["export", str(out), "--model", "lenet5", "--input-shape", "1,32"]) == 1
    assert "--input-shape must be C,H,W" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- import
from convnp.gradcheck import check_module_gradients  # noqa: E402
from convnp.io.onnx_import import ConstMatMul, load_onnx  # noqa: E402


@pytest.mark.parametrize("name", ["resnet_basic", "densenet", "vgg16_bn", "lrn_groups", "lenet5"])
def test_import_reproduces_forward_and_backward(tmp_path, name):
    build, shape = {c[0]: (c[1], c[2]) for c in CASES}[name]
    model = _randomize_bn(build()).eval()
    export_onnx(model, tmp_path / "m.onnx", shape)
    imported = load_onnx(tmp_path / "m.onnx")
    assert imported.num_parameters() == model.num_parameters()
    x = np.random.default_rng(1).standard_normal((2,) + shape).astype(np.float32)
    y = model(x)
    np.testing.assert_allclose(imported(x), y, rtol=1e-5, atol=1e-6)
    g = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(imported.backward(g), model.backward(g), rtol=1e-4, atol=1e-5)


def test_imported_graph_gradients_float64(tmp_path):
    model = _randomize_bn(densenet((1, 1), 2, 4, 2, num_classes=3, seed=0)).eval()
    export_onnx(model, tmp_path / "d.onnx", (3, 8, 8))
    imported = load_onnx(tmp_path / "d.onnx").astype(np.float64)
    for m in imported.modules():  # BN shifts away from 0 keep ReLU inputs off the kink
        if type(m).__name__ == "BatchNorm2D":
            m.bias.data = np.where(m.bias.data >= 0, m.bias.data + 0.5, m.bias.data - 0.5)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    check_module_gradients(imported, x, tol=1e-4)


def test_const_matmul_and_import_errors(tmp_path):
    m = ConstMatMul(np.arange(6.0).reshape(2, 3), "left")
    check_module_gradients(m.astype(np.float64), np.random.default_rng(0).standard_normal((2, 3, 4)))
    with pytest.raises(ValueError, match="ConstMatMul: side must be 'left' or 'right'"):
        ConstMatMul(np.eye(2), "middle")
    export_onnx(models.resnet20_cifar(seed=0), tmp_path / "r20.onnx", (3, 32, 32))
    with pytest.raises(NotImplementedError, match=r"ONNX import does not support 2 operators used in this file: Pad \(2x, .*Slice \(2x"):
        load_onnx(tmp_path / "r20.onnx")
    (tmp_path / "bad.onnx").write_bytes((tmp_path / "r20.onnx").read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated or not an ONNX file"):
        load_onnx(tmp_path / "bad.onnx")
    same = nn.Sequential([nn.MaxPool2D(2, padding="same"), nn.Flatten()])
    export_onnx(same, tmp_path / "same.onnx", (1, 5, 5))
    with pytest.raises(NotImplementedError, match=r"MaxPool .* has asymmetric pads \[0, 0, 1, 1\]"):
        load_onnx(tmp_path / "same.onnx")
