"""A user's binarized MLP from eiex's layers: checked, copied into the foldable BnnMlp, trained,
folded; and the thresholds of finn-hlslib's ``acc > T`` convention."""

import json

import numpy as np
import pytest
import torch
from torch import nn

import eiex
from eiex.cli import main
from eiex.errors import EiexError
from eiex.hw.xnor import golden
from eiex.sw.binarize.layers import MODEL_HIDDEN, BinaryActivation, BinaryInput, BinaryLinear
from eiex.sw.binarize.pipeline import binarize, build_bnn
from eiex.sw.binarize.user_model import binary_structure
from eiex.sw.data import load_dataset
from eiex.sw.images.xnor.export import image_from_folded
from eiex.sw.train import TrainConfig

TINY = dict(binary_schedule=(TrainConfig(epochs=1, lr=1e-2, batch_size=100),),
            float_schedule=(TrainConfig(epochs=1, lr=1e-3, batch_size=100),), threads=1, log=lambda *_: None)


def mlp(mode="bnn", sizes=(784, 48, 24, 10), activation=True, dropout=0.1):
    layers = [nn.Flatten(), BinaryInput(100)]
    for l, (k, m) in enumerate(zip(sizes, sizes[1:])):
        layers += [BinaryLinear(k, m, mode=mode), nn.BatchNorm1d(m)]
        if l < len(sizes) - 2:
            layers += [BinaryActivation()] if activation else []
            layers += [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(*layers)


def randomize_norms(model, rng):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                n = m.num_features
                m.weight.copy_(torch.from_numpy(rng.normal(0, 1, n)))  # negative gammas flip rows
                m.bias.copy_(torch.from_numpy(rng.normal(0, 1, n)))
                m.running_mean.copy_(torch.from_numpy(rng.normal(0, 3, n)))
                m.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 4, n)))


@pytest.mark.parametrize("mode, activation, dropout", [("bnn", True, 0.1), ("xnor", False, 0.0)])
def test_the_bnn_mlp_copy_computes_what_the_users_model_computes(mode, activation, dropout):
    torch.manual_seed(0)
    model = mlp(mode, activation=activation, dropout=dropout)
    randomize_norms(model, np.random.default_rng(1))
    structure = binary_structure(model, "m")
    assert structure.sizes == (784, 48, 24, 10) and structure.mode == mode and structure.input_threshold == 100
    bnn = structure.to_bnn_mlp()
    x = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (64, 28, 28)).astype(np.float32))
    model.eval()
    with torch.no_grad():
        assert torch.equal(bnn(x), model(x))


@pytest.mark.parametrize("build, message", [
    (lambda: nn.Sequential(BinaryLinear(784, 10), nn.BatchNorm1d(10)), "starts with eiex.BinaryInput"),
    (lambda: nn.Sequential(BinaryInput(), nn.Linear(784, 10), nn.BatchNorm1d(10)),
     r"`1` is Linear; a binarized model is built from eiex's binarized layers"),
    (lambda: nn.Sequential(BinaryInput(), BinaryLinear(784, 10), nn.ReLU()), "`2` is ReLU"),
    (lambda: nn.Sequential(BinaryInput(), BinaryLinear(784, 20), BinaryLinear(20, 10), nn.BatchNorm1d(10)),
     "cannot follow a linear layer"),
    (lambda: nn.Sequential(BinaryInput(), BinaryLinear(784, 10)), "ends with BinaryLinear -> BatchNorm1d"),
    (lambda: mlp(sizes=(784, 20, 10), mode="bnn").append(BinaryActivation()), "ends with BinaryLinear -> BatchNorm1d"),
    (lambda: nn.Sequential(BinaryInput(), BinaryLinear(784, 20, "bnn"), nn.BatchNorm1d(20),
                           BinaryLinear(20, 10, "xnor"), nn.BatchNorm1d(10)), "one mode of bnn, xnor"),
    (lambda: mlp(mode="binaryconnect"), "one mode of bnn, xnor"),
    (lambda: nn.Sequential(BinaryInput(), BinaryLinear(784, 20), nn.BatchNorm1d(20), BinaryLinear(30, 10),
                           nn.BatchNorm1d(10)), "BinaryLinear 1 takes 30 inputs but layer 0 gives 20"),
    (lambda: nn.Sequential(BinaryInput(), BinaryLinear(784, 20), nn.BatchNorm1d(20, affine=False),
                           BinaryLinear(20, 10), nn.BatchNorm1d(10)), "affine=True"),
])
def test_models_that_do_not_fold_are_refused_by_name(build, message):
    with pytest.raises(EiexError, match=message):
        binary_structure(build(), "m")


