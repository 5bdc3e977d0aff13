"""Banked buffer between two stages of the XNOR dataflow pipeline.

A producer fills a bank word by word (``word_width`` bits per write: one fold of the layer before,
or one input beat) while the consumer reads another bank in ``read_width`` slices (one SIMD word of
the next layer, or one output score). Each bank is ``FREE``, ``WRITING`` or ``FULL``:

* the producer claims a ``FREE`` bank when it starts an image (``claim``), writes it and marks it
  ``FULL`` with its last write (``commit``);
* the consumer starts an image on a ``FULL`` bank and frees it (``release``) once it has read it
  for the last time.

Claim, commit and release of one cycle always concern different banks, except claim and commit
together (an image of one write), which leaves the bank ``FULL``. Three banks let a stage start its
next image while its consumer still reads the image before and its producer writes the one after,
so stages of equal work never wait for each other's pipeline latency.
"""

from __future__ import annotations

from amaranth import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from eiex.sw.errors import EiexError

N_BANKS = 3
FREE, WRITING, FULL = 0, 1, 2


def following(bank):
    """The bank after ``bank``, round robin."""
    return Mux(bank == N_BANKS - 1, 0, bank + 1)


class BankedBuffer(wiring.Component):
    """``N_BANKS`` banks of ``words * word_width`` bits (padded to whole ``read_width`` slices).

    Parameters
    ----------
    words : int
        Writes per image.
    word_width : int
        Bits per write.
    read_width : int
        Bits per read; slice ``i`` is bits ``[i * read_width, (i + 1) * read_width)`` of the bank.
    reads : int
        Slices the consumer may address.
    """

    def __init__(self, words: int, word_width: int, read_width: int, reads: int):
        for name, value in (("words", words), ("word_width", word_width), ("read_width", read_width),
                            ("reads", reads)):
            if not isinstance(value, int) or value < 1:
                raise EiexError(f"{name} must be a positive integer, not {value!r}")
        self.words, self.word_width, self.read_width, self.reads = words, word_width, read_width, reads
        self.bits = max(words * word_width, reads * read_width)
        bank = range(N_BANKS)
        super().__init__({
            "free": Out(N_BANKS), "full": Out(N_BANKS),
            "claim": In(1), "claim_bank": In(bank),
            "we": In(1), "w_bank": In(bank), "w_index": In(range(words)), "w_data": In(word_width),
            "commit": In(1),  # with a write: that write's bank is complete
            "release": In(1), "release_bank": In(bank),
            "r_bank": In(bank), "r_index": In(range(reads)), "r_data": Out(read_width),
        })

    def elaborate(self, platform):
        m = Module()
        store = Array(Signal(self.bits, name=f"bank{b}") for b in range(N_BANKS))
        state = Array(Signal(2, name=f"state{b}") for b in range(N_BANKS))
        for b in range(N_BANKS):
            m.d.comb += [self.free[b].eq(state[b] == FREE), self.full[b].eq(state[b] == FULL)]
            with m.If(self.we & self.commit & (self.w_bank == b)):
                m.d.sync += state[b].eq(FULL)
            with m.Elif(self.claim & (self.claim_bank == b)):
                m.d.sync += state[b].eq(WRITING)
            with m.Elif(self.release & (self.release_bank == b)):
                m.d.sync += state[b].eq(FREE)
        with m.If(self.we):
            m.d.sync += store[self.w_bank].word_select(self.w_index, self.word_width).eq(self.w_data)
        m.d.comb += self.r_data.eq(store[self.r_bank].word_select(self.r_index, self.read_width))
        return m
