"""eiex.driver without hardware: the byte format against docs/host-protocol.md (CRC from a
bit-by-bit reference, frames, the incremental reader, IDENTIFY and STATS payloads built by hand,
error messages), and Device against a device modelled here in Python from the spec."""

import gc
import hashlib
import json
import struct

import numpy as np
import pytest

from eiex.driver import Device, DeviceError, Identify, Stats
from eiex.driver.device import pack_values, unpack_signed
from eiex.driver.protocol import FrameReader, crc16, decode_frame, encode_frame
from eiex.driver.serial_port import SerialTransport
from eiex.hw.eie import golden as eie_golden
from eiex.hw.link.engines import link_for
from eiex.hw.xnor import golden as xnor_golden
from eiex.sw.images.eie.encode import IntLayer, build_image
from eiex.errors import EiexError

from factories import tiny_eie_image as eie_image, tiny_xnor_image as xnor_image

# The model device takes its IDENTIFY bytes from a HostLink it never elaborates.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.fixture(scope="module", autouse=True)
def collect_garbage():
    """Amaranth warns of an unused HostLink when it is collected: collect them while the filter holds."""
    yield
    gc.collect()


def crc_reference(data: bytes) -> int:
    """CRC-16/CCITT-FALSE one bit at a time: polynomial 0x1021, initial 0xFFFF, MSB first."""
    crc = 0xFFFF
    for byte in data:
        for i in range(7, -1, -1):
            feedback = ((crc >> 15) ^ (byte >> i)) & 1
            crc = ((crc << 1) & 0xFFFF) ^ (0x1021 if feedback else 0)
    return crc


def frame_reference(cmd: int, payload: bytes) -> bytes:
    body = bytes([cmd, len(payload) & 0xFF, len(payload) >> 8]) + payload
    crc = crc_reference(body)
    return bytes([0xA5]) + body + bytes([crc & 0xFF, crc >> 8])


# ---- CRC and frames ----------------------------------------------------------------------------

def test_crc_is_ccitt_false():
    assert crc16(b"123456789") == 0x29B1  # the catalogue's check value
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 64, 300):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc16(data) == crc_reference(data)


@pytest.mark.parametrize("length", [0, 1, 5, 300, 65535])
def test_frames_round_trip(length):
    payload = np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8).tobytes()
    data = encode_frame(0x04, payload)
    assert data == frame_reference(0x04, payload)
    assert len(data) == length + 6
    frame = decode_frame(data)
    assert (frame.cmd, frame.payload) == (0x04, payload)


def test_bad_frames_are_refused():
    for cmd in (-1, 256, True, 1.0):
        with pytest.raises(EiexError, match="command must be a byte"):
            encode_frame(cmd)
    with pytest.raises(EiexError, match="at most 65535 bytes"):
        encode_frame(1, bytes(65536))
    good = encode_frame(0x02, b"abc")
    with pytest.raises(EiexError, match="starts with 0xA5"):
        decode_frame(b"\x00" + good[1:])
    with pytest.raises(EiexError, match="LEN says 3 payload bytes, it has 2"):
        decode_frame(good[:6] + good[7:])
    with pytest.raises(EiexError, match="CRC"):
        decode_frame(good[:-1] + bytes([good[-1] ^ 1]))


def test_reader_finds_frames_behind_garbage_and_bad_crcs():
    a, b, c = encode_frame(0x81, b"first"), encode_frame(0x82), encode_frame(0xFF, b"\x01\x02")
    bad = bytearray(encode_frame(0x84, b"\xa5\xa5xyz"))
    bad[-2] ^= 0xFF
    # a bad frame whose payload holds a good one: the search resumes right after the bad SOF
    stream = b"\x00\x13\xa5" + a + bytes(bad) + b"\x7f" + b + b"\xa5\x01\xff\xff" + c
    reader = FrameReader(max_length=1000)
    frames = []
    for i in range(len(stream)):  # a byte at a time
        frames += reader.feed(stream[i:i + 1])
    assert [(f.cmd, f.payload) for f in frames] == [(0x81, b"first"), (0x82, b""), (0xFF, b"\x01\x02")]
    assert reader.bad_frames == 1
    assert reader.pending == 0
    # all at once gives the same frames
    assert FrameReader(max_length=1000).feed(stream) == frames
    # the frame hidden in a bad frame's payload is found
    hidden = encode_frame(0x85, b"in")
    outer = bytearray(encode_frame(0x84, hidden))
    outer[-1] ^= 1
    assert [(f.cmd, f.payload) for f in FrameReader().feed(bytes(outer))] == [(0x85, b"in")]


