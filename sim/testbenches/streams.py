"""What the engines' cocotb benches share: stream driver and monitor, scoreboard, watchdog, and the
run of one bench (clock, reset, driver beside monitor, results or one-line failure in the job folder).

The benches reproduce the Amaranth testbenches of :mod:`eiex.sim.pysim.timed` cycle for cycle, so
that statistics measured on Verilator or Icarus equal the Amaranth simulator's for the same inputs,
gaps and back-pressure (the same random draws, one per offered beat or per cycle of an output wait):

* the driver writes a payload after a clock edge, and the transfer is the next rising edge at which
  ``ready`` is high; it learns ``ready`` in the read-only phase of the cycle (all writes settled) and,
  when it is low, sleeps until ``ready`` rises instead of waking on every clock edge;
* the monitor likewise sleeps until ``valid`` rises and reads the payload in the read-only phase;
* with ``in_valid = out_ready = 1`` the Python work is two wake-ups per transfer, none per idle
  cycle. Random gaps and back-pressure cost a wake-up per gap cycle (they exist to prove the
  handshakes, not for speed).

Stamps are cycle numbers from the simulation time (the rising edges are at ``(k + 1/2)`` periods).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, Event, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_steps

from eiex.sim.testbenches.runner import ERROR_FILE, JOB_ENV, RESULTS_FILE

RESET_CYCLES = 4


class BenchFailure(Exception):
    """A bench found the DUT wrong or stuck; the message is one line for the user."""


class Clocking:
    """The DUT clock and cycle stamps from the simulation time."""

    def __init__(self, clk, period_ns: int):
        self.clk = clk
        self.clock = Clock(clk, period_ns, unit="ns", impl="gpi")
        self.period = get_sim_steps(period_ns, "ns")

    def start(self) -> None:
        self.clock.start(start_high=False)

    def cycle(self) -> int:
        """The number of the current (or just taken) rising edge."""
        return get_sim_time("step") // self.period

    async def reset(self, rst, cycles: int = RESET_CYCLES) -> None:
        rst.value = 1
        await ClockCycles(self.clk, cycles)
        rst.value = 0


class StreamDriver:
    """Offers words on a DUT input stream ``name__valid / __ready / __payload``.

    ``valid``: probability per cycle that a beat is offered (drawn from ``rng`` exactly as
    :func:`eiex.sim.pysim.timed.send` draws)."""

    def __init__(self, dut, name: str, clk, valid: float = 1.0, rng=None):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.clk = clk
        self.p = valid
        self.rng = rng
        self.transfers = 0
        self._high = False
        self.valid.value = 0
        self.payload.value = 0

    def idle(self) -> None:
        self.valid.value = 0
        self._high = False

    async def send(self, word: int) -> None:
        """One transfer; returns just after the clock edge that takes ``word``."""
        if self.p < 1.0:
            gaps = 0
            while self.rng.random() >= self.p:
                gaps += 1
            if gaps:
                self.idle()
                await ClockCycles(self.clk, gaps)
        self.payload.value = word
        if not self._high:
            self.valid.value = 1
            self._high = True
        await ReadOnly()
        while self.ready.value != 1:
            await RisingEdge(self.ready)
            await ReadOnly()
        await RisingEdge(self.clk)
        self.transfers += 1


class StreamMonitor:
    """Takes words from a DUT output stream; ``ready``: probability per cycle that the bench is
    ready (drawn from ``rng`` exactly as :func:`eiex.sim.pysim.timed.receive` draws)."""

    def __init__(self, dut, name: str, clk, ready: float = 1.0, rng=None, signed: bool = True):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready_sig = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.clk = clk
        self.p = ready
        self.rng = rng
        self.signed = signed
        self.transfers = 0
        self._ready = None
        self.set_ready(0)

    def set_ready(self, ready: int) -> None:
        if ready != self._ready:
            self.ready_sig.value = ready
            self._ready = ready

    def _word(self):
        value = self.payload.value
        if not value.is_resolvable:
            raise BenchFailure(f"the output payload is {value} (not 0/1) while valid")
        self.transfers += 1
        return value.to_signed() if self.signed else value.to_unsigned()

    async def receive(self) -> int:
        """The payload of one transfer; returns just after the clock edge that takes it."""
        if self.p >= 1.0:
            self.set_ready(1)
            await ReadOnly()
            while self.valid.value != 1:
                await RisingEdge(self.valid)
                await ReadOnly()
            word = self._word()
            await RisingEdge(self.clk)
            return word
        while True:
            waits = 0
            while not self.rng.random() < self.p:
                waits += 1
            if waits:
                self.set_ready(0)
                await ClockCycles(self.clk, waits)
            self.set_ready(1)
            await ReadOnly()
            taken = self.valid.value == 1
            if taken:
                word = self._word()
            await RisingEdge(self.clk)
            if taken:
                return word


class Scoreboard:
    """Compares every output with the golden model's, as it arrives."""

    def __init__(self, expected):
        self.expected = [list(map(int, row)) for row in expected]

    def check(self, sample: int, index: int, value: int) -> None:
        want = self.expected[sample][index]
        if value != want:
            raise BenchFailure(f"output {index} of sample {sample} is {value}, the golden model says {want}")


