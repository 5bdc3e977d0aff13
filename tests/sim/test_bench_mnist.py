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


def test_the_bnn_row_runs_the_exported_image_on_the_simulator_bit_exactly(tmp_path):
    from eiex.sw.binarize.thresholds import run_folded
    from eiex.sw.images.xnor.files import load_image
    from eiex.sw.train import TrainConfig

    tiny = {"hidden": (32, 32), "threads": 1, "binary_schedule": (TrainConfig(epochs=1, lr=1e-2, batch_size=100),),
            "float_schedule": (TrainConfig(epochs=1, lr=1e-3, batch_size=100),), "dropout": (0.2, 0.2)}
    result = mnist.run_mnist(tmp_path, ("bnn-lfc",), binarize_options={**tiny, "samples": 30, "simulator": "icarus"},
                             log=lambda *_: None)
    row = result["mnist_rows"][0]
    report = json.loads((tmp_path / "bnn-lfc" / "report.json").read_text())
    assert report["dataset"] == "mnist" and report["layers"] == [784, 32, 32, 10]
    assert report["training"]["dropout"] == [0.2, 0.2]
    # the accuracy is the folded network's on all 10,000 test digits, recomputed from binary.npz
    data = load_dataset("mnist")
    arrays = dict(np.load(tmp_path / "bnn-lfc" / "binary.npz"))
    folded = run_folded(arrays, data.test.images).argmax(1)
    assert result["bnn_lfc_mnist_accuracy"] == float(np.mean(folded == data.test.labels))
    # the engine's accuracy comes from the exported image's outputs on the first 30 digits
    image = load_image(tmp_path / "bnn-lfc-image")
    assert [layer.out_features for layer in image.layers] == [32, 32, 10]
    assert row["engine_digits"] == 30 and row["bit_exact"]
    assert row["engine_accuracy"] == float(np.mean(folded[:30] == data.test.labels[:30]))
    assert result["bnn_lfc_mnist_seconds"] > 0 and result["bnn_lfc_mnist_verilator_seconds"] > 0
    assert "| bnn-lfc |" in (tmp_path / "mnist.md").read_text()
