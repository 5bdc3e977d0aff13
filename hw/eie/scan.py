"""The control unit's non-zero search: flags in memory, one LNZD window per word, scanned in order.

Non-zero flag ``j`` of a bank (activation ``j``: PE ``j % n_pe``, slot ``j // n_pe``) is bit
``j % W`` of word ``bank * n_windows + j // W`` of the flag memory, ``W`` being the LNZD window
(``window_slots`` slots of every PE). Inputs and write-backs produce flags in order, so
:class:`FlagPacker` gathers them in a window-wide register and writes the whole (partial) word
with every group of flags: no wide register is written at a run-time index.

:class:`WindowScan` reads one window word per cycle through a synchronous read port (transparent
for the write port: a window read while it is written shows the write). A window word is loaded,
masked to the layer's ``cols``, into the ``live`` register; the LNZD tree hands its lowest live
flag to the ``column`` stream each cycle the stream is ready and clears it. The next window is
loaded in the cycle the current one gives up its last flag (an all-zero window costs one cycle),
once the write-back has stored all of it (``readable`` slots, as of the cycle before: the
comparison is registered). The read address is one of two registers, chosen by the load decision,
which depends only on ``live``, the stream's ready and registered flags: the next word is always on
its way.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from eiex.hw.eie.lnzd import LeadingNonZero
from eiex.hw.eie.params import HwParams
from eiex.errors import EiexError


class FlagPacker(wiring.Component):
    """Gathers groups of flags, produced in order, into window words.

    Parameters
    ----------
    window : int
        Flags per word.
    group : int
        Flags per write (a divisor of ``window``).

    Attributes
    ----------
    valid, pos, bits : in
        Group ``pos`` of the current word is ``bits``.
    word : out
        The word with this cycle's group in place (groups above ``pos`` are stale): what to write.
    """

    def __init__(self, window: int, group: int):
        for name, value in (("window", window), ("group", group)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EiexError(f"{name} must be a positive integer, not {value!r}")
        if window % group:
            raise EiexError(f"group ({group}) must divide window ({window})")
        self.window, self.group = window, group
        super().__init__({
            "valid": In(1), "pos": In(range(max(2, window // group))), "bits": In(group), "word": Out(window),
        })

    def elaborate(self, platform):
        m = Module()
        held = Signal(self.window)
        g = self.group
        m.d.comb += self.word.eq(Cat(*(Mux(self.pos == k, self.bits, held[k * g:(k + 1) * g])
                                       for k in range(self.window // g))))
        with m.If(self.valid):
            m.d.sync += held.eq(self.word)
        return m


def column_layout(hw: HwParams) -> data.StructLayout:
    """A non-zero activation to broadcast: its index, its slot and its PE, and the pointer-bank
    addresses of its column (:func:`~eiex.hw.eie.pointers.bank_addresses` of ``ptr_base + j``)."""
    return data.StructLayout({"j": hw.width_bits, "slot": range(hw.slots), "pe": range(max(2, hw.n_pe)),
                              "ptr_even": hw.ptr_addr_bits, "ptr_odd": hw.ptr_addr_bits, "ptr_odd_first": 1})


class WindowScan(wiring.Component):
    """Finds the non-zero activations of a layer, in order, in the flag memory.

    Parameters
    ----------
    hw : HwParams
        Engine instance (window, slots, flag memory depth).

    Attributes
    ----------
    start : In(1)
        Begin a layer (its ``bank`` is valid; ``cols`` from the next cycle on): presents window 0's
        address.
    run : In(1)
        Scan (windows are loaded only while ``run``).
    bank, cols, ptr_base : in
        The source bank, the layer's ``cols`` and ``ptr_base`` (read when a window is loaded).
    readable : In(range(slots + 1))
        Local rows of the source bank already stored (all of them when no write-back runs); the
        scan acts on it one cycle later.
    flag_addr : Out(range(flag_depth))
    flag_data : In(window)
        The flag memory's synchronous read port.
    column : Out(stream.Signature(column_layout(hw)))
        Non-zero activations, in order.
    done : Out(1)
        Every window of the layer was loaded and has given up its flags.
    """

    def __init__(self, hw: HwParams):
        if not isinstance(hw, HwParams):
            raise EiexError(f"hw must be a HwParams, not {type(hw).__name__}")
        self.hw = hw
        super().__init__({
            "start": In(1), "run": In(1), "bank": In(1), "cols": In(hw.width_bits),
            "ptr_base": In(hw.ptr_addr_bits),
            "readable": In(range(hw.slots + 1)),
            "flag_addr": Out(range(hw.flag_depth)), "flag_data": In(hw.window),
            "column": Out(stream.Signature(column_layout(hw))), "done": Out(1),
        })

    def elaborate(self, platform):
        hw = self.hw
        n_pe, W, ws = hw.n_pe, hw.window, hw.win_slots
        m = Module()
        lnzd = m.submodules.lnzd = LeadingNonZero(W)

        # the next window to load, nxt: its first flag and the slots it needs stored
        nxt_j = Signal(hw.width_bits + 1)  # nxt * W
        nxt_need = Signal(range(hw.slots + ws + 1))  # (nxt + 1) * ws
        live = Signal(W)  # the loaded window's flags still to hand out
        live_valid = Signal()
        live_j = Signal(hw.width_bits + 1)
        live_slot = Signal(range(hw.slots + 1))
        live_pa = Signal(hw.ptr_addr_bits + 1)  # ptr_base + live_j
        live_pa1 = Signal(hw.ptr_addr_bits + 1)  # ptr_base + live_j + 1

        more = Signal()  # window nxt exists: nxt_j < cols (a layer has at least one column)
        lim = Signal(hw.width_bits + 2)
        m.d.comb += lim.eq(self.cols - nxt_j)
        single = Signal()  # at most one flag left
        m.d.comb += single.eq((live & (live - 1)) == 0)
        m.d.comb += lnzd.flags.eq(live)
        col = self.column
        m.d.comb += col.valid.eq(live_valid & (live != 0))
        issue = Signal()
        m.d.comb += issue.eq(col.valid & col.ready)
        idx_slot = Array(Const(k // n_pe, range(max(2, ws))) for k in range(W))
        idx_pe = Array(Const(k % n_pe, range(max(2, n_pe))) for k in range(W))
        m.d.comb += [col.payload.j.eq(live_j + lnzd.index), col.payload.slot.eq(live_slot + idx_slot[lnzd.index]),
                     col.payload.pe.eq(idx_pe[lnzd.index])]
        # the column's pointer-bank addresses, from two registered bases (no carry chain after another)
        pa = Signal(hw.ptr_addr_bits + 1)
        pa1 = Signal(hw.ptr_addr_bits + 1)
        m.d.comb += [pa.eq(live_pa + lnzd.index), pa1.eq(live_pa1 + lnzd.index),
                     col.payload.ptr_even.eq(pa1 >> 1), col.payload.ptr_odd.eq(pa >> 1),
                     col.payload.ptr_odd_first.eq(pa[0])]

        can_load = Signal()
        m.d.comb += can_load.eq(~live_valid | (single & ((live == 0) | issue)))
        # window nxt's flags are stored: readable >= nxt_need, as of the cycle before (both
        # comparisons registered, for nxt_need as it is and as a load makes it)
        stored, stored_if_load, loaded = Signal(), Signal(), Signal()
        ready = Signal()
        m.d.comb += ready.eq(Mux(loaded, stored_if_load, stored))
        load = Signal()
        m.d.comb += load.eq(self.run & can_load & more & ready)
        m.d.sync += [stored.eq(self.readable >= Mux(self.start, ws, nxt_need)),
                     stored_if_load.eq(self.readable >= nxt_need + ws), loaded.eq(load)]
        # the flag-memory addresses of windows nxt and nxt + 1 in the source bank, kept in registers
        # so that only a multiplexer follows the load decision
        base = Mux(self.bank, hw.n_windows, 0)
        addr = Signal(range(hw.flag_depth))
        addr1 = Signal(range(hw.flag_depth + 1))
        with m.If(self.start):
            m.d.comb += self.flag_addr.eq(base)
            m.d.sync += [addr.eq(base), addr1.eq(base + 1)]
        with m.Else():
            m.d.comb += self.flag_addr.eq(Mux(load, addr1, addr))
            with m.If(load):
                m.d.sync += [addr.eq(addr1), addr1.eq(addr1 + 1)]

        with m.If(issue):
            m.d.sync += live.eq(live & (live - 1))
        with m.If(self.start):
            m.d.sync += [nxt_j.eq(0), nxt_need.eq(ws), live_valid.eq(0), more.eq(1)]
        with m.Elif(load):
            mask = Cat(*(k < lim for k in range(W)))
            m.d.sync += [live.eq(self.flag_data & mask), live_valid.eq(1), live_j.eq(nxt_j),
                         live_slot.eq(nxt_need - ws), live_pa.eq(self.ptr_base + nxt_j),
                         live_pa1.eq(self.ptr_base + nxt_j + 1),
                         nxt_j.eq(nxt_j + W), nxt_need.eq(nxt_need + ws),
                         more.eq(nxt_j + W < self.cols)]
        with m.Elif(can_load):
            m.d.sync += live_valid.eq(0)
        m.d.comb += self.done.eq(~live_valid & ~more)
        return m
