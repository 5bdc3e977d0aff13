# amaranth: UnusedElaboratable=no
"""The index MAC (``HwParams.mac == "index"``): no codebook memory, the weight is the entry's code
read as a signed ``idx_bits`` integer. The product against ``w * a`` over every pair, the engine on
Amaranth's simulator bit-exact against the golden model (which reads the image's identity
codebook) and cycle-exact against the cycle model, loaded through the load interface, preloaded and
reloaded; codebook writes dropped; the refusals; and the Verilog without a codebook memory."""

import re

import numpy as np
import pytest
from amaranth.sim import Simulator

from eiex import api
from eiex.errors import EiexError
from eiex.hw.eie import golden, memory_map
from eiex.hw.eie.cycles import engine_cycles
from eiex.hw.eie.engine import MemSel
from eiex.hw.eie.mac import Product
from eiex.hw.eie.params import HwParams
from eiex.hw.eie.verilog import to_verilog
from eiex.sim.pysim.eie import simulate
from eiex.sw.images.eie.encode import IntLayer, build_image
from factories import P, identity_eie_image, random_eie_image, random_inputs, run_eie_reloaded


def signed(v: int, bits: int) -> int:
    """Two's complement by hand: the top bit weighs -2**(bits - 1)."""
    return sum(((v >> i) & 1) << i for i in range(bits - 1)) - ((v >> (bits - 1)) & 1) * (1 << (bits - 1))


@pytest.mark.parametrize("idx_bits, weight_bits", [(4, 6), (5, 5), (1, 3)])
def test_product_is_the_signed_code_times_a_two_cycles_later(idx_bits, weight_bits):
    """Every code of ``idx_bits`` (read as a signed integer) times every activation of 5 bits."""
    hw = HwParams(P(1, idx_bits=idx_bits, act_bits=5, weight_bits=weight_bits), mac="index")
    dut = Product(hw)
    assert dut.w.shape().width == idx_bits and dut.w.shape().signed  # the narrower multiplier
    cases = [(signed(v, idx_bits), a) for v in range(1 << idx_bits) for a in range(-16, 16)]
    assert min(w for w, _ in cases) == -(1 << (idx_bits - 1))

    async def bench(ctx):
        for t, (w, a) in enumerate(cases + [(0, 0)]):
            ctx.set(dut.a, a)
            ctx.set(dut.w, w)
            await ctx.tick()
            if t >= 1:
                w_in, a_in = cases[t - 1]
                assert ctx.get(dut.p) == w_in * a_in, (w_in, a_in)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


#: (params, weight_frac): idx_bits below weight_bits; idx_bits == weight_bits (the most negative code
#: is the most negative weight); weight_frac 0 (no rounding)
CASES = {
    "idx4-wb8": (P(3, idx_bits=4, act_bits=10, weight_bits=8), 3),
    "idx6-wb6-frac0": (P(2, idx_bits=6, act_bits=8, weight_bits=6, rel_bits=3), 0),
}


def index_case(key):
    """11 inputs, 9 and 7 rows; inputs negative, zero and at both ends of the range."""
    params, frac = CASES[key]
    image = identity_eie_image(params, [11, 9, 7], density=0.5, seed=3, weight_frac=frac)
    x = random_inputs(params, 11, 3, seed=3, zeros=0.3)
    lo, hi = params.act_range()
    x[1] = np.where(np.arange(11) % 2, lo, hi)
    return image, x


@pytest.mark.parametrize("key", CASES)
def test_case_uses_every_kind_of_code(key):
    image, x = index_case(key)
    b = image.engine.idx_bits
    for l in range(len(image.layers)):
        w = golden.decode_weights(image, l)
        assert {-(1 << (b - 1)), (1 << (b - 1)) - 1, -1} <= set(w.ravel().tolist())
        assert image.layer_codebook(l).tolist() == [signed(v, b) for v in range(1 << b)]
    assert x.min() == image.engine.act_range()[0] and (x == 0).any()


