"""The command line's finish: --version, a closed pipe, file checks before model builds, random-weight
warnings, the demo CNN, digit models in classify."""
import os
import subprocess
import sys

import numpy as np
import pytest

import convnp
from convnp.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = os.path.join(ROOT, "convnp", "serve", "simple_convnet_mnist.npz")


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"convnp {convnp.__version__}"


def test_a_closed_pipe_ends_quietly():
    """``convnp summary vgg16 | head -0``: the reader is gone before convnp writes; no 'Broken pipe' error."""
    proc = subprocess.Popen([sys.executable, "-m", "convnp", "summary", "vgg16"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ, "CONVNP_ACCEL": "0"})
    proc.stdout.close()  # the reader goes away at once
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Broken pipe" not in err and "Traceback" not in err and err.strip() == ""


def test_classify_names_missing_files_before_building_the_model(tmp_path, capsys, monkeypatch):
    from convnp import models

    def no_build(*a, **k):
        raise AssertionError("the model was built before the files were checked")
    monkeypatch.setattr(models, "get_model", no_build)
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"x")
    assert main(["classify", str(photo), "--model", "vgg16", "--weights", str(tmp_path / "missing.pth")]) == 1
    assert "weights file not found: " in capsys.readouterr().err
    assert main(["classify", str(tmp_path / "nope.jpg"), "--model", "vgg16", "--weights", str(photo)]) == 1
    assert "image not found: " in capsys.readouterr().err


def _digit_file(tmp_path, index=0):
    from PIL import Image
    from convnp.data import load_mnist
    _, (x, t) = load_mnist()
    page = np.full((120, 200), 255, np.uint8)  # dark digit, small, in the corner of a wide page
    page[5:33, 5:33] = (255 - x[index, 0] * 255).astype(np.uint8)
    path = tmp_path / f"digit{index}.png"
    Image.fromarray(page).save(path)
    return str(path), int(t[index])


def test_classify_a_digit_model_uses_the_digit_pipeline(tmp_path, capsys):
    pytest.importorskip("PIL")
    from convnp.io.weights import save_weights
    weights = tmp_path / "sc.safetensors"
    save_weights(convnp.load(SHIPPED), weights)
    path, label = _digit_file(tmp_path)
    assert main(["classify", path, "--model", "simple_convnet", "--weights", str(weights), "--top", "2"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == path and lines[1].split()[0] == "1." and lines[1].split()[2] == str(label)
    assert "random weights" not in captured.err


def test_random_weights_say_so(tmp_path, capsys):
    pytest.importorskip("PIL")
    path, _ = _digit_file(tmp_path)
    assert main(["classify", path, "--model", "simple_convnet", "--top", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning: simple_convnet has random weights (no --weights given)" in err


def test_export_without_weights_warns(tmp_path, capsys):
    pytest.importorskip("onnx")
    assert main(["export", str(tmp_path / "m.onnx"), "--model", "simple_convnet"]) == 0
    assert "warning: simple_convnet has random weights" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "m.onnx"), "--weights", str(tmp_path / "none.npz")]) == 1
    assert "weights file not found" in capsys.readouterr().err


def test_demo_is_a_small_cnn_whose_loss_goes_down(capsys):
    assert main(["demo", "--batch-size", "4", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "Conv2D" in out and "MaxPool2D" in out and "Total params: 13,610" in out
    assert "0 Conv2D     -> (4, 8, 26, 26)" in out
    first = float(out.split("cross-entropy ")[1].split()[0])
    after = float(out.split("on this batch: cross-entropy ")[1].split()[0])
    assert after < first
    assert "|d loss / d 0.weight|" in out
