"""XNOR engine RTL (Amaranth simulator) against a brute-force evaluation of xnor-image.md section 5."""

import numpy as np
import pytest

from eiex.hw.xnor import golden
from eiex.hw.xnor.cycles import pipeline_cycles, steady_interval
from eiex.hw.xnor.engine import XnorEngine
from eiex.hw.xnor.memory_map import engine_for, memory_contents
from eiex.hw.xnor.mvtu import LayerGeometry
from eiex.sim.pysim.xnor import simulate
from eiex.hw.xnor.verilog import to_verilog
from eiex.sim.tools.lint import have_verilator, lint
from eiex.errors import EiexError
from factories import PADDING_XNOR_CASES, brute_force, random_xnor_image as random_image


CASES = [  # sizes, (P, S) per layer: padding rows and columns, one-step layers, unequal stages,
    # stream-bound pipelines (more scores or input beats per image than the slowest layer's steps)
    ([20, 7, 5], [(3, 4), (2, 3)]),
    ([16, 8, 4], [(8, 16), (4, 8)]),
    ([9, 9, 3], [(1, 1), (2, 2)]),
    ([64, 64, 64, 10], [(8, 32), (8, 32), (5, 32)]),
    ([33, 17, 6], [(17, 11), (6, 17)]),
    ([64, 64, 64, 10], [(16, 64), (16, 64), (10, 64)]),
    *PADDING_XNOR_CASES,  # more PEs than rows, more lanes than columns
]


@pytest.mark.parametrize("sizes, folds", CASES)
@pytest.mark.parametrize("preload", [False, True])
def test_rtl_equals_the_spec(sizes, folds, preload):
    image = random_image(sizes, folds, seed=len(sizes) + sizes[0])
    bits = np.random.default_rng(sizes[0]).integers(0, 2, (5, sizes[0]))
    outputs, stats = simulate(image, bits, preload=preload)
    assert np.array_equal(outputs, brute_force(image, bits))
    assert np.array_equal(outputs, golden.run(image, bits))
    model = pipeline_cycles(engine_for(image), len(bits))
    assert stats["cycles"] == model["cycles"] and stats["intervals"] == model["intervals"]
    assert model["intervals"][-1] == steady_interval(engine_for(image))


def test_back_pressure_and_input_gaps():
    image = random_image([20, 7, 5], [(3, 4), (2, 3)], seed=1)
    bits = np.random.default_rng(1).integers(0, 2, (8, 20))
    for out_ready, in_valid, seed in ((0.3, 1.0, 0), (1.0, 0.3, 1), (0.5, 0.5, 2)):
        outputs, _ = simulate(image, bits, out_ready=out_ready, in_valid=in_valid, seed=seed)
        assert np.array_equal(outputs, brute_force(image, bits))


@pytest.mark.parametrize("folds, interval", [([(8, 32), (8, 32), (5, 32)], 16), ([(4, 16), (4, 16), (1, 16)], 64),
                                             ([(8, 16), (8, 32), (5, 32)], 32)])
def test_pipeline_never_idles(folds, interval):
    """Successive images overlap in every layer: the steady interval is the slowest NF * SF."""
    image = random_image([64, 64, 64, 10], folds, seed=3)
    bits = np.random.default_rng(3).integers(0, 2, (8, 64))
    _, stats = simulate(image, bits)
    assert stats["ideal_interval"] == interval
    assert stats["intervals"][2:] == [interval] * (len(bits) - 3)


@pytest.mark.parametrize("make, message", [
    (lambda: LayerGeometry(0, 4, 1, 1, False, 4), "in_features must be a positive integer, not 0"),
    (lambda: LayerGeometry(4, 4, 1, -2, False, 4), "simd must be a positive integer, not -2"),
    (lambda: XnorEngine([]), "at least one layer"),
    (lambda: XnorEngine([LayerGeometry(4, 4, 1, 1, True, 4), LayerGeometry(4, 2, 1, 1, True, 4)]),
     "only the last layer is the output layer"),
    (lambda: XnorEngine([LayerGeometry(4, 5, 1, 1, False, 4), LayerGeometry(4, 2, 1, 1, True, 4)]),
     "layer 1 takes 4 inputs but layer 0 gives 5"),
])
def test_constructor_messages(make, message):
    with pytest.raises(EiexError, match=message):
        make()


def test_bad_inputs_are_refused():
    image = random_image([20, 7, 5], [(3, 4), (2, 3)], seed=1)
    with pytest.raises(EiexError, match=r"shaped \(samples, 20\)"):
        simulate(image, np.zeros((2, 19), dtype=int))
    with pytest.raises(EiexError, match="integers 0 or 1"):
        simulate(image, np.full((2, 20), 2))


def test_verilog_lint(tmp_path):
    if not have_verilator():
        pytest.skip("verilator is not installed")
    image = random_image([20, 7, 5], [(3, 4), (2, 3)], seed=1)
    source = tmp_path / "xnor_engine.v"
    source.write_text(to_verilog(engine_for(image), init=memory_contents(image)))
    result = lint(source, "xnor_engine")
    assert result.returncode == 0, result.stderr[-4000:]
