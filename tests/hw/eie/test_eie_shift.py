# amaranth: UnusedElaboratable=no
"""The shift MAC (``HwParams.mac == "shift"``): codebooks of powers of two held as shift codes, the
product as a shift. The encoder against a brute-force reference, the product against ``w * a``, and
the engine on Amaranth's simulator bit-exact against the golden model and cycle-exact against the
cycle model, loaded through the load interface and preloaded."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from eiex.errors import EiexError
from eiex.hw.eie import golden
from eiex.hw.eie.cycles import engine_cycles
from eiex.hw.eie.mac import Product, ShiftEncoder, codebook_init, shift_code
from eiex.hw.eie.params import HwParams
from eiex.sim.pysim.eie import simulate
from eiex.sw.images.eie.encode import IntLayer, build_image
from eiex.sw.images.eie.powers import check_shift_codebook, is_power_of_two_codebook
from eiex.sw.images.words import to_unsigned
from factories import P, power_of_two_eie_image, random_eie_image, random_inputs, run_eie_reloaded


def reference_code(value: int, weight_bits: int) -> dict:
    """Brute force: the lowest set bit found by scanning the two's complement bits one by one."""
    bits = value & ((1 << weight_bits) - 1)
    k = next((i for i in range(weight_bits) if bits >> i & 1), 0)
    return {"nonzero": int(bits != 0), "neg": bits >> (weight_bits - 1) & 1, "k": k}


def powers(weight_bits: int) -> set[int]:
    """0 and every signed power of two that fits ``weight_bits``, by enumeration."""
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    return {0} | {s * (1 << k) for s in (1, -1) for k in range(weight_bits) if lo <= s * (1 << k) <= hi}


def decode(code: dict) -> int:
    return 0 if not code["nonzero"] else (-1) ** code["neg"] * (1 << code["k"])


@pytest.mark.parametrize("weight_bits", [2, 5, 8])
def test_encoder_rtl_equals_brute_force_over_every_value(weight_bits):
    dut = ShiftEncoder(weight_bits)
    values = range(-(1 << (weight_bits - 1)), 1 << (weight_bits - 1))

    async def bench(ctx):
        for v in values:
            ctx.set(dut.value, v)
            got = {name: ctx.get(getattr(dut.code, name)) for name in ("nonzero", "neg", "k")}
            assert got == reference_code(v, weight_bits), v

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("weight_bits", [2, 3, 8, 16])
def test_shift_codes_stand_exactly_for_the_powers_of_two(weight_bits):
    values = range(-(1 << (weight_bits - 1)), 1 << (weight_bits - 1))
    exact = powers(weight_bits)
    assert {-(1 << (weight_bits - 1)), 1 << (weight_bits - 2), 1, -1, 0} <= exact
    for v in values:
        assert shift_code(v) == reference_code(v, weight_bits)
        assert (decode(shift_code(v)) == v) == (v in exact), v
    mask = is_power_of_two_codebook(np.array(values), weight_bits)
    assert {v for v, ok in zip(values, mask) if ok} == exact
    # beyond the width: 2**(weight_bits - 1) is a power of two that does not fit
    assert not is_power_of_two_codebook(np.array([1 << (weight_bits - 1)]), weight_bits)[0]


def test_codebook_init_converts_the_unsigned_words():
    hw = HwParams(P(2, weight_bits=8), mac="shift")
    values = [0, 1, -1, 64, -128, 0, 32, -2]
    assert codebook_init(hw, to_unsigned(values, 8)) == [shift_code(v) for v in values]
    assert codebook_init(HwParams(P(2, weight_bits=8)), to_unsigned(values, 8)) == values


@pytest.mark.parametrize("mac", ["multiply", "shift"])
def test_product_is_w_times_a_two_cycles_later(mac):
    """Every power of two of 6 bits times every activation of 5 bits (both ends included)."""
    hw = HwParams(P(1, act_bits=5, weight_bits=6), mac=mac)
    dut = Product(hw)
    weights = sorted(powers(6))
    cases = [(w, a) for w in weights for a in range(-16, 16)]

    async def bench(ctx):
        for t, (w, a) in enumerate(cases + [(0, 0)]):
            ctx.set(dut.a, a)
            ctx.set(dut.w, shift_code(w) if mac == "shift" else w)
            await ctx.tick()  # the inputs of t - 1 are now through both stages
            if t >= 1:
                w_in, a_in = cases[t - 1]
                assert ctx.get(dut.p) == w_in * a_in, (w_in, a_in)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def shift_case():
    """3 PEs, 11 inputs, 9 and 7 rows; every codebook holds 0 at a non-zero code, +1, -1,
    +2**(weight_bits - 2) and -2**(weight_bits - 1); inputs negative, zero and at both ends."""
    params = P(3, act_bits=10, weight_bits=8)
    image = power_of_two_eie_image(params, [11, 9, 7], density=0.5, seed=3)
    x = random_inputs(params, 11, 3, seed=3, zeros=0.3)
    lo, hi = params.act_range()
    x[1] = np.where(np.arange(11) % 2, lo, hi)
    return image, x


