"""Frames of the host link (``docs/host-protocol.md``): the receiver and the sender.

A frame is ``SOF``, ``CMD``, ``LEN`` (2 bytes), ``LEN`` payload bytes and a CRC-16/CCITT-FALSE
over ``CMD``, ``LEN`` and the payload (2 bytes); integers little-endian.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.crc import catalog
from amaranth.lib.wiring import In, Out

SOF = 0xA5
CRC = catalog.CRC16_CCITT_FALSE
#: the reply to a request ``CMD`` is ``CMD | REPLY``
REPLY = 0x80
#: an error reply's ``CMD``
ERROR = 0xFF


class Command(enum.Enum, shape=8):
    IDENTIFY = 0x01
    LOAD = 0x02
    COMMIT = 0x03
    RUN = 0x04
    STATS = 0x05
    RESET = 0x06


class Error(enum.Enum, shape=8):
    """Error codes of an error reply (0: none)."""

    NONE = 0
    BAD_CRC = 1
    TRUNCATED = 2
    TOO_LONG = 3
    UNKNOWN_COMMAND = 4
    BAD_LENGTH = 5
    HASH_MISMATCH = 6
    LINE = 7


#: a received frame: its command, payload length and the error found receiving it (the payload
#: is in the receiver's memory)
FRAME_LAYOUT = data.StructLayout({"cmd": 8, "length": 16, "error": Error})


class FrameReceiver(wiring.Component):
    """Reads frames from a byte stream into a payload memory; one frame at a time.

    Parameters
    ----------
    max_payload : int
        Longest payload accepted (the memory's depth).
    timeout : int
        The quiet time ``T`` in cycles: a gap this long inside a frame truncates it, and a
        discard ends after one.

    Attributes
    ----------
    bytes : In(stream.Signature(8))
        From the UART.
    line_error : In(1)
        The UART's framing error or overrun strobe.
    write_addr, write_data, write_en : Out
        The payload memory's write port.
    frame : Out(stream.Signature(layout))
        A frame, good (``error`` = ``NONE``) or not; no byte is read until it is taken.
    dropped : Out(1)
        A byte was dropped (between frames or in discard).
    """

    def __init__(self, max_payload: int, timeout: int):
        self.max_payload = max_payload
        self.timeout = timeout
        super().__init__({
            "bytes": In(stream.Signature(8)), "line_error": In(1),
            "write_addr": Out(range(max_payload)), "write_data": Out(8), "write_en": Out(1),
            "frame": Out(stream.Signature(FRAME_LAYOUT)), "dropped": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = CRC(data_width=8).create()
        quiet = Signal(range(self.timeout + 1))  # cycles since the last byte, saturating
        count = Signal(16)  # payload bytes read
        length = self.frame.payload.length
        error = self.frame.payload.error
        crc_lo = Signal(8)
        byte = self.bytes.payload
        got = Signal()
        m.d.comb += [got.eq(self.bytes.valid & self.bytes.ready), crc.data.eq(byte),
                     self.write_data.eq(byte), self.write_addr.eq(count)]
        with m.If(got):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != self.timeout):
            m.d.sync += quiet.eq(quiet + 1)
        m.d.sync += self.dropped.eq(0)

        def fail(code):
            m.d.sync += error.eq(code)
            m.next = "DISCARD"

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.bytes.ready.eq(1), crc.start.eq(1)]
                with m.If(got):
                    with m.If(byte == SOF):
                        m.d.sync += [self.frame.payload.cmd.eq(0), error.eq(Error.NONE), count.eq(0)]
                        m.next = "CMD"
                    with m.Else():
                        m.d.sync += self.dropped.eq(1)
            with m.State("DONE"):
                m.d.comb += self.frame.valid.eq(1)
                with m.If(self.frame.ready):
                    m.next = "IDLE"
            with m.State("DISCARD"):
                m.d.comb += self.bytes.ready.eq(1)
                with m.If(got):
                    m.d.sync += self.dropped.eq(1)
                with m.Elif(quiet == self.timeout):
                    m.next = "DONE"
            # the states inside a frame
            for state, on_byte in (("CMD", "cmd"), ("LEN0", "len0"), ("LEN1", "len1"), ("PAYLOAD", "payload"),
                                   ("CRC0", "crc0"), ("CRC1", "crc1")):
                with m.State(state):
                    m.d.comb += self.bytes.ready.eq(1)
                    with m.If(self.line_error):
                        fail(Error.LINE)
                    with m.Elif(got):
                        if on_byte in ("cmd", "len0", "len1", "payload"):
                            m.d.comb += crc.valid.eq(1)
                        if on_byte == "cmd":
                            m.d.sync += self.frame.payload.cmd.eq(byte)
                            m.next = "LEN0"
                        elif on_byte == "len0":
                            m.d.sync += length[:8].eq(byte)
                            m.next = "LEN1"
                        elif on_byte == "len1":
                            m.d.sync += length[8:].eq(byte)
                            with m.If((byte << 8 | length[:8]) > self.max_payload):
                                fail(Error.TOO_LONG)
                            with m.Elif((byte == 0) & (length[:8] == 0)):
                                m.next = "CRC0"
                            with m.Else():
                                m.next = "PAYLOAD"
                        elif on_byte == "payload":
                            m.d.comb += self.write_en.eq(1)
                            m.d.sync += count.eq(count + 1)
                            with m.If(count == length - 1):
                                m.next = "CRC0"
                        elif on_byte == "crc0":
                            m.d.sync += crc_lo.eq(byte)
                            m.next = "CRC1"
                        else:
                            with m.If((crc.crc[:8] == crc_lo) & (crc.crc[8:] == byte)):
                                m.next = "DONE"
                            with m.Else():
                                fail(Error.BAD_CRC)
                    with m.Elif(quiet == self.timeout):
                        # the line has been quiet for T already: no discard needed
                        m.d.sync += error.eq(Error.TRUNCATED)
                        m.next = "DONE"
        return m


class FrameSender(wiring.Component):
    """Sends one frame: ``SOF``, ``cmd``, ``length``, ``length`` bytes of ``payload``, the CRC.

    Attributes
    ----------
    send : In(1)
        Start a frame of ``cmd`` and ``length`` (sampled; ignored while ``busy``).
    cmd, length : In
    payload : In(stream.Signature(8))
        The payload bytes; exactly ``length`` are taken.
    bytes : Out(stream.Signature(8))
        To the UART.
    busy : Out(1)
    """

    def __init__(self):
        super().__init__({"send": In(1), "cmd": In(8), "length": In(16), "payload": In(stream.Signature(8)),
                          "bytes": Out(stream.Signature(8)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = CRC(data_width=8).create()
        cmd = Signal(8)
        length = Signal(16)
        left = Signal(16)
        sent = Signal()
        m.d.comb += [sent.eq(self.bytes.valid & self.bytes.ready), crc.data.eq(self.bytes.payload)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += crc.start.eq(1)
                with m.If(self.send):
                    m.d.sync += [cmd.eq(self.cmd), length.eq(self.length), left.eq(self.length)]
                    m.next = "SOF"
            header = (("SOF", SOF, "CMD"), ("CMD", cmd, "LEN0"), ("LEN0", length[:8], "LEN1"),
                      ("LEN1", length[8:], "PAYLOAD"))
            for state, value, following in header:
                with m.State(state):
                    m.d.comb += [self.busy.eq(1), self.bytes.valid.eq(1), self.bytes.payload.eq(value),
                                 crc.valid.eq(sent & (state != "SOF"))]
                    with m.If(sent):
                        m.next = following
            with m.State("PAYLOAD"):
                m.d.comb += self.busy.eq(1)
                with m.If(left == 0):
                    m.next = "CRC0"
                with m.Else():
                    m.d.comb += [self.bytes.valid.eq(self.payload.valid), self.bytes.payload.eq(self.payload.payload),
                                 self.payload.ready.eq(self.bytes.ready), crc.valid.eq(sent)]
                    with m.If(sent):
                        m.d.sync += left.eq(left - 1)
            for state, value, following in (("CRC0", crc.crc[:8], "CRC1"), ("CRC1", crc.crc[8:], "IDLE")):
                with m.State(state):
                    m.d.comb += [self.busy.eq(1), self.bytes.valid.eq(1), self.bytes.payload.eq(value)]
                    with m.If(sent):
                        m.next = following
        return m
