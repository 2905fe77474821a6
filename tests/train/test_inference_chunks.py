"""Sequential runs large inference batches in chunks (nn.containers.INFERENCE_CHUNK): same outputs, and only
where no layer can tell the difference."""
import numpy as np
import pytest

import convnp
from convnp import nn
from convnp.nn import containers
from convnp.nn.summary import capture_activations


class BatchSizeRecorder(nn.Module):
    """Identity that records the batch sizes it sees (and can claim to mix samples)."""

    def __init__(self, mixes_samples=False):
        super().__init__()
        self.sizes = []
        self.mixes_samples = mixes_samples

    def forward(self, x):
        self.sizes.append(x.shape[0])
        return x

    def backward(self, dy):
        return dy


def _net(recorder):
    return nn.Sequential([nn.Conv2D(4, 3, padding="same", in_channels=1, seed=0), nn.BatchNorm2D(4), nn.ReLU(),
                          recorder, nn.MaxPool2D(2), nn.Flatten(), nn.Dense(10, in_features=4 * 7 * 7, seed=1)])


@pytest.mark.parametrize("model_name", ["deep_convnet", "mnist_best"])
def test_chunked_inference_equals_one_pass(model_name, monkeypatch):
    x = np.random.default_rng(0).random((150, 1, 28, 28), dtype=np.float32)
    model = convnp.models.get_model(model_name, seed=0).eval()
    if model_name == "mnist_best":  # non-trivial running statistics, so eval-mode BN does something
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2D):
                m.running_mean = np.linspace(-0.5, 0.5, m.running_mean.size).astype(np.float32)
                m.running_var = np.linspace(0.5, 2.0, m.running_var.size).astype(np.float32)
    with convnp.no_grad():
        chunked = model(x)
        monkeypatch.setattr(containers, "INFERENCE_CHUNK", None)
        whole = model(x)
    assert chunked.shape == whole.shape == (150, 10)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-5)


def test_chunks_only_in_eval_mode_without_grad(monkeypatch):
    monkeypatch.setattr(containers, "INFERENCE_CHUNK", 16)
    rec = BatchSizeRecorder()
    model = _net(rec)
    x = np.random.default_rng(1).random((40, 1, 14, 14), dtype=np.float32)
    model.eval()
    with convnp.no_grad():
        model(x)
    assert rec.sizes == [16, 16, 8]
    rec.sizes.clear()
    model(x)  # grad enabled: backward needs one cache for the whole batch
    assert rec.sizes == [40]
    rec.sizes.clear()
    model.train()
    with convnp.no_grad():
        model(x)  # training-mode batch norm uses the statistics of the whole batch
    assert rec.sizes == [40]


def test_no_chunks_when_a_layer_mixes_samples_or_summary_traces(monkeypatch):
    monkeypatch.setattr(containers, "INFERENCE_CHUNK", 16)
    x = np.random.default_rng(2).random((40, 1, 14, 14), dtype=np.float32)
    rec = BatchSizeRecorder(mixes_samples=True)
    model = _net(rec).eval()
    with convnp.no_grad():
        model(x)
    assert rec.sizes == [40]
    rec2 = BatchSizeRecorder()
    model2 = _net(rec2).eval()
    with convnp.no_grad():
        acts, _ = capture_activations(model2, x)  # one recorded output per layer, for the whole batch
    assert rec2.sizes == [40]
    assert all(out.shape[0] == 40 for _, _, out in acts)


def test_predict_output_is_unchanged_by_chunking(monkeypatch):
    model = convnp.models.get_model("simple_convnet", seed=0)
    x = np.random.default_rng(3).random((300, 1, 28, 28), dtype=np.float32)
    chunked = model.predict(x)
    monkeypatch.setattr(containers, "INFERENCE_CHUNK", None)
    np.testing.assert_allclose(chunked, model.predict(x), rtol=1e-5, atol=1e-6)
