"""report.json and report.md of a compression run, with Deep Compression's Table 2 per layer."""

from __future__ import annotations

import csv
from pathlib import Path

from eiex.sw.data import InputNorm
from eiex.sw.models import CompressibleModel


def build_report(result, *, model: CompressibleModel, model_name: str, dataset: str, seed: int,
                 norm: InputNorm, test_samples: int, accuracies: dict, folded: list[str] = ()) -> dict:
    storage = result.storage
    layers = []
    for l, (name, stored) in enumerate(zip(model.layers(), storage.layers)):
        layer_recipe = result.recipe.layers[name]
        layers.append({
            "name": name,
            "weight_key": f"w{l}",
            "bias_key": f"b{l}",
            "shape": list(result.compressed[f"w{l}"].shape),
            "kept_fraction": stored.kept / stored.weights,
            "quality": layer_recipe.quality,
            "filters_removed": layer_recipe.filters,
            "shared_values": int((result.shared[name].codebook[1:] != 0).sum()),
            **stored.to_json(),
        })
    return {
        "model": model_name,
        "dataset": dataset,
        "seed": seed,
        "test_split": f"held-out, {test_samples} samples",
        "input": norm.to_json(),
        "architecture": model.architecture,
        "folded_batch_norms": list(folded),
        **accuracies,
        "accuracy_loss_pp": 100.0 * (accuracies["dense_accuracy"] - accuracies["compressed_accuracy"]),
        "compression_ratio": storage.dense_bytes / storage.pqh_bytes,
        "compression_ratio_pq": storage.dense_bytes / storage.pq_bytes,
        "dense_bytes": storage.dense_bytes,
        "compressed_bytes": storage.pqh_bytes,
        "compressed_bytes_pq": storage.pq_bytes,
        "kept_fraction": storage.kept_fraction,
        "layers": layers,
        "total": storage.total_row(),
        "methods": {k: v for k, v in result.methods.items() if k != "dense_architecture"},
        **({"dense_architecture": result.methods["dense_architecture"]}
           if result.methods.get("dense_architecture") not in (None, model.architecture) else {}),
        "sensitivity": {"pruned_fraction": list(result.recipe.sensitivity), "accuracy": result.sensitivity},
        "recipe": result.recipe.to_json(),
        "seconds": {**result.seconds, "total": sum(result.seconds.values())},
    }


def _table2_line(row: dict) -> str:
    return (
        f"| {row['layer']} | {row['weights']:,} | {row['kept_percent']:.1f}% "
        f"| {row['weight_bits_pq']:.0f} | {row['weight_bits_pqh']:.2f} "
        f"| {row['index_bits_pq']:.0f} | {row['index_bits_pqh']:.2f} "
        f"| {row['share_pq_percent']:.2f}% | {row['share_pqh_percent']:.2f}% |"
    )


def markdown(report: dict) -> str:
    acc = {k: None if report[k] is None else 100.0 * report[k]
           for k in ("dense_accuracy", "pruned_accuracy", "shared_accuracy", "compressed_accuracy")}
    quantizer = report.get("methods", {}).get("quantize", "kmeans")
    lines = [
        f"# Deep Compression of {report['model']} on {report['dataset']}",
        "",
        f"Accuracy on the {report['test_split']} split; seed {report['seed']}.",
        "",
        "| stage | accuracy |",
        "|---|---|",
        f"| dense | {acc['dense_accuracy']:.2f}% |",
        f"| pruned and retrained | {acc['pruned_accuracy']:.2f}% |",
        *([f"| shared weights (k-means) | {acc['shared_accuracy']:.2f}% |"] if acc["shared_accuracy"] is not None
          else []),
        f"| trained quantization ({quantizer}) | {acc['compressed_accuracy']:.2f}% |",
        "",
        f"Size: {report['dense_bytes']:,} bytes dense (float32) -> {report['compressed_bytes_pq']:,} bytes "
        f"pruned and quantized ({report['compression_ratio_pq']:.1f}x) -> {report['compressed_bytes']:,} bytes "
        f"with Huffman coding (**{report['compression_ratio']:.1f}x**). "
        f"{100 * report['kept_fraction']:.1f}% of the weights survive.",
        "",
        "## Per layer (the form of Deep Compression's Table 2)",
        "",
        "Weight and index bits under P+Q+H are averages per stored entry; shares count entries, "
        "pointers, codebooks, biases and Huffman tables against the float32 layer.",
        "",
        "| layer | weights | kept (P) | weight bits (P+Q) | weight bits (P+Q+H) | index bits (P+Q) "
        "| index bits (P+Q+H) | share of original (P+Q) | share of original (P+Q+H) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_table2_line(layer) for layer in report["layers"]]
    lines.append(_table2_line(report["total"]))
    lines += [
        "",
        "## Plots",
        "",
        "- `weights.png`: weight distribution before (dense) and after (shared values marked)",
        "- `kept.png`: fraction of weights kept per layer",
        "- `sensitivity.png` and `sensitivity.csv`: accuracy when one layer alone is pruned, no retraining",
        "",
        "## Run time",
        "",
        "| stage | seconds |",
        "|---|---|",
    ]
    lines += [f"| {stage} | {seconds:.1f} |" for stage, seconds in report["seconds"].items()]
    return "\n".join(lines) + "\n"


def write_sensitivity_csv(path: Path, fractions, curves: dict[str, list[float]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["pruned_fraction", *curves])
        for i, fraction in enumerate(fractions):
            writer.writerow([fraction, *(f"{curves[name][i]:.4f}" for name in curves)])
