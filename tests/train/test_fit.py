"""The fit loop, Keras-style model methods, callbacks, metrics, history and progress output."""
import io
import json

import numpy as np
import pytest

import convnp
from convnp import nn
from convnp.nn.losses import CrossEntropyLoss
from convnp.train import (CSVLogger, Callback, EarlyStopping, History, JSONLogger, LRScheduler, ModelCheckpoint,
                          NaNGuard, ProgressBar, Trainer, accuracy, classification_report, confusion_matrix,
                          get_metric, precision_recall, predict, softmax, top_k_accuracy)
from convnp.train.progress import EpochProgress, format_seconds


def blobs(n=300, seed=0, k=3, d=4):
    """k well separated Gaussian blobs in d dimensions (float32 inputs, int labels)."""
    rng = np.random.default_rng(seed)
    centres = 6.0 * np.eye(k, d)  # well apart: a working fit gets > 95%
    t = rng.integers(0, k, n)
    x = (centres[t] + rng.standard_normal((n, d))).astype(np.float32)
    return x, t


def mlp(seed=0, k=3):
    return nn.Sequential([nn.Dense(16, activation="relu", seed=seed), nn.Dense(k, seed=seed + 1)])


class Recorder(nn.Module):
    """Identity layer that records the first feature of every training batch (the sample ids)."""

    def __init__(self):
        super().__init__()
        object.__setattr__(self, "batches", [])

    def forward(self, x):
        if self.training:
            self.batches.append(x[:, 0].astype(int).tolist())
        return x

    def backward(self, dy):
        return dy


# ------------------------------------------------------------------ compile / fit
def test_fit_learns_and_returns_history():
    x, t = blobs()
    model = mlp()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"], lr=0.01)
    h = model.fit(x, t, epochs=4, batch_size=32, seed=0, verbose=0, validation_split=0.2)
    assert isinstance(h, History) and h.epoch == [1, 2, 3, 4]
    assert h.history["loss"][-1] < h.history["loss"][0] * 0.5
    assert h.history["val_accuracy"][-1] > 0.9
    assert h.history["lr"] == [0.01] * 4
    assert not model.training  # fit leaves the model in eval mode
    result = model.evaluate(x, t)
    assert set(result) == {"loss", "accuracy"} and result["accuracy"] > 0.9


def test_fit_is_reproducible_with_a_seed():
    x, t = blobs()
    weights = []
    for _ in range(2):
        model = mlp()
        model.compile("sgd", "cross_entropy", lr=0.1)
        model.fit(x, t, epochs=2, batch_size=25, seed=7, verbose=0)
        weights.append(model.state_dict())
    for k in weights[0]:
        np.testing.assert_array_equal(weights[0][k], weights[1][k])


def test_every_epoch_visits_every_sample_once():
    n = 53
    x = np.stack([np.arange(n), np.zeros(n)], 1).astype(np.float32)
    t = np.arange(n) % 2
    rec = Recorder()
    model = nn.Sequential([rec, nn.Dense(2, seed=0)])
    model.compile("sgd", "cross_entropy", lr=0.0)
    model.fit(x, t, epochs=3, batch_size=10, seed=1, verbose=0)
    assert [len(b) for b in rec.batches[:6]] == [10, 10, 10, 10, 10, 3]
    epochs = [sum(rec.batches[6 * e:6 * e + 6], []) for e in range(3)]
    for seen in epochs:
        assert sorted(seen) == list(range(n))
    assert epochs[0] != epochs[1]
    rec.batches.clear()
    model.fit(x, t, epochs=1, batch_size=10, seed=1, verbose=0, drop_last=True)
    assert [len(b) for b in rec.batches] == [10] * 5
    rec.batches.clear()
    model.fit(x, t, epochs=1, batch_size=10, seed=1, verbose=0, shuffle=False)
    assert sum(rec.batches, []) == list(range(n))


def test_validation_split_holds_out_the_last_samples():
    n = 40
    x = np.stack([np.arange(n), np.zeros(n)], 1).astype(np.float32)
    rec = Recorder()
    model = nn.Sequential([rec, nn.Dense(2, seed=0)])
    model.compile("sgd", "cross_entropy", lr=0.0)
    h = model.fit(x, np.zeros(n, int), epochs=1, batch_size=8, validation_split=0.25, verbose=0, seed=0)
    assert sorted(sum(rec.batches, [])) == list(range(30))
    assert "val_loss" in h.history


