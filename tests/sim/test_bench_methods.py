"""``eiex bench methods`` with every stage shortened to one epoch: the rows it writes (methods.json,
methods.md, one image folder each) hold figures recomputed here from what it saved: the ternary
row's 2-bit codes, its size below the baseline's, and each image's error from the golden model."""

import json

import numpy as np
import pytest

from eiex.sim.benchmarks import methods
from eiex.sim.engines import get_engine
from eiex.sw.compress import plots
from eiex.sw.data import load_dataset
from eiex.sw.images.eie import arithmetic as golden
from eiex.sw.images.eie import export

ROWS = ("deep-compression", "ternary")
#: one epoch per stage, one pruning step, no sensitivity sweep (QUICK_RECIPE trains 3 epochs, 2 steps)
ONE_EPOCH = {"train": {"epochs": 1}, "prune": {"epochs": 1, "steps": 1, "sensitivity": [0.0]}, "share": {"epochs": 1},
             "quantize": {"epochs": 1}}


@pytest.fixture(scope="module")
def bench(tmp_path_factory, one_torch_thread):
    out = tmp_path_factory.mktemp("bench-methods")
    calibration = export.calibration_images
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(methods, "QUICK_RECIPE", ONE_EPOCH)
        # act_frac calibrated on 500 training digits rather than all 4,000: an eighth of the export's time
        patch.setattr(export, "calibration_images", lambda dataset, limit=10_000: calibration(dataset, 500))
        # the weight histograms of LeNet-300-100 (a third of a row's time) are not what this bench measures
        patch.setattr(plots, "weight_distributions", lambda path, *args: path.write_bytes(b""))
        summary = methods.run_methods(out, quick=True, rows=ROWS, part=None, digits=10, log=lambda *_: None)
    return out, summary


def test_methods_json_holds_one_row_per_method(bench):
    out, summary = bench
    assert json.loads((out / "methods.json").read_text()) == summary
    assert [row["key"] for row in summary["rows"]] == list(ROWS)
    assert summary["dataset"] == "mnist5k" and summary["quick"] and summary["part"] is None
    for row in summary["rows"]:
        report = json.loads((out / row["key"] / "report.json").read_text())
        assert row["compressed_bytes"] == report["compressed_bytes"]
        assert row["error"] == pytest.approx(1 - report["compressed_accuracy"])
        assert report["recipe"]["train"]["epochs"] == 1 and report["recipe"]["prune"]["steps"] == 1
        assert row["cycle_digits"] == 10 and row["cycles"] >= row["ideal_cycles"] > 0
        assert (out / f"{row['key']}-image").is_dir()
        assert "builds" not in row


def test_the_markdown_table_has_a_line_per_row(bench):
    out, summary = bench
    lines = (out / "methods.md").read_text().splitlines()
    body = [line for line in lines[2:] if line.startswith("|")]
    assert len(body) == len(ROWS) and lines[1].startswith("|---")
    for line, row in zip(body, summary["rows"]):
        assert line.startswith(f"| {row['method']} | {row['compressed_bytes']:,} B |")


def test_ternary_row_has_two_bit_codes_and_is_smaller_than_the_baseline(bench):
    _, summary = bench
    baseline, ternary = summary["rows"]
    assert ternary["idx_bits"] == 2 and set(ternary["bits"].values()) == {2}
    assert ternary["methods"]["quantize"] == "ternary" and baseline["methods"]["quantize"] == "kmeans"
    assert ternary["compressed_bytes"] < baseline["compressed_bytes"]


def test_the_ternary_row_starts_from_the_baselines_pruned_weights_and_keeps_their_zeros(bench):
    out, _ = bench
    pruned = np.load(out / "baseline-pruned.npz")
    ternary_start, ternary = (np.load(out / "ternary" / f"{kind}.npz") for kind in ("dense", "compressed"))
    assert pruned.files and all(np.array_equal(pruned[k], ternary_start[k]) for k in pruned.files)
    for k in pruned.files:
        if k.startswith("w"):  # quantization may zero more weights, never revive a pruned one
            assert not np.any((pruned[k] == 0) & (ternary[k] != 0))


def test_engine_error_is_the_saved_images_golden_error(bench):
    out, summary = bench
    test = load_dataset("mnist5k").test
    for row in summary["rows"]:
        image = get_engine("eie").load_image(out / f"{row['key']}-image")
        outputs = golden.run(image, golden.quantize_input(image, test.images.reshape(len(test.images), -1)))
        assert row["engine_error"] == float(np.mean(outputs.argmax(1) != test.labels))
        assert abs(row["engine_error"] - row["error"]) < 0.05  # the integer image tracks the PyTorch model


def test_a_resumed_run_keeps_the_finished_rows_and_compresses_nothing(bench, monkeypatch):
    out, summary = bench
    from eiex.sw.compress import pipeline

    def no_compress(*args, **kwargs):
        raise AssertionError("a finished row was compressed again")

    monkeypatch.setattr(pipeline, "compress", no_compress)
    (out / "ternary.json").unlink()  # as if stopped after compressing this row, before its figures were kept
    again = methods.run_methods(out, quick=True, rows=ROWS, part=None, digits=10, resume=True, log=lambda *_: None)
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in again["rows"]] == \
        [{k: v for k, v in row.items() if k != "seconds"} for row in summary["rows"]]


