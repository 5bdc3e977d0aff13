"""``--mac index`` and ``--linear-scale pow2`` on the command line: a tiny ``compress --quantize linear
--linear-scale pow2`` writes weights that ``export eie --mac index`` turns into identity codebooks
(read back from the image's files as the spec lays them out), which ``sim eie --mac index`` runs as
the golden model does; a k-means folder, a bad flag and a non-identity image are refused in one line
with nothing written. A 600-digit npz and a 784-32-10 MLP keep the runs fast."""

import json
from fractions import Fraction

import numpy as np
import pytest

import eiex
from eiex.cli import build_parser, main
from eiex.cli.compress import method_overrides
from eiex.hw.eie import golden
from eiex.sw.data import load_dataset
from eiex.sw.images.eie.files import load_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_TOML = """
[train]
epochs = 2
[prune]
steps = 1
epochs = 1
sensitivity = [0.0]
[share]
epochs = 1
[quantize]
epochs = 1
[layers."1"]
quality = 1.0
bits = 5
[layers."3"]
quality = 1.0
bits = 4
"""

MLP_PY = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
"""

MESSAGE = "--mac index takes each weight's index as the weight, so a layer's codebook must be the identity; layer fc"


def signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """digits.npz (600 training, 200 test MNIST-5k digits drawn at random), tiny.toml, mlp.py, and the
    two compress runs: ``linear`` (--quantize linear --linear-scale pow2) and ``kmeans``."""
    d = tmp_path_factory.mktemp("index")
    ds = load_dataset("mnist5k")
    i = np.random.default_rng(0).permutation(len(ds.train.labels))[:600]
    j = np.random.default_rng(1).permutation(len(ds.test.labels))[:200]
    np.savez(d / "digits.npz", x_train=ds.train.images[i], y_train=ds.train.labels[i], x_test=ds.test.images[j],
             y_test=ds.test.labels[j])
    (d / "tiny.toml").write_text(TINY_TOML)
    (d / "mlp.py").write_text(MLP_PY)
    assert main(compress_args(d, d / "linear", "--quantize", "linear", "--linear-scale", "pow2")) == 0
    assert main(compress_args(d, d / "kmeans")) == 0
    return d


def compress_args(ws, out, *flags):
    return ["compress", "--model", f"{ws / 'mlp.py'}:build", "--dataset", str(ws / "digits.npz"),
            "--recipe", str(ws / "tiny.toml"), *flags, "--out", str(out)]


def fails_in_one_line(capsys, argv, out, message):
    """``argv`` exits non-zero with one error line naming ``message``, no traceback, nothing at ``out``."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    lines = capsys.readouterr().err.strip().splitlines()  # progress lines, then the error
    assert code != 0
    assert message in lines[-1] and "error:" in lines[-1], lines
    assert sum("error:" in line for line in lines) == 1 and not any("Traceback" in line for line in lines)
    assert not out.exists()


# ---- flags ---------------------------------------------------------------------------------------


def test_linear_scale_flag_sets_the_recipe_key():
    parse = lambda *flags: method_overrides(build_parser().parse_args(["compress", "--model", "lenet300", *flags,
                                                                       "--out", "x"]))
    assert parse("--quantize", "linear", "--linear-scale", "pow2") == {"quantize": {"method": "linear", "scale": "pow2"}}
    assert parse("--linear-scale", "real") == {"quantize": {"scale": "real"}}
    assert parse("--quantize", "linear") == {"quantize": {"method": "linear"}}


def test_mac_index_is_a_choice_of_every_engine_command():
    parser = build_parser()
    for argv in (["export", "eie", "--npz", "w.npz", "--out", "o"], ["verilog", "eie", "-o", "e.v"],
                 ["sim", "eie", "--images", "i", "--input", "x.npy", "--out", "y.npy"],
                 ["build", "eie", "--part", "ecp5-85k", "--out", "b"]):
        assert parser.parse_args([*argv, "--mac", "index"]).mac == "index", argv


# ---- compress, export, sim -----------------------------------------------------------------------


def test_compress_with_linear_scale_pow2_records_it(ws):
    report = json.loads((ws / "linear" / "report.json").read_text())
    assert report["recipe"]["quantize"]["method"] == "linear" and report["recipe"]["quantize"]["scale"] == "pow2"
    assert [layer["bits"] for layer in report["layers"]] == [5, 4]
    arrays = np.load(ws / "linear" / "compressed.npz")
    for l, bits in enumerate((5, 4)):
        values = [Fraction(float(x)) for x in np.unique(arrays[f"w{l}"])]
        f = max(v.denominator.bit_length() - 1 for v in values)  # every denominator is a power of two
        q = [v * 2**f for v in values]
        # at the finest grid that holds them, the weights are integers within the symmetric levels
        # (real-scaled float32 weights would need about 24 bits)
        assert all(x.denominator == 1 and abs(x) <= 2 ** (bits - 1) - 1 for x in q), l
        assert len(q) > 2 ** (bits - 2)


