"""A training checkpoint leaves through the CLI: ``convnp export --model ckpt.npz``, ``--weights ckpt.npz``
and ``convnp convert ckpt.npz x.safetensors``; ``weights="DEFAULT"`` says where to get the file."""
import numpy as np
import pytest

from convnp import models, optim
from convnp.cli import main
from convnp.io.checkpoint import save_checkpoint
from convnp.io.weights import read_state_dict


@pytest.fixture()
def checkpoint(tmp_path):
    model = models.get_model("simple_convnet")
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x = np.random.default_rng(0).normal(size=(2, 1, 28, 28)).astype(np.float32)
    model(x)
    return save_checkpoint(tmp_path / "best.npz", model, opt, epoch=1, input_shape=(1, 28, 28)), model, x


def test_convert_takes_a_checkpoint(tmp_path, checkpoint):
    path, model, _ = checkpoint
    assert main(["convert", str(path), str(tmp_path / "w.safetensors")]) == 0
    state = read_state_dict(tmp_path / "w.safetensors")
    assert sorted(state) == sorted(model.state_dict())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(state[k], np.asarray(v), err_msg=k)


def test_export_takes_a_checkpoint(tmp_path, checkpoint):
    pytest.importorskip("onnx")
    from convnp.io.onnx_import import load_onnx
    path, model, x = checkpoint
    expected = model.eval()(x)
    assert main(["export", str(tmp_path / "a.onnx"), "--model", str(path)]) == 0
    assert main(["export", str(tmp_path / "b.onnx"), "--model", "simple_convnet", "--weights", str(path)]) == 0
    for name in ("a.onnx", "b.onnx"):
        np.testing.assert_allclose(load_onnx(tmp_path / name)(x), expected, rtol=1e-5, atol=1e-6)


def test_weights_default_says_where_to_get_the_file():
    with pytest.raises(FileNotFoundError, match=r"weights='DEFAULT' is torchvision's way .*docs/models.md"):
        models.resnet18(weights="DEFAULT")