def test_a_data_dependent_forward_does_not_trace():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = mlp(sizes=(784, 10))

        def forward(self, x):
            return self.body(x) if x.sum() > 0 else -self.body(x)

    with pytest.raises(EiexError, match="does not trace with torch.fx"):
        binary_structure(Branchy(), "m")


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory):
    data = load_dataset("mnist5k")
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x_train=data.train.images[:600], y_train=data.train.labels[:600],
             x_test=data.test.images[:200], y_test=data.test.labels[:200])
    return path


def test_a_users_bnn_trains_folds_and_agrees_with_its_folded_network(small_digits, tmp_path):
    source = tmp_path / "bnn.py"
    source.write_text("import eiex\nfrom torch import nn\n\ndef build():\n"
                      "    return nn.Sequential(nn.Flatten(), eiex.BinaryInput(128), eiex.BinaryLinear(784, 64, 'bnn'),\n"
                      "                         nn.BatchNorm1d(64), eiex.BinaryActivation(), nn.Dropout(0.1),\n"
                      "                         eiex.BinaryLinear(64, 10, 'bnn'), nn.BatchNorm1d(10))\n")
    result = binarize(f"{source}:build", str(small_digits), seed=0, **TINY)
    r = result.report
    assert r["model"] == f"{source}:build" and r["layers"] == [784, 64, 10] and r["mode"] == "bnn"
    assert r["agreement"] == 1.0 and r["input"]["threshold"] == 128
    assert r["binary_accuracy"] > 0.5  # one epoch on 600 digits, far above chance (10%)
    # the same folded network through eiex's own image and golden model
    image = image_from_folded(result.arrays)
    test = load_dataset(str(small_digits)).test
    scores = golden.scores(image, golden.run(image, golden.binarize_input(image, test.images.reshape(200, -1))))
    assert np.mean(scores.argmax(1) == test.labels) == pytest.approx(r["binary_accuracy"])
    saved = result.save(tmp_path / "out")
    assert json.loads((saved / "report.json").read_text())["model"] == r["model"]


def test_the_cli_refuses_a_model_that_is_not_binarized(small_digits, tmp_path, capsys):
    source = tmp_path / "float.py"
    source.write_text("from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))\n")
    assert main(["binarize", "--model", f"{source}:build", "--dataset", str(small_digits),
                 "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "`1` is Linear; a binarized model is built from" in err[0]
    assert not (tmp_path / "out").exists()


def test_binarized_layers_are_exported_at_the_top_level():
    assert eiex.BinaryLinear is BinaryLinear and eiex.BinaryInput is BinaryInput
    assert eiex.BinaryActivation is BinaryActivation


def test_bnn_lfc_is_finns_lfc_size():
    assert MODEL_HIDDEN["bnn-lfc"] == (1024, 1024, 1024)
    assert build_bnn("bnn-lfc").sizes == (784, 1024, 1024, 1024, 10)


def test_pixels_are_required(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "f.npz", x_train=rng.normal(size=(20, 16)), y_train=rng.integers(0, 2, 20),
             x_test=rng.normal(size=(10, 16)), y_test=rng.integers(0, 2, 10))
    with pytest.raises(EiexError, match="not uint8 pixels"):
        binarize("bnn-mlp", str(tmp_path / "f.npz"), **TINY)


def folded_arrays(rng, sizes=(12, 9, 7, 3)):
    arrays = {"scale": rng.uniform(0.5, 2, sizes[-1]), "bias": rng.normal(size=sizes[-1]), "input_threshold": 0.5}
    for l, (k, m) in enumerate(zip(sizes, sizes[1:])):
        arrays[f"w{l}"] = rng.choice([-1, 1], size=(m, k)).astype(np.int8)
        if l < len(sizes) - 2:
            arrays[f"t{l}"] = rng.integers(-2, k + 3, m)
    return arrays


def test_finn_thresholds_fire_on_greater_than():
    rng = np.random.default_rng(3)
    arrays = folded_arrays(rng)
    gt = image_from_folded(arrays, fire="gt")
    x = rng.integers(0, 2, (50, 12))
    # brute force of finn-hlslib's rule: a hidden row fires iff its matching-bit count exceeds T
    bits = x
    for l in range(2):
        w = (arrays[f"w{l}"] > 0).astype(int)
        acc = (bits[:, None, :] == w[None]).sum(axis=2)
        bits = (acc > arrays[f"t{l}"]).astype(int)
    acc = (bits[:, None, :] == (arrays["w2"] > 0).astype(int)[None]).sum(axis=2)
    assert np.array_equal(golden.run(gt, x), 2 * acc - 7)
    ge = image_from_folded({**arrays, "t0": arrays["t0"] + 1, "t1": arrays["t1"] + 1})
    assert np.array_equal(golden.run(ge, x), golden.run(gt, x))
    with pytest.raises(EiexError, match="fire must be one of ge, gt"):
        image_from_folded(arrays, fire="lt")
