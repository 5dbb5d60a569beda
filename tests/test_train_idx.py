"""The IDX reader (MNIST / Fashion-MNIST files) and the 28x28 data sets' validation split, on small IDX files
the tests write themselves (plain and gzipped)."""

import gzip
import os
import struct

import numpy as np
import pytest
import torch

from train import data
from train.idx import IDX_FILES, IMAGES_MAGIC, LABELS_MAGIC, IDXError, load_idx_pair, read_idx


def idx_bytes(magic: int, arr: np.ndarray) -> bytes:
    """A uint8 IDX file as bytes, written independently of the reader (struct, big-endian)."""
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def write_idx_set(root, n_train=60, n_test=20, size=28, gz=True, seed=0):
    """The four standard files under root; returns (train_x, train_y, test_x, test_y) as written."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)  # every class equally often: a stratified split is exact
        rng.shuffle(y)
        for name, magic, arr in zip(IDX_FILES[split], (IMAGES_MAGIC, LABELS_MAGIC), (x, y)):
            raw = idx_bytes(magic, arr)
            path = os.path.join(root, name + (".gz" if gz else ""))
            with (gzip.open if gz else open)(path, "wb") as f:
                f.write(raw)
        out += [x, y]
    return out


@pytest.mark.parametrize("gz", [True, False])
def test_load_idx_pair_round_trip(tmp_path, gz):
    trx, try_, tex, tey = write_idx_set(str(tmp_path), gz=gz)
    x, y = load_idx_pair(str(tmp_path), "train")
    assert x.dtype == np.uint8 and x.shape == (60, 1, 28, 28) and y.dtype == np.int64
    assert np.array_equal(x[:, 0], trx) and np.array_equal(y, try_)
    x, y = load_idx_pair(str(tmp_path), "test")
    assert np.array_equal(x[:, 0], tex) and np.array_equal(y, tey)
    assert x.flags.writeable  # torch.from_numpy needs no copy and warns about none


def test_image_layout_is_row_major(tmp_path):
    x = np.arange(2 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(2, 28, 28)
    p = tmp_path / "img"
    p.write_bytes(idx_bytes(IMAGES_MAGIC, x))
    got = read_idx(str(p), IMAGES_MAGIC, (28, 28))
    raw = p.read_bytes()[16:]
    assert got[1, 2, 3] == raw[1 * 784 + 2 * 28 + 3]


def write(tmp_path, name, raw, gz=False):
    p = tmp_path / name
    p.write_bytes(gzip.compress(raw) if gz else raw)
    return str(p)


IMG = np.zeros((3, 28, 28), np.uint8)


@pytest.mark.parametrize("raw, magic, tail, match", [
    (idx_bytes(LABELS_MAGIC, np.zeros(3, np.uint8)), IMAGES_MAGIC, (28, 28), r"magic 2049 \(0x00000801\), expected 2051"),
    (idx_bytes(IMAGES_MAGIC, np.zeros((3, 32, 32), np.uint8)), IMAGES_MAGIC, (28, 28), r"dimension 1 is 32, expected 28"),
    (idx_bytes(IMAGES_MAGIC, IMG)[:-5], IMAGES_MAGIC, (28, 28), r"truncated: 2363 bytes, .* need 2368"),
    (idx_bytes(IMAGES_MAGIC, IMG) + b"\0", IMAGES_MAGIC, (28, 28), r"has trailing data: 2369 bytes"),
    (idx_bytes(IMAGES_MAGIC, IMG)[:10], IMAGES_MAGIC, (28, 28), r"too short for a 3-dimension IDX header"),
    (b"\0\0", LABELS_MAGIC, (), r"2 bytes, too short for an IDX header"),
])
@pytest.mark.parametrize("gz", [False, True])
def test_corrupt_files_name_file_and_fault(tmp_path, raw, magic, tail, match, gz):
    path = write(tmp_path, "f.idx", raw, gz)
    with pytest.raises(IDXError, match=match) as e:
        read_idx(path, magic, tail)
    assert path in str(e.value)


def test_corrupt_gzip(tmp_path):
    path = write(tmp_path, "f.gz", gzip.compress(idx_bytes(IMAGES_MAGIC, IMG))[:-20])
    with pytest.raises(IDXError, match=r"f.gz: cannot decompress"):
        read_idx(path, IMAGES_MAGIC, (28, 28))


def test_count_mismatch_and_bad_label(tmp_path):
    write_idx_set(str(tmp_path), gz=False)
    (tmp_path / IDX_FILES["test"][1]).write_bytes(idx_bytes(LABELS_MAGIC, np.zeros(19, np.uint8)))
    with pytest.raises(IDXError, match=r"t10k-images-idx3-ubyte holds 20 images but .*t10k-labels-idx1-ubyte holds 19"):
        load_idx_pair(str(tmp_path), "test")
    (tmp_path / IDX_FILES["test"][1]).write_bytes(idx_bytes(LABELS_MAGIC, np.array([0] * 7 + [12] + [0] * 12, np.uint8)))
    with pytest.raises(IDXError, match=r"label 12 at index 7, expected 0..9"):
        load_idx_pair(str(tmp_path), "test")


def test_missing_file_lists_what_was_tried(tmp_path):
    write_idx_set(str(tmp_path))
    os.remove(tmp_path / "train-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError, match=r"train-labels-idx1-ubyte not found: tried .*\.gz.*ubyte'\]"):
        load_idx_pair(str(tmp_path), "train")


def test_idx_dataset_validation_split(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "VAL_SIZE", 20)
    trx, try_, tex, tey = write_idx_set(str(tmp_path), n_train=100, n_test=30)
    for name in ("mnist", "fmnist"):
        s = data.load_dataset(name, str(tmp_path))
        assert len(s.val_index) == 20 and len(s.train_y) == 80
        assert np.bincount(s.val_y.numpy(), minlength=10).tolist() == [2] * 10, "not stratified"
        # a partition of the training files: the held-out images are exactly val_index, the rest train
        assert np.array_equal(s.val_x[:, 0].numpy(), trx[s.val_index])
        keep = np.setdiff1d(np.arange(100), s.val_index)
        assert np.array_equal(s.train_x[:, 0].numpy(), trx[keep]) and np.array_equal(s.train_y.numpy(), try_[keep])
        assert np.array_equal(s.test_x[:, 0].numpy(), tex) and s.test_x.dtype == torch.uint8
        again = data.load_dataset(name, str(tmp_path))
        assert np.array_equal(again.val_index, s.val_index), "the validation split is not fixed"


def test_mnist_needs_a_data_root():
    with pytest.raises(FileNotFoundError, match=r"MNIST needs --data_root"):
        data.load_dataset("mnist")


def test_fashion_mnist_missing_without_apt(monkeypatch):
    monkeypatch.setattr(data, "FMNIST_ROOT", "/nonexistent/fashion-mnist")
    monkeypatch.setattr(data.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"no apt-get.*dataset-fashion-mnist.*--data_root"):
        data.load_dataset("fmnist")


def test_fashion_mnist_missing_not_root(monkeypatch):
    monkeypatch.setattr(data, "FMNIST_ROOT", "/nonexistent/fashion-mnist")
    monkeypatch.setattr(data.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(data.os, "geteuid", lambda: 1000)
    with pytest.raises(FileNotFoundError, match=r"not root.*dataset-fashion-mnist.*--data_root"):
        data.load_dataset("fmnist")


def test_unknown_dataset():
    with pytest.raises(ValueError, match=r"unknown data set 'svhn'"):
        data.load_dataset("svhn")


@pytest.mark.skipif(not os.path.isdir(data.FMNIST_ROOT), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian():
    s = data.load_dataset("fmnist")
    assert [tuple(a.shape) for a in s[:6]] == [(55000, 1, 28, 28), (55000,), (5000, 1, 28, 28), (5000,),
                                              (10000, 1, 28, 28), (10000,)]
    assert np.bincount(s.val_y.numpy()).tolist() == [500] * 10
    assert np.bincount(s.test_y.numpy()).tolist() == [1000] * 10


def test_too_few_training_images(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "VAL_SIZE", 40)
    write_idx_set(str(tmp_path), n_train=60)
    with pytest.raises(ValueError, match=r"60 training images; the validation split holds out 40, so at least 80"):
        data.load_dataset("mnist", str(tmp_path))


@pytest.mark.parametrize("info, shape, want", [
    ({"train_config": {"preset": "mnist"}}, (28, 1, 10), "mnist"),      # the record names the data set
    ({"train_config": {"preset": "fmnist"}}, (28, 1, 10), "fmnist"),
    ({}, (28, 1, 10), "fmnist"),                                        # no record: by input shape
    ({"train_config": {"preset": "custom"}}, (8, 1, 10), "digits"),
    ({}, (32, 3, 100), "cifar100"),
])
def test_dataset_of(info, shape, want):
    assert data.dataset_of(info, *shape) == want


def test_dataset_of_unknown_shape():
    with pytest.raises(ValueError, match=r"no data set known for 16x16x1 images and 10 classes"):
        data.dataset_of({}, 16, 1, 10)
