"""The byte format of the host link (``docs/host-protocol.md``): frames, replies, errors.

A frame is ``SOF``, ``CMD``, ``LEN`` (2 bytes), ``LEN`` payload bytes and a CRC-16/CCITT-FALSE over
``CMD``, ``LEN`` and the payload (2 bytes); integers little-endian. Nothing here touches a wire:
:mod:`eiex.driver.device` sends and receives these bytes through a transport.
"""

from __future__ import annotations

import binascii
import json
import struct
from dataclasses import dataclass

from eiex.errors import EiexError

# the constants are the RTL's (eiex.hw.link): one definition for both ends of the link
from eiex.hw.link.engines import HASH_BYTES
from eiex.hw.link.frames import ERROR, REPLY, SOF, Command, Error  # noqa: F401 (re-exported)
from eiex.hw.link.host import LINK_STATS, MAGIC, PROTOCOL_VERSION  # noqa: F401 (re-exported)

#: bytes around a payload: ``SOF``, ``CMD``, ``LEN`` and ``CRC``
OVERHEAD = 6
HEADER = 4
MAX_LEN = 0xFFFF

IDENTIFY, LOAD, COMMIT, RUN, STATS, RESET = (Command[name].value for name in
                                             ("IDENTIFY", "LOAD", "COMMIT", "RUN", "STATS", "RESET"))
COMMANDS = {c.value: c.name for c in Command}
#: what each error code means, for people
_MEANINGS = {
    Error.BAD_CRC: "the frame's checksum did not match",
    Error.TRUNCATED: "the line went quiet in the middle of the frame",
    Error.TOO_LONG: "the frame's payload is longer than the device's max_payload",
    Error.UNKNOWN_COMMAND: "the device has no such command",
    Error.BAD_LENGTH: "the command does not take a payload of that length",
    Error.HASH_MISMATCH: "the image named is not the one loaded",
    Error.LINE: "the UART saw a framing error or lost a byte",
}
#: error code: (name, what it means)
ERRORS = {code.value: (code.name, meaning) for code, meaning in _MEANINGS.items()}

