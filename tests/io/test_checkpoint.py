"""Checkpoints: one npz (no pickle), atomic writes, clear errors, convnp.load, bit-for-bit resume."""
import json
import os
import zipfile

import numpy as np
import pytest

import convnp
from convnp import nn
from convnp.io import CheckpointError, load_checkpoint, save_checkpoint, save_model
from convnp.train import Callback, LRScheduler, ModelCheckpoint


def data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 3, n)
    x = (3.0 * np.eye(3, 5)[t] + rng.standard_normal((n, 5))).astype(np.float32)
    return x, t


def net(seed=0):
    """Dense - BN - ReLU - Dropout (own RNG) - Dense: every kind of state a checkpoint must carry."""
    return nn.Sequential([nn.Dense(16, seed=seed), nn.BatchNorm1D(), nn.ReLU(), nn.Dropout(0.3, seed=seed + 5),
                          nn.Dense(3, seed=seed + 1)])


def jitter(xb, rng):
    return xb + 0.1 * rng.standard_normal(xb.shape).astype(xb.dtype)


# ------------------------------------------------------------------ round trips
def test_checkpoint_round_trip(tmp_path):
    x, t = data()
    model = net().compile("adam", lr=0.01)
    model.fit(x, t, epochs=2, batch_size=32, verbose=0, seed=0)
    trainer = model._trainer
    path = trainer.save_checkpoint(tmp_path / "c.npz")
    ckpt = load_checkpoint(path)
    assert ckpt.epoch == 2 and ckpt.input_shape == (5,)
    assert ckpt.meta["format"] == "convnp" and ckpt.meta["optimizer"] == "Adam"
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(ckpt.model_state[k], v)
        assert ckpt.model_state[k].dtype == v.dtype
    assert "1.running_mean" in ckpt.model_state
    opt_state = trainer.optimizer.state_dict()
    assert set(ckpt.optimizer_state) == set(opt_state)
    for k, v in opt_state.items():
        np.testing.assert_array_equal(np.asarray(ckpt.optimizer_state[k]), np.asarray(v))
    assert ckpt.state["history"]["epoch"] == [1, 2] and ckpt.state["seed"] == 0
    assert ckpt.state["rng"]["3:rng"] == model[3].rng.bit_generator.state  # the Dropout generator
    assert ckpt.state["compile"]["optimizer"] == "adam"


def test_file_is_one_npz_without_pickle(tmp_path):
    model = net()
    model(np.zeros((2, 5), np.float32))
    path = save_model(model, tmp_path / "m", input_shape=(5,))
    assert path.endswith("m.npz") and os.listdir(tmp_path) == ["m.npz"]
    with np.load(path, allow_pickle=False) as f:  # would raise on any object array
        arrays = {k: f[k] for k in f.files}
    assert all(a.dtype != object for a in arrays.values())
    assert json.loads(str(arrays["config"]))["class"] == "Sequential"


def test_convnp_load_returns_a_model_ready_for_predict(tmp_path):
    x, t = data()
    model = net().compile("adam", lr=0.01)
    model.fit(x, t, epochs=1, batch_size=32, verbose=0, seed=0)
    path = model.save(tmp_path / "model.npz")
    loaded = convnp.load(path)
    assert not loaded.training
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.predict_proba(x[:3]).shape == (3, 3)


def test_zoo_model_saved_by_factory_name(tmp_path):
    model = convnp.models.simple_convnet(seed=1)
    x = np.random.default_rng(0).random((2, 1, 28, 28)).astype(np.float32)
    path = model.save(tmp_path / "s.npz", input_shape=(1, 28, 28))
    assert load_checkpoint(path).config == {"factory": "simple_convnet", "config": {"seed": 1}}
    other = convnp.models.simple_convnet(seed=2)
    loaded = convnp.load(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert not np.array_equal(other.predict(x), model.predict(x))


# ------------------------------------------------------------------ atomic writes
def test_write_is_atomic(tmp_path, monkeypatch):
    model = net()
    model(np.zeros((2, 5), np.float32))
    path = save_checkpoint(tmp_path / "c.npz", model, epoch=1, input_shape=(5,))
    before = (tmp_path / "c.npz").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, epoch=2, input_shape=(5,))
    assert (tmp_path / "c.npz").read_bytes() == before  # the old checkpoint is intact
    assert os.listdir(tmp_path) == ["c.npz"]  # and no temporary file is left
    monkeypatch.undo()
    save_checkpoint(path, model, epoch=3, input_shape=(5,))
    assert load_checkpoint(path).epoch == 3 and os.listdir(tmp_path) == ["c.npz"]


# ------------------------------------------------------------------ bad files
@pytest.fixture
def good_file(tmp_path):
    model = net()
    model(np.zeros((2, 5), np.float32))
    return save_checkpoint(tmp_path / "good.npz", model, epoch=1, input_shape=(5,))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nope.npz"):
        load_checkpoint(tmp_path / "nope.npz")
    with pytest.raises(CheckpointError, match="is a directory; pass a checkpoint file such as .*best.npz"):
        load_checkpoint(tmp_path)


def test_truncated_file(good_file, tmp_path):
    blob = open(good_file, "rb").read()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="not a readable convnp checkpoint \\(corrupt or truncated file"):
        load_checkpoint(bad)


