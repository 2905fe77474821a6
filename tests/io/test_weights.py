"""Weight files: safetensors/npz/pth round trips, torch -> convnp -> torch, strict key checking messages,
truncated files, torch missing, and Keras VGG16 .h5 conversion (a file the test writes)."""
import sys

import numpy as np
import pytest

from convnp import models
from convnp.io.weights import (convert_weights, load_weights, read_state_dict, save_weights, write_state_dict)
from convnp.models.resnet import ResNet


def _small(seed=0):
    return ResNet("basic", (1, 1), 4, 3, (4, 8), stem="cifar", seed=seed)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz", ".pth"])
def test_round_trip_every_format(tmp_path, suffix):
    if suffix == ".pth":
        pytest.importorskip("torch")
    a, b = _small(0), _small(1)
    path = tmp_path / ("w" + suffix)
    save_weights(a, path)
    assert not np.array_equal(a.fc.weight.data, b.fc.weight.data)
    assert b.load_weights(path) == ([], [])
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(va, vb, err_msg=k)
        assert np.shape(va) == np.shape(vb)
    assert b.bn1.num_batches_tracked.shape == () and b.bn1.num_batches_tracked.dtype == np.int64


def test_safetensors_reader_writer_dtypes_and_layout(tmp_path):
    state = {"f64": np.arange(6, dtype=np.float64).reshape(2, 3), "f16": np.ones(3, np.float16),
             "i64": np.array(7, np.int64), "u8": np.arange(4, dtype=np.uint8), "t": np.arange(6.0).reshape(2, 3).T}
    path = tmp_path / "x.safetensors"
    write_state_dict(state, path)
    back = read_state_dict(path)
    assert list(back) == list(state)
    for k in state:
        assert back[k].dtype == state[k].dtype and back[k].shape == state[k].shape
        np.testing.assert_array_equal(back[k], state[k])
    safetensors = pytest.importorskip("safetensors.numpy")  # the reference implementation agrees
    ref = safetensors.load_file(str(path))
    for k in state:
        np.testing.assert_array_equal(ref[k], state[k])
    path2 = tmp_path / "y.safetensors"
    safetensors.save_file({"w": np.arange(12, dtype=np.float32).reshape(3, 4)}, str(path2))
    np.testing.assert_array_equal(read_state_dict(path2)["w"], np.arange(12, dtype=np.float32).reshape(3, 4))


def test_torch_to_convnp_to_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from zoo_torch_refs import TResNet, numpy_state, randomize_bn
    torch.manual_seed(0)
    ref = randomize_bn(TResNet("basic", (1, 1), 4, 3, (4, 8), "cifar")).eval()
    torch.save(ref.state_dict(), tmp_path / "ref.pth")
    ours = _small(5)
    ours.load_weights(tmp_path / "ref.pth")
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(ours.eval()(x), ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    save_weights(ours, tmp_path / "back.pth")
    ref2 = TResNet("basic", (1, 1), 4, 3, (4, 8), "cifar")
    ref2.load_state_dict(torch.load(tmp_path / "back.pth", weights_only=True), strict=True)
    for k, v in numpy_state(ref2).items():
        np.testing.assert_array_equal(v, numpy_state(ref)[k], err_msg=k)
    # wrapped checkpoints ({"state_dict": ...}) and DataParallel's "module." prefix load too
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in ref.state_dict().items()}},
               tmp_path / "wrapped.pth")
    _small(6).load_weights(tmp_path / "wrapped.pth")


def test_wrong_architecture_lists_mismatches(tmp_path):
    save_weights(_small(), tmp_path / "small.npz")
    other = ResNet("basic", (1, 1, 1), 4, 3, (4, 8, 16), stem="cifar")
    before = other.layer1[0].conv1.weight.data.copy()
    with pytest.raises(ValueError) as e:
        other.load_weights(tmp_path / "small.npz")
    msg = str(e.value)
    assert "small.npz does not fit ResNet" in msg and "keys missing from the file: layer3.0.conv1.weight" in msg
    assert "shape mismatches: fc.weight (model (4, 16), file (4, 8))" in msg
    assert np.array_equal(other.layer1[0].conv1.weight.data, before)  # nothing loaded on failure
    wider = _small()
    wider_sd = {k: v for k, v in wider.state_dict().items()}
    wider_sd["extra.weight"] = np.zeros(3, np.float32)
    write_state_dict(wider_sd, tmp_path / "extra.safetensors")
    with pytest.raises(ValueError, match="1 unexpected keys in the file: extra.weight"):
        _small().load_weights(tmp_path / "extra.safetensors")
    missing, unexpected = _small(3).load_weights(tmp_path / "extra.safetensors", strict=False)
    assert missing == [] and unexpected == ["extra.weight"]


