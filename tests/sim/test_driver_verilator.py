# amaranth: UnusedElaboratable=no
"""eiex.driver over Verilator: the transport on an echo top (bytes back unchanged, a clean end),
then Device on an XNOR HostLink top: identify, load, run equal to the golden model,
statistics, and every protocol error a host can cause answered with its code, the device working
on after each."""

import shutil
import time

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from eiex.driver import Device, DeviceError
from eiex.driver.protocol import COMMIT, RUN, STATS, encode_frame
from eiex.sim.testbenches.verilator_link import VerilatorTransport
from eiex.hw.eie import golden as eie_golden
from eiex.hw.link.engines import link_for
from eiex.hw.uart import UartRx, UartTx
from eiex.hw.xnor import golden as xnor_golden
from eiex.sim.tools.lint import have_verilator
from eiex.sim.testbenches.runner import default_cache_dir
from eiex.errors import EiexError

from factories import tiny_eie_image as eie_image, tiny_xnor_image as xnor_image

pytestmark = pytest.mark.skipif(not have_verilator(), reason="verilator is not installed")

DIVISOR = 4
MAX_PAYLOAD = 64
TIMEOUT_CYCLES = 400  # ten bytes' time of quiet


@pytest.fixture(scope="module")
def cache():
    """The shared build cache (``$EIEX_SIM_CACHE`` or ``~/.cache/eiex/sim``), not a fresh one: the
    three models take about 110 s to build on two cores, a cached start about 3 s. Its keys cover
    the Verilog and the tools, so a changed design is always rebuilt."""
    return default_cache_dir()


class Echo(wiring.Component):
    """rx to UartRx to UartTx to tx: every byte comes back."""

    rx: In(1, init=1)
    tx: Out(1, init=1)
    status: Out(4)

    def __init__(self, divisor: int):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UartRx(self.divisor)
        m.submodules.tx = tx = UartTx(self.divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), self.status.eq(0b0101)]
        wiring.connect(m, rx.data, tx.data)
        return m


def read_exactly(transport, n, timeout=20.0):
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += transport.read(n - len(got), deadline - time.monotonic())
    return got


def test_echo_over_verilator(cache):
    data = np.random.default_rng(0).integers(0, 256, 700, dtype=np.uint8).tobytes()
    with VerilatorTransport(Echo(DIVISOR), DIVISOR, cache) as transport:
        process = transport._process
        for chunk in (b"\xa5", data[:300], data[300:], bytes(range(256))):
            transport.write(chunk)
            assert read_exactly(transport, len(chunk)) == chunk
        assert transport.read(10, 0.2) == b""  # nothing more
        # a device that echoes answers a request with the request itself
        with pytest.raises(EiexError, match="answered IDENTIFY with a frame of command 0x01"):
            Device(transport).identify()
    assert process.poll() is not None
    assert not transport.job.exists()  # a clean end leaves nothing behind
    with pytest.raises(EiexError, match="closed"):
        transport.write(b"x")


def test_a_bench_that_ends_is_an_error(cache):
    transport = VerilatorTransport(Echo(DIVISOR), DIVISOR, cache, idle_seconds=0.5)
    try:
        with pytest.raises(EiexError, match="the simulated link ended: nothing crossed the link for 0.5 s"):
            read_exactly(transport, 1, timeout=30.0)
        assert (transport.job / "error.txt").exists()
    finally:
        transport.close()
        shutil.rmtree(transport.job, ignore_errors=True)  # kept for the user after a failure


def test_bad_tops_are_refused(cache):
    class NoPins(wiring.Component):
        tx: Out(1)

        def elaborate(self, platform):
            return Module()

    with pytest.raises(EiexError, match="needs ports rx, tx and status; NoPins lacks rx, status"):
        VerilatorTransport(NoPins(), DIVISOR, cache)
    with pytest.raises(EiexError, match="divisor must be an integer >= 4"):
        VerilatorTransport(Echo(DIVISOR), 2, cache)
    with pytest.raises(EiexError, match="the link top.s UART has divisor 4, not 5"):
        VerilatorTransport(Echo(DIVISOR), 5, cache)


