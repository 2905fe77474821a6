"""Data pipeline: datasets, seeded DataLoader, transforms, Fashion-MNIST/CIFAR-10 loaders (local files only)."""
import gzip
import hashlib
import io
import os
import tarfile

import numpy as np
import pytest

from convnp.data import (ArrayDataset, DataLoader, Subset, as_dataset, dataset_info, download_file, load_cifar10,
                         load_dataset, load_fashion_mnist, random_split)
from convnp.data import transforms as T
from convnp.data.datasets import CIFAR10_ARCHIVE, FASHION_MNIST_FILES, check_file


# ------------------------------------------------------------------ datasets
def test_array_dataset_indexing_and_batches():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10) * 3
    ds = ArrayDataset(x, y)
    assert len(ds) == 10
    xi, yi = ds[4]
    np.testing.assert_array_equal(xi, [8, 9])
    assert yi == 12
    xb, yb = ds.get_batch([7, 1])
    np.testing.assert_array_equal(xb, x[[7, 1]])
    np.testing.assert_array_equal(yb, [21, 3])
    assert ArrayDataset(x).get_batch([0])[1] is None


def test_array_dataset_length_mismatch():
    with pytest.raises(ValueError, match="x has 3 samples but y has 2"):
        ArrayDataset(np.zeros((3, 1)), np.zeros(2))


def test_as_dataset_rejects_separate_targets_for_a_dataset():
    ds = ArrayDataset(np.zeros((3, 1)), np.zeros(3))
    assert as_dataset(ds) is ds
    with pytest.raises(ValueError, match="pass targets inside the Dataset"):
        as_dataset(ds, np.zeros(3))


def test_subset_and_base_get_batch():
    ds = ArrayDataset(np.arange(10.0)[:, None], np.arange(10))
    sub = Subset(ds, [9, 2, 5])
    assert len(sub) == 3 and sub[0][1] == 9
    np.testing.assert_array_equal(sub.get_batch([2, 0])[1], [5, 9])
    with pytest.raises(IndexError, match=r"Subset: indices must lie in \[0, 10\)"):
        Subset(ds, [3, 10])


def test_random_split_partitions():
    ds = ArrayDataset(np.arange(10.0)[:, None], np.arange(10))
    a, b = random_split(ds, [7, 3], seed=0)
    seen = np.concatenate([a.indices, b.indices])
    assert sorted(seen.tolist()) == list(range(10))
    assert not np.array_equal(a.indices, np.arange(7))  # shuffled
    a2, _ = random_split(ds, [7, 3], seed=0)
    np.testing.assert_array_equal(a.indices, a2.indices)
    with pytest.raises(ValueError, match="sum to the dataset size 10"):
        random_split(ds, [5, 4])


# ------------------------------------------------------------------ loader
def test_loader_visits_every_sample_once_per_epoch():
    x = np.arange(23)
    loader = DataLoader(x, batch_size=5, shuffle=True, seed=3, y=x)
    assert len(loader) == 5
    orders = []
    for _ in range(3):
        batches = [xb for xb, _ in loader]
        assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
        seen = np.concatenate(batches)
        assert sorted(seen.tolist()) == list(range(23))
        orders.append(seen)
    assert not np.array_equal(orders[0], orders[1])


def test_loader_drop_last_and_no_shuffle():
    loader = DataLoader(np.arange(23), batch_size=5, drop_last=True, y=np.arange(23))
    assert len(loader) == 4
    batches = [xb for xb, _ in loader]
    np.testing.assert_array_equal(np.concatenate(batches), np.arange(20))


def test_loader_order_depends_only_on_seed_and_epoch():
    a = DataLoader(np.arange(50), 7, shuffle=True, seed=11, y=np.arange(50))
    b = DataLoader(np.arange(50), 7, shuffle=True, seed=11, y=np.arange(50))
    list(a), list(a)  # a has run two epochs
    b.set_epoch(2)
    np.testing.assert_array_equal(np.concatenate([xb for xb, _ in a]), np.concatenate([xb for xb, _ in b]))
    c = DataLoader(np.arange(50), 7, shuffle=True, seed=12, y=np.arange(50))
    assert not np.array_equal(a.order(0), c.order(0))


