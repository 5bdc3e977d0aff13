"""The XNOR flow on the command line: binarize, export xnor, verilog xnor, sim xnor, and bad input."""

import json
import re

import numpy as np
import pytest

from eiex.cli import main
from eiex.hw.xnor import golden
from eiex.hw.xnor.cycles import pipeline_cycles, steady_interval
from eiex.hw.xnor.memory_map import engine_for
from eiex.sw.images.folder import MANIFEST
from eiex.sw.images.xnor.files import load_image


def tiny_folded(seed=0, sizes=(13, 6, 5)):
    """A random folded network shaped like binary.npz: padding in every fold for the foldings below."""
    rng = np.random.default_rng(seed)
    arrays = {"scale": rng.uniform(0.1, 1.0, sizes[-1]), "bias": rng.normal(size=sizes[-1]), "input_threshold": 0.5}
    for l, (k, m) in enumerate(zip(sizes, sizes[1:])):
        arrays[f"w{l}"] = rng.choice([-1, 1], size=(m, k)).astype(np.int8)
        if l < len(sizes) - 2:
            arrays[f"t{l}"] = rng.integers(-2, k + 4, size=m)  # beyond [0, K + 1] on purpose: clamped
    return arrays


@pytest.fixture
def tiny_npz(tmp_path):
    path = tmp_path / "tiny.npz"
    np.savez(path, **tiny_folded())
    return path


def one_line_error(capsys, text):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and text in err[0], err
    assert "Traceback" not in err[0]


def test_binarize_writes_report_and_folded_arrays(binarized_bnn):
    report = json.loads((binarized_bnn / "report.json").read_text())
    for key in ("model", "dataset", "mode", "seed", "threads", "layers", "float_accuracy", "binary_accuracy",
                "torch_binary_accuracy", "agreement", "seconds"):
        assert key in report
    assert report["layers"] == [784, 512, 512, 10] and report["threads"] == 1  # the fixture's --threads 1
    with np.load(binarized_bnn / "binary.npz") as f:
        assert sorted(f.files) == ["bias", "input_threshold", "scale", "t0", "t1", "w0", "w1", "w2"]
        assert f["w0"].shape == (512, 784) and set(np.unique(f["w1"])) <= {-1, 1}


def test_export_with_every_format_round_trips_the_folded_arrays(binarized_bnn, tmp_path, capsys):
    out = tmp_path / "img"
    assert main(["export", "xnor", "--model", str(binarized_bnn), "--pe", "16,16,2", "--simd", "49,32,32",
                 "--formats", "hex,bin,coe,mif,ihex", "--out", str(out)]) == 0
    assert "ideal interval 512 cycles per image" in capsys.readouterr().out  # fc1, fc2: NF 32 x SF 16
    manifest = json.loads((out / MANIFEST).read_text())
    assert [(l["pe"], l["simd"]) for l in manifest["layers"]] == [(16, 49), (16, 32), (2, 32)]
    for suffix in ("hex", "bin", "coe", "mif", "ihex"):
        assert (out / f"l2.pe1.weights.{suffix}").exists()
    image = load_image(out)
    with np.load(binarized_bnn / "binary.npz") as f:
        for l, layer in enumerate(image.layers):
            assert np.array_equal(layer.weights, f[f"w{l}"])
            if layer.kind == "hidden":
                assert np.array_equal(layer.thresholds, np.clip(f[f"t{l}"], 0, layer.in_features + 1))
        assert np.allclose(image.output_scale, f["scale"]) and image.input_threshold == f["input_threshold"]


def test_target_interval_folds_every_layer_within_it(tiny_npz, tmp_path):
    assert main(["export", "xnor", "--npz", str(tiny_npz), "--target-interval", "4", "--out", str(tmp_path / "i")]) == 0
    image = load_image(tmp_path / "i")
    assert all(layer.nf * layer.sf <= 4 for layer in image.layers)
    assert golden.ideal_interval(image) <= 4


