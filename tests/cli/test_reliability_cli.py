"""Careless input on the command line and in training: flags refused at parse time naming the flag, an
unwritable --out refused before training, NaNGuard's divergence rule (message printed once), stale checkpoint
temp files removed, checkpoint modes following the umask, layer dtype/shape refusals, ONNX dangling inputs,
blank images and float TIFFs in predict."""
import os
import time

import numpy as np
import pytest

from convnp import nn
from convnp.cli import main
from convnp.io import save_checkpoint


@pytest.mark.parametrize("argv,flag,value", [
    (["evaluate", "x.npz", "--batch-size", "-5"], "--batch-size", "must be a positive integer, got '-5'"),
    (["evaluate", "x.npz", "--batch-size", "0"], "--batch-size", "must be a positive integer, got '0'"),
    (["evaluate", "x.npz", "--subset", "0"], "--subset", "must be a positive integer, got '0'"),
    (["predict", "x.npz", "a.png", "--top", "0"], "--top", "must be a positive integer, got '0'"),
    (["predict", "x.npz", "a.png", "--top", "-3"], "--top", "must be a positive integer, got '-3'"),
    (["train", "--val-split", "nan"], "--val-split", "must be a fraction in [0, 1), got 'nan'"),
    (["train", "--val-split", "1"], "--val-split", "must be a fraction in [0, 1), got '1'"),
    (["train", "--seed", "-1"], "--seed", "must be an integer >= 0, got '-1'"),
    (["train", "--lr", "inf"], "--lr", "must be a finite number > 0, got 'inf'"),
    (["train", "--lr", "nan"], "--lr", "must be a finite number > 0, got 'nan'"),
    (["train", "--epochs", "two"], "--epochs", "must be an integer, got 'two'"),
])
def test_bad_flags_are_refused_naming_flag_and_value(capsys, argv, flag, value):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: {value}" in err, err


@pytest.mark.parametrize("where", ["under_a_file", "read_only"])
def test_unwritable_out_fails_before_training(tmp_path, capsys, where):
    if where == "under_a_file":
        (tmp_path / "f").write_text("x")
        out = tmp_path / "f" / "run"
    else:
        if os.geteuid() == 0:
            pytest.skip("root can write into read-only folders")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out = ro / "run"
    start = time.monotonic()
    code = main(["train", "--epochs", "1", "--subset", "100", "--out", str(out)])
    err = capsys.readouterr()
    assert code == 1
    assert f"--out {out} is not a writable folder" in err.err
    assert "training" not in err.out  # refused before the training header
    assert time.monotonic() - start < 20


# ------------------------------------------------------------------ NaNGuard
def _data(n=64):
    rng = np.random.default_rng(0)
    t = rng.integers(0, 3, n)
    return (np.eye(3, 4)[t] + 0.1 * rng.standard_normal((n, 4))).astype(np.float32), t


def test_nanguard_divergence_rule_stops_and_says_so(capsys):
    from convnp.train import NaNGuard, Trainer
    x, t = _data()
    model = nn.Sequential([nn.Dense(16, seed=0), nn.ReLU(), nn.Dense(3, seed=1)])
    guard = NaNGuard(divergence=3.0)
    history = Trainer(model, "sgd", "cross_entropy", lr=50.0).fit(x, t, epochs=5, batch_size=8, callbacks=[guard],
                                                                  verbose=0, seed=0)
    assert history.stopped_reason is not None and "loss diverged" in history.stopped_reason
    assert "above 3 x its first value" in history.stopped_reason
    assert len(history.to_dict().get("loss", [])) < 5
    assert capsys.readouterr().err.count("loss diverged") == 1


def test_nanguard_without_the_rule_does_not_stop_on_high_loss():
    from convnp.train import NaNGuard, Trainer
    x, t = _data()
    model = nn.Sequential([nn.Dense(16, seed=0), nn.ReLU(), nn.Dense(3, seed=1)])
    history = Trainer(model, "sgd", "cross_entropy", lr=0.1).fit(x, t, epochs=2, batch_size=8,
                                                                 callbacks=[NaNGuard(divergence=3.0)], verbose=0)
    assert not history.stopped_reason


def test_nanguard_divergence_must_exceed_one():
    from convnp.train import NaNGuard
    with pytest.raises(ValueError, match="NaNGuard: divergence must be a finite number > 1.*got 0.5"):
        NaNGuard(divergence=0.5)


