# amaranth: UnusedElaboratable=no
"""The EIE engine's components, each against an independent reference: the write-back arithmetic
against the golden model, the flag packer and the window scan against Python, the pointer reader
against the pointer list."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from eiex.hw.eie import golden
from eiex.hw.eie.params import HwParams
from eiex.hw.eie.pointers import SKID_DEPTH, PointerReader, bank_addresses
from eiex.hw.eie.rescale import Rescale
from eiex.hw.eie.scan import FlagPacker, WindowScan
from eiex.sw.images.eie.image import EngineParams
from eiex.errors import EiexError


def P(n_pe, act_bits=10, weight_bits=8, bias_bits=16):
    return EngineParams(n_pe=n_pe, idx_bits=3, rel_bits=2, act_bits=act_bits, act_frac=3,
                        weight_bits=weight_bits, bias_bits=bias_bits, ptr_bits=12, entries_per_word=3)


def run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("act_bits, bias_bits", [(8, 16), (16, 32), (5, 12)])
def test_rescale_is_the_golden_rounding_saturation_and_relu(act_bits, bias_bits):
    hw = HwParams(P(2, act_bits=act_bits, bias_bits=bias_bits), max_width=300)
    rng = np.random.default_rng(act_bits)
    acc_max = 1 << (hw.acc_bits - 2)
    for frac in (0, 1, 2, 7, hw.acc_bits - 1, 63):
        for relu in (0, 1):
            half = 1 << max(0, frac - 1)  # the rounding's ties
            ties = [t for t in (0, -1, 1, half, -half, 3 * half, -3 * half) if -2 * acc_max <= t < 2 * acc_max]
            accs = np.r_[rng.integers(-acc_max, acc_max, 20), ties]
            biases = rng.integers(-(1 << (bias_bits - 1)), 1 << (bias_bits - 1), len(accs))
            biases[-len(ties):] = 0
            # the layer fields stay constant while a layer's rows are in flight, as in the engine
            dut = Rescale(hw, tag_shape=range(len(accs)))
            results = []

            async def bench(ctx, dut=dut, accs=accs, biases=biases, frac=frac, relu=relu, results=results):
                ctx.set(dut.frac, frac)
                ctx.set(dut.relu, relu)
                for cycle in range(len(accs) + Rescale.LATENCY):
                    ctx.set(dut.valid, cycle < len(accs))
                    if cycle < len(accs):
                        ctx.set(dut.acc, int(accs[cycle]))
                        ctx.set(dut.bias, int(biases[cycle]))
                        ctx.set(dut.tag, cycle)
                    if ctx.get(dut.out_valid):
                        assert cycle - ctx.get(dut.out_tag) == Rescale.LATENCY
                        results.append((ctx.get(dut.y), ctx.get(dut.flag)))
                    await ctx.tick()

            run(dut, bench)
            expected = golden.rescale(accs + biases, frac, act_bits, bool(relu))
            assert [y for y, _ in results] == expected.tolist(), (frac, relu)
            assert [f for _, f in results] == (expected != 0).astype(int).tolist()


@pytest.mark.parametrize("window, group", [(16, 1), (16, 8), (6, 3), (5, 5)])
def test_flag_packer_writes_whole_words_in_order(window, group):
    dut = FlagPacker(window, group)
    rng = np.random.default_rng(window * group)
    flags = rng.integers(0, 2, 5 * window)
    groups = flags.reshape(-1, group)
    per_word = window // group

    async def bench(ctx):
        for i, bits in enumerate(groups):
            ctx.set(dut.valid, 1)
            ctx.set(dut.pos, i % per_word)
            ctx.set(dut.bits, int(sum(int(b) << k for k, b in enumerate(bits))))
            word = ctx.get(dut.word)
            done = flags[(i - i % per_word) * group:(i + 1) * group]  # this word's flags so far
            assert word & ((1 << len(done)) - 1) == sum(int(b) << k for k, b in enumerate(done))
            await ctx.tick()

    run(dut, bench)


def scan_reference(flags, cols, window, n_pe):
    return [(j, j // n_pe, j % n_pe) for j in range(cols) if flags[j]]


@pytest.mark.parametrize("n_pe, window_slots, cols, density, ready_p, gated", [
    (1, None, 40, 0.3, 1.0, False), (3, 2, 29, 0.5, 0.6, False), (8, None, 64, 0.1, 1.0, True),
    (4, 1, 21, 0.9, 0.5, True), (2, 3, 30, 0.0, 1.0, True), (5, 2, 50, 1.0, 0.8, False),
])
def test_window_scan_hands_out_every_nonzero_in_order(n_pe, window_slots, cols, density, ready_p, gated):
    """The scan against a Python flag list: every non-zero below ``cols``, in order, with its slot
    and PE, under random back-pressure; with ``gated``, window ``w`` never goes out before the
    write-back has stored its ``(w + 1) * window_slots`` slots (``readable``)."""
    hw = HwParams(P(n_pe), max_width=cols + 7, window_slots=window_slots)
    W = hw.window
    rng = np.random.default_rng(cols)
    dut = WindowScan(hw)
    for bank in (0, 1):
        flags = (rng.random(hw.flag_bits) < density).astype(int)
        words = [int(sum(int(f) << k for k, f in enumerate(flags[w * W:(w + 1) * W]))) for w in range(hw.n_windows)]
        memory = [0] * hw.flag_depth
        memory[bank * hw.n_windows: (bank + 1) * hw.n_windows] = words
        got = []

        async def bench(ctx, memory=memory, bank=bank, got=got):
            ctx.set(dut.bank, bank)
            ctx.set(dut.cols, cols)
            ctx.set(dut.start, 1)
            addr = ctx.get(dut.flag_addr)
            await ctx.tick()
            ctx.set(dut.start, 0)
            readable = 0 if gated else hw.slots
            for cycle in range(20 * hw.flag_bits):
                ctx.set(dut.flag_data, memory[addr])  # synchronous read of last cycle's address
                ctx.set(dut.readable, min(readable, hw.slots))
                ctx.set(dut.run, 1)
                ready = int(rng.random() < ready_p)
                ctx.set(dut.column.ready, ready)
                if ctx.get(dut.column.valid) and ready:
                    j, slot, pe = (ctx.get(dut.column.payload.j), ctx.get(dut.column.payload.slot),
                                   ctx.get(dut.column.payload.pe))
                    assert slot < readable or not gated, "a window went out before it was stored"
                    got.append((j, slot, pe))
                if ctx.get(dut.done):
                    break
                addr = ctx.get(dut.flag_addr)
                await ctx.tick()
                readable += int(rng.random() < 0.7)
            assert ctx.get(dut.done)

        run(dut, bench)
        assert got == scan_reference(flags, cols, W, n_pe)


def test_pointer_reader_queues_the_pointers_of_the_columns_read():
    """Reads at A, pushes two cycles later, pops at any later time: the heads come out in order,
    whatever the addresses do once a read is issued."""
    hw = HwParams(P(2), max_width=40, ptr_depth=41)
    rng = np.random.default_rng(3)
    ptr = np.cumsum(rng.integers(0, 3, 41)).tolist()
    dut = PointerReader(hw)
    base = 3
    columns = [0, 5, 6, 6, 1, 36, 35, 2, 17, 9, 30]
    seen = []

    async def bench(ctx):
        for addr, word in enumerate(ptr):
            ctx.set(dut.ld_en, 1)
            ctx.set(dut.ld_addr, addr)
            ctx.set(dut.ld_data, word)
            await ctx.tick()
        ctx.set(dut.ld_en, 0)

        def address(j):
            for port, value in zip((dut.even_addr, dut.odd_addr, dut.odd_first), bank_addresses(base + j)):
                ctx.set(port, value)

        reads = []  # cycle of each read; push two cycles later
        cycle, held = 0, 0
        todo = list(columns)
        while len(seen) < len(columns):
            read = bool(todo) and held + sum(1 for r in reads if cycle - r <= 2) < SKID_DEPTH and rng.random() < 0.7
            address(todo[0] if read else int(rng.integers(0, 30)))
            ctx.set(dut.en, read)
            ctx.set(dut.push, any(cycle - r == 2 for r in reads))
            pop = held > 0 and rng.random() < 0.4
            ctx.set(dut.pop, pop)
            if pop:
                seen.append((ctx.get(dut.start), ctx.get(dut.end), ctx.get(dut.need)))
            held += any(cycle - r == 2 for r in reads) - pop
            if read:
                reads.append(cycle)
                todo.pop(0)
            await ctx.tick()
            cycle += 1

    run(dut, bench)
    assert seen == [(ptr[base + j], ptr[base + j + 1], int(ptr[base + j + 1] > ptr[base + j])) for j in columns]


@pytest.mark.parametrize("make, message", [
    (lambda: FlagPacker(0, 1), "window must be a positive integer, not 0"),
    (lambda: FlagPacker(16, 3), r"group \(3\) must divide window \(16\)"),
    (lambda: WindowScan("hw"), "hw must be a HwParams, not str"),
])
def test_constructor_messages(make, message):
    with pytest.raises(EiexError, match=message):
        make()
