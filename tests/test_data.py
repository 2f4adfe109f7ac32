"""hwgen.data: the bundled digits and MNIST IDX files."""

import gzip
import struct

import numpy as np
import pytest

from hwgen.data import DataError, Dataset, digits, load_dataset, load_mnist_idx, mnist


def idx_bytes(array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d)
                                                        for d in array.shape)
    return header + array.tobytes()


def write(path, data):
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def idx_pair(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    return (write(tmp_path / "img", idx_bytes(images)), write(tmp_path / "lbl", idx_bytes(labels)),
            images, labels)


# --- errors first -------------------------------------------------------------------------

def test_missing_idx_file(tmp_path, idx_pair):
    p = str(tmp_path / "none")
    with pytest.raises(DataError, match=rf"^IDX file '{p}' does not exist$"):
        load_mnist_idx(p, idx_pair[1])


def test_not_an_idx_file(tmp_path, idx_pair):
    p = write(tmp_path / "text", b"hello world")
    with pytest.raises(DataError, match=rf"^File '{p}' is not an IDX file of unsigned bytes$"):
        load_mnist_idx(p, idx_pair[1])


def test_truncated_idx_file(tmp_path, idx_pair):
    p = write(tmp_path / "short", idx_bytes(np.zeros((5, 4, 3)))[:-7])
    with pytest.raises(DataError, match=rf"^IDX file '{p}' holds 53 data bytes, not the 60 its "
                                        rf"header \(5, 4, 3\) announces$"):
        load_mnist_idx(p, idx_pair[1])


def test_truncated_header(tmp_path, idx_pair):
    p = write(tmp_path / "hdr", bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataError, match=rf"^IDX file '{p}' has a truncated header$"):
        load_mnist_idx(p, idx_pair[1])


def test_label_count_mismatch(tmp_path, idx_pair):
    p = write(tmp_path / "lbl4", idx_bytes([1, 2, 3, 4]))
    with pytest.raises(DataError, match=rf"^IDX file '{p}' holds 4 labels for 5 images$"):
        load_mnist_idx(idx_pair[0], p)


def test_images_and_labels_swapped(idx_pair):
    with pytest.raises(DataError, match=r"^IDX file '.*lbl' must hold images \(3 dimensions\), "
                                        r"not an array of shape \(5,\)$"):
        load_mnist_idx(idx_pair[1], idx_pair[0])


def test_unknown_dataset():
    with pytest.raises(DataError, match=r"^Data set must be one of digits, digits28, "
                                        r"mnist:FOLDER, not 'cifar'$"):
        load_dataset("cifar")


def test_bad_image_size():
    with pytest.raises(DataError, match=r"^Image size must be a positive integer, not 0$"):
        digits(0)


# --- behaviour ---------------------------------------------------------------------------

def test_read_idx(idx_pair):
    img, lbl, images, labels = idx_pair
    x, y = load_mnist_idx(img, lbl)
    assert x.shape == (5, 1, 4, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(np.rint(x[:, 0] * 255).astype(np.uint8), images)
    np.testing.assert_array_equal(y, labels)
    assert y.dtype == np.int64


def test_read_gzip_idx(tmp_path, idx_pair):
    _, lbl, images, _ = idx_pair
    p = tmp_path / "img.gz"
    p.write_bytes(gzip.compress(idx_bytes(images)))
    x, _ = load_mnist_idx(str(p), lbl)
    np.testing.assert_array_equal(np.rint(x[:, 0] * 255).astype(np.uint8), images)


def test_mnist_folder(tmp_path):
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 6), ("t10k", 3)):
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(
            idx_bytes(rng.integers(0, 256, (n, 28, 28))))
        (tmp_path / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(rng.integers(0, 10, n))))
    ds = load_dataset(f"mnist:{tmp_path}")
    assert ds.x_train.shape == (6, 1, 28, 28) and ds.x_test.shape == (3, 1, 28, 28)
    assert ds.name == f"mnist:{tmp_path}"
    assert mnist(tmp_path).input_shape == (1, 28, 28)


def test_digits():
    ds = digits()
    assert isinstance(ds, Dataset) and ds.name == "digits"
    assert ds.x_train.shape == (1347, 1, 8, 8) and ds.x_test.shape == (450, 1, 8, 8)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert ds.num_classes == 10 and ds.input_shape == (1, 8, 8)
    # Stratified: every class is in the test split in proportion.
    counts = np.bincount(ds.y_test)
    assert counts.min() >= 43 and counts.max() <= 47
    # Pixel values are k/16: exactly representable in any format with F >= 4.
    np.testing.assert_array_equal(ds.x_test * 16, np.rint(ds.x_test * 16))


def test_digits_split_is_fixed():
    from sklearn.datasets import load_digits
    ds = digits()
    raw = load_digits()
    # The first test image is the same one on every run and machine.
    match = np.flatnonzero((raw.images.reshape(len(raw.images), -1) / 16.0 ==
                            ds.x_test[0].reshape(-1)).all(axis=1))
    assert len(match) >= 1 and raw.target[match[0]] == ds.y_test[0]
    np.testing.assert_array_equal(digits.__wrapped__().y_test, ds.y_test)


def test_dataset_is_read_only():
    ds = digits()
    with pytest.raises(ValueError):
        ds.x_train[0, 0, 0, 0] = 1.0


def test_digits_resized():
    ds = load_dataset("digits28")
    assert ds.x_train.shape == (1347, 1, 28, 28) and ds.name == "digits28"
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    np.testing.assert_array_equal(ds.y_test, digits().y_test)
