"""The host link: an engine behind a UART that speaks the frames of ``docs/host-protocol.md``.

Block diagram::

    rx ─► UartRx ─► FrameReceiver ─► payload memory ─► reader ─┬─► word packer ─► engine.load
                        │ frame (cmd, length, error)            ├─► beat packer ─► engine.input
                        ▼                                       └─► hash packer ─► hash register
                    command FSM                              engine.output ─► unpacker ─► result memory
                        │ reply (cmd, length, source)
    tx ◄─ UartTx ◄─ FrameSender ◄─ identify ROM (+ hash) | result memory | counters | error code

A command runs only once its frame has arrived whole and good; the receiver then holds the frame
(reading no byte) until the reply is handed to the UART.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from amaranth import Array, Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eiex.hw.link.engines import HASH_BYTES, EnginePort
from eiex.hw.link.frames import ERROR, REPLY, Command, Error, FrameReceiver, FrameSender
from eiex.hw.link.streams import BytePacker, ByteUnpacker, MemoryReader
from eiex.hw.uart import UartRx, UartTx, check_divisor
from eiex.errors import EiexError

PROTOCOL_VERSION = 1
MAGIC = b"EIEX"
#: offset of the image hash in the IDENTIFY reply
HASH_OFFSET = 14
#: link counters of the STATS reply, before the engine's own
LINK_STATS = ("run_cycles", "run_samples", "frames", "errors", "dropped", "clock_cycles")
STAT_BITS = 32


def _nbytes(bits: int) -> int:
    return (bits + 7) // 8


def _link_sizes(port, divisor, timeout_cycles, max_payload) -> SimpleNamespace:
    """The link's checked arguments and the byte counts they give; :class:`EiexError` for any that does not fit."""
    if not isinstance(port, EnginePort):
        raise EiexError(f"port must be an EnginePort, not {type(port).__name__}")
    divisor = check_divisor(divisor)
    if isinstance(timeout_cycles, bool) or not isinstance(timeout_cycles, int) or timeout_cycles < 1:
        raise EiexError(f"timeout_cycles must be a positive integer, not {timeout_cycles!r}")
    engine = port.engine
    n = SimpleNamespace(divisor=divisor, max_payload=max_payload,
                        load_word_bytes=_nbytes(len(engine.load.payload.as_value())),
                        in_beat_bytes=_nbytes(len(engine.input.payload)),
                        out_beat_bytes=_nbytes(len(engine.output.payload)))
    n.in_sample_bytes = port.in_beats * n.in_beat_bytes
    n.out_sample_bytes = port.out_beats * n.out_beat_bytes
    if not HASH_BYTES + n.in_sample_bytes <= max_payload < 1 << 16:
        raise EiexError(f"max_payload must hold one sample ({HASH_BYTES + n.in_sample_bytes} bytes) and be "
                        f"below 65,536, not {max_payload}")
    n.max_samples = (max_payload - HASH_BYTES) // n.in_sample_bytes
    n.result_bytes = n.max_samples * n.out_sample_bytes
    if n.result_bytes >= 1 << 16:
        raise EiexError(f"{n.max_samples} samples of {n.out_sample_bytes} result bytes exceed a reply; "
                        "choose a smaller max_payload")
    return n