@pytest.mark.parametrize("preload", [False, True], ids=["load-interface", "preloaded"])
@pytest.mark.parametrize("key", CASES)
def test_index_engine_equals_golden_and_cycle_model(key, preload):
    image, x = index_case(key)
    hw = HwParams.for_image(image, mac="index")
    out, stats = simulate(image, x, hw=hw, preload=preload)
    np.testing.assert_array_equal(out, golden.run(image, x))
    for s, v in enumerate(x):
        model = engine_cycles(image, v, hw)
        assert stats[s] == {k: model[k] for k in ("cycles", "compute_cycles", "ideal_cycles")}


def test_index_engine_reloaded_at_run_time():
    """Every word through the load interface (zeros and codebook words included), image B over image
    A without a reset: different codes, biases and weight_frac."""
    params = P(3, idx_bits=3, weight_bits=8)
    images = [identity_eie_image(params, [9, 8, 6], density=d, seed=s, weight_frac=f)
              for d, s, f in ((0.6, 21, 2), (0.4, 22, 4))]
    hw = HwParams(params, max_width=9, max_layers=2, spmat_depth=40, ptr_depth=20, bias_depth=8, mac="index")
    x = random_inputs(params, 9, 2, seed=21)
    results = run_eie_reloaded(hw, images, x)
    for image, out in zip(images, results):
        np.testing.assert_array_equal(out, golden.run(image, x))
    assert not np.array_equal(golden.run(images[0], x), golden.run(images[1], x))


@pytest.mark.parametrize("mac", ["index", "multiply"])
def test_codebook_writes_do_not_reach_an_index_engine(mac, monkeypatch):
    """The load interface's codebook words replaced by garbage: the index engine (no codebook
    memory) still computes the identity image; the multiplier engine, which keeps them, does not
    (so the garbage would show)."""
    params = P(2, idx_bits=3, weight_bits=8)
    image = identity_eie_image(params, [9, 8, 6], density=0.6, seed=31)
    x = random_inputs(params, 9, 2, seed=31, zeros=0.1)
    real = memory_map.load_writes
    rng = np.random.default_rng(5)

    def garbled(image, hw, skip_zero=False):
        writes = real(image, hw, skip_zero)
        for w in writes:
            if w["sel"] == MemSel.CODEBOOK.value:
                w["data"] = int(rng.integers(1, 1 << params.weight_bits))
        return writes

    monkeypatch.setattr(memory_map, "load_writes", garbled)
    hw = HwParams(params, max_width=9, max_layers=2, spmat_depth=40, ptr_depth=20, bias_depth=8, mac=mac)
    (out,) = run_eie_reloaded(hw, [image], x)
    assert np.array_equal(out, golden.run(image, x)) == (mac == "index")


def unused_entry_image():
    """Identity codebooks, except at codes no weight uses: layer fc1 never uses codes 2 and 5 (whose
    entries are 40 and -77), fc2 never code 7 (entry 100)."""
    params = P(2, idx_bits=3, weight_bits=8)
    rng = np.random.default_rng(4)
    identity = np.array([0, 1, 2, 3, -4, -3, -2, -1])
    book1, book2 = identity.copy(), identity.copy()
    book1[[2, 5]], book2[7] = [40, -77], 100
    codes1 = rng.choice([0, 1, 3, 4, 6, 7], (7, 9))
    codes2 = rng.choice([0, 1, 2, 3, 4, 5, 6], (5, 7))
    layers = [IntLayer(codes1, book1, rng.integers(-300, 300, 7), True, 2, "fc1"),
              IntLayer(codes2, book2, rng.integers(-300, 300, 5), False, 1, "fc2")]
    return build_image(layers, params)


