"""The method flags of `eiex compress` and `eiex binarize`: each flag maps to its recipe table, a run
with them writes a folder whose report says what was done, and a bad value is one line on stderr,
a non-zero exit and no output folder. A 600-digit npz keeps the runs fast."""

import json

import numpy as np
import pytest

from eiex.cli import build_parser, main
from eiex.cli.compress import method_overrides
from eiex.sw.data import load_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_TOML = """
[train]
epochs = 3
[prune]
steps = 1
epochs = 1
sensitivity = [0.0]
[share]
epochs = 1
[quantize]
epochs = 1
[layers."1"]  # harsh: leaves hidden neurons without inputs
quality = 2.0
[layers."3"]
quality = 1.0
"""

MLP_PY = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 48), nn.ReLU(), nn.Linear(48, 24), nn.ReLU(), nn.Linear(24, 10))
"""


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """digits.npz (600 training, 200 test MNIST-5k digits drawn at random), tiny.toml and mlp.py (a
    784-48-24-10 MLP whose Linear layers are "1", "3" and "5")."""
    d = tmp_path_factory.mktemp("methods")
    ds = load_dataset("mnist5k")
    i = np.random.default_rng(0).permutation(len(ds.train.labels))[:600]
    j = np.random.default_rng(1).permutation(len(ds.test.labels))[:200]
    np.savez(d / "digits.npz", x_train=ds.train.images[i], y_train=ds.train.labels[i], x_test=ds.test.images[j],
             y_test=ds.test.labels[j])
    (d / "tiny.toml").write_text(TINY_TOML)
    (d / "mlp.py").write_text(MLP_PY)
    return d


def compress_args(ws, out, *flags):
    return ["compress", "--model", f"{ws / 'mlp.py'}:build", "--dataset", str(ws / "digits.npz"), "--recipe", str(ws / "tiny.toml"),
            *flags, "--out", str(out)]


def fails_in_one_line(capsys, argv, out, message):
    """``argv`` exits non-zero with one error line naming ``message`` and writes nothing at ``out``."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    lines = capsys.readouterr().err.strip().splitlines()  # progress lines, then the error
    assert code != 0
    assert message in lines[-1] and "error:" in lines[-1], lines
    assert sum("error:" in line for line in lines) == 1
    assert not out.exists()


# ---- flags to recipe tables ----------------------------------------------------------------------


def test_every_method_flag_sets_its_recipe_key():
    args = build_parser().parse_args(
        ["compress", "--model", "lenet300", "--quantize", "ternary", "--l1", "1e-5", "--remove-neurons",
         "--low-rank", "0.3", "--teacher", "dense", "--temperature", "2", "--alpha", "0.5", "--out", "x"])
    assert method_overrides(args) == {
        "quantize": {"method": "ternary"},
        "sparsity": {"l1": 1e-5, "remove_neurons": True},
        "lowrank": {"error": 0.3},
        "distill": {"teacher": "dense", "temperature": 2.0, "alpha": 0.5},
    }


def test_flags_left_out_keep_the_recipes_values():
    args = build_parser().parse_args(["compress", "--model", "lenet300", "--out", "x"])
    assert method_overrides(args) == {}
    args = build_parser().parse_args(["compress", "--model", "lenet300", "--quantize", "pow2", "--out", "x"])
    assert method_overrides(args) == {"quantize": {"method": "pow2"}}


@pytest.mark.parametrize("quantize", ["kmeans", "linear", "ternary", "pow2"])
def test_every_quantizer_is_a_choice(quantize):
    args = build_parser().parse_args(["compress", "--model", "lenet300", "--quantize", quantize, "--out", "x"])
    assert method_overrides(args) == {"quantize": {"method": quantize}}


# ---- runs ----------------------------------------------------------------------------------------


