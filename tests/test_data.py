"""Datasets: the fixed digits split, and CIFAR-10/100 read from the standard pickle batches."""

import os
import pickle

import numpy as np
import pytest
import torch

from train.data import digits_to_uint8, load_cifar, load_digits_split


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def test_digits_split_shapes_and_types(digits):
    xtr, ytr, xte, yte = digits
    assert tuple(xtr.shape) == (1347, 1, 8, 8) and tuple(xte.shape) == (450, 1, 8, 8)
    assert xtr.dtype == xte.dtype == torch.uint8
    assert ytr.dtype == yte.dtype == torch.int64
    assert tuple(ytr.shape) == (1347,) and tuple(yte.shape) == (450,)
    assert int(xtr.max()) == 255 and int(xtr.min()) == 0
    assert set(ytr.tolist()) == set(yte.tolist()) == set(range(10))


def test_digits_split_is_fixed(digits):
    again = load_digits_split()
    for name, a, b in zip(("train_x", "train_y", "test_x", "test_y"), digits, again):
        assert torch.equal(a, b), f"{name} differs between two calls"


def test_digits_split_is_a_stratified_partition(digits):
    from sklearn.datasets import load_digits
    xtr, ytr, xte, yte = digits
    d = load_digits()
    total = np.bincount(d.target, minlength=10)
    test = np.bincount(yte.numpy(), minlength=10)
    for c in range(10):
        share = total[c] * 450 / 1797
        assert abs(test[c] - share) < 1, f"class {c}: {test[c]} test images, stratified share {share:.2f}"
    assert np.array_equal(np.bincount(ytr.numpy(), minlength=10) + test, total)
    # a partition of the dataset: every image exactly once, with its label
    all_x = digits_to_uint8(d.images).reshape(-1, 64)
    key = lambda x, y: sorted(zip(map(bytes, x), y.tolist()))
    ours = key(np.concatenate([xtr.reshape(-1, 64).numpy(), xte.reshape(-1, 64).numpy()]),
               torch.cat([ytr, yte]))
    assert ours == key(all_x, d.target)


def test_digits_to_uint8():
    assert digits_to_uint8(np.array([0, 1, 8, 15, 16])).tolist() == [0, 16, 128, 239, 255]
    assert digits_to_uint8(np.array([[8.0]])).dtype == np.uint8


# --------------------------------------------------------------------------------------------- CIFAR
def write_cifar(root, num_classes, seed=0):
    """A small CIFAR set in the standard python pickle format; returns what load_cifar must give back."""
    rng = np.random.default_rng(seed)
    if num_classes == 10:
        folder, files, key = "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels"
    else:
        folder, files, key = "cifar-100-python", ["train", "test"], b"fine_labels"
    os.makedirs(os.path.join(root, folder))
    parts = {}
    for i, f in enumerate(files):
        n = 3 + i
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, num_classes, n).tolist()
        d = {b"data": data, key: labels, b"batch_label": f.encode()}
        if num_classes == 100:
            d[b"coarse_labels"] = [y // 5 for y in labels]
        with open(os.path.join(root, folder, f), "wb") as fh:
            pickle.dump(d, fh)
        parts[f] = (data, labels)
    train, test = files[:-1], files[-1:]
    cat = lambda fs: (np.concatenate([parts[f][0] for f in fs]).reshape(-1, 3, 32, 32),
                      np.array(sum((parts[f][1] for f in fs), []), dtype=np.int64))
    return os.path.join(root, folder), (*cat(train), *cat(test))


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("where", ["folder", "parent"])
def test_load_cifar(tmp_path, num_classes, where):
    folder, want = write_cifar(str(tmp_path), num_classes, seed=num_classes)
    got = load_cifar(folder if where == "folder" else str(tmp_path), num_classes)
    for name, g, w in zip(("train_x", "train_y", "test_x", "test_y"), got, want):
        assert g.dtype == (torch.uint8 if name.endswith("x") else torch.int64), f"{name}: dtype {g.dtype}"
        assert tuple(g.shape) == w.shape, f"{name}: shape {tuple(g.shape)}, expected {w.shape}"
        assert np.array_equal(g.numpy(), w), f"{name} differs"
    assert got[0].shape[0] == (3 + 4 + 5 + 6 + 7 if num_classes == 10 else 3)


def test_cifar_image_layout(tmp_path):
    # a row of 3072 bytes is 1024 red, 1024 green, 1024 blue values, each a row-major 32x32 plane
    folder, _ = write_cifar(str(tmp_path), 10)
    with open(os.path.join(folder, "test_batch"), "rb") as f:
        d = pickle.load(f, encoding="bytes")
    row = d[b"data"][0]
    x = load_cifar(folder, 10)[2][0]
    assert int(x[0, 0, 1]) == row[1] and int(x[1, 0, 0]) == row[1024] and int(x[2, 31, 31]) == row[3071]
    assert int(x[0, 1, 0]) == row[32]


@pytest.mark.parametrize("num_classes, drop", [(10, "data_batch_3"), (10, "test_batch"), (100, "train"),
                                               (100, "test")])
def test_cifar_missing_files(tmp_path, num_classes, drop):
    folder, _ = write_cifar(str(tmp_path), num_classes)
    os.remove(os.path.join(folder, drop))
    with pytest.raises(FileNotFoundError, match=rf"CIFAR-{num_classes} files \['{drop}'\] not found"):
        load_cifar(str(tmp_path), num_classes)


def test_cifar_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_batch_1.*test_batch.*nothing is downloaded"):
        load_cifar(str(tmp_path), 10)


def test_cifar_wrong_labels_key(tmp_path):
    folder, _ = write_cifar(str(tmp_path), 100)
    with open(os.path.join(folder, "train"), "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, fh)  # CIFAR-10 key
    with pytest.raises(ValueError, match=r"lacks b'data' or b'fine_labels'"):
        load_cifar(folder, 100)


def test_cifar_wrong_data_shape(tmp_path):
    folder, _ = write_cifar(str(tmp_path), 100)
    with open(os.path.join(folder, "test"), "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 3000), np.uint8), b"fine_labels": [0, 1]}, fh)
    with pytest.raises(ValueError, match=r"data has shape \(2, 3000\), expected \(n, 3072\)"):
        load_cifar(folder, 100)


def test_cifar_bad_num_classes(tmp_path):
    with pytest.raises(ValueError, match=r"10 or 100 classes, got num_classes=20"):
        load_cifar(str(tmp_path), 20)
