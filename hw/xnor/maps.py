"""Banked buffer of a binary feature map, read a pixel or a run of pixels at a time.

A producer writes an ``H x W x C`` map (xnor-image section 7) as ``H * W`` writes of one pixel's
``C`` bits, in raster order; a consumer (a conv layer's sliding-window unit, a pool unit) reads
``g`` consecutive pixels of one row in a cycle (``g`` is the map's *group*: 1, or a conv layer's
kernel size when it reads a whole kernel row at once). Pixel ``x`` of a row lives in memory
``x mod g`` at word ``y * ceil(W / g) + x // g``, so the ``g`` pixels from any ``x0`` come from
``g`` different memories in one cycle; the consumer gives the row's word of ``x0`` and
``x0 mod g`` and gets the pixels rotated into order the cycle after (a synchronous read).

Banks as in :mod:`eiex.hw.xnor.banks`: three maps' room, ``FREE``/``WRITING``/``FULL``, claimed by
the producer with its first write, full the cycle after its last write (``complete_delay`` 1),
freed by the consumer after its last read, so that layers work on successive images at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eiex.errors import EiexError
from eiex.hw.ram import BLOCK_RAM, registered_read
from eiex.hw.xnor.banks import N_BANKS, bank_states, ceil_div, producer_signature


@dataclass(frozen=True)
class MapGeometry:
    """A map ``shape = (H, W, C)`` read ``group`` pixels of a row at a time."""

    shape: tuple[int, int, int]
    group: int = 1

    def __post_init__(self):
        values = (*self.shape, self.group) if isinstance(self.shape, tuple) else (self.shape,)
        if len(values) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
            raise EiexError(f"a map needs a shape (H, W, C) and a group of positive integers, not "
                            f"{self.shape!r} and {self.group!r}")
        if self.group > self.shape[1]:
            raise EiexError(f"a map {self.shape[1]} pixels wide cannot be read {self.group} pixels at a time")

    @property
    def pixel_bits(self) -> int:
        return self.shape[2]

    @property
    def pixels(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def row_words(self) -> int:
        """Words of one row in each memory, ``ceil(W / g)``."""
        return ceil_div(self.shape[1], self.group)

    @property
    def words(self) -> int:
        """Words of one map in each memory."""
        return self.shape[0] * self.row_words

    @property
    def stride(self) -> int:
        """Addresses per bank (a power of two: the address is ``Cat(word, bank)``)."""
        return 1 << (self.words - 1).bit_length()

    @property
    def depth(self) -> int:
        return (N_BANKS - 1) * self.stride + self.words

    complete_delay = 1


def map_consumer_signature(g: MapGeometry) -> wiring.Signature:
    """A consumer's side of a map buffer: ``data`` holds the ``group`` pixels (pixel ``x0 + e`` at
    bits ``[e * C, (e + 1) * C)``) from the word and ``xmod`` (``x0 mod group``) of the cycle before."""
    bank = range(N_BANKS)
    return wiring.Signature({
        "full": In(N_BANKS), "release": Out(1), "release_bank": Out(bank),
        "bank": Out(bank), "word": Out(range(max(2, g.words))), "xmod": Out(range(max(2, g.group))),
        "data": In(g.group * g.pixel_bits),
    })


class MapBuffer(wiring.Component):
    """``N_BANKS`` banks of one map in ``group`` memories of ``C``-bit pixels.

    Parameters
    ----------
    geometry : MapGeometry

    Attributes
    ----------
    w : In(producer_signature(C))
        One pixel a write, in raster order; ``commit`` with the map's last pixel.
    r : In(map_consumer_signature(geometry))
    """

    def __new__(cls, geometry, *, src_loc_at=0):
        if not isinstance(geometry, MapGeometry):
            raise EiexError(f"geometry must be a MapGeometry, not {type(geometry).__name__}")
        return super().__new__(cls, src_loc_at=1 + src_loc_at)

    def __init__(self, geometry: MapGeometry):
        self.g = geometry
        super().__init__({"w": In(producer_signature(geometry.pixel_bits)),
                          "r": In(map_consumer_signature(geometry))})

    def elaborate(self, platform):
        g = self.g
        m = Module()
        w, r = self.w, self.r
        bank_states(m, w, r, w.we & w.commit, w.bank)
        address_bits = (g.stride - 1).bit_length()

        # ---- write: pixel x of row y to memory x mod g, word y * row_words + x // g --------------
        x = Signal(range(g.shape[1]))
        xmod = Signal(range(max(2, g.group)))
        word = Signal(range(max(2, g.words)))
        with m.If(w.we):
            with m.If(w.commit):
                m.d.sync += [x.eq(0), xmod.eq(0), word.eq(0)]
            with m.Elif(x == g.shape[1] - 1):
                m.d.sync += [x.eq(0), xmod.eq(0), word.eq(word + 1)]
            with m.Elif(xmod == g.group - 1):
                m.d.sync += [x.eq(x + 1), xmod.eq(0), word.eq(word + 1)]
            with m.Else():
                m.d.sync += [x.eq(x + 1), xmod.eq(xmod + 1)]

        # ---- read: memory j gives pixel x0 + ((j - x0) mod g), one word further for j < x0 mod g --
        outputs = []
        for j in range(g.group):
            mem = Memory(shape=g.pixel_bits, depth=g.depth, init=[], attrs=BLOCK_RAM)
            m.submodules[f"pixels{j}"] = mem
            wport = mem.write_port()
            m.d.comb += [wport.addr.eq(Cat(word[:address_bits], w.bank)), wport.data.eq(w.data),
                         wport.en.eq(w.we & (xmod == j))]
            read_addr, read_data = registered_read(m, mem, f"pixels{j}")
            offset = r.word + (j < r.xmod) if j < g.group - 1 else r.word
            m.d.comb += read_addr.eq(Cat(offset[:address_bits], r.bank))
            outputs.append(read_data)
        if g.group == 1:
            m.d.comb += r.data.eq(outputs[0])
        else:
            xmod_q = Signal.like(r.xmod, name="xmod_q")
            m.d.sync += xmod_q.eq(r.xmod)
            with m.Switch(xmod_q):
                for rotation in range(g.group):
                    with m.Case(rotation):
                        m.d.comb += r.data.eq(Cat(*(outputs[(rotation + e) % g.group] for e in range(g.group))))
        return m
