"""The IDX file format of MNIST and Fashion-MNIST: one reader, gzipped or not (numpy only).

An IDX file is a big-endian header, then the data: two zero bytes, a type byte (0x08 = uint8, the only
type these data sets use), the number of dimensions ``n``, then ``n`` big-endian uint32 sizes. Read as a
32-bit big-endian word, the first four bytes are the "magic" 2049 (labels: ``0x00000801``, one
dimension) or 2051 (images: ``0x00000803``, three dimensions: count, rows, columns).

Every error names the file and what is wrong: a bad magic, a dimension count or size that does not match
the data set, truncated or trailing data, and (in ``load_idx_pair``) image and label counts that differ.
"""

import gzip
import os

import numpy as np

IMAGES_MAGIC = 2051   # 0x00000803: uint8, 3 dimensions (count, rows, columns)
LABELS_MAGIC = 2049   # 0x00000801: uint8, 1 dimension (count)
UINT8_TYPE = 0x08

#: The four standard files of MNIST and Fashion-MNIST, by split; each may also end in ``.gz``.
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class IDXError(ValueError):
    """An IDX file that is not what its data set needs (the message names the file)."""


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open  # gzip by content, whatever the name says
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as e:  # a truncated or corrupt gzip stream
        raise IDXError(f"{path}: cannot decompress ({e})") from None


def read_idx(path: str, magic: int, shape_tail: tuple = ()) -> np.ndarray:
    """Read one uint8 IDX file and return its array (shape ``(count, *shape_tail)``).

    ``magic`` is ``IMAGES_MAGIC`` or ``LABELS_MAGIC``; ``shape_tail`` the sizes the data set requires after
    the count (``(28, 28)`` for images, ``()`` for labels; ``None`` entries accept any size).
    """
    data = _read_bytes(path)
    ndim = 1 + len(shape_tail)
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise IDXError(f"{path}: {len(data)} bytes, too short for an IDX header")
    seen = int.from_bytes(data[:4], "big")
    if seen != magic:
        raise IDXError(f"{path}: magic {seen} (0x{seen:08x}), expected {magic} (0x{magic:08x}): "
                       f"not an IDX {'image' if magic == IMAGES_MAGIC else 'label'} file")
    if len(data) < header:
        raise IDXError(f"{path}: {len(data)} bytes, too short for a {ndim}-dimension IDX header ({header} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    for i, (got, want) in enumerate(zip(dims[1:], shape_tail), start=1):
        if want is not None and got != want:
            raise IDXError(f"{path}: dimension {i} is {got}, expected {want} (sizes {dims})")
    need = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != need:
        what = "truncated" if len(data) < need else "has trailing data"
        raise IDXError(f"{path}: {what}: {len(data)} bytes, the header's sizes {dims} need {need}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()  # writable, owns its data


def find_idx(root: str, name: str) -> str:
    """The path of standard file ``name`` under ``root``, plain or ``.gz`` (an error lists what was tried)."""
    tried = [os.path.join(root, name + ext) for ext in (".gz", "")]
    for p in tried:
        if os.path.isfile(p):
            return p
    raise FileNotFoundError(f"IDX file {name} not found: tried {tried}")


def load_idx_pair(root: str, split: str, size: int = 28) -> tuple:
    """``(images (n, 1, size, size) uint8, labels (n,) int64)`` of one split ("train" or "test") under root."""
    img_name, lbl_name = IDX_FILES[split]
    img_path, lbl_path = find_idx(root, img_name), find_idx(root, lbl_name)
    x = read_idx(img_path, IMAGES_MAGIC, (size, size))
    y = read_idx(lbl_path, LABELS_MAGIC)
    if len(x) != len(y):
        raise IDXError(f"{img_path} holds {len(x)} images but {lbl_path} holds {len(y)} labels")
    if len(y) and int(y.max()) > 9:
        bad = int(np.argmax(y > 9))
        raise IDXError(f"{lbl_path}: label {int(y[bad])} at index {bad}, expected 0..9")
    return x.reshape(-1, 1, size, size), y.astype(np.int64)
