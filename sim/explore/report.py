"""The report of a design-space sweep: which points are worth building, as a table, a figure and a text.

A sweep gives one record per design point (engine, its parameters, the part, whether it fit, its
utilization, Fmax and the throughput that Fmax gives with the cycle model's cycle count). From the
records this module computes, without running any tool:

* :func:`pareto_front`: the points no other point beats on both size (LUTs) and speed (inferences/s);
* :func:`recommend`: the point to pick for each budget (smallest, fastest, best inferences/s per LUT);
* :func:`write_csv`: ``explore.csv``, one row per point;
* :func:`plot_pareto`: the PNG of inferences/s against LUTs, front highlighted, unfit and failed points shown;
* :func:`markdown`: ``explore.md``, the summary, the recommendations and every point.

Only points with status ``"ok"`` (placed and routed) and both a LUT count and a rate are measured;
``"unfit"`` and ``"failed"`` points are shown but never ranked.
"""

from __future__ import annotations

import csv
import io
import math
import textwrap
from pathlib import Path

import numpy as np

from eiex.sim.explore.evaluate import SHORT
from eiex.sw.atomic import atomic_write

#: the columns of ``explore.csv``; the design parameters (union over the records, sorted) go after ``engine``
COLUMNS = ("id", "engine", "part", "speed", "status", "cached", "cycles", "ideal_cycles", "luts", "ffs", "brams",
           "dsps", "lut_percent", "bram_percent", "fmax_mhz", "inferences_per_s", "inferences_per_s_per_lut",
           "pareto", "seconds", "error")
#: size of the Pareto figure in inches, and its resolution: the PNG is ``FIGURE_INCHES * DPI`` pixels
FIGURE_INCHES = (9.0, 6.0)
DPI = 100

_STATUS_ORDER = {"ok": 0, "unfit": 1, "failed": 2}


def _measured(record: dict) -> bool:
    """Whether a record takes part in the ranking: placed and routed, with a LUT count and a rate."""
    return (record.get("status") == "ok" and record.get("luts") is not None
            and record.get("inferences_per_s") is not None)


def _per_lut(record: dict) -> float:
    stored = record.get("inferences_per_s_per_lut")
    return stored if stored is not None else record["inferences_per_s"] / record["luts"]


def pareto_front(records: list[dict]) -> list[bool]:
    """For each record, whether it is on the Pareto front of (fewest ``luts``, most ``inferences_per_s``).

    A measured point is dominated when another measured point has as few or fewer LUTs and as high or
    higher a rate, and is strictly better in one of the two; points that tie on both are all on the
    front. Unfit, failed and unmeasured records are never on it.
    """
    index = [i for i, r in enumerate(records) if _measured(r)]
    front = [False] * len(records)
    if not index:
        return front
    luts = np.array([records[i]["luts"] for i in index], dtype=float)
    rate = np.array([records[i]["inferences_per_s"] for i in index], dtype=float)
    # [q, p]: does q dominate p (a few hundred points: the n x n matrices are small)
    no_worse = (luts[:, None] <= luts[None, :]) & (rate[:, None] >= rate[None, :])
    better = (luts[:, None] < luts[None, :]) | (rate[:, None] > rate[None, :])
    dominated = (no_worse & better).any(axis=0)
    for i, is_dominated in zip(index, dominated):
        front[i] = not bool(is_dominated)
    return front


def recommend(records: list[dict]) -> dict:
    """The measured point to pick for each budget, ``{}`` when none fit.

    ``"smallest"``: fewest LUTs (tie: higher rate); ``"fastest"``: highest inferences/s (tie: fewer
    LUTs); ``"best_per_lut"``: highest inferences/s per LUT (tie: fewer LUTs). Remaining ties go to the
    first id in sort order, so the answer does not depend on the order of the records.
    """
    measured = [r for r in records if _measured(r)]
    if not measured:
        return {}
    return {"smallest": min(measured, key=lambda r: (r["luts"], -r["inferences_per_s"], r["id"])),
            "fastest": min(measured, key=lambda r: (-r["inferences_per_s"], r["luts"], r["id"])),
            "best_per_lut": min(measured, key=lambda r: (-_per_lut(r), r["luts"], r["id"]))}


def label(record: dict) -> str:
    """The design parameters of a point, compactly: ``{"n_pe": 8, "queue_depth": 8}`` is ``"pe8 q8"``.

    Parameters without a short name are ``name=value``; parameters set to ``None`` (no seed) are left out.
    """
    parts = []
    for key, value in (record.get("params") or {}).items():
        if value is None:
            continue
        parts.append(f"{SHORT[key]}{value}" if key in SHORT else f"{key}={value}")
    return " ".join(parts)


