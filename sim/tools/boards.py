"""The boards ``eiex build --board`` makes bitstreams for, and the top that puts a link on one.

A board is an `amaranth-boards <https://github.com/amaranth-lang/amaranth-boards>`_ platform
plus what eiex needs of it: the part nextpnr places for (its package and speed grade), the design
clock, the UART pins, the LEDs of the link's ``status`` and how openFPGALoader loads the result.

=============== ================= ===================== ========================== ==========================
board           part              clock                 UART (FPGA rx / tx)        status LEDs (loaded, running,
                                                                                   error, activity)
=============== ================= ===================== ========================== ==========================
``ulx3s-85f``   LFE5U-85F-6BG381C 25 MHz -> PLL 48 MHz  M1 / L4: the FT231X (US1)  LED0, LED1, LED2, LED3
``orangecrab-   LFE5U-85F-8MG285C 48 MHz                Feather ``0`` (N17) /      RGB: green, -, red, blue
85f`` (r0.2)                                            ``1`` (M18): an adapter
``icebreaker``  iCE40UP5K-SG48    12 MHz                6 / 9: the FT2232H (ch. B) green, snap-off LED2, red,
                                                                                   snap-off LED3
=============== ================= ===================== ========================== ==========================

The UART runs at 3 Mbaud on the ULX3S and the iCEBreaker (16 clock cycles per bit at 48 MHz, 4 at
12 MHz) and at 115,200 baud on the OrangeCrab, whose USB-serial adapter is the user's (``--baud``
sets another rate). Notes:

* ULX3S: ``uart_tx_enable`` (L3, the FT231X's ``TXDEN``) is an output of the FT231X ("FPGA
  receives" in the board's reference LPF), so it is left undriven. The 25 MHz oscillator feeds
  an ``EHXPLLL`` (:data:`ULX3S_PLL`): 25 / 5 = 5 MHz at the phase detector, times 2 times 48 =
  480 MHz VCO, divided by 10 on ``CLKOS``: 48 MHz exactly. (A PLL whose output is also its
  feedback reaches 46.875 or 50 MHz at best: 3 Mbaud 2.3 % or 1.96 % off, at the edge of the
  UART's 2 %.) These are the dividers of prjtrellis' ``ecppll -i 25 -o 48 --highres``, with
  internal feedback.
* OrangeCrab r0.2: its USB port goes to the FPGA (and the DFU bootloader), there is no USB-serial
  chip. The UART is on the Feather header pins ``0`` (RX, FPGA input) and ``1`` (TX, FPGA output),
  as LiteX's ``gsd_orangecrab`` platform has it: connect a 3.3 V USB-serial adapter (its TX to
  pin ``0``, its RX to pin ``1``, and GND). The RGB LED shows three of the four status bits.
* iCEBreaker: the second channel of the FT2232H is the UART. LEDs 2 and 3 of the status are on
  the snap-off section on PMOD2 (attached as shipped; a module plugged into PMOD2 instead sees two
  of its pins driven).

:class:`BoardTop` is the top design: the link, the clock (and PLL), a power-on reset, the UART
pins and the LEDs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from amaranth import (ClockDomain, ClockSignal, DomainRenamer, Elaboratable, Instance, Module, ResetSignal, Shape,
                      Signal)
from amaranth.build import Attrs
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out
from amaranth.lib.cdc import FFSynchronizer
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_85FPlatform
from amaranth_boards.resources import UARTResource
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from eiex.hw.uart import BAUD_DEFAULT, divisor_for
from eiex.sim.tools.parts import PARTS, Part
from eiex.errors import EiexError

#: the power-on reset holds the design this long after the clock is stable (an iCE40's block RAMs
#: read as zeros for about 3 us after configuration; Amaranth's own iCE40 reset waits 15 us)
POR_SECONDS = 20e-6
#: what the link's ``status`` bits mean, in order
STATUS = ("image loaded", "running", "error", "activity")


@dataclass(frozen=True)
class Ecp5Pll:
    """Dividers of an ECP5 ``EHXPLLL`` whose ``CLKOS`` is the design clock, fed back from ``CLKOP``.

    The PLL locks when ``f_in / clki_div`` (the phase detector's frequency) equals the feedback
    ``f_vco / clkop_div / clkfb_div``, so ``f_vco = f_in / clki_div * clkfb_div * clkop_div``
    and ``CLKOS`` runs at ``f_vco / clkos_div``.
    """

    clki_div: int
    clkfb_div: int
    clkop_div: int
    clkos_div: int

    #: the ranges (MHz) the ECP5 datasheet (FPGA-DS-02012, sysCLOCK PLL timing) gives; prjtrellis'
    #: ecppll keeps the feedback output (CLKOP) above 10 MHz
    PFD_MHZ = (3.125, 400.0)
    VCO_MHZ = (400.0, 800.0)
    OUTPUT_MHZ = (3.125, 400.0)
    FEEDBACK_MHZ = (10.0, 400.0)

    def pfd_hz(self, f_in: float) -> float:
        return f_in / self.clki_div

    def vco_hz(self, f_in: float) -> float:
        return self.pfd_hz(f_in) * self.clkfb_div * self.clkop_div

    def feedback_hz(self, f_in: float) -> float:
        return self.vco_hz(f_in) / self.clkop_div

    def out_hz(self, f_in: float) -> float:
        return self.vco_hz(f_in) / self.clkos_div

    def check(self, f_in: float) -> float:
        """The output frequency from ``f_in``; :class:`EiexError` if any stage is out of range."""
        for what, hz, (low, high) in (("phase detector", self.pfd_hz(f_in), self.PFD_MHZ),
                                      ("VCO", self.vco_hz(f_in), self.VCO_MHZ),
                                      ("feedback (CLKOP)", self.feedback_hz(f_in), self.FEEDBACK_MHZ),
                                      ("output (CLKOS)", self.out_hz(f_in), self.OUTPUT_MHZ)):
            if not low <= hz / 1e6 <= high:
                raise EiexError(f"ECP5 PLL {what} at {hz / 1e6:g} MHz is outside {low:g}-{high:g} MHz")
        return self.out_hz(f_in)

    def instance(self, clk_in, clk_out, locked, f_in: float) -> Instance:
        """The ``EHXPLLL``: ``clk_in`` to ``clk_out``, ``locked`` high once locked."""
        self.check(f_in)
        feedback = Signal()
        return Instance(
            "EHXPLLL",
            # the loop filter settings ecppll (and Lattice's tools) use
            a_FREQUENCY_PIN_CLKI=f"{f_in / 1e6:g}", a_FREQUENCY_PIN_CLKOS=f"{self.out_hz(f_in) / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_CLKI_DIV=self.clki_div, p_CLKFB_DIV=self.clkfb_div, p_FEEDBK_PATH="INT_OP",
            # CPHASE = DIV - 1: no phase shift, as Lattice's tools set it
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=self.clkop_div, p_CLKOP_CPHASE=self.clkop_div - 1,
            p_CLKOP_FPHASE=0,
            p_CLKOS_ENABLE="ENABLED", p_CLKOS_DIV=self.clkos_div, p_CLKOS_CPHASE=self.clkos_div - 1,
            p_CLKOS_FPHASE=0,
            i_CLKI=clk_in, i_CLKFB=feedback, o_CLKINTFB=feedback, o_CLKOS=clk_out, o_LOCK=locked,
            i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
            i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
        )


#: 25 MHz to 48 MHz on the ULX3S (see the module notes)
ULX3S_PLL = Ecp5Pll(clki_div=5, clkfb_div=2, clkop_div=48, clkos_div=10)


@dataclass(frozen=True)
class Led:
    """One status LED: a resource of the platform, and its subsignal for an RGB LED."""

    resource: str
    number: int = 0
    subsignal: str | None = None

    def describe(self) -> str:
        return f"{self.resource} {self.number}" + (f" ({self.subsignal})" if self.subsignal else "")


@dataclass(frozen=True)
class Board:
    """One board ``eiex build --board`` targets.

    Parameters
    ----------
    name : str
        eiex's name (``--board``).
    title : str
        The board's name in reports.
    platform_class : type
        The amaranth-boards platform.
    part : Part
        The part as nextpnr sees it: device, package and resource counts.
    speed : int or None
        ECP5 speed grade of the board's chip.
    clock_resource : str
        The platform's oscillator resource.
    oscillator_hz, clock_hz : int
        The oscillator's and the design's clock.
    pll : Ecp5Pll or None
        The PLL between them (``None``: the oscillator is the design clock).
    uart : str
        Where the UART is, for people (the pins are the platform's ``uart`` resource).
    leds : tuple of (Led or None)
        The LED of each :data:`STATUS` bit, ``None`` if the board has none for it.
    pack_args : tuple of str
        Options of ``ecppack`` (ECP5) or ``icepack`` (iCE40).
    loader : str
        How openFPGALoader loads ``{bitstream}`` on the board.
    extra_resources : tuple
        Resources added to the platform (the OrangeCrab's UART, the iCEBreaker's snap-off LEDs).
    baud : int
        The UART's default baud rate: 3 Mbaud where the board's USB-serial chip reaches it.
    max_payload : int
        The host link's payload buffer (bytes): an iCE40's block RAMs hold 512 bytes each, and
        the engine needs nearly all of them.
    """

    name: str
    title: str
    platform_class: type
    part: Part
    speed: int | None
    clock_resource: str
    oscillator_hz: int
    clock_hz: int
    pll: Ecp5Pll | None
    uart: str
    leds: tuple
    pack_args: tuple[str, ...]
    loader: str
    extra_resources: tuple = ()
    baud: int = BAUD_DEFAULT
    max_payload: int = 4096

    @property
    def family(self) -> str:
        return self.part.family

    @property
    def bitstream(self) -> str:
        """The bitstream's file name: ``top.bit`` (ECP5) or ``top.bin`` (iCE40)."""
        return "top.bit" if self.family == "ecp5" else "top.bin"

    @property
    def constraints(self) -> str:
        """The constraint file Amaranth writes: ``top.lpf`` (ECP5) or ``top.pcf`` (iCE40)."""
        return "top.lpf" if self.family == "ecp5" else "top.pcf"

    def platform(self):
        """A new platform instance with :attr:`extra_resources` added."""
        platform = self.platform_class()
        if self.extra_resources:
            platform.add_resources(list(self.extra_resources))
        return platform

    @property
    def chip(self) -> str:
        """The full part number of the board's FPGA, as the platform has it (``LFE5U-85F-6BG381C``)."""
        p = self.platform_class
        if self.family == "ecp5":
            return f"{p.device}-{p.speed}{p.package}{p.grade}"
        return f"{p.device}-{p.package}"

    def flash_command(self, bitstream) -> str:
        """The openFPGALoader command line that loads ``bitstream`` (a path) on the board."""
        return self.loader.format(bitstream=bitstream)


_ICEBREAKER_SNAP_OFF = tuple(r for r in ICEBreakerPlatform.break_off_pmod if r.name == "led")

BOARDS = {b.name: b for b in (
    Board("ulx3s-85f", "ULX3S 85F", ULX3S_85F_Platform, PARTS["ecp5-85k"], 6, "clk25", 25_000_000, 48_000_000,
          ULX3S_PLL, "USB-serial on the US1 port (FT231X): FPGA rx M1, tx L4",
          (Led("led", 0), Led("led", 1), Led("led", 2), Led("led", 3)),
          ("--compress",), "openFPGALoader -b ulx3s {bitstream}"),
    Board("orangecrab-85f", "OrangeCrab r0.2 85F", OrangeCrabR0_2_85FPlatform,
          dataclasses.replace(PARTS["ecp5-85k"], nextpnr_args=("--85k", "--package", "CSFBGA285")), 8,
          "clk", 48_000_000, 48_000_000, None,
          "Feather header: FPGA rx on pin 0 (N17), tx on pin 1 (M18); a 3.3 V USB-serial adapter is needed",
          (Led("rgb_led", 0, "g"), None, Led("rgb_led", 0, "r"), Led("rgb_led", 0, "b")),
          # the configuration clock the board's own flow uses: the flash boots faster
          ("--compress", "--freq", "38.8"),
          # the DFU bootloader: hold the button while plugging in USB
          "openFPGALoader -b orangeCrab {bitstream}",
          (UARTResource(0, rx="0", tx="1", conn=("io", 0), attrs=Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP")),),
          # the adapter is the user's: many (CP2102, CH340) do not reach 3 Mbaud
          baud=115_200),
    Board("icebreaker", "iCEBreaker", ICEBreakerPlatform, PARTS["ice40-up5k"], None, "clk12", 12_000_000,
          12_000_000, None, "USB-serial on the FT2232H's channel B: FPGA rx 6, tx 9",
          (Led("led", 1), Led("led", 3), Led("led", 0), Led("led", 4)),
          (), "openFPGALoader -b ice40_generic -f {bitstream}", _ICEBREAKER_SNAP_OFF, max_payload=512),
)}


def get_board(name: str) -> Board:
    """The board called ``name``."""
    if name not in BOARDS:
        raise EiexError(f"unknown board {name!r}; choose from {', '.join(BOARDS)}")
    return BOARDS[name]


def board_clock_hz(board: Board | str) -> int:
    """The design clock of ``board`` (a :class:`Board` or its name), to size the UART divisor."""
    return (get_board(board) if isinstance(board, str) else board).clock_hz


def board_summary(board: Board, divisor: int | None = None) -> dict:
    """What a build report says of ``board``, its UART at ``divisor`` cycles a bit (default: the
    board's baud rate)."""
    pll = board.pll
    divisor = divisor or divisor_for(board.clock_hz, board.baud)
    return {
        "name": board.name, "title": board.title, "platform": board.platform_class.__name__, "chip": board.chip,
        "clock_hz": board.clock_hz, "oscillator_hz": board.oscillator_hz,
        "pll": None if pll is None else {**dataclasses.asdict(pll), "vco_hz": pll.vco_hz(board.oscillator_hz)},
        "uart": board.uart, "baud": round(board.clock_hz / divisor), "divisor": divisor,
        "leds": {status: led.describe() for status, led in zip(STATUS, board.leds) if led is not None},
    }


def _check_link(link) -> None:
    if not isinstance(link, wiring.Component):
        raise EiexError(f"the link must be an amaranth wiring.Component, not {type(link).__name__}")
    members = link.signature.members
    for name, flow, width in (("rx", wiring.In, 1), ("tx", wiring.Out, 1), ("status", wiring.Out, len(STATUS))):
        member = members[name] if name in members else None
        if member is None or not member.is_port or member.flow != flow or Shape.cast(member.shape).width != width:
            raise EiexError(f"the link needs a port {name}: {flow.name}({width}); "
                            f"it has {'none' if member is None else member}")


class PowerOnReset(wiring.Component):
    """A reset held from configuration until ``locked`` has been high ``cycles`` cycles.

    Parameters
    ----------
    cycles : int
        Cycles of lock before the reset is released.

    Attributes
    ----------
    locked : In(1)
        The PLL's lock, asynchronous (two flip-flops synchronize it); high without a PLL.
    reset : Out(1)
        A register: high at configuration and whenever the synchronized lock is low, low from
        ``cycles + 3`` cycles after ``locked`` rose. Its fan-out to every flip-flop of the
        design starts at a clock edge, with no logic in between.
    """

    def __init__(self, cycles: int):
        if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1:
            raise EiexError(f"cycles must be a positive integer, not {cycles!r}")
        self.cycles = cycles
        super().__init__({"locked": In(1), "reset": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        locked = Signal()
        m.submodules.lock_sync = FFSynchronizer(self.locked, locked)
        timer = Signal(range(self.cycles + 1))
        with m.If(~locked):
            m.d.sync += [timer.eq(0), self.reset.eq(1)]
        with m.Elif(timer == self.cycles):
            m.d.sync += self.reset.eq(0)
        with m.Else():
            m.d.sync += timer.eq(timer + 1)
        return m


class BoardTop(Elaboratable):
    """``link`` on ``board``: clock, power-on reset, UART pins and status LEDs.

    Parameters
    ----------
    link : wiring.Component
        With ports ``rx: In(1)``, ``tx: Out(1)`` and ``status: Out(4)`` (:data:`STATUS`), running
        in the ``sync`` domain at :func:`board_clock_hz`; becomes the submodule ``link``.
    board : Board or str

    The ``sync`` domain runs from the board's oscillator, through the PLL if the board has one.
    Its reset is a register, high from configuration until the PLL has locked (a synchronized
    ``LOCK``) and :data:`POR_SECONDS` more have passed, and again whenever the lock is lost.
    """

    def __init__(self, link: wiring.Component, board: Board | str):
        _check_link(link)
        self.link = link
        self.board = get_board(board) if isinstance(board, str) else board

    def elaborate(self, platform):
        board = self.board
        if not isinstance(platform, board.platform_class):
            raise EiexError(f"BoardTop for {board.name} elaborates on its {board.platform_class.__name__}, "
                            f"not {type(platform).__name__}")
        m = Module()
        m.submodules.link = self.link

        m.submodules.oscillator = oscillator = io.Buffer("i", platform.request(board.clock_resource, 0, dir="-"))
        clk = Signal()
        locked = Signal()
        if board.pll is not None:
            # no constraint on clk: nextpnr derives the PLL's output frequency from its input's
            m.submodules.pll = board.pll.instance(oscillator.i, clk, locked, board.oscillator_hz)
        else:
            m.d.comb += [clk.eq(oscillator.i), locked.eq(1)]

        # the reset's own domain: the same clock, never reset
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.d.comb += ClockSignal("por").eq(clk)
        m.submodules.por = por = DomainRenamer("por")(PowerOnReset(math.ceil(POR_SECONDS * board.clock_hz)))
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [por.locked.eq(locked), ClockSignal("sync").eq(clk), ResetSignal("sync").eq(por.reset)]

        # only rx and tx get buffers: the other pins of a resource (the ULX3S's RTS and DTR) stay unused
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [self.link.rx.eq(rx.i), tx.o.eq(self.link.tx)]

        requested = {}
        for bit, led in enumerate(board.leds):
            if led is None:
                continue
            key = (led.resource, led.number)
            if key not in requested:
                requested[key] = platform.request(led.resource, led.number, dir="-")
            port = getattr(requested[key], led.subsignal) if led.subsignal else requested[key]
            m.submodules[f"status_{bit}"] = buffer = io.Buffer("o", port)
            m.d.comb += buffer.o.eq(self.link.status[bit])
        return m
