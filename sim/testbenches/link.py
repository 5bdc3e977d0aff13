"""Cocotb bench of a host-link top: its UART pins bridged to a host over a local TCP socket.

Run by :class:`eiex.sim.testbenches.verilator_link.VerilatorTransport`, which listens on the address in
:data:`~eiex.sim.testbenches.verilator_link.ADDRESS_ENV` and names the job folder (settings in ``job.json``) in
:data:`eiex.sim.testbenches.runner.JOB_ENV`. The top has ports ``clk``, ``rst``, ``rx``, ``tx`` (and
``status``, unused here).

The bench clocks the top, holds reset, then serves the host until it closes the socket:

* host to top: the host sends messages, a 4-byte little-endian length and that many bytes; each
  message goes onto ``rx`` back to back through cocotbext-uart's ``UartSource``, as a serial port
  sends a buffer written at once. (Raw TCP could split a frame into pieces arriving far apart in
  simulated time, which the device would rightly call a truncated frame.)
* top to host: bytes decoded from ``tx`` by ``UartSink``, forwarded as they come.

The socket is polled without blocking once per byte time, so the simulation runs on while the
host is quiet, as a board's clock does: the device's quiet-time limits behave as on a board. The
bench blocks only to take the rest of a message already begun.

The line's bit time is ``divisor`` clock periods, a whole number of nanoseconds; the polls, and
so every change of ``rx``, fall on falling clock edges, half a period from the edges that sample.
A failure writes one line to ``error.txt`` in the job folder.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import time
import warnings
from pathlib import Path

import cocotb
from cocotb.triggers import FallingEdge, Timer
from cocotbext.uart import UartSink, UartSource

from eiex.sim.testbenches.verilator_link import ADDRESS_ENV, MESSAGE_HEADER
from eiex.sim.testbenches.streams import BenchFailure, Clocking, errors_reported
from eiex.sim.testbenches.runner import JOB_ENV

#: cocotbext-uart truncates ``1e9 / baud`` to whole nanoseconds; a baud rate for a bit time this
#: much longer than the wanted one truncates to exactly it
BAUD_EPSILON_NS = 1e-6
#: wall seconds to connect, and to receive the rest of a message already begun
SOCKET_SECONDS = 30.0
RECV_BYTES = 1 << 16


class HostBridge:
    """The socket to the host: whole messages in, bytes out."""

    def __init__(self, address: str):
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=SOCKET_SECONDS)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inbox = bytearray()
        self.closed = False
        self.last_traffic = time.monotonic()  # the last byte either way

    def send(self, data: bytes) -> None:
        self.last_traffic = time.monotonic()
        try:
            self.sock.sendall(data)
        except OSError:  # the host is gone: the next poll sees the socket closed
            self.closed = True

    def messages(self) -> list[bytes]:
        """Whole messages that have arrived (none if nothing has); sets ``closed`` at the end of the stream."""
        out = []
        while not self.closed and select.select([self.sock], [], [], 0)[0]:
            if not self._recv():
                break
            while len(self.inbox) >= MESSAGE_HEADER.size:
                size = MESSAGE_HEADER.unpack_from(self.inbox)[0]
                while len(self.inbox) < MESSAGE_HEADER.size + size:
                    # the rest is on its way: take it now so the message leaves back to back
                    if not self._recv():
                        raise BenchFailure(f"the host closed the link in the middle of a {size}-byte message")
                out.append(bytes(self.inbox[MESSAGE_HEADER.size:MESSAGE_HEADER.size + size]))
                del self.inbox[:MESSAGE_HEADER.size + size]
        return out

    def _recv(self) -> bool:
        try:
            data = self.sock.recv(RECV_BYTES)
        except socket.timeout:
            raise BenchFailure(f"the host sent part of a message and nothing more for {SOCKET_SECONDS:g} s") from None
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.inbox += data
        self.last_traffic = time.monotonic()
        return True

    def close(self) -> None:
        self.sock.close()


async def serve(dut, job: dict) -> None:
    period, divisor = job["period_ns"], job["divisor"]
    bit_ns = period * divisor
    clocking = Clocking(dut.clk, period)
    dut.rx.value = 1
    clocking.start()
    await clocking.reset(dut.rst, job["reset_cycles"])
    baud = 1e9 / (bit_ns + BAUD_EPSILON_NS)
    # cocotbext-uart 0.1.4 sets the idle line with cocotb 1.x's setimmediatevalue, deprecated (and
    # still working) in cocotb 2
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="cocotbext.uart")
    source = UartSource(dut.rx, baud=baud, bits=8, stop_bits=1)
    sink = UartSink(dut.tx, baud=baud, bits=8, stop_bits=1)
    for pin in (dut.rx, dut.tx):  # cocotbext-uart logs every byte at INFO
        logging.getLogger(f"cocotb.{pin._path}").setLevel(logging.WARNING)

    bridge = HostBridge(os.environ[ADDRESS_ENV])
    try:
        await FallingEdge(dut.clk)
        poll = Timer(10 * bit_ns, "ns")
        while True:
            await poll
            if not sink.empty():
                bridge.send(bytes(sink.read_nowait()))
            for message in bridge.messages():
                source.write_nowait(message)
            if bridge.closed:
                return
            if time.monotonic() - bridge.last_traffic > job["idle_seconds"]:
                raise BenchFailure(f"nothing crossed the link for {job['idle_seconds']:g} s")
    finally:
        bridge.close()


@cocotb.test()
async def link(dut):
    folder = Path(os.environ[JOB_ENV])
    with errors_reported(folder, "the link bench"):
        await serve(dut, json.loads((folder / "job.json").read_text()))