def test_loader_transform_gets_reproducible_generators():
    def noise(xb, rng):
        return xb + rng.standard_normal(xb.shape)
    x = np.zeros((6, 1, 2, 2))
    run1 = [xb for xb, _ in DataLoader(x, 3, seed=5, transform=noise, y=np.zeros(6))]
    run2 = [xb for xb, _ in DataLoader(x, 3, seed=5, transform=noise, y=np.zeros(6))]
    np.testing.assert_array_equal(run1[0], run2[0])
    assert not np.allclose(run1[0], run1[1])


def test_loader_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        DataLoader(np.zeros(3), 0)


# ------------------------------------------------------------------ transforms
class FixedRng:
    """A stand-in Generator whose draws are fixed, to test exact geometry."""

    def __init__(self, uniform_at="high", ints=0):
        self.uniform_at, self.ints = uniform_at, ints

    def uniform(self, low, high, size):
        return np.full(size, high if self.uniform_at == "high" else low, dtype=np.float64)

    def integers(self, low, high, size):
        return np.full(size, self.ints)

    def random(self, size):
        return np.zeros(size)


def test_normalize_per_channel():
    x = np.random.default_rng(0).random((2, 3, 4, 4)).astype(np.float32)
    y = T.Normalize([0.1, 0.2, 0.3], [0.5, 1.0, 2.0])(x)
    np.testing.assert_allclose(y[:, 1], x[:, 1] - 0.2, rtol=1e-6)
    np.testing.assert_allclose(y[:, 2], (x[:, 2] - 0.3) / 2.0, rtol=1e-6)
    assert y.dtype == np.float32
    with pytest.raises(ValueError, match="std must be positive"):
        T.Normalize(0.0, 0.0)
    with pytest.raises(ValueError, match="got 2 means / 2 stds for 3 channels"):
        T.Normalize([0, 0], [1, 1])(x)
    with pytest.raises(ValueError, match=r"Normalize: expected a batch of images \(N, C, H, W\), got shape \(3, 4\)"):
        T.Normalize(0, 1)(np.zeros((3, 4)))


def test_random_shift_moves_content_by_at_most_max_shift():
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 9, 9)).astype(np.float32) + 1.0  # strictly positive: the fill (0) is recognizable
    y = T.RandomShift(2)(x, np.random.default_rng(1))
    assert y.shape == x.shape
    shifts = set()
    for img, out in zip(x[:, 0], y[:, 0]):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                padded = np.pad(img, 2)
                cand = padded[2 - dy:2 - dy + 9, 2 - dx:2 - dx + 9]
                if np.array_equal(cand, out):
                    matches.append((dy, dx))
        assert len(matches) == 1
        shifts.add(matches[0])
    assert len(shifts) > 1  # not the same shift for every image


def test_random_crop_fixed_offset_and_errors():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    y = T.RandomCrop(2, padding=1)(x, FixedRng(ints=0))  # top-left of the padded image
    np.testing.assert_array_equal(y[0, 0], [[0, 0], [0, 0]])
    y = T.RandomCrop(2, padding=1)(x, FixedRng(ints=2))
    np.testing.assert_array_equal(y[0, 0], [[5, 6], [9, 10]])
    with pytest.raises(ValueError, match="crop 7x7 is larger than the padded image 6x6"):
        T.RandomCrop(7, padding=1)(x)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        T.RandomCrop(2, padding=-1)


def test_horizontal_flip():
    x = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(x)[0, 0], [[2, 1, 0], [5, 4, 3]])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(x), x)
    flips = T.RandomHorizontalFlip(0.5)(np.repeat(x, 200, axis=0), np.random.default_rng(0))
    share = np.mean(flips[:, 0, 0, 0] == 2)
    assert 0.35 < share < 0.65
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        T.RandomHorizontalFlip(1.5)