def test_reader_needed_bytes():
    reader = FrameReader()
    assert reader.needed == 6
    frame = encode_frame(0x84, bytes(10))
    reader.feed(frame[:2])
    assert reader.needed == 4
    reader.feed(frame[2:4])
    assert reader.needed == 12
    assert [f.payload for f in reader.feed(frame[4:])] == [bytes(10)]
    assert reader.needed == 6


# ---- payloads ----------------------------------------------------------------------------------

DESCRIPTOR = {"engine": "eie", "clock_hz": 48_000_000, "divisor": 16, "timeout_cycles": 480_000,
              "max_samples": 7, "stats": ["cycles", "compute_cycles"], "params": {"queue_depth": 8}}


def identify_payload(version=1, magic=b"EIEX", descriptor=DESCRIPTOR, image_hash=bytes(8)):
    text = descriptor if isinstance(descriptor, bytes) else json.dumps(descriptor).encode()
    return (magic + bytes([version]) + (4096).to_bytes(2, "little") + bytes([7, 2]) + (784).to_bytes(2, "little")
            + bytes([4]) + (10).to_bytes(2, "little") + image_hash + text)


def test_identify_is_parsed():
    ident = Identify.parse(identify_payload(image_hash=bytes(range(1, 9))))
    assert (ident.version, ident.max_payload, ident.load_word_bytes, ident.in_beat_bytes, ident.in_beats,
            ident.out_beat_bytes, ident.out_beats) == (1, 4096, 7, 2, 784, 4, 10)
    assert ident.image_hash == bytes(range(1, 9)) and ident.loaded
    assert ident.descriptor == DESCRIPTOR
    assert ident.engine == "eie" and ident.baud == 3_000_000 and ident.max_samples == 7
    assert ident.in_sample_bytes == 1568 and ident.out_sample_bytes == 40
    assert not Identify.parse(identify_payload()).loaded


def test_bad_identify_replies_are_refused():
    with pytest.raises(EiexError, match="did not identify as an eiex link"):
        Identify.parse(identify_payload(magic=b"EIEY"))
    with pytest.raises(EiexError, match="did not identify"):
        Identify.parse(b"EIEX\x01")
    with pytest.raises(EiexError, match="protocol version 2, this driver 1"):
        Identify.parse(identify_payload(version=2))
    with pytest.raises(EiexError, match="not UTF-8 JSON"):
        Identify.parse(identify_payload(descriptor=b"{engine"))
    with pytest.raises(EiexError, match="lacks max_samples, params"):
        Identify.parse(identify_payload(descriptor={k: v for k, v in DESCRIPTOR.items()
                                                    if k not in ("max_samples", "params")}))


def test_stats_are_parsed():
    words = [1000, 7, 12, 1, 3, 2**32 - 1, 55, 40]
    stats = Stats.parse(struct.pack("<8I", *words), ["cycles", "compute_cycles"])
    assert stats.counters == {"run_cycles": 1000, "run_samples": 7, "frames": 12, "errors": 1, "dropped": 3,
                              "clock_cycles": 2**32 - 1}
    assert stats.engine == {"cycles": 55, "compute_cycles": 40}
    assert list(stats.as_dict()) == [*stats.counters, "cycles", "compute_cycles"]
    assert Stats.parse(struct.pack("<6I", *words[:6]), []).engine == {}
    with pytest.raises(EiexError, match="has 24 bytes, 32 expected"):
        Stats.parse(struct.pack("<6I", *words[:6]), ["cycles", "compute_cycles"])
    with pytest.raises(EiexError, match="like the link's counters"):
        Stats.parse(struct.pack("<7I", *words[:7]), ["frames"])


def test_device_error_messages():
    e = DeviceError(1, 0x02)
    assert str(e) == "device: BAD_CRC (the frame's checksum did not match) in reply to LOAD"
    assert (e.code, e.name, e.request) == (1, "BAD_CRC", 0x02)
    assert isinstance(e, EiexError)
    assert str(DeviceError(4, 0x42)).endswith("UNKNOWN_COMMAND (the device has no such command) "
                                              "in reply to command 0x42")
    assert str(DeviceError(2, 0)).endswith("in reply to a frame whose command was never read")
    assert DeviceError(6, 0x04).name == "HASH_MISMATCH"
    assert "ERROR_9 (an error code this driver does not know)" in str(DeviceError(9, 0x01))