def csv_columns(records: list[dict]) -> list[str]:
    """:data:`COLUMNS` with the parameter names of the records (union, sorted) after ``engine``."""
    params = sorted({key for r in records for key in (r.get("params") or {})} - set(COLUMNS))
    at = COLUMNS.index("engine") + 1
    return [*COLUMNS[:at], *params, *COLUMNS[at:]]


def write_csv(records: list[dict], path: str | Path) -> None:
    """``explore.csv``: one row per point in :func:`csv_columns` order, written atomically.

    ``None`` is an empty cell; ``cached`` and ``pareto`` are ``1`` or ``0``.
    """
    columns = csv_columns(records)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    for record, on_front in zip(records, pareto_front(records)):
        row = {**(record.get("params") or {}), **{c: record.get(c) for c in COLUMNS if c in record}}
        row["cached"] = int(bool(record.get("cached")))
        row["pareto"] = int(on_front)
        writer.writerow({c: "" if row.get(c) is None else row[c] for c in columns})
    atomic_write(path, text.getvalue().encode())


def plot_pareto(records: list[dict], path: str | Path, title: str) -> None:
    """The PNG of inferences/s against LUTs, written atomically to ``path``.

    Measured points are dots, the Pareto front a line with its own markers, every point labelled with
    :func:`label`. Unfit points are crosses at their LUT count on the bottom of the axis (they have no
    rate); failed points, with no coordinates at all, are listed in a note under the axes. With no
    measured point the figure still gets written, saying so.
    """
    # matplotlib is slow to import; only the figure needs it
    from matplotlib.figure import Figure
    from matplotlib.ticker import StrMethodFormatter

    fig = Figure(figsize=FIGURE_INCHES, dpi=DPI)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel("LUTs")
    ax.set_ylabel("inferences/s")
    ax.grid(True, alpha=0.3)

    measured = [r for r in records if _measured(r)]
    front = sorted((r for r, on in zip(records, pareto_front(records)) if on),
                   key=lambda r: (r["luts"], -r["inferences_per_s"]))
    unfit = [r for r in records if r.get("status") == "unfit" and r.get("luts") is not None]
    unplaced = [r for r in records if not _measured(r) and r not in unfit]

    if measured:
        ax.scatter([r["luts"] for r in measured], [r["inferences_per_s"] for r in measured], s=18,
                   color="tab:blue", label="placed and routed", zorder=2)
        ax.plot([r["luts"] for r in front], [r["inferences_per_s"] for r in front], "-D", color="tab:red",
                markersize=6, markerfacecolor="none", label="Pareto front", zorder=3)
        for r in measured:
            ax.annotate(label(r), (r["luts"], r["inferences_per_s"]), xytext=(4, 4), textcoords="offset points",
                        fontsize=7)
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    else:
        no_fit = "no point fits the part" if unfit else "no point was built"
        ax.text(0.5, 0.5, no_fit, transform=ax.transAxes, ha="center", va="center", fontsize=14, color="gray")
        ax.set_yticks([])

    # the rate axis starts at 0, where the unfit points (no rate) sit
    ax.set_ylim(bottom=0, top=max([r["inferences_per_s"] for r in measured], default=1) * 1.1)
    if unfit:
        ax.scatter([r["luts"] for r in unfit], [0] * len(unfit), marker="x", s=40, color="tab:gray",
                   label="does not fit", clip_on=False, zorder=3)
        for r in unfit:
            ax.annotate(label(r), (r["luts"], 0), xytext=(4, 4), textcoords="offset points", fontsize=7,
                        color="tab:gray")
    all_luts = [r["luts"] for r in measured + unfit]
    if all_luts and min(all_luts) > 0 and max(all_luts) > 10 * min(all_luts):
        ax.set_xscale("log")
    if measured or unfit:
        ax.legend(loc="best", fontsize=8)

    notes = [f"{status}: " + ", ".join(r["id"] for r in unplaced if r.get("status") == status)
             for status in ("failed", "unfit") if any(r.get("status") == status for r in unplaced)]
    if notes:
        note = "\n".join(textwrap.fill(n, 140) for n in notes)
        fig.text(0.01, 0.01, note, fontsize=7, va="bottom", ha="left", color="tab:red")
        fig.subplots_adjust(bottom=0.1 + 0.025 * note.count("\n"))

    data = io.BytesIO()
    fig.savefig(data, format="png")
    atomic_write(path, data.getvalue())


def _count(value) -> str:
    return "" if value is None else f"{value:,.0f}"


def _mhz(value) -> str:
    return "" if value is None else f"{value:.1f}"


