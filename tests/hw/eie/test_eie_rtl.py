# amaranth: UnusedElaboratable=no
"""EIE engine RTL (Amaranth simulator) against the golden model, the cycle model and Verilator lint."""


import numpy as np
import pytest
from amaranth.sim import Simulator

from eiex.hw.eie import golden
from eiex.hw.eie.cycles import LAYER_LATENCY, engine_cycles, ideal_cycles, pipeline_latency
from eiex.hw.eie.engine import EieEngine
from eiex.hw.eie.lnzd import LeadingNonZero
from eiex.hw.eie.params import HwParams
from eiex.sim.pysim.eie import simulate
from eiex.hw.eie.verilog import to_verilog
from eiex.sim.tools.lint import have_verilator, lint
from eiex.sw.images.eie.encode import IntLayer, build_image
from eiex.sw.images.eie.image import EngineParams
from eiex.errors import EiexError
from factories import P, random_eie_image as random_image, random_inputs, run_eie_reloaded


# (id, params, layer sizes, image options, queue depth)
CASES = [
    ("one-pe", P(1), [9, 7, 5], dict(density=0.4), 8),
    ("two-pe-8bit", P(2, act_bits=8, act_frac=2), [12, 10, 6], dict(density=0.5), 8),
    ("three-pe", P(3, epw=1), [14, 11, 9, 4], dict(density=0.3), 8),
    ("four-pe-16bit", P(4, act_bits=16, act_frac=8, weight_bits=10, bias_bits=28), [16, 13, 8],
     dict(density=0.35, weight_frac=9), 8),
    ("eight-pe", P(8, idx_bits=4, rel_bits=3, epw=4), [24, 20, 17], dict(density=0.25), 8),
    ("five-pe-more-pes-than-rows", P(5), [6, 3, 2], dict(density=0.7), 8),
    ("eight-pe-single-row", P(8), [10, 1], dict(density=0.9), 8),
    ("long-gaps-fillers", P(2, rel_bits=1, idx_bits=2), [8, 20, 6], dict(density=0.1, gaps=True), 8),
    ("empty-columns", P(3), [12, 9, 7], dict(density=0.3, empty_cols=4), 8),
    ("uneven-loads", P(4, epw=5), [16, 20, 12], dict(density=0.3, uneven=True), 2),
    ("saturation-no-relu", P(3, act_bits=8, act_frac=0, weight_bits=8, bias_bits=20), [10, 9, 6],
     dict(density=0.8, relu=(False,), weight_frac=0, full_range=True), 8),
    ("saturation-relu-round", P(4, act_bits=12, act_frac=4, weight_bits=6, bias_bits=16), [10, 8, 8],
     dict(density=0.6, weight_frac=1, full_range=True), 3),
    ("smallest-queue", P(3, idx_bits=2), [12, 12, 5], dict(density=0.5, uneven=True), 2),
    ("wide-frac", P(2, act_bits=9, act_frac=4, weight_bits=7, bias_bits=30), [7, 6, 3],
     dict(density=0.6, weight_frac=25, full_range=True), 8),
]


@pytest.mark.parametrize("name, params, sizes, options, depth", CASES, ids=[c[0] for c in CASES])
def test_rtl_equals_golden_and_cycle_model(name, params, sizes, options, depth):
    seed = sum(map(ord, name))
    image = random_image(params, sizes, seed=seed, **options)
    x = random_inputs(params, sizes[0], 2, seed)
    hw = HwParams.for_image(image, queue_depth=depth)
    out, stats = simulate(image, x, hw=hw)
    expected = golden.run(image, x)
    np.testing.assert_array_equal(out, expected)
    if name.startswith("saturation"):
        lo, hi = params.act_range()
        layers = golden.run_layers(image, x)
        assert any(((y == lo) | (y == hi)).any() for y in layers), "the case should saturate"
    for s in range(len(x)):
        model = engine_cycles(image, x[s], hw)
        assert stats[s] == {"cycles": model["cycles"], "compute_cycles": model["compute_cycles"],
                            "ideal_cycles": model["ideal_cycles"]}
        assert stats[s]["compute_cycles"] >= model["ideal_cycles"]


