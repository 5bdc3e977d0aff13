"""A binarized conv layer (xnor-image section 7): sliding-window unit, patch buffer and MVTU.

Block diagram::

    map buffer ─► sliding-window unit ─► patch buffer ─► MVTU datapath ─► pixel assembly ─► next buffer
    (H x W x C)   (reads kernel rows)    (3 patches)     (P x S, as for      (NF folds of P
                                                          fully connected)    -> M bits)

The input map waits in a :class:`~eiex.hw.xnor.maps.MapBuffer` (each input bit written once, from
the producer's stream). For each output position ``(oy, ox)`` in raster order the sliding-window
unit reads the ``k x k`` window from it in the spec's column order ``(ky * k + kx) * C + ci``:
either pixel by pixel (``k * k`` reads of ``C`` bits) or, when a pixel is narrower than the MVTU's
SIMD word, kernel row by kernel row (``k`` reads of ``k`` pixels, the map buffer's *group*), so
that the window is read at least as fast as the MVTU consumes it. The reads go through a
:class:`~eiex.hw.xnor.banks.BankedBuffer` gearbox into SIMD words: the patch buffer, three patches'
room. The MVTU datapath (:class:`~eiex.hw.xnor.mvtu.MvtuDatapath`, exactly the fully connected
layer's: rows are output channels, columns ``K = k * k * C``) reads each patch ``NF`` times, ``SF``
words each, and its ``NF`` folds of ``P`` results are assembled into the ``M`` bits of the output
pixel (padding rows dropped), one write per position into the next buffer.

Schedule: every position takes ``T = max(NF * SF, reads)`` cycles, fixed. The unit starts an image
when its input map is full and the next stage's bank is free; the window of position ``j`` is read
in cycles ``[j * T, j * T + reads)`` of the image, and the MVTU issues its steps in
``[D + j * T, D + j * T + NF * SF)``, ``D`` (:attr:`ConvGeometry.mvtu_delay`) cycles later, when the
patch's last word is in the patch buffer. Nothing inside an image waits for anything, so the cycle
model (:mod:`eiex.hw.xnor.cycles`) is exact; the next image's windows follow without a bubble.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from eiex.errors import EiexError
from eiex.hw.xnor.banks import N_BANKS, BankedBuffer, BufferGeometry, following, producer_signature
from eiex.hw.xnor.maps import MapGeometry, map_consumer_signature
from eiex.hw.xnor.mvtu import LayerGeometry, MvtuDatapath, delay, load_signature, mvtu_latency, slice_counters

#: cycles from a window read's issue to its write into the patch buffer: the synchronous read, a register
SWU_LATENCY = 2


@dataclass(frozen=True)
class ConvGeometry:
    """What the hardware of one conv layer depends on (spec section 7)."""

    in_shape: tuple[int, int, int]
    out_channels: int
    kernel: int
    pe: int
    simd: int
    thr_bits: int

    def __post_init__(self):
        MapGeometry(self.in_shape)  # checks the shape
        for name in ("out_channels", "kernel", "pe", "simd", "thr_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise EiexError(f"{name} must be a positive integer, not {value!r}")
        if self.kernel > min(self.in_shape[:2]):
            raise EiexError(f"a {self.kernel}x{self.kernel} kernel does not fit a "
                            f"{self.in_shape[0]}x{self.in_shape[1]} map")

    @classmethod
    def of(cls, layer) -> "ConvGeometry":
        return cls(tuple(int(v) for v in layer.in_shape), int(layer.out_channels), int(layer.kernel),
                   int(layer.pe), int(layer.simd), int(layer.thr_bits))

    @property
    def matrix(self) -> LayerGeometry:
        """The MVTU's matrix: ``M`` output channels by ``K = k * k * C`` columns."""
        k, c = self.kernel, self.in_shape[2]
        return LayerGeometry(k * k * c, self.out_channels, self.pe, self.simd, False, self.thr_bits)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        h, w, _ = self.in_shape
        return h - self.kernel + 1, w - self.kernel + 1, self.out_channels

    @property
    def positions(self) -> int:
        return self.out_shape[0] * self.out_shape[1]

    @property
    def in_features(self) -> int:
        h, w, c = self.in_shape
        return h * w * c

    @property
    def out_features(self) -> int:
        return self.positions * self.out_channels

    @property
    def group(self) -> int:
        """Pixels a window read: a kernel row when a pixel is narrower than the SIMD word (else
        ``k * k`` reads a window could outlast the ``NF * SF`` steps of a position), else one."""
        return self.kernel if self.in_shape[2] < self.matrix.used_simd else 1

    @property
    def reads(self) -> int:
        """Window reads per position."""
        return self.kernel * self.kernel // self.group

    @property
    def position_cycles(self) -> int:
        """``T``: cycles per position, the MVTU's ``NF * SF`` steps or the window's reads."""
        return max(self.matrix.nf * self.matrix.sf, self.reads)

    @property
    def steps(self) -> int:
        """Cycles between the starts of successive images."""
        return self.positions * self.position_cycles

    @property
    def source(self) -> MapGeometry:
        return MapGeometry(self.in_shape, self.group)

    @property
    def patch(self) -> BufferGeometry:
        """The patch buffer: ``reads`` writes of ``group * C`` bits, read as ``SF`` SIMD words."""
        g = self.matrix
        return BufferGeometry(self.reads, self.group * self.in_shape[2], g.used_simd, g.sf)

    @property
    def mvtu_delay(self) -> int:
        """``D``: cycles from a window's first read to the MVTU's first step on it, when the patch
        buffer has its last word (written ``SWU_LATENCY`` cycles after the last read, a flush later
        when the gearbox has one) and the read port sees it (one cycle more)."""
        return self.reads + SWU_LATENCY - 1 + self.patch.complete_delay

    @property
    def latency(self) -> int:
        """Cycles from a position's last MVTU step to the write of its pixel."""
        return mvtu_latency(self.matrix)


