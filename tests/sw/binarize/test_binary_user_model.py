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
from eiex.sw.binarize.layers import MODEL_HIDDEN, BinaryActivation, BinaryConv2d, BinaryInput, BinaryLinear
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


# ---- users' binarized CNNs

def cnn(mode="bnn", activation=True, pool_after_activation=True, dropout=0.1, channels=(4, 6), pool=2):
    """[Flatten-free] BinaryInput, conv blocks with a pool after the last, Flatten, then the MLP part."""
    layers = [BinaryInput(100)]
    c_in = 1
    for i, c in enumerate(channels):
        layers += [BinaryConv2d(c_in, c, 3, mode), nn.BatchNorm2d(c)]
        block = [BinaryActivation()] if activation else []
        if i == len(channels) - 1:  # the pool after the activation, or after the batch norm (no activation)
            block = block + [nn.MaxPool2d(pool)] if pool_after_activation else [nn.MaxPool2d(pool)]
        layers += block + ([nn.Dropout(dropout)] if dropout else [])
        c_in = c
    side = (28 - 2 * len(channels)) // pool
    layers += [nn.Flatten(), BinaryLinear(side * side * c_in, 16, mode), nn.BatchNorm1d(16), BinaryActivation(),
               BinaryLinear(16, 10, mode), nn.BatchNorm1d(10)]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("mode, activation, pool_after_activation, dropout",
                         [("bnn", True, True, 0.1), ("xnor", False, False, 0.0), ("bnn", True, False, 0.2)])
def test_the_bnn_cnv_copy_computes_what_the_users_cnn_computes(mode, activation, pool_after_activation, dropout):
    torch.manual_seed(0)
    model = cnn(mode, activation, pool_after_activation, dropout)
    rng = np.random.default_rng(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.weight.copy_(torch.from_numpy(rng.normal(0, 1, n)))  # negative gammas flip rows
                m.bias.copy_(torch.from_numpy(rng.normal(0, 1, n)))
                m.running_mean.copy_(torch.from_numpy(rng.normal(0, 3, n)))
                m.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 4, n)))
    structure = binary_structure(model, "m", (1, 28, 28))
    assert structure.describe() == ["28x28x1", "4C3", "6C3", "MP2", "FC16", "FC10"] and structure.mode == mode
    bnn = structure.to_bnn_cnv()
    x = torch.from_numpy(rng.integers(0, 256, (32, 1, 28, 28)).astype(np.float32))
    model.eval()
    with torch.no_grad():
        assert torch.equal(bnn(x), model(x))
    # and the folded network predicts what both do
    from eiex.sw.binarize.thresholds import fold_model, run_folded

    scores = run_folded(fold_model(bnn), x.numpy().astype(np.uint8))
    with torch.no_grad():
        assert np.array_equal(scores.argmax(1), model(x).argmax(1).numpy())


def with_module(model, index, module):
    model[index] = module
    return model