def test_back_pressure_input_gaps_and_back_to_back_inferences():
    params = P(3, act_bits=9)
    image = random_image(params, [11, 9, 7], density=0.4, seed=7)
    x = random_inputs(params, 11, 4, seed=7)
    x[2] = 0  # an all-zero input vector: no broadcast at all in the first layer
    out, stats = simulate(image, x, out_ready=0.4, in_valid=0.5, seed=3)
    np.testing.assert_array_equal(out, golden.run(image, x))
    hw = HwParams.for_image(image)
    for s in range(len(x)):  # the computation itself does not see the stream handshakes
        assert stats[s]["compute_cycles"] == engine_cycles(image, x[s], hw)["compute_cycles"]
        assert stats[s]["cycles"] > engine_cycles(image, x[s], hw)["cycles"]


def test_next_vector_counts_its_inputs_against_the_first_layer():
    """After a vector's outputs the layer table is read again at row 0: the next vector's end of
    input is decided on the first layer's 12 columns, not on the last layer's single one (found by
    Hypothesis: the engine took one input, ran, then waited forever)."""
    params = P(5, idx_bits=1, act_bits=6, act_frac=0, weight_bits=4)
    rng = np.random.default_rng(5)
    layers = [IntLayer(rng.integers(0, 2, (7, 12)), np.array([0, -5]), rng.integers(-3000, 3000, 7), True, 0),
              IntLayer(np.ones((1, 7), dtype=np.int64), np.array([0, -7]), np.array([2344]), True, 0),
              IntLayer(np.ones((4, 1), dtype=np.int64), np.array([0, 4]), rng.integers(-3000, 3000, 4), False, 0)]
    image = build_image(layers, params)
    x = random_inputs(params, 12, 3, seed=5)
    out, stats = simulate(image, x, queue_depth=2)
    np.testing.assert_array_equal(out, golden.run(image, x))
    hw = HwParams.for_image(image, queue_depth=2)
    assert [s["cycles"] for s in stats] == [engine_cycles(image, v, hw)["cycles"] for v in x]


def test_no_rebroadcast_from_a_window_still_being_written_back():
    """Regression: while the scan waited for the write-back of a window, stale flags of that bank
    (from an earlier layer) kept stage B from emptying after a broadcast, so the same (j, a_j) went
    out twice. Found by a random sweep (4 PEs, 2-slot windows, 2 non-zeros per column)."""
    params = EngineParams(n_pe=4, idx_bits=1, rel_bits=4, act_bits=15, act_frac=4, weight_bits=11,
                          bias_bits=25, ptr_bits=12, entries_per_word=4)
    image = random_image(params, [4, 25, 16, 20, 29], density=0.9, seed=174, relu=(True,),
                         weight_frac=1, gaps=True, empty_cols=2)
    x = random_inputs(params, 4, 3, seed=174, zeros=0.06)
    hw = HwParams.for_image(image, queue_depth=8, window_slots=2)
    out, stats = simulate(image, x, hw=hw)
    np.testing.assert_array_equal(out, golden.run(image, x))
    assert [s["compute_cycles"] for s in stats] == \
        [engine_cycles(image, v, hw)["compute_cycles"] for v in x]


def test_reload_another_image_at_run_time():
    """The load interface (I/O mode) overwrites every memory of a running engine: image B after
    image A, without a reset, computes B's results."""
    params = P(3, idx_bits=2)
    images = [random_image(params, [9, 8, 6], density=d, seed=s) for d, s in ((0.6, 21), (0.3, 22))]
    hw = HwParams(params, max_width=9, max_layers=2, spmat_depth=40, ptr_depth=20, bias_depth=8)
    x = random_inputs(params, 9, 2, seed=21)
    results = run_eie_reloaded(hw, images, x)
    for image, out in zip(images, results):
        np.testing.assert_array_equal(out, golden.run(image, x))


def test_elaboration_time_memory_init():
    params = P(4)
    image = random_image(params, [10, 12, 5], density=0.4, seed=11)
    x = random_inputs(params, 10, 2, seed=11)
    out, _ = simulate(image, x, preload=True)
    np.testing.assert_array_equal(out, golden.run(image, x))