class HostLink(wiring.Component):
    """An engine driven over a UART.

    Parameters
    ----------
    port : EnginePort
    clock_hz : int
        The clock the design runs at (reported in the descriptor).
    divisor : int
        Clock cycles per UART bit.
    timeout_cycles : int
        The quiet time ``T`` of the protocol.
    max_payload : int
        The longest request payload (the payload memory's bytes).

    Attributes
    ----------
    rx : In(1)
    tx : Out(1)
    status : Out(4)
        Image loaded (hash register non-zero), running a batch, the last reply was an error,
        toggled by every request frame.
    """

    def __new__(cls, port, *, clock_hz, divisor, timeout_cycles, max_payload=4096, src_loc_at=0):
        # checked before the object exists, so a refused link is no unused hardware
        _link_sizes(port, divisor, timeout_cycles, max_payload)
        return super().__new__(cls, src_loc_at=1 + src_loc_at)

    def __init__(self, port: EnginePort, *, clock_hz: int, divisor: int, timeout_cycles: int,
                 max_payload: int = 4096):
        self.port = port
        n = _link_sizes(port, divisor, timeout_cycles, max_payload)
        self.divisor, self.max_payload = n.divisor, n.max_payload
        self.load_word_bytes, self.in_beat_bytes, self.out_beat_bytes = \
            n.load_word_bytes, n.in_beat_bytes, n.out_beat_bytes
        self.in_sample_bytes, self.out_sample_bytes = n.in_sample_bytes, n.out_sample_bytes
        self.max_samples, self.result_bytes = n.max_samples, n.result_bytes
        self.clock_hz = int(clock_hz)
        self.timeout_cycles = timeout_cycles
        self.descriptor = {"engine": port.kind, "clock_hz": self.clock_hz, "divisor": self.divisor,
                           "timeout_cycles": timeout_cycles, "max_samples": self.max_samples,
                           "stats": list(port.stats), "params": port.params}
        self.identify_bytes = self._identify_bytes()
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "status": Out(4)})

    def _identify_bytes(self) -> bytes:
        header = (MAGIC + bytes([PROTOCOL_VERSION]) + self.max_payload.to_bytes(2, "little")
                  + bytes([self.load_word_bytes, self.in_beat_bytes]) + self.port.in_beats.to_bytes(2, "little")
                  + bytes([self.out_beat_bytes]) + self.port.out_beats.to_bytes(2, "little"))
        assert len(header) == HASH_OFFSET
        return header + bytes(HASH_BYTES) + json.dumps(self.descriptor, separators=(",", ":")).encode()

    def elaborate(self, platform):
        m = Module()
        s = SimpleNamespace(engine_reset=Signal(name="engine_reset"))  # the signals the stages below share
        self._datapath(m, s)
        self._counters(m, s)
        self._reply_path(m, s)
        self._run_monitor(m, s)
        m.d.comb += self.status.eq(Cat(s.loaded, s.running, s.last_error, s.activity))
        self._control(m, s)
        with m.If(s.clear_counters):  # after the FSM: RESET's own frame is not counted
            m.d.sync += [c.eq(0) for c in s.counters.values()]
        return m

    def _datapath(self, m, s) -> None:
        """UART, frames, the payload / result / IDENTIFY memories and the packers around the engine."""
        port = self.port
        m.submodules.engine = ResetInserter({"sync": s.engine_reset})(port.engine)
        s.engine = engine = port.engine
        m.submodules.uart_rx = uart_rx = UartRx(self.divisor)
        m.submodules.uart_tx = uart_tx = UartTx(self.divisor)
        m.submodules.receiver = s.receiver = receiver = FrameReceiver(self.max_payload, self.timeout_cycles)
        m.submodules.sender = s.sender = sender = FrameSender()
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx),
                     receiver.line_error.eq(uart_rx.error | uart_rx.overrun)]
        wiring.connect(m, uart_rx.data, receiver.bytes)
        wiring.connect(m, sender.bytes, uart_tx.data)

        m.submodules.payload = payload = Memory(shape=8, depth=self.max_payload, init=[])
        write = payload.write_port()
        m.d.comb += [write.addr.eq(receiver.write_addr), write.data.eq(receiver.write_data),
                     write.en.eq(receiver.write_en)]
        m.submodules.results = results = Memory(shape=8, depth=self.result_bytes, init=[])
        result_write = results.write_port()
        m.submodules.identify = identify = Memory(shape=8, depth=len(self.identify_bytes),
                                                  init=list(self.identify_bytes))
        m.submodules.payload_reader = s.payload_reader = payload_reader = MemoryReader(payload)
        m.submodules.result_reader = s.result_reader = MemoryReader(results)
        m.submodules.identify_reader = s.identify_reader = MemoryReader(identify)

        # payload bytes into words: load words, input beats, the hash
        m.submodules.load_packer = s.load_packer = load_packer = BytePacker(len(engine.load.payload.as_value()))
        m.submodules.input_packer = input_packer = BytePacker(len(engine.input.payload))
        m.submodules.hash_packer = s.hash_packer = hash_packer = BytePacker(8 * HASH_BYTES)
        m.submodules.output_unpacker = unpacker = ByteUnpacker(engine.output.payload.shape())
        s.packers = packers = {"load": load_packer, "input": input_packer, "hash": hash_packer}
        s.route = route = Signal(range(len(packers)), name="route")  # which packer the payload reader feeds
        for i, packer in enumerate(packers.values()):
            m.d.comb += [packer.bytes.payload.eq(payload_reader.data.payload),
                         packer.bytes.valid.eq(payload_reader.data.valid & (route == i))]
        m.d.comb += payload_reader.data.ready.eq(Array(p.bytes.ready for p in packers.values())[route])
        m.d.comb += [engine.load.payload.as_value().eq(load_packer.word.payload),
                     engine.load.valid.eq(load_packer.word.valid), load_packer.word.ready.eq(engine.load.ready),
                     engine.input.payload.eq(input_packer.word.payload),
                     engine.input.valid.eq(input_packer.word.valid), input_packer.word.ready.eq(engine.input.ready),
                     hash_packer.word.ready.eq(1)]
        wiring.connect(m, engine.output, unpacker.word)
        s.result_addr = result_addr = Signal(range(self.result_bytes + 1), name="result_addr")
        m.d.comb += [unpacker.bytes.ready.eq(1), result_write.addr.eq(result_addr),
                     result_write.data.eq(unpacker.bytes.payload), result_write.en.eq(unpacker.bytes.valid)]
        with m.If(unpacker.bytes.valid):
            m.d.sync += result_addr.eq(result_addr + 1)

    def _counters(self, m, s) -> None:
        """The image hash, the link's counters and the statistics words of the STATS reply."""
        s.image_hash = Signal(8 * HASH_BYTES, init=int.from_bytes(self.port.image_hash, "little"), name="image_hash")
        s.counters = counters = {name: Signal(STAT_BITS, name=name) for name in LINK_STATS}
        s.clear_counters = Signal(name="clear_counters")
        m.d.sync += counters["clock_cycles"].eq(counters["clock_cycles"] + 1)
        with m.If(s.receiver.dropped):
            m.d.sync += counters["dropped"].eq(counters["dropped"] + 1)
        s.clock_snapshot = Signal(STAT_BITS, name="clock_snapshot")
        s.stat_words = [counters[name] for name in LINK_STATS[:-1]] + [s.clock_snapshot]
        s.stat_words += [getattr(s.engine, name) for name in self.port.stats]
        # dividing a payload into whole units (load words, samples)
        s.remainder, s.quotient, s.unit = (Signal(16, name=n) for n in ("remainder", "quotient", "unit"))
        s.out_units = Signal(32, name="out_units")  # results of RUN: quotient * out_beats
        s.out_bytes = Signal(16, name="out_bytes")  # quotient * out_sample_bytes
        s.loaded = s.image_hash != 0
        s.last_error, s.activity = Signal(name="last_error"), Signal(name="activity")

    def _reply_path(self, m, s) -> None:
        """The reply's payload: one of three byte sources, as the command chose."""
        sender, identify_reader, result_reader = s.sender, s.identify_reader, s.result_reader
        s.reply_cmd, s.reply_len = Signal(8, name="reply_cmd"), Signal(16, name="reply_len")
        s.reply_source = Signal(range(3), name="reply_source")  # 0: registers (error, stats), 1: identify, 2: results
        reply_index = s.reply_index = Signal(16, name="reply_index")  # payload bytes taken by the sender
        s.error_bytes = Signal(16, name="error_bytes")
        register_byte = Signal(8)
        stat_byte = Array(w for w in s.stat_words)[reply_index[2:]].word_select(reply_index[:2], 8)
        m.d.comb += register_byte.eq(Mux(s.reply_cmd == ERROR, s.error_bytes.word_select(reply_index[0], 8),
                                         stat_byte))
        in_hash = (reply_index >= HASH_OFFSET) & (reply_index < HASH_OFFSET + HASH_BYTES)
        identify_byte = Mux(in_hash, s.image_hash.word_select((reply_index - HASH_OFFSET)[:3], 8),
                            identify_reader.data.payload)
        with m.Switch(s.reply_source):
            with m.Case(0):
                m.d.comb += [sender.payload.valid.eq(1), sender.payload.payload.eq(register_byte)]
            with m.Case(1):
                m.d.comb += [sender.payload.valid.eq(identify_reader.data.valid),
                             identify_reader.data.ready.eq(sender.payload.ready),
                             sender.payload.payload.eq(identify_byte)]
            with m.Case(2):
                m.d.comb += [sender.payload.valid.eq(result_reader.data.valid),
                             result_reader.data.ready.eq(sender.payload.ready),
                             sender.payload.payload.eq(result_reader.data.payload)]
        with m.If(sender.payload.valid & sender.payload.ready):
            m.d.sync += reply_index.eq(reply_index + 1)
        m.d.comb += [sender.cmd.eq(s.reply_cmd), sender.length.eq(s.reply_len)]
        m.d.comb += [identify_reader.start.eq(0), identify_reader.count.eq(len(self.identify_bytes)),
                     result_reader.start.eq(0), result_reader.count.eq(s.out_bytes)]

    def _run_monitor(self, m, s) -> None:
        """Outputs seen during RUN, and the run's cycles from its first input to its last result."""
        engine, counters = s.engine, s.counters
        s.outputs_seen = Signal(32, name="outputs_seen")
        s.running, s.run_started = Signal(name="running"), Signal(name="run_started")
        with m.If(s.running):
            with m.If(engine.output.valid & engine.output.ready):
                m.d.sync += s.outputs_seen.eq(s.outputs_seen + 1)
            with m.If(s.run_started & (s.outputs_seen != s.out_units)):  # up to the last result, inclusive
                m.d.sync += counters["run_cycles"].eq(counters["run_cycles"] + 1)
            with m.Elif(engine.input.valid & engine.input.ready):
                m.d.sync += [s.run_started.eq(1), counters["run_cycles"].eq(1)]

    # ---- the command FSM -------------------------------------------------------------------------

    def _read_payload(self, m, s, start, count, to) -> None:
        """Stream ``count`` payload bytes from ``start`` into the packer named ``to``."""
        m.d.comb += [s.payload_reader.go.eq(1), s.payload_reader.start.eq(start), s.payload_reader.count.eq(count)]
        m.d.sync += s.route.eq(list(s.packers).index(to))

    def _reply(self, m, s, cmd, length, source) -> None:
        m.d.sync += [s.reply_cmd.eq(cmd), s.reply_len.eq(length), s.reply_source.eq(source), s.reply_index.eq(0)]
        m.next = "REPLY"

    def _reply_error(self, m, s, code) -> None:
        m.d.sync += [s.error_bytes.eq(Cat(Const(code.value, 8), s.receiver.frame.payload.cmd)),
                     s.counters["errors"].eq(s.counters["errors"] + 1)]
        self._reply(m, s, ERROR, 2, 0)

    def _accept(self, m, s) -> None:
        """A good frame in WAIT: answer it at once, or start dividing its payload into units."""
        frame, counters = s.receiver.frame.payload, s.counters
        ok_cmd = frame.cmd | REPLY
        m.d.sync += counters["frames"].eq(counters["frames"] + 1)
        with m.Switch(frame.cmd):
            with m.Case(Command.IDENTIFY.value, Command.STATS.value, Command.RESET.value):
                with m.If(frame.length != 0):
                    self._reply_error(m, s, Error.BAD_LENGTH)
                with m.Elif(frame.cmd == Command.IDENTIFY.value):
                    m.d.comb += s.identify_reader.go.eq(1)
                    self._reply(m, s, ok_cmd, len(self.identify_bytes), 1)
                with m.Elif(frame.cmd == Command.STATS.value):
                    m.d.sync += s.clock_snapshot.eq(counters["clock_cycles"])
                    self._reply(m, s, ok_cmd, 4 * len(s.stat_words), 0)
                with m.Else():
                    m.d.sync += s.engine_reset.eq(1)
                    m.d.comb += s.clear_counters.eq(1)
                    self._reply(m, s, ok_cmd, 0, 0)
            with m.Case(Command.COMMIT.value):
                with m.If(frame.length != HASH_BYTES):
                    self._reply_error(m, s, Error.BAD_LENGTH)
                with m.Else():
                    self._read_payload(m, s, 0, HASH_BYTES, "hash")
                    m.next = "COMMIT"
            with m.Case(Command.LOAD.value):
                m.d.sync += [s.remainder.eq(frame.length), s.unit.eq(self.load_word_bytes)]
                m.next = "DIVIDE"
            with m.Case(Command.RUN.value):
                with m.If(frame.length < HASH_BYTES + self.in_sample_bytes):
                    self._reply_error(m, s, Error.BAD_LENGTH)
                with m.Else():
                    m.d.sync += [s.remainder.eq(frame.length - HASH_BYTES), s.unit.eq(self.in_sample_bytes)]
                    m.next = "DIVIDE"
            with m.Default():
                self._reply_error(m, s, Error.UNKNOWN_COMMAND)

    def _control(self, m, s) -> None:
        frame, counters = s.receiver.frame.payload, s.counters
        ok_cmd = frame.cmd | REPLY
        with m.FSM():
            with m.State("WAIT"):
                with m.If(s.receiver.frame.valid):
                    m.d.sync += s.activity.eq(~s.activity)
                    with m.If(frame.error != Error.NONE):
                        m.d.sync += [s.error_bytes.eq(Cat(frame.error.as_value(), frame.cmd)),
                                     counters["errors"].eq(counters["errors"] + 1)]
                        self._reply(m, s, ERROR, 2, 0)
                    with m.Else():
                        self._accept(m, s)
                m.d.sync += [s.quotient.eq(0), s.out_units.eq(0), s.out_bytes.eq(0)]

            with m.State("DIVIDE"):  # one unit a cycle: at most max_payload cycles, far below a frame's
                with m.If(s.remainder >= s.unit):
                    m.d.sync += [s.remainder.eq(s.remainder - s.unit), s.quotient.eq(s.quotient + 1),
                                 s.out_units.eq(s.out_units + self.port.out_beats),
                                 s.out_bytes.eq(s.out_bytes + self.out_sample_bytes)]
                with m.Elif((s.remainder != 0) | (s.quotient == 0)):
                    self._reply_error(m, s, Error.BAD_LENGTH)
                with m.Elif(frame.cmd == Command.LOAD.value):
                    self._read_payload(m, s, 0, frame.length, "load")
                    m.d.sync += s.image_hash.eq(0)
                    m.next = "LOAD"
                with m.Elif(s.quotient > self.max_samples):
                    self._reply_error(m, s, Error.BAD_LENGTH)
                with m.Else():
                    self._read_payload(m, s, 0, HASH_BYTES, "hash")
                    m.next = "CHECK_HASH"

            with m.State("COMMIT"):
                with m.If(s.hash_packer.word.valid):
                    m.d.sync += s.image_hash.eq(s.hash_packer.word.payload)
                    self._reply(m, s, ok_cmd, 0, 0)

            with m.State("LOAD"):
                with m.If(~s.payload_reader.busy & ~s.load_packer.word.valid & s.load_packer.bytes.ready):
                    self._reply(m, s, ok_cmd, 0, 0)

            with m.State("CHECK_HASH"):
                with m.If(s.hash_packer.word.valid):
                    with m.If((s.hash_packer.word.payload != s.image_hash) | ~s.loaded):
                        self._reply_error(m, s, Error.HASH_MISMATCH)
                    with m.Else():
                        m.d.sync += [s.running.eq(1), s.run_started.eq(0), s.outputs_seen.eq(0),
                                     s.result_addr.eq(0), counters["run_samples"].eq(s.quotient)]
                        m.next = "RUN_START"

            with m.State("RUN_START"):  # the hash's read has ended: the reader is free
                self._read_payload(m, s, HASH_BYTES, frame.length - HASH_BYTES, "input")
                m.next = "RUN"

            with m.State("RUN"):
                with m.If((s.outputs_seen == s.out_units) & (s.result_addr == s.out_bytes)):
                    m.d.sync += s.running.eq(0)
                    m.d.comb += s.result_reader.go.eq(1)
                    self._reply(m, s, ok_cmd, s.out_bytes, 2)

            with m.State("REPLY"):
                m.d.sync += s.engine_reset.eq(0)
                m.d.comb += s.sender.send.eq(1)
                m.next = "SENDING"

            with m.State("SENDING"):
                with m.If(~s.sender.busy):
                    m.d.comb += s.receiver.frame.ready.eq(1)
                    m.d.sync += s.last_error.eq(s.reply_cmd == ERROR)
                    m.next = "WAIT"
