"""Keras files written by Keras itself (KERAS_BACKEND=torch): keras.applications VGG16, VGG19 and ResNet50
saved as Keras 3 .weights.h5, .keras, legacy model.save(.h5) and the legacy weights-only .h5, read by
convnp.io.keras and compared with Keras's own outputs. Random weights everywhere (BN statistics and conv
biases too, so the folds are exercised); small 32x32 inputs keep it quick."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")
if keras.backend.backend() != "torch":
    pytest.skip("these tests build Keras models with the torch backend", allow_module_level=True)

from convnp import models  # noqa: E402
from convnp.io.keras import keras_resnet50, read_keras  # noqa: E402
from convnp.io.weights import load_weights, read_state_dict  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras calls np.array(copy=False)
LAYOUTS = ("weights.h5", "keras", "legacy.h5", "legacy_weights.h5")


def _randomize(model, seed):
    """Give every weight random values: kernels ~ He normal, biases and BN betas/means ~ N(0, 0.1),
    gammas ~ U(0.5, 1.5), variances ~ U(0.5, 1.5)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for w in layer.weights:
            shape, name = tuple(w.shape), w.path.split("/")[-1]
            if name == "kernel":
                fan_in = int(np.prod(shape[:-1]))
                v = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
            elif name in ("gamma", "moving_variance"):
                v = rng.uniform(0.5, 1.5, shape)
            else:
                v = rng.normal(0, 0.1, shape)
            values.append(v.astype("float32"))
        if values:
            layer.set_weights(values)
    return model


def _save(model, directory, layout):
    path = os.path.join(directory, "m." + layout)
    if layout == "weights.h5":
        model.save_weights(path)
    elif layout == "keras":
        model.save(path)
    elif layout == "legacy.h5":
        path = os.path.join(directory, "m_legacy.h5")
        model.save(path)
    else:  # the layout of the files keras.applications downloads (layer_names at the root)
        from keras.src.legacy.saving import legacy_h5_format
        path = os.path.join(directory, "m_weights_only.h5")
        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path


def _keras_logits(model, x_nchw):
    y = model(np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)), training=False)
    y = keras.ops.convert_to_numpy(y)
    return y.transpose(0, 3, 1, 2) if y.ndim == 4 else y


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _dir(root, name):
    (root / name).mkdir()
    return str(root / name)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = {}
    root = tmp_path_factory.mktemp("keras")
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    r50 = _randomize(keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10,
                                                 classifier_activation=None), 1)
    out["resnet50"] = (_keras_logits(r50, x), {lay: _save(r50, _dir(root, "r" + lay), lay) for lay in LAYOUTS})
    vgg = _randomize(keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3)), 2)
    out["vgg16"] = (_keras_logits(vgg, x), {lay: _save(vgg, _dir(root, "v" + lay), lay) for lay in LAYOUTS})
    del r50, vgg
    out["x"] = x
    return out


@pytest.mark.parametrize("layout", LAYOUTS)
def test_resnet50_every_layout_matches_keras(files, layout):
    expected, paths = files["resnet50"]
    model = models.resnet50(num_classes=10, seed=0).eval()
    assert load_weights(model, paths[layout]) == ([], [])
    assert model.layer2[0].conv1.strides == (2, 2) and model.layer2[0].conv2.strides == (1, 1)  # v1 strides
    got = model(files["x"])
    assert got.shape == (2, 10)
    assert _rel(got, expected) < 1e-4, _rel(got, expected)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_vgg16_every_layout_matches_keras(files, layout):
    expected, paths = files["vgg16"]
    model = models.vgg16(num_classes=10, seed=0).eval()
    missing, unexpected = load_weights(model, paths[layout], strict=False)
    assert unexpected == [] and sorted(missing) == sorted(k for k in model.state_dict() if k.startswith("classifier"))
    got = model.features(files["x"])
    assert got.shape == expected.shape == (2, 512, 1, 1)
    assert _rel(got, expected) < 1e-4


def test_resnet50_converted_file_loads_with_keras_resnet50(files, tmp_path):
    from convnp.io.weights import convert_weights
    expected, paths = files["resnet50"]
    convert_weights(paths["keras"], tmp_path / "r50.safetensors")
    model = keras_resnet50(num_classes=10, weights=tmp_path / "r50.safetensors").eval()
    assert _rel(model(files["x"]), expected) < 1e-4


def test_bn_epsilon_and_conv_bias_are_folded(files):
    _, paths = files["resnet50"]
    state = read_keras(paths["legacy.h5"])
    with h5py.File(paths["legacy.h5"], "r") as f:
        g = f["model_weights"]["conv1_bn"]["conv1_bn"]
        var, mean = np.array(g["moving_variance"]), np.array(g["moving_mean"])
        bias = np.array(f["model_weights"]["conv1_conv"]["conv1_conv"]["bias"])
        kernel = np.array(f["model_weights"]["conv1_conv"]["conv1_conv"]["kernel"])
    np.testing.assert_allclose(state["bn1.running_var"] + 1e-5, var + 1.001e-5, rtol=1e-6)
    np.testing.assert_allclose(state["bn1.running_mean"], mean - bias, rtol=1e-6)
    np.testing.assert_array_equal(state["conv1.weight"], kernel.transpose(3, 2, 0, 1))  # HWIO -> OIHW
    assert state.architecture == "resnet50"


def test_vgg16_with_top_and_vgg19(tmp_path):
    x = np.random.default_rng(3).normal(size=(1, 3, 32, 32)).astype(np.float32)
    top = _randomize(keras.applications.VGG16(weights=None, input_shape=(32, 32, 3), classes=10,
                                              classifier_activation=None), 4)
    expected = _keras_logits(top, x)
    path = _save(top, str(tmp_path), "weights.h5")
    del top
    model = models.vgg16(num_classes=10, seed=0).eval()
    assert load_weights(model, path) == ([], [])
    assert _rel(model(x), expected) < 1e-4  # fc1 of a 1x1 map: its rows spread over AdaptiveAvgPool2D's 49 copies

    v19 = _randomize(keras.applications.VGG19(weights=None, include_top=False, input_shape=(32, 32, 3)), 5)
    expected = _keras_logits(v19, x)
    path = _save(v19, str(tmp_path), "keras")
    state = read_state_dict(path)
    assert state.architecture == "vgg19" and "features.34.weight" in state
    model = models.vgg19(seed=0).eval()
    load_weights(model, path, strict=False)
    assert _rel(model.features(x), expected) < 1e-4


def test_another_architecture_is_named(tmp_path):
    m = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="my_conv"),
                          keras.layers.Flatten(), keras.layers.Dense(2, name="my_dense")])
    path = _save(m, str(tmp_path), "weights.h5")
    with pytest.raises(ValueError, match=r"not a keras.applications VGG16, VGG19 or ResNet50 file: it has 2 "
                                         r"layers with weights \(my_conv \(3, 3, 3, 4\), my_dense"):
        read_state_dict(path)


def test_not_keras_files(tmp_path):
    import zipfile
    with zipfile.ZipFile(tmp_path / "x.keras", "w") as z:
        z.writestr("config.json", "{}")
    with pytest.raises(ValueError, match="without model.weights.h5 .found config.json"):
        read_state_dict(tmp_path / "x.keras")
    (tmp_path / "y.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="truncated or not an HDF5 file"):
        read_state_dict(tmp_path / "y.h5")
    with h5py.File(tmp_path / "z.h5", "w") as f:
        f.create_dataset("data", data=np.zeros(3))
    with pytest.raises(ValueError, match="not a Keras weights file .top-level entries: data"):
        read_state_dict(tmp_path / "z.h5")
