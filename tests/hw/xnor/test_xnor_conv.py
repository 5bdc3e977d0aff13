"""Conv and pool layers on the XNOR engine's RTL (Amaranth simulator): every layer's output bits
against the golden model of xnor-image section 7 (itself checked against a literal reading of the
spec), scores, and cycles against the exact cycle model."""

import numpy as np
import pytest

from eiex.errors import EiexError
from eiex.hw.xnor import golden
from eiex.hw.xnor.conv import ConvGeometry, ConvUnit
from eiex.hw.xnor.cycles import pipeline_cycles, steady_interval
from eiex.hw.xnor.engine import XnorEngine
from eiex.hw.xnor.maps import MapBuffer, MapGeometry
from eiex.hw.xnor.memory_map import engine_for, load_writes, pack_input
from eiex.hw.xnor.mvtu import LayerGeometry
from eiex.hw.xnor.pool import PoolGeometry
from eiex.sim.pysim.xnor import simulate
from factories import XNOR_MAP_NETWORKS, build_xnor_image

#: beyond the image-format cases: a pixel-by-pixel window (C >= S) with P not dividing M, a conv
#: narrower than its kernel row's reads (one position per reads, T > NF * SF), a 1-pixel output map
MORE_NETWORKS = {
    "pixel_reads_p_not_dividing_m": ([6, 5, 4], [("conv", 7, 3, 3, 4), ("output", 3, 2, 12)]),
    "window_bound": ([5, 6, 2], [("conv", 2, 3, 2, 18), ("output", 2, 2, 9)]),
    "one_position": ([3, 3, 3], [("conv", 4, 3, 2, 9), ("pool", 1), ("output", 2, 1, 4)]),
}
NETWORKS = {**XNOR_MAP_NETWORKS, **MORE_NETWORKS}


def layer_by_layer(image, bits, **options):
    """Scores and statistics of a run that also records every unit's writes."""
    outputs, stats = simulate(image, bits, hidden_outputs=True, **options)
    expected = golden.run_layers(image, bits)
    for l, (hardware, reference) in enumerate(zip(stats["hidden_outputs"], expected)):
        assert np.array_equal(hardware, reference), f"layer {image.layers[l].name} differs"
    assert np.array_equal(outputs, golden.run(image, bits))
    return outputs, stats


@pytest.mark.parametrize("name", NETWORKS)
def test_every_layer_equals_the_golden_model_and_the_cycle_model(name):
    in_shape, plan = NETWORKS[name]
    image = build_xnor_image(in_shape, plan, seed=len(name))
    bits = np.random.default_rng(len(name)).integers(0, 2, (5, image.inputs))
    _, stats = layer_by_layer(image, bits)
    layers = engine_for(image)
    model = pipeline_cycles(layers, len(bits))
    assert stats["cycles"] == model["cycles"] and stats["intervals"] == model["intervals"]
    assert model["intervals"][-1] == steady_interval(layers)


def test_gaps_and_back_pressure():
    in_shape, plan = XNOR_MAP_NETWORKS["two_convs"]
    image = build_xnor_image(in_shape, plan, seed=2)
    bits = np.random.default_rng(2).integers(0, 2, (6, image.inputs))
    for out_ready, in_valid, seed in ((0.2, 1.0, 0), (1.0, 0.3, 1)):
        layer_by_layer(image, bits, out_ready=out_ready, in_valid=in_valid, seed=seed)


def test_preloaded_memories():
    in_shape, plan = XNOR_MAP_NETWORKS["k3_p_is_m"]
    image = build_xnor_image(in_shape, plan, seed=3)
    bits = np.random.default_rng(3).integers(0, 2, (3, image.inputs))
    layer_by_layer(image, bits, preload=True)