def test_values_pack_and_unpack():
    values = np.array([0, 1, -1, 511, -512, 300])
    data = pack_values(values, 2)
    assert data == b"".join(int(v).to_bytes(2, "little", signed=True) for v in values)
    np.testing.assert_array_equal(unpack_signed(data, 2), values)
    for nbytes in (1, 3, 4, 8):
        v = np.random.default_rng(nbytes).integers(-(2 ** (8 * nbytes - 1)), 2 ** (8 * nbytes - 1), 50,
                                                   dtype=np.int64, endpoint=False)
        np.testing.assert_array_equal(unpack_signed(pack_values(v, nbytes), nbytes), v)
    wide = [2**70 + 5, 3, 2**71 - 1]  # words wider than 64 bits, as Python ints
    assert pack_values(wide, 9) == b"".join(w.to_bytes(9, "little") for w in wide)
    assert pack_values([2**63, 1], 8) == (2**63).to_bytes(8, "little") + (1).to_bytes(8, "little")
    np.testing.assert_array_equal(unpack_signed(pack_values([-3, 4], 10), 10), [-3, 4])
    with pytest.raises(EiexError, match="must be integers"):
        pack_values([1.5], 2)
    with pytest.raises(EiexError, match="not whole values"):
        unpack_signed(b"abc", 2)


# ---- Device against a Python model of the device -----------------------------------------------


class ModelDevice:
    """A transport whose far end is the protocol modelled from the spec, with the engine's results
    from the golden model. ``silent`` drops every request; ``echo`` sends each request back."""

    def __init__(self, kind, image, max_payload=64):
        self.kind, self.image = kind, image
        self.link = link_for(kind, image, clock_hz=12_000_000, divisor=4, timeout_cycles=200, max_payload=max_payload)
        self.hash = bytes(8)
        self.loaded = b""
        self.out = b""
        self.requests = []
        self.silent = self.echo = False
        self.closed = False

    def reply_timeout(self, cycles, clock_hz):
        return 0.05

    def close(self):
        self.closed = True

    def read(self, n, timeout):
        data, self.out = self.out[:n], self.out[n:]
        return data

    def write(self, data):
        if self.silent:
            return
        if self.echo:
            self.out += data
            return
        cmd, length = data[1], struct.unpack_from("<H", data, 2)[0]
        assert data[0] == 0xA5 and len(data) == length + 6
        assert struct.unpack_from("<H", data, len(data) - 2)[0] == crc_reference(data[1:-2])
        payload = data[4:-2]
        self.requests.append((cmd, len(payload)))
        self.out += self.answer(cmd, payload)

    def answer(self, cmd, payload):
        link = self.link
        ok = cmd | 0x80
        if cmd == 0x01:
            ident = link.identify_bytes
            return frame_reference(ok, ident[:14] + self.hash + ident[22:])
        if cmd == 0x02:
            assert len(payload) % link.load_word_bytes == 0 and len(payload) <= link.max_payload
            self.loaded += payload
            self.hash = bytes(8)
            return frame_reference(ok, b"")
        if cmd == 0x03:
            assert payload == hashlib.sha256(self.loaded).digest()[:8]  # the spec's image hash
            self.hash, self.loaded = payload, b""
            return frame_reference(ok, b"")
        if cmd == 0x04:
            if payload[:8] != self.hash or self.hash == bytes(8):
                return frame_reference(0xFF, bytes([6, cmd]))
            size = link.in_sample_bytes
            n = (len(payload) - 8) // size
            assert len(payload) == 8 + n * size and 1 <= n <= link.max_samples
            beats = np.frombuffer(payload[8:], np.uint8).reshape(n * link.port.in_beats, link.in_beat_bytes)
            if self.kind == "eie":
                wide = np.zeros((len(beats), 8), np.uint8)
                wide[:, :link.in_beat_bytes] = beats
                bits = self.image.engine.act_bits
                x = (wide.view("<i8")[:, 0] << 64 - bits) >> 64 - bits
                y = eie_golden.run(self.image, x.reshape(n, -1))
            else:
                g = self.link.port.params["layers"][0]
                bits = np.unpackbits(beats, axis=1, bitorder="little")[:, :g["simd"]].reshape(n, -1)
                y = xnor_golden.run(self.image, bits[:, :g["in_features"]])
            result = b"".join(int(v).to_bytes(link.out_beat_bytes, "little", signed=True) for v in y.ravel())
            return frame_reference(ok, result)
        if cmd == 0x05:
            engine = [7, 6][:len(link.port.stats)]
            return frame_reference(ok, struct.pack(f"<{6 + len(engine)}I", 10, 2, 5, 0, 0, 999, *engine))
        return frame_reference(0xFF, bytes([4, cmd]))


