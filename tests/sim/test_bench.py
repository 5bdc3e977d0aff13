"""The measurement pieces of ``eiex bench`` (sim/benchmarks/suite.py) on small configurations: the fc6-sized
layer's pruning, sharing and inputs, load-balance sweep properties, the RTL spot check, the XNOR
interval against the cycle model, simulator speeds, the assembly of the results, bad arguments."""

import json
import shutil

import numpy as np
import pytest

import eiex.sim.benchmarks.suite as bench
import eiex.sim.benchmarks.eie_balance as eie_balance
from eiex.hw.eie import golden
from eiex.sim.benchmarks.fc6 import fc6_weights, prune_in_place
from eiex.sim.tools.lint import have_verilator
from eiex.sim.testbenches.runner import CACHE_ENV
from eiex.sw.images.eie.export import FloatLayer, balanced_row_order
from eiex.errors import EiexError
from eiex.sw.compress.sharing import share_layer

needs_verilator = pytest.mark.skipif(not have_verilator(), reason="verilator is not installed")
needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog is not installed")
TINY_BNN = (24, 16, 12, 6)


@pytest.fixture(autouse=True)
def sim_cache(tmp_path_factory, monkeypatch):
    """Simulator builds of this module go to one cache folder of the session, not the user's."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "bench-sim-cache"))


def small_layer(rows=20, cols=30, kept=0.3, seed=3):
    """A random layer pruned by magnitude and shared as 7 values plus 0."""
    w = np.random.default_rng(seed).normal(size=(rows, cols)).astype(np.float32)
    prune_in_place(w, kept)
    shared = share_layer(w, 3, "optimal")
    return FloatLayer(shared.weights(), np.zeros(rows), True, "small")



def test_fc6_layer_is_pruned_to_9_percent_and_shared_in_16_values():
    cols = 40
    layer = bench.fc6_layer(cols)
    dense = fc6_weights(0, bench.FC6_ROWS, cols)
    original = np.abs(dense)
    kept = layer.weight != 0
    assert layer.weight.shape == (bench.FC6_ROWS, cols) and not layer.bias.any() and layer.relu
    assert kept.sum() == round(bench.FC6_KEPT * kept.size)
    assert original[kept].min() >= original[~kept].max()  # by magnitude
    assert len(np.unique(layer.weight[kept])) == 15  # 16 codes, 0 the pruned weights
    assert np.all(np.sign(layer.weight[kept]) == np.sign(dense[kept]))


def test_relu_inputs_have_the_density_asked_for():
    x = bench.relu_inputs(100, 2000, density=0.351)
    assert x.min() == 0 and abs(np.mean(x > 0) - 0.351) < 0.005
    assert abs(np.mean(bench.relu_inputs(100, 2000, density=0.5) > 0) - 0.5) < 0.005


def test_fc6_sweep_efficiency_properties():
    cols = bench.QUICK_FC6_COLS
    raw = bench.relu_inputs(1, cols)
    rows, _ = eie_balance.sweep(bench.fc6_images(bench.fc6_layer(cols), raw), default_pes=8, default_depth=8,
                                pe_counts=(1, 4, 64), queue_depths=(2, 8))
    assert len(rows) == 2 * (2 + 3)
    for r in rows:
        assert 0 < r["efficiency"] <= 1 and r["compute_cycles"] >= r["ideal_cycles"] > 0
        assert r["compute_over_ideal"] >= 1
    one_pe = [r for r in rows if r["pes"] == 1]
    assert len(one_pe) == 2 and all(r["efficiency"] > 0.9 for r in one_pe)
    # one PE never waits for another: its cycles are the ideal plus the fixed pipeline latency
    assert all(r["compute_cycles"] == r["ideal_cycles"] + r["latency"] for r in one_pe)
    depth = {(r["queue_depth"], r["balance"]): r for r in rows if r["sweep"] == "queue_depth"}
    for balance in (False, True):  # a deeper queue never costs cycles
        assert depth[8, balance]["compute_cycles"] <= depth[2, balance]["compute_cycles"]


def test_permuted_rows_compute_the_same_outputs_permuted():
    layer = small_layer()
    raw = bench.relu_inputs(3, layer.weight.shape[1], density=0.5, seed=1)
    image_for = bench.fc6_images(layer, raw)
    plain, x = image_for(4, False)
    permuted, x_permuted = image_for(4, True)
    assert np.array_equal(x, x_permuted)
    rows = balanced_row_order(layer.weight, 4)
    assert not np.array_equal(rows, np.arange(len(rows)))  # the permutation is not the identity here
    assert np.array_equal(golden.run(permuted, x), golden.run(plain, x)[:, rows])


def test_rtl_spot_check_compares_with_the_model(monkeypatch):
    layer = small_layer()
    image, x = bench.fc6_images(layer, bench.relu_inputs(2, layer.weight.shape[1], density=0.5))(2, False)
    checks = eie_balance.rtl_spot_check(image, x, 2)
    assert [c["rtl_compute_cycles"] for c in checks] == [c["model"] for c in checks] and len(checks) == 2
    real = eie_balance.engine_cycles
    monkeypatch.setattr(eie_balance, "engine_cycles",
                        lambda *a: {**real(*a), "compute_cycles": real(*a)["compute_cycles"] + 1})
    with pytest.raises(EiexError, match="the curves would not be the RTL's"):
        eie_balance.rtl_spot_check(image, x, 2)


@needs_icarus
def test_rtl_spot_check_on_a_cocotb_simulator():
    layer = small_layer()
    image, x = bench.fc6_images(layer, bench.relu_inputs(2, layer.weight.shape[1], density=0.5))(2, True)
    checks = eie_balance.rtl_spot_check(image, x, 3, simulator="icarus")
    amaranth = eie_balance.rtl_spot_check(image, x, 3)
    assert checks == amaranth


@needs_verilator
def test_xnor_measured_interval_equals_the_cycle_model_and_the_ideal():
    image = bench.bnn_image(sizes=TINY_BNN, target_interval=12)
    row = bench.xnor_interval(image, images=8)
    assert row["interval"] == row["model_interval"] == row["ideal_interval"] <= 12 and row["ratio"] == 1
    assert row["intervals"] == [row["interval"]] * 7 and row["lanes"] == sum(p * s for p, s in row["folding"])


@needs_icarus
def test_xnor_interval_when_the_output_stream_is_the_bottleneck():
    # every layer takes one cycle per image, but 6 scores leave one a cycle
    image = bench.bnn_image(sizes=TINY_BNN, target_interval=1)
    row = bench.xnor_interval(image, images=6, simulator="icarus")
    assert row["ideal_interval"] == 1 and row["interval"] == row["model_interval"] == TINY_BNN[-1]
    assert row["ratio"] == TINY_BNN[-1]


@needs_icarus
def test_xnor_interval_raises_when_the_cycle_model_disagrees(monkeypatch):
    import eiex.hw.xnor.cycles as cycles

    real = cycles.pipeline_cycles

    def late(layers, images):
        model = real(layers, images)
        return {**model, "intervals": [i + 1 for i in model["intervals"]]}

    monkeypatch.setattr(cycles, "pipeline_cycles", late)
    with pytest.raises(EiexError, match="the cycle model predicts intervals"):
        bench.xnor_interval(bench.bnn_image(sizes=TINY_BNN, target_interval=1), images=6, simulator="icarus")


@needs_icarus
def test_simulator_speeds_time_the_same_run_on_each_simulator():
    """Which simulator is faster is a benchmark figure (``verilator_vs_amaranth_speed``), not a test;
    here a cocotb simulator (Icarus: the quickest to build) and Amaranth time the same run."""
    image = bench.bnn_image(sizes=TINY_BNN, target_interval=12)
    bits = bench.random_bits(image, 40)
    cocotb = bench.speed_of("xnor", image, bits, "icarus", 1)
    amaranth = bench.speed_of("xnor", image, bits, "amaranth", 1)
    assert cocotb["sim_cycles"] - amaranth["sim_cycles"] in range(0, 4)  # the same run, up to reset
    for speed in (cocotb, amaranth):
        run = speed["runs"][0]
        assert speed["cycles_per_second"] == run["sim_cycles"] / run["sim_seconds"] > 0


def test_bnn_image_has_the_shape_and_default_folding():
    image = bench.bnn_image()
    assert [(l.in_features, l.out_features) for l in image.layers] == [(784, 512), (512, 512), (512, 10)]
    assert max(l.nf * l.sf for l in image.layers) == 6272  # the exporter's default for 64 lanes
    assert {int(v) for l in image.layers for v in np.unique(l.weights)} == {-1, 1}


def fake_pieces(monkeypatch, tmp_path):
    """run_bench's pieces replaced by small results of the same shape."""
    image_for = bench.fc6_images(small_layer(), bench.relu_inputs(2, 30, density=0.5))
    rows = {pes: eie_balance.sweep(image_for, default_pes=pes, pe_counts=(1, 8, 64), queue_depths=(2, 8))[0]
            for pes in (8, 64)}
    headline = {"permuted": {"efficiency": 0.9, "compute_over_ideal": 1.1}}
    eie = {"eie_lenet300_cycle_ratio_8pe": 1.1,
           "lenet300": {"model": "lenet300", "rows": rows[8], "headline": headline},
           "fc6": {"model": "fc6", "rows_out": 20, "cols": 30, "rows": rows[bench.FC6_QUEUE_PES]}}
    xnor = {"xnor_interval_ratio": 1.0, "layers": [24, 16, 12, 6],
            "rows": [{"lanes": 10, "ideal_interval": 12, "interval": 12, "model_interval": 12},
                     {"lanes": 40, "ideal_interval": 3, "interval": 6, "model_interval": 6}]}
    speeds = {"simulators": ["amaranth", "verilator"], "verilator_vs_amaranth_speed": 20.0,
              "engines": {e: {"design": e, "verilator_vs_amaranth": v,
                              "rates": {"amaranth": {"cycles_per_second": np.float64(1e3)},
                                        "verilator": {"cycles_per_second": 1e3 * v}}}
                          for e, v in (("eie", 50.0), ("xnor", 20.0))}}
    res = {"xnor_luts_per_lane": 6.5, "xnor_luts_per_lane_engine": np.float64(66.0),
           "xnor_luts_per_lane_engine_ecp5": 8.0, "xnor": [], "eie": []}
    builds = {"eie_fmax_mhz_ecp5": 101.0, "xnor_fmax_mhz_ecp5": None, "builds": {"eie": {"fit": True}}}
    for name, value in (("eie_sweeps", eie), ("xnor_intervals", xnor), ("simulator_speeds", speeds),
                        ("resources", res), ("fpga_builds", builds)):
        monkeypatch.setattr(bench, name, lambda *a, value=value, **k: value)
    folder = tmp_path / "lenet300"
    folder.mkdir()
    return folder