def test_export_with_mac_index_writes_identity_codebooks(ws, tmp_path, capsys):
    out = tmp_path / "image"
    capsys.readouterr()
    assert main(["export", "eie", "--model", str(ws / "linear"), "--pes", "2", "--mac", "index",
                 "--out", str(out)]) == 0
    assert "identity codebooks: the code is the weight (--mac index)" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    engine = manifest["engine"]
    assert engine["idx_bits"] == 5  # the widest layer's bits
    (codebook,) = [m for m in manifest["memories"] if m["kind"] == "codebook"]
    words = [int(line, 16) for line in (out / codebook["files"]["hex"]).read_text().split()]
    size, wb = 1 << engine["idx_bits"], engine["weight_bits"]
    assert len(words) >= len(manifest["layers"]) * size
    arrays = np.load(ws / "linear" / "compressed.npz")
    image = load_image(out)
    assert not image.row_order  # no --balance: rows in the folder's order
    for l, layer in enumerate(manifest["layers"]):
        entries = words[layer["codebook_base"]:layer["codebook_base"] + size]
        # spec section 4: the unsigned reading of signed(v), weight_bits wide
        assert entries == [signed(v, engine["idx_bits"]) % (1 << wb) for v in range(size)], layer["name"]
        # the codes are the weights' integers at weight_frac: decoding gives the folder's weights exactly
        decoded = golden.decode_weights(image, l).astype(np.float64)
        assert np.array_equal(np.ldexp(decoded, -layer["weight_frac"]), arrays[f"w{l}"].astype(np.float64))
    # the API's export is the same image
    api = eiex.export_eie(ws / "linear", 2, mac="index")
    assert api.engine == image.engine and api.layers == image.layers
    assert np.array_equal(api.codebook, image.codebook)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for a, b in zip(api.pes, image.pes)
               for k in ("v", "z", "ptr", "bias"))


def test_sim_with_mac_index_equals_the_golden_model(ws, tmp_path, capsys):
    image_dir = tmp_path / "image"
    assert main(["export", "eie", "--model", str(ws / "linear"), "--pes", "2", "--mac", "index",
                 "--out", str(image_dir)]) == 0
    image = load_image(image_dir)
    digits = np.load(ws / "digits.npz")
    x = golden.quantize_input(image, digits["x_test"][:2].reshape(2, -1))
    np.save(tmp_path / "x.npy", x)
    capsys.readouterr()
    assert main(["sim", "eie", "--images", str(image_dir), "--input", str(tmp_path / "x.npy"), "--mac", "index",
                 "--out", str(tmp_path / "y.npy")]) == 0
    assert "golden model agrees" in capsys.readouterr().out
    assert np.array_equal(np.load(tmp_path / "y.npy"), golden.run(image, x))


# ---- refusals ------------------------------------------------------------------------------------


def test_compress_refuses_linear_scale_without_linear(ws, tmp_path, capsys):
    out = tmp_path / "out"
    fails_in_one_line(capsys, compress_args(ws, out, "--linear-scale", "pow2"), out,
                      "[quantize] scale applies to method = \"linear\", not 'kmeans'")
    fails_in_one_line(capsys, compress_args(ws, out, "--quantize", "linear", "--linear-scale", "log"), out,
                      "--linear-scale: invalid choice: 'log'")


def test_export_mac_index_with_idx_bits_refuses_a_kmeans_folder(ws, tmp_path, capsys):
    out = tmp_path / "image"
    fails_in_one_line(capsys, ["export", "eie", "--model", str(ws / "kmeans"), "--pes", "2", "--mac", "index",
                               "--idx-bits", "5", "--out", str(out)], out,
                      "--mac index takes the index as the weight; these weights are integers")


def test_export_mac_index_refuses_a_kmeans_folder_naming_the_layer(ws, tmp_path, capsys):
    """Without --idx-bits: still the exporter's refusal (the layer, --mac index, how to get such
    weights), not a range check of the idx_bits the k-means values would need."""
    out = tmp_path / "image"
    fails_in_one_line(capsys, ["export", "eie", "--model", str(ws / "kmeans"), "--pes", "2", "--mac", "index",
                               "--out", str(out)], out, "--mac index")


def test_verilog_and_sim_refuse_a_non_identity_image(ws, tmp_path, capsys):
    plain = tmp_path / "plain"
    assert main(["export", "eie", "--model", str(ws / "kmeans"), "--pes", "2", "--out", str(plain)]) == 0
    fails_in_one_line(capsys, ["verilog", "eie", "--images", str(plain), "--mac", "index", "-o", str(tmp_path / "e.v")],
                      tmp_path / "e.v", MESSAGE)
    image = load_image(plain)
    np.save(tmp_path / "x.npy", np.zeros((1, image.inputs), dtype=np.int64))
    fails_in_one_line(capsys, ["sim", "eie", "--images", str(plain), "--input", str(tmp_path / "x.npy"),
                               "--mac", "index", "--out", str(tmp_path / "y.npy")], tmp_path / "y.npy", MESSAGE)


def test_verilog_refuses_idx_bits_above_weight_bits(tmp_path, capsys):
    out = tmp_path / "e.v"
    fails_in_one_line(capsys, ["verilog", "eie", "--pes", "2", "--mac", "index", "--idx-bits", "9", "--weight-bits",
                               "8", "-o", str(out)], out,
                      "mac index takes a code as the weight, so idx_bits (9) must not exceed weight_bits (8)")
