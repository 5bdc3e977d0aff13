"""Byte streams of the host link: bytes out of a memory, bytes packed into words and words into bytes.

Words go little-endian: the first byte is bits 0 to 7.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


class MemoryReader(wiring.Component):
    """Streams ``count`` consecutive bytes of a memory from ``start``, one a cycle.

    The memory's synchronous read port is the stream's register: its address is the next byte's,
    read whenever the stream's payload is free to change.

    Parameters
    ----------
    memory : Memory
        8 bits wide; the reader adds a read port to it.

    Attributes
    ----------
    go : In(1)
        Start a read of ``count`` bytes from ``start`` (ignored while ``busy``).
    start, count : In
        Sampled when ``go`` is high.
    busy : Out(1)
        Bytes still to read or to be taken.
    data : Out(stream.Signature(8))
    """

    def __init__(self, memory: Memory):
        self._port = memory.read_port()  # before the memory is elaborated
        depth = memory.depth
        super().__init__({"go": In(1), "start": In(range(depth)), "count": In(range(depth + 1)),
                          "busy": Out(1), "data": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        port = self._port
        addr = Signal.like(port.addr)
        left = Signal.like(self.count)  # reads still to issue
        advance = Signal()
        m.d.comb += [advance.eq(~self.data.valid | self.data.ready),
                     port.addr.eq(addr), port.en.eq(advance),
                     self.data.payload.eq(port.data),
                     self.busy.eq((left != 0) | self.data.valid)]
        with m.If(advance):
            m.d.sync += self.data.valid.eq(left != 0)
            with m.If(left != 0):
                m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
        with m.If(self.go & ~self.busy):
            m.d.sync += [addr.eq(self.start), left.eq(self.count)]
        return m


class BytePacker(wiring.Component):
    """``n_bytes`` bytes in, one word of ``width`` bits out (the bytes' low ``width`` bits).

    Attributes
    ----------
    bytes : In(stream.Signature(8))
    word : Out(stream.Signature(width))
    """

    def __init__(self, width: int):
        self.width = width
        self.n_bytes = (width + 7) // 8
        super().__init__({"bytes": In(stream.Signature(8)), "word": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        shift = Signal(8 * self.n_bytes)
        got = Signal(range(self.n_bytes + 1))
        m.d.comb += [self.word.payload.eq(shift), self.word.valid.eq(got == self.n_bytes),
                     self.bytes.ready.eq(got != self.n_bytes)]
        with m.If(self.word.valid & self.word.ready):
            m.d.sync += got.eq(0)
        with m.If(self.bytes.valid & self.bytes.ready):
            # the first byte ends up in the low bits after n_bytes shifts
            m.d.sync += [shift.eq(Cat(shift[8:], self.bytes.payload)), got.eq(got + 1)]
        return m


class ByteUnpacker(wiring.Component):
    """One word in, ``n_bytes`` bytes out, low byte first; a signed word is sign-extended.

    Attributes
    ----------
    word : In(stream.Signature(shape))
    bytes : Out(stream.Signature(8))
    """

    def __init__(self, shape):
        self._shape = shape
        super().__init__({"word": In(stream.Signature(shape)), "bytes": Out(stream.Signature(8))})
        self.n_bytes = (len(self.word.payload) + 7) // 8

    def elaborate(self, platform):
        m = Module()
        shift = Signal(8 * self.n_bytes)
        left = Signal(range(self.n_bytes + 1))
        m.d.comb += [self.bytes.payload.eq(shift[:8]), self.bytes.valid.eq(left != 0),
                     self.word.ready.eq(left == 0)]
        with m.If(self.bytes.valid & self.bytes.ready):
            m.d.sync += [shift.eq(shift >> 8), left.eq(left - 1)]
        with m.If(self.word.valid & self.word.ready):
            m.d.sync += [shift.eq(self.word.payload), left.eq(self.n_bytes)]  # a signed word sign-extends
        return m