def test_sim_matches_the_golden_model_and_reports_statistics(tiny_npz, tmp_path, capsys):
    image_dir = tmp_path / "img"
    assert main(["export", "xnor", "--npz", str(tiny_npz), "--pe", "4,2", "--simd", "5,4", "--out", str(image_dir)]) == 0
    image = load_image(image_dir)
    bits = np.random.default_rng(1).integers(0, 2, size=(6, 13))
    np.save(tmp_path / "x.npy", bits)
    assert main(["sim", "xnor", "--images", str(image_dir), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy"), "--stats", str(tmp_path / "s.json")]) == 0
    assert "golden model agrees" in capsys.readouterr().out
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (6, 5) and np.array_equal(y, golden.run(image, bits))
    stats = json.loads((tmp_path / "s.json").read_text())
    model = pipeline_cycles(engine_for(image), images=6)
    assert [s["cycles"] for s in stats["samples"]] == model["cycles"]
    assert stats["total"]["cycles"] == sum(model["cycles"]) and stats["intervals"] == model["intervals"]
    assert stats["ideal_interval"] == golden.ideal_interval(image) == 6  # fc1: NF 2 x SF 3


def test_verilog_from_an_image_and_from_engine_parameters(tiny_npz, tmp_path, capsys):
    image_dir = tmp_path / "img"
    assert main(["export", "xnor", "--npz", str(tiny_npz), "--out", str(image_dir)]) == 0
    assert main(["verilog", "xnor", "--images", str(image_dir), "--preload", "-o", str(tmp_path / "a.v")]) == 0
    text = (tmp_path / "a.v").read_text()
    assert "module xnor_engine" in text and "input__payload" in text and "output__payload" in text
    assert main(["verilog", "xnor", "--layers", "784,256,256,10", "--pe", "16,16,2", "--simd", "49,32,32",
                 "-o", str(tmp_path / "b.v")]) == 0
    out = capsys.readouterr().out
    assert "784->256 pe 16 simd 49 (NF*SF 256)" in out and "1360 lanes" in out  # 16*49 + 16*32 + 2*32
    assert main(["verilog", "xnor", "--layers", "64,32,10", "--target-interval", "8", "-o", str(tmp_path / "c.v")]) == 0
    steps = [int(n) for n in re.findall(r"NF\*SF (\d+)", capsys.readouterr().out)]
    assert len(steps) == 2 and max(steps) == 8
    assert "module xnor_engine" in (tmp_path / "c.v").read_text()


@pytest.mark.parametrize("args, message", [
    (["export", "xnor", "--model", "/nonexistent", "--out", "{tmp}/o"], "model folder /nonexistent does not exist"),
    (["export", "xnor", "--model", "{tmp}", "--out", "{tmp}/o"], "is not an eiex binarize output: binary.npz is missing"),
    (["export", "xnor", "--npz", "{npz}", "--pe", "1,1,1", "--out", "{tmp}/o"], "pe gives 3 values for 2 layers"),
    (["export", "xnor", "--npz", "{npz}", "--pe", "4097,1", "--out", "{tmp}/o"], "pe must be an integer from 1 to 4096"),
    (["export", "xnor", "--npz", "{npz}", "--pe", "1,1", "--simd", "1,1", "--target-interval", "10",
      "--out", "{tmp}/o"], "take 78 cycles, more than the target interval 10"),
    (["export", "xnor", "--npz", "{nan}", "--out", "{tmp}/o"], "scale contains NaN or infinite values"),
    (["verilog", "xnor", "-o", "{tmp}/a.v"], "give either --images or --layers"),
    (["synth", "xnor", "--images", "{tmp}/none", "--layers", "8,4", "--json", "{tmp}/s.json"],
     "give either --images or --layers"),
    (["verilog", "xnor", "--layers", "784", "-o", "{tmp}/a.v"], "layer sizes must be at least two"),
    (["verilog", "xnor", "--layers", "8,4,2", "--thr-bits", "99", "-o", "{tmp}/a.v"], "thr_bits must be an integer"),
    (["verilog", "xnor", "--layers", "8,4,2", "--preload", "-o", "{tmp}/a.v"], "--preload needs --images"),
    (["sim", "xnor", "--images", "/nonexistent", "--input", "x.npy", "--out", "{tmp}/y.npy"], "/nonexistent"),
    (["binarize", "--model", "bnn-mlp", "--threads", "0", "--out", "{tmp}/o"], "threads must be an integer"),
    (["binarize", "--model", "bnn-mlp", "--dataset", "mnist", "--data-dir", "{tmp}/none", "--out", "{tmp}/o"],
     "does not exist"),
])
def test_xnor_commands_fail_in_one_line_and_write_nothing(tmp_path, tiny_npz, args, message, capsys):
    work = tmp_path / "work"
    work.mkdir()
    nan = tiny_folded()
    nan["scale"][1] = np.nan
    np.savez(tmp_path / "nan.npz", **nan)
    subs = {"{tmp}": str(work), "{npz}": str(tiny_npz), "{nan}": str(tmp_path / "nan.npz")}
    for key, value in subs.items():
        args = [a.replace(key, value) for a in args]
    assert main(args) == 1
    one_line_error(capsys, message)
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["export", "xnor", "--npz", "w.npz", "--pe", "4,0", "--out", "o"], "expected a comma list of positive integers"),
    (["binarize", "--model", "bnn-mlp", "--hidden", "64,x", "--out", "o"], "expected a comma list of positive integers"),
    (["binarize", "--model", "bnn-mlp", "--mode", "binaryconnect", "--out", "o"], "invalid choice: 'binaryconnect'"),
    (["synth", "xnor", "--layers", "16,8,4", "--targets", "ecp6"], "targets must be a comma list of ecp5,ice40,xilinx"),
])
def test_bad_command_lines_exit_2_in_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    one_line_error(capsys, message)