def test_ideal_cycles_by_hand():
    params = P(2, rel_bits=4, idx_bits=2)
    codes = np.array([[1, 0, 2], [0, 0, 3], [1, 1, 0], [2, 0, 1]])  # PE0: rows 0, 2; PE1: rows 1, 3
    image = build_image([IntLayer(codes, np.array([0, 1, 2, 3]), np.zeros(4, dtype=np.int64),
                                  relu=False, weight_frac=0)], params)
    # inputs 0 and 2 non-zero: PE0 holds 2 + 1 entries there, PE1 1 + 2; nnz = 2 -> 3 cycles
    assert ideal_cycles(image, np.array([5, 0, 7])) == 3
    assert ideal_cycles(image, np.array([0, 4, 0])) == 1  # column 1: PE0 one entry
    assert ideal_cycles(image, np.array([0, 0, 0])) == 0


@pytest.mark.parametrize("n_pe, layers, slots", [(1, 1, 1), (1, 3, 9), (8, 2, 2), (3, 4, 1)])
def test_pipeline_latency_is_what_a_layer_costs_beyond_its_work(n_pe, layers, slots):
    """One non-zero input and one entry per layer: no PE can wait, so compute_cycles is exactly
    ideal_cycles plus the fixed latency, in the cycle model and in the RTL."""
    params = P(n_pe, rel_bits=4, idx_bits=2)
    rows = (slots - 1) * n_pe + 1
    first = np.zeros((rows, 1), dtype=np.int64)
    first[0, 0] = 1
    hidden = np.zeros((rows, rows), dtype=np.int64)
    hidden[0, 0] = 1
    image = build_image([IntLayer(first if l == 0 else hidden, np.array([0, 1, 2, 3]), np.zeros(rows, dtype=np.int64),
                                  relu=True, weight_frac=0) for l in range(layers)], params)
    hw = HwParams.for_image(image, queue_depth=8)
    model = engine_cycles(image, np.array([1]), hw)
    assert model["ideal_cycles"] == layers
    assert model["compute_cycles"] == layers + pipeline_latency(image, hw)
    assert pipeline_latency(image, hw) >= layers * LAYER_LATENCY + slots + 1
    _, stats = simulate(image, np.array([[1]]), hw=hw)
    assert stats[0]["compute_cycles"] == model["compute_cycles"]


def test_throughput_on_typical_layers():
    """8 PEs, queue depth 8, ~10 % weights and ~50 % zero activations: the engine stays within
    5 % of the spec's ideal plus its fixed pipeline latency."""
    params = EngineParams(n_pe=8, idx_bits=4, rel_bits=4, act_bits=16, act_frac=8, weight_bits=8,
                          bias_bits=32, ptr_bits=16, entries_per_word=8)
    for sizes, density in [([784, 300, 100, 10], 0.08), ([256, 256, 128, 10], 0.1),
                           ([128, 128, 128], 0.15), ([64, 64, 64, 64], 0.3)]:
        image = random_image(params, sizes, density, seed=len(sizes) + sizes[0],
                             relu=(True,), weight_frac=6)
        hw = HwParams.for_image(image, queue_depth=8)
        for x in random_inputs(params, sizes[0], 2, seed=sizes[0], zeros=0.5):
            m = engine_cycles(image, x, hw)
            assert m["compute_cycles"] <= 1.05 * m["ideal_cycles"] + pipeline_latency(image, hw), (sizes, m)
    # and the model is the RTL's count on one such image (small enough for the simulator)
    image = random_image(params, [40, 48, 24], 0.2, seed=5, relu=(True,), weight_frac=6)
    x = random_inputs(params, 40, 1, seed=5, zeros=0.5)
    hw = HwParams.for_image(image, queue_depth=8)
    _, stats = simulate(image, x, hw=hw)
    assert stats[0]["compute_cycles"] == engine_cycles(image, x[0], hw)["compute_cycles"]


def test_lnzd_tree_finds_the_lowest_set_flag():
    dut = LeadingNonZero(19)
    rng = np.random.default_rng(0)
    patterns = [0, 1, 1 << 18, (1 << 19) - 1] + [int(rng.integers(0, 1 << 19)) & int(rng.integers(0, 1 << 19))
                                                for _ in range(60)]

    async def bench(ctx):
        for flags in patterns:
            ctx.set(dut.flags, flags)
            assert ctx.get(dut.found) == (flags != 0)
            if flags:
                assert ctx.get(dut.index) == (flags & -flags).bit_length() - 1

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("make, message", [
    (lambda: HwParams(P(2), queue_depth=0), "queue_depth must be a positive integer, not 0"),
    (lambda: HwParams(P(2), max_width=-3), "max_width must be a positive integer, not -3"),
    (lambda: HwParams(P(2), queue_depth=1), "queue_depth must be at least 2"),
    (lambda: HwParams(P(2), ptr_depth=1), "ptr_depth must be at least 2"),
    (lambda: HwParams("p"), "engine must be an EngineParams, not str"),
    (lambda: LeadingNonZero(0), "width must be a positive integer, not 0"),
    (lambda: EieEngine(P(2)), "hw must be a HwParams, not EngineParams"),
    (lambda: EieEngine(HwParams(P(2)), init={"pes": [], "layers": []}), "init holds 0 PEs, the engine has 2"),
])
def test_constructor_messages(make, message):
    with pytest.raises(EiexError, match=message):
        make()


