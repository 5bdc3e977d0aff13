"""A PE's column pointers: the even and odd pointer banks read in one cycle, then queued for the
broadcast.

Column ``j`` of a layer spans entries ``ptr[base + j] .. ptr[base + j + 1] - 1`` (spec section 3).
The two pointers sit in different banks (even and odd addresses), so one read of each bank gives
both. The bank addresses of ``pa = base + j`` (:func:`bank_addresses`: even bank ``(pa + 1) >> 1``,
odd bank ``pa >> 1``, first pointer in the odd bank ``pa & 1``) come ready-made from the control
unit (carried with the column in its queue), so no adder sits in front of the banks. Timing, as
the control unit's broadcast stages use it:

* ``A`` (``en``): the banks are read at ``even_addr`` and ``odd_addr``;
* ``A2``: the pointers are out of the banks and go into registers (a block RAM's output is slow:
  no logic follows it in the same cycle);
* ``A3`` (``push``): ``(start, end, end != start)`` enters a short queue, the skid buffer;
* ``B``: the skid buffer's head is ``start``, ``end`` and ``need`` (the column has entries in this
  PE); ``pop`` (the broadcast) removes it.

The stages never hold: the control unit starts a read only while fewer than :data:`SKID_DEPTH`
columns are between ``A`` and the broadcast, so a full PE queue stalls the broadcast without
reaching back to the memories' enables in the same cycle.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eiex.hw.eie.params import HwParams
from eiex.hw.ram import BLOCK_RAM, registered_read

#: columns between stage ``A`` and the broadcast: ``A2``, ``A3`` and the skid buffer's entries; four
#: keep one broadcast per cycle (a read reaches ``B`` three cycles after ``A``)
SKID_DEPTH = 4


def bank_addresses(pa):
    """``(even_addr, odd_addr, odd_first)`` of the column whose first pointer is at ``pa``, from
    ``pa`` and ``pa + 1`` (ints or values): ``ptr[pa]`` and ``ptr[pa + 1]``, one in each bank."""
    return (pa + 1) >> 1, pa >> 1, pa & 1


class PointerReader(wiring.Component):
    """Two pointer banks with a load port, a column read and the skid buffer of read columns.

    Parameters
    ----------
    hw : HwParams
        Engine instance (pointer width and depth).
    init : list of int
        The PE's pointer words (elaboration-time contents), or empty.

    Attributes
    ----------
    en, even_addr, odd_addr, odd_first : in
        Read the pointers of a column (stage ``A``), at the bank addresses of
        :func:`bank_addresses`.
    push : in
        The column read two cycles before enters the skid buffer (stage ``A3``).
    pop : in
        The broadcast takes the skid buffer's head.
    start, end, need : out
        The skid buffer's head (valid while it holds a column).
    ld_en, ld_addr, ld_data : in
        Load-interface write of pointer word ``ld_addr``.
    """

    def __init__(self, hw: HwParams, init=()):
        self.hw = hw
        self.init = list(init)
        e = hw.engine
        super().__init__({
            "en": In(1), "even_addr": In(hw.ptr_addr_bits), "odd_addr": In(hw.ptr_addr_bits),
            "odd_first": In(1), "push": In(1), "pop": In(1),
            "start": Out(e.ptr_bits), "end": Out(e.ptr_bits), "need": Out(1),
            "ld_en": In(1), "ld_addr": In(hw.ptr_addr_bits), "ld_data": In(e.ptr_bits),
        })

    def elaborate(self, platform):
        hw, e = self.hw, self.hw.engine
        m = Module()
        read = []
        for parity, addr in ((0, self.even_addr), (1, self.odd_addr)):
            name = ("even", "odd")[parity]
            bank = Memory(shape=e.ptr_bits, depth=hw.ptr_bank_depth, init=self.init[parity::2], attrs=BLOCK_RAM)
            m.submodules[name] = bank
            wp = bank.write_port()
            m.d.comb += [wp.en.eq(self.ld_en & (self.ld_addr[0] == parity)), wp.addr.eq(self.ld_addr[1:]),
                         wp.data.eq(self.ld_data)]
            read_addr, read_data = registered_read(m, bank, name, en=self.en)
            m.d.comb += read_addr.eq(addr)
            read.append(read_data)
        even, odd = read
        odd_first = Signal()  # the column's first pointer is in the odd bank
        with m.If(self.en):
            m.d.sync += odd_first.eq(self.odd_first)
        start = Signal(e.ptr_bits)
        end = Signal(e.ptr_bits)
        m.d.sync += [start.eq(Mux(odd_first, odd, even)), end.eq(Mux(odd_first, even, odd))]

        entry = data.StructLayout({"start": e.ptr_bits, "end": e.ptr_bits, "need": 1})
        skid = m.submodules.skid = SyncFIFO(width=entry.size, depth=SKID_DEPTH)
        w, head = data.View(entry, skid.w_data), data.View(entry, skid.r_data)
        m.d.comb += [skid.w_en.eq(self.push), w.start.eq(start), w.end.eq(end), w.need.eq(start != end),
                     skid.r_en.eq(self.pop),
                     self.start.eq(head.start), self.end.eq(head.end), self.need.eq(head.need)]
        return m
