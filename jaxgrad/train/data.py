"""Handwritten digits with no download: scikit-learn's 8×8 digits, or MNIST from IDX files.

- ``load_digits``: the 1797 8×8 digits bundled with scikit-learn (UCI optical digits,
  Alpaydin & Kaynak 1998), pixel values 0..16 scaled to [0, 1], split by an explicit key.
- ``load_mnist(directory)``: MNIST (LeCun et al. 1998) read from the four standard IDX
  files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each optionally ``.gz``) that the user has on disk.

IDX format: a 4-byte magic ``0x00 0x00 <type> <ndim>``, ``ndim`` big-endian int32 sizes,
then the data in row-major order (type 0x08 = unsigned byte).
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_key, check_positive_float

# IDX type codes -> big-endian numpy dtypes.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


class Dataset(NamedTuple):
    """A classification data set: ``x_*`` ``(n, features)`` float32 in [0, 1], ``y_*`` int32."""

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array

    @property
    def num_classes(self) -> int:
        return int(max(int(jnp.max(self.y_train)), int(jnp.max(self.y_test)))) + 1


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in one IDX file (``.gz`` files are decompressed).

    Raises:
        ValueError: naming the file when the magic number, type code, sizes or length
            are not those of an IDX file.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except OSError as err:
        raise ValueError(f"cannot read IDX file {path}: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file: bad magic number {raw[:4]!r}")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02x}")
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: IDX header truncated or with 0 dimensions")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    if any(s < 0 for s in shape):
        raise ValueError(f"{path}: IDX header announces negative sizes {shape}")
    dtype = np.dtype(_IDX_TYPES[code])
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow for huge sizes
    body = raw[4 + 4 * ndim :]
    if len(body) != expected:
        raise ValueError(
            f"{path}: IDX header announces shape {shape} ({expected} bytes of data), "
            f"but the file holds {len(body)} bytes"
        )
    return np.frombuffer(body, dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory: Path, stem: str) -> Path:
    candidates = [directory / stem, directory / (stem + ".gz"),
                  directory / stem.replace("-idx", ".idx"),
                  directory / (stem.replace("-idx", ".idx") + ".gz")]
    for c in candidates:
        if c.exists():
            return c
    raise ValueError(
        f"`directory` {directory} has no MNIST file {stem!r} (or {stem}.gz); "
        f"expected the four files {sorted(MNIST_FILES.values())}"
    )


def load_mnist(directory: str | os.PathLike, *, flatten: bool = True) -> Dataset:
    """MNIST from the standard IDX files in ``directory`` (no download).

    Arguments:
        directory: a folder holding the four IDX files (plain or ``.gz``).
        flatten: return images as ``(n, rows·cols)`` (else ``(n, rows, cols)``).

    Returns:
        ``Dataset`` with pixels scaled to [0, 1] (float32) and int32 labels; the split is
        MNIST's own (60000 train, 10000 test for the real files).

    Raises:
        ValueError: a missing file, a malformed IDX file, images that are not 3-D unsigned
            bytes, labels that are not 1-D, or image and label counts that disagree.

    Example:
        >>> data = load_mnist("~/data/mnist")  # doctest: +SKIP
        >>> data.x_train.shape  # doctest: +SKIP
        (60000, 784)
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise ValueError(
            f"`directory` must be a folder holding the MNIST IDX files, got {directory}"
        )
    paths = {name: _find(directory, stem) for name, stem in MNIST_FILES.items()}
    arrays = {name: read_idx(path) for name, path in paths.items()}
    out = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        px, py = paths[f"x_{split}"], paths[f"y_{split}"]
        if x.ndim != 3 or x.dtype != np.uint8:
            raise ValueError(f"{px}: MNIST {split} images must be 3-D unsigned bytes, got "
                             f"{x.dtype} with shape {x.shape}")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{py}: MNIST {split} labels must be 1-D integers, got "
                             f"{y.dtype} with shape {y.shape}")
        if y.size and (y.min() < 0 or y.max() > np.iinfo(np.int32).max):
            raise ValueError(f"{py}: MNIST {split} labels must lie in [0, 2**31), got "
                             f"[{y.min()}, {y.max()}]")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{px}, {py}: MNIST {split}: {x.shape[0]} images but "
                             f"{y.shape[0]} labels")
        x = x.astype(np.float32) / 255.0
        out[f"x_{split}"] = jnp.asarray(x.reshape(x.shape[0], -1) if flatten else x)
        out[f"y_{split}"] = jnp.asarray(y.astype(np.int32))
    return Dataset(**out)


def train_test_split(
    x: Any, y: Any, *, key: jax.Array, test_fraction: float = 0.25
) -> Dataset:
    """Shuffle ``(x, y)`` with ``key`` and hold out ``round(test_fraction · n)`` examples."""
    check_key("key", key)
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(
            f"`x` and `y` must have a leading example axis, got shapes {x.shape} and {y.shape}"
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`x` and `y` must have the same length, got {x.shape[0]} and {y.shape[0]}"
        )
    test_fraction = check_positive_float("test_fraction", test_fraction)
    n = x.shape[0]
    n_test = round(test_fraction * n)
    if not 0 < n_test < n:
        raise ValueError(
            f"`test_fraction`={test_fraction} leaves no train or no test examples out of {n}"
        )
    perm = jax.random.permutation(key, n)
    test, train = perm[:n_test], perm[n_test:]
    return Dataset(x[train], y[train], x[test], y[test])


def load_digits(*, key: jax.Array, test_fraction: float = 0.25) -> Dataset:
    """scikit-learn's bundled 8×8 handwritten digits, scaled to [0, 1], split by ``key``.

    Returns:
        ``Dataset`` with ``x`` ``(n, 64)`` float32 and labels 0..9 (1797 examples).

    Example:
        >>> data = load_digits(key=jax.random.key(0))
        >>> data.x_train.shape
        (1348, 64)
    """
    check_key("key", key)
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as err:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("load_digits needs scikit-learn (pip install scikit-learn)") from err
    bunch = _sk_load_digits()
    x = np.asarray(bunch.data, np.float32) / 16.0
    y = np.asarray(bunch.target, np.int32)
    return train_test_split(x, y, key=key, test_fraction=test_fraction)
