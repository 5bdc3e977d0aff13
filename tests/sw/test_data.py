"""Dataset readers: the bundled MNIST-5k split and IDX files, with their failure modes."""

import gzip

import numpy as np
import pytest

from eiex.sw import data
from eiex.errors import EiexError


def test_mnist5k_split_is_every_fifth_row():
    path = data.mnist5k_path()
    with gzip.open(path, "rt") as f:
        rows = [next(f) for _ in range(11)]
    ds = data.load_dataset("mnist5k")
    assert len(ds.train) == 4000 and len(ds.test) == 1000
    for test_index, row in ((0, 0), (1, 5), (2, 10)):
        values = np.array(rows[row].split(","), dtype=int)
        assert np.array_equal(ds.test.images[test_index].ravel(), values[:-1])
        assert ds.test.labels[test_index] == values[-1]
    first_train = np.array(rows[1].split(","), dtype=int)
    assert np.array_equal(ds.train.images[0].ravel(), first_train[:-1])
    assert np.bincount(ds.test.labels).tolist() == [100] * 10
    assert ds.test.images.dtype == np.uint8 and ds.test.images.shape[1:] == (28, 28)


def test_input_norm_matches_its_formula():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    norm = data.InputNorm.fit(images)
    x = images / 255.0
    assert np.isclose(norm.mean, x.mean()) and np.isclose(norm.std, x.std())
    assert np.allclose(norm.apply(images), (x - x.mean()) / x.std(), atol=1e-6)


def write_idx(path, array, compress=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def make_idx_folder(tmp_path, compress=False):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for images, labels, n in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 6),
                              ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 4)):
        write_idx(tmp_path / (images + suffix), rng.integers(0, 256, (n, 28, 28)), compress)
        write_idx(tmp_path / (labels + suffix), rng.integers(0, 10, n), compress)
    return tmp_path


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    ds = data.load_dataset("mnist", make_idx_folder(tmp_path, compress))
    assert len(ds.train) == 6 and len(ds.test) == 4
    assert ds.train.images.shape == (6, 28, 28)


def test_idx_failures(tmp_path):
    with pytest.raises(EiexError, match="does not exist"):
        data.load_dataset("mnist", tmp_path / "nowhere")
    with pytest.raises(EiexError, match="not found"):
        data.load_dataset("mnist", tmp_path)
    folder = make_idx_folder(tmp_path)
    labels = folder / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1])
    with pytest.raises(EiexError, match="promises"):
        data.load_dataset("mnist", folder)
    labels.write_bytes(b"\x12\x34\x08\x01")
    with pytest.raises(EiexError, match="magic"):
        data.load_dataset("mnist", folder)


def test_dataset_arguments():
    with pytest.raises(EiexError, match="unknown dataset"):
        data.load_dataset("cifar")
    with pytest.raises(EiexError, match="--data-dir"):
        data.load_dataset("mnist")
    with pytest.raises(EiexError, match="only for --dataset mnist"):
        data.load_dataset("mnist5k", "somewhere")


def test_malformed_mnist5k_csv(tmp_path):
    bad = tmp_path / "bad.csv.gz"
    with gzip.open(bad, "wt") as f:
        f.write("1,2,3\n")
    with pytest.raises(EiexError, match="malformed"):
        data.read_mnist5k_csv(bad)
    bad.write_bytes(b"not gzip")
    with pytest.raises(EiexError, match="cannot read"):
        data.read_mnist5k_csv(bad)