def test_entries_at_unused_codes_do_not_matter():
    image = unused_entry_image()
    x = random_inputs(image.engine, 9, 2, seed=4)
    out, _ = simulate(image, x, mac="index")
    np.testing.assert_array_equal(out, golden.run(image, x))


def non_identity_image():
    """A multiplier's image: random codebooks (``factories.random_eie_image``)."""
    return random_eie_image(P(2), [6, 4], 0.5, seed=1)


def expected_message(image):
    """The first layer with a used code whose entry is not ``signed(code)``, by brute force."""
    from eiex.sw.images.eie.arithmetic import layer_codes

    b = image.engine.idx_bits
    for l, layer in enumerate(image.layers):
        book = image.layer_codebook(l)
        for v in sorted(set(layer_codes(image, l).ravel().tolist())):
            if book[v] != signed(v, b):
                return f"layer {layer.name} uses code {v}, whose entry is {book[v]}, not {signed(v, b)}"
    raise AssertionError("an identity image")


def test_non_identity_message_names_the_first_bad_code():
    image = non_identity_image()
    message = expected_message(image)
    assert message.startswith("layer fc1 ")
    with pytest.raises(EiexError, match="^--mac index takes each weight's index as the weight") as e:
        HwParams.for_image(image, mac="index").check_image(image)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("make, message", [
    (lambda: HwParams(P(2, idx_bits=5, weight_bits=4), mac="index"),
     r"^mac index takes a code as the weight, so idx_bits \(5\) must not exceed weight_bits \(4\)$"),
    (lambda: HwParams.for_image(non_identity_image(), mac="index").check_image(non_identity_image()),
     "so a layer's codebook must be the identity; layer fc1 uses code"),
    (lambda: simulate(non_identity_image(), np.zeros((1, 6), dtype=np.int64), mac="index"),
     "so a layer's codebook must be the identity; layer fc1 uses code"),
    (lambda: api.to_verilog("eie", non_identity_image(), mac="index"),
     "so a layer's codebook must be the identity; layer fc1 uses code"),
])
def test_refusals_are_one_clear_line(make, message):
    with pytest.raises(EiexError, match=message) as e:
        make()
    assert "\n" not in str(e.value)


def test_idx_bits_up_to_weight_bits_are_accepted():
    for idx_bits in (1, 4):
        HwParams(P(2, idx_bits=idx_bits, weight_bits=4), mac="index")
    image = non_identity_image()
    HwParams.for_image(image).check_image(image)  # the multiplier runs any codebook


def memories(verilog: str) -> list[str]:
    """Names of the memories (``reg [w] name [depth]``) Yosys wrote."""
    return re.findall(r"^\s*reg (?:signed )?\[[^]]*\] (\w+) \[", verilog, flags=re.MULTILINE)


def product_weight_widths(verilog: str) -> list[int]:
    """Widths of the product's registered weight ``w_r`` (hw/eie/mac.py), one per PE."""
    return [int(hi) + 1 for hi in re.findall(r"^\s*reg (?:signed )?\[(\d+):0\] w_r\b", verilog, flags=re.MULTILINE)]


def test_verilog_of_the_index_engine_has_no_codebook_memory():
    params = P(2, idx_bits=3, weight_bits=8)
    image = identity_eie_image(params, [6, 5, 4], density=0.5, seed=1)
    index = api.to_verilog("eie", image, mac="index")
    multiply = api.to_verilog("eie", image)
    assert memories(multiply).count("codebook") == params.n_pe
    assert "codebook" not in memories(index)
    assert set(memories(index)) == set(memories(multiply)) - {"codebook"}
    assert product_weight_widths(index) == [3] * params.n_pe and product_weight_widths(multiply) == [8] * params.n_pe
    # sized by engine parameters alone, too
    hw = HwParams(P(2, idx_bits=4, weight_bits=8), max_width=8, max_layers=2, spmat_depth=8, ptr_depth=10,
                  bias_depth=4, mac="index")
    assert "codebook" not in memories(to_verilog(hw))
