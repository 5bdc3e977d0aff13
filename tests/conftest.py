import functools

import pytest
from hypothesis import settings

from eiex.sw.data import InputNorm, load_dataset
from eiex.sw.train import Tensors

# The same examples on every run (CI gates on them); `--hypothesis-profile explore` draws new ones.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("ci")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small models train fastest on one torch thread (as `make test`'s workers have); two threads
    beside other work spin and can take several times as long. The count is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mnist_small():
    """500 training and 200 held-out MNIST-5k digits, normalised."""
    ds = load_dataset("mnist5k")
    norm = InputNorm.fit(ds.train.images)
    train, test = Tensors.of(ds.train, norm), Tensors.of(ds.test, norm)
    return Tensors(train.x[:500], train.y[:500]), Tensors(test.x[:200], test.y[:200])


@pytest.fixture(scope="session")
def binarized_bnn(tmp_path_factory):
    """`eiex binarize --model bnn-mlp` (784-512-512-10 XNOR-Net, seed 0, one thread): the output folder."""
    from eiex.cli import main

    out = tmp_path_factory.mktemp("binarize") / "bnn"
    # one torch thread, as each xdist worker has: two would spin against the other worker's tests
    assert main(["binarize", "--model", "bnn-mlp", "--threads", "1", "--out", str(out)]) == 0
    return out


@functools.cache
def _compressed(model):
    from eiex.sw.compress.pipeline import compress

    return compress(model, seed=0, log=lambda message: None)


@pytest.fixture(scope="session")
def compressed():
    """``compressed(model)``: the built-in recipe's result on MNIST-5k, seed 0, computed once per session."""
    return _compressed


@pytest.fixture(scope="session")
def compressed_lenet300(tmp_path_factory):
    """The compressed LeNet-300-100 written as an `eiex compress` output folder."""
    from eiex.sw.compress.pipeline import write_outputs

    out = tmp_path_factory.mktemp("compress") / "lenet300"
    out.mkdir()
    write_outputs(_compressed("lenet300"), out)
    return out


# ---- running on pytest-xdist workers (`make test`: -n 2 --dist loadgroup) ----------------------

#: the session's trained models, by the fixtures that hold them: each group of tests runs on one
#: worker, so each model is trained once, and the two groups run side by side
MODEL_GROUPS = {"binarized_bnn": "trained-bnn", "compressed": "trained-lenets", "compressed_lenet300": "trained-lenets"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups into the node ids
def pytest_collection_modifyitems(config, items):
    """Every test file is one xdist group (its module fixtures are built once); a test that uses a
    trained model joins that model's group instead."""
    for item in items:
        groups = {MODEL_GROUPS[f] for f in getattr(item, "fixturenames", ()) if f in MODEL_GROUPS}
        item.add_marker(pytest.mark.xdist_group(groups.pop() if len(groups) == 1 else item.path.name))


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # an xdist worker: two on two cores, one torch thread each
        import torch

        torch.set_num_threads(1)