@pytest.mark.parametrize("suffix", [".safetensors", ".npz", ".pth"])
def test_truncated_file_gives_clear_error(tmp_path, suffix):
    if suffix == ".pth":
        pytest.importorskip("torch")
    path = tmp_path / ("w" + suffix)
    save_weights(_small(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        _small().load_weights(path)


def test_pth_without_torch_says_so(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    path.write_bytes(b"PK")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(ImportError, match=r"needs PyTorch \(pip install torch\); .safetensors and .npz"):
        load_weights(_small(), path)


def test_other_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        read_state_dict(tmp_path / "none.safetensors")
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(ValueError, match="unsupported weights file"):
        read_state_dict(tmp_path / "w.txt")
    with pytest.raises(ValueError, match="unsupported weights file"):
        write_state_dict({}, tmp_path / "w.json")


def test_convert(tmp_path):
    save_weights(_small(), tmp_path / "a.npz")
    assert convert_weights(tmp_path / "a.npz", tmp_path / "a.safetensors") == len(_small().state_dict())
    m = _small(9)
    m.load_weights(tmp_path / "a.safetensors")
    np.testing.assert_array_equal(m.fc.bias.data, _small().fc.bias.data)


def _write_keras_vgg16(path, model_sd, top=True):
    """Write a file laid out like Keras's vgg16_weights_tf_dim_ordering_tf_kernels.h5, from torch-layout arrays."""
    h5py = pytest.importorskip("h5py")
    convs = [k[:-7] for k in model_sd if k.startswith("features") and k.endswith(".weight")]
    names, blocks = [], [2, 2, 3, 3, 3]
    with h5py.File(path, "w") as f:
        f.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
        names.append("input_1")
        i = 0
        for b, n in enumerate(blocks, 1):
            for c in range(1, n + 1):
                name = f"block{b}_conv{c}"
                g = f.create_group(name)
                g.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
                g[f"{name}/kernel:0"] = model_sd[convs[i] + ".weight"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
                g[f"{name}/bias:0"] = model_sd[convs[i] + ".bias"]
                names.append(name)
                i += 1
            pool = f"block{b}_pool"
            f.create_group(pool).attrs["weight_names"] = np.array([], dtype="S1")
            names.append(pool)
        if top:
            names.append("flatten")
            f.create_group("flatten").attrs["weight_names"] = np.array([], dtype="S1")
            for name, idx in [("fc1", 0), ("fc2", 3), ("predictions", 6)]:
                w = model_sd[f"classifier.{idx}.weight"].T  # (in, out)
                if idx == 0:  # Keras flattens (h, w, c): rows in channels-last order
                    c = convs and model_sd[convs[-1] + ".weight"].shape[0]
                    w = w.reshape(c, 7, 7, -1).transpose(1, 2, 0, 3).reshape(c * 49, -1)
                g = f.create_group(name)
                g.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
                g[f"{name}/kernel:0"] = w
                g[f"{name}/bias:0"] = model_sd[f"classifier.{idx}.bias"]
                names.append(name)
        f.attrs["layer_names"] = [n.encode() for n in names]


def test_keras_vgg16_h5(tmp_path):
    src = models.vgg16(width=1 / 16, num_classes=5, seed=0)
    sd = {k: np.asarray(v) for k, v in src.state_dict().items()}
    _write_keras_vgg16(tmp_path / "vgg16.h5", sd)
    dst = models.vgg16(width=1 / 16, num_classes=5, seed=1)
    dst.load_weights(tmp_path / "vgg16.h5")
    for k, v in sd.items():
        np.testing.assert_array_equal(dst.state_dict()[k], v, err_msg=k)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    np.testing.assert_allclose(dst.eval()(x), src.eval()(x), rtol=1e-6)
    # the no-top file loads the convolutional part with strict=False
    _write_keras_vgg16(tmp_path / "notop.h5", sd, top=False)
    missing, unexpected = models.vgg16(width=1 / 16, seed=2).load_weights(tmp_path / "notop.h5", strict=False)
    assert missing == ["classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias",
                       "classifier.6.weight", "classifier.6.bias"] and unexpected == []
    (tmp_path / "trunc.h5").write_bytes((tmp_path / "vgg16.h5").read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated or not an HDF5 file"):
        read_state_dict(tmp_path / "trunc.h5")


def test_legacy_torchvision_densenet_key_names_load(tmp_path):
    from convnp.models.densenet import densenet
    src = densenet((1, 1), 4, 8, 2, num_classes=3, seed=0)
    legacy = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2.") if "denselayer" in k else k: v
              for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}  # pre-0.4.1 files
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    write_state_dict(legacy, tmp_path / "old.npz")
    dst = densenet((1, 1), 4, 8, 2, num_classes=3, seed=1)
    dst.load_weights(tmp_path / "old.npz")
    for k, v in src.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(dst.state_dict()[k], v, err_msg=k)