@pytest.mark.parametrize("kwargs, error, message", [
    ({"validation_split": 1.0}, ValueError, r"validation_split must be in \[0, 1\)"),
    ({"validation_split": 0.001}, ValueError, "leaves no training or no validation samples"),
    ({"validation_split": 0.2, "validation_data": (np.zeros((2, 4), np.float32), np.zeros(2, int))}, ValueError,
     "validation_data or validation_split, not both"),
    ({"epochs": -1}, ValueError, "epochs must be >= 0"),
])
def test_fit_argument_errors(kwargs, error, message):
    x, t = blobs(20)
    model = mlp().compile("sgd", lr=0.1)
    with pytest.raises(error, match=message):
        model.fit(x, t, verbose=0, **kwargs)


def test_compile_errors():
    model = mlp()
    with pytest.raises(RuntimeError, match=r"fit: call model.compile\(optimizer, loss, metrics\) first"):
        model.fit(np.zeros((2, 4), np.float32), np.zeros(2, int))
    with pytest.raises(RuntimeError, match="evaluate: call model.compile"):
        model.evaluate(np.zeros((2, 4), np.float32), np.zeros(2, int))
    with pytest.raises(TypeError, match="optimizer must be a name such as 'adam' or an optimizer object, got int"):
        model.compile(3)
    with pytest.raises(TypeError, match="loss must be a name or an object"):
        model.compile("adam", loss=5)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        model.compile("adam", loss="hinge")
    with pytest.raises(ValueError, match="unknown metric 'f2'"):
        model.compile("adam", metrics=["f2"])
    model(np.zeros((1, 4), np.float32))
    opt = convnp.optim.Adam(model.named_parameters(), lr=1e-3)
    with pytest.raises(TypeError, match=r"optimizer options \['lr'\] are only used with an optimizer name"):
        model.compile(opt, lr=0.1)


def test_optimizer_instance_and_loss_object():
    x, t = blobs()
    model = mlp()
    model(x[:1])
    opt = convnp.optim.SGD(model.named_parameters(), lr=0.1)
    model.compile(opt, CrossEntropyLoss(label_smoothing=0.1), ["accuracy", "top2_accuracy"])
    h = model.fit(x, t, epochs=2, batch_size=30, verbose=0, seed=0)
    assert model._trainer.optimizer is opt
    assert h.history["top2_accuracy"][-1] >= h.history["accuracy"][-1]


def test_predict_is_batched_eval_mode_without_caches():
    x, _ = blobs(37)
    model = nn.Sequential([nn.Dense(8, activation="relu", seed=0), nn.Dropout(0.5, seed=0), nn.Dense(3, seed=1)])
    model.train()
    a = model.predict(x, batch_size=5)
    b = model.predict(x, batch_size=100)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    model.eval()
    with convnp.no_grad():
        np.testing.assert_allclose(a, model(x), rtol=1e-6)
    model.train()
    model.predict(x)
    assert model.training  # mode restored
    assert all(m._cache is None for m in model.modules())  # ran under no_grad
    p = model.predict_proba(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p, softmax(a), rtol=1e-5)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        predict(model, x, batch_size=0)


