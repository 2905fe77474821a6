"""The train / evaluate / predict / summary commands, run in-process through convnp.cli.main."""
import os
import subprocess
import sys

import numpy as np
import pytest

from convnp.cli import main
from convnp.data import load_mnist

QUICK = ["--subset", "1000", "--batch-size", "50", "--test-subset", "300", "--progress", "plain", "--seed", "0"]
LOG = {}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import contextlib
    import io
    out = tmp_path_factory.mktemp("run")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["train", "--epochs", "1", "--out", str(out)] + QUICK) == 0
    LOG["train"] = buf.getvalue()
    return out


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_writes_checkpoints_logs_and_curves(trained):
    names = set(os.listdir(trained))
    assert {"best.npz", "last.npz", "history.csv", "history.json"} <= names
    pytest.importorskip("matplotlib")
    assert "curves.png" in names


def test_train_prints_progress_summary_and_test_accuracy(trained):
    out = LOG["train"]
    assert "training simple_convnet on mnist (1000 images, 433,890 parameters) for 1 epoch: adam lr 0.001" in out
    assert "batch 50, schedule cosine, augment shift, seed 0" in out and "ETA" in out and "samples/s" in out
    assert "epoch 1/1  loss" in out and "val_accuracy" in out
    line = next(line for line in out.splitlines() if line.startswith("test accuracy"))
    assert float(line.split()[2].rstrip("%")) > 70.0  # 1000 images, one epoch: far above chance (10%)
    assert "after 1 epoch," in out
    for name in ("best.npz", "last.npz", "history.csv", "history.json"):  # the final lines name every file
        assert f"wrote {trained / name}  (" in out


def test_resume_continues_to_the_requested_epochs(trained, tmp_path, capsys):
    import shutil
    run_dir = tmp_path / "r"
    shutil.copytree(trained, run_dir)
    code, out, _ = run(capsys, "train", "--epochs", "2", "--out", str(run_dir), "--resume",
                       str(run_dir / "last.npz"), *QUICK)
    assert code == 0
    assert "epoch 2/2  loss" in out and "epoch 1/2  loss" not in out
    rows = (run_dir / "history.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


def test_evaluate_and_report(trained, capsys):
    code, out, _ = run(capsys, "evaluate", str(trained / "best.npz"), "--subset", "200", "--report")
    assert code == 0
    assert "(epoch 1) on mnist test (200 images): accuracy" in out and "top-5" in out
    assert "precision" in out and "confusion matrix" in out


def _digit_png(path, index, invert=False):
    from PIL import Image
    _, (x, t) = load_mnist()
    img = (x[index, 0] * 255).astype(np.uint8)
    Image.fromarray(255 - img if invert else img).resize((56, 56)).save(path)
    return int(t[index])


def test_predict_images_and_folders(trained, tmp_path, capsys):
    pytest.importorskip("PIL")
    folder = tmp_path / "imgs"
    folder.mkdir()
    label = _digit_png(folder / "a.png", 0)
    _digit_png(folder / "b.png", 1, invert=True)  # dark digit on white paper: auto-inverted
    (folder / "notes.txt").write_text("not an image")
    code, out, _ = run(capsys, "predict", str(trained / "best.npz"), str(folder), "--top", "2")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(folder / "a.png") + ": ")
    first = lines[0].split(": ")[1].split(", ")
    assert len(first) == 2 and first[0].startswith(f"{label} (")  # the 7 of the test set
    p = float(first[0].split("(")[1].rstrip(")"))
    assert 0.0 <= p <= 1.0


@pytest.mark.parametrize("model, recipe", [("deep_convnet", "schedule cosine, augment off"),
                                           ("mnist_best", "schedule onecycle, augment on")])
def test_other_recipes_run_a_short_step(model, recipe, tmp_path, capsys):
    code, out, _ = run(capsys, "train", "--model", model, "--epochs", "1", "--subset", "32", "--batch-size", "16",
                       "--test-subset", "16", "--out", str(tmp_path), "--progress", "summary")
    assert code == 0 and recipe in out and "test accuracy" in out
    import convnp
    assert convnp.load(tmp_path / "last.npz").predict(np.zeros((1, 1, 28, 28), np.float32)).shape == (1, 10)


def test_summary_and_list(capsys):
    code, out, _ = run(capsys, "summary", "simple_convnet")
    assert code == 0 and "conv1 (Conv2D)" in out and "433,890" in out
    code, out, _ = run(capsys, "summary", "deep_convnet", "--input-shape", "1,32,32")
    assert code == 0 and "(None, 64, 4, 4)" in out
    code, out, _ = run(capsys, "summary", "--list")
    assert {"simple_convnet", "deep_convnet", "mnist_best"} <= set(out.split())


def test_summary_of_a_checkpoint(trained, capsys):
    code, out, _ = run(capsys, "summary", str(trained / "last.npz"))
    assert code == 0 and "Total params: 433,890" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "resnet9000", "--epochs", "1"], "unknown model 'resnet9000'; available:"),
    (["train", "--dataset", "svhn"], "unknown dataset 'svhn'"),
    (["train", "--resume", "missing.npz"], "checkpoint not found: missing.npz"),
    (["evaluate", "missing.npz"], "checkpoint not found: missing.npz"),
    (["predict", "missing.npz", "x.png"], "checkpoint not found: missing.npz"),
    (["summary", "nonet"], "unknown model 'nonet'"),
    (["summary", "simple_convnet", "--input-shape", "1,28"], "--input-shape must have 3 numbers"),
])
def test_one_line_errors(argv, message, capsys):  # (bad numbers in flags: argparse, tests/cli/test_reliability_cli.py)
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert err.startswith("convnp: error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_corrupt_checkpoint_and_bad_images(trained, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    code, _, err = run(capsys, "evaluate", str(bad))
    assert code == 1 and "not a readable convnp checkpoint" in err and "Traceback" not in err
    pytest.importorskip("PIL")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    code, _, err = run(capsys, "predict", str(trained / "best.npz"), str(junk))
    assert code == 1 and f"{junk} is not a readable image" in err
    code, _, err = run(capsys, "predict", str(trained / "best.npz"), str(tmp_path / "none.png"))
    assert code == 1 and "image not found" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "predict", str(trained / "best.npz"), str(empty))
    assert code == 1 and "no images" in err


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(ValueError, match="unknown model"):
        main(["--debug", "summary", "nonet"])


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "convnp", "train", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0
    for flag in ("--model", "--dataset", "--epochs", "--batch-size", "--optimizer", "--lr", "--augment", "--seed",
                 "--out", "--resume", "--subset"):
        assert flag in result.stdout
