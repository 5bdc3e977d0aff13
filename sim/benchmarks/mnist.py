"""Deep Compression's MNIST rows on the real MNIST test set (10,000 digits), beside the paper's.

Han et al. (ICLR 2016, Table 1) compressed LeNet-300-100 40x (top-1 error 1.64% -> 1.58%) and
LeNet-5 39x (0.80% -> 0.74%). :func:`run_mnist` compresses both built-in models on full MNIST
(60,000 training digits, the official test set held out) with their built-in recipes (the
``<model>@mnist.toml`` tuning over ``<model>.toml``), seed 0, and reports the ratio with eiex's
storage accounting (entries, pointers, codebooks, float32 biases and Huffman tables), the test
error, and the wall time of each run. Each run's output folder is kept beside ``mnist.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

#: the paper's figures: compression ratio, error of the dense baseline and of the compressed model
PAPER = {"lenet300": {"ratio": 40.0, "dense_error": 0.0164, "error": 0.0158},
         "lenet5": {"ratio": 39.0, "dense_error": 0.0080, "error": 0.0074}}
MODELS = tuple(PAPER)


def mnist_keys(models=MODELS) -> tuple[str, ...]:
    return tuple(f"{m}_mnist_{what}" for m in models for what in ("ratio", "error", "seconds"))


def compress_on_mnist(model: str, out: Path, *, seed: int = 0, recipe: dict | None = None, log=print) -> dict:
    """One model compressed on full MNIST into ``out / model``; its row of the table. ``recipe``
    overrides parts of the built-in recipe (the tests shorten the training with it)."""
    from eiex.sw.compress.pipeline import compress

    started = time.perf_counter()
    result = compress(model, "mnist", seed=seed, recipe_path=recipe, log=log)
    seconds = time.perf_counter() - started
    result.save(Path(out) / model, force=True)
    r = result.report
    return {"model": model, "ratio": r["compression_ratio"], "ratio_pq": r["compression_ratio_pq"],
            "dense_error": 1.0 - r["dense_accuracy"], "error": 1.0 - r["compressed_accuracy"],
            "kept_fraction": r["kept_fraction"], "compressed_bytes": r["compressed_bytes"], "seconds": seconds,
            "paper": PAPER[model]}


def markdown(rows: list[dict]) -> str:
    lines = ["| model | eiex ratio (P+Q) | eiex error dense -> compressed | paper ratio | paper error | kept | "
             "wall time |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        p = row["paper"]
        lines.append(f"| {row['model']} | {row['ratio']:.1f}x ({row['ratio_pq']:.1f}x) | "
                     f"{100 * row['dense_error']:.2f}% -> {100 * row['error']:.2f}% | {p['ratio']:.0f}x | "
                     f"{100 * p['dense_error']:.2f}% -> {100 * p['error']:.2f}% | {100 * row['kept_fraction']:.1f}% | "
                     f"{row['seconds'] / 60:.1f} min |")
    return "\n".join(lines) + "\n"


def run_mnist(out, models=MODELS, *, seed: int = 0, recipe: dict | None = None, log=print) -> dict:
    """Compress ``models`` on full MNIST into ``out`` (a folder that exists); ``mnist.json`` and
    ``mnist.md`` there. Returns the headline keys (``<model>_mnist_ratio|error|seconds``) and rows."""
    out = Path(out)
    rows = []
    for model in models:
        log(f"== {model} on full MNIST (seed {seed})")
        rows.append(compress_on_mnist(model, out, seed=seed, recipe=recipe, log=log))
    result = {f"{row['model']}_mnist_{what}": row[what] for row in rows for what in ("ratio", "error", "seconds")}
    result["mnist_rows"] = rows
    (out / "mnist.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "mnist.md").write_text(markdown(rows))
    return result