#: ``magic, version, max_payload, load_word_bytes, in_beat_bytes, in_beats, out_beat_bytes,
#: out_beats, image hash``: the fixed part of the IDENTIFY reply, before the descriptor
IDENTIFY_HEADER = struct.Struct(f"<4sBHBBHBH{HASH_BYTES}s")
#: keys every descriptor has
DESCRIPTOR_KEYS = ("engine", "clock_hz", "divisor", "timeout_cycles", "max_samples", "stats", "params")


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data``: polynomial 0x1021, initial 0xFFFF, no reflection, no final XOR."""
    return binascii.crc_hqx(data, 0xFFFF)


def command_name(cmd: int) -> str:
    """``"LOAD"`` for a known request command, else its hex value."""
    return COMMANDS.get(cmd, f"command 0x{cmd:02X}")


@dataclass(frozen=True)
class Frame:
    """One frame: its ``CMD`` byte and payload."""

    cmd: int
    payload: bytes

    @property
    def is_error(self) -> bool:
        return self.cmd == ERROR

    def wire_bytes(self) -> int:
        return len(self.payload) + OVERHEAD


def encode_frame(cmd: int, payload: bytes = b"") -> bytes:
    """The bytes of a frame with command ``cmd`` and ``payload``.

    Raises :class:`EiexError` for a ``cmd`` that is not a byte or a payload over 65,535 bytes.
    """
    if isinstance(cmd, bool) or not isinstance(cmd, int) or not 0 <= cmd <= 0xFF:
        raise EiexError(f"a frame's command must be a byte (0 to 255), not {cmd!r}")
    payload = bytes(payload)
    if len(payload) > MAX_LEN:
        raise EiexError(f"a frame's payload holds at most {MAX_LEN} bytes, not {len(payload)}")
    body = struct.pack("<BH", cmd, len(payload)) + payload
    return bytes([SOF]) + body + struct.pack("<H", crc16(body))


def decode_frame(data: bytes) -> Frame:
    """The frame ``data`` holds, exactly one and whole.

    Raises :class:`EiexError` if it does not start with ``SOF``, its length disagrees with ``LEN``
    or its CRC does not match.
    """
    data = bytes(data)
    if len(data) < OVERHEAD or data[0] != SOF:
        raise EiexError(f"a frame starts with 0x{SOF:02X} and has at least {OVERHEAD} bytes: {data[:8].hex()}")
    length = struct.unpack_from("<H", data, 2)[0]
    if len(data) != length + OVERHEAD:
        raise EiexError(f"the frame's LEN says {length} payload bytes, it has {len(data) - OVERHEAD}")
    if struct.unpack_from("<H", data, len(data) - 2)[0] != crc16(data[1:-2]):
        raise EiexError("the frame's CRC does not match its contents")
    return Frame(data[1], data[HEADER:-2])


class FrameReader:
    """Finds frames in a byte stream fed piece by piece.

    Like the device, it drops the bytes between frames that are not ``SOF``. A candidate frame whose
    ``LEN`` exceeds ``max_length`` or whose CRC does not match is not a frame: its ``SOF`` is dropped
    and the search goes on from the byte after it, so a good frame behind garbage is still found.

    Parameters
    ----------
    max_length : int
        The longest payload accepted.

    Attributes
    ----------
    dropped : int
        Bytes dropped so far (between frames, or the ``SOF`` of a candidate that was not a frame).
    bad_frames : int
        Candidates with a matching ``LEN`` but a wrong CRC.
    """

    def __init__(self, max_length: int = MAX_LEN):
        self.max_length = max_length
        self._buffer = bytearray()
        self.dropped = 0
        self.bad_frames = 0

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data``, in order."""
        self._buffer += data
        buf = self._buffer
        frames = []
        while buf:
            start = buf.find(SOF)
            if start < 0:
                self.dropped += len(buf)
                buf.clear()
                break
            if start:
                self.dropped += start
                del buf[:start]
            if len(buf) < HEADER:
                break
            length = buf[2] | buf[3] << 8
            if length > self.max_length:
                self._skip_sof()
                continue
            end = length + OVERHEAD
            if len(buf) < end:
                break
            if (buf[end - 2] | buf[end - 1] << 8) != crc16(bytes(buf[1:end - 2])):
                self.bad_frames += 1
                self._skip_sof()
                continue
            frames.append(Frame(buf[1], bytes(buf[HEADER:end - 2])))
            del buf[:end]
        return frames

    def _skip_sof(self) -> None:
        del self._buffer[:1]
        self.dropped += 1

    @property
    def needed(self) -> int:
        """The fewest bytes that could complete the next frame (at least 1)."""
        buf = self._buffer
        if len(buf) < HEADER:
            return HEADER - len(buf) + (OVERHEAD - HEADER)
        return max(1, (buf[2] | buf[3] << 8) + OVERHEAD - len(buf))

    @property
    def pending(self) -> int:
        """Bytes held of a frame not yet complete."""
        return len(self._buffer)


class DeviceError(EiexError):
    """The device answered a request with an error reply.

    Attributes
    ----------
    code : int
        The error code (:data:`ERRORS`).
    name : str
        Its name, such as ``"BAD_CRC"``.
    request : int
        The request's ``CMD`` as the device read it (0: never read).
    """

    def __init__(self, code: int, request: int):
        self.code = code
        self.request = request
        self.name, meaning = ERRORS.get(code, (f"ERROR_{code}", "an error code this driver does not know"))
        target = "a frame whose command was never read" if request == 0 else command_name(request)
        super().__init__(f"device: {self.name} ({meaning}) in reply to {target}")

    @classmethod
    def from_reply(cls, frame: Frame) -> "DeviceError":
        if len(frame.payload) != 2:
            raise EiexError(f"the device's error reply has {len(frame.payload)} payload bytes, not 2")
        return cls(frame.payload[0], frame.payload[1])


