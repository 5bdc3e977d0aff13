"""Both engines' Verilog under cocotb (eiex.sim.simulate over eiex.sim.testbenches.runner) on Verilator and Icarus: outputs bit-exact
against the golden model, statistics equal to the Amaranth testbench's and to the cycle models,
the build cache, and failures as one-line errors."""

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from factories import (XNOR_MAP_NETWORKS, P, brute_force, build_xnor_image, identity_eie_image,
                       power_of_two_eie_image, random_eie_image, random_inputs, random_xnor_image)

import eiex.sim.testbenches.runner as runner
from eiex.hw.eie import golden as eie_golden
from eiex.hw.eie.cycles import engine_cycles
from eiex.hw.eie.params import HwParams
from eiex.sim.pysim.eie import simulate as eie_amaranth
from eiex.hw.xnor import golden as xnor_golden
from eiex.hw.xnor.cycles import pipeline_cycles
from eiex.hw.xnor.memory_map import engine_for
from eiex.sim.pysim.xnor import simulate as xnor_amaranth
from eiex.sim.tools.lint import have_verilator
from eiex.sim import simulate as simulation
from eiex.sim.engines import ENGINES
from eiex.errors import EiexError

SIMULATORS = [
    pytest.param("verilator", marks=pytest.mark.skipif(not have_verilator(), reason="verilator is not installed")),
    pytest.param("icarus", marks=pytest.mark.skipif(shutil.which("iverilog") is None,
                                                    reason="iverilog is not installed")),
]
# (id, in_valid, out_ready, preload): full rate, random gaps and back-pressure, preloaded memories
RUNS = [("full-rate", 1.0, 1.0, False), ("gaps-back-pressure", 0.5, 0.4, False), ("preloaded", 0.4, 0.7, True)]
#: each simulator with each run, except preloaded memories on Verilator: the same Verilog as on
#: Icarus, whose build would cost make test most of a minute more per engine
SIM_RUNS = [pytest.param(*sim.values, *run, marks=sim.marks, id=f"{sim.values[0]}-{run[0]}")
            for sim in SIMULATORS for run in RUNS if not (sim.values[0] == "verilator" and run[3])]


def simulate(engine, image, x, simulator="verilator", **options):
    """:func:`eiex.sim.simulate.simulate` on a cocotb simulator, the statistics as ``eiex sim`` writes them."""
    outputs, stats = simulation.simulate(engine, image, x, simulator=simulator, **options)
    return outputs, stats.as_dict()


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """One build cache for the session: each model is built once and reused by the tests."""
    return tmp_path_factory.mktemp("sim-cache")


def eie_case():
    """3 PEs over 11 inputs, 9 and 7 rows (rows and columns not a multiple of the PE count), empty
    columns, an all-zero vector (no broadcast at all) and one at the ends of the input range."""
    params = P(3, act_bits=9)
    image = random_eie_image(params, [11, 9, 7], density=0.4, seed=7, empty_cols=2)
    x = random_inputs(params, 11, 5, seed=7)
    lo, hi = params.act_range()
    x[2] = 0
    x[4] = np.where(np.arange(11) % 2, lo, hi)
    return image, x


def xnor_case():
    """22 inputs in 4-bit SIMD words (padding bits in the last beat), 7 rows on 3 PEs and 5 on 2
    (padding rows), 7 columns in 3-bit words; 8 images, so successive images overlap."""
    image = random_xnor_image([22, 7, 5], [(3, 4), (2, 3)], seed=5)
    bits = np.random.default_rng(5).integers(0, 2, (8, 22))
    return image, bits


@pytest.mark.parametrize("simulator, name, in_valid, out_ready, preload", SIM_RUNS)
def test_eie_verilog_equals_golden_and_amaranth(simulator, name, in_valid, out_ready, preload, cache):
    image, x = eie_case()
    outputs, stats = simulate("eie", image, x, simulator=simulator, in_valid=in_valid, out_ready=out_ready,
                              seed=3, preload=preload, cache_dir=cache)
    assert outputs.dtype == np.int64
    np.testing.assert_array_equal(outputs, eie_golden.run(image, x))
    # the same draws for gaps and back-pressure: the Amaranth testbench's statistics, cycle for cycle
    amaranth_outputs, amaranth_stats = eie_amaranth(image, x, in_valid=in_valid, out_ready=out_ready, seed=3,
                                                    preload=preload)
    np.testing.assert_array_equal(outputs, amaranth_outputs)
    assert stats["samples"] == amaranth_stats
    if in_valid == out_ready == 1.0:
        hw = HwParams.for_image(image)
        for s, v in enumerate(x):
            model = engine_cycles(image, v, hw)
            assert stats["samples"][s] == {k: model[k] for k in ("cycles", "compute_cycles", "ideal_cycles")}
    assert stats["total"]["cycles"] == sum(s["cycles"] for s in stats["samples"])
    assert stats["simulator"] == simulator and stats["engine"] == "eie"
    assert stats["sim_cycles"] > stats["total"]["cycles"] and stats["cycles_per_second"] > 0
    json.dumps(stats)  # S.json material as it is


