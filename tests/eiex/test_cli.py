"""`eiex compress` end to end: outputs recomputed independently, targets, and bad input."""

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

from eiex.cli import main
from eiex.hw.eie import golden as eie_golden
from eiex.sw.compress import plots
from eiex.sw.data import InputNorm, load_dataset
from eiex.sw.models import build_model
from eiex.sw.train import Tensors, accuracy

FAST_RECIPE = """
[train]
epochs = 3
[prune]
steps = 2
epochs = 1
sensitivity = [0.0, 0.5, 0.9]
[share]
epochs = 1
"""


@pytest.fixture(scope="module")
def fast_recipe(tmp_path_factory):
    path = tmp_path_factory.mktemp("recipe") / "fast.toml"
    path.write_text(FAST_RECIPE)
    return path


@pytest.fixture(scope="module")
def compressed_run(tmp_path_factory, fast_recipe):
    out = tmp_path_factory.mktemp("run") / "lenet300"
    assert main(["compress", "--model", "lenet300", "--recipe", str(fast_recipe), "--out", str(out)]) == 0
    return out


def held_out_accuracy(npz_path, norm):
    model = build_model("lenet300")
    with np.load(npz_path) as f:
        model.load_npz(dict(f), str(npz_path))
    ds = load_dataset("mnist5k")
    return accuracy(model, Tensors.of(ds.test, norm))


def recount_pq_bits(w, bits, index_bits):
    """Independent recount: walk every column, one entry per non-zero plus fillers."""
    rows, cols = w.shape
    entries = 0
    for j in range(cols):
        last = -1
        for r in np.flatnonzero(w[:, j]):
            entries += int(r - last - 1) // 2**index_bits + 1
            last = r
    pointer_width = max(1, entries.bit_length())
    return entries * (bits + index_bits) + (cols + 1) * pointer_width + (2**bits - 1) * 32 + rows * 32


def test_outputs_are_complete(compressed_run):
    names = {p.name for p in compressed_run.iterdir()}
    assert {"report.json", "report.md", "dense.npz", "compressed.npz", "sensitivity.csv",
            "sensitivity.png", "weights.png", "kept.png"} <= names
    report = json.loads((compressed_run / "report.json").read_text())
    for key in ("model", "dataset", "dense_accuracy", "compressed_accuracy", "compression_ratio",
                "dense_bytes", "compressed_bytes", "layers", "input"):
        assert key in report
    assert set(report["input"]) == {"pixel_scale", "mean", "std"}
    assert "| fc1 | 235,200 |" in (compressed_run / "report.md").read_text()
    with np.load(compressed_run / "compressed.npz") as f:
        assert sorted(f.files) == ["b0", "b1", "b2", "w0", "w1", "w2"]
        assert f["w0"].shape == (300, 784) and f["w0"].dtype == np.float32


def test_accuracies_recomputed_from_the_npz_files(compressed_run):
    report = json.loads((compressed_run / "report.json").read_text())
    norm = InputNorm(**report["input"])
    assert held_out_accuracy(compressed_run / "dense.npz", norm) == pytest.approx(report["dense_accuracy"])
    assert held_out_accuracy(compressed_run / "compressed.npz", norm) == pytest.approx(report["compressed_accuracy"])


def test_size_recounted_from_compressed_npz(compressed_run):
    report = json.loads((compressed_run / "report.json").read_text())
    total = 0
    with np.load(compressed_run / "compressed.npz") as f:
        for l, layer in enumerate(report["layers"]):
            w = f[f"w{l}"]
            values = np.unique(w[w != 0])
            assert len(values) <= 2 ** layer["bits"] - 1
            assert layer["kept"] == np.count_nonzero(w)
            total += recount_pq_bits(w, layer["bits"], layer["index_bits"])
    assert report["compressed_bytes_pq"] == math.ceil(total / 8)
    assert report["dense_bytes"] == 266_610 * 4
    assert report["compression_ratio"] == pytest.approx(report["dense_bytes"] / report["compressed_bytes"])


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "eiex", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc, code, text):
    assert proc.returncode == code
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--model", "vgg"], "invalid choice: 'vgg' (choose from lenet300, lenet5 or FILE.py:FUNCTION)"),
    (["--model", "lenet300", "--dataset", "cifar"], "invalid choice: 'cifar' (choose from mnist5k, mnist, fashion"),
    (["--model", "lenet300", "--dataset", "cifar.csv"], "invalid choice: 'cifar.csv'"),
    (["--model", "lenet300", "--seed", "-1"], "seed must be an integer from 0 to 2**32 - 1"),
])
def test_bad_command_line_is_one_line(args, message):
    assert_one_line_error(run_cli("compress", *args, "--out", "x"), 2, message)