CNN_REFUSALS = [
    (lambda: with_module(cnn(), 7, nn.MaxPool2d(3, stride=2)),
     r"`7` is MaxPool2d\(kernel_size=3, stride=2.*\); the XNOR image pools non-overlapping p x p windows"),
    (lambda: with_module(cnn(), 7, nn.MaxPool2d(2, padding=1)), "pools non-overlapping p x p windows"),
    (lambda: with_module(cnn(), 7, nn.AvgPool2d(2)), "`7` is AvgPool2d; a binarized model is built from"),
    (lambda: with_module(cnn(), 1, nn.Conv2d(1, 4, 3)), "`1` is Conv2d; a binarized model is built from"),
    (lambda: nn.Sequential(BinaryInput(), BinaryConv2d(1, 4, 3), nn.MaxPool2d(2), nn.BatchNorm2d(4), nn.Flatten(),
                           BinaryLinear(676, 10), nn.BatchNorm1d(10)), r"\(pool\) cannot follow a conv layer"),
    (lambda: nn.Sequential(BinaryInput(), BinaryConv2d(1, 4, 3), nn.BatchNorm1d(4), nn.Flatten(),
                           BinaryLinear(2704, 10), nn.BatchNorm1d(10)), r"\(norm\) cannot follow a conv layer"),
    (lambda: nn.Sequential(BinaryInput(), BinaryConv2d(1, 4, 3), nn.BatchNorm2d(4), BinaryLinear(2704, 10),
                           nn.BatchNorm1d(10)), r"\(linear\) cannot follow a norm2d layer"),
    (lambda: nn.Sequential(BinaryInput(), nn.Flatten(), BinaryLinear(784, 16), nn.BatchNorm1d(16),
                           BinaryConv2d(1, 4, 3), nn.BatchNorm2d(4)), r"\(conv\) cannot follow a norm layer"),
    (lambda: nn.Sequential(BinaryInput(), BinaryConv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Flatten(),
                           BinaryLinear(2704, 10), nn.BatchNorm1d(10)),
     r"BinaryConv2d\(2, 4, 3\) takes 2 channels but its input map has 1"),
    (lambda: nn.Sequential(BinaryInput(), BinaryConv2d(1, 4, 3), nn.BatchNorm2d(5), nn.Flatten(),
                           BinaryLinear(2704, 10), nn.BatchNorm1d(10)), "the BatchNorm2d after BinaryConv2d"),
    (lambda: nn.Sequential(BinaryInput(), BinaryConv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(),
                           BinaryLinear(2700, 10), nn.BatchNorm1d(10)),
     r"BinaryLinear 0 takes 2700 inputs but the flattened map gives 2704 \(4 x 26 x 26"),
    (lambda: nn.Sequential(BinaryInput(), BinaryConv2d(1, 4, 30), nn.BatchNorm2d(4), nn.Flatten(),
                           BinaryLinear(4, 10), nn.BatchNorm1d(10)), r"conv 30x30 \(step 1\) does not fit its 28 x 28"),
    (lambda: nn.Sequential(BinaryInput(), BinaryConv2d(1, 4, 3, "bnn"), nn.BatchNorm2d(4), nn.Flatten(),
                           BinaryLinear(2704, 10, "xnor"), nn.BatchNorm1d(10)), "one mode of bnn, xnor"),
]


@pytest.mark.parametrize("build, message", CNN_REFUSALS)
def test_cnns_that_do_not_fold_are_refused_in_one_line(build, message):
    with pytest.raises(EiexError, match=message) as e:
        binary_structure(build(), "m", (1, 28, 28))
    assert "\n" not in str(e.value)


def test_a_users_cnn_on_flat_data_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "flat.npz", x_train=rng.integers(0, 256, (40, 784), dtype=np.uint8),
             y_train=rng.integers(0, 10, 40), x_test=rng.integers(0, 256, (10, 784), dtype=np.uint8),
             y_test=rng.integers(0, 10, 10))
    with pytest.raises(EiexError, match="has conv layers, which read images"):
        binarize(cnn(), str(tmp_path / "flat.npz"), **TINY)


def test_a_users_cnn_trains_folds_and_runs_as_a_version_2_image(small_digits, tmp_path):
    source = tmp_path / "cnn.py"
    source.write_text("import eiex\nfrom torch import nn\n\ndef build():\n"
                      "    return nn.Sequential(eiex.BinaryInput(128),\n"
                      "        eiex.BinaryConv2d(1, 4, 3, 'bnn'), nn.BatchNorm2d(4), eiex.BinaryActivation(),\n"
                      "        eiex.BinaryConv2d(4, 4, 3, 'bnn'), nn.BatchNorm2d(4), eiex.BinaryActivation(),\n"
                      "        nn.MaxPool2d(2), nn.Dropout(0.1), nn.Flatten(),\n"
                      "        eiex.BinaryLinear(576, 10, 'bnn'), nn.BatchNorm1d(10))\n")
    result = binarize(f"{source}:build", str(small_digits), seed=0, **TINY)
    r = result.report
    assert r["layers"] == ["28x28x1", "4C3", "4C3", "MP2", "FC10"] and r["mode"] == "bnn"
    assert r["agreement"] == 1.0 and r["binary_accuracy"] > 0.3
    image = image_from_folded(result.arrays)
    assert image.version == 2 and [layer.kind for layer in image.layers] == ["conv", "conv", "pool", "output"]
    test = load_dataset(str(small_digits)).test
    assert np.mean(golden.predict(image, test.images.reshape(200, -1)) == test.labels) == \
        pytest.approx(r["binary_accuracy"])


def test_binary_conv2d_is_exported_at_the_top_level():
    assert eiex.BinaryConv2d is BinaryConv2d and "BinaryConv2d" in eiex.__all__
