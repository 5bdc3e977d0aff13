"""Banked buffer between two stages of the XNOR dataflow pipeline, held in one memory.

A producer writes an image as a stream of ``writes`` writes of ``write_width`` bits (one fold of
the layer before, or one input beat); bit ``r`` of the image is stream bit ``r``, LSB first. The
consumer reads it in ``read_width``-bit slices (one SIMD word of the next layer, or one score):
slice ``i`` is image bits ``[i * read_width, (i + 1) * read_width)``. The image lives in words of
``B = read_width * k`` bits, ``k = ceil(write_width / read_width)`` slices a word, in one
:class:`~amaranth.lib.memory.Memory` with one write port and one synchronous read port, so that it
maps to block or distributed RAM.

Write side (a gearbox): each write joins the pending bits of the word being filled; when a word is
complete it is written to the memory, at most one word a cycle. The last write of an image
(``commit``) also writes the last, partial word (its missing bits zero); when that write completes
one word and starts another, the partial one goes out in the next cycle (a *flush*; the geometry
decides once for all images whether there is one). Words wholly beyond the ``ceil(reads / k)``
words the consumer reads are padding and are dropped.

Read side: the consumer gives word ``i // k`` and slice ``i % k`` of slice ``i``; the slice comes
out in the next cycle (synchronous read).

Banks: three images' room in the one memory, each bank ``FREE``, ``WRITING`` or ``FULL``:

* the producer claims a ``FREE`` bank when it starts an image (``claim``), writes it and commits
  it with its last write; the bank is ``FULL`` from the cycle after its last word is written;
* the consumer starts an image on a ``FULL`` bank and frees it (``release``) once it has read it
  for the last time.

Claim, completion and release of one cycle always concern different banks, except claim and
completion together (an image of one write), which leaves the bank ``FULL``. Three banks let a
stage start its next image while its consumer still reads the image before and its producer writes
the one after, so stages of equal work never wait for each other's pipeline latency.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eiex.hw.ram import BLOCK_RAM, registered_read
from eiex.errors import EiexError

N_BANKS = 3
FREE, WRITING, FULL = 0, 1, 2


def following(bank):
    """The bank after ``bank``, round robin."""
    return Mux(bank == N_BANKS - 1, 0, bank + 1)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class BufferGeometry:
    """Shape of a banked buffer and the fixed schedule of its write-side gearbox.

    Parameters
    ----------
    writes : int
        Writes per image.
    write_width : int
        Bits per write.
    read_width : int
        Bits per read slice.
    reads : int
        Slices the consumer may address.
    """

    writes: int
    write_width: int
    read_width: int
    reads: int

    def __post_init__(self):
        for name in ("writes", "write_width", "read_width", "reads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise EiexError(f"{name} must be a positive integer, not {value!r}")
        if (self.writes - 1) * self.write_width >= self.reads * self.read_width:
            raise EiexError(f"{self.writes} writes of {self.write_width} bits overrun the {self.reads} "
                            f"slices of {self.read_width} bits read: the last write would be padding")

    @property
    def slices(self) -> int:
        """``k``: read slices per memory word."""
        return ceil_div(self.write_width, self.read_width)

    @property
    def word_width(self) -> int:
        """``B``: bits per memory word."""
        return self.read_width * self.slices

    @property
    def words(self) -> int:
        """Memory words per bank: the words the consumer reads."""
        return ceil_div(self.reads, self.slices)

    @property
    def stride(self) -> int:
        """Addresses per bank (a power of two: the address is ``Cat(word, bank)``)."""
        return 1 << (self.words - 1).bit_length()

    @property
    def depth(self) -> int:
        return (N_BANKS - 1) * self.stride + self.words

    def schedule(self) -> list[tuple[int, bool]]:
        """Per write of an image: the bits pending before it and whether it completes a word."""
        steps, pending = [], 0
        for _ in range(self.writes):
            total = pending + self.write_width
            steps.append((pending, total >= self.word_width))
            pending = total - self.word_width if total >= self.word_width else total
        return steps

    @property
    def hold_bits(self) -> int:
        """Bits the gearbox keeps between writes: the most ever pending after a write."""
        return max((p + self.write_width) % self.word_width if e else p + self.write_width
                   for p, e in self.schedule()) if self.word_width > self.write_width else 0

    @property
    def full_words(self) -> int:
        """Complete words written per image."""
        return self.writes * self.write_width // self.word_width

    @property
    def tail_bits(self) -> int:
        """Bits of the last, partial word after the commit write (0: none)."""
        return self.writes * self.write_width % self.word_width

    @property
    def commit_emits(self) -> bool:
        """The commit write completes a word (word ``full_words - 1``)."""
        return self.schedule()[-1][1]

    @property
    def commit_kept(self) -> bool:
        """... and that word is read, not padding."""
        return self.commit_emits and self.full_words - 1 < self.words

    @property
    def tail_kept(self) -> bool:
        """The partial word (word ``full_words``) exists and is read."""
        return self.tail_bits > 0 and self.full_words < self.words

    @property
    def flush(self) -> bool:
        """The partial word goes out the cycle after the commit (whose write completed a word)."""
        return self.tail_kept and self.commit_emits

    @property
    def complete_delay(self) -> int:
        """Cycles from the commit write to the first cycle in which the bank is seen full."""
        return 2 if self.flush else 1


def bank_states(m, w, r, complete, complete_bank) -> None:
    """The ``FREE``/``WRITING``/``FULL`` state of each bank (see the module docstring), seen by the
    producer ``w`` as ``free`` and the consumer ``r`` as ``full``; ``complete`` marks the bank
    ``complete_bank`` full (the cycle after its last word is written)."""
    state = [Signal(2, name=f"state{b}") for b in range(N_BANKS)]
    for b in range(N_BANKS):
        m.d.comb += [w.free[b].eq(state[b] == FREE), r.full[b].eq(state[b] == FULL)]
        with m.If(complete & (complete_bank == b)):
            m.d.sync += state[b].eq(FULL)
        with m.Elif(w.claim & (w.claim_bank == b)):
            m.d.sync += state[b].eq(WRITING)
        with m.Elif(r.release & (r.release_bank == b)):
            m.d.sync += state[b].eq(FREE)


def producer_signature(write_width: int) -> wiring.Signature:
    """A producer's side of a banked buffer (members as the producer drives them)."""
    bank = range(N_BANKS)
    return wiring.Signature({
        "free": In(N_BANKS), "claim": Out(1), "claim_bank": Out(bank),
        "we": Out(1), "bank": Out(bank), "data": Out(write_width),
        "commit": Out(1),  # with a write: the image's last write
    })


