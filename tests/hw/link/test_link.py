"""The host link RTL in Amaranth's simulator, byte for byte against docs/host-protocol.md.

The bench drives the UART's rx pin bit by bit and decodes tx; frames are built here from the spec
(``binascii.crc_hqx``), not with eiex.driver, so the two implementations check each other.
"""

import binascii
import gc
import json
import struct

import numpy as np
import pytest
from amaranth.sim import Simulator

from eiex.hw.eie import golden as eie_golden
from eiex.hw.link.engines import engine_port, image_hash, link_for, load_bytes
from eiex.hw.link.host import HostLink
from eiex.hw.link.streams import BytePacker, ByteUnpacker, MemoryReader
from eiex.hw.xnor import golden as xnor_golden
from eiex.hw.xnor.memory_map import pack_input
from eiex.errors import EiexError

from factories import tiny_eie_image as eie_image, tiny_xnor_image as xnor_image

DIVISOR = 4
TIMEOUT = 200  # cycles of quiet: five bytes' time


def frame(cmd: int, payload: bytes = b"") -> bytes:
    body = bytes([cmd]) + struct.pack("<H", len(payload)) + payload
    return b"\xa5" + body + struct.pack("<H", binascii.crc_hqx(body, 0xFFFF))


def parse(reply: bytes) -> tuple[int, bytes]:
    """``(cmd, payload)`` of one reply frame, checked."""
    assert reply[0] == 0xA5
    cmd, length = reply[1], struct.unpack("<H", reply[2:4])[0]
    assert len(reply) == length + 6
    assert struct.unpack("<H", reply[-2:])[0] == binascii.crc_hqx(reply[1:-2], 0xFFFF)
    return cmd, reply[4:-2]