def test_case_holds_every_kind_of_entry():
    image, x = shift_case()
    wb = image.engine.weight_bits
    for l in range(len(image.layers)):
        book = image.layer_codebook(l).tolist()
        assert 0 in book[1:] and {1, -1, 1 << (wb - 2), -(1 << (wb - 1))} <= set(book)
    assert (x < 0).any() and x.min() == image.engine.act_range()[0]


@pytest.mark.parametrize("preload", [False, True], ids=["load-interface", "preloaded"])
def test_shift_engine_equals_golden_and_cycle_model(preload):
    image, x = shift_case()
    hw = HwParams.for_image(image, mac="shift")
    out, stats = simulate(image, x, hw=hw, preload=preload)
    np.testing.assert_array_equal(out, golden.run(image, x))
    for s, v in enumerate(x):
        model = engine_cycles(image, v, hw)
        assert stats[s] == {k: model[k] for k in ("cycles", "compute_cycles", "ideal_cycles")}


def test_shift_engine_reloaded_at_run_time():
    """Every word through the load interface, image B over image A without a reset: B's zero
    entries at non-zero codes replace A's powers (the encoder writes them as the weight 0)."""
    params = P(3, idx_bits=3, weight_bits=8)
    images = [power_of_two_eie_image(params, [9, 8, 6], density=d, seed=s) for d, s in ((0.6, 21), (0.4, 22))]
    assert images[1].layer_codebook(0).tolist() != images[0].layer_codebook(0).tolist()
    hw = HwParams(params, max_width=9, max_layers=2, spmat_depth=40, ptr_depth=20, bias_depth=8, mac="shift")
    x = random_inputs(params, 9, 2, seed=21)
    results = run_eie_reloaded(hw, images, x)
    for image, out in zip(images, results):
        np.testing.assert_array_equal(out, golden.run(image, x))


def not_powers_image():
    """Layer fc2's code 5 is 3, not a power of two."""
    params = P(2, idx_bits=3, weight_bits=8)
    rng = np.random.default_rng(0)
    books = [np.array([0, 1, -2, 4, -8, 16, -32, 64]), np.array([0, 1, 2, 4, 8, 3, -1, -128])]
    layers = [IntLayer(rng.integers(0, 8, (rows, cols)), book, np.zeros(rows, dtype=np.int64), True, 2)
              for (rows, cols), book in zip([(5, 6), (4, 5)], books)]
    return build_image(layers, params)


@pytest.mark.parametrize("make, message", [
    (lambda: HwParams(P(2), mac="add"), "mac must be one of multiply, shift, index, not 'add'"),
    (lambda: HwParams(P(2), mac=None), "mac must be one of multiply, shift, index, not None"),
    (lambda: HwParams.for_image(not_powers_image(), mac="shift").check_image(not_powers_image()),
     "^--mac shift needs every codebook entry to be 0 or a signed power of two; layer fc2 code 5 is 3$"),
    (lambda: check_shift_codebook(random_eie_image(P(2), [6, 4], 0.5, seed=1)),
     "--mac shift needs every codebook entry to be 0 or a signed power of two; layer fc1 code"),
    (lambda: simulate(not_powers_image(), np.zeros((1, 6), dtype=np.int64), mac="shift"),
     "layer fc2 code 5 is 3"),
])
def test_refusals_are_one_clear_line(make, message):
    with pytest.raises(EiexError, match=message):
        make()


def test_multiply_engine_still_runs_any_codebook():
    image = not_powers_image()
    HwParams.for_image(image).check_image(image)
    HwParams.for_image(power_of_two_eie_image(P(2), [6, 4], 0.5, seed=1), mac="shift").check_image(
        power_of_two_eie_image(P(2), [6, 4], 0.5, seed=1))
