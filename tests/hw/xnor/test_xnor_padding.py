# amaranth: UnusedElaboratable=no
"""The XNOR engine with more PEs than rows (``P > M``) and more lanes than columns (``S > K``), as
``xnor-image.md`` section 4 allows: on Amaranth's simulator bit-exact against a brute-force reading
of section 5 and the golden model, cycles equal to the cycle model, no hardware for PEs and lanes
that hold only padding, and one run of the Verilog on Verilator."""

import shutil

import numpy as np
import pytest
from amaranth.hdl import Fragment

from eiex.hw.xnor.cycles import pipeline_cycles
from eiex.hw.xnor.engine import buffer_geometries
from eiex.hw.xnor.memory_map import engine_for_sizes, load_writes
from eiex.hw.xnor.mvtu import FETCH, LayerGeometry, Mvtu, MvtuDatapath, mvtu_latency
from eiex.hw.xnor.popcount import popcount_latency
from eiex.sim.pysim.xnor import simulate
from factories import PADDING_XNOR_CASES, brute_force, random_xnor_image as random_image

# test_xnor_rtl.py runs every PADDING_XNOR_CASES network against the spec and the cycle model


@pytest.mark.parametrize("sizes, folds", [PADDING_XNOR_CASES[i] for i in (0, 1, 4)])
def test_back_pressure_and_input_gaps(sizes, folds):
    image = random_image(sizes, folds, seed=7)
    bits = np.random.default_rng(7).integers(0, 2, (8, sizes[0]))
    for out_ready, in_valid, seed in ((0.3, 1.0, 0), (1.0, 0.3, 1), (0.5, 0.5, 2)):
        outputs, _ = simulate(image, bits, out_ready=out_ready, in_valid=in_valid, seed=seed)
        assert np.array_equal(outputs, brute_force(image, bits))


def test_padding_pes_and_lanes_build_nothing():
    """A 3 x 5 hidden layer on 8 PEs of 16 lanes has the memories and popcounts of 3 PEs of 5 lanes,
    writes 3 results a fold and reads 5 input bits; an engine of such layers runs cycle for cycle
    like one with P = M and S = K."""
    padded = LayerGeometry(5, 3, 8, 16, False, 4)
    assert (padded.used_pe, padded.used_simd, padded.padding_columns) == (3, 5, 0)
    unit = Mvtu(padded)
    names = sorted(name for _, name, _ in Fragment.get(MvtuDatapath(padded), None).subfragments)
    assert names == ["popcount0", "popcount1", "popcount2", "thresholds", "weights0_0", "weights1_0", "weights2_0"]
    assert len(unit.dst.data) == 3 and len(unit.src.data) == 5
    assert unit.latency == mvtu_latency(padded) == FETCH + popcount_latency(5) + 2
    # padding columns of used lanes are still counted: S = 4 over K = 5 leaves 3 in the second fold
    assert LayerGeometry(5, 3, 2, 4, False, 4).padding_columns == 3

    exact = engine_for_sizes([5, 3, 2], pe=[3, 2], simd=[5, 3])
    wide = engine_for_sizes([5, 3, 2], pe=[8, 8], simd=[16, 16])
    assert [(g.pe, g.simd) for g in wide] == [(8, 16), (8, 16)]
    assert buffer_geometries(wide) == buffer_geometries(exact)
    assert pipeline_cycles(wide, 5) == pipeline_cycles(exact, 5)


def test_load_skips_the_memories_of_padding_pes():
    image = random_image([20, 3, 5], [(8, 4), (2, 3)], seed=1)
    writes = load_writes(image)
    assert {(w["layer"], w["sel"], w["pe"]) for w in writes} == \
        {(0, sel, p) for sel in (0, 1) for p in range(3)} | {(1, 0, 0), (1, 0, 1)}
    assert len(writes) == 3 * 5 + 3 * 1 + 2 * 3  # fc1: NF * SF = 5 weight words and 1 threshold per PE


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog is not installed")
def test_verilog_on_icarus_equals_golden_and_amaranth():
    """P > M and S > K in both layers, under random gaps and back-pressure: the generated Verilog
    (on Icarus, which builds in a second; Verilator runs the same Verilog elsewhere) against the
    spec and, draw for draw, the Amaranth testbench."""
    from eiex.sim.simulate import simulate as simulate_on

    image = random_image([5, 3, 4], [(6, 8), (8, 5)], seed=2)
    bits = np.random.default_rng(2).integers(0, 2, (6, 5))
    options = dict(in_valid=0.6, out_ready=0.5, seed=3)
    outputs, stats = simulate_on("xnor", image, bits, simulator="icarus", **options)
    assert np.array_equal(outputs, brute_force(image, bits))
    amaranth_outputs, amaranth_stats = simulate(image, bits, **options)
    assert np.array_equal(outputs, amaranth_outputs)
    for key in ("cycles", "intervals", "interval", "ideal_interval"):
        assert stats.figures[key] == amaranth_stats[key], key
