"""Data sets: the scikit-learn digits (bundled, no download) and MNIST IDX files from disk.

Every data set is a :class:`Dataset` of float32 images ``(N, C, H, W)`` scaled to
``[0, 1]`` and int64 labels, with a fixed train/test split, so accuracy figures are
reproducible from run to run and machine to machine.
"""

from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass

import numpy as np

from .errors import HwgenError

__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "digits",
    "load_dataset",
    "load_mnist_idx",
    "load_npz",
    "mnist",
]


class DataError(HwgenError, ValueError):
    """A data file is missing, corrupt or not in the expected format."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image data set with a fixed train/test split.

    Members
    -------
    x_train, x_test : numpy.ndarray
        float32 images ``(N, C, H, W)`` in ``[0, 1]`` (read-only).
    y_train, y_test : numpy.ndarray
        int64 class labels ``(N,)`` (read-only).
    name : str
        The name :func:`load_dataset` accepts to rebuild this data set.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str

    def __post_init__(self):
        for field_name, dtype in (("x_train", np.float32), ("y_train", np.int64),
                                  ("x_test", np.float32), ("y_test", np.int64)):
            a = np.array(getattr(self, field_name), dtype=dtype)
            a.setflags(write=False)
            object.__setattr__(self, field_name, a)
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise DataError(f"Data set {self.name!r} has different numbers of images and "
                            f"labels")

    @property
    def input_shape(self):
        """Shape of one image, ``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self):
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def _resize(images, size):
    """Bilinear resize of ``(N, H, W)`` images to ``size × size`` (for 28×28 models)."""
    import torch
    import torch.nn.functional as F
    t = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[:, 0] \
        .numpy()