@pytest.mark.skipif(not have_verilator(), reason="verilator is not installed")
def test_eie_shift_mac_verilog_equals_golden_and_amaranth(cache):
    """The shift MAC's Verilog (codebook of 0, +1, -1, +2**(weight_bits - 2), -2**(weight_bits - 1)
    and more powers of two, written through the load interface) on Verilator: bit-exact, and the
    statistics of the Amaranth testbench and of the cycle model."""
    params = P(3, act_bits=10, weight_bits=8)
    image = power_of_two_eie_image(params, [11, 9, 7], density=0.5, seed=3)
    x = random_inputs(params, 11, 3, seed=3, zeros=0.3)
    lo, hi = params.act_range()
    x[1] = np.where(np.arange(11) % 2, lo, hi)
    outputs, stats = simulate("eie", image, x, mac="shift", cache_dir=cache)
    np.testing.assert_array_equal(outputs, eie_golden.run(image, x))
    _, amaranth_stats = eie_amaranth(image, x, mac="shift")
    assert stats["samples"] == amaranth_stats
    hw = HwParams.for_image(image, mac="shift")
    assert stats["samples"] == [{k: m[k] for k in ("cycles", "compute_cycles", "ideal_cycles")}
                                for m in (engine_cycles(image, v, hw) for v in x)]


@pytest.mark.skipif(not have_verilator(), reason="verilator is not installed")
def test_eie_index_mac_verilog_equals_golden_and_amaranth(cache):
    """The index MAC's Verilog (no codebook memory; identity codebooks whose codes span the whole
    range, the most negative code 2**(idx_bits - 1) included, written through the load interface,
    codebook words and all) on Verilator: bit-exact, and the statistics of the Amaranth testbench
    and of the cycle model."""
    params = P(3, idx_bits=4, act_bits=10, weight_bits=8)
    image = identity_eie_image(params, [11, 9, 7], density=0.5, seed=3)
    x = random_inputs(params, 11, 3, seed=3, zeros=0.3)
    lo, hi = params.act_range()
    x[1] = np.where(np.arange(11) % 2, lo, hi)
    assert -(1 << (params.idx_bits - 1)) in eie_golden.decode_weights(image, 0)
    outputs, stats = simulate("eie", image, x, mac="index", cache_dir=cache)
    np.testing.assert_array_equal(outputs, eie_golden.run(image, x))
    # the Verilog simulated is the index engine's: no codebook memory, the code registered as the weight
    verilog = "".join(path.read_text() for path in Path(stats["build_dir"]).glob("*.v"))
    assert "index_weight" in verilog and not re.search(r"reg (signed )?\[[^]]*\] codebook \[", verilog)
    _, amaranth_stats = eie_amaranth(image, x, mac="index")
    assert stats["samples"] == amaranth_stats
    hw = HwParams.for_image(image, mac="index")
    assert stats["samples"] == [{k: m[k] for k in ("cycles", "compute_cycles", "ideal_cycles")}
                                for m in (engine_cycles(image, v, hw) for v in x)]


@pytest.mark.parametrize("simulator, name, in_valid, out_ready, preload", SIM_RUNS)
def test_xnor_verilog_equals_golden_and_amaranth(simulator, name, in_valid, out_ready, preload, cache):
    image, bits = xnor_case()
    outputs, stats = simulate("xnor", image, bits, simulator=simulator, in_valid=in_valid, out_ready=out_ready,
                              seed=2, preload=preload, cache_dir=cache)
    np.testing.assert_array_equal(outputs, brute_force(image, bits))
    amaranth_outputs, amaranth_stats = xnor_amaranth(image, bits, in_valid=in_valid, out_ready=out_ready, seed=2,
                                                     preload=preload)
    np.testing.assert_array_equal(outputs, amaranth_outputs)
    for key in ("cycles", "intervals", "interval", "ideal_interval"):
        assert stats[key] == amaranth_stats[key], key
    if in_valid == out_ready == 1.0:
        model = pipeline_cycles(engine_for(image), len(bits))
        assert stats["cycles"] == model["cycles"] and stats["intervals"] == model["intervals"]
    assert [s["cycles"] for s in stats["samples"]] == stats["cycles"]
    json.dumps(stats)


