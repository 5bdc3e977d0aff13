# amaranth: UnusedElaboratable=no
"""The XNOR engine's banked buffer (memory, gearbox, bank protocol) against a plain Python model."""

import random

import pytest
from amaranth.sim import Simulator

from eiex.hw.xnor.banks import N_BANKS, BankedBuffer, BufferGeometry
from eiex.errors import EiexError


class BufferModel:
    """Three banks of image bits: claimed, appended to write by write, full ``delay`` cycles after the
    commit (the buffer's documented contract), read in slices (bits never written read as 0)."""

    def __init__(self, g: BufferGeometry):
        self.g = g
        self.state = ["free"] * N_BANKS
        self.bits = [[] for _ in range(N_BANKS)]
        self.completing = []  # (cycles left, bank)

    def claim(self, bank):
        assert self.state[bank] == "free"
        self.state[bank] = "writing"
        self.bits[bank] = []

    def write(self, bank, data, commit):
        self.bits[bank] += [(data >> i) & 1 for i in range(self.g.write_width)]
        if commit:
            self.completing.append([self.g.complete_delay, bank])

    def release(self, bank):
        assert self.state[bank] == "full"
        self.state[bank] = "free"

    def read(self, bank, index):
        s = self.g.read_width
        bits = self.bits[bank][index * s:(index + 1) * s]
        return sum(bit << i for i, bit in enumerate(bits))

    def tick(self):
        for entry in self.completing:
            entry[0] -= 1
            if entry[0] == 0:
                self.state[entry[1]] = "full"
        self.completing = [e for e in self.completing if e[0]]

    def mask(self, state):
        return sum(1 << b for b in range(N_BANKS) if self.state[b] == state)


def run_protocol(g: BufferGeometry, images: int, seed: int, gaps: float):
    """A random producer and consumer: every cycle the flags must equal the model's, every slice read
    (in random order, some twice) the model's bits of that image."""
    dut = BankedBuffer(g)
    model = BufferModel(g)
    rng = random.Random(seed)
    done = {"images": 0, "reads": 0}

    async def bench(ctx):
        p_image = p_write = 0
        p_bank = c_bank = 0
        claimed = False
        c_order, expect = None, None
        while done["images"] < images:
            assert ctx.get(dut.w.free) == model.mask("free")
            assert ctx.get(dut.r.full) == model.mask("full")
            if expect is not None:
                assert ctx.get(dut.r.data) == expect
                done["reads"] += 1
            expect = None
            # producer: claim a free bank (with or before its first write), write, commit the last
            claim = we = commit = 0
            if p_image < images and rng.random() > gaps:
                if not claimed and model.state[p_bank] == "free":
                    claim, claimed = 1, True
                    model.claim(p_bank)
                    we = rng.random() < 0.5
                elif claimed:
                    we = 1
            data = rng.getrandbits(g.write_width)
            if we:
                commit = int(p_write == g.writes - 1)
                model.write(p_bank, data, commit)
            ctx.set(dut.w.claim, claim)
            ctx.set(dut.w.claim_bank, p_bank)
            ctx.set(dut.w.we, we)
            ctx.set(dut.w.bank, p_bank)
            ctx.set(dut.w.data, data)
            ctx.set(dut.w.commit, commit)
            # consumer: read the slices of a full bank, then release it
            release = 0
            if model.state[c_bank] == "full" and rng.random() > gaps:
                if c_order is None:
                    c_order = list(range(g.reads)) + rng.choices(range(g.reads), k=2)
                    rng.shuffle(c_order)
                if c_order:
                    index = c_order.pop()
                    ctx.set(dut.r.bank, c_bank)
                    ctx.set(dut.r.word, index // g.slices)
                    ctx.set(dut.r.slice, index % g.slices)
                    expect = model.read(c_bank, index)
                else:
                    release, c_order = 1, None
            ctx.set(dut.r.release, release)
            ctx.set(dut.r.release_bank, c_bank)
            await ctx.tick()
            model.tick()
            if we:
                p_write += 1
                if commit:
                    p_write, p_image, claimed = 0, p_image + 1, False
                    p_bank = (p_bank + 1) % N_BANKS
            if release:
                model.release(c_bank)
                c_bank = (c_bank + 1) % N_BANKS
                done["images"] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return done


GEOMETRIES = [  # writes, write width, read width, reads
    (5, 4, 4, 5),  # input beats: one word a write
    (128, 4, 43, 12),  # the BNN image's first hidden layer into its second: 4 bits into 43-bit words
    (3, 3, 3, 3),
    (2, 10, 8, 3),  # the commit completes word 0 and starts word 1: a flush the next cycle
    (3, 5, 3, 4),  # 15 bits, 11 read: the partial third word is padding and is dropped
    (1, 5, 8, 1),  # one write, a partial word
    (7, 1, 1, 7),
    (2, 12, 6, 3),  # output scores: two 6-bit scores a word, 3 of the 4 read
    (4, 6, 4, 5),  # 6 bits into 8-bit words: the word starts at three different offsets
]


@pytest.mark.parametrize("shape", GEOMETRIES)
def test_buffer_equals_the_model(shape):
    g = BufferGeometry(*shape)
    done = run_protocol(g, images=7, seed=sum(shape), gaps=0.0)
    assert done["reads"] == 7 * (g.reads + 2)
    run_protocol(g, images=5, seed=sum(shape) + 1, gaps=0.4)


def test_geometry():
    g = BufferGeometry(128, 4, 43, 12)
    assert (g.slices, g.word_width, g.words, g.stride, g.depth) == (1, 43, 12, 16, 44)
    assert (g.full_words, g.tail_bits, g.flush, g.complete_delay) == (11, 39, False, 1)
    assert BufferGeometry(2, 10, 8, 3).flush and BufferGeometry(2, 10, 8, 3).complete_delay == 2
    assert not BufferGeometry(3, 5, 3, 4).tail_kept


@pytest.mark.parametrize("args, message", [
    ((0, 4, 4, 1), "writes must be a positive integer, not 0"),
    ((2, 4, True, 1), "read_width must be a positive integer, not True"),
    ((3, 4, 4, 2), "3 writes of 4 bits overrun the 2 slices of 4 bits read"),
])
def test_geometry_messages(args, message):
    with pytest.raises(EiexError, match=message):
        BufferGeometry(*args)


def test_buffer_needs_a_geometry():
    with pytest.raises(EiexError, match="geometry must be a BufferGeometry, not tuple"):
        BankedBuffer((1, 1, 1, 1))
