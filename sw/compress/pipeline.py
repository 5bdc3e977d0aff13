"""The Deep Compression pipeline: train, prune and retrain, share weights, Huffman-code, account.

``compress()`` runs it in memory and returns everything; ``write_outputs()`` writes the folder
(report.json, report.md, dense.npz, compressed.npz, sensitivity.csv and the plots).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
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
from eiex.sw.compress.storage import FLOAT_BITS, ModelStorage, account_layer
from eiex.sw.compress.methods.distill import Distillation
from eiex.sw.compress.methods.lowrank import factorize, rank_for_error, saves_storage
from eiex.sw.compress.methods.neurons import l1_penalty, remove_dead_neurons
from eiex.sw.compress.mlp import SequentialMlp, as_mlp, check_mlp
from eiex.sw.compress.quantize import quantize
from eiex.sw.teacher import OWN_TEACHERS, resolve_teacher
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
    #: what the run did beyond Deep Compression (the report's ``methods``)
    methods: dict = field(default_factory=dict)
    #: each layer's weights as pruning started (for the plots)
    before_pruning: dict[str, np.ndarray] = field(default_factory=dict)
    #: the pruned (and retrained) weights before quantization, ``w0, b0, ...`` (not written to disk)
    pruned: dict[str, np.ndarray] = field(default_factory=dict)

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
    recipe_overrides: dict | None = None,
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
    recipe = load_recipe(model_name, model, recipe_path, dataset.name, overrides=recipe_overrides)
    norm = InputNorm.fit(dataset.train.images)
    train, test = Tensors.of(dataset.train, norm), Tensors.of(dataset.test, norm)
    check_fits(model, model_name, dataset, test.x[:1])
    if recipe.lowrank:
        check_mlp(model, model_name, "low-rank factorization")
    if recipe.sparsity.remove_neurons:
        check_mlp(model, model_name, "neuron removal")
    clock = StageClock()
    lap, seconds = clock.lap, clock.seconds

    teacher = recipe.distill.teacher
    loss = distillation(recipe, teacher, train, dataset, log=log) if teacher and teacher not in OWN_TEACHERS else None
    if dense_weights is not None:
        model.load_state_file(dense_weights)
        log(f"dense weights from {dense_weights}")
    else:
        fit(model, train, recipe.train, seed=seed, desc="dense", loss=loss, penalty=l1_penalty_of(model, recipe))
        check_finite(model, "dense training")
    dense = model.state_npz()
    dense_architecture = model.architecture
    dense_accuracy = accuracy(model, test)
    log(f"dense accuracy {dense_accuracy:.2%} on {len(test.y)} held-out samples")
    folded = model.fold_batch_norms() if isinstance(model, TracedModel) else []
    if folded:
        log(f"batch norm folded into the layers before it ({', '.join(folded)}): "
            f"accuracy {accuracy(model, test):.2%}")
    if teacher in OWN_TEACHERS:
        loss = distillation(recipe, teacher, train, dataset, own=model, log=log)
    lap("dense")

    ranks = {}
    if recipe.lowrank:
        model, recipe, ranks = factorize_layers(model, model_name, recipe)
        log("low-rank factorization: " + ", ".join(f"{n} rank {r}" for n, r in ranks.items()) +
            f", accuracy {accuracy(model, test):.2%} before fine-tuning")
        lap("low-rank")

    curves = sensitivity(model, test, list(recipe.sensitivity))
    before_pruning = {n: l.weight.detach().numpy().copy() for n, l in model.layers().items()}
    lap("sensitivity")

    masks = Masks.dense(model)
    filters = {n: l.filters for n, l in recipe.layers.items() if l.filters > 0}
    if filters:
        masks = filter_prune(model, filters, masks)
    masks = iterative_prune(
        model, {n: l.quality for n, l in recipe.layers.items()}, train, recipe.prune,
        steps=recipe.prune_steps, seed=seed, masks=masks, loss=loss, penalty=l1_penalty_of(model, recipe),
    )
    check_finite(model, "pruning")
    removed = {}
    if recipe.sparsity.remove_neurons:
        model, masks, removed = remove_neurons(model, model_name, masks)
        log("neurons removed: " + ", ".join(f"{n} {k}" for n, k in removed.items()))
    pruned_accuracy = accuracy(model, test)
    pruned = model.state_npz()
    kept = masks.kept_fraction()
    log(f"pruned accuracy {pruned_accuracy:.2%}, kept " + ", ".join(f"{n} {k:.1%}" for n, k in kept.items()))
    lap("prune")

    shared_accuracy = None
    if recipe.quantizer == "kmeans":
        shared = share_weights(model, {n: l.bits for n, l in recipe.layers.items()}, recipe.share_method)
        shared_accuracy = accuracy(model, test)
        shared = finetune_centroids(model, shared, masks, train, recipe.share, seed=seed, loss=loss)
    else:
        shared = quantize(model, masks, recipe, train, seed=seed, loss=loss, log=log)
    check_finite(model, "trained quantization")
    compressed = model.state_npz()
    if isinstance(model, SequentialMlp):
        compressed["relu"] = np.array(model.relu, dtype=bool)
    compressed_accuracy = accuracy(model, test)
    log(f"{recipe.quantizer} quantized accuracy " + (f"{shared_accuracy:.2%}, after fine-tuning "
                                                     if shared_accuracy is not None else "") +
        f"{compressed_accuracy:.2%}")
    lap("share")

    storage = ModelStorage([
        account_layer(name, shared[name].codes, shared[name].bits, layer.index_bits,
                      n_biases=len(compressed[f"b{l}"]), huffman_max_len=recipe.huffman_max_len)
        for l, (name, layer) in enumerate(recipe.layers.items())
    ], original_bits=FLOAT_BITS * sum(a.size for k, a in dense.items() if k[0] in "wb" and k[1:].isdigit()))
    lap("huffman")

    result = CompressResult(
        report={}, dense=dense, compressed=compressed, shared=shared, storage=storage,
        sensitivity=curves, recipe=recipe, seconds=seconds, before_pruning=before_pruning, pruned=pruned,
        methods={"quantize": recipe.quantizer, "distill": vars(recipe.distill) if recipe.distill.teacher else None,
                 "l1": recipe.sparsity.l1, "neurons_removed": removed, "lowrank_ranks": ranks,
                 "dense_architecture": dense_architecture},
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


def l1_penalty_of(model: CompressibleModel, recipe: Recipe):
    """The recipe's L1 penalty on every weight of ``model`` (None when its strength is 0)."""
    if not recipe.sparsity.l1:
        return None
    weights = [layer.weight for layer in model.layers().values()]
    return lambda: l1_penalty(weights, recipe.sparsity.l1)