@pytest.mark.parametrize("simulator, in_valid, out_ready", [
    pytest.param(*SIMULATORS[0].values, 1.0, 1.0, marks=SIMULATORS[0].marks, id="verilator-full-rate"),
    pytest.param(*SIMULATORS[1].values, 0.5, 0.4, marks=SIMULATORS[1].marks, id="icarus-gaps-back-pressure"),
])
def test_xnor_conv_network_verilog_equals_golden(simulator, in_valid, out_ready, cache):
    """Two convs (kernel-row reads), a pool with a remainder and a fully connected output layer."""
    in_shape, plan = XNOR_MAP_NETWORKS["two_convs"]
    image = build_xnor_image(in_shape, plan, seed=4)
    bits = np.random.default_rng(4).integers(0, 2, (4, image.inputs))
    outputs, stats = simulate("xnor", image, bits, simulator=simulator, in_valid=in_valid, out_ready=out_ready,
                              seed=1, cache_dir=cache)
    np.testing.assert_array_equal(outputs, xnor_golden.run(image, bits))
    if in_valid == out_ready == 1.0:
        model = pipeline_cycles(engine_for(image), len(bits))
        assert stats["cycles"] == model["cycles"] and stats["intervals"] == model["intervals"]
        assert stats["interval"] == stats["ideal_interval"]


def cache_simulator():
    """The fastest simulator to build with: Icarus when it is there."""
    return "icarus" if shutil.which("iverilog") else "verilator"


def build_folders(cache_dir, simulator):
    return sorted(p.name for p in (cache_dir / simulator).iterdir()) if (cache_dir / simulator).exists() else []


def test_second_run_is_cached_and_does_not_rebuild(tmp_path, monkeypatch):
    from cocotb_tools import runner as cocotb_runner

    simulator = cache_simulator()
    image, bits = xnor_case()
    _, first = simulate("xnor", image, bits[:2], simulator=simulator, cache_dir=tmp_path)
    assert not first["cached"] and first["build_seconds"] > 0 and first["verilog_seconds"] > 0
    folders = build_folders(tmp_path, simulator)
    assert len(folders) == 1 and not folders[0].startswith(".")

    def no_build(*args, **kwargs):
        raise AssertionError("the model was rebuilt")

    monkeypatch.setattr(cocotb_runner.Runner, "build", no_build)
    monkeypatch.setattr("eiex.hw.xnor.verilog.to_verilog", no_build)
    outputs, second = simulate("xnor", image, bits[:2], simulator=simulator, cache_dir=tmp_path)
    assert second["cached"] and second["build_seconds"] == 0 and second["verilog_seconds"] == 0
    assert second["build_dir"] == first["build_dir"]
    np.testing.assert_array_equal(outputs, brute_force(image, bits[:2]))
    assert build_folders(tmp_path, simulator) == folders


def test_another_configuration_gets_its_own_build(tmp_path):
    simulator = cache_simulator()
    image, x = eie_case()
    _, a = simulate("eie", image, x[:1], simulator=simulator, queue_depth=8, cache_dir=tmp_path)
    _, b = simulate("eie", image, x[:1], simulator=simulator, queue_depth=2, cache_dir=tmp_path)
    assert not a["cached"] and not b["cached"] and a["build_dir"] != b["build_dir"]
    assert len(build_folders(tmp_path, simulator)) == 2
    assert len(list((tmp_path / "verilog").glob("eie-*.v"))) == 2