def test_image_too_big_for_the_engine():
    image = random_image(P(2), [20, 10], density=0.5, seed=1)
    with pytest.raises(EiexError, match="the image needs max_width = 20, the engine has 8"):
        HwParams(P(2), max_width=8).check_image(image)


def test_verilog_lint(tmp_path):
    if not have_verilator():
        pytest.skip("verilator is not installed")
    hw = HwParams(P(3, epw=3), max_width=20, max_layers=3, spmat_depth=40, ptr_depth=50, bias_depth=20)
    source = tmp_path / "eie_engine.v"
    source.write_text(to_verilog(hw, name="eie_engine"))
    result = lint(source, "eie_engine")
    assert result.returncode == 0, result.stderr[-4000:]


def test_columns_empty_in_some_pes_cost_them_nothing():
    """Every column has entries in only half of the PEs (a different half each time): a PE
    enqueues only the columns it has entries in, so the engine runs within 10% of its ideal
    beyond the pipeline latency. A PE that enqueued every column would spend a cycle on each empty
    one: about 1.6 times the ideal here. (The broadcast still stalls while any queue is nearly
    full, the price of deciding it from a register.)"""
    params = EngineParams(n_pe=8, idx_bits=4, rel_bits=4, act_bits=16, act_frac=8, weight_bits=8,
                          bias_bits=32, ptr_bits=16, entries_per_word=8)
    rng = np.random.default_rng(7)
    rows, cols = 64, 160
    codes = np.zeros((rows, cols), dtype=np.int64)
    for c in range(cols):
        for p in rng.choice(8, size=4, replace=False):
            local = rng.choice(rows // 8, size=3, replace=False)
            codes[local * 8 + p, c] = rng.integers(1, params.codebook_size, 3)
    codebook = np.r_[0, rng.integers(-40, 40, params.codebook_size - 1)]
    layer = IntLayer(codes, codebook, rng.integers(-1000, 1000, rows), relu=True, weight_frac=6)
    image = build_image([layer], params)
    hw = HwParams.for_image(image, queue_depth=8)
    x = random_inputs(params, cols, 1, seed=7, zeros=0.3)
    m = engine_cycles(image, x[0], hw)
    empty = (np.stack([np.diff(pe.ptr[:cols + 1]) for pe in image.pes]) == 0).mean()
    assert empty > 0.4
    assert m["compute_cycles"] <= 1.10 * m["ideal_cycles"] + pipeline_latency(image, hw), m
    y, stats = simulate(image, x, hw=hw)
    assert np.array_equal(y, golden.run(image, x))
    assert stats[0]["compute_cycles"] == m["compute_cycles"]


def test_ideal_cycles_of_a_batch_against_a_loop_over_the_columns():
    """Section 10 for many vectors at once equals the definition, column by column and PE by PE."""
    from eiex.hw.eie.cycles import ideal_cycles_batch

    params = P(3, act_bits=9)
    image = random_image(params, [11, 9, 7], density=0.4, seed=7, empty_cols=2)
    x = random_inputs(params, 11, 6, seed=7)
    x[2] = 0
    expected = []
    for v in x:
        total, layer_in = 0, [v] + [a[0] for a in golden.run_layers(image, v[None, :])[:-1]]
        for l, a_l in enumerate(layer_in):
            layer, nz = image.layers[l], [c for c in range(len(a_l)) if a_l[c] != 0]
            work = [sum(int(pe.ptr[layer.ptr_base + c + 1] - pe.ptr[layer.ptr_base + c]) for c in nz)
                    for pe in image.pes]
            total += max(len(nz), max(work))
        expected.append(total)
    assert ideal_cycles_batch(image, x).tolist() == expected
    assert [ideal_cycles(image, v) for v in x] == expected
