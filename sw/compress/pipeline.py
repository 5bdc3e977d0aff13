"""The Deep Compression pipeline: train, prune and retrain, share weights, Huffman-code, account.

``compress()`` runs it in memory and returns everything; ``write_outputs()`` writes the folder
(report.json, report.md, dense.npz, compressed.npz, sensitivity.csv and the plots).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from eiex.sw.compress import plots

from eiex.sw.compress import report
from eiex.sw.atomic import atomic_output_dir, check_output_dir
from eiex.errors import EiexError
from eiex.sw.data import Dataset, InputNorm, load_dataset
from eiex.sw.models import CompressibleModel, build_model
from eiex.sw.compress.pruning import Masks, check_finite, filter_prune, iterative_prune, sensitivity
from eiex.sw.compress.recipe import Recipe, load_recipe
from eiex.sw.compress.sharing import SharedLayer, finetune_centroids, share_weights
from eiex.sw.compress.storage import ModelStorage, account_layer
from eiex.sw.train import StageClock, Tensors, accuracy, fit, seed_everything
from eiex.sw.user_model import TracedModel, is_model_file, load_model_function


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

    def save(self, out: str | Path, force: bool = False) -> Path:
        """Write the output folder ``eiex compress`` writes, whole or not at all."""
        with atomic_output_dir(out, force) as folder:
            write_outputs(self, folder)
        return Path(out)


def resolve_model(model) -> tuple[CompressibleModel, str]:
    """A built-in name, ``FILE.py:FUNCTION`` or a ``torch.nn.Module``, as a compressible model and
    the name its report gives it."""
    if isinstance(model, CompressibleModel):
        return model, type(model).__name__.lower()
    if isinstance(model, nn.Module):
        return TracedModel(model, type(model).__name__), type(model).__name__
    if isinstance(model, str) and is_model_file(model):
        return TracedModel(load_model_function(model), model), model
    if isinstance(model, str):
        return build_model(model), model
    raise EiexError(f"model must be a built-in name, FILE.py:FUNCTION or a torch.nn.Module, not {type(model).__name__}")


def check_fits(model: CompressibleModel, name: str, dataset: Dataset, sample: torch.Tensor) -> None:
    """One forward pass on one input: the model must take the data and score every class."""
    model.eval()
    try:
        with torch.no_grad():
            out = model(sample)
    except Exception as e:  # shape errors surface as RuntimeError, but a user's forward may raise anything
        raise EiexError(f"{name} cannot run on the dataset's inputs of shape {tuple(sample.shape)}: "
                        f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise EiexError(f"{name} returns {shape} for one input; it must return (batch, classes) scores")
    if out.shape[1] < dataset.n_classes:
        raise EiexError(f"{name} scores {out.shape[1]} classes but {dataset.name} has labels up to "
                        f"{dataset.n_classes - 1}")


def compress(
    model_name="lenet300",
    dataset_name: str | Dataset = "mnist5k",
    *,
    data_dir: str | Path | None = None,
    recipe_path: str | Path | dict | None = None,
    seed: int = 0,
    dense_weights: str | Path | None = None,
    log=print,
) -> CompressResult:
    """Compress ``model_name`` (a built-in name, ``FILE.py:FUNCTION`` or a ``torch.nn.Module``) on
    ``dataset_name`` (a name, an npz path or a :class:`Dataset`); ``dense_weights`` (a state_dict
    file or an npz of eiex's keys) skips dense training."""
    dataset = dataset_name if isinstance(dataset_name, Dataset) else load_dataset(dataset_name, data_dir)
    seed_everything(seed)  # before the model exists: its initial weights come from the seed
    model, model_name = resolve_model(model_name)
    recipe = load_recipe(model_name, model, recipe_path, dataset.name)
    norm = InputNorm.fit(dataset.train.images)
    train, test = Tensors.of(dataset.train, norm), Tensors.of(dataset.test, norm)
    check_fits(model, model_name, dataset, test.x[:1])
    clock = StageClock()
    lap, seconds = clock.lap, clock.seconds

    if dense_weights is not None:
        model.load_state_file(dense_weights)
        log(f"dense weights from {dense_weights}")
    else:
        fit(model, train, recipe.train, seed=seed, desc="dense")
        check_finite(model, "dense training")
    dense = model.state_npz()
    dense_accuracy = accuracy(model, test)
    log(f"dense accuracy {dense_accuracy:.2%} on {len(test.y)} held-out samples")
    folded = model.fold_batch_norms() if isinstance(model, TracedModel) else []
    if folded:
        log(f"batch norm folded into the layers before it ({', '.join(folded)}): "
            f"accuracy {accuracy(model, test):.2%}")
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
        result, model=model, model_name=model_name, dataset=dataset.name, seed=seed, norm=norm, folded=folded,
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
    """``compress`` then ``save``; an existing ``out`` is refused before training."""
    check_output_dir(out, force)
    result = compress(**kwargs)
    result.save(out, force)
    return result