def _cycles(value) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _significant(value, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, without an exponent: 1234.5 is ``1,230``, 0.012345 ``0.0123``."""
    if value is None:
        return ""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    magnitude = math.floor(math.log10(abs(value)))
    rounded = round(value, digits - 1 - magnitude)
    decimals = max(0, digits - 1 - magnitude)
    return f"{rounded:,.{decimals}f}"


def _recommendation(name: str, r: dict) -> str:
    luts = f"{_count(r['luts'])} LUTs"
    if r.get("lut_percent") is not None:
        luts += f" ({r['lut_percent']:.0f}% of the part)"
    params = f" ({label(r)})" if label(r) else ""
    figures = [luts, f"{_count(r.get('brams')) or '?'} BRAM", f"{_mhz(r.get('fmax_mhz')) or '?'} MHz",
               f"{_count(r['inferences_per_s'])} inferences/s", f"{_significant(_per_lut(r))} inferences/s per LUT"]
    return f"- **{name}**: `{r['id']}`{params}: " + ", ".join(figures) + "."


def markdown(records: list[dict], meta: dict) -> str:
    """``explore.md``: the summary of the sweep, the recommendations, every point, and what went wrong.

    ``meta`` holds the sweep's settings: ``engine``, ``part``, ``device``, ``speed``, ``images``
    (the image swept), ``workers``, ``scheduler``, ``seconds`` (wall time), ``built``
    and ``cached`` (points rebuilt and read from the cache); optionally ``plot``, the path of the
    Pareto figure relative to the report, to show it. The status counts come from the records.
    """
    statuses = [r.get("status") for r in records]
    speed = f", speed grade {meta['speed']}" if meta.get("speed") is not None else ""
    summary = (f"{len(records)} design points of {meta.get('engine')} on {meta.get('part')} "
               f"({meta.get('device')}{speed}): {statuses.count('ok')} placed and routed, "
               f"{statuses.count('unfit')} too big for the part, {statuses.count('failed')} failed. "
               f"{meta.get('built', 0)} built and {meta.get('cached', 0)} read from the cache")
    if meta.get("seconds") is not None:
        summary += f" in {meta['seconds']:,.1f} s"
    if meta.get("workers") is not None:
        summary += f" on {meta['workers']} Dask workers"
    if meta.get("scheduler"):
        summary += f" ({meta['scheduler']})"
    summary += "."
    if meta.get("images"):
        summary += f" The network: image `{meta['images']}`; cycles per inference from its cycle model."
    lines = [f"# Design-space exploration: {meta.get('engine')} on {meta.get('part')} ({meta.get('device')})", "",
             summary, ""]

    lines += ["## Recommendations", ""]
    picks = recommend(records)
    if picks:
        lines += [_recommendation("Smallest", picks["smallest"]), _recommendation("Fastest", picks["fastest"]),
                  _recommendation("Best per LUT", picks["best_per_lut"])]
    else:
        lines.append("No point fits the part: nothing to recommend.")
    lines.append("")
    if meta.get("plot"):
        lines += [f"![inferences/s against LUTs]({meta['plot']})", ""]

    lines += ["## All points", "",
              "| id | params | status | LUTs | BRAM | Fmax MHz | cycles | inferences/s | per LUT | pareto | cached |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    on_front = dict(zip(map(id, records), pareto_front(records)))
    ordered = sorted(records, key=lambda r: (_STATUS_ORDER.get(r.get("status"), 3), r.get("luts") is None,
                                             r.get("luts") or 0, r["id"]))
    for r in ordered:
        per_lut = _significant(_per_lut(r)) if _measured(r) else ""
        lines.append(f"| {r['id']} | {label(r)} | {r.get('status')} | {_count(r.get('luts'))} | "
                     f"{_count(r.get('brams'))} | {_mhz(r.get('fmax_mhz'))} | {_cycles(r.get('cycles'))} | "
                     f"{_count(r.get('inferences_per_s'))} | {per_lut} | {'yes' if on_front[id(r)] else ''} | "
                     f"{'yes' if r.get('cached') else ''} |")
    lines.append("")

    wrong = [r for r in ordered if r.get("status") in ("unfit", "failed")]
    if wrong:
        lines += ["## Failed and unfit points", ""]
        for r in wrong:
            why = (r.get("error") or "; ".join(r.get("overflow") or []) or "no error recorded").rstrip(".")
            log = f" Log: `{r['log']}`." if r.get("log") else ""
            lines.append(f"- `{r['id']}` ({r['status']}): {why}.{log}")
        lines.append("")
    return "\n".join(lines)
