"""One design point of a sweep, as a Dask worker runs it: resize, cycle model, RTLIL, build.

:func:`evaluate_point` lays the image out for the point (:attr:`eiex.sim.engines.Engine.resize`),
runs the engine's cycle model, generates the build top's RTLIL and hashes it with the part and
the tool versions (:func:`cache_key`). A key the client already holds is answered at once; any
other point is synthesized, placed and routed in a private temporary folder
(:func:`eiex.sim.tools.build.run_rtlil_build`), and what a user needs of that folder (the report
and the tails of the tool logs) travels back in the result, so workers need no shared file system.

Everything a worker needs is eiex itself: the function and its arguments pickle by reference.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from eiex.errors import EiexError

#: the RTLIL attribute lines naming the Python source of each item
_SRC = re.compile(r"^\s*attribute \\src .*\n", re.M)
#: lines kept from the end of each tool log in a point's result
LOG_TAIL = 200
#: short names of the knobs (and the placer seed) in a point's id and labels
SHORT = {"n_pe": "pe", "queue_depth": "q", "target_interval": "t", "mac": "", "seed": "s"}


@dataclass(frozen=True)
class Point:
    """One design point: an engine, its knob values and nextpnr's placer seed."""

    engine: str
    knobs: tuple[tuple[str, int | str], ...]
    seed: int | None = None

    @property
    def id(self) -> str:
        parts = [f"{SHORT.get(name, name)}{value}" for name, value in self.knobs]
        seed = [f"{SHORT['seed']}{self.seed}"] if self.seed is not None else []
        return "-".join([self.engine, *parts, *seed])

    @property
    def params(self) -> dict:
        return {**dict(self.knobs), "seed": self.seed}


def sweep_points(engine: str, axes: dict[str, list], seeds: int = 1) -> list[Point]:
    """Every combination of the knob values in ``axes`` (in their order), each with placer seeds
    ``1 .. seeds``."""
    if seeds < 1:
        raise EiexError(f"--seeds must be at least 1, not {seeds}")
    names = list(axes)
    return [Point(engine, tuple(zip(names, values)), seed)
            for values in product(*(axes[name] for name in names)) for seed in range(1, seeds + 1)]


def cache_key(rtlil: str, part, speed: int | None, freq: float, seed: int | None, tools: dict) -> str:
    """The sha256 naming a build's result: the top's RTLIL, the part, the nextpnr options and the
    tool versions (anything else that changes the result changes the RTLIL). The RTLIL's source
    locations (``attribute \\src``) are left out: they change with the install path and any edit of
    the Python, not the hardware."""
    h = hashlib.sha256(_SRC.sub("", rtlil).encode())
    h.update(json.dumps({"part": part.name, "device": part.device, "args": part.nextpnr_args, "speed": speed,
                         "freq": float(freq), "seed": seed, "tools": tools}, sort_keys=True).encode())
    return h.hexdigest()


def _tail(path: Path, lines: int = LOG_TAIL) -> str | None:
    if not path.exists():
        return None
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"


def figures_of(report: dict) -> dict:
    """The sweep's columns from a build report: resources, Fmax, throughput."""
    use = report.get("utilization") or {}
    used = {name: row["used"] for name, row in use.items()}
    fmax = min(report["fmax_mhz"].values()) if report.get("fmax_mhz") else None
    return {"luts": used.get("LUT4"), "ffs": used.get("FF"), "brams": used.get("BRAM"), "dsps": used.get("DSP"),
            "lut_percent": use.get("LUT4", {}).get("percent"), "bram_percent": use.get("BRAM", {}).get("percent"),
            "fmax_mhz": fmax, "overflow": report.get("overflow", [])}


def evaluate_point(point: Point, image, inputs, part, speed: int | None, freq: float, known: frozenset,
                   log=None) -> dict:
    """Run ``point`` (see the module docstring) and return its result.

    Parameters
    ----------
    image :
        The image the sweep explores; ``inputs``: engine-format inputs for the cycle model (None:
        the engine's default, held-out MNIST-5k digits for a 784-input image).
    part, speed, freq :
        The :class:`~eiex.sim.tools.parts.Part`, speed grade and nextpnr target MHz.
    known : frozenset of str
        Cache keys whose results the client holds: such a point is not built.

    Returns
    -------
    dict
        ``id``, ``key``, ``cycles``, ``ideal_cycles``, ``cycles_what`` and, unless the key was known
        (``cached``), ``status`` (``ok``; ``unfit``: the part is too small; ``failed``: a tool failed),
        the figures of :func:`figures_of`, ``error``, ``seconds``, the build ``report`` and ``files``
        (name: text of ``build.md`` and the logs' tails). A tool's failure is a result, not retried;
        anything else raises, for the scheduler to retry once.
    """
    from eiex.sim.engines import get_engine
    from eiex.sim.tools.build import run_rtlil_build, tool_versions, top_rtlil

    engine = get_engine(point.engine)
    try:
        resized, hw = engine.resize(image, **dict(point.knobs))
        cycles = engine.throughput(resized, hw, inputs)
    except EiexError as e:  # the image cannot take this point's knobs: nothing to retry
        return {"id": point.id, "key": None, "cached": False, "status": "failed", "error": str(e)}
    text, top = top_rtlil(engine.component(hw, None))
    speed = speed if speed is not None else (part.speeds[0] if part.speeds else None)
    key = cache_key(text, part, speed, freq, point.seed, tool_versions(("amaranth", "yosys", part.nextpnr)))
    result = {"id": point.id, "key": key, "cycles": cycles["cycles"], "ideal_cycles": cycles.get("ideal_cycles"),
              "cycles_what": cycles["what"], "cached": key in known}
    if result["cached"]:
        return result

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"eiex-explore-{point.id}-") as tmp:
        out = Path(tmp) / "build"
        description = {"engine": point.engine, **point.params}
        try:
            report = run_rtlil_build(text, top, part, out, speed=speed, freq=freq, seed=point.seed,
                                     description=description, cycles=cycles, log=log or (lambda line: None))
            error = None
        except EiexError as e:
            if not (out / "build.json").exists():  # Yosys failed: no folder was written
                return {**result, "status": "failed", "error": str(e),
                        "seconds": round(time.perf_counter() - started, 1)}
            report = json.loads((out / "build.json").read_text())
            # the message names the worker's temporary folder; the point's files go to points/<id>
            error = (f"does not fit {part.name} ({part.device}): {'; '.join(report['overflow'])}"
                     if report.get("overflow") else f"nextpnr failed: {report.get('error', e)}")
        files = {name: _tail(out / name) for name in ("build.md", "nextpnr.log", "yosys.log")}
    status = "ok" if report["fit"] else "unfit" if report.get("overflow") else "failed"
    return {**result, "status": status, **figures_of(report), "error": error,
            "seconds": round(time.perf_counter() - started, 1), "report": report,
            "files": {name: text for name, text in files.items() if text is not None}}

