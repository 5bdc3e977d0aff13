# amaranth: UnusedElaboratable=no
"""The build top (sim/tools/build_top.py): every engine input is driven from ``din``, every output can be
read back on ``dout``, checked in simulation against a bit-level model of the two chains."""

import random

import pytest
from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from eiex.sim.tools.build_top import ObservableTop, port_bits
from eiex.errors import EiexError


class Adder(wiring.Component):
    """A stream adder with a side output: ``y`` = registered ``a + b``; ``flag`` = ``a == b``."""

    def __init__(self):
        super().__init__({"a": In(3), "b": In(stream.Signature(4)), "y": Out(5), "flag": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.a + self.b.payload)
        m.d.comb += [self.flag.eq(self.a == self.b.payload), self.b.ready.eq(self.b.valid)]
        return m


def test_port_bits_split_by_flow():
    dut = Adder()
    inputs, outputs = port_bits(dut)
    # inputs: a, b.payload, b.valid; outputs: b.ready, y, flag
    assert [len(v) for v in inputs] == [3, 4, 1]
    assert [len(v) for v in outputs] == [1, 5, 1]


def test_chains_drive_every_input_and_read_every_output():
    dut = Adder()
    top = ObservableTop(dut)
    assert (top.in_bits, top.out_bits) == (8, 7)
    rng = random.Random(3)
    cases = [(rng.randrange(8), rng.randrange(16), rng.randrange(2)) for _ in range(12)]
    seen = []

    async def bench(ctx):
        for a, b, valid in cases:
            word = a | b << 3 | valid << 7  # chain bit k drives input bit k (signature order)
            ctx.set(top.shift, 1)
            for k in reversed(range(top.in_bits)):  # the last bit shifted in lands at bit 0
                ctx.set(top.din, (word >> k) & 1)
                await ctx.tick()
            ctx.set(top.shift, 0)
            await ctx.tick()  # y registers a + b
            ctx.set(top.capture, 1)
            await ctx.tick()
            ctx.set(top.capture, 0)
            out = 0
            for k in range(top.out_bits):
                out |= ctx.get(top.dout) << k
                await ctx.tick()
            seen.append(out)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    expected = [valid | (a + b) << 1 | (a == b) << 6 for a, b, valid in cases]
    assert seen == expected


def test_rejects_what_is_not_a_component():
    with pytest.raises(EiexError, match="engine must be an amaranth wiring.Component, not Module"):
        ObservableTop(Module())


def test_rejects_a_component_without_outputs():
    class Sink(wiring.Component):
        a: In(2)

        def elaborate(self, platform):
            return Module()

    with pytest.raises(EiexError, match="at least one input and one output port bit"):
        ObservableTop(Sink())
