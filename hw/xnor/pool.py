"""Max-pooling of a binary map (xnor-image section 7): the OR of each ``p x p`` window.

The unit reads its input map from a :class:`~eiex.hw.xnor.maps.MapBuffer` one pixel a cycle, window
by window in raster order of the ``floor(H / p) x floor(W / p)`` output (trailing rows and columns
are never read), ORs the ``p * p`` pixels of a window and writes the result as one pixel of the
next map: ``steps = floor(H / p) * floor(W / p) * p * p`` cycles an image, no bubble inside an image
or between images. Like the MVTU it starts an image when its input bank is full and the next
stage's bank is free, and frees its input bank in the cycle of its last read.

Pipeline, one stage a cycle: issue (the pixel's word addressed), the buffer's synchronous read,
a register, the OR into the window's accumulator; the window's result is written the cycle after
its last OR (``POOL_LATENCY`` cycles after the last read's issue).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from eiex.errors import EiexError
from eiex.hw.xnor.banks import N_BANKS, following, producer_signature
from eiex.hw.xnor.maps import MapGeometry, map_consumer_signature
from eiex.hw.xnor.mvtu import delay

#: cycles from a window's last read to its result's write: the read, a register, the OR
POOL_LATENCY = 3


@dataclass(frozen=True)
class PoolGeometry:
    """A pool layer: input map ``in_shape = (H, W, C)``, windows ``size x size``."""

    in_shape: tuple[int, int, int]
    size: int

    def __post_init__(self):
        MapGeometry(self.in_shape)  # checks the shape
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 1:
            raise EiexError(f"a pool size must be a positive integer, not {self.size!r}")
        if self.size > min(self.in_shape[:2]):
            raise EiexError(f"pooling a {self.in_shape[0]}x{self.in_shape[1]} map by {self.size} leaves nothing")

    @classmethod
    def of(cls, layer) -> "PoolGeometry":
        return cls(tuple(int(v) for v in layer.in_shape), int(layer.size))

    @property
    def out_shape(self) -> tuple[int, int, int]:
        h, w, c = self.in_shape
        return h // self.size, w // self.size, c

    @property
    def source(self) -> MapGeometry:
        return MapGeometry(self.in_shape, 1)

    @property
    def in_features(self) -> int:
        return self.in_shape[0] * self.in_shape[1] * self.in_shape[2]

    @property
    def out_features(self) -> int:
        h, w, c = self.out_shape
        return h * w * c

    @property
    def steps(self) -> int:
        """Cycles an image: one read per pixel of every window."""
        h, w, _ = self.out_shape
        return h * w * self.size * self.size


class PoolUnit(wiring.Component):
    """Streaming OR-pool between two map buffers.

    Attributes
    ----------
    src : Out(map_consumer_signature(geometry.source))
    dst : Out(producer_signature(C))
        One pooled pixel a write, raster order; ``commit`` with the last.
    busy : Out(1)
    """

    def __new__(cls, geometry, *, src_loc_at=0):
        if not isinstance(geometry, PoolGeometry):
            raise EiexError(f"geometry must be a PoolGeometry, not {type(geometry).__name__}")
        return super().__new__(cls, src_loc_at=1 + src_loc_at)

    def __init__(self, geometry: PoolGeometry):
        self.g = geometry
        super().__init__({"src": Out(map_consumer_signature(geometry.source)),
                          "dst": Out(producer_signature(geometry.in_shape[2])), "busy": Out(1)})

    def elaborate(self, platform):
        g = self.g
        m = Module()
        src, dst = self.src, self.dst
        p, width = g.size, g.in_shape[1]
        out_h, out_w, _ = g.out_shape

        running = Signal()
        wx, wy = Signal(range(p)), Signal(range(p))
        px, py = Signal(range(out_w)), Signal(range(out_h))
        window = Signal(range(g.source.words))  # word of the window's top-left pixel
        row = Signal(range(g.source.words))     # word of the window's row wy, first pixel
        rd_bank, wr_bank = Signal(range(N_BANKS)), Signal(range(N_BANKS))

        last_in_window = (wx == p - 1) & (wy == p - 1)
        last_step = running & last_in_window & (px == out_w - 1) & (py == out_h - 1)
        want = ~running | last_step
        next_rd = Mux(running, following(rd_bank), rd_bank)
        next_wr = Mux(running, following(wr_bank), wr_bank)
        start = Signal()
        m.d.comb += start.eq(want & src.full.bit_select(next_rd, 1) & dst.free.bit_select(next_wr, 1))
        m.d.comb += [src.bank.eq(rd_bank), src.word.eq(row + wx), src.xmod.eq(0),
                     src.release.eq(last_step), src.release_bank.eq(rd_bank),
                     dst.claim.eq(start), dst.claim_bank.eq(next_wr)]

        with m.If(want):
            m.d.sync += [rd_bank.eq(next_rd), wr_bank.eq(next_wr), running.eq(start),
                         wx.eq(0), wy.eq(0), px.eq(0), py.eq(0), window.eq(0), row.eq(0)]
        with m.Elif(wx != p - 1):
            m.d.sync += wx.eq(wx + 1)
        with m.Elif(wy != p - 1):
            m.d.sync += [wx.eq(0), wy.eq(wy + 1), row.eq(row + width)]
        with m.Elif(px != out_w - 1):  # the next window along the row
            m.d.sync += [wx.eq(0), wy.eq(0), px.eq(px + 1), window.eq(window + p), row.eq(window + p)]
        with m.Else():  # the first window of the next row of windows
            below = window + p * width - (out_w - 1) * p
            m.d.sync += [wx.eq(0), wy.eq(0), px.eq(0), py.eq(py + 1), window.eq(below), row.eq(below)]

        issue = {"valid": running, "first": (wx == 0) & (wy == 0), "last": last_in_window,
                 "commit": last_step, "bank": wr_bank}
        read, registered, accumulated = delay(m, issue, POOL_LATENCY, "pool")
        pixel = Signal(g.in_shape[2])
        m.d.sync += pixel.eq(src.data)
        acc = Signal(g.in_shape[2])
        with m.If(registered["valid"]):
            m.d.sync += acc.eq(Mux(registered["first"], pixel, acc | pixel))
        m.d.comb += [dst.we.eq(accumulated["valid"] & accumulated["last"]), dst.data.eq(acc),
                     dst.bank.eq(accumulated["bank"]), dst.commit.eq(accumulated["commit"])]
        m.d.comb += self.busy.eq(running | Cat(*(s["valid"] for s in (read, registered, accumulated))).any())
        return m