@dataclass(frozen=True)
class Identify:
    """The IDENTIFY reply: the sizes of the device's frames and beats, its image hash and descriptor.

    Attributes
    ----------
    version : int
        Protocol version.
    max_payload : int
        Longest request payload the device accepts.
    load_word_bytes, in_beat_bytes, out_beat_bytes : int
        Bytes of one LOAD word, one input beat, one result.
    in_beats, out_beats : int
        Input beats and results per sample.
    image_hash : bytes
        The device's image hash register (8 zero bytes: no image).
    descriptor : dict
        The bitstream's descriptor (``engine``, ``clock_hz``, ``divisor``, ``timeout_cycles``,
        ``max_samples``, ``stats``, ``params``).
    """

    version: int
    max_payload: int
    load_word_bytes: int
    in_beat_bytes: int
    in_beats: int
    out_beat_bytes: int
    out_beats: int
    image_hash: bytes
    descriptor: dict

    @classmethod
    def parse(cls, payload: bytes) -> "Identify":
        """Read an IDENTIFY reply's payload; :class:`EiexError` if it is not one of this protocol."""
        payload = bytes(payload)
        if len(payload) < IDENTIFY_HEADER.size or payload[:4] != MAGIC:
            raise EiexError(f"the device did not identify as an eiex link (reply starts {payload[:8].hex()})")
        magic, version, *sizes, image_hash = IDENTIFY_HEADER.unpack_from(payload)
        if version != PROTOCOL_VERSION:
            raise EiexError(f"the device speaks protocol version {version}, this driver {PROTOCOL_VERSION}")
        try:
            descriptor = json.loads(payload[IDENTIFY_HEADER.size:].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise EiexError(f"the device's descriptor is not UTF-8 JSON: {e}") from None
        if not isinstance(descriptor, dict) or any(k not in descriptor for k in DESCRIPTOR_KEYS):
            missing = [k for k in DESCRIPTOR_KEYS if not isinstance(descriptor, dict) or k not in descriptor]
            raise EiexError(f"the device's descriptor lacks {', '.join(missing)}")
        max_payload, word, in_bytes, in_beats, out_bytes, out_beats = sizes
        if min(word, in_bytes, in_beats, out_bytes, out_beats) < 1:
            raise EiexError(f"the device reports a zero size in its IDENTIFY reply: {payload[:22].hex()}")
        return cls(version, max_payload, word, in_bytes, in_beats, out_bytes, out_beats, image_hash, descriptor)

    @property
    def engine(self) -> str:
        return self.descriptor["engine"]

    @property
    def clock_hz(self) -> float:
        return self.descriptor["clock_hz"]

    @property
    def divisor(self) -> int:
        return self.descriptor["divisor"]

    @property
    def baud(self) -> float:
        """The device's line rate: ``clock_hz / divisor``."""
        return self.clock_hz / self.divisor

    @property
    def timeout_cycles(self) -> int:
        return self.descriptor["timeout_cycles"]

    @property
    def max_samples(self) -> int:
        return self.descriptor["max_samples"]

    @property
    def loaded(self) -> bool:
        """Whether the hash register names an image."""
        return self.image_hash != bytes(HASH_BYTES)

    @property
    def in_sample_bytes(self) -> int:
        return self.in_beats * self.in_beat_bytes

    @property
    def out_sample_bytes(self) -> int:
        return self.out_beats * self.out_beat_bytes


@dataclass(frozen=True)
class Stats:
    """The STATS reply.

    Attributes
    ----------
    counters : dict
        The link's counters by name (:data:`LINK_STATS`).
    engine : dict
        The engine's own statistics, named by the descriptor's ``stats``.
    """

    counters: dict
    engine: dict

    @classmethod
    def parse(cls, payload: bytes, names) -> "Stats":
        """Read a STATS reply's payload; ``names``: the descriptor's ``stats``."""
        names = list(names)
        clash = set(names) & set(LINK_STATS)
        if clash:
            raise EiexError(f"the descriptor names engine statistics like the link's counters: {sorted(clash)}")
        want = 4 * (len(LINK_STATS) + len(names))
        if len(payload) != want:
            raise EiexError(f"the STATS reply has {len(payload)} bytes, {want} expected "
                            f"({len(LINK_STATS)} link counters and {len(names)} engine statistics)")
        words = struct.unpack(f"<{want // 4}I", payload)
        return cls(dict(zip(LINK_STATS, words)), dict(zip(names, words[len(LINK_STATS):])))

    def as_dict(self) -> dict:
        """Every counter by name, the link's first."""
        return {**self.counters, **self.engine}