def test_run_bench_gathers_headlines_plots_and_json(monkeypatch, tmp_path):
    folder = fake_pieces(monkeypatch, tmp_path)
    fc6 = {"fc6_seconds": 50.0, "fc6_peak_gb": 1.5, "kmeans_speedup_vs_sklearn": 9.0,
           "kmeans_inertia_ratio_vs_sklearn": 0.99}
    record = {**fc6, "rows": 4096, "stage_seconds": {"prune": np.float64(1.0)}, "arrays": {"codes": np.ones(3)}}
    out = tmp_path / "out"
    result = bench.run_bench(True, folder, out, log=None, fc6_compression=record, parallel=False)
    assert {k: result[k] for k in bench.SUITE_HEADLINE_KEYS} == {
        "eie_lenet300_cycle_ratio_8pe": 1.1, "xnor_interval_ratio": 1.0, "verilator_vs_amaranth_speed": 20.0,
        "xnor_luts_per_lane": 6.5}
    assert {k: result[k] for k in fc6} == fc6 and result["xnor_luts_per_lane_engine"] == 66.0
    assert result["eie_fmax_mhz_ecp5"] == 101.0 and result["xnor_fmax_mhz_ecp5"] is None
    assert result["fpga_builds"] == {"eie": {"fit": True}} and result["xnor_luts_per_lane_engine_ecp5"] == 8.0
    assert result["fc6_compression"] == {**fc6, "rows": 4096, "stage_seconds": {"prune": 1.0}}  # no arrays
    assert "rows" not in result
    assert result["eie_verilator_vs_amaranth_speed"] == 50.0 and result["quick"] is True
    fc6_rows = result["eie"]["fc6"]["rows"]
    assert result["eie_fc6_efficiency_64pe_depth2"] == next(
        r["efficiency"] for r in fc6_rows if r["sweep"] == "queue_depth" and r["queue_depth"] == 2 and r["balance"])
    assert json.loads((out / "bench.json").read_text()) == result  # JSON-ready: numpy scalars converted
    assert result["plots"] == ["eie_balance.png", "xnor_intervals.png", "simulator_speeds.png"]
    assert all((out / p).stat().st_size > 1000 for p in result["plots"])
    assert set(result["seconds"]) == {"eie_sweeps", "xnor_intervals", "simulator_speeds", "resources",
                                      "fpga_builds", "total"}


