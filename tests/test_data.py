"""Digits and MNIST loaders: IDX files written by the test, the bundled 8×8 digits."""

from __future__ import annotations

import gzip
import struct

import jax
import numpy as np
import pytest

from jaxgrad.train import Dataset, load_digits, load_mnist, read_idx, train_test_split


def _idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + np.asarray(array, dtype).tobytes()


def _write_mnist(directory, n_train=6, n_test=4, rows=3, cols=2, gz=False):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, a in arrays.items():
        data = _idx_bytes(a)
        if gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_reads_idx_files(tmp_path, gz):
    arrays = _write_mnist(tmp_path, gz=gz)
    data = load_mnist(tmp_path)
    assert isinstance(data, Dataset)
    assert data.x_train.shape == (6, 6) and data.x_test.shape == (4, 6)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    np.testing.assert_allclose(
        data.x_train, arrays["train-images-idx3-ubyte"].reshape(6, 6) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.y_test, arrays["t10k-labels-idx1-ubyte"])
    images = load_mnist(tmp_path, flatten=False)
    assert images.x_test.shape == (4, 3, 2)


def test_read_idx_other_types(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    (tmp_path / "a.idx").write_bytes(_idx_bytes(a, 0x0C))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)
    f = np.linspace(-1, 1, 6, dtype=np.float32)
    (tmp_path / "f.idx").write_bytes(_idx_bytes(f, 0x0D))
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), f)


def test_malformed_idx_files_are_named(tmp_path):
    good = _idx_bytes(np.zeros((2, 2, 2), np.uint8))
    cases = {
        "magic": b"\x01\x00" + good[2:],
        "type": good[:2] + b"\x42" + good[3:],
        "truncated": good[:-1],
        "header": good[:6],
    }
    messages = {"magic": "bad magic number", "type": "unknown IDX type code",
                "truncated": "announces shape", "header": "header truncated"}
    for name, data in cases.items():
        path = tmp_path / f"{name}.idx"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=messages[name]) as info:
            read_idx(path)
        assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="cannot read IDX file"):
        read_idx(tmp_path / "missing.idx")


def test_bad_mnist_directories(tmp_path):
    with pytest.raises(ValueError, match="`directory` must be a folder"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no MNIST file 'train-images-idx3-ubyte'"):
        load_mnist(tmp_path)
    _write_mnist(tmp_path)
    # labels that disagree with the images
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(ValueError, match="6 images but 5 labels"):
        load_mnist(tmp_path)
    # images that are not 3-D
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(6, np.uint8)))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((6, 4), np.uint8)))
    with pytest.raises(ValueError, match="images must be 3-D unsigned bytes"):
        load_mnist(tmp_path)


def test_load_digits_split_by_key():
    a = load_digits(key=jax.random.key(0))
    b = load_digits(key=jax.random.key(0))
    c = load_digits(key=jax.random.key(1))
    assert a.x_train.shape == (1348, 64) and a.x_test.shape == (449, 64)
    assert a.num_classes == 10
    assert float(a.x_train.min()) == 0.0 and float(a.x_train.max()) == 1.0
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, c.y_test)
    # The split is a partition of the 1797 examples: class counts add up.
    counts = np.bincount(np.concatenate([a.y_train, a.y_test]), minlength=10)
    assert counts.sum() == 1797 and counts.min() >= 170


def test_train_test_split_bad_input():
    x, y = np.zeros((10, 2)), np.zeros(10)
    with pytest.raises(ValueError, match="`x` and `y` must have the same length"):
        train_test_split(x, y[:9], key=jax.random.key(0))
    with pytest.raises(ValueError, match="`test_fraction`"):
        train_test_split(x, y, key=jax.random.key(0), test_fraction=0.0)
    with pytest.raises(ValueError, match="leaves no train or no test"):
        train_test_split(x, y, key=jax.random.key(0), test_fraction=0.99)
    d = train_test_split(x, y, key=jax.random.key(0), test_fraction=0.3)
    assert d.x_test.shape == (3, 2) and d.x_train.shape == (7, 2)


def test_idx_headers_with_negative_or_huge_sizes_and_float_labels(tmp_path):
    """Negative sizes used to reach numpy ("can only specify one unknown dimension"), the
    byte count of huge sizes overflowed int64, and float labels were truncated silently."""
    bad = tmp_path / "neg.idx"
    bad.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3i", -2, -3, 3) + bytes(18))
    with pytest.raises(ValueError, match=r"neg.idx: IDX header announces negative sizes"):
        read_idx(bad)
    huge = tmp_path / "huge.idx"
    huge.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3i", 2**31 - 1, 2**31 - 1, 3))
    with pytest.raises(ValueError, match=rf"huge.idx.*\({3 * (2**31 - 1) ** 2} bytes"):
        read_idx(huge)
    _write_mnist(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(_idx_bytes(np.full(6, 0.5, np.float32), 0x0D))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte: MNIST train labels must "
                                         "be 1-D integers, got float32"):
        load_mnist(tmp_path)
    for key in (0, None, "a", np.zeros(3, np.uint32)):
        with pytest.raises(TypeError, match="`key` must be"):
            train_test_split(np.zeros((4, 1)), np.zeros(4), key=key)
