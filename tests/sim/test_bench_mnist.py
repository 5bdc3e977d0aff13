"""``eiex bench mnist``: Deep Compression on full MNIST, here with a one-epoch recipe (the real
run's figures are the bench's, in docs/benchmarks.md)."""

import json

import numpy as np

from eiex.sim.benchmarks import mnist
from eiex.sw.data import InputNorm, load_dataset
from eiex.sw.models import build_model
from eiex.sw.npz import read_npz
from eiex.sw.train import Tensors, accuracy

ONE_EPOCH = {"train": {"epochs": 1}, "prune": {"steps": 1, "epochs": 0, "sensitivity": [0.0, 0.5]}, "share": {"epochs": 0}}


def test_the_table_reports_the_compressed_models_own_figures(tmp_path):
    result = mnist.run_mnist(tmp_path, ("lenet300",), recipe=ONE_EPOCH, log=lambda *_: None)
    report = json.loads((tmp_path / "lenet300" / "report.json").read_text())
    assert report["dataset"] == "mnist" and report["test_split"] == "held-out, 10000 samples"
    assert result["lenet300_mnist_ratio"] == report["compression_ratio"]
    # the error is the compressed model's on the official 10,000 test digits, recomputed here
    data = load_dataset("mnist")
    model = build_model("lenet300")
    model.load_npz(read_npz(tmp_path / "lenet300" / "compressed.npz"), "compressed.npz")
    test = Tensors.of(data.test, InputNorm(**report["input"]))
    assert np.isclose(result["lenet300_mnist_error"], 1 - accuracy(model, test), atol=1e-6)
    assert result["lenet300_mnist_seconds"] > 0
    saved = json.loads((tmp_path / "mnist.json").read_text())
    assert saved["lenet300_mnist_error"] == result["lenet300_mnist_error"]
    assert "| lenet300 |" in (tmp_path / "mnist.md").read_text()