# ------------------------------------------------------------------ checkpoint leftovers and modes
def _built():
    model = nn.Sequential([nn.Dense(4, seed=0)])
    model(np.zeros((1, 3), np.float32))
    return model


def test_stale_temp_files_of_the_target_are_removed(tmp_path):
    stale = tmp_path / ".last.npz.abc123.tmp"
    stale.write_bytes(bytes(1000))
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".last.npz.fresh.tmp"  # a concurrent writer's file: left alone
    fresh.write_bytes(b"x")
    other = tmp_path / ".best.npz.zzz.tmp"  # another target's: left alone
    other.write_bytes(b"x")
    os.utime(other, (old, old))
    save_checkpoint(tmp_path / "last.npz", _built())
    assert not stale.exists() and fresh.exists() and other.exists()


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_checkpoint_mode_follows_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path / "c.npz", _built())
    finally:
        os.umask(previous)
    assert os.stat(path).st_mode & 0o777 == mode


def test_checkpoint_write_error_names_the_file(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match=r"cannot write checkpoint .*c.npz: No space left on device"):
        save_checkpoint(tmp_path / "c.npz", _built())


# ------------------------------------------------------------------ layers
@pytest.mark.parametrize("dtype,kind", [(np.complex64, "complex"), (object, "Python objects"), ("U3", "text")])
def test_conv2d_refuses_non_real_input(dtype, kind):
    with pytest.raises(TypeError, match=f"Conv2D: input dtype .* \\({kind}\\) is not supported"):
        nn.Conv2D(2, 3)(np.ones((1, 1, 5, 5)).astype(dtype))


def test_flatten_refuses_an_unbatched_vector():
    with pytest.raises(ValueError, match=r"Flatten: expected a batch \(N, \.\.\.\) of at least 2 dimensions, got "
                                         r"shape \(5,\)"):
        nn.Flatten()(np.ones(5))
    assert nn.Flatten()(np.ones((2, 3, 4))).shape == (2, 12)


def test_conv2d_backward_checks_dy_shape():
    conv = nn.Conv2D(2, 3)
    y = conv(np.ones((1, 1, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D.backward: dy must have the shape of the forward output "
                                         r"\(1, 2, 3, 3\), got \(1, 2, 2, 2\)"):
        conv.backward(np.ones((1, 2, 2, 2), np.float32))
    assert conv.backward(np.ones_like(y)).shape == (1, 1, 5, 5)


def test_onnx_dangling_input_is_named(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    from convnp.io.onnx_import import load_onnx
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["a"]),
                               helper.make_node("Add", ["a", "ghost"], ["output"])], "g", [x], [y])
    path = tmp_path / "dangling.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ValueError, match=r"dangling.onnx: ONNX node '[Aa]dd' reads 'ghost', which is neither the "
                                         r"graph input 'input' nor the output of an earlier node"):
        load_onnx(path)


# ------------------------------------------------------------------ predict: blank pictures, float TIFF
@pytest.fixture(scope="module")
def digit_ckpt(tmp_path_factory):
    from convnp.serve.app import DEFAULT_CHECKPOINT
    return DEFAULT_CHECKPOINT


@pytest.mark.parametrize("fill", [0.0, 1.0, 0.5])
def test_predict_refuses_blank_and_uniform_images(tmp_path, capsys, digit_ckpt, fill):
    from PIL import Image
    path = tmp_path / "blank.png"
    Image.fromarray(np.full((28, 28), int(fill * 255), np.uint8)).save(path)
    code = main(["predict", digit_ckpt, str(path)])
    captured = capsys.readouterr()
    assert code == 1, captured.out
    assert "blank.png" in captured.err and "no ink" in captured.err


def test_predict_reads_a_float_tiff_in_0_1(tmp_path, capsys, digit_ckpt):
    from PIL import Image
    from serve_helpers import mnist_test_digit
    image, label = mnist_test_digit(0)
    path = tmp_path / "digit.tif"
    Image.fromarray(np.asarray(image, np.float32), mode="F").save(path)
    assert Image.open(path).mode == "F"
    code = main(["predict", digit_ckpt, str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert any(line.startswith(f"{path}: {label} (") for line in out.splitlines()), out
