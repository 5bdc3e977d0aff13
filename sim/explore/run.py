"""``eiex explore``: a sweep of an image's design points on Dask, and its output folder.

:func:`explore` expands the sweep (:func:`~eiex.sim.explore.evaluate.sweep_points`), runs it
(:func:`~eiex.sim.explore.sweep.run_sweep`) and writes, into a folder that appears whole:

- ``explore.json``: the sweep (engine, image, part, workers, wall time) and one record per point;
- ``explore.csv``: the records as a table; ``pareto.png``: inferences/s against LUTs with the
  Pareto front; ``explore.md``: the best point per budget and every point
  (:mod:`eiex.sim.explore.report`);
- ``points/<id>/``: each built point's ``build.json``, ``build.md`` and the tails of the Yosys and
  nextpnr logs.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Callable

from eiex.sim.explore import report
from eiex.sim.explore.cache import ResultCache
from eiex.sim.explore.evaluate import sweep_points
from eiex.sim.explore.sweep import cluster_name, dask_client, run_sweep, worker_count
from eiex.sw.atomic import atomic_output_dir, check_output_dir

#: the record fields a result carries over unchanged
_CARRIED = ("id", "engine", "params", "status", "cached", "cycles", "ideal_cycles", "luts", "ffs", "brams", "dsps",
            "lut_percent", "bram_percent", "fmax_mhz", "overflow", "error", "seconds")


def record_of(result: dict, part, speed: int | None) -> dict:
    """One row of the sweep (the schema of :mod:`eiex.sim.explore.report`) from a point's result."""
    record = {name: result.get(name) for name in _CARRIED}
    record["overflow"] = record["overflow"] or []
    record.update(part=part.name, device=part.device, speed=result.get("report", {}).get("speed", speed))
    rate = None
    if record["status"] == "ok" and record["fmax_mhz"] and record["cycles"]:
        rate = round(record["fmax_mhz"] * 1e6 / record["cycles"], 1)
    record["inferences_per_s"] = rate
    record["inferences_per_s_per_lut"] = round(rate / record["luts"], 4) if rate and record["luts"] else None
    record["log"] = f"points/{record['id']}" if result.get("files") else None
    return record


def explore(engine: str, image, part, axes: dict[str, list[int]], out: Path, *, seeds: int = 1, inputs=None,
            speed: int | None = None, freq: float = 100.0, scheduler: str | None = None, workers: int | None = None,
            cache: ResultCache | None = None, images: str | None = None, force: bool = False,
            progress: bool = True, log: Callable[[str], None] = print, client=None) -> dict:
    """Sweep ``axes`` (knob: values) of ``image`` on ``part`` and write the folder ``out``.

    ``client``: an existing ``distributed.Client`` to run on instead of ``scheduler`` / ``workers``.
    Returns ``explore.json``'s content."""
    check_output_dir(out, force)
    points = sweep_points(engine, axes, seeds)
    cache = cache if cache is not None else ResultCache()
    started = time.perf_counter()
    with contextlib.nullcontext(client) if client is not None else dask_client(scheduler, workers) as client:
        meta = {"engine": engine, "images": images, "part": part.name, "device": part.device, "speed": speed,
                "freq_mhz": freq, "axes": axes, "seeds": seeds, "workers": worker_count(client),
                "scheduler": cluster_name(client), "cache": str(cache.folder), "plot": "pareto.png"}
        log(f"{len(points)} design points on {meta['workers']} Dask workers ({meta['scheduler']}); "
            f"results cached in {cache.folder}")
        results = run_sweep(client, points, image, part, inputs=inputs, speed=speed, freq=freq, cache=cache,
                            progress=progress)
    records = [record_of(result, part, speed) for result in results]
    meta.update(seconds=round(time.perf_counter() - started, 1), points=len(records),
                built=sum(not r["cached"] and r["status"] != "failed" for r in records),
                cached=sum(bool(r["cached"]) for r in records),
                failed=sum(r["status"] == "failed" for r in records),
                unfit=sum(r["status"] == "unfit" for r in records))
    for record, flag in zip(records, report.pareto_front(records)):
        record["pareto"] = bool(flag)
    content = {"meta": meta, "points": records}
    with atomic_output_dir(out, force) as folder:
        (folder / "explore.json").write_text(json.dumps(content, indent=2) + "\n")
        report.write_csv(records, folder / "explore.csv")
        report.plot_pareto(records, folder / "pareto.png", f"{engine} on {part.name} ({part.device})")
        (folder / "explore.md").write_text(report.markdown(records, meta))
        for result in results:
            if result.get("files"):
                point = folder / "points" / result["id"]
                point.mkdir(parents=True)
                (point / "build.json").write_text(json.dumps(result["report"], indent=2) + "\n")
                for name, text in result["files"].items():
                    (point / name).write_text(text)
    return content

