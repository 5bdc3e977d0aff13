"""Hypothesis: the EIE RTL equals the golden model, and its cycles the cycle model, on random
sparse images (engine parameters, layer shapes, densities, ReLU flags and inputs all drawn)."""

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from eiex.hw.eie import golden
from eiex.hw.eie.cycles import engine_cycles
from eiex.hw.eie.params import HwParams
from eiex.sim.pysim.eie import simulate
from eiex.sw.images.eie.encode import IntLayer, build_image
from eiex.sw.images.eie.image import EngineParams


@st.composite
def images_and_inputs(draw):
    n_pe = draw(st.integers(1, 5))
    idx_bits, rel_bits = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    act_bits = draw(st.integers(4, 12))
    params = EngineParams(n_pe=n_pe, idx_bits=idx_bits, rel_bits=rel_bits, act_bits=act_bits,
                          act_frac=draw(st.integers(0, act_bits - 1)), weight_bits=draw(st.integers(3, 10)),
                          bias_bits=16, ptr_bits=12, entries_per_word=draw(st.integers(1, 4)))
    sizes = draw(st.lists(st.integers(1, 12), min_size=2, max_size=4))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    layers = []
    for rows, cols in zip(sizes[1:], sizes[:-1]):
        density = draw(st.floats(0, 1))
        codes = (rng.random((rows, cols)) < density) * rng.integers(1, 2**idx_bits, (rows, cols))
        w = 1 << (params.weight_bits - 1)
        codebook = np.r_[0, rng.integers(-w, w, 2**idx_bits - 1)]
        layers.append(IntLayer(codes, codebook, rng.integers(-3000, 3000, rows), relu=draw(st.booleans()),
                               weight_frac=draw(st.integers(0, 6))))
    lo, hi = params.act_range()
    inputs = rng.integers(lo, hi + 1, (2, sizes[0])) * (rng.random((2, sizes[0])) < draw(st.floats(0, 1)))
    return build_image(layers, params), inputs, draw(st.integers(2, 4))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=images_and_inputs())
def test_rtl_equals_golden_and_cycle_model(case):
    image, inputs, queue_depth = case
    outputs, stats = simulate(image, inputs, queue_depth=queue_depth)
    assert np.array_equal(outputs, golden.run(image, inputs))
    hw = HwParams.for_image(image, queue_depth=queue_depth)
    for i, s in enumerate(stats):
        model = engine_cycles(image, inputs[i : i + 1], hw)
        assert s["compute_cycles"] == model["compute_cycles"]
        assert s["compute_cycles"] >= s["ideal_cycles"]
