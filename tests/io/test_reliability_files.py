"""Hostile files: zip bombs, forged .npy headers, non-zip .npz, malformed safetensors headers, integer and
text weights, checkpoints whose state is not a JSON object. Memory is measured with tracemalloc (NumPy
reports its allocations to it), so a test fails if an entry is inflated before it is checked."""
import json
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy_format

from convnp import nn
from convnp.io import CheckpointError, load_checkpoint, save_checkpoint
from convnp.io.weights import load_weights, read_state_dict, write_state_dict

BOMB = 256 << 20  # bytes of zeros in a bomb entry: 256 MiB inflates from ~250 KB


def net(seed=0):
    return nn.Sequential([nn.Dense(8, seed=seed), nn.ReLU(), nn.Dense(3, seed=seed + 1)])


def built_net(seed=0):
    model = net(seed)
    model(np.zeros((1, 5), np.float32))
    return model


@pytest.fixture
def ckpt_file(tmp_path):
    return save_checkpoint(tmp_path / "good.npz", built_net(), epoch=1, input_shape=(5,))


def add_bomb(path, name, shape, dtype=np.float32, declared=None):
    """Append a deflated entry ``name`` of zeros to the npz at ``path``; its header says ``declared`` (default
    ``shape``) while ``shape`` zeros are written."""
    declared = shape if declared is None else declared
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(name + ".npy", "w", force_zip64=True) as f:
            npy_format.write_array_header_1_0(f, {"descr": npy_format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": tuple(declared)})
            left = int(np.prod(shape)) * np.dtype(dtype).itemsize
            chunk = bytes(1 << 22)
            while left > 0:
                f.write(chunk[:min(left, len(chunk))])
                left -= len(chunk)


def peak_mib(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2 ** 20


# ------------------------------------------------------------------ zip bombs in checkpoints
@pytest.mark.parametrize("name,shape,declared,message", [
    ("junk", (BOMB // 4,), None, "1 unexpected entries in the checkpoint: junk"),
    ("model/extra", (BOMB // 4,), None, "1 unexpected keys: extra"),
    ("optimizer/state.0.weight.m", (BOMB // 4,), None, "optimizer entry state.0.weight.m has shape"),
    ("model/0.weight", (BOMB // 4,), (8, 5), "declares shape \\(8, 5\\).*holds 268,435,456 bytes"),
])
def test_checkpoint_zip_bomb_is_refused_before_inflating(ckpt_file, name, shape, declared, message):
    if name == "model/0.weight":  # replace the real entry: rewrite the archive without it
        with np.load(ckpt_file) as z:
            entries = {k: z[k] for k in z.files if k != "model/0.weight"}
        np.savez(ckpt_file, **entries)
    add_bomb(ckpt_file, name, shape, declared=declared)
    assert zipfile.ZipFile(ckpt_file).getinfo(name + ".npy").compress_size < BOMB // 100
    err = []

    def load():
        with pytest.raises(CheckpointError, match=message) as e:
            load_checkpoint(ckpt_file)
        err.append(str(e.value))
    assert peak_mib(load) < 32, err
    assert "good.npz" in err[0]


def test_checkpoint_bomb_in_model_entry_with_honest_header_is_a_shape_mismatch(ckpt_file):
    with np.load(ckpt_file) as z:
        entries = {k: z[k] for k in z.files if k != "model/2.weight"}
    np.savez(ckpt_file, **entries)
    add_bomb(ckpt_file, "model/2.weight", (BOMB // 4 // 8, 8))
    with pytest.raises(CheckpointError, match=r"shape mismatches: 2.weight \(model \(3, 8\), file \(8388608, 8\)\)"):
        assert peak_mib(lambda: load_checkpoint(ckpt_file)) < 32


def test_checkpoint_still_loads_and_reads_only_declared_bytes(ckpt_file):
    ckpt = load_checkpoint(ckpt_file)
    model = ckpt.build_model()
    np.testing.assert_array_equal(model.state_dict()["0.weight"], built_net().state_dict()["0.weight"])
    assert ckpt.epoch == 1


def test_checkpoint_state_that_is_a_json_list_is_named(ckpt_file):
    with np.load(ckpt_file) as z:
        entries = {k: z[k] for k in z.files}
    entries["state"] = np.array(json.dumps([1, 2, 3]))
    np.savez(ckpt_file, **entries)
    with pytest.raises(CheckpointError, match="entry 'state' must hold a JSON object, got a JSON list"):
        load_checkpoint(ckpt_file)


def test_checkpoint_with_integer_weights_is_refused(ckpt_file):
    with np.load(ckpt_file) as z:
        entries = {k: z[k] for k in z.files}
    entries["model/0.weight"] = entries["model/0.weight"].astype(np.int64)
    np.savez(ckpt_file, **entries)
    with pytest.raises(CheckpointError, match=r"dtype mismatches.*0.weight \(model float32, file int64\)"):
        load_checkpoint(ckpt_file)


@pytest.mark.parametrize("blob,kind", [(b"\x89PNG\r\n\x1a\n" + bytes(100), "a PNG image"),
                                       (b"hello world, not a zip", "starts with b'hello wo'"), (b"", "an empty file")])
def test_not_a_zip_file_says_so(tmp_path, blob, kind):
    path = tmp_path / "x.npz"
    path.write_bytes(blob)
    with pytest.raises(CheckpointError, match=f"x.npz is not an .npz \\(zip\\) file \\({kind}"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match=f"x.npz is not an .npz \\(zip\\) file \\({kind}") as e:
        load_weights(net(), path)
    assert "allow_pickle" not in str(e.value)


# ------------------------------------------------------------------ weights files
def test_weights_npz_bomb_is_not_inflated(tmp_path):
    path = tmp_path / "w.npz"
    write_state_dict(built_net().state_dict(), path)
    add_bomb(path, "extra", (BOMB // 4,))
    with pytest.raises(ValueError, match="1 unexpected keys in the file: extra"):
        assert peak_mib(lambda: load_weights(built_net(), path)) < 32
    # without a model to compare with, the compression-ratio rule refuses it
    with pytest.raises(ValueError, match="entry 'extra' would inflate from .* to 268,435,584 bytes"):
        read_state_dict(path)


def test_weights_non_strict_skips_bomb_and_loads_the_rest(tmp_path):
    path = tmp_path / "w.npz"
    src = net(seed=3)
    src(np.zeros((1, 5), np.float32))
    write_state_dict(src.state_dict(), path)
    add_bomb(path, "extra", (BOMB // 4,))
    dst = built_net()
    holder = []
    assert peak_mib(lambda: holder.append(load_weights(dst, path, strict=False))) < 32
    assert holder[0] == ([], ["extra"])
    np.testing.assert_array_equal(dst.state_dict()["0.weight"], src.state_dict()["0.weight"])


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_integer_weights_are_refused_with_key_and_dtypes(tmp_path, suffix):
    state = {k: np.asarray(v) for k, v in built_net().state_dict().items()}
    state["2.weight"] = np.zeros((3, 8), np.int32)
    path = tmp_path / ("w" + suffix)
    write_state_dict(state, path)
    with pytest.raises(ValueError, match=r"entry '2.weight' has dtype int32 but the model's 2.weight is float32"):
        load_weights(built_net(), path)


def test_string_weights_are_refused(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, **{"0.weight": np.array(["a", "b"])})
    with pytest.raises(ValueError, match=r"entry '0.weight' holds <U1 data \(text\)"):
        read_state_dict(path)


# ------------------------------------------------------------------ safetensors headers
def st_file(path, header, data=b""):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


@pytest.mark.parametrize("header,data,message", [
    ([1, 2], b"", "the header is a JSON list, not an object of tensors"),
    ({"w": {"dtype": "F32", "shape": [2]}}, bytes(8), "tensor 'w': header entry must be an object with dtype, shape "
                                                      "and data_offsets"),
    ({"w": {"dtype": "F32", "shape": [1000, 512], "data_offsets": [0, 400]}}, bytes(400),
     r"tensor 'w': shape \[1000, 512\] of F32 needs 2,048,000 bytes but data_offsets \[0, 400\] span 400"),
    ({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, bytes(8), "tensor 'w' has unsupported dtype 'C64'"),
    ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4), "shape must be a list of non-negative"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, bytes(8), "data_offsets must be \\[begin, end\\]"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12),
     r"tensors 'a' \(bytes 0..8\) and 'b' \(bytes 4..12\) overlap"),
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8), "file is truncated: tensor 'w'"),
])
def test_malformed_safetensors_header_names_file_and_tensor(tmp_path, header, data, message):
    path = st_file(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(ValueError, match=message) as e:
        read_state_dict(path)
    assert "bad.safetensors" in str(e.value)


def test_valid_safetensors_still_reads(tmp_path):
    path = st_file(tmp_path / "ok.safetensors", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                                  "__metadata__": {"format": "pt"}},
                   np.array([1.5, 2.5], "<f4").tobytes())
    np.testing.assert_array_equal(read_state_dict(path)["a"], [1.5, 2.5])