def test_filter_pruning_end_to_end(tmp_path, fast_recipe):
    recipe = tmp_path / "filters.toml"
    recipe.write_text(fast_recipe.read_text() + "[layers.conv2]\nfilters = 0.2\n")
    out = tmp_path / "lenet5"
    assert main(["compress", "--model", "lenet5", "--recipe", str(recipe), "--out", str(out)]) == 0
    with np.load(out / "compressed.npz") as f:
        conv2, bias2, fc1 = f["w1"], f["b1"], f["w2"]
    removed = np.flatnonzero(~conv2.reshape(50, -1).any(axis=1))
    assert len(removed) == 10
    assert np.all(bias2[removed] == 0)
    assert not fc1.reshape(500, 50, 16)[:, removed].any()  # the channels nobody reads any more


def test_existing_output_is_refused_then_replaced_with_force(tmp_path, fast_recipe, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["compress", "--model", "lenet300", "--recipe", str(fast_recipe), "--out", str(out)]) == 1
    assert "already exists (use --force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert main(["compress", "--model", "lenet300", "--recipe", str(fast_recipe), "--out", str(out), "--force"]) == 0
    assert not (out / "keep.txt").exists() and (out / "report.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folders left


@pytest.mark.parametrize("corrupt, message", [
    (lambda a: a["w1"].__setitem__((3, 4), np.nan), "w1 contains NaN or infinite values"),
    (lambda a: a.__setitem__("w0", a["w0"][:, :100]), "w0 has shape (300, 100)"),
    (lambda a: a.pop("b2"), "lacks b2"),
])
def test_bad_dense_weights(tmp_path, compressed_run, fast_recipe, corrupt, message):
    with np.load(compressed_run / "dense.npz") as f:
        arrays = dict(f)
    corrupt(arrays)
    np.savez(tmp_path / "w.npz", **arrays)
    proc = run_cli("compress", "--model", "lenet300", "--weights", str(tmp_path / "w.npz"),
                   "--recipe", str(fast_recipe), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, 1, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--dataset", "/nonexistent.npz"], "dataset /nonexistent.npz not found"),
    (["--dataset", "mnist", "--data-dir", "/nonexistent"], "does not exist"),
    (["--recipe", "/nonexistent.toml"], "recipe file /nonexistent.toml not found"),
    (["--weights", "/nonexistent.npz"], "weights file /nonexistent.npz not found"),
])
def test_bad_arguments_fail_in_one_line(tmp_path, args, message, capsys):
    assert main(["compress", "--model", "lenet300", "--out", str(tmp_path / "o"), *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o").exists()


def test_failed_run_leaves_no_half_written_folder(tmp_path, fast_recipe, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plots, "sensitivity_curves", broken)
    out = tmp_path / "out"
    assert main(["compress", "--model", "lenet300", "--recipe", str(fast_recipe), "--out", str(out)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_eie_balance_bench(compressed_run, tmp_path, capsys):
    out = tmp_path / "balance"
    assert main(["bench", "eie-balance", "--model", str(compressed_run), "--samples", "2", "--rtl-samples", "1",
                 "--out", str(out)]) == 0
    result = json.loads((out / "balance.json").read_text())
    rows = result["rows"]
    assert [c["balance"] for c in result["rtl_checks"]] == [False, True]
    assert all(c["rtl_compute_cycles"] == c["model"] for c in result["rtl_checks"])
    assert "RTL spot check: 2 runs" in capsys.readouterr().out
    assert {r["sweep"] for r in rows} == {"queue_depth", "pes"} and (out / "balance.png").exists()
    for r in rows:
        assert 0 < r["efficiency"] <= 1 and r["compute_cycles"] >= r["ideal_cycles"]
    one_pe = [r for r in rows if r["sweep"] == "pes" and r["pes"] == 1]
    assert all(r["efficiency"] > 0.9 for r in one_pe)  # a single PE is never out of balance
    assert main(["bench", "eie-balance", "--model", str(compressed_run), "--samples", "0", "--out", str(out),
                 "--force"]) == 1
    assert "--samples must be between 1 and" in capsys.readouterr().err


def test_verilog_from_engine_parameters(tmp_path, capsys):
    out = tmp_path / "eie.v"
    args = ["verilog", "eie", "--pes", "2", "--max-width", "16", "--spmat-depth", "32", "--ptr-depth", "32",
            "--bias-depth", "16", "-o", str(out)]
    assert main(args) == 0
    text = out.read_text()
    assert "module eie_engine" in text and "input__payload" in text
    assert main(["verilog", "eie", "--pes", "0", "-o", str(tmp_path / "bad.v")]) == 1
    assert "n_pe must be an integer from 1 to 4096, not 0" in capsys.readouterr().err
    assert not (tmp_path / "bad.v").exists()


def test_export_simulate_and_generate_verilog(compressed_run, tmp_path):
    from eiex.hw.eie import golden
    from eiex.sw.images.eie.files import load_image

    image_dir = tmp_path / "img"
    assert main(["export", "eie", "--model", str(compressed_run), "--pes", "3", "--formats", "hex,mif",
                 "--huffman", "12", "--balance", "--out", str(image_dir)]) == 0
    assert (image_dir / "pe2.spmat.mif").exists() and (image_dir / "pe2.spmat_huff.hex").exists()
    assert oct(image_dir.stat().st_mode)[-3:] != "700"
    image = load_image(image_dir)
    assert image.engine.n_pe == 3 and set(image.row_order) == {"fc1", "fc2"}
    x = golden.quantize_input(image, load_dataset("mnist5k").test.images[:1].reshape(1, -1))
    np.save(tmp_path / "x.npy", x)
    assert main(["sim", "eie", "--images", str(image_dir), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy"), "--stats", str(tmp_path / "s.json")]) == 0
    assert np.array_equal(np.load(tmp_path / "y.npy"), golden.run(image, x))
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["total"]["compute_cycles"] >= stats["total"]["ideal_cycles"] > 0
    assert main(["verilog", "eie", "--images", str(image_dir), "--preload", "-o", str(tmp_path / "e.v")]) == 0
    assert "module eie_engine" in (tmp_path / "e.v").read_text()


@pytest.mark.parametrize("args, message", [
    (["export", "eie", "--npz", "/nonexistent.npz", "--out", "{tmp}/o"], "weights file /nonexistent.npz not found"),
    (["export", "eie", "--model", "/nonexistent", "--out", "{tmp}/o"], "model folder /nonexistent does not exist"),
    (["sim", "eie", "--images", "/nonexistent", "--input", "x.npy", "--out", "{tmp}/y.npy"], "not an EIE image"),
])
def test_eie_commands_fail_in_one_line(tmp_path, args, message, capsys):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert list(tmp_path.iterdir()) == []


def test_sim_rejects_inputs_of_the_wrong_shape(compressed_run, tmp_path, capsys):
    image_dir = tmp_path / "img"
    assert main(["export", "eie", "--model", str(compressed_run), "--pes", "2", "--out", str(image_dir)]) == 0
    np.save(tmp_path / "x.npy", np.zeros((2, 10), dtype=np.int64))
    assert main(["sim", "eie", "--images", str(image_dir), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy")]) == 1
    assert "inputs must be shaped (samples, 784), not (2, 10)" in capsys.readouterr().err
    assert not (tmp_path / "y.npy").exists()


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog is not installed")
def test_sim_eie_on_icarus_equals_amaranth(compressed_run, tmp_path):
    image_dir = tmp_path / "img"
    assert main(["export", "eie", "--model", str(compressed_run), "--pes", "2", "--out", str(image_dir)]) == 0
    from eiex.sw.images.eie.files import load_image

    x = eie_golden.quantize_input(load_image(image_dir), load_dataset("mnist5k").test.images[:1].reshape(1, -1))
    np.save(tmp_path / "x.npy", x)
    runs = {}
    for sim in ("amaranth", "icarus"):
        assert main(["sim", "eie", "--images", str(image_dir), "--input", str(tmp_path / "x.npy"), "--sim", sim,
                     "--out", str(tmp_path / f"{sim}.npy"), "--stats", str(tmp_path / f"{sim}.json")]) == 0
        runs[sim] = np.load(tmp_path / f"{sim}.npy"), json.loads((tmp_path / f"{sim}.json").read_text())
    assert np.array_equal(runs["amaranth"][0], runs["icarus"][0])
    assert runs["amaranth"][1]["samples"] == runs["icarus"][1]["samples"]