def test_existing_binarize_output_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "bnn"
    out.mkdir()
    assert main(["binarize", "--model", "bnn-mlp", "--out", str(out)]) == 1
    one_line_error(capsys, "already exists (use --force")


def test_sim_rejects_bad_inputs_and_tampered_images(tiny_npz, tmp_path, capsys):
    image_dir = tmp_path / "img"
    assert main(["export", "xnor", "--npz", str(tiny_npz), "--out", str(image_dir)]) == 0
    capsys.readouterr()
    sim = ["sim", "xnor", "--images", str(image_dir), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")]
    np.save(tmp_path / "x.npy", np.full((2, 13), 2))
    assert main(sim) == 1
    one_line_error(capsys, "input bits must be integers 0 or 1")
    np.save(tmp_path / "x.npy", np.zeros((2, 12), dtype=np.int64))
    assert main(sim) == 1
    one_line_error(capsys, "input bits must be shaped (samples, 13), not (2, 12)")
    np.save(tmp_path / "x.npy", np.zeros((2, 13), dtype=np.int64))
    hex_file = image_dir / "l0.pe0.weights.hex"
    hex_file.write_text(hex_file.read_text().replace("0", "1", 1))
    assert main(sim) == 1
    one_line_error(capsys, "l0.pe0.weights.hex")
    assert not (tmp_path / "y.npy").exists()


def test_synth_reports_luts_per_lane_for_engine_and_mvtus(tmp_path, capsys):
    out = tmp_path / "synth.json"
    assert main(["synth", "xnor", "--layers", "16,8,4", "--pe", "2,2", "--simd", "4,4", "--targets", "ice40",
                 "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    engine, mvtus = record["results"]
    assert (engine["part"], mvtus["part"]) == ("engine", "mvtus")
    assert engine["lanes"] == mvtus["lanes"] == 16
    assert 0 < mvtus["luts"] < engine["luts"] and engine["luts_per_lane"] == engine["luts"] / 16
    assert "LUTs per lane (FINN-R: 6.6)" in capsys.readouterr().out


def test_sim_on_verilator_equals_amaranth(tiny_npz, tmp_path, capsys):
    image_dir = tmp_path / "img"
    assert main(["export", "xnor", "--npz", str(tiny_npz), "--pe", "4,2", "--simd", "5,4", "--out", str(image_dir)]) == 0
    np.save(tmp_path / "x.npy", np.random.default_rng(2).integers(0, 2, size=(5, 13)))
    runs = {}
    for sim in ("amaranth", "verilator"):
        assert main(["sim", "xnor", "--images", str(image_dir), "--input", str(tmp_path / "x.npy"), "--sim", sim,
                     "--out", str(tmp_path / f"{sim}.npy"), "--stats", str(tmp_path / f"{sim}.json")]) == 0
        runs[sim] = np.load(tmp_path / f"{sim}.npy"), json.loads((tmp_path / f"{sim}.json").read_text())
    assert np.array_equal(runs["amaranth"][0], runs["verilator"][0])
    for key in ("samples", "total", "intervals", "ideal_interval"):
        assert runs["amaranth"][1][key] == runs["verilator"][1][key]
    assert runs["verilator"][1]["simulator"] == "verilator" and runs["verilator"][1]["cycles_per_second"] > 0


def test_bnn_cnv_binarizes_and_exports_a_version_2_image_end_to_end(tmp_path, capsys, one_torch_thread):
    from eiex.sw.data import load_dataset

    data = load_dataset("mnist5k")
    digits = tmp_path / "digits.npz"
    # 200 training and 100 test digits at 14 x 14 (every other pixel): the default training's 45 epochs in seconds
    np.savez(digits, x_train=data.train.images[::20, ::2, ::2], y_train=data.train.labels[::20],
             x_test=data.test.images[::10, ::2, ::2], y_test=data.test.labels[::10])
    out, image_dir = tmp_path / "cnv", tmp_path / "img"
    assert main(["binarize", "--model", "bnn-cnv", "--channels", "4,4", "--hidden", "8", "--dataset", str(digits),
                 "--threads", "1", "--out", str(out)]) == 0
    assert "bnn-cnv 14x14x1-4C3-4C3-MP2-FC8-FC10 (xnor)" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    # pe and simd give one value per layer with weights (conv1, conv2, fc1, fc2): the pool takes none
    assert main(["export", "xnor", "--model", str(out), "--pe", "4,4,8,10", "--simd", "9,12,50,8",
                 "--out", str(image_dir)]) == 0
    line = capsys.readouterr().out
    assert "conv2 12x12x4->10x10x4 (3x3) pe 4 simd 12 (positions*NF*SF 100*1*3), pool1 max-pool 2x2" in line
    assert "ideal interval 300 cycles per image" in line  # conv2: 100 positions x NF 1 x SF 3
    manifest = json.loads((image_dir / MANIFEST).read_text())
    assert manifest["version"] == 2 and [layer["kind"] for layer in manifest["layers"]] == \
        ["conv", "conv", "pool", "hidden", "output"]
    image = load_image(image_dir)
    test = load_dataset(str(digits)).test
    assert np.mean(golden.predict(image, test.images.reshape(len(test.images), -1)) == test.labels) == \
        pytest.approx(report["binary_accuracy"])
    # the engine's RTL (Amaranth's simulator) on a few digits: the golden model's scores; conv1's one
    # step a position (P = M, S = K) waits for its window's three kernel-row reads, so the interval is
    # 144 positions x 3 cycles, not the ideal 300
    np.save(tmp_path / "x.npy", test.images[:3].reshape(3, -1))
    assert main(["sim", "xnor", "--images", str(image_dir), "--raw-input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy"), "--stats", str(tmp_path / "s.json")]) == 0
    bits = golden.binarize_input(image, test.images[:3].reshape(3, -1))
    assert np.array_equal(np.load(tmp_path / "y.npy"), golden.run(image, bits))
    stats = json.loads((tmp_path / "s.json").read_text())
    assert (stats["interval"], stats["ideal_interval"]) == (steady_interval(engine_for(image)), 300) == (432, 300)
    assert main(["export", "xnor", "--model", str(out), "--pe", "4,4,8", "--out", str(tmp_path / "bad")]) == 1
    one_line_error(capsys, "pe gives 3 values for 4 layers with weights (the pool layer takes none)")
    assert not (tmp_path / "bad").exists()