def test_evaluate_matches_a_direct_computation():
    x, t = blobs(50)
    model = mlp().compile("sgd", "cross_entropy", ["accuracy"], lr=0.1)
    model(x[:1])
    result = model.evaluate(x, t, batch_size=7)
    logits = model.predict(x)
    assert result["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == t))
    assert result["loss"] == pytest.approx(CrossEntropyLoss()(logits, t), rel=1e-5)


def test_one_hot_targets_work_for_loss_and_accuracy():
    x, t = blobs()
    model = mlp().compile("adam", "categorical_crossentropy", ["accuracy"], lr=0.01)
    h = model.fit(x, np.eye(3, dtype=np.float32)[t], epochs=3, batch_size=32, verbose=0, seed=0)
    assert h.history["accuracy"][-1] > 0.9


# ------------------------------------------------------------------ NaN handling
class NaNAfter(CrossEntropyLoss):
    """Cross-entropy that turns NaN from the ``n``-th call on."""

    def __init__(self, n):
        super().__init__()
        self.n, self.calls = n, 0

    def __call__(self, pred, target):
        self.calls += 1
        value = super().__call__(pred, target)
        return float("nan") if self.calls >= self.n else value


def test_nan_loss_raises_a_clear_error_without_a_guard():
    x, t = blobs(40)
    model = mlp().compile("sgd", NaNAfter(3), lr=0.1)
    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 1, step 3.*NaNGuard"):
        model.fit(x, t, epochs=1, batch_size=10, verbose=0)


def test_nan_guard_stops_cleanly_and_keeps_last_good_checkpoint(tmp_path):
    x, t = blobs(40)
    model = mlp().compile("sgd", NaNAfter(7), lr=0.1)  # 4 steps per epoch: NaN in epoch 2, step 3
    stream = io.StringIO()
    before = {}

    class Snapshot(Callback):
        def on_batch_end(self, step, logs=None):
            before.update({k: v.copy() for k, v in self.trainer.model.state_dict().items()})

    h = model.fit(x, t, epochs=5, batch_size=10, verbose=0, seed=0,
                  callbacks=[NaNGuard(stream), ModelCheckpoint(tmp_path), Snapshot()])
    assert h.epoch == [1]
    assert "training stopped: loss became nan at epoch 2, step 3" in h.stopped_reason
    assert "last good checkpoint is" in stream.getvalue() and "last.npz" in stream.getvalue()
    for k, v in model.state_dict().items():  # the NaN step was not applied
        np.testing.assert_array_equal(v, before[k])
    assert convnp.io.load_checkpoint(tmp_path / "last.npz").epoch == 1


# ------------------------------------------------------------------ callbacks
def test_early_stopping_stops_after_patience():
    x, t = blobs(40)
    model = mlp().compile("sgd", lr=0.0)  # nothing changes: the loss never improves
    es = EarlyStopping(monitor="loss", patience=2)
    h = model.fit(x, t, epochs=10, batch_size=20, verbose=0, callbacks=[es], seed=0)
    assert h.epoch == [1, 2, 3] and es.stopped_epoch == 3
    assert "early stopping: loss did not improve for 2 epochs" in h.stopped_reason


def test_early_stopping_restores_best_weights_and_errors():
    x, t = blobs(60)
    model = mlp().compile("sgd", lr=0.0)
    es = EarlyStopping(monitor="val_accuracy", patience=1, restore_best_weights=True)
    model.fit(x, t, epochs=4, batch_size=20, verbose=0, callbacks=[es], seed=0, validation_split=0.5)
    assert es.mode == "max" and es.stopped_epoch == 2
    with pytest.raises(KeyError, match="monitored value 'val_f1' is not logged"):
        model.fit(x, t, epochs=1, verbose=0, callbacks=[EarlyStopping("val_f1")])
    with pytest.raises(ValueError, match="patience must be >= 0"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode must be 'auto', 'min' or 'max'"):
        EarlyStopping(mode="up")


def test_lr_scheduler_with_a_keras_function():
    x, t = blobs(40)
    model = mlp().compile("sgd", lr=0.1)
    h = model.fit(x, t, epochs=3, batch_size=20, verbose=0, seed=0,
                  callbacks=[LRScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)])
    assert h.history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    with pytest.raises(ValueError, match="step_per must be 'epoch' or 'batch'"):
        LRScheduler(lambda e, lr: lr, step_per="week")
    with pytest.raises(TypeError, match="expected a scheduler object or a function, got int"):
        LRScheduler(3)


def test_lr_scheduler_with_a_scheduler_object():
    S = pytest.importorskip("convnp.optim.lr_scheduler")
    x, t = blobs(40)
    model = mlp().compile("sgd", lr=0.1)
    h = model.fit(x, t, epochs=3, batch_size=20, verbose=0, seed=0,
                  callbacks=[LRScheduler(lambda opt: S.StepLR(opt, step_size=1, gamma=0.1))])
    assert h.history["lr"] == pytest.approx([0.1, 0.01, 0.001])


def test_csv_and_json_logs_mirror_the_history(tmp_path):
    x, t = blobs(40)
    model = mlp().compile("sgd", lr=0.1)
    h = model.fit(x, t, epochs=2, batch_size=20, verbose=0, seed=0, validation_split=0.25,
                  callbacks=[CSVLogger(tmp_path / "log.csv"), JSONLogger(tmp_path / "log.json")])
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0].split(",") == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
    assert len(lines) == 3 and float(lines[2].split(",")[1]) == h.history["loss"][1]
    data = json.loads((tmp_path / "log.json").read_text())
    assert data["epoch"] == [1, 2] and data["history"]["val_accuracy"] == h.history["val_accuracy"]


def test_model_checkpoint_writes_best_and_last(tmp_path):
    x, t = blobs(60)
    model = mlp().compile("adam", lr=0.01)
    cp = ModelCheckpoint(tmp_path / "run", monitor="val_loss")
    h = model.fit(x, t, epochs=3, batch_size=20, verbose=0, seed=0, validation_split=0.3, callbacks=[cp])
    assert cp.mode == "min" and cp.best == pytest.approx(min(h.history["val_loss"]))
    assert convnp.io.load_checkpoint(tmp_path / "run" / "last.npz").epoch == 3
    best = convnp.io.load_checkpoint(tmp_path / "run" / "best.npz")
    assert best.epoch == cp.best_epoch


