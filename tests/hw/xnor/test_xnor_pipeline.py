# amaranth: UnusedElaboratable=no
"""The XNOR engine's pipeline pieces: the pipelined popcount, the MVTU's constructor, padding inputs."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from eiex.hw.xnor import golden

from eiex.sim.pysim import xnor as simulate_module
from eiex.hw.xnor.banks import BufferGeometry
from eiex.hw.xnor.mvtu import LayerGeometry, Mvtu, block_columns
from eiex.hw.xnor.popcount import Popcount, popcount_latency
from eiex.sim.pysim.xnor import simulate
from eiex.errors import EiexError
from factories import brute_force, random_xnor_image as random_image


@pytest.mark.parametrize("width, levels", [(1, 3), (3, 1), (16, 3), (43, 3), (43, 2), (64, 1), (100, 4)])
def test_popcount_streams_exact_counts(width, levels):
    """A new word every cycle; each count comes out exactly ``latency`` cycles later."""
    dut = Popcount(width, levels)
    assert dut.latency == popcount_latency(width, levels) == max(1, -(-(width - 1).bit_length() // levels))
    rng = random.Random(width * 7 + levels)
    words = [rng.getrandbits(width) for _ in range(30)] + [(1 << width) - 1, 0]
    seen = []

    async def bench(ctx):
        for cycle in range(len(words) + dut.latency):
            if cycle < len(words):
                ctx.set(dut.bits, words[cycle])
            await ctx.tick()
            if cycle + 1 >= dut.latency:
                seen.append(ctx.get(dut.count))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen[:len(words)] == [bin(w).count("1") for w in words]


def test_block_columns():
    """Columns that fill one 16 Kb block without cascading blocks in depth."""
    assert [block_columns(d) for d in (16, 512, 513, 1024, 6272, 8192, 16384, 20000)] == [32, 32, 16, 16, 2, 2, 1, 1]


@pytest.mark.parametrize("make, message", [
    (lambda: Mvtu((4, 4)), "geometry must be a LayerGeometry, not tuple"),
    (lambda: Mvtu(LayerGeometry(8, 4, 2, 4, False, 4), BufferGeometry(3, 3, 3, 3)),
     "the source buffer gives 3 slices of 3 bits, the layer reads 2 of 4"),
    (lambda: Popcount(0), "width must be a positive integer, not 0"),
])
def test_constructor_messages(make, message):
    with pytest.raises(EiexError, match=message):
        make()


def test_input_padding_bits_are_ignored(monkeypatch):
    """Regression: the MVTU counts padding columns as matches of 0 inputs with 0 weights, so the
    engine must zero the padding bits of the last input beat; here they arrive as 1s."""
    image = random_image([20, 7, 5], [(3, 6), (2, 3)], seed=4)  # 24 input lanes for 20 inputs
    bits = np.random.default_rng(4).integers(0, 2, (4, 20))
    pack = simulate_module.pack_input

    def pack_with_ones(image, bits):
        return [beats[:-1] + [beats[-1] | 0b111100] for beats in pack(image, bits)]

    monkeypatch.setattr(simulate_module, "pack_input", pack_with_ones)
    outputs, _ = simulate(image, bits)
    assert np.array_equal(outputs, brute_force(image, bits))
    assert np.array_equal(outputs, golden.run(image, bits))