def test_the_inq_row_is_built_with_each_mac_at_the_build_pes(bench, monkeypatch):
    """The builds themselves (minutes of place and route) belong to the benchmark; here each is
    recorded: both MACs, the INQ row's image re-encoded for the build PEs, every codebook entry a
    power of two as --mac shift requires."""
    from eiex.sw.compress.methods.inq import is_pow2_codebook

    out, _ = bench
    built = []

    def record(image, part, folder, mac, log):
        built.append((image.engine.n_pe, mac, part))
        assert is_pow2_codebook(image.codebook.astype(float)).all()
        return {"luts": 1, "dsps": 0 if mac == "shift" else image.engine.n_pe, "brams": 1, "fmax_mhz": 100.0,
                "seconds": 0.0}

    monkeypatch.setattr(methods, "build_figures", record)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(methods, "QUICK_RECIPE", ONE_EPOCH)
        summary = methods.run_methods(out, quick=True, rows=("deep-compression", "pow2"), part="ecp5-85k",
                                      digits=10, resume=True, build_pes=3, log=lambda *_: None)
    assert built == [(3, "multiply", "ecp5-85k"), (3, "shift", "ecp5-85k")]
    row = summary["rows"][-1]
    assert row["build_pes"] == 3 and set(row["builds"]) == {"multiply", "shift"}
    assert "pow2 on the ecp5-85k, 3 PEs:" in (out / "methods.md").read_text()


def test_the_linear_index_row_is_exported_with_identity_codebooks_and_built_with_each_mac(bench, monkeypatch):
    """The power-of-two linear row: its image has identity codebooks (the code is the weight, what
    --mac index runs), and is built with the multiplier and with the codebook-free MAC."""
    from eiex.sw.images.eie.identity import check_identity_codebook, signed_codes

    out, _ = bench
    built = []

    def record(image, part, folder, mac, log):
        built.append((image.engine.n_pe, mac))
        check_identity_codebook(image)
        return {"luts": 1, "dsps": image.engine.n_pe, "brams": 1, "fmax_mhz": 100.0, "seconds": 0.0}

    monkeypatch.setattr(methods, "build_figures", record)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(methods, "QUICK_RECIPE", ONE_EPOCH)
        summary = methods.run_methods(out, quick=True, rows=("deep-compression", "linear-index"), part="ecp5-85k",
                                      digits=10, resume=True, build_pes=2, log=lambda *_: None)
    assert built == [(2, "multiply"), (2, "index")]
    row = summary["rows"][-1]
    image = get_engine("eie").load_image(out / "linear-index-image")
    for l in range(len(image.layers)):
        np.testing.assert_array_equal(image.layer_codebook(l), signed_codes(image.engine.idx_bits))
    assert image.engine.idx_bits == max(row["bits"].values())


def test_lenet5_runs_the_rows_that_apply_to_convolutions():
    from eiex.errors import EiexError

    keys = [row[0] for row in methods.rows_for("lenet5")]
    assert keys == [row[0] for row in methods.ROWS if row[0] not in ("l1-neurons", "lowrank")]
    assert [row[0] for row in methods.rows_for("lenet300")] == [row[0] for row in methods.ROWS]
    with pytest.raises(EiexError, match="^the rows l1-neurons and lowrank need a fully connected network; lenet5"):
        methods.rows_for("lenet5", ("deep-compression", "lowrank"))
    with pytest.raises(EiexError, match="^bench methods runs lenet300 or lenet5, not 'vgg'"):
        methods.rows_for("vgg")


def test_a_lenet5_row_has_its_size_and_error_and_no_engine_columns(tmp_path, one_torch_thread, monkeypatch):
    """LeNet-5's rows are compressed as LeNet-300-100's are; the EIE engine runs fully connected
    layers only, so there is no image and the engine columns are empty."""
    monkeypatch.setattr(methods, "QUICK_RECIPE", ONE_EPOCH)
    summary = methods.run_methods(tmp_path, quick=True, rows=("deep-compression",), part="ecp5-85k", model="lenet5",
                                  digits=10, log=lambda *_: None)
    (row,) = summary["rows"]
    report = json.loads((tmp_path / "deep-compression" / "report.json").read_text())
    assert summary["model"] == "lenet5" and row["bits"] == {l["name"]: l["bits"] for l in report["layers"]}
    assert row["error"] == pytest.approx(1 - report["compressed_accuracy"]) and row["ratio"] > 1
    assert row["engine_error"] is None and row["cycles"] is None and "builds" not in row
    assert not (tmp_path / "deep-compression-image").exists()
    assert (tmp_path / "methods.md").read_text().splitlines()[2].endswith("| - | - | conv1 6, conv2 6, fc1 4, fc2 5 |")