def test_an_interrupted_build_leaves_nothing_behind(tmp_path, monkeypatch):
    from cocotb_tools import runner as cocotb_runner

    simulator = cache_simulator()
    image, bits = xnor_case()
    build = cocotb_runner.Runner.build

    def interrupted(self, *args, **kwargs):
        build(self, *args, **kwargs)  # the model is complete in the temporary folder ...
        raise KeyboardInterrupt  # ... when the user presses Ctrl-C

    monkeypatch.setattr(cocotb_runner.Runner, "build", interrupted)
    with pytest.raises(KeyboardInterrupt):
        simulate("xnor", image, bits[:1], simulator=simulator, cache_dir=tmp_path)
    assert build_folders(tmp_path, simulator) == []
    monkeypatch.setattr(cocotb_runner.Runner, "build", build)
    _, stats = simulate("xnor", image, bits[:1], simulator=simulator, cache_dir=tmp_path)
    assert not stats["cached"]


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_a_wrong_output_is_one_line(simulator, cache, monkeypatch):
    image, x = eie_case()
    golden = ENGINES["eie"].golden

    def wrong(image, inputs):  # a golden model off by one in one place
        y = golden(image, inputs).copy()
        y[3, 2] += 1
        return y

    monkeypatch.setitem(ENGINES, "eie", dataclasses.replace(ENGINES["eie"], golden=wrong))
    right = eie_golden.run(image, x)[3, 2]
    with pytest.raises(EiexError) as e:
        simulate("eie", image, x, simulator=simulator, cache_dir=cache)
    assert str(e.value) == f"{simulator}: output 2 of sample 3 is {right}, the golden model says {right + 1}"


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_a_stuck_stream_is_a_one_line_timeout(simulator, cache):
    image, bits = xnor_case()
    with pytest.raises(EiexError, match=rf"^{simulator}: no transfer on any stream for 5 cycles, .*\(timeout\)$") as e:
        simulate("xnor", image, bits, simulator=simulator, cache_dir=cache, stall_cycles=5)
    assert "\n" not in str(e.value)


def test_a_bench_that_never_reports_is_one_line(cache, tmp_path, monkeypatch):
    simulator = cache_simulator()
    image, bits = xnor_case()
    monkeypatch.setitem(ENGINES, "xnor", dataclasses.replace(ENGINES["xnor"], cocotb_bench="eiex.sim.no_such_bench"))
    log = tmp_path / "sim.log"
    with pytest.raises(EiexError, match=rf"^{simulator}: the simulation ended without results: .*\(log: ") as e:
        simulate("xnor", image, bits, simulator=simulator, cache_dir=cache, log=log)
    assert "\n" not in str(e.value) and log.exists()


@pytest.mark.parametrize("call, message", [
    (lambda img, x: simulate("vhdl", img, x), "engine must be one of eie, xnor, not 'vhdl'"),
    (lambda img, x: simulate("eie", img, x, simulator="ghdl"), "simulator must be one of amaranth, verilator, icarus"),
    (lambda img, x: simulate("eie", img, x, in_valid=0), r"in_valid must be a probability in \(0, 1\], not 0"),
    (lambda img, x: simulate("eie", img, x, out_ready=1.5), r"out_ready must be a probability"),
    (lambda img, x: simulate("eie", img, x, stall_cycles=0), "stall_cycles must be a positive integer"),
    (lambda img, x: simulate("xnor", img, x), "the xnor engine runs an XnorImage, not a EieImage"),
    (lambda img, x: simulate("eie", img, x[:, :5]), r"inputs must be shaped \(samples, 11\)"),
    (lambda img, x: simulate("eie", img, x[:0]), "there are no input vectors to simulate"),
])
def test_bad_calls_are_refused(call, message, tmp_path, monkeypatch):
    monkeypatch.setenv(runner.CACHE_ENV, str(tmp_path))
    image, x = eie_case()
    with pytest.raises(EiexError, match=message):
        call(image, x)
    assert not any(tmp_path.iterdir())  # refused before anything was generated or built


def test_verilator_sees_only_the_ports():
    verilog = "module top(a, b__valid, clk);\n  input a;\nendmodule\nmodule \\top.sub (x);\nendmodule\n"
    assert runner.top_ports("top", verilog) == ["a", "b__valid", "clk"]
    control = runner.verilator_control("top", verilog)
    assert control.splitlines() == ["`verilator_config", 'public_flat_rw -module "top" -var "a"',
                                    'public_flat_rw -module "top" -var "b__valid"',
                                    'public_flat_rw -module "top" -var "clk"']
    assert "--no-public-flat-rw" in runner.VERILATOR_ARGS


def test_icarus_runs_every_combinational_block_once():
    verilog = ("module top(a);\n  reg \\$auto$verilog_backend.cc:2355:dump_module$1  = 0;\n"
               "  always @* begin\n    if (\\$auto$verilog_backend.cc:2355:dump_module$1 ) begin end\n"
               "  end\nendmodule\n")
    fixed = runner.icarus_source(verilog)
    assert fixed.count("initial #0 \\$auto$verilog_backend.cc:2355:dump_module$1  = 1;") == 1
    assert fixed.replace("  initial #0 \\$auto$verilog_backend.cc:2355:dump_module$1  = 1;\n", "") == verilog
