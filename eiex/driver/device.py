"""An eiex engine behind a host link, driven over any byte transport (``docs/host-protocol.md``).

:class:`Device` speaks the protocol: one request frame, then its one reply, with a time limit on
every reply derived from the device's own figures (its baud rate, quiet time and the engine's work)
so that a silent device is an :class:`~eiex.errors.EiexError`, never a hang. It builds the
``LOAD`` words of an image from the device's descriptor (:mod:`eiex.hw.link.engines`, the same
bytes a ``--preload`` bitstream hashes), checks that the image fits the engine, and counts the
bytes it moves so a caller can give the link's cost per inference.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import time
from typing import Protocol

import numpy as np

from eiex.driver.protocol import (COMMIT, HASH_BYTES, IDENTIFY, LINK_STATS, LOAD, OVERHEAD, REPLY, RESET, RUN,
                                  STATS, DeviceError, Frame, FrameReader, Identify, Stats, command_name, encode_frame)
from eiex.errors import EiexError

#: bits on the line per byte (8N1)
BITS_PER_BYTE = 10
#: device cycles allowed for anything not counted (the reply's start, the payload check)
SLACK_CYCLES = 1000


class Transport(Protocol):
    """A byte pipe to a device: a serial port, or a simulated link top.

    ``read`` returns as soon as any bytes have arrived (at most ``n``), or ``b""`` when none arrive
    within ``timeout`` seconds. ``reply_timeout`` turns the device's worst case for an exchange, in
    its own clock cycles, into the wall seconds this transport may need for it (``None`` before the
    device's figures are known: the first IDENTIFY).
    """

    def write(self, data: bytes) -> None: ...

    def read(self, n: int, timeout: float) -> bytes: ...

    def close(self) -> None: ...

    def reply_timeout(self, cycles: int | None, clock_hz: float | None) -> float: ...


def pack_values(values, nbytes: int) -> bytes:
    """Integers as ``nbytes`` little-endian bytes each, two's complement for negative ones.

    Vectorized for words of up to 8 bytes held by numpy (or lists numpy can hold); wider words
    (Python ints) are packed one by one.
    """
    try:
        array = np.asarray(values)
    except OverflowError:  # Python ints beyond 64 bits of both signs
        array = None
    if array is not None and nbytes <= 8 and np.issubdtype(array.dtype, np.integer):
        # the cast to uint64 keeps a negative value's two's complement; its low bytes are the word
        return array.ravel().astype("<u8").view(np.uint8).reshape(-1, 8)[:, :nbytes].tobytes()
    flat = np.asarray(values, dtype=object).ravel()
    if not all(isinstance(v, numbers.Integral) for v in flat):
        raise EiexError("words to send must be integers")
    mask = (1 << 8 * nbytes) - 1
    return b"".join((int(v) & mask).to_bytes(nbytes, "little") for v in flat)


def unpack_signed(data: bytes, nbytes: int) -> np.ndarray:
    """The int64 values of ``data``: ``nbytes`` little-endian bytes each, sign-extended."""
    if len(data) % nbytes:
        raise EiexError(f"{len(data)} bytes are not whole values of {nbytes} bytes")
    if nbytes > 8:
        values = [int.from_bytes(data[i:i + nbytes], "little", signed=True) for i in range(0, len(data), nbytes)]
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            raise EiexError(f"a {nbytes}-byte result does not fit in 64 bits") from None
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, nbytes)
    wide = np.zeros((len(raw), 8), dtype=np.uint8)
    wide[:, :nbytes] = raw
    shift = 64 - 8 * nbytes
    return (wide.view("<i8")[:, 0] << shift) >> shift


def _engine_cycles(kind: str, image, samples: int) -> int:
    """A generous bound on the engine's cycles for ``samples`` samples of ``image``."""
    if kind == "eie":
        from eiex.hw.eie.cycles import column_lengths

        # every entry of every layer, each column and row visited: far above any vector's work
        work = sum(l.cols + l.rows + int(column_lengths(image, i).sum()) for i, l in enumerate(image.layers))
        return 2 * work * samples
    from eiex.hw.xnor.memory_map import engine_for

    folds = sum(g.nf * g.sf for g in engine_for(image))
    return 2 * folds * (samples + 1)


class Device:
    """An eiex engine behind a host link.

    Parameters
    ----------
    transport : Transport
        The byte pipe; :meth:`close` closes it.
    timeout : float or None
        Seconds to wait for any reply, instead of the limit derived per request.

    Attributes
    ----------
    bytes_sent, bytes_received : int
        Every byte written to and read from the transport.
    frames_sent, replies : int
        Request frames sent (by the commands and :meth:`raw`) and reply frames received.
    """

    def __init__(self, transport: Transport, *, timeout: float | None = None):
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not timeout > 0):
            raise EiexError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.transport = transport
        self.timeout = timeout
        self.bytes_sent = 0
        self.bytes_received = 0
        self.frames_sent = 0
        self.replies = 0
        self.stray_bytes = 0
        self._identity: Identify | None = None
        self._image_cache: tuple | None = None  # (image, params key, load bytes, hash)

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    # ---- frames -----------------------------------------------------------------------------

    def send_bytes(self, data: bytes) -> None:
        """Write ``data`` to the device as is (a frame, part of one, noise)."""
        data = bytes(data)
        self.transport.write(data)
        self.bytes_sent += len(data)

    def read_reply(self, timeout: float | None = None, request: int | None = None) -> Frame:
        """The next reply frame; :class:`DeviceError` if it is an error reply.

        Parameters
        ----------
        timeout : float or None
            Seconds to wait (default: the limit for a reply as long as the device's payload buffer).
        request : int or None
            The request's ``CMD``: a reply with another command is an :class:`EiexError`.
        """
        if timeout is None:
            timeout = self._timeout(self._max_payload() + OVERHEAD, self._max_payload())
        reader = FrameReader()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            data = self.transport.read(reader.needed, max(left, 0.0)) if left > 0 else b""
            if not data:
                got = reader.dropped + reader.pending
                detail = f" ({got} bytes arrived that were not a whole frame)" if got else ""
                raise EiexError(f"no reply from the device within {timeout:.3g} s{detail}")
            self.bytes_received += len(data)
            frames = reader.feed(data)
            if frames:
                break
        self.replies += 1
        self.stray_bytes += reader.dropped + reader.pending + sum(f.wire_bytes() for f in frames[1:])
        frame = frames[0]
        if frame.is_error:
            raise DeviceError.from_reply(frame)
        if request is not None and frame.cmd != request | REPLY:
            raise EiexError(f"the device answered {command_name(request)} with a frame of command 0x{frame.cmd:02X}")
        return frame

    def raw(self, cmd: int, payload: bytes = b"", timeout: float | None = None) -> Frame:
        """Send one frame of any ``cmd`` and ``payload`` and return the reply, whatever its command
        (:class:`DeviceError` for an error reply)."""
        frame = encode_frame(cmd, payload)
        self._drain()
        self.send_bytes(frame)
        self.frames_sent += 1
        if timeout is None:
            timeout = self._timeout(len(frame) + self._max_payload(), self._max_payload() + 4 * len(payload))
        return self.read_reply(timeout)

    def _request(self, cmd: int, payload: bytes = b"", reply_bytes: int = 0, work_cycles: int = 0) -> bytes:
        """Send a request, return its reply's payload (``reply_bytes`` at most, in the time limit)."""
        frame = encode_frame(cmd, payload)
        self._drain()
        self.send_bytes(frame)
        self.frames_sent += 1
        reply = self.read_reply(self._timeout(len(frame) + reply_bytes + OVERHEAD, work_cycles), cmd)
        return reply.payload

    def _drain(self) -> None:
        """Drop bytes left on the line (a late reply to a request that timed out)."""
        while data := self.transport.read(4096, 0.0):
            self.bytes_received += len(data)
            self.stray_bytes += len(data)

    def _max_payload(self) -> int:
        return self._identity.max_payload if self._identity else 4096

    def _timeout(self, wire_bytes: int, work_cycles: int) -> float:
        """Wall seconds for an exchange of ``wire_bytes`` on the line and ``work_cycles`` in the
        device; the device's quiet time is added since an error reply comes only after it."""
        if self.timeout is not None:
            return self.timeout
        ident = self._identity
        if ident is None:
            return self.transport.reply_timeout(None, None)
        cycles = (wire_bytes * BITS_PER_BYTE * ident.divisor + ident.timeout_cycles + work_cycles
                  + ident.max_payload + SLACK_CYCLES)
        return self.transport.reply_timeout(cycles, ident.clock_hz)

    # ---- commands ---------------------------------------------------------------------------

    def identify(self) -> Identify:
        """Ask the device what it is (and remember it: sizes and time limits come from it)."""
        payload = self._request(IDENTIFY, reply_bytes=4096)
        self._identity = Identify.parse(payload)
        return self._identity

    @property
    def identity(self) -> Identify:
        """The last IDENTIFY reply (asking for one if there is none yet)."""
        return self._identity if self._identity is not None else self.identify()

    def image_hash(self, image) -> bytes:
        """The hash ``COMMIT`` stores for ``image`` on this device."""
        return self._image_bytes(image)[1]

    def load(self, image) -> bytes:
        """Write ``image`` into the engine (every word, zeros too) and commit its hash, returned.

        Raises :class:`EiexError` if the image is not for the device's engine or does not fit it.
        """
        ident = self.identity
        data, digest = self._image_bytes(image)
        word = ident.load_word_bytes
        step = ident.max_payload // word * word
        if step == 0:
            raise EiexError(f"the device's max_payload ({ident.max_payload}) holds no {word}-byte LOAD word")
        for start in range(0, len(data), step):
            chunk = data[start:start + step]
            self._request(LOAD, chunk, work_cycles=4 * len(chunk))
        self._request(COMMIT, digest)
        self._identity = dataclasses.replace(ident, image_hash=digest)
        return digest

    def ensure(self, image) -> bool:
        """Load ``image`` unless the device already holds it (by its hash); whether it loaded."""
        ident = self.identify()
        if ident.image_hash == self.image_hash(image):
            return False
        self.load(image)
        return True

    def run(self, image, inputs) -> np.ndarray:
        """The engine's outputs ``(samples, outputs)`` (int64) for ``inputs``, as ``golden.run`` gives them.

        Parameters
        ----------
        image : EieImage or XnorImage
            The image the device holds (its hash names it in every ``RUN``).
        inputs : array
            EIE: ``act_bits`` fixed-point integers; XNOR: 0/1 bits; shaped ``(samples, inputs)``.
        """
        ident = self.identity
        kind = ident.engine
        _, digest = self._image_bytes(image)
        if kind == "eie":
            from eiex.hw.eie import golden

            beats = golden.check_inputs(image, inputs)
        else:
            from eiex.hw.xnor import golden
            from eiex.hw.xnor.memory_map import pack_input

            bits = golden.check_bits(image, inputs)
            beats = pack_input(image, bits) if len(bits) else []
        n = len(beats)
        if n == 0:
            return np.zeros((0, ident.out_beats), dtype=np.int64)
        samples = pack_values(beats, ident.in_beat_bytes)
        in_size, out_size = ident.in_sample_bytes, ident.out_sample_bytes
        batch = min(ident.max_samples, (ident.max_payload - HASH_BYTES) // in_size)
        if batch < 1:
            raise EiexError(f"the device's max_payload ({ident.max_payload}) holds no sample of {in_size} bytes")
        replies = []
        for first in range(0, n, batch):
            k = min(batch, n - first)
            payload = digest + samples[first * in_size:(first + k) * in_size]
            reply = self._request(RUN, payload, reply_bytes=k * out_size, work_cycles=_engine_cycles(kind, image, k))
            if len(reply) != k * out_size:
                raise EiexError(f"the device answered a RUN of {k} samples with {len(reply)} result bytes, "
                                f"{k * out_size} expected")
            replies.append(reply)
        return unpack_signed(b"".join(replies), ident.out_beat_bytes).reshape(n, ident.out_beats)

    def stats(self) -> Stats:
        """The device's counters and the engine's statistics."""
        names = self.identity.descriptor["stats"]
        return Stats.parse(self._request(STATS, reply_bytes=4 * (len(LINK_STATS) + len(names))), names)

    def reset(self) -> None:
        """Reset the engine's logic and the counters; the image stays."""
        self._request(RESET)

    def link_stats(self) -> dict:
        """What crossed the link so far: bytes each way, frames, and the seconds those bytes take on
        the line at the device's baud rate (``None`` before IDENTIFY)."""
        baud = self._identity.baud if self._identity else None
        wire = self.bytes_sent + self.bytes_received
        return {"bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
                "frames_sent": self.frames_sent, "replies": self.replies, "stray_bytes": self.stray_bytes,
                "baud": baud, "wire_seconds": wire * BITS_PER_BYTE / baud if baud else None}

    # ---- images -----------------------------------------------------------------------------

    def _image_bytes(self, image) -> tuple[bytes, bytes]:
        """The LOAD bytes writing ``image`` into the device's engine and their hash (the last image's
        kept, so repeated runs do not rebuild its words)."""
        from eiex.hw.link.engines import image_hash, load_words

        ident = self.identity
        key = json.dumps(ident.descriptor["params"], sort_keys=True)
        cached = self._image_cache
        if cached is not None and cached[0] is image and cached[1] == key:
            return cached[2], cached[3]
        kind = ident.engine
        _check_image(kind, image, ident)
        try:
            words, bits = load_words(kind, image, ident.descriptor["params"])
        except EiexError as e:
            raise EiexError(f"the image does not fit the device's {kind} engine: {e}") from None
        if (bits + 7) // 8 != ident.load_word_bytes:
            raise EiexError(f"the device takes {ident.load_word_bytes}-byte LOAD words, its descriptor's engine "
                            f"{(bits + 7) // 8}-byte ones")
        data = pack_values(words, ident.load_word_bytes)
        digest = image_hash(data)
        self._image_cache = (image, key, data, digest)
        return data, digest


def _check_image(kind: str, image, ident: Identify) -> None:
    """The image is for ``kind`` and its samples have the device's sizes."""
    if kind == "eie":
        from eiex.sw.images.eie.image import EieImage

        if not isinstance(image, EieImage):
            raise EiexError(f"the device runs the eie engine, which takes an EieImage, not a {type(image).__name__}")
        in_beats = image.inputs
    elif kind == "xnor":
        from eiex.hw.xnor.mvtu import LayerGeometry
        from eiex.sw.images.xnor.image import XnorImage

        if not isinstance(image, XnorImage):
            raise EiexError(f"the device runs the xnor engine, which takes an XnorImage, not a {type(image).__name__}")
        in_beats = LayerGeometry.of(image.layers[0]).sf
    else:
        raise EiexError(f"the device reports an engine this driver does not know: {kind!r}")
    if (in_beats, image.outputs) != (ident.in_beats, ident.out_beats):
        raise EiexError(f"the device takes {ident.in_beats} input beats and gives {ident.out_beats} results a sample, "
                        f"the image {in_beats} and {image.outputs}")
