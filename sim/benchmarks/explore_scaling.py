"""How an ``eiex explore`` sweep scales with Dask workers, and what a larger sweep would cost.

The same sweep runs once per worker count on a fresh, empty cache (so every point is built every
time) and once more on the last run's cache (so nothing is built). From the runs:

- wall time per worker count and the speed-up over the first count;
- the per-point cost: each point's build time (median, and the sum, which is the sweep's work);
- an estimate of the wall time of a larger sweep on ``N`` real workers:
  ``ceil(points / N) * median point cost`` plus the fixed cost of starting the cluster, a
  point's time being what it takes alone on one core (the one-worker run measures that).
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

from eiex.sim.explore.cache import ResultCache
from eiex.sim.explore.run import explore

#: larger sweeps and cluster sizes the estimate is given for
ESTIMATE_POINTS = 200
ESTIMATE_WORKERS = (1, 8, 32, 100)


def scaling(engine: str, image, part, axes: dict, out: Path, *, workers=(1, 2), speed=None, freq: float = 100.0,
            images: str | None = None, log: Callable[[str], None] = print) -> dict:
    """Run the sweep at each worker count (fresh caches), then again from the last cache; the
    result dict written to ``out/scaling.json`` and ``out/scaling.md``."""
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="eiex-scaling-") as tmp:
        for n in [*workers, workers[-1]]:
            rerun = len(runs) == len(workers)
            cache = ResultCache(Path(tmp) / f"cache-{workers[-1] if rerun else n}")
            log(f"sweep on {n} workers{' from the cache' if rerun else ', empty cache'}")
            t = time.perf_counter()
            content = explore(engine, image, part, axes, out / (f"rerun-{n}" if rerun else f"workers-{n}"),
                              speed=speed, freq=freq, workers=n, cache=cache, images=images, force=True,
                              progress=False, log=log)
            wall = time.perf_counter() - t
            points = content["points"]
            runs.append({"workers": n, "rerun": rerun, "wall_s": round(wall, 1), "built": content["meta"]["built"],
                         "cached": content["meta"]["cached"], "failed": content["meta"]["failed"],
                         "point_s": {p["id"]: p["seconds"] for p in points if p["seconds"] is not None}})
            log(f"{n} workers: {wall:.0f} s ({content['meta']['built']} built, {content['meta']['cached']} cached)")
    base = runs[0]
    costs = sorted(base["point_s"].values())
    median = statistics.median(costs) if costs else None
    overhead = runs[-1]["wall_s"]  # the cached rerun: cluster start, elaboration, no build
    result = {
        "engine": engine, "images": images, "part": part.name, "axes": axes, "runs": runs,
        "speedup": {r["workers"]: round(base["wall_s"] / r["wall_s"], 3) for r in runs if not r["rerun"]},
        "point_median_s": median, "work_s": round(sum(costs), 1),
        "estimate": {n: round(math.ceil(ESTIMATE_POINTS / n) * median + overhead, 0) for n in ESTIMATE_WORKERS}
        if median else {},
    }
    (out / "scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "scaling.md").write_text(markdown(result))
    return result


def markdown(result: dict) -> str:
    lines = [f"# Sweep scaling: {result['engine']} on {result['part']}", "",
             "| workers | cache | wall (s) | built | cached | speed-up |", "|---:|---|---:|---:|---:|---:|"]
    for r in result["runs"]:
        speedup = "" if r["rerun"] else f"{result['speedup'][r['workers']]:.2f}x"
        lines.append(f"| {r['workers']} | {'rerun' if r['rerun'] else 'empty'} | {r['wall_s']:,.0f} | {r['built']} | "
                     f"{r['cached']} | {speedup} |")
    if result["point_median_s"]:
        lines += ["", f"Per point (the {result['runs'][0]['workers']}-worker run): median "
                      f"{result['point_median_s']:.0f} s, {result['work_s']:,.0f} s in all.", "",
                  f"Estimated wall time of a {ESTIMATE_POINTS}-point sweep of such points on N real workers "
                  "(ceil(points / N) x median + the cached rerun's fixed cost):", "",
                  "| N | estimate |", "|---:|---:|"]
        lines += [f"| {n} | {s / 3600:.1f} h |" if s >= 3600 else f"| {n} | {s / 60:.0f} min |"
                  for n, s in result["estimate"].items()]
    return "\n".join(lines) + "\n"
