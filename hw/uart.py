"""UART (8N1) for the host link: the boards' USB serial adapters (ULX3S, OrangeCrab, iCEBreaker).

A frame is a start bit (low), 8 data bits LSB first and a stop bit (high); the idle line is high.
Both ends count ``divisor`` clock cycles per bit (:func:`divisor_for`: 16 for 3 Mbaud at 48 MHz).

:class:`UartTx` loads an accepted byte into a shift register and puts the start bit on ``tx`` the
next cycle; ``tx`` is a register, so ``data.valid`` reaches it through no logic. ``data.ready`` is
high while idle and in the last cycle of the stop bit, so a stream kept valid is sent back to back:
exactly ``10 * divisor`` cycles per byte.

:class:`UartRx` synchronizes ``rx`` (two flip-flops), and in ``IDLE`` starts a frame on a low
line; it enters ``IDLE`` only right after sampling the line high, so that low is the start bit's
falling edge. With ``s = (divisor - 1) // 2``, it samples ``s`` cycles into each bit: the start bit
(a glitch of fewer than ``divisor / 2`` cycles is high again there, and ignored), each data bit and
the stop bit, each ``divisor`` cycles after the one before. It is back in ``IDLE`` the cycle after
the stop bit's sample, so a sender whose bits are a little short still has its next start bit seen.
Edge detection lags the line by 0 to 1 cycle, so every sample stays inside its bit for a sender's
bit period ``P`` (in cycles) with ``(9 * divisor + s + 1) / 10 <= P <= divisor + s / 9``: a baud
rate up to 5.2 % fast or 4.6 % slow at ``divisor`` 16, 5.2 % fast or 2.7 % slow at 4.

A stop bit sampled low is a framing error: the byte is dropped, ``error`` is high one cycle, and
the receiver waits for the line to go high (the end of a break) before the next start bit. A byte
completed while the one before is still not taken is dropped, and ``overrun`` is high one cycle:
the byte in ``data`` is kept, as a stream's payload must not change until it is taken. Both
strobes are registered: high the cycle after the decision.
"""

from __future__ import annotations

import numbers

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from eiex.errors import EiexError

#: baud rate of the host link (a divisor of 16 at 48 MHz, 4 at 12 MHz)
BAUD_DEFAULT = 3_000_000
#: the fewest clock cycles per bit: the receiver samples in the middle of a bit
DIVISOR_MIN = 4
#: the largest baud rate error :func:`divisor_for` accepts (the receiver tolerates more: see above)
BAUD_TOLERANCE = 0.02


def check_divisor(divisor) -> int:
    """``divisor`` as an ``int``; :class:`EiexError` unless it is an integer of at least :data:`DIVISOR_MIN`."""
    if isinstance(divisor, bool) or not isinstance(divisor, numbers.Integral) or divisor < DIVISOR_MIN:
        raise EiexError(f"divisor must be an integer >= {DIVISOR_MIN}, not {divisor!r}")
    return int(divisor)


def divisor_for(clock_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clock_hz``, rounded to nearest.

    Raises :class:`EiexError` if the resulting baud rate is more than :data:`BAUD_TOLERANCE` off,
    or if the divisor is below :data:`DIVISOR_MIN`.
    """
    if not clock_hz > 0 or not baud > 0:
        raise EiexError(f"clock and baud rate must be positive, not {clock_hz!r} Hz and {baud!r} baud")
    divisor = int(clock_hz / baud + 0.5)
    if divisor < DIVISOR_MIN:
        raise EiexError(f"a {clock_hz / 1e6:g} MHz clock is too slow for {baud} baud: "
                        f"{clock_hz / baud:.2f} cycles per bit, at least {DIVISOR_MIN} needed")
    error = abs(clock_hz / divisor / baud - 1)
    if error > BAUD_TOLERANCE:
        raise EiexError(f"a {clock_hz / 1e6:g} MHz clock cannot make {baud} baud: divisor {divisor} gives "
                        f"{clock_hz / divisor:.0f} baud, {error:.1%} off (at most {BAUD_TOLERANCE:.0%})")
    return divisor


class UartTx(wiring.Component):
    """UART transmitter, 8N1.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least :data:`DIVISOR_MIN`.

    Attributes
    ----------
    data : In(stream.Signature(8))
        Bytes to send; ``ready`` is high while idle and in the last cycle of a stop bit.
    tx : out
        The serial line, high when idle (a register).
    """

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))  # cycles of this bit still to come
        bits = Signal(range(10))             # bits of this frame still to come
        shift = Signal(8)                    # the data bits still to send, next one in bit 0
        m.d.comb += self.data.ready.eq((timer == 0) & (bits == 0))
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(bits != 0):
            # ones shift in behind the data: the stop bit
            m.d.sync += [self.tx.eq(shift[0]), shift.eq(Cat(shift[1:], 1)),
                         bits.eq(bits - 1), timer.eq(self.divisor - 1)]
        with m.Elif(self.data.valid):
            m.d.sync += [self.tx.eq(0), shift.eq(self.data.payload),
                         bits.eq(9), timer.eq(self.divisor - 1)]
        return m


class UartRx(wiring.Component):
    """UART receiver, 8N1.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least :data:`DIVISOR_MIN`.

    Attributes
    ----------
    rx : in
        The serial line, asynchronous (synchronized inside).
    data : Out(stream.Signature(8))
        Bytes received, one buffered: ``valid`` stays high until ``ready``.
    error : out
        High one cycle on a framing error (stop bit low); that byte is dropped.
    overrun : out
        High one cycle when a byte is completed while ``data`` still holds one not taken; the new
        byte is dropped, the old one kept.
    """

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "data": Out(stream.Signature(8)),
                          "error": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        divisor = self.divisor
        sample_at = (divisor - 1) // 2  # cycles from the start of a bit to its sample
        rx = Signal(init=1)
        m.submodules.rx_sync = FFSynchronizer(self.rx, rx, init=1)
        # Bit period counter: reloads itself at 0 (it free-runs in IDLE, where its value is unused).
        timer = Signal(range(divisor))
        m.d.sync += timer.eq(Mux(timer == 0, divisor - 1, timer - 1))
        bit = Signal(range(9))  # 0 to 7: data bits, 8: the stop bit
        shift = Signal(8)
        m.d.sync += [self.error.eq(0), self.overrun.eq(0)]
        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += [timer.eq(sample_at - 1), bit.eq(0)]
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(rx):  # high again: a glitch
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "BITS"
            with m.State("BITS"):
                with m.If(timer == 0):
                    m.d.sync += bit.eq(bit + 1)
                    with m.If(bit != 8):
                        m.d.sync += shift.eq(Cat(shift[1:], rx))
                    with m.Elif(rx):
                        with m.If(~self.data.valid | self.data.ready):
                            m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                        with m.Else():
                            m.d.sync += self.overrun.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):  # after a framing error: wait for the line to go high
                with m.If(rx):
                    m.next = "IDLE"
        return m
