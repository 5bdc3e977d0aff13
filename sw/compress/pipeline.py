"""The Deep Compression pipeline: train, prune and retrain, share weights, Huffman-code, account.

``compress()`` runs it in memory and returns everything; ``write_outputs()`` writes the folder
(report.json, report.md, dense.npz, compressed.npz, sensitivity.csv and the plots).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eiex.sw.compress import plots

from eiex.sw.compress import report
from eiex.sw.atomic import atomic_output_dir, check_output_dir
from eiex.sw.data import InputNorm, load_dataset
from eiex.sw.models import build_model
from eiex.sw.npz import read_npz
from eiex.sw.compress.pruning import Masks, check_finite, filter_prune, iterative_prune, sensitivity
from eiex.sw.compress.recipe import Recipe, load_recipe
from eiex.sw.compress.sharing import SharedLayer, finetune_centroids, share_weights
from eiex.sw.compress.storage import ModelStorage, account_layer
from eiex.sw.train import StageClock, Tensors, accuracy, fit, seed_everything


@dataclass
class CompressResult:
    report: dict
    dense: dict[str, np.ndarray]
    compressed: dict[str, np.ndarray]
    shared: dict[str, SharedLayer]
    storage: ModelStorage
    sensitivity: dict[str, list[float]]
    recipe: Recipe
    seconds: dict[str, float] = field(default_factory=dict)


def compress(
    model_name: str,
    dataset_name: str = "mnist5k",
    *,
    data_dir: str | Path | None = None,
    recipe_path: str | Path | None = None,
    seed: int = 0,
    dense_weights: str | Path | None = None,
    log=print,
) -> CompressResult:
    """Compress ``model_name`` on ``dataset_name``; ``dense_weights`` (npz) skips dense training."""
    seed_everything(seed)  # before the model exists: its initial weights come from the seed
    model = build_model(model_name)
    recipe = load_recipe(model_name, model, recipe_path)
    initial = read_npz(dense_weights) if dense_weights is not None else None
    dataset = load_dataset(dataset_name, data_dir)
    norm = InputNorm.fit(dataset.train.images)
    train, test = Tensors.of(dataset.train, norm), Tensors.of(dataset.test, norm)
    clock = StageClock()
    lap, seconds = clock.lap, clock.seconds

    if initial is not None:
        model.load_npz(initial, str(dense_weights))
        log(f"dense weights from {dense_weights}")
    else:
        fit(model, train, recipe.train, seed=seed, desc="dense")
        check_finite(model, "dense training")
    dense = model.state_npz()
    dense_accuracy = accuracy(model, test)
    log(f"dense accuracy {dense_accuracy:.2%} on {len(test.y)} held-out digits")
    lap("dense")

    curves = sensitivity(model, test, list(recipe.sensitivity))
    lap("sensitivity")

    masks = Masks.dense(model)
    filters = {n: l.filters for n, l in recipe.layers.items() if l.filters > 0}
    if filters:
        masks = filter_prune(model, filters, masks)
    masks = iterative_prune(
        model, {n: l.quality for n, l in recipe.layers.items()}, train, recipe.prune,
        steps=recipe.prune_steps, seed=seed, masks=masks,
    )
    check_finite(model, "pruning")
    pruned_accuracy = accuracy(model, test)
    kept = masks.kept_fraction()
    log(f"pruned accuracy {pruned_accuracy:.2%}, kept " + ", ".join(f"{n} {k:.1%}" for n, k in kept.items()))
    lap("prune")

    shared = share_weights(model, {n: l.bits for n, l in recipe.layers.items()}, recipe.share_method)
    shared_accuracy = accuracy(model, test)
    shared = finetune_centroids(model, shared, masks, train, recipe.share, seed=seed)
    check_finite(model, "trained quantization")
    compressed = model.state_npz()
    compressed_accuracy = accuracy(model, test)
    log(f"shared-weight accuracy {shared_accuracy:.2%}, after fine-tuning {compressed_accuracy:.2%}")
    lap("share")

    storage = ModelStorage([
        account_layer(name, shared[name].codes, layer.bits, layer.index_bits,
                      n_biases=len(compressed[f"b{l}"]), huffman_max_len=recipe.huffman_max_len)
        for l, (name, layer) in enumerate(recipe.layers.items())
    ])
    lap("huffman")

    result = CompressResult(
        report={}, dense=dense, compressed=compressed, shared=shared, storage=storage,
        sensitivity=curves, recipe=recipe, seconds=seconds,
    )
    result.report = report.build_report(
        result, model=model, model_name=model_name, dataset=dataset.name, seed=seed, norm=norm,
        test_samples=len(test.y), accuracies={
            "dense_accuracy": dense_accuracy, "pruned_accuracy": pruned_accuracy,
            "shared_accuracy": shared_accuracy, "compressed_accuracy": compressed_accuracy,
        },
    )
    log(f"compression {storage.dense_bytes} -> {storage.pqh_bytes} bytes: "
        f"{result.report['compression_ratio']:.1f}x (pruning + quantization alone "
        f"{result.report['compression_ratio_pq']:.1f}x)")
    return result


def write_outputs(result: CompressResult, folder: Path) -> None:
    """Write every output file into ``folder`` (an atomic temporary folder, normally)."""
    np.savez(folder / "dense.npz", **result.dense)
    np.savez(folder / "compressed.npz", **result.compressed)
    (folder / "report.json").write_text(json.dumps(result.report, indent=2) + "\n")
    (folder / "report.md").write_text(report.markdown(result.report))
    report.write_sensitivity_csv(folder / "sensitivity.csv", result.recipe.sensitivity, result.sensitivity)
    plots.weight_distributions(folder / "weights.png", result.dense, result.shared)
    plots.kept_fraction(folder / "kept.png", result.storage)
    plots.sensitivity_curves(folder / "sensitivity.png", result.recipe.sensitivity, result.sensitivity)


def run_compress(out: Path, force: bool = False, **kwargs) -> CompressResult:
    """``compress`` then ``write_outputs``, atomically into ``out``."""
    check_output_dir(out, force)
    result = compress(**kwargs)
    with atomic_output_dir(out, force) as folder:
        write_outputs(result, folder)
    return result