@pytest.mark.parametrize("kind", ["eie", "xnor"])
def test_device_loads_and_runs_in_batches(kind):
    image = eie_image() if kind == "eie" else xnor_image()
    far = ModelDevice(kind, image)
    device = Device(far)
    if kind == "eie":
        lo, hi = image.engine.act_range()
        x = np.random.default_rng(1).integers(lo, hi + 1, (8, image.inputs))
        expected = eie_golden.run(image, x)
    else:
        x = np.random.default_rng(1).integers(0, 2, (40, image.inputs))
        expected = xnor_golden.run(image, x)
    assert device.ensure(image) is True
    loads = [length for cmd, length in far.requests if cmd == 0x02]
    word = far.link.load_word_bytes
    assert len(loads) > 1 and all(n % word == 0 and n <= 64 for n in loads)
    assert sum(loads) == len(device._image_bytes(image)[0])
    assert device.ensure(image) is False  # the device holds it: nothing sent but IDENTIFY
    assert far.requests[-1] == (0x01, 0)

    y = device.run(image, x)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, expected)
    runs = [length for cmd, length in far.requests if cmd == 0x04]
    per_batch = min(far.link.max_samples, 56 // far.link.in_sample_bytes)
    assert len(runs) == -(-len(x) // per_batch)
    assert device.run(image, x[:0]).shape == (0, image.outputs)

    stats = device.stats()
    assert stats.counters["run_samples"] == 2
    assert stats.engine == ({"cycles": 7, "compute_cycles": 6} if kind == "eie" else {})
    link = device.link_stats()
    assert link["bytes_sent"] == sum(n + 6 for _, n in far.requests)
    assert link["replies"] == link["frames_sent"] == len(far.requests)
    assert link["baud"] == 3_000_000
    assert link["wire_seconds"] == pytest.approx((link["bytes_sent"] + link["bytes_received"]) * 10 / 3e6)
    device.close()
    assert far.closed


def test_device_errors():
    image = eie_image()
    far = ModelDevice("eie", image)
    device = Device(far)
    with pytest.raises(DeviceError, match="HASH_MISMATCH") as e:
        device.run(image, np.zeros((1, image.inputs), dtype=np.int64))
    assert e.value.code == 6 and e.value.request == 0x04
    with pytest.raises(DeviceError, match="UNKNOWN_COMMAND .* in reply to command 0x42"):
        device.raw(0x42)
    with pytest.raises(EiexError, match=r"inputs must be shaped \(samples, 9\)"):
        device.run(image, np.zeros((1, 8), dtype=np.int64))
    with pytest.raises(EiexError, match="takes an EieImage, not a XnorImage"):
        device.load(xnor_image())
    with pytest.raises(EiexError, match="does not fit the device's eie engine: the image needs max_width"):
        device.load(eie_image_wide())
    far.silent = True
    with pytest.raises(EiexError, match="no reply from the device within 0.05 s"):
        device.stats()
    far.silent, far.echo = False, True
    with pytest.raises(EiexError, match="answered STATS with a frame of command 0x05"):
        device.stats()
    far.echo = False
    far.out = b"\x00garbage"  # stray bytes before a request are dropped
    assert device.identify().engine == "eie"
    assert device.link_stats()["stray_bytes"] == 8


def eie_image_wide():
    """The same inputs and outputs as :func:`eie_image`, a hidden layer wider than its engine's."""
    params = eie_image().engine
    rng = np.random.default_rng(3)
    codebook = np.r_[0, np.ones(params.codebook_size - 1, int)]
    layers = [IntLayer(rng.integers(0, params.codebook_size, (rows, cols)), codebook, np.zeros(rows, int),
                       relu=l == 0, weight_frac=3) for l, (rows, cols) in enumerate([(20, 9), (3, 20)])]
    return build_image(layers, params)


def test_serial_transport():
    with pytest.raises(EiexError, match="cannot open serial port /dev/eiex-no-such-port at 3000000 baud"):
        SerialTransport("/dev/eiex-no-such-port", 3_000_000)
    with pytest.raises(EiexError, match="baud must be a positive integer"):
        SerialTransport("loop://", 0)
    with SerialTransport("loop://", 3_000_000) as port:
        port.write(b"hello")
        assert port.read(2, 0.5) == b"he" and port.read(10, 0.5) == b"llo"
        assert port.read(10, 0.01) == b""
        assert port.reply_timeout(3_000_000, 3e6) == pytest.approx(3.0)
        # a loop-back answers a request with the request itself
        with pytest.raises(EiexError, match="answered IDENTIFY with a frame of command 0x01"):
            Device(port).identify()