@pytest.mark.parametrize("call, message", [
    (lambda tmp: bench.plan_for("yes"), "quick must be True or False, not 'yes'"),
    (lambda tmp: bench.eie_sweeps(tmp / "nowhere", True), "LeNet-300-100 folder .* does not exist"),
    (lambda tmp: bench.xnor_intervals(None), "quick must be True or False, not None"),
    (lambda tmp: bench.simulator_speeds(3, True), "the LeNet-300-100 folder must be a path, not 3"),
    (lambda tmp: bench.run_bench(True, tmp, tmp / "out", fc6_compression={"fc6_seconds": 1.0}),
     "fc6_compression lacks fc6_peak_gb, kmeans_speedup_vs_sklearn, kmeans_inertia_ratio_vs_sklearn"),
    (lambda tmp: bench.run_bench(True, tmp, tmp / "out", fc6_compression=[1]), "fc6_compression must be a dict"),
    (lambda tmp: bench.run_bench(True, tmp, __file__), "exists and is not a folder"),
    (lambda tmp: bench.fc6_layer(0), "fc6 columns must be an integer from 1 to 9216, not 0"),
    (lambda tmp: bench.relu_inputs(2, 10, density=1.0), r"activation density must lie in \(0, 1\), not 1.0"),
    (lambda tmp: eie_balance.held_out_digits(0), "samples must be between 1 and the 1000 held-out digits, not 0"),
    (lambda tmp: eie_balance.rtl_spot_check(None, None, 8, simulator="modelsim"),
     "simulator must be one of amaranth, verilator, icarus, not 'modelsim'"),
])
def test_bad_arguments_are_one_line_errors(call, message, tmp_path):
    with pytest.raises(EiexError, match=message) as e:
        call(tmp_path)
    assert "\n" not in str(e.value)
