"""The host side of the host link (``docs/host-protocol.md``): an eiex engine on a board, or its
link top under Verilator, driven over frames on a serial line.

:class:`Device` speaks the protocol over a :class:`Transport`: :class:`~eiex.driver.serial_port.SerialTransport`
for a board's USB UART, :class:`~eiex.sim.testbenches.verilator_link.VerilatorTransport` for a simulated top.
:mod:`eiex.driver.protocol` is the byte format itself.
"""

from eiex.driver.device import Device, Transport
from eiex.driver.protocol import DeviceError, Identify, Stats
from eiex.driver.serial_port import SerialTransport

__all__ = ["Device", "DeviceError", "Identify", "SerialTransport", "Stats", "Transport"]