@functools.lru_cache(maxsize=4)
def digits(image_size=8):
    """The scikit-learn digits set (1797 images of 8×8 pixels, 10 classes).

    Parameters
    ----------
    image_size : int
        8 for the original images; another size resizes them bilinearly (28 gives an
        MNIST-sized stand-in that needs no download, for LeNet-5).

    Returns
    -------
    Dataset
        Images ``(N, 1, image_size, image_size)`` scaled to ``[0, 1]``; a stratified
        75/25 split with ``random_state=0``. Named ``"digits"`` (or ``"digits28"`` …).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"Image size must be a positive integer, not {image_size!r}")
    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    if image_size != 8:
        images = np.clip(_resize(images, image_size), 0.0, 1.0)
    x = images[:, None].astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y)
    name = "digits" if image_size == 8 else f"digits{image_size}"
    return Dataset(x_train, y_train, x_test, y_test, name)


def _read_idx(path):
    path = os.fspath(path)
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"IDX file {path!r} does not exist") from None
    except (OSError, EOFError) as e:
        raise DataError(f"IDX file {path!r} cannot be read ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"File {path!r} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"IDX file {path!r} has a truncated header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(dims))
    if len(raw) != header + count:
        raise DataError(f"IDX file {path!r} holds {len(raw) - header} data bytes, not the "
                        f"{count} its header {dims!r} announces")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_mnist_idx(images_path, labels_path):
    """Read one MNIST-style pair of IDX files (optionally gzip-compressed).

    Returns
    -------
    images : numpy.ndarray
        float32 ``(N, 1, H, W)`` scaled to ``[0, 1]``.
    labels : numpy.ndarray
        int64 ``(N,)``.

    Raises
    ------
    DataError
        When a file is missing, truncated, not IDX, or the two files disagree.
    """
    images = _read_idx(images_path)
    labels = _read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"IDX file {os.fspath(images_path)!r} must hold images (3 dimensions), "
                        f"not an array of shape {images.shape!r}")
    if labels.ndim != 1:
        raise DataError(f"IDX file {os.fspath(labels_path)!r} must hold labels (1 dimension), "
                        f"not an array of shape {labels.shape!r}")
    if len(images) != len(labels):
        raise DataError(f"IDX file {os.fspath(labels_path)!r} holds {len(labels)} labels for "
                        f"{len(images)} images")
    return (images[:, None].astype(np.float32) / 255.0), labels.astype(np.int64)


def _find(folder, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    return os.path.join(folder, stem)


def mnist(folder):
    """MNIST from the four standard IDX files in ``folder`` (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-…``; ``.gz`` accepted). hwgen never downloads."""
    folder = os.fspath(folder)
    x_train, y_train = load_mnist_idx(_find(folder, "train-images-idx3-ubyte"),
                                      _find(folder, "train-labels-idx1-ubyte"))
    x_test, y_test = load_mnist_idx(_find(folder, "t10k-images-idx3-ubyte"),
                                    _find(folder, "t10k-labels-idx1-ubyte"))
    return Dataset(x_train, y_train, x_test, y_test, f"mnist:{folder}")


DATASETS = ("digits", "digits28", "mnist:FOLDER")


def load_dataset(name):
    """The data set called ``name``: ``"digits"``, ``"digitsN"`` (resized to N×N) or
    ``"mnist:FOLDER"``."""
    if not isinstance(name, str):
        raise DataError(f"Data set name must be a string, not {name!r}")
    if name.startswith("mnist:"):
        return mnist(name[len("mnist:"):])
    if name == "digits":
        return digits()
    if name.startswith("digits") and name[len("digits"):].isdigit():
        return digits(int(name[len("digits"):]))
    raise DataError(f"Data set must be one of {', '.join(DATASETS)}, not {name!r}")


def _npz_array(f, path, key, shape, kind):
    a = f[key]
    where = f"Data file {path!r} array {key!r}"
    if kind == "x":
        want = f"(N, {', '.join(map(str, shape))})"
        if a.dtype.kind not in "fiu":
            raise DataError(f"{where} must hold numbers of shape {want}, not dtype "
                            f"{str(a.dtype)!r}")
        if a.ndim != len(shape) + 1 or tuple(a.shape[1:]) != tuple(shape) or len(a) == 0:
            raise DataError(f"{where} must have shape {want} with N >= 1, not "
                            f"{tuple(a.shape)!r}")
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise DataError(f"{where} holds {int((~np.isfinite(a)).sum())} non-finite values")
        return a
    if a.dtype.kind not in "iu" or a.ndim != 1:
        raise DataError(f"{where} must hold integer labels of shape (N,), not "
                        f"{tuple(a.shape)!r} of dtype {str(a.dtype)!r}")
    return a.astype(np.int64)


def load_npz(path, input_shape):
    """A user's data from a NumPy ``.npz`` file (read with ``allow_pickle=False``).

    Arrays: ``x_train`` (or ``x_calib``) ``(N, *input_shape)``, the calibration inputs;
    ``x_test`` and ``y_test`` (both or neither), the test set; ``y_train`` optional. Inputs
    are numbers (stored as float32), labels integers.

    Returns
    -------
    (numpy.ndarray, Dataset or None)
        The calibration inputs, and a :class:`Dataset` named ``npz:PATH`` when the file
        holds a test set.
    """
    path = os.fspath(path)
    shape = tuple(input_shape)
    try:
        f = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"Data file {path!r} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"Data file {path!r} is a folder, not a .npz file") from None
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"Data file {path!r} is not a NumPy .npz file ({e})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise DataError(f"Data file {path!r} is a single array, not a .npz file of named "
                        f"arrays")
    try:
        with f:
            keys = set(f.files)
            xkey = "x_train" if "x_train" in keys else "x_calib" if "x_calib" in keys else None
            if xkey is None:
                raise DataError(f"Data file {path!r} has no array 'x_train' or 'x_calib' "
                                f"(calibration inputs of shape "
                                f"(N, {', '.join(map(str, shape))}))")
            x = _npz_array(f, path, xkey, shape, "x")
            if ("x_test" in keys) != ("y_test" in keys):
                missing = "y_test" if "x_test" in keys else "x_test"
                raise DataError(f"Data file {path!r} has no array {missing!r}; a test set "
                                f"needs both 'x_test' and 'y_test'")
            y = None
            if "y_train" in keys:
                y = _npz_array(f, path, "y_train", shape, "y")
                if len(y) != len(x):
                    raise DataError(f"Data file {path!r} array 'y_train' holds {len(y)} "
                                    f"labels for {len(x)} inputs")
            if "x_test" not in keys:
                return x, None
            xt = _npz_array(f, path, "x_test", shape, "x")
            yt = _npz_array(f, path, "y_test", shape, "y")
            if len(yt) != len(xt):
                raise DataError(f"Data file {path!r} array 'y_test' holds {len(yt)} labels "
                                f"for {len(xt)} inputs")
    except DataError:
        raise
    except ValueError as e:  # a pickled (object) array refused by allow_pickle=False
        raise DataError(f"Data file {path!r} cannot be read ({e})") from None
    y_train = y if y is not None else np.full(len(x), -1, dtype=np.int64)
    return x, Dataset(x, y_train, xt, yt, f"npz:{path}")