def distillation(recipe: Recipe, teacher: str, train: Tensors, dataset: Dataset, *, own=None, log=print):
    """The loss of a student of ``teacher`` (:mod:`eiex.sw.teacher`), for :func:`fit`."""
    logits = resolve_teacher(teacher, student_x=train.x, raw_images=dataset.train.images,
                             n_classes=dataset.n_classes, own=own)
    agree = float((logits.argmax(1) == train.y).float().mean())
    log(f"distilling from {teacher} (T = {recipe.distill.temperature:g}, alpha = {recipe.distill.alpha:g}); "
        f"the teacher is right on {agree:.2%} of the training samples")
    return Distillation(logits, recipe.distill.temperature, recipe.distill.alpha).loss


def factorize_layers(model: CompressibleModel, model_name: str, recipe: Recipe):
    """Every fully connected layer whose rank-r approximation within ``recipe.lowrank`` is smaller
    than the layer becomes two layers, ``<name>_v`` (``rank`` outputs, no bias, no ReLU) then
    ``<name>_u``; both keep the layer's bits and index bits and are not pruned (quality 0)."""
    mlp = as_mlp(model, model_name, "low-rank factorization")
    weights, biases = mlp.arrays()
    names, ws, bs, relu, layers, ranks = [], [], [], [], {}, {}
    for name, w, b, relu_after in zip(mlp.names, weights, biases, mlp.relu):
        rank = rank_for_error(w, recipe.lowrank)
        if not saves_storage(w.shape, rank):
            names.append(name), ws.append(w), bs.append(b), relu.append(relu_after)
            layers[name] = recipe.layers[name]
            continue
        first, second = factorize(w, rank)
        ranks[name] = rank
        names += [f"{name}_v", f"{name}_u"]
        ws += [first, second]
        bs += [np.zeros(rank), b]
        relu += [False, relu_after]
        layers[f"{name}_v"] = layers[f"{name}_u"] = replace(recipe.layers[name], quality=0.0)
    return SequentialMlp(names, ws, bs, relu), replace(recipe, layers=layers), ranks


def remove_neurons(model: CompressibleModel, model_name: str, masks: Masks):
    """Hidden neurons without inputs or outputs removed; the smaller model computes the same."""
    mlp = as_mlp(model, model_name, "neuron removal")
    weights, biases = mlp.arrays()
    compact = remove_dead_neurons(weights, biases, mlp.relu)
    emptied = [name for name, w in zip(mlp.names, compact.weights) if 0 in w.shape]
    if emptied:
        raise EiexError(f"neuron removal: pruning left no connected neuron in {', '.join(emptied)}; lower its "
                        "quality in the recipe")
    smaller = SequentialMlp(mlp.names, compact.weights, compact.biases, mlp.relu)
    layers = smaller.layers()
    masks = Masks(weight={n: l.weight.detach() != 0 for n, l in layers.items()},
                  bias={n: torch.ones_like(l.bias, dtype=torch.bool) for n, l in layers.items()})
    return smaller, masks, dict(zip(mlp.names, compact.removed))


def write_outputs(result: CompressResult, folder: Path) -> None:
    """Write every output file into ``folder`` (an atomic temporary folder, normally)."""
    np.savez(folder / "dense.npz", **result.dense)
    np.savez(folder / "compressed.npz", **result.compressed)
    (folder / "report.json").write_text(json.dumps(result.report, indent=2) + "\n")
    (folder / "report.md").write_text(report.markdown(result.report))
    report.write_sensitivity_csv(folder / "sensitivity.csv", result.recipe.sensitivity, result.sensitivity)
    plots.weight_distributions(folder / "weights.png", result.before_pruning, result.shared)
    plots.kept_fraction(folder / "kept.png", result.storage)
    plots.sensitivity_curves(folder / "sensitivity.png", result.recipe.sensitivity, result.sensitivity)


def run_compress(out: Path, force: bool = False, **kwargs) -> CompressResult:
    """``compress`` then ``save``; an existing ``out`` is refused before training."""
    check_output_dir(out, force)
    result = compress(**kwargs)
    result.save(out, force)
    return result
