"""Datasets: scikit-learn's digits (the embedded default) and CIFAR-10/100 from a local copy.

Images come out as uint8 tensors (B, C, H, W), labels as int64 (B,). Nothing is downloaded.
"""

import os
import pickle

import numpy as np
import torch

DIGITS_SEED = 0          # the fixed train/test split of the digits preset
DIGITS_TEST_FRACTION = 0.25


def digits_to_uint8(x: np.ndarray) -> np.ndarray:
    """scikit-learn digits pixels (0..16) -> uint8 (0..255): round(x * 255 / 16)."""
    return np.round(np.asarray(x, dtype=np.float64) * 255 / 16).astype(np.uint8)


def load_digits_split():
    """Return ``(train_x, train_y, test_x, test_y)``: 8x8 digits, a seeded 75/25 stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = digits_to_uint8(d.images).reshape(-1, 1, 8, 8)
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=DIGITS_TEST_FRACTION,
                                          random_state=DIGITS_SEED, stratify=d.target)
    t = lambda a, dt: torch.from_numpy(np.ascontiguousarray(a)).to(dt)
    return t(xtr, torch.uint8), t(ytr, torch.int64), t(xte, torch.uint8), t(yte, torch.int64)


def _unpickle(path):
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def load_cifar(root, num_classes: int = 10):
    """Load CIFAR-10/100 from the standard python pickle batches under ``root``.

    CIFAR-10: ``data_batch_1..5`` and ``test_batch`` (labels key ``labels``); CIFAR-100: ``train`` and
    ``test`` (labels key ``fine_labels``). ``root`` may be the extracted ``cifar-10-batches-py`` /
    ``cifar-100-python`` folder or its parent. Returns ``(train_x, train_y, test_x, test_y)``.
    """
    if num_classes not in (10, 100):
        raise ValueError(f"CIFAR has 10 or 100 classes, got num_classes={num_classes}")
    sub = "cifar-10-batches-py" if num_classes == 10 else "cifar-100-python"
    if os.path.isdir(os.path.join(root, sub)):
        root = os.path.join(root, sub)
    if num_classes == 10:
        train_files, test_files, key = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"
    else:
        train_files, test_files, key = ["train"], ["test"], b"fine_labels"
    missing = [f for f in train_files + test_files if not os.path.isfile(os.path.join(root, f))]
    if missing:
        raise FileNotFoundError(f"CIFAR-{num_classes} files {missing} not found under {root!r} "
                                f"(expected the python pickle batches; nothing is downloaded)")

    def read(files):
        xs, ys = [], []
        for f in files:
            d = _unpickle(os.path.join(root, f))
            if b"data" not in d or key not in d:
                raise ValueError(f"{os.path.join(root, f)} lacks {b'data'!r} or {key!r}: not a CIFAR batch")
            data = np.asarray(d[b"data"], dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3072:
                raise ValueError(f"{os.path.join(root, f)}: data has shape {data.shape}, expected (n, 3072)")
            xs.append(data.reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[key], dtype=np.int64))
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    return (*read(train_files), *read(test_files))