def test_corrupt_bytes(good_file, tmp_path):
    blob = bytearray(open(good_file, "rb").read())
    with zipfile.ZipFile(good_file) as z:
        info = z.getinfo("model/0.weight.npy")
    start = info.header_offset + 30 + len(info.filename) + 200
    blob[start:start + 64] = bytes(64)  # damage weight bytes: the CRC check must notice
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="corrupt or truncated file"):
        load_checkpoint(bad)
    noise = tmp_path / "noise.npz"
    noise.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(CheckpointError, match="noise.npz is not an .npz \\(zip\\) file"):
        load_checkpoint(noise)


def test_foreign_npz_and_pickled_arrays(tmp_path):
    foreign = tmp_path / "weights.npz"
    np.savez(foreign, w=np.zeros(3))
    with pytest.raises(CheckpointError, match="npz archive but not a convnp checkpoint .*load_weights"):
        load_checkpoint(foreign)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __convnp__=np.array('{"format": "convnp", "version": 1}'),
             config=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="entry 'config' has dtype object .*would need pickle"):
        load_checkpoint(pickled)


def test_newer_version_and_damaged_metadata(tmp_path, good_file):
    with np.load(good_file) as f:
        entries = {k: f[k] for k in f.files}
    meta = json.loads(str(entries["__convnp__"]))
    meta["version"] = 99
    entries["__convnp__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "new.npz", **entries)
    with pytest.raises(CheckpointError, match="written by a newer convnp \\(format version 99"):
        load_checkpoint(tmp_path / "new.npz")
    entries["__convnp__"] = np.array("{not json")
    np.savez(tmp_path / "meta.npz", **entries)
    with pytest.raises(CheckpointError, match="damaged checkpoint metadata"):
        load_checkpoint(tmp_path / "meta.npz")
    entries["__convnp__"] = np.array(json.dumps({"format": "other"}))
    np.savez(tmp_path / "other.npz", **entries)
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        load_checkpoint(tmp_path / "other.npz")


def test_weights_that_do_not_fit_the_config(tmp_path, good_file):
    with np.load(good_file) as f:
        entries = {k: f[k] for k in f.files}
    entries["model/0.weight"] = np.zeros((2, 2), np.float32)
    np.savez(tmp_path / "mismatch.npz", **entries)
    with pytest.raises(CheckpointError, match="stored weights do not fit the stored model.*0.weight"):
        convnp.load(tmp_path / "mismatch.npz")


def test_resume_into_a_different_model_is_refused(tmp_path):
    x, t = data()
    model = net().compile("adam", lr=0.01)
    model.fit(x, t, epochs=1, batch_size=32, verbose=0, seed=0, callbacks=[ModelCheckpoint(tmp_path)])
    other = nn.Sequential([nn.Dense(7, seed=0), nn.Dense(3, seed=1)]).compile("adam", lr=0.01)
    with pytest.raises(CheckpointError, match="resume: .*last.npz does not match this model"):
        other.fit(x, t, epochs=2, verbose=0, resume=tmp_path / "last.npz")


# ------------------------------------------------------------------ resume, bit for bit
class Interrupt(Callback):
    def __init__(self, epoch, step):
        self.at = (epoch, step)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, step, logs=None):
        if (self.epoch, step) == self.at:
            raise KeyboardInterrupt


def _run(tmp, x, t, epochs, model_seed, resume=None, interrupt=None):
    S = pytest.importorskip("convnp.optim.lr_scheduler")
    model = net(model_seed).compile("adam", "cross_entropy", ["accuracy"], lr=0.02)
    callbacks = [LRScheduler(lambda opt: S.StepLR(opt, step_size=1, gamma=0.7)), ModelCheckpoint(tmp)]
    if interrupt:
        callbacks.append(Interrupt(*interrupt))
    model.fit(x, t, epochs=epochs, batch_size=16, verbose=0, seed=123, transform=jitter, validation_split=0.2,
              callbacks=callbacks, resume=resume)
    return model


def test_resume_after_interruption_is_bit_for_bit(tmp_path):
    x, t = data(130)
    straight = _run(tmp_path / "a", x, t, epochs=4, model_seed=0)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", x, t, epochs=4, model_seed=0, interrupt=(2, 3))  # dies inside epoch 3
    assert load_checkpoint(tmp_path / "b" / "last.npz").epoch == 2
    resumed = _run(tmp_path / "b", x, t, epochs=4, model_seed=99, resume=tmp_path / "b" / "last.npz")
    for k, v in straight.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[k], v, err_msg=k)
    a, b = straight._trainer, resumed._trainer
    for k, v in a.optimizer.state_dict().items():
        np.testing.assert_array_equal(np.asarray(b.optimizer.state_dict()[k]), np.asarray(v), err_msg=k)
    assert a.optimizer.lr == b.optimizer.lr
    assert straight[3].rng.bit_generator.state == resumed[3].rng.bit_generator.state
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert a.history.history[key] == b.history.history[key]
    assert b.history.epoch == [1, 2, 3, 4]
    last_a = load_checkpoint(tmp_path / "a" / "last.npz")
    last_b = load_checkpoint(tmp_path / "b" / "last.npz")
    assert last_a.state["callbacks"] == last_b.state["callbacks"]


def test_resume_of_a_finished_run_trains_no_further(tmp_path):
    x, t = data()
    done = _run(tmp_path, x, t, epochs=2, model_seed=0)
    again = _run(tmp_path, x, t, epochs=2, model_seed=5, resume=tmp_path / "last.npz")
    for k, v in done.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k], v)
