"""Cocotb bench of the XNOR engine's Verilog (run by :func:`eiex.sim.testbenches.runner.run_cocotb`).

Driver: the load-interface words (unless the memories are preloaded), then each image's ``SF_0``
input beats with random gaps, stamping the cycle of each image's first beat. Monitor: the ``M``
scores of each image under random back-pressure, each checked by the scoreboard against the golden
model's, stamping the cycle of each image's last score. The stamps are those of
:func:`eiex.sim.pysim.xnor.simulate`; the runner turns them into the same statistics.
"""

from __future__ import annotations

import json
import random

import cocotb

from eiex.sim.testbenches.streams import Scoreboard, StreamDriver, StreamMonitor, run_bench


class XnorBench:
    def __init__(self, dut, job: dict, folder, clocking):
        self.clocking = clocking
        clk = clocking.clk
        data = json.loads((folder / "data.json").read_text())
        self.loads, self.beats = data["loads"], data["inputs"]
        self.scoreboard = Scoreboard(data["expected"])
        self.n_out = job["outputs"]
        seed = job["seed"]
        self.load = StreamDriver(dut, "load", clk)
        self.input = StreamDriver(dut, "input", clk, job["in_valid"], random.Random(seed))
        self.output = StreamMonitor(dut, "output", clk, job["out_ready"], random.Random(seed + 1))
        self.outputs: list[list[int]] = []
        self.first_in: list[int] = []
        self.last_out: list[int] = []

    def streams(self):
        return [self.load, self.input, self.output]

    def where(self) -> str:
        return (f"{self.load.transfers} of {len(self.loads)} load words, {self.input.transfers} input "
                f"beats and {self.output.transfers} scores transferred")

    async def driver(self) -> None:
        for word in self.loads:
            await self.load.send(word)
        self.load.idle()
        for image in self.beats:
            for b, beat in enumerate(image):
                await self.input.send(beat)
                if b == 0:
                    self.first_in.append(self.clocking.cycle())
        self.input.idle()

    async def monitor(self) -> None:
        for s in range(len(self.beats)):
            row = []
            for r in range(self.n_out):
                value = await self.output.receive()
                self.scoreboard.check(s, r, value)
                row.append(value)
            self.outputs.append(row)
            self.last_out.append(self.clocking.cycle())
        self.output.set_ready(0)

    def results(self) -> dict:
        return {"outputs": self.outputs, "first_in": self.first_in, "last_out": self.last_out}


@cocotb.test()
async def xnor_engine(dut):
    await run_bench(dut, XnorBench)