def test_affine_identity_and_exact_quarter_turn():
    x = np.random.default_rng(0).random((2, 2, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(T.RandomAffine(0.0)(x), x, atol=1e-6)
    turned = T.RandomAffine(degrees=90)(x, FixedRng("high"))  # +90 degrees exactly
    assert np.allclose(turned, np.rot90(x, k=1, axes=(2, 3)), atol=1e-5) or \
        np.allclose(turned, np.rot90(x, k=-1, axes=(2, 3)), atol=1e-5)
    back = T.RandomAffine(degrees=90)(turned, FixedRng("low"))  # then -90 degrees
    np.testing.assert_allclose(back, x, atol=1e-5)


def test_affine_zoom_keeps_centre_and_fills_outside():
    x = np.zeros((1, 1, 7, 7), np.float32)
    x[0, 0, 3, 3] = 1.0
    zoomed = T.RandomAffine(0, scale=(2.0, 2.0))(x)
    assert zoomed[0, 0, 3, 3] == pytest.approx(1.0)
    assert zoomed.sum() > 1.0  # the bright pixel is spread over a bigger area
    shrunk = T.RandomAffine(0, scale=(0.5, 0.5), fill=-1.0)(np.ones((1, 1, 8, 8), np.float32))
    assert shrunk[0, 0, 0, 0] == pytest.approx(-1.0) and shrunk[0, 0, 4, 4] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="scale must be"):
        T.RandomAffine(0, scale=(1.2, 1.0))


def test_compose_and_default_augmentation():
    x = np.random.default_rng(0).random((4, 1, 28, 28)).astype(np.float32)
    aug = T.default_augmentation("mnist")
    a = aug(x, np.random.default_rng(3))
    b = aug(x, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and not np.allclose(a, x)
    assert T.default_augmentation("cifar10")(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        T.default_augmentation("svhn")
    assert isinstance(T.default_augmentation("mnist", "shift"), T.RandomShift)
    with pytest.raises(ValueError, match="kind must be 'full' or 'shift', got 'big'"):
        T.default_augmentation("mnist", "big")


# ------------------------------------------------------------------ Fashion-MNIST and CIFAR-10 from local files
def _idx_bytes(array):
    codes = {np.uint8: 0x08}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape)
    return gzip.compress(header + array.tobytes())


def _write_fashion(directory, n_train=6, n_test=4):
    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, n_train).astype(np.uint8),
              "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, n_test).astype(np.uint8)}
    sums = {}
    for key, (name, _) in FASHION_MNIST_FILES.items():
        data = _idx_bytes(arrays[key])
        (directory / name).write_bytes(data)
        sums[name] = hashlib.sha256(data).hexdigest()
    return arrays, sums


def test_fashion_mnist_from_local_files(tmp_path):
    arrays, sums = _write_fashion(tmp_path)
    (x, t), (xt, tt) = load_fashion_mnist(tmp_path, checksums=sums)
    assert x.shape == (6, 1, 28, 28) and x.dtype == np.float32 and xt.shape == (4, 1, 28, 28)
    np.testing.assert_allclose(x[:, 0] * 255, arrays["train_images"], atol=1e-4)
    np.testing.assert_array_equal(t, arrays["train_labels"])
    assert t.dtype == np.int64
    (_, t1), _ = load_fashion_mnist(tmp_path, checksums=False, one_hot=True)
    assert t1.shape == (6, 10)


def test_fashion_mnist_rejects_files_with_wrong_checksum(tmp_path):
    _write_fashion(tmp_path)
    with pytest.raises(ValueError, match="checksum mismatch for .*train-images-idx3-ubyte.gz: expected md5 "
                                         "8d4fb7e6c68d591d4c3dfef9ec88bf0d"):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_missing_files_say_how_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="pass download=True"):
        load_fashion_mnist(tmp_path)


