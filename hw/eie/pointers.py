"""A PE's column pointers: the even and odd pointer banks read in one cycle, held for the broadcast.

Column ``j`` of a layer spans entries ``ptr[base + j] .. ptr[base + j + 1] - 1`` (spec section 3).
The two pointers sit in different banks (even and odd addresses), so one read of each bank gives
both. Timing, as the control unit's broadcast stages use it:

* ``A`` (``en``): the banks are read at ``base + j``; without ``en`` they keep their data;
* ``A2``: the pointers are out of the banks; ``hold``: they move into registers (``A3``: a block
  RAM's output is slow, no logic follows it in the same cycle);
* ``capture``: they move into the ``B`` registers ``start``, ``end`` and ``need`` (``end > start``:
  the column has entries in this PE), which the broadcast reads.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eiex.hw.eie.params import HwParams


class PointerReader(wiring.Component):
    """Two pointer banks with a load port, a column read and the held ``(start, end, need)``.

    Parameters
    ----------
    hw : HwParams
        Engine instance (pointer width and depth).
    init : list of int
        Initial pointer words (unsigned), in address order.

    Attributes
    ----------
    base : In(ptr_addr_bits)
        The layer's ``ptr_base``.
    en, j : in
        Read the pointers of column ``j`` (stage ``A``).
    hold : in
        Register the pointers read (stage ``A3``).
    capture : in
        Hold the pointers read into ``start``, ``end``, ``need`` (stage ``B``).
    start, end, need : out
    ld_en, ld_addr, ld_data : in
        Load-interface write of pointer ``ld_addr``.
    """

    def __init__(self, hw: HwParams, init=()):
        self.hw = hw
        self.init = list(init)
        e = hw.engine
        super().__init__({
            "base": In(hw.ptr_addr_bits), "en": In(1), "j": In(hw.width_bits), "hold": In(1), "capture": In(1),
            "start": Out(e.ptr_bits), "end": Out(e.ptr_bits), "need": Out(1),
            "ld_en": In(1), "ld_addr": In(hw.ptr_addr_bits), "ld_data": In(e.ptr_bits),
        })

    def elaborate(self, platform):
        hw, e = self.hw, self.hw.engine
        m = Module()
        banks = []
        for parity in (0, 1):
            bank = Memory(shape=e.ptr_bits, depth=hw.ptr_bank_depth, init=self.init[parity::2])
            m.submodules[("even", "odd")[parity]] = bank
            wp = bank.write_port()
            m.d.comb += [wp.en.eq(self.ld_en & (self.ld_addr[0] == parity)), wp.addr.eq(self.ld_addr[1:]),
                         wp.data.eq(self.ld_data)]
            banks.append(bank.read_port())
        even, odd = banks
        pa = Signal(hw.ptr_addr_bits + 1)
        m.d.comb += pa.eq(self.base + self.j)
        m.d.comb += [even.addr.eq((pa + 1) >> 1), odd.addr.eq(pa >> 1), even.en.eq(self.en), odd.en.eq(self.en)]
        odd_first = Signal()  # the column's first pointer is in the odd bank
        with m.If(self.en):
            m.d.sync += odd_first.eq(pa[0])
        start = Signal(e.ptr_bits)
        end = Signal(e.ptr_bits)
        with m.If(self.hold):
            m.d.sync += [start.eq(Mux(odd_first, odd.data, even.data)), end.eq(Mux(odd_first, even.data, odd.data))]
        with m.If(self.capture):
            m.d.sync += [self.start.eq(start), self.end.eq(end), self.need.eq(start != end)]
        return m
