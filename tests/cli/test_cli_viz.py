"""``convnp viz ...``: every command writes its PNG files to --out for a checkpoint made in the test."""
import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

from convnp import nn  # noqa: E402
from convnp.cli import main  # noqa: E402
from convnp.io.checkpoint import save_checkpoint  # noqa: E402

HISTORY = {"epoch": [1, 2], "history": {"loss": [2.0, 1.5], "val_loss": [2.1, 1.7], "accuracy": [0.3, 0.5],
                                        "val_accuracy": [0.2, 0.4]}}


def mnist_net(seed=0):
    model = nn.Sequential([nn.Conv2D(4, 5, activation="relu", in_channels=1, seed=seed), nn.MaxPool2D(2),
                           nn.Conv2D(6, 3, activation="relu", in_channels=4, seed=seed + 1), nn.Flatten(),
                           nn.Dense(10, seed=seed + 2)])
    model(np.zeros((1, 1, 28, 28), np.float32))
    return model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    state = {"dataset": "mnist", "class_names": [str(i) for i in range(10)], "history": HISTORY}
    save_checkpoint(run / "last.npz", mnist_net(0), epoch=2, input_shape=(1, 28, 28), state=state)
    save_checkpoint(run / "first.npz", mnist_net(10), epoch=0, input_shape=(1, 28, 28), state={})
    return run


def assert_png(path):
    assert path.is_file(), path
    with Image.open(path) as img:
        assert img.size[0] > 50 and img.size[1] > 50
        assert np.asarray(img.convert("RGB"), dtype=np.float64).var() > 0


def test_viz_filters(run_dir, tmp_path, capsys):
    assert main(["viz", "filters", str(run_dir / "last.npz"), "--out", str(tmp_path)]) == 0
    assert_png(tmp_path / "filters.png")
    assert f"wrote {tmp_path / 'filters.png'}" in capsys.readouterr().out
    out = tmp_path / "ba"
    assert main(["viz", "filters", str(run_dir / "last.npz"), "--before", str(run_dir / "first.npz"),
                 "--layer", "2", "--scale", "filter", "--out", str(out)]) == 0
    assert_png(out / "filters.png")


def test_viz_features_from_test_set_npy_and_image_file(run_dir, tmp_path):
    assert main(["viz", "features", str(run_dir / "last.npz"), "test:3", "--out", str(tmp_path / "a")]) == 0
    assert_png(tmp_path / "a" / "features.png")
    np.save(tmp_path / "digit.npy", np.random.default_rng(0).random((28, 28)).astype(np.float32))
    assert main(["viz", "features", str(run_dir / "last.npz"), str(tmp_path / "digit.npy"), "--layers", "0", "4",
                 "--out", str(tmp_path / "b")]) == 0
    assert_png(tmp_path / "b" / "features.png")
    picture = (np.random.default_rng(1).random((40, 30)) * 255).astype(np.uint8)
    Image.fromarray(picture).save(tmp_path / "photo.png")  # any size: resized to the checkpoint's 28x28
    assert main(["viz", "features", str(run_dir / "last.npz"), str(tmp_path / "photo.png"),
                 "--out", str(tmp_path / "c")]) == 0
    assert_png(tmp_path / "c" / "features.png")


def test_viz_history_from_run_dir_and_log(run_dir, tmp_path):
    assert main(["viz", "history", str(run_dir), "--out", str(tmp_path)]) == 0  # the History in last.npz
    assert_png(tmp_path / "history.png")
    (tmp_path / "history.json").write_text(json.dumps(HISTORY))
    assert main(["viz", "history", str(tmp_path / "history.json"), "--metrics", "loss",
                 "--out", str(tmp_path / "log")]) == 0
    assert_png(tmp_path / "log" / "history.png")


def test_viz_misclassified_writes_grid_and_confusion_matrix(run_dir, tmp_path):
    assert main(["viz", "misclassified", str(run_dir / "last.npz"), "--limit", "60", "--max-images", "9",
                 "--out", str(tmp_path)]) == 0
    assert_png(tmp_path / "misclassified.png")
    assert_png(tmp_path / "confusion_matrix.png")


def test_viz_saliency(run_dir, tmp_path):
    assert main(["viz", "saliency", str(run_dir / "last.npz"), "test:0", "--class-index", "7",
                 "--layer", "0", "--out", str(tmp_path)]) == 0
    assert_png(tmp_path / "saliency.png")


def test_viz_errors_are_one_line(run_dir, tmp_path, capsys):
    ckpt = str(run_dir / "last.npz")
    assert main(["viz"]) == 2
    cases = [
        (["viz", "features", ckpt, "test:99999"], "IMAGE test:99999: the mnist test set has 10000 images"),
        (["viz", "features", ckpt, "test:x"], "IMAGE test:N needs an integer N, got 'test:x'"),
        (["viz", "saliency", ckpt, str(tmp_path / "none.png")], "image not found:"),
        (["viz", "history", str(tmp_path / "missing")], "plot_history: "),
        (["viz", "filters", str(tmp_path / "missing.npz")], "checkpoint not found"),
        (["viz", "filters", ckpt, "--layer", "conv7"], "plot_filters: no layer named 'conv7'"),
        (["viz", "misclassified", ckpt, "--limit", "0"], "--limit must be positive, got 0"),
    ]
    for argv, message in cases:
        assert main(argv + ["--out", str(tmp_path)]) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("convnp: error: ") and message in err, (argv, err)
    np.save(tmp_path / "bad.npy", np.zeros(5, np.float32))
    assert main(["viz", "features", ckpt, str(tmp_path / "bad.npy"), "--out", str(tmp_path)]) == 1
    assert r"expected an array (C, H, W) or (H, W), got shape (5,)" in capsys.readouterr().err