def test_callbacks_must_be_callback_objects():
    model = mlp().compile("sgd", lr=0.1)
    with pytest.raises(TypeError, match="expected Callback objects, got function"):
        model.fit(*blobs(10), verbose=0, callbacks=[lambda: None])


def test_progress_bar_plain_lines_and_summary():
    x, t = blobs(100)
    model = mlp().compile("sgd", lr=0.1)
    out = io.StringIO()
    model.fit(x, t, epochs=2, batch_size=10, seed=0, callbacks=[ProgressBar("plain", stream=out)])
    text = out.getvalue()
    lines = text.splitlines()
    assert sum("ETA" in line for line in lines) == 20  # every 10% of 10 steps, 2 epochs
    assert "samples/s" in lines[0] and "loss" in lines[0] and "accuracy" in lines[0]
    summaries = [line for line in lines if line.startswith("epoch 2/2  loss")]
    assert len(summaries) == 1 and "samples/s)" in summaries[0]
    with pytest.raises(ValueError, match="mode must be auto, tqdm, plain or summary"):
        ProgressBar("fancy")


def test_progress_tqdm_mode():
    pytest.importorskip("tqdm")
    stream = io.StringIO()
    bar = EpochProgress(4, "epoch 1/1", mode="tqdm", stream=stream)
    for _ in range(4):
        bar.update(1, 10, {"loss": 0.5})
    assert "loss=0.5000" in bar.bar.postfix and bar.bar.n == 4
    bar.close()
    assert bar.bar is None and "epoch 1/1" in stream.getvalue()
    assert format_seconds(3725) == "1:02:05" and format_seconds(75) == "1:15"


# ------------------------------------------------------------------ metrics
def test_metrics_against_loops():
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((50, 4))
    t = rng.integers(0, 4, 50)
    assert accuracy(pred, t) == pytest.approx(np.mean(pred.argmax(1) == t))
    top2 = np.mean([t[i] in np.argsort(-pred[i])[:2] for i in range(50)])
    assert top_k_accuracy(pred, t, 2) == pytest.approx(top2)
    assert top_k_accuracy(pred, t, 4) == 1.0
    assert accuracy(pred, np.eye(4)[t]) == accuracy(pred, t)
    m = confusion_matrix(pred, t)
    loop = np.zeros((4, 4), int)
    for true, p in zip(t, pred.argmax(1)):
        loop[true, p] += 1
    np.testing.assert_array_equal(m, loop)
    pr = precision_recall(m)
    for c in range(4):
        assert pr["precision"][c] == pytest.approx(loop[c, c] / max(loop[:, c].sum(), 1))
        assert pr["recall"][c] == pytest.approx(loop[c, c] / loop[c].sum())
    assert pr["support"].sum() == 50
    report = classification_report(pred, t, ["a", "b", "c", "d"])
    assert report.splitlines()[1].startswith("a") and "accuracy" in report


def test_metric_errors_and_names():
    assert get_metric("acc")[0] == "accuracy"
    assert get_metric("top_k_accuracy")[0] == "top5_accuracy"
    assert get_metric("top3")[0] == "top3_accuracy"
    with pytest.raises(ValueError, match="k must be >= 1"):
        top_k_accuracy(np.zeros((2, 3)), np.zeros(2, int), 0)
    with pytest.raises(ValueError, match="pred has 2 rows but target has 3"):
        accuracy(np.zeros((2, 3)), np.zeros(3, int))
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 3\)"):
        confusion_matrix(np.zeros((2, 3)), np.array([0, 5]))
    m = precision_recall(np.array([[2, 0], [1, 0]]))
    assert m["precision"][1] == 0.0 and m["recall"][1] == 0.0  # never predicted: 0, not NaN


# ------------------------------------------------------------------ history
def test_history_pads_missing_values_and_round_trips(tmp_path):
    h = History()
    h.append(1, {"loss": 1.0})
    h.append(2, {"loss": 0.5, "val_loss": 0.7})
    assert h.history["val_loss"] == [None, 0.7]
    h2 = History.from_dict(json.loads(h.to_json()))
    assert h2.history == h.history and h2.epoch == [1, 2] and h.last() == {"loss": 0.5, "val_loss": 0.7}
    pytest.importorskip("matplotlib")
    h.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_trainer_class_directly():
    x, t = blobs()
    trainer = Trainer(mlp(), "adam", "cross_entropy", "accuracy", lr=0.01)
    h = trainer.fit(x, t, epochs=2, batch_size=50, verbose=0, seed=0, validation_data=(x, t))
    assert trainer.epochs_done == 2 and h.history["val_accuracy"][-1] == trainer.evaluate(x, t)["accuracy"]
