"""Amaranth-simulator helpers shared by the engines' testbenches: stream transfers that await the
handshake instead of polling every cycle, with optional random gaps and back-pressure."""

from __future__ import annotations

import random
import time

from amaranth import Elaboratable, Module, Signal
from amaranth.sim import Simulator


class Timed(Elaboratable):
    """A design beside a free-running cycle counter: the testbench's clock for timestamps and for
    the count of simulated cycles (reading it costs nothing per cycle, unlike a counting process)."""

    def __init__(self, dut):
        self.dut = dut
        self.cycle = Signal(40)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        m.d.sync += self.cycle.eq(self.cycle + 1)
        return m


class Deadlock(RuntimeError):
    """The design did not finish within the cycle budget of :func:`run_timed`."""


def run_timed(dut, driver, monitor, vcd: str | None = None, timing: dict | None = None,
              max_cycles: int | None = None, spies=()) -> None:
    """Simulate ``dut`` beside a :class:`Timed` counter with a 1 MHz ``sync`` clock; ``driver`` and
    ``monitor`` are testbenches taking ``(ctx, top)`` (``top.cycle`` stamps transfers). ``timing``,
    if given, receives ``sim_cycles`` (the counter when the monitor is done) and ``sim_seconds``.
    With ``max_cycles``, a design still running after that many cycles raises :class:`Deadlock`
    instead of simulating forever. ``spies``: background processes watching the design."""
    top = Timed(dut)
    sim_cycles = 0

    async def drive(ctx):
        await driver(ctx, top)

    async def monitor_then_count(ctx):
        nonlocal sim_cycles
        await monitor(ctx, top)
        sim_cycles = ctx.get(top.cycle)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_testbench(monitor_then_count)
    for spy in spies:
        sim.add_process(spy)
    if max_cycles is not None:
        async def watchdog(ctx):
            await ctx.delay(max_cycles * 1e-6)
            raise Deadlock(f"the design has not finished after {max_cycles} simulated cycles")

        sim.add_testbench(watchdog, background=True)
    started = time.perf_counter()
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    if timing is not None:
        timing.update(sim_cycles=sim_cycles, sim_seconds=time.perf_counter() - started)


async def send(ctx, port, payload, valid: float = 1.0, rng: random.Random | None = None) -> None:
    """One transfer on stream ``port`` (a DUT input); with ``valid`` < 1 the beat is offered only
    with that probability per cycle, leaving gaps."""
    ctx.set(port.payload, payload)
    while valid < 1.0 and rng.random() >= valid:
        ctx.set(port.valid, 0)
        await ctx.tick()
    ctx.set(port.valid, 1)
    await ctx.tick().until(port.ready)


async def receive(ctx, port, ready: float = 1.0, rng: random.Random | None = None):
    """The payload of one transfer on stream ``port`` (a DUT output); with ``ready`` < 1 the
    testbench is ready only with that probability per cycle."""
    if ready >= 1.0:
        ctx.set(port.ready, 1)
        (value,) = await ctx.tick().sample(port.payload).until(port.valid)
        return value
    while True:
        taking = rng.random() < ready
        ctx.set(port.ready, taking)
        _, _, value, valid = await ctx.tick().sample(port.payload, port.valid)
        if taking and valid:
            return value