# ---- the host link -----------------------------------------------------------------------------


def inputs(kind, image, n, seed=1):
    rng = np.random.default_rng(seed)
    if kind == "eie":
        lo, hi = image.engine.act_range()
        return rng.integers(lo, hi + 1, (n, image.inputs))
    return rng.integers(0, 2, (n, image.inputs))


def golden(kind):
    return eie_golden if kind == "eie" else xnor_golden


IMAGES = {"eie": eie_image, "xnor": xnor_image}


# XNOR only: an EIE link top takes about 70 s to build for Verilator. EIE through the link is
# tested byte for byte in Amaranth's simulator (tests/hw/link/test_link.py) and on Verilator by `make demo`.
@pytest.fixture(scope="module", params=["xnor"])
def device(request, cache):
    kind = request.param
    top = link_for(kind, IMAGES[kind](), clock_hz=12_000_000, divisor=DIVISOR, timeout_cycles=TIMEOUT_CYCLES,
                   max_payload=MAX_PAYLOAD)
    with Device(VerilatorTransport(top, DIVISOR, cache)) as device:
        yield kind, device


def test_identify_load_run_stats(device):
    kind, device = device
    image = IMAGES[kind]()
    ident = device.identify()
    assert ident.engine == kind and not ident.loaded
    assert (ident.max_payload, ident.divisor, ident.timeout_cycles) == (MAX_PAYLOAD, DIVISOR, TIMEOUT_CYCLES)
    assert device.ensure(image) is True
    assert device.identify().image_hash == device.image_hash(image)
    assert device.ensure(image) is False

    x = inputs(kind, image, 7)
    sent = device.link_stats()["bytes_sent"]
    np.testing.assert_array_equal(device.run(image, x), golden(kind).run(image, x))
    per_batch = min(ident.max_samples, (MAX_PAYLOAD - 8) // ident.in_sample_bytes)
    batches = -(-len(x) // per_batch)
    assert device.link_stats()["bytes_sent"] - sent == batches * 14 + len(x) * ident.in_sample_bytes

    stats = device.stats()
    assert stats.counters["run_samples"] == len(x) - (batches - 1) * per_batch  # the last batch
    assert 0 < stats.counters["run_cycles"] < 5000
    assert stats.counters["errors"] == 0 and stats.counters["dropped"] == 0
    assert stats.counters["clock_cycles"] > 0
    assert list(stats.engine) == (["cycles", "compute_cycles"] if kind == "eie" else [])
    device.reset()
    after = device.stats()
    assert after.counters["frames"] == 1 and after.counters["run_samples"] == 0
    assert device.identify().image_hash == device.image_hash(image)  # RESET keeps the image


def test_protocol_errors_are_answered(device):
    kind, device = device
    image = IMAGES[kind]()
    device.ensure(image)
    device.reset()
    x = inputs(kind, image, 1, seed=5)
    expected = golden(kind).run(image, x)
    digest = device.image_hash(image)
    sample = device.identify().in_sample_bytes
    stats = encode_frame(STATS)
    bad_crc = stats[:-1] + bytes([stats[-1] ^ 0x40])
    too_long = b"\xa5\x04" + (MAX_PAYLOAD + 1).to_bytes(2, "little") + bytes(20)

    def check(code, request, send):
        with pytest.raises(DeviceError) as e:
            send()
        assert (e.value.code, e.value.request) == (code, request)
        np.testing.assert_array_equal(device.run(image, x), expected)

    check(1, STATS, lambda: (device.send_bytes(bad_crc), device.read_reply()))
    check(2, RUN, lambda: (device.send_bytes(encode_frame(RUN, digest + bytes(sample))[:9]), device.read_reply()))
    check(3, RUN, lambda: (device.send_bytes(too_long), device.read_reply()))
    check(4, 0x42, lambda: device.raw(0x42, b"xyz"))
    check(5, RUN, lambda: device.raw(RUN, digest + bytes(sample + 1)))
    check(5, COMMIT, lambda: device.raw(COMMIT, digest[:7]))
    check(6, RUN, lambda: device.raw(RUN, bytes(8) + bytes(sample)))
    assert device.stats().counters["errors"] == 7