def consumer_signature(g: BufferGeometry) -> wiring.Signature:
    """A consumer's side of a banked buffer: ``data`` is the slice addressed in the cycle before."""
    bank = range(N_BANKS)
    return wiring.Signature({
        "full": In(N_BANKS), "release": Out(1), "release_bank": Out(bank),
        "bank": Out(bank), "word": Out(range(max(2, g.words))), "slice": Out(range(max(2, g.slices))),
        "data": In(g.read_width),
    })


class BankedBuffer(wiring.Component):
    """``N_BANKS`` banks of ``words`` memory words of ``word_width`` bits.

    Parameters
    ----------
    geometry : BufferGeometry

    Attributes
    ----------
    w : In(producer_signature(geometry))
    r : In(consumer_signature(geometry))
    """

    def __new__(cls, geometry, *, src_loc_at=0):
        # checked before the object exists, so a refused one is no unused hardware
        if not isinstance(geometry, BufferGeometry):
            raise EiexError(f"geometry must be a BufferGeometry, not {type(geometry).__name__}")
        return super().__new__(cls, src_loc_at=1 + src_loc_at)

    def __init__(self, geometry: BufferGeometry):
        self.g = geometry
        super().__init__({"w": In(producer_signature(geometry.write_width)), "r": In(consumer_signature(geometry))})

    def elaborate(self, platform):
        g = self.g
        m = Module()
        mem = Memory(shape=g.word_width, depth=g.depth, init=[], attrs=BLOCK_RAM)
        m.submodules.memory = mem
        wport = mem.write_port()
        read_addr, read_data = registered_read(m, mem, "read")
        self._banks(m)
        self._gearbox(m, wport)

        m.d.comb += read_addr.eq(Cat(self.r.word[:(g.stride - 1).bit_length()], self.r.bank))
        if g.slices == 1:
            m.d.comb += self.r.data.eq(read_data)
        else:
            slice_ = Signal.like(self.r.slice, name="slice_q")
            m.d.sync += slice_.eq(self.r.slice)
            m.d.comb += self.r.data.eq(read_data.word_select(slice_, g.read_width))
        return m

    def _banks(self, m):
        self.complete = Signal()
        self.complete_bank = Signal(range(N_BANKS))
        bank_states(m, self.w, self.r, self.complete, self.complete_bank)

    def _gearbox(self, m, wport):
        g = self.g
        w = self.w
        B, P, H = g.word_width, g.write_width, g.hold_bits
        hold = Signal(H) if H else Const(0, 0)
        stream = Cat(hold, w.data)  # the newest H + P stream bits, the newest at the top
        pending = Signal(range(max(2, B)))
        word = Signal(range(max(2, g.words)))
        address_bits = (g.stride - 1).bit_length()
        emit = Signal()
        full_word = Signal(B)
        m.d.comb += emit.eq(pending + P >= B)
        # a complete word starts at bit H - pending of the stream: a shifter over the offsets that
        # occur (at most P of them; one when B is a multiple of P), driven by its own register
        offsets = sorted({H - p for p, e in g.schedule() if e}) or [0]
        bits = max(1, offsets[-1].bit_length())  # offsets are counted modulo 2 ** bits
        offset = Signal(bits, init=H % (1 << bits))
        if len(offsets) == 1:
            m.d.comb += full_word.eq(stream[offsets[0]:offsets[0] + B])
        else:
            m.d.comb += full_word.eq(stream.bit_select(offset, B))
        with m.If(w.we):
            m.d.sync += [pending.eq(Mux(emit, pending + P - B, pending + P)),
                         offset.eq(Mux(emit, offset - P + B, offset - P))]
            if H:
                m.d.sync += hold.eq(stream[P:])
            with m.If(emit & (word != g.words - 1)):
                m.d.sync += word.eq(word + 1)
            with m.If(w.commit):
                m.d.sync += [pending.eq(0), word.eq(0), offset.eq(offset.init)]

        # the word written this cycle: a complete word, the partial word of a commit, or a flush
        m.d.comb += [wport.addr.eq(Cat(word[:address_bits], w.bank)), wport.data.eq(full_word),
                     wport.en.eq(w.we & emit & (~w.commit if g.commit_emits and not g.commit_kept else 1))]
        if g.tail_kept and not g.flush:
            with m.If(w.we & w.commit):
                m.d.comb += [wport.en.eq(1), wport.data.eq(stream[H + P - g.tail_bits:])]
        if g.flush:
            flush = Signal()
            flush_bank = Signal(range(N_BANKS))
            m.d.sync += [flush.eq(w.we & w.commit), flush_bank.eq(w.bank)]
            with m.If(flush):
                m.d.comb += [wport.en.eq(1), wport.addr.eq(Cat(Const(g.full_words, address_bits), flush_bank)),
                             wport.data.eq(hold[H - g.tail_bits:])]
            m.d.comb += [self.complete.eq(flush), self.complete_bank.eq(flush_bank)]
        else:
            m.d.comb += [self.complete.eq(w.we & w.commit), self.complete_bank.eq(w.bank)]
