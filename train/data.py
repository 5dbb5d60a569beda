"""Datasets: scikit-learn's digits (the embedded default), Fashion-MNIST (Debian's package), MNIST and
CIFAR-10/100 from a local copy.

Images come out as uint8 tensors (B, C, H, W), labels as int64 (B,). Nothing is downloaded: digits ship
with scikit-learn, Fashion-MNIST with Debian's ``dataset-fashion-mnist`` (installed by apt when missing and
the machine allows it), MNIST and CIFAR come from the user's own files (``--data_root``).

``load_dataset(name, data_root)`` returns a ``Split``: train, validation and test. The 28x28 sets hold out a
fixed, seeded, stratified part of their training images for validation (recipes are chosen on it; the
test images are used only for reported figures). Digits have no validation split (their recipe predates
it), CIFAR neither (its recipe is the seeds' published one).
"""

import os
import pickle
import shutil
import subprocess
from typing import NamedTuple

import numpy as np
import torch

from .idx import load_idx_pair

DIGITS_SEED = 0          # the fixed train/test split of the digits preset
DIGITS_TEST_FRACTION = 0.25
VAL_SEED = 0             # the fixed validation split of the 28x28 sets
VAL_SIZE = 5000          # training images held out for validation (stratified)
FMNIST_PACKAGE = "dataset-fashion-mnist"
FMNIST_ROOT = "/usr/share/datasets/fashion-mnist"   # where Debian's package puts the four IDX files
APT_LOCK = "/tmp/dynaspike-apt.lock"
DATASETS = ("digits", "fmnist", "mnist", "cifar10", "cifar100")


class Split(NamedTuple):
    """One data set: uint8 images (B, C, H, W) and int64 labels (B,); ``val_index`` are the indices into the
    full training set of the validation images (empty where there is no validation split)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    val_index: np.ndarray


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


def validation_split(y: np.ndarray, size: int = VAL_SIZE, seed: int = VAL_SEED) -> np.ndarray:
    """Sorted indices of a fixed, seeded, stratified validation subset of ``size`` of the labels ``y``."""
    from sklearn.model_selection import train_test_split
    _, val = train_test_split(np.arange(len(y)), test_size=size, random_state=seed, stratify=y)
    return np.sort(val)


def fashion_mnist_root(data_root: str = "") -> str:
    """The folder with Fashion-MNIST's four IDX files: ``data_root`` if given, else Debian's package's.

    Installs ``dataset-fashion-mnist`` with apt when it is missing and this process may (root, apt-get on
    PATH); otherwise the error names the package and the ``--data_root`` alternative.
    """
    if data_root:
        return data_root
    if os.path.isdir(FMNIST_ROOT):
        return FMNIST_ROOT
    how = (f"install Debian's package {FMNIST_PACKAGE} (apt-get install {FMNIST_PACKAGE}, as root) or pass "
           f"--data_root=DIR with the four Fashion-MNIST IDX files")
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise FileNotFoundError(f"Fashion-MNIST not found at {FMNIST_ROOT} and cannot install it here "
                                f"({'no apt-get' if shutil.which('apt-get') is None else 'not root'}): {how}")
    import fcntl
    with open(APT_LOCK, "w") as lock:  # parallel test workers: one installs, the others wait for it
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isdir(FMNIST_ROOT):
            print(f"Fashion-MNIST: installing Debian's {FMNIST_PACKAGE} (apt-get) ...", flush=True)
            for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", FMNIST_PACKAGE]):
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode:
                    raise FileNotFoundError(f"'{' '.join(cmd)}' failed ({r.stderr.strip()[-400:]}): {how}")
    if not os.path.isdir(FMNIST_ROOT):
        raise FileNotFoundError(f"{FMNIST_PACKAGE} installed but {FMNIST_ROOT} is missing: {how}")
    return FMNIST_ROOT


def load_idx_dataset(root: str) -> Split:
    """MNIST or Fashion-MNIST from the four standard IDX files under ``root`` (gzipped or not), with the
    fixed validation split held out of the training images."""
    xtr, ytr = load_idx_pair(root, "train")
    xte, yte = load_idx_pair(root, "test")
    if len(ytr) < 2 * VAL_SIZE:
        raise ValueError(f"{root}: {len(ytr)} training images; the validation split holds out {VAL_SIZE}, "
                         f"so at least {2 * VAL_SIZE} are needed")
    val = validation_split(ytr, VAL_SIZE)
    keep = np.setdiff1d(np.arange(len(ytr)), val)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    return Split(t(xtr[keep]), t(ytr[keep]), t(xtr[val]), t(ytr[val]), t(xte), t(yte), val)


def load_dataset(name: str, data_root: str = "") -> Split:
    """Data set ``name`` (one of ``DATASETS``) as a ``Split``; ``data_root`` where it comes from a path."""
    no_val = np.zeros(0, dtype=np.int64)
    if name == "digits":
        xtr, ytr, xte, yte = load_digits_split()
        return Split(xtr, ytr, xtr[:0], ytr[:0], xte, yte, no_val)
    if name == "fmnist":
        return load_idx_dataset(fashion_mnist_root(data_root))
    if name == "mnist":
        if not data_root:
            raise FileNotFoundError("MNIST needs --data_root=DIR with its four IDX files "
                                    "(train-images-idx3-ubyte[.gz], ...); nothing is downloaded")
        return load_idx_dataset(data_root)
    if name in ("cifar10", "cifar100"):
        if not data_root:
            raise FileNotFoundError(f"{name} needs --data_root=PATH to the CIFAR python pickle batches")
        xtr, ytr, xte, yte = load_cifar(data_root, 100 if name == "cifar100" else 10)
        return Split(xtr, ytr, xtr[:0], ytr[:0], xte, yte, no_val)
    raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")


FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot")


def class_name(dataset: str, c: int) -> str:
    """A readable name of class ``c`` of ``dataset`` (Fashion-MNIST's names, else the class number)."""
    return FMNIST_CLASSES[c] if dataset == "fmnist" and 0 <= c < len(FMNIST_CLASSES) else str(c)


def dataset_of(info: dict, img_size: int, in_channels: int, num_classes: int) -> str:
    """The data set a model was trained on: its training record's preset (``info["train_config"]``) when that
    names one of ``DATASETS``, else the only one its input shape fits (28x28 grey: Fashion-MNIST)."""
    preset = (info.get("train_config") or {}).get("preset") if isinstance(info, dict) else None
    if preset in DATASETS:
        return preset
    by_shape = {(8, 1, 10): "digits", (28, 1, 10): "fmnist", (32, 3, 10): "cifar10", (32, 3, 100): "cifar100"}
    try:
        return by_shape[(img_size, in_channels, num_classes)]
    except KeyError:
        raise ValueError(f"no data set known for {img_size}x{img_size}x{in_channels} images and "
                         f"{num_classes} classes") from None


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


if __name__ == "__main__":  # python -m train.data fmnist: install Fashion-MNIST now if it is missing
    import sys
    for name in sys.argv[1:] or ["fmnist"]:
        if name != "fmnist":
            sys.exit(f"only fmnist installs from a package; {name} comes from --data_root")
        try:
            print(f"Fashion-MNIST: {fashion_mnist_root()}")
        except FileNotFoundError as e:
            sys.exit(f"Fashion-MNIST: {e}")