def test_interval_is_ideal_when_the_mvtu_is_slower_than_the_window():
    """The conv layer's steady interval is ``positions * NF * SF`` when its window reads keep up:
    kernel-row reads (``k`` a position) when a pixel is narrower than the SIMD word, pixel reads
    (``k * k``) otherwise; a layer whose ``NF * SF`` is below its reads waits for them."""
    rows = ConvGeometry((10, 10, 2), 8, 3, 2, 6, 5)  # C = 2 < S = 6: kernel rows, 3 reads; NF * SF = 12
    pixels = ConvGeometry((10, 10, 8), 8, 3, 4, 8, 8)  # C = 8 = S: 9 pixel reads; NF * SF = 2 * 9
    bound = ConvGeometry((10, 10, 2), 8, 3, 8, 18, 5)  # NF * SF = 1 < 3 kernel-row reads
    assert (rows.group, rows.reads, rows.position_cycles) == (3, 3, 12)
    assert (pixels.group, pixels.reads, pixels.position_cycles) == (1, 9, 18)
    assert (bound.group, bound.reads, bound.position_cycles) == (3, 3, 3)
    for g in (rows, pixels, bound):
        fc = LayerGeometry(g.out_features, 4, 4, 64, True, 2)
        assert steady_interval([g, fc]) == g.positions * g.position_cycles


def test_map_buffer_reads_runs_of_pixels_from_any_column():
    """A map written pixel by pixel is read back ``g`` pixels at a time from every ``x0``."""
    from amaranth.sim import Simulator

    geometry = MapGeometry((3, 7, 2), 3)
    buf = MapBuffer(geometry)
    pixels = np.random.default_rng(0).integers(0, 4, (3, 7))
    seen = {}

    async def bench(ctx):
        ctx.set(buf.w.bank, 1)
        for y in range(3):
            for x in range(7):
                ctx.set(buf.w.we, 1)
                ctx.set(buf.w.data, int(pixels[y, x]))
                ctx.set(buf.w.commit, y == 2 and x == 6)
                await ctx.tick()
        ctx.set(buf.w.we, 0)
        ctx.set(buf.r.bank, 1)
        for y in range(3):
            for x0 in range(5):
                ctx.set(buf.r.word, y * geometry.row_words + x0 // 3)
                ctx.set(buf.r.xmod, x0 % 3)
                await ctx.tick()
                seen[y, x0] = ctx.get(buf.r.data)

    sim = Simulator(buf)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for (y, x0), word in seen.items():
        assert [(word >> (2 * e)) & 3 for e in range(3)] == pixels[y, x0:x0 + 3].tolist()


def test_input_beats_of_a_map_are_its_pixels():
    image = build_xnor_image([2, 3, 3], [("conv", 2, 2, 1, 4), ("output", 2, 1, 8)])
    bits = np.random.default_rng(0).integers(0, 2, (2, 18))
    beats = pack_input(image, bits)
    assert len(beats[0]) == 6 and all(0 <= b < 8 for b in beats[0])
    assert [sum(((b >> c) & 1) << (3 * j + c) for j, b in enumerate(beats[1]) for c in range(3))] == \
        [sum(int(v) << i for i, v in enumerate(bits[1]))]


def test_pool_layers_have_no_memories_to_load():
    in_shape, plan = XNOR_MAP_NETWORKS["k3_p_is_m"]
    image = build_xnor_image(in_shape, plan)
    assert {w["layer"] for w in load_writes(image)} == {0, 2, 3}


@pytest.mark.parametrize("make, message", [
    (lambda: XnorEngine([LayerGeometry(18, 18, 2, 9, False, 6), ConvGeometry((3, 3, 2), 2, 2, 1, 4, 4),
                         LayerGeometry(8, 2, 1, 8, True, 2)]), "layer 1 takes a map but layer 0 is fully connected"),
    (lambda: XnorEngine([ConvGeometry((4, 4, 1), 2, 3, 1, 9, 5), LayerGeometry(9, 2, 1, 8, True, 2)]),
     "layer 1 takes 9 inputs but layer 0 gives 8"),
    (lambda: XnorEngine([PoolGeometry((4, 4, 2), 2), ConvGeometry((3, 3, 2), 2, 2, 1, 4, 4),
                         LayerGeometry(8, 2, 1, 8, True, 2)]), r"layer 1 takes a \[3, 3, 2\] map but layer 0 gives"),
    (lambda: ConvGeometry((2, 5, 1), 2, 3, 1, 9, 5), "a 3x3 kernel does not fit a 2x5 map"),
    (lambda: PoolGeometry((2, 5, 1), 3), "pooling a 2x5 map by 3 leaves nothing"),
    (lambda: ConvUnit((4, 4, 1)), "geometry must be a ConvGeometry, not tuple"),
    (lambda: MapGeometry((4, 4), 1), "a map needs a shape"),
])
def test_refused_in_one_line(make, message):
    with pytest.raises(EiexError, match=message) as info:
        make()
    assert "\n" not in str(info.value)
