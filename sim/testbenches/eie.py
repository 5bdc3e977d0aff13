"""Cocotb bench of the EIE engine's Verilog (run by :func:`eiex.sim.testbenches.runner.run_cocotb`).

Driver: the load-interface words (unless the memories are preloaded), then every input vector's
activations, with random gaps. Monitor: every output under random back-pressure, each checked by the
scoreboard against the golden model's; after a vector's last output the bench holds ``ready`` low for
a cycle and reads the engine's ``cycles`` / ``compute_cycles`` counters, as
:func:`eiex.sim.pysim.eie.simulate` does, so the statistics are the Amaranth testbench's.
"""

from __future__ import annotations

import json
import random

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from eiex.sim.testbenches.streams import Scoreboard, StreamDriver, StreamMonitor, run_bench


class EieBench:
    def __init__(self, dut, job: dict, folder, clocking):
        self.dut = dut
        self.clk = clocking.clk
        data = json.loads((folder / "data.json").read_text())
        self.loads, self.inputs = data["loads"], data["inputs"]
        self.scoreboard = Scoreboard(data["expected"])
        self.n_out = job["outputs"]
        seed = job["seed"]
        self.load = StreamDriver(dut, "load", self.clk)
        self.input = StreamDriver(dut, "input", self.clk, job["in_valid"], random.Random(seed))
        self.output = StreamMonitor(dut, "output", self.clk, job["out_ready"], random.Random(seed + 1))
        self.outputs: list[list[int]] = []
        self.counters: list[tuple[int, int]] = []

    def streams(self):
        return [self.load, self.input, self.output]

    def where(self) -> str:
        return (f"{self.load.transfers} of {len(self.loads)} load words, {self.input.transfers} input "
                f"and {self.output.transfers} output transfers")

    async def driver(self) -> None:
        for word in self.loads:
            await self.load.send(word)
        self.load.idle()
        for vector in self.inputs:
            for x in vector:
                await self.input.send(x)
        self.input.idle()

    async def _read_counters(self) -> None:
        await ReadOnly()
        self.counters.append((self.dut.cycles.value.to_unsigned(), self.dut.compute_cycles.value.to_unsigned()))

    async def monitor(self) -> None:
        last = len(self.inputs) - 1
        for s in range(len(self.inputs)):
            row = []
            for i in range(self.n_out):
                value = await self.output.receive()
                self.scoreboard.check(s, i, value)
                row.append(value)
            self.outputs.append(row)
            self.output.set_ready(0)
            await RisingEdge(self.clk)  # the statistics registers update at the last transfer's edge
            if s == last:
                await self._read_counters()
            else:  # read in this cycle's read-only phase while the monitor already drives the next
                cocotb.start_soon(self._read_counters())

    def results(self) -> dict:
        return {"outputs": self.outputs, "cycles": [c for c, _ in self.counters],
                "compute_cycles": [c for _, c in self.counters]}


@cocotb.test()
async def eie_engine(dut):
    await run_bench(dut, EieBench)
