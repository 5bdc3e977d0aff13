"""A user's model end to end on Verilator: an MLP with batch norm and dropout, written in its own
Python file, compressed on a few hundred MNIST-5k digits, exported to an EIE image and run on the
engine's Verilog, bit-exact against the golden model, with the accuracy S.json records."""

import json

import numpy as np
import pytest

from eiex.cli import main
from eiex.hw.eie import golden
from eiex.sim.tools.lint import have_verilator
from eiex.sw.data import load_dataset
from eiex.sw.images.eie.export import float_forward, layers_from_npz
from eiex.sw.images.eie.files import load_image
from eiex.sw.npz import read_npz

MODEL_PY = """
from torch import nn


def build():
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(),
        nn.Linear(32, 10),
    )
"""

RECIPE = """
[train]
epochs = 8
lr = 3e-3
batch_size = 32
[prune]
steps = 1
epochs = 2
batch_size = 32
sensitivity = [0.0, 0.5]
[share]
epochs = 1
batch_size = 32
[layers."1"]
quality = 1.0
[layers."5"]
quality = 1.0
[layers."8"]
quality = 0.8
"""

DIGITS = 40



@pytest.mark.skipif(not have_verilator(), reason="verilator is not installed")
def test_users_mlp_with_batch_norm_on_verilator_equals_the_golden_model(tmp_path, capsys, one_torch_thread):
    ds = load_dataset("mnist5k")
    (tmp_path / "model.py").write_text(MODEL_PY)
    (tmp_path / "recipe.toml").write_text(RECIPE)
    # every tenth digit (the files are sorted by class, so all ten classes): 400 to train, 100 held out
    np.savez(tmp_path / "data.npz", x_train=ds.train.images[::10], y_train=ds.train.labels[::10],
             x_test=ds.test.images[::10], y_test=ds.test.labels[::10])
    pick = slice(5, None, len(ds.test) // DIGITS)  # other held-out digits, none of them in data.npz
    raw, labels = ds.test.images[pick], ds.test.labels[pick]
    assert len(raw) == DIGITS and len(set(labels.tolist())) == 10
    np.save(tmp_path / "x.npy", raw)
    np.save(tmp_path / "labels.npy", labels)
    model, image_dir = tmp_path / "compressed", tmp_path / "img"

    assert main(["compress", "--model", f"{tmp_path}/model.py:build", "--dataset", str(tmp_path / "data.npz"),
                 "--recipe", str(tmp_path / "recipe.toml"), "--out", str(model)]) == 0
    report = json.loads((model / "report.json").read_text())
    assert report["folded_batch_norms"] == ["2", "6"]
    assert "batchnorm" not in [e["op"] for e in report["architecture"]]
    assert main(["export", "eie", "--model", str(model), "--out", str(image_dir)]) == 0
    assert main(["sim", "eie", "--images", str(image_dir), "--sim", "verilator", "--raw-input", str(tmp_path / "x.npy"),
                 "--labels", str(tmp_path / "labels.npy"), "--out", str(tmp_path / "y.npy"),
                 "--stats", str(tmp_path / "s.json")]) == 0

    image = load_image(image_dir)
    expected = golden.run(image, golden.quantize_input(image, raw.reshape(DIGITS, -1)))
    outputs = np.load(tmp_path / "y.npy")
    assert outputs.shape == (DIGITS, 10)
    np.testing.assert_array_equal(outputs, expected)
    stats = json.loads((tmp_path / "s.json").read_text())
    fixed_accuracy = float(np.mean(expected.argmax(axis=1) == labels))
    assert stats["accuracy"] == fixed_accuracy
    assert all(s["compute_cycles"] >= s["ideal_cycles"] for s in stats["samples"])
    # the fixed-point engine predicts what the float compressed model predicts, but for a digit or two
    layers = layers_from_npz(read_npz(model / "compressed.npz") | {"relu": np.array([True, True, False])}, "model")
    float_scores = float_forward(layers, raw.reshape(DIGITS, -1), report["input"])
    float_accuracy = float(np.mean(float_scores.argmax(axis=1) == labels))
    with capsys.disabled():
        print(f"\nuser's MLP (batch norm folded), EIE 8 PEs, {DIGITS} held-out digits: float {float_accuracy:.1%}, "
              f"golden fixed point and RTL on Verilator {fixed_accuracy:.1%}")
    assert np.mean(float_scores.argmax(axis=1) == expected.argmax(axis=1)) >= 0.95
    assert fixed_accuracy >= 0.6
