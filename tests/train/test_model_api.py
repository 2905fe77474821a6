"""The Model mixin (convnp.train.model), buffers like torch, and nn.serialize's tables."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import convnp
from convnp import nn
from convnp.nn import serialize
from convnp.train import Model, Trainer, softmax


def mlp(seed=0):
    return nn.Sequential([nn.Dense(8, activation="relu", seed=seed), nn.Dense(3, seed=seed + 1)])


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5)).astype(np.float32), rng.integers(0, 3, n)


# ------------------------------------------------------------------ buffers
class Stats(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", np.zeros(3, np.float32))
        self.register_buffer("scratch", np.zeros(2, np.float32), persistent=False)


def test_reassigning_a_buffer_keeps_it_registered_with_a_new_shape_and_dtype():
    m = Stats()
    m.mean = np.arange(5, dtype=np.float64)  # torch allows a new shape and dtype
    assert list(m.state_dict()) == ["mean"]
    np.testing.assert_array_equal(m.state_dict()["mean"], np.arange(5))
    assert m.state_dict()["mean"].dtype == np.float64
    m.scratch = np.ones(4, np.float32)
    assert "scratch" not in m.state_dict() and dict(m.named_buffers())["scratch"].shape == (4,)


def test_batch_norm_running_stats_assigned_by_hand_are_saved_and_loaded():
    bn = nn.BatchNorm2D(2)
    bn.running_mean = np.array([1.5, -2.0], np.float32)
    assert set(bn.state_dict()) >= {"running_mean", "running_var", "num_batches_tracked"}
    other = nn.BatchNorm2D(2)
    other.load_state_dict(bn.state_dict())
    np.testing.assert_array_equal(other.running_mean, [1.5, -2.0])


def test_a_parameter_or_module_under_a_buffer_name_replaces_the_buffer():
    m = Stats()
    m.mean = nn.Parameter(np.ones(3, np.float32))
    assert "mean" in dict(m.named_parameters()) and "mean" not in dict(m.named_buffers())
    m.scratch = nn.Identity()
    assert "scratch" in m._modules and "scratch" not in dict(m.named_buffers())
    del m.mean
    assert m.state_dict() == {}


def test_buffers_follow_the_model_to_a_dtype():
    m = Stats().astype(np.float64)
    assert m.mean.dtype == np.float64 and "mean" in m.state_dict()


# ------------------------------------------------------------------ the Model mixin
def test_layers_are_not_models_and_a_network_of_your_own_becomes_one_by_the_mixin():
    assert not hasattr(nn.Dense(3), "fit")

    class Net(Model, nn.Module):
        def __init__(self):
            super().__init__()
            self.body = mlp()

        def forward(self, x):
            return self.body(x)

        def backward(self, dy):
            return self.body.backward(dy)

    x, t = data()
    net = Net().compile("sgd", lr=0.1)
    history = net.fit(x, t, epochs=2, batch_size=8, seed=0, verbose=0)
    assert len(history.history["loss"]) == 2
    assert convnp.Model is Model


def test_fit_names_every_argument_of_the_trainer_with_the_same_defaults():
    ours = inspect.signature(Model.fit).parameters
    theirs = inspect.signature(Trainer.fit).parameters
    assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in ours.values())
    assert [(n, p.default) for n, p in ours.items()] == [(n, p.default) for n, p in theirs.items()]
    doc = Model.fit.__doc__
    missing = [n for n in ours if n != "self" and f"{n}:" not in doc]
    assert not missing, f"fit's docstring does not document {missing}"


def test_fit_through_the_mixin_equals_the_trainer_bit_for_bit():
    x, t = data()
    a = mlp().compile("adam", lr=0.01)
    a.fit(x, t, epochs=2, batch_size=8, seed=3, verbose=0)
    b = mlp()
    Trainer(b, "adam", lr=0.01).fit(x, t, epochs=2, batch_size=8, seed=3, verbose=0)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)


def test_predict_gives_logits_and_predict_proba_their_softmax():
    x, _ = data(6)
    model = mlp()
    logits = model.predict(x)
    probs = model.predict_proba(x)
    assert logits.shape == probs.shape == (6, 3)
    assert not np.allclose(logits.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probs, softmax(logits), rtol=1e-6)
    assert "logits" in Model.predict.__doc__ and "probabilities" in Model.predict_proba.__doc__


@pytest.mark.parametrize("method, args", [("fit", (np.zeros((2, 5)), np.zeros(2))), ("evaluate", (np.zeros((2, 5)),))])
def test_training_methods_before_compile_say_so(method, args):
    with pytest.raises(RuntimeError, match=rf"Sequential\.{method}: call model\.compile"):
        getattr(mlp(), method)(*args)


@pytest.mark.parametrize("name", ["m.keras", "m.h5", "m.weights.h5", "m.pth"])
def test_save_refuses_an_extension_it_does_not_write(tmp_path, name):
    model = mlp()
    model(np.zeros((1, 5), np.float32))
    with pytest.raises(ValueError, match=r"Sequential\.save: .* has the extension '\.(keras|h5|pth)'.*\.npz"):
        model.save(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_save_keeps_an_npz_name_and_adds_npz_to_a_bare_name(tmp_path):
    x, _ = data(4)
    model = mlp()
    expected = model.predict(x)
    assert model.save(tmp_path / "a.npz", input_shape=(5,)) == str(tmp_path / "a.npz")
    assert model.save(tmp_path / "b", input_shape=(5,)) == str(tmp_path / "b.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz"]
    np.testing.assert_allclose(convnp.load(tmp_path / "a.npz").predict(x), expected, rtol=1e-6)


# ------------------------------------------------------------------ nn.serialize tables
def test_zoo_factories_are_registered_in_nn_serialize():
    from convnp import models
    assert set(models.MODELS) <= set(serialize.FACTORIES)
    model = serialize.module_from_config({"factory": "simple_convnet", "config": {"seed": 0}})
    assert isinstance(model, Model) and model._factory == ("simple_convnet", {"seed": 0})


def test_unknown_factory_and_duplicate_registration_are_named():
    with pytest.raises(ValueError, match=r"unknown model factory 'nonet' in config"):
        serialize.module_from_config({"factory": "nonet", "config": {}})
    with pytest.raises(ValueError, match=r"a factory named 'simple_convnet' is already registered"):
        serialize.register_factory("simple_convnet", lambda: None)
    with pytest.raises(TypeError, match=r"factory for 'x' must be callable, got int"):
        serialize.register_factory("x", 3)


def test_exporter_lookup_takes_the_nearest_registered_class():
    pytest.importorskip("onnx")
    import convnp.io.onnx_export  # noqa: F401  (fills the table for nn's layers)
    from convnp.models.resnet import ResNet
    conv = serialize.exporter_for(nn.Conv2D(2, 3))
    assert conv is not None and serialize.exporter_for(nn.DepthwiseConv2D(3)) is conv
    assert serialize.exporter_for(ResNet("basic", (1, 1), 3, 3, (4, 8), stem="cifar", seed=0)) is not None

    class Unknown(nn.Module):
        pass
    assert serialize.exporter_for(Unknown()) is None
    with pytest.raises(TypeError, match="expected Module classes"):
        serialize.register_exporter(int)