def test_compress_ternary_with_neuron_removal_writes_what_it_did(ws, tmp_path, capsys):
    out = tmp_path / "ternary"
    assert main(compress_args(ws, out, "--quantize", "ternary", "--l1", "1e-5", "--remove-neurons")) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["methods"]["quantize"] == "ternary" and report["methods"]["l1"] == 1e-5
    assert report["recipe"]["sparsity"] == {"l1": 1e-5, "remove_neurons": True}
    assert [layer["bits"] for layer in report["layers"]] == [2, 2, 2]
    arrays = np.load(out / "compressed.npz")
    removed = report["methods"]["neurons_removed"]
    assert sum(removed.values()) > 0
    assert arrays["w0"].shape == (48 - removed["1"], 784)
    assert arrays["w1"].shape == (24 - removed["3"], 48 - removed["1"])
    assert arrays["w2"].shape == (10, 24 - removed["3"])
    for l in range(3):
        assert len(np.unique(arrays[f"w{l}"][arrays[f"w{l}"] != 0])) <= 2
    # the shrunk folder exports to an EIE image
    assert main(["export", "eie", "--model", str(out), "--pes", "2", "--out", str(tmp_path / "image")]) == 0


# ---- refusals ------------------------------------------------------------------------------------


def test_a_bad_quantize_value_is_refused(ws, tmp_path, capsys):
    out = tmp_path / "out"
    fails_in_one_line(capsys, compress_args(ws, out, "--quantize", "binary"), out, "--quantize: invalid choice: 'binary'")


@pytest.mark.parametrize("flags, message", [
    (("--teacher", "dense", "--temperature", "0"), "[distill] temperature = 0.0 is out of range"),
    (("--teacher", "dense", "--alpha", "2"), "[distill] alpha = 2.0 is out of range"),
    (("--low-rank", "1"), "[lowrank] error = 1.0 is out of range"),
    (("--l1", "-1"), "[sparsity] l1 = -1.0 is out of range"),
    (("--teacher", "/nonexistent"), "teacher '/nonexistent' is neither dense nor float"),
])
def test_bad_method_values_are_refused_in_one_line(ws, tmp_path, capsys, flags, message):
    out = tmp_path / "out"
    fails_in_one_line(capsys, compress_args(ws, out, *flags), out, message)


def test_low_rank_of_a_cnn_is_refused_in_one_line(ws, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["compress", "--model", "lenet5", "--dataset", str(ws / "digits.npz"), "--recipe", str(ws / "tiny5.toml"),
            "--low-rank", "0.3", "--out", str(out)]
    (ws / "tiny5.toml").write_text("[train]\nepochs = 1\n")
    fails_in_one_line(capsys, argv, out, "low-rank factorization applies to fully connected networks; lenet5 has")


def binarize_args(ws, out, *flags):
    return ["binarize", "--model", "bnn-mlp", "--hidden", "16", "--threads", "1", "--dataset", str(ws / "digits.npz"),
            *flags, "--out", str(out)]


def test_binarize_with_its_float_twin_as_teacher_records_the_distillation(ws, tmp_path, capsys):
    out = tmp_path / "bnn"
    assert main(binarize_args(ws, out, "--teacher", "float", "--temperature", "2", "--alpha", "0.5")) == 0
    assert "distilling from float (T = 2, alpha = 0.5)" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["distill"] == {"teacher": "float", "temperature": 2.0, "alpha": 0.5}
    assert (out / "binary.npz").is_file()


def test_binarize_refuses_a_missing_teacher_in_one_line(ws, tmp_path, capsys):
    out = tmp_path / "out"
    fails_in_one_line(capsys, binarize_args(ws, out, "--teacher", "/nonexistent"), out,
                      "teacher '/nonexistent' is neither dense nor float")


def test_binarize_refuses_a_bad_temperature_in_one_line(ws, tmp_path, capsys):
    out = tmp_path / "out"
    fails_in_one_line(capsys, binarize_args(ws, out, "--teacher", "float", "--temperature", "-1"), out,
                      "distillation temperature must be a positive number, not -1.0")


def test_binarize_refuses_a_missing_teacher_before_training(ws, tmp_path, monkeypatch):
    from eiex.sw.binarize import pipeline

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the teacher")

    monkeypatch.setattr(pipeline, "fit", no_training)
    assert main(binarize_args(ws, tmp_path / "out", "--teacher", "/nonexistent")) == 1

