import pytest

from eiex.sw.data import InputNorm, load_dataset
from eiex.sw.train import Tensors


@pytest.fixture(scope="session")
def mnist_small():
    """500 training and 200 held-out MNIST-5k digits, normalised."""
    ds = load_dataset("mnist5k")
    norm = InputNorm.fit(ds.train.images)
    train, test = Tensors.of(ds.train, norm), Tensors.of(ds.test, norm)
    return Tensors(train.x[:500], train.y[:500]), Tensors(test.x[:200], test.y[:200])


@pytest.fixture(scope="session")
def binarized_bnn(tmp_path_factory):
    """`eiex binarize --model bnn-mlp` with its defaults (784-512-512-10 XNOR-Net, seed 0): the output folder."""
    from eiex.cli import main

    out = tmp_path_factory.mktemp("binarize") / "bnn"
    assert main(["binarize", "--model", "bnn-mlp", "--out", str(out)]) == 0
    return out