class Watchdog:
    """Fails the bench when no stream moves for ``stall`` cycles (checked every ``stall`` cycles,
    so it fires within ``2 * stall`` cycles of the last transfer)."""

    def __init__(self, clocking: Clocking, stall: int, streams, where):
        self.clocking = clocking
        self.stall = stall
        self.streams = streams
        self.where = where

    async def run(self) -> None:
        last = -1
        while True:
            await Timer(self.stall * self.clocking.period, unit="step")
            moved = sum(s.transfers for s in self.streams)
            if moved == last:
                raise BenchFailure(f"no transfer on any stream for {self.stall} cycles, {self.where()} (timeout)")
            last = moved


def load_job() -> tuple[Path, dict]:
    folder = Path(os.environ[JOB_ENV])
    return folder, json.loads((folder / "job.json").read_text())


def write_error(folder: Path, message: str) -> None:
    """The bench's one-line failure, for the host (the first one written stays)."""
    path = folder / ERROR_FILE
    if not path.exists():
        path.write_text(" ".join(str(message).split()) + "\n")


@contextlib.contextmanager
def errors_reported(folder: Path, what: str = "the bench"):
    """Any exception leaving the block is written to the job folder as one line, then raised on."""
    try:
        yield
    except BenchFailure as e:
        write_error(folder, str(e))
        raise
    except Exception as e:
        write_error(folder, f"{what} failed: {type(e).__name__}: {e}")
        raise


async def run_bench(dut, make_bench) -> None:
    """Clock and reset ``dut``, then run ``make_bench(dut, job, folder, clocking)``'s ``driver()``
    beside its ``monitor()`` under a watchdog; write ``results.json`` from its ``results()`` or
    ``error.txt`` with the first failure's line."""
    folder, job = load_job()
    with errors_reported(folder):
        clocking = Clocking(dut.clk, job["period_ns"])
        bench = make_bench(dut, job, folder, clocking)
        clocking.start()
        start_cycle, start_wall = clocking.cycle(), time.perf_counter()
        await clocking.reset(dut.rst)
        done, failure = Event(), []

        async def guarded(coro, finishes: bool):
            try:
                await coro
            except Exception as e:  # noqa: BLE001 (reported as the bench's one line below)
                failure.append(e)
                done.set()
            else:
                if finishes:
                    done.set()

        watchdog = Watchdog(clocking, job["stall_cycles"], bench.streams(), bench.where)
        cocotb.start_soon(guarded(bench.driver(), False))
        cocotb.start_soon(guarded(watchdog.run(), False))
        cocotb.start_soon(guarded(bench.monitor(), True))
        await done.wait()
        if failure:
            raise failure[0]
        wall = time.perf_counter() - start_wall
        results = bench.results()
        results.update(sim_cycles=clocking.cycle() - start_cycle, sim_seconds=wall)
        (folder / RESULTS_FILE).write_text(json.dumps(results))