def test_download_tries_mirrors_and_verifies(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(b"hello convnp")
    good = hashlib.md5(b"hello convnp").hexdigest()
    dest = tmp_path / "cache" / "f.bin"
    missing = (tmp_path / "nowhere" / "f.bin").as_uri()
    download_file([missing, (src / "f.bin").as_uri()], dest, good, quiet=True)
    assert dest.read_bytes() == b"hello convnp"
    bad_dest = tmp_path / "cache" / "g.bin"
    with pytest.raises(OSError, match="download failed from every mirror.*checksum mismatch"):
        download_file([(src / "f.bin").as_uri()], bad_dest, "0" * 32, quiet=True)
    assert not bad_dest.exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["f.bin"]  # no temporary files left


def test_fashion_mnist_download_from_local_mirror(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    arrays, sums = _write_fashion(mirror)
    import convnp.data.datasets as D
    monkeypatch.setattr(D, "FASHION_MNIST_MIRRORS", [mirror.as_uri() + "/"])
    cache = tmp_path / "cache"
    (x, t), _ = load_fashion_mnist(cache, download=True, checksums=sums)
    np.testing.assert_array_equal(t, arrays["train_labels"])
    assert sorted(os.listdir(cache)) == sorted(name for name, _ in FASHION_MNIST_FILES.values())


def _cifar_records(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    pixels = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    blob = b"".join(bytes([labels[i]]) + pixels[i].tobytes() for i in range(n))
    return labels, pixels, blob


def _write_cifar_archive(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar10_from_binary_archive(tmp_path):
    members, train_labels, train_pixels = {}, [], []
    for i in range(1, 6):
        labels, pixels, blob = _cifar_records(2, i)
        members[f"cifar-10-batches-bin/data_batch_{i}.bin"] = blob
        train_labels.append(labels)
        train_pixels.append(pixels)
    test_labels, test_pixels, blob = _cifar_records(3, 99)
    members["cifar-10-batches-bin/test_batch.bin"] = blob
    md5 = _write_cifar_archive(tmp_path / CIFAR10_ARCHIVE[0], members)
    (x, t), (xt, tt) = load_cifar10(tmp_path, checksums={CIFAR10_ARCHIVE[0]: md5})
    assert x.shape == (10, 3, 32, 32) and xt.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(t, np.concatenate(train_labels))
    np.testing.assert_allclose(x * 255, np.concatenate(train_pixels), atol=1e-3)  # channel planes, row-major
    np.testing.assert_array_equal(tt, test_labels)
    with pytest.raises(ValueError, match="checksum mismatch.*c32a1d4ab5d03f1284b67883e8d87530"):
        load_cifar10(tmp_path)


def test_cifar10_extracted_folder_and_damaged_files(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for i in range(1, 6):
        (folder / f"data_batch_{i}.bin").write_bytes(_cifar_records(1, i)[2])
    (folder / "test_batch.bin").write_bytes(_cifar_records(2, 0)[2][:-5])  # truncated
    with pytest.raises(ValueError, match="not a whole number of 3073-byte records"):
        load_cifar10(tmp_path)
    (folder / "test_batch.bin").write_bytes(_cifar_records(2, 0)[2])
    (x, _), (xt, _) = load_cifar10(tmp_path)
    assert x.shape == (5, 3, 32, 32) and xt.shape == (2, 3, 32, 32)


def test_cifar10_archive_without_members(tmp_path):
    md5 = _write_cifar_archive(tmp_path / CIFAR10_ARCHIVE[0], {"other.txt": b"x"})
    with pytest.raises(ValueError, match="has no member .*data_batch_1.bin.*binary version"):
        load_cifar10(tmp_path, checksums={CIFAR10_ARCHIVE[0]: md5})


def test_load_dataset_names(tmp_path):
    (x, t), (xt, tt) = load_dataset("mnist")
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    assert dataset_info("fashion-mnist")[0] == (1, 28, 28)
    assert dataset_info("cifar10")[1][0] == "airplane"
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; available: mnist, fashion_mnist, cifar10"):
        load_dataset("imagenet")


def test_check_file_digest_kinds(tmp_path):
    p = tmp_path / "a"
    p.write_bytes(b"abc")
    check_file(p, hashlib.sha256(b"abc").hexdigest())
    check_file(p, hashlib.md5(b"abc").hexdigest())
    with pytest.raises(ValueError, match="neither an MD5 nor a SHA-256"):
        check_file(p, "abc")
