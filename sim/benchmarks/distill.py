"""Knowledge distillation of the binarized MLP: how much of the gap to its float twin it closes.

``bnn-mlp`` (784-512-512-10, XNOR-Net) is trained on MNIST-5k (4,000 training digits, the 1,000
held-out ones measured) with its default schedule, and again as the student of a teacher: its own
float twin and, if given, another network's output folder (a ``compress`` output, say LeNet-5).
Each is also run with every training digit moved by up to 2 pixels per axis per epoch; a teacher
then judges each shifted digit as the student sees it (:class:`LiveDistillation`). Every run has
the same seed and one torch thread; the accuracy is the folded integer network's (the engine's
arithmetic).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

#: the largest random shift of a training digit, in pixels per axis
SHIFT = 2


def schedules():
    """The default schedule's stages, and the same with random shifts."""
    from dataclasses import replace

    from eiex.sw.binarize.pipeline import BINARY_SCHEDULE

    return {"as is": BINARY_SCHEDULE, f"shifted by up to {SHIFT} px": tuple(replace(c, shift=SHIFT)
                                                                          for c in BINARY_SCHEDULE)}


def run_distillation(out: Path, *, teachers=("float",), dataset: str = "mnist5k", seed: int = 0,
                     temperature: float = 4.0, alpha: float = 0.9, log=print) -> dict:
    """Every (training digits, teacher or none) pair; writes ``distill.json`` and ``distill.md``."""
    from eiex.sw.binarize.pipeline import binarize
    from eiex.sw.teacher import Distill

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for digits, schedule in schedules().items():
        for teacher in (None, *teachers):
            log(f"== bnn-mlp, digits {digits}, teacher {teacher or 'none'}")
            started = time.perf_counter()
            result = binarize("bnn-mlp", dataset, seed=seed, threads=1, binary_schedule=schedule,
                              distill=None if teacher is None else Distill(teacher, temperature, alpha), log=log)
            r = result.report
            rows.append({"digits": digits, "teacher": teacher, "float_accuracy": r["float_accuracy"],
                         "binary_accuracy": r["binary_accuracy"], "gap_pp": r["accuracy_loss_pp"],
                         "seconds": round(time.perf_counter() - started, 1)})
            log(f"binary {r['binary_accuracy']:.2%}, float twin {r['float_accuracy']:.2%}, "
                f"gap {r['accuracy_loss_pp']:.1f} pp")
    summary = {"model": "bnn-mlp", "dataset": dataset, "seed": seed, "temperature": temperature, "alpha": alpha,
               "rows": rows}
    (out / "distill.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "distill.md").write_text(markdown(summary))
    return summary


def markdown(summary: dict) -> str:
    lines = ["| training digits | teacher | binarized (folded) | float twin | gap | narrowed by | time |",
             "|---|---|---|---|---|---|---|"]
    plain = {row["digits"]: row["gap_pp"] for row in summary["rows"] if row["teacher"] is None}
    for row in summary["rows"]:
        narrowed = "" if row["teacher"] is None else f"{plain[row['digits']] - row['gap_pp']:+.1f} pp"
        lines.append(f"| {row['digits']} | {row['teacher'] or 'none'} | {row['binary_accuracy']:.2%} | "
                     f"{row['float_accuracy']:.2%} | {row['gap_pp']:.1f} pp | {narrowed} | {row['seconds']:.0f} s |")
    return "\n".join(lines) + "\n"