def run_link(link: HostLink, requests: list, max_cycles: int = 400_000) -> list[tuple[int, bytes]]:
    """Send each request on rx and collect one reply frame per request from tx; a request is sent
    only after the previous reply, as a host does. A request is bytes, or ``("bad stop", bytes)``:
    the last byte's stop bit is low (a framing error)."""
    replies: list[bytes] = []
    expected = len(requests)
    sim = Simulator(link)
    sim.add_clock(1e-6)

    async def send_byte(ctx, byte, stop=1):
        for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [stop]:
            ctx.set(link.rx, bit)
            await ctx.tick().repeat(DIVISOR)
        ctx.set(link.rx, 1)

    async def host(ctx):
        await ctx.tick().repeat(4)
        for request in requests:
            bad_stop = isinstance(request, tuple)
            if bad_stop:
                request = request[1]
            before = len(replies)
            for i, byte in enumerate(request):
                await send_byte(ctx, byte, stop=0 if bad_stop and i == len(request) - 1 else 1)
            while len(replies) == before:
                await ctx.tick()

    async def monitor(ctx):
        buffer = bytearray()
        while len(replies) < expected:
            await ctx.tick().until(link.tx == 0)
            await ctx.tick().repeat(DIVISOR // 2)  # the middle of the start bit
            byte = 0
            for i in range(8):
                await ctx.tick().repeat(DIVISOR)
                byte |= ctx.get(link.tx) << i
            await ctx.tick().repeat(DIVISOR)
            assert ctx.get(link.tx) == 1, "stop bit"
            buffer.append(byte)
            if len(buffer) >= 4 and len(buffer) == struct.unpack("<H", bytes(buffer[2:4]))[0] + 6:
                replies.append(bytes(buffer))
                buffer.clear()

    async def watchdog(ctx):
        await ctx.delay(max_cycles * 1e-6)
        raise AssertionError(f"{len(replies)} replies of {expected} after {max_cycles} cycles")

    sim.add_testbench(host)
    sim.add_testbench(monitor)
    sim.add_testbench(watchdog, background=True)
    sim.run()
    return [parse(r) for r in replies]


# ---- images ----------------------------------------------------------------------------------


def xnor_inputs(image, n, seed=1):
    bits = np.random.default_rng(seed).integers(0, 2, (n, image.layers[0].in_features))
    beats = pack_input(image, bits)
    g = image.layers[0]
    payload = b"".join(int(b).to_bytes((g.simd + 7) // 8, "little") for sample in beats for b in sample)
    return bits, payload


def eie_inputs(image, n, seed=1):
    lo, hi = image.engine.act_range()
    a = np.random.default_rng(seed).integers(lo, hi + 1, (n, image.inputs))
    nb = (image.engine.act_bits + 7) // 8
    return a, b"".join(int(x).to_bytes(nb, "little", signed=True) for x in a.ravel())


def results(payload: bytes, nbytes: int, n: int) -> np.ndarray:
    values = [int.from_bytes(payload[i:i + nbytes], "little", signed=True) for i in range(0, len(payload), nbytes)]
    return np.array(values, dtype=np.int64).reshape(n, -1)


def make_link(kind, image, **kw):
    return link_for(kind, image, clock_hz=12_000_000, divisor=DIVISOR, timeout_cycles=TIMEOUT, **kw)


def load_frames(kind, image, link, max_payload):
    data = load_bytes(kind, image, link.port.params)
    step = max_payload // link.load_word_bytes * link.load_word_bytes
    return [frame(0x02, data[i:i + step]) for i in range(0, len(data), step)], image_hash(data)


# ---- tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["xnor", "eie"])
def test_identify_load_run_stats(kind):
    image = xnor_image() if kind == "xnor" else eie_image()
    link = make_link(kind, image, max_payload=64)
    loads, h = load_frames(kind, image, link, 64)
    if kind == "xnor":
        x, payload = xnor_inputs(image, 3)
        expected = xnor_golden.run(image, x)
    else:
        x, payload = eie_inputs(image, 3)
        expected = eie_golden.run(image, x)
    assert len(payload) + 8 <= 64
    replies = run_link(link, [frame(0x01), *loads, frame(0x03, h), frame(0x01), frame(0x04, h + payload),
                              frame(0x05)])
    (cmd, ident), *load_replies, commit, (_, ident2), (run_cmd, out), (stats_cmd, stats) = replies

    assert cmd == 0x81 and ident[:5] == b"EIEX\x01"
    max_payload, word, in_b, in_n, out_b, out_n = struct.unpack("<HBBHBH", ident[5:14])
    assert (max_payload, word, in_n, out_n) == (64, link.load_word_bytes, link.port.in_beats, link.port.out_beats)
    assert ident[14:22] == bytes(8) and ident2[14:22] == h  # no image, then the committed one
    descriptor = json.loads(ident[22:])
    assert descriptor["engine"] == kind and descriptor["divisor"] == DIVISOR
    assert descriptor["params"] == link.port.params
    assert all(r == (0x82, b"") for r in load_replies) and commit == (0x83, b"")

    assert run_cmd == 0x84
    np.testing.assert_array_equal(results(out, out_b, 3), expected)
    assert stats_cmd == 0x85
    words = struct.unpack(f"<{len(stats) // 4}I", stats)
    run_cycles, run_samples, frames, errors, dropped, clock = words[:6]
    assert run_samples == 3 and frames == len(loads) + 5 and errors == 0 and dropped == 0
    assert 0 < run_cycles < 2000 and clock > 0
    assert len(words) == 6 + (2 if kind == "eie" else 0)


def test_preloaded_image_runs_without_loading():
    image = xnor_image(3)
    link = make_link("xnor", image, preload=True, max_payload=64)
    x, payload = xnor_inputs(image, 2)
    h = image_hash(load_bytes("xnor", image, link.port.params))
    (_, ident), (cmd, out) = run_link(link, [frame(0x01), frame(0x04, h + payload)])
    assert ident[14:22] == h
    np.testing.assert_array_equal(results(out, link.out_beat_bytes, 2), xnor_golden.run(image, x))


def test_errors_are_answered_and_the_link_goes_on():
    image = xnor_image(5)
    link = make_link("xnor", image, preload=True, max_payload=64)
    h = link.port.image_hash
    x, payload = xnor_inputs(image, 1)
    good = frame(0x04, h + payload)
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0x40
    too_long = b"\xa5\x04" + struct.pack("<H", 65) + bytes(20)
    requests = [
        bytes(bad_crc),                         # BAD_CRC
        good[:10],                              # TRUNCATED (the quiet time ends it)
        too_long,                               # TOO_LONG
        frame(0x42),                            # UNKNOWN_COMMAND
        frame(0x04, bytes(8) + payload),        # HASH_MISMATCH
        frame(0x04, h + payload[:-1]),          # BAD_LENGTH: not whole samples
        frame(0x01, b"x"),                      # BAD_LENGTH: IDENTIFY takes nothing
        frame(0x03, h[:7]),                     # BAD_LENGTH: a hash is 8 bytes
        ("bad stop", good[:6]),                 # LINE: a framing error inside a frame
        b"\x00\x13" + good,                     # noise before a good frame: dropped
        frame(0x05),
    ]
    replies = run_link(link, requests)
    codes = [(cmd, p) for cmd, p in replies[:9]]
    assert codes == [(0xFF, bytes([1, 0x04])), (0xFF, bytes([2, 0x04])), (0xFF, bytes([3, 0x04])),
                     (0xFF, bytes([4, 0x42])), (0xFF, bytes([6, 0x04])), (0xFF, bytes([5, 0x04])),
                     (0xFF, bytes([5, 0x01])), (0xFF, bytes([5, 0x03])), (0xFF, bytes([7, 0x04]))]
    cmd, out = replies[9]
    assert cmd == 0x84
    np.testing.assert_array_equal(results(out, link.out_beat_bytes, 1), xnor_golden.run(image, x))
    words = struct.unpack("<6I", replies[10][1])
    assert words[3] == 9  # errors
    assert words[4] == 20 + 2  # dropped: too_long's payload (discarded), the noise


def test_reset_clears_counters_and_keeps_the_image():
    image = xnor_image(7)
    link = make_link("xnor", image, preload=True, max_payload=64)
    h = link.port.image_hash
    x, payload = xnor_inputs(image, 2)
    replies = run_link(link, [frame(0x04, h + payload), frame(0x06), frame(0x05), frame(0x04, h + payload)])
    assert replies[1] == (0x86, b"")
    words = struct.unpack("<6I", replies[2][1])
    assert words[2] == 1 and words[3] == 0  # the STATS frame only
    np.testing.assert_array_equal(results(replies[3][1], link.out_beat_bytes, 2), xnor_golden.run(image, x))


def test_load_replaces_the_image_and_clears_the_hash():
    first, second = xnor_image(11), xnor_image(12)
    link = make_link("xnor", first, preload=True, max_payload=64)
    old = link.port.image_hash
    loads, h = load_frames("xnor", second, link, 64)
    x, payload = xnor_inputs(second, 2)
    replies = run_link(link, [loads[0], frame(0x04, old + payload), *loads[1:], frame(0x03, h),
                              frame(0x04, h + payload)])
    assert replies[1] == (0xFF, bytes([6, 0x04]))  # a LOAD clears the hash: the old image is gone
    np.testing.assert_array_equal(results(replies[-1][1], link.out_beat_bytes, 2), xnor_golden.run(second, x))


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_sizes_that_do_not_fit_are_refused():
    image = eie_image()
    with pytest.raises(EiexError, match="max_payload must hold one sample"):
        make_link("eie", image, max_payload=10)
    with pytest.raises(EiexError, match="divisor"):
        link_for("eie", image, clock_hz=12e6, divisor=2, timeout_cycles=10)
    with pytest.raises(EiexError, match="timeout_cycles"):
        HostLink(engine_port("eie", image), clock_hz=12_000_000, divisor=4, timeout_cycles=0)
    # a refused link is never built, but the engines made for it are: they go unused, and are
    # collected here, under the filter, rather than warned about in a later test
    gc.collect()


@pytest.mark.parametrize("width, signed_words", [(12, False), (16, True), (5, True), (64, False)])
def test_memory_bytes_into_words_and_back(width, signed_words):
    """MemoryReader -> BytePacker -> ByteUnpacker -> bytes, under random back-pressure: the bytes
    come back as they were stored (a signed word's padding bits sign-extended)."""
    from amaranth import Module, signed
    from amaranth.lib.memory import Memory

    rng = np.random.default_rng(width)
    n_bytes = (width + 7) // 8
    words = [int(w) for w in rng.integers(0, 1 << min(width, 62), 9)]
    data = b"".join(w.to_bytes(n_bytes, "little") for w in words)
    m = Module()
    m.submodules.memory = memory = Memory(shape=8, depth=len(data) + 3, init=list(data))
    m.submodules.reader = reader = MemoryReader(memory)
    m.submodules.packer = packer = BytePacker(width)
    m.submodules.unpacker = unpacker = ByteUnpacker(signed(width) if signed_words else width)
    m.d.comb += [packer.bytes.payload.eq(reader.data.payload), packer.bytes.valid.eq(reader.data.valid),
                 reader.data.ready.eq(packer.bytes.ready),
                 unpacker.word.payload.eq(packer.word.payload), unpacker.word.valid.eq(packer.word.valid),
                 packer.word.ready.eq(unpacker.word.ready)]
    got = []
    sim = Simulator(m)
    sim.add_clock(1e-6)

    async def bench(ctx):
        ctx.set(reader.start, 0)
        ctx.set(reader.count, len(data))
        ctx.set(reader.go, 1)
        await ctx.tick()
        ctx.set(reader.go, 0)
        while len(got) < len(data):
            ready = int(rng.random() < 0.6)
            ctx.set(unpacker.bytes.ready, ready)
            valid, byte = ctx.get(unpacker.bytes.valid), ctx.get(unpacker.bytes.payload)
            await ctx.tick()
            if valid and ready:
                got.append(byte)
        assert not ctx.get(reader.busy)

    sim.add_testbench(bench)
    sim.run()
    expected = []
    for w in words:
        value = w - (1 << width) if signed_words and w >> (width - 1) & 1 else w
        expected += list((value % (1 << 8 * n_bytes)).to_bytes(n_bytes, "little"))
    assert got == expected
