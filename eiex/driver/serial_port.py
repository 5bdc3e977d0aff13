"""A board's host link on a serial port (its USB UART), through pyserial."""

from __future__ import annotations

from eiex.errors import EiexError

#: seconds added to every reply's time limit: USB latency and the host's scheduling
LATENCY_SECONDS = 1.0
#: the device's worst case is multiplied by this much
MARGIN = 2.0
#: bytes the first IDENTIFY may take, for its time limit before the device's figures are known
IDENTIFY_BYTES = 4096


class SerialTransport:
    """The :class:`~eiex.driver.device.Transport` of a serial port, 8N1.

    Parameters
    ----------
    port : str
        The device, such as ``/dev/ttyUSB1`` or ``COM4``.
    baud : int
        The line rate; must be the bitstream's (``clock_hz / divisor``).

    Raises
    ------
    EiexError
        If pyserial is not installed or the port cannot be opened.
    """

    def __init__(self, port: str, baud: int):
        try:
            import serial
        except ImportError:
            raise EiexError("the serial transport needs pyserial (pip install pyserial)") from None
        if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            raise EiexError(f"baud must be a positive integer, not {baud!r}")
        self.port_name = port
        self.baud = baud
        try:
            # serial_for_url: a device path, or a pyserial URL such as loop:// or socket://host:port
            self._port = serial.serial_for_url(port, baud, bytesize=serial.EIGHTBITS, parity=serial.PARITY_NONE,
                                       stopbits=serial.STOPBITS_ONE, timeout=0, write_timeout=None)
        except (serial.SerialException, ValueError, OSError) as e:
            raise EiexError(f"cannot open serial port {port} at {baud} baud: {e}") from None
        self._port.reset_input_buffer()

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except Exception as e:  # noqa: BLE001 (pyserial raises SerialException, OSError or termios.error)
            raise EiexError(f"writing to serial port {self.port_name} failed: {e}") from None

    def read(self, n: int, timeout: float) -> bytes:
        """Up to ``n`` bytes, as soon as any arrive; ``b""`` after ``timeout`` seconds without one."""
        try:
            self._port.timeout = timeout
            first = self._port.read(1)
            if not first or n <= 1:
                return first
            more = min(n - 1, self._port.in_waiting)
            return first + (self._port.read(more) if more else b"")
        except Exception as e:  # noqa: BLE001 (as in write)
            raise EiexError(f"reading from serial port {self.port_name} failed: {e}") from None

    def reply_timeout(self, cycles: int | None, clock_hz: float | None) -> float:
        if cycles is None or not clock_hz:
            return LATENCY_SECONDS + MARGIN * IDENTIFY_BYTES * 10 / self.baud
        return LATENCY_SECONDS + MARGIN * cycles / clock_hz

    def close(self) -> None:
        self._port.close()

    def __enter__(self) -> "SerialTransport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