class ConvUnit(wiring.Component):
    """One conv layer: sliding-window unit, patch buffer, MVTU datapath, pixel assembly.

    Parameters
    ----------
    geometry : ConvGeometry
    init : dict or None
        Elaboration-time weight and threshold words (see :class:`~eiex.hw.xnor.mvtu.Mvtu`).

    Attributes
    ----------
    src : Out(map_consumer_signature(geometry.source))
    dst : Out(producer_signature(M))
        One output pixel (``M`` bits) a write, raster order; ``commit`` with the last.
    ld_* : memory writes (as the MVTU's).
    busy : Out(1)
    """

    def __new__(cls, geometry, init=None, *, src_loc_at=0):
        if not isinstance(geometry, ConvGeometry):
            raise EiexError(f"geometry must be a ConvGeometry, not {type(geometry).__name__}")
        return super().__new__(cls, src_loc_at=1 + src_loc_at)

    def __init__(self, geometry: ConvGeometry, init: dict | None = None):
        self.g = geometry
        self.init = init
        super().__init__({"src": Out(map_consumer_signature(geometry.source)),
                          "dst": Out(producer_signature(geometry.out_channels)),
                          **load_signature(geometry.matrix), "busy": Out(1)})

    def elaborate(self, platform):
        g = self.g
        m = Module()
        m.submodules.patches = patches = BankedBuffer(g.patch)
        m.submodules.datapath = datapath = MvtuDatapath(g.matrix, self.init)
        for name in ("ld_en", "ld_sel", "ld_pe", "ld_addr", "ld_data"):
            m.d.comb += getattr(datapath, name).eq(getattr(self, name))
        first_read, window_busy = self._windows(m, patches.w)
        mvtu_busy = self._mvtu(m, datapath, patches.r, first_read)
        m.d.comb += self.busy.eq(window_busy | mvtu_busy | datapath.busy)
        return m

    def _windows(self, m, patch):
        """The sliding-window unit: per position, the window's reads at fixed cycles of its ``T``,
        their data into the patch buffer. Returns the image's first-read strobe and a busy flag."""
        g = self.g
        src, dst = self.src, self.dst
        k, group, reads, period = g.kernel, g.group, g.reads, g.position_cycles
        out_h, out_w, _ = g.out_shape
        pitch = g.source.row_words  # words from a row to the next
        words = range(max(2, g.source.words))

        running = Signal()
        phase = Signal(range(period))
        ox, oy = Signal(range(out_w)), Signal(range(out_h))
        xmod = Signal(range(max(2, group)))  # ox mod group
        base = Signal(words)       # word of (oy, ox)
        row_start = Signal(words)  # word of (oy, 0)
        row = Signal(words)        # word of (oy + ky, ox)
        kx = Signal(range(k))      # pixel by pixel only
        rd_bank, wr_bank, patch_bank = (Signal(range(N_BANKS), name=n) for n in ("rd_bank", "wr_bank", "patch_bank"))

        last_phase = phase == period - 1
        last_position = (ox == out_w - 1) & (oy == out_h - 1)
        reading = running & (phase < reads)
        last_read = phase == reads - 1
        want = ~running | (last_phase & last_position)
        next_rd = Mux(running, following(rd_bank), rd_bank)
        next_wr = Mux(running, following(wr_bank), wr_bank)
        start = Signal()
        m.d.comb += start.eq(want & src.full.bit_select(next_rd, 1) & dst.free.bit_select(next_wr, 1))
        m.d.comb += [src.bank.eq(rd_bank), src.word.eq(row + kx if group == 1 else row), src.xmod.eq(xmod),
                     src.release.eq(reading & last_read & last_position), src.release_bank.eq(rd_bank)]

        with m.If(want):
            m.d.sync += [rd_bank.eq(next_rd), wr_bank.eq(next_wr), running.eq(start), phase.eq(0),
                         ox.eq(0), oy.eq(0), xmod.eq(0), base.eq(0), row_start.eq(0), row.eq(0), kx.eq(0)]
        with m.Else():
            with m.If(reading):  # the next pixel of the window's row, or its next row
                if group == 1 and k > 1:
                    with m.If(kx == k - 1):
                        m.d.sync += [kx.eq(0), row.eq(row + pitch)]
                    with m.Else():
                        m.d.sync += kx.eq(kx + 1)
                else:
                    m.d.sync += row.eq(row + pitch)
            with m.If(last_phase):  # the next position (overrides the window's last step)
                m.d.sync += [phase.eq(0), kx.eq(0)]
                with m.If(ox == out_w - 1):
                    below = row_start + pitch
                    m.d.sync += [ox.eq(0), oy.eq(oy + 1), xmod.eq(0), base.eq(below), row_start.eq(below),
                                 row.eq(below)]
                with m.Else():
                    m.d.sync += ox.eq(ox + 1)
                    if group == 1:
                        m.d.sync += [base.eq(base + 1), row.eq(base + 1)]
                    else:
                        with m.If(xmod == group - 1):
                            m.d.sync += [xmod.eq(0), base.eq(base + 1), row.eq(base + 1)]
                        with m.Else():
                            m.d.sync += [xmod.eq(xmod + 1), row.eq(base)]
            with m.Else():
                m.d.sync += phase.eq(phase + 1)
        with m.If(reading & last_read):
            m.d.sync += patch_bank.eq(following(patch_bank))

        # ---- the reads' data into the patch buffer, SWU_LATENCY cycles later ------------------------
        issue = {"valid": reading, "first": phase == 0, "last": last_read, "bank": patch_bank}
        stages = delay(m, issue, SWU_LATENCY, "window")
        write = stages[-1]
        pixels = Signal(len(src.data))
        m.d.sync += pixels.eq(src.data)
        m.d.comb += [patch.claim.eq(write["valid"] & write["first"]), patch.claim_bank.eq(write["bank"]),
                     patch.we.eq(write["valid"]), patch.bank.eq(write["bank"]), patch.data.eq(pixels),
                     patch.commit.eq(write["last"])]

        first_read = running & (phase == 0) & (ox == 0) & (oy == 0)
        return first_read, running | Cat(*(s["valid"] for s in stages)).any()

    def _mvtu(self, m, datapath, patch, first_read):
        """The MVTU's steps, ``mvtu_delay`` cycles behind the windows; the folds assembled into pixels."""
        g = self.g
        mat = g.matrix
        dst = self.dst
        period, cycles = g.position_cycles, mat.nf * mat.sf

        # the image's first step: its first window read, delayed (the next image's may be in flight)
        starts = Signal(g.mvtu_delay - 1)  # mv_start the cycle before the first step
        m.d.sync += starts.eq(Cat(first_read, starts[:-1]))
        mv_start = starts[-1]

        running = Signal()
        phase = Signal(range(period))
        position = Signal(range(g.positions))
        nf, sf = Signal(range(mat.nf)), Signal(range(mat.sf))
        waddr = Signal(range(max(2, cycles)))
        patch_bank, out_bank = Signal(range(N_BANKS)), Signal(range(N_BANKS))

        issuing = running & (phase < cycles) if period > cycles else running
        last_sf, last_nf = sf == mat.sf - 1, nf == mat.nf - 1
        patch_done = issuing & last_sf & last_nf
        image_done = patch_done & (position == g.positions - 1)
        with m.If(mv_start):
            m.d.sync += [running.eq(1), phase.eq(0), position.eq(0), nf.eq(0), sf.eq(0), waddr.eq(0)]
        with m.Elif(running):
            with m.If(issuing):
                with m.If(last_sf & last_nf):
                    m.d.sync += [sf.eq(0), nf.eq(0), waddr.eq(0)]
                with m.Elif(last_sf):
                    m.d.sync += [sf.eq(0), nf.eq(nf + 1), waddr.eq(waddr + 1)]
                with m.Else():
                    m.d.sync += [sf.eq(sf + 1), waddr.eq(waddr + 1)]
            with m.If(phase == period - 1):
                m.d.sync += [phase.eq(0), position.eq(position + 1)]
                with m.If(position == g.positions - 1):
                    m.d.sync += running.eq(0)
            with m.Else():
                m.d.sync += phase.eq(phase + 1)
        with m.If(patch_done):
            m.d.sync += patch_bank.eq(following(patch_bank))
        with m.If(image_done):
            m.d.sync += out_bank.eq(following(out_bank))

        m.d.comb += [patch.bank.eq(patch_bank), patch.release.eq(patch_done), patch.release_bank.eq(patch_bank)]
        slice_counters(m, g.patch, patch, sf, ~issuing, last_sf)
        step = datapath.step
        m.d.comb += [step.valid.eq(issuing), step.first.eq(sf == 0), step.last.eq(last_sf), step.nf.eq(nf),
                     step.commit.eq(image_done), step.bank.eq(out_bank), step.waddr.eq(waddr),
                     datapath.x.eq(patch.data)]

        # ---- NF folds of P results -> one pixel of M bits (padding rows dropped) -------------------
        fold = datapath.fold
        m.d.comb += [dst.claim.eq(mv_start), dst.claim_bank.eq(out_bank), dst.bank.eq(fold.bank),
                     dst.commit.eq(fold.commit)]
        if mat.nf == 1:
            m.d.comb += [dst.we.eq(fold.we), dst.data.eq(fold.data[:mat.out_features])]
        else:
            held = Signal((mat.nf - 1) * mat.pe)  # folds 0 .. NF - 2, fold 0 lowest
            real_rows = mat.out_features - (mat.nf - 1) * mat.pe
            with m.If(fold.we & ~fold.last_fold):
                m.d.sync += held.eq(Cat(held[mat.pe:], fold.data))
            m.d.comb += [dst.we.eq(fold.we & fold.last_fold), dst.data.eq(Cat(held, fold.data[:real_rows]))]
        return running | starts.any()


def conv_unit_constants(g: ConvGeometry) -> dict:
    """The fixed schedule of a conv unit, for the cycle model: offsets from an image's first read."""
    period, cycles = g.position_cycles, g.matrix.nf * g.matrix.sf
    last_position = (g.positions - 1) * period
    return {"steps": g.steps, "release": last_position + g.reads - 1,
            "write": g.mvtu_delay + last_position + cycles - 1 + g.latency}

