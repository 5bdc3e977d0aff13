"""The ``binarize`` pipeline: train a float twin and a binarized MLP, fold, measure, write.

``binarize()`` trains a float twin (for ``float_accuracy``) and the binarized ``bnn-mlp``, folds
the binarized one into integer thresholds (:mod:`eiex.sw.binarize.thresholds`) and measures
``binary_accuracy`` on the folded integer network, with the XNOR engine's own arithmetic.
``write_outputs()`` writes ``report.json`` and ``binary.npz`` atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from eiex.errors import EiexError
from eiex.sw.atomic import atomic_output_dir, check_output_dir
from eiex.sw.binarize.layers import DEFAULT_MODE, MODEL_HIDDEN, MODELS, BnnMlp, FloatMlp, clip_latent_weights
from eiex.sw.binarize.thresholds import INPUT_THRESHOLD, fold_model, run_folded
from eiex.sw.data import Dataset, Split, load_dataset
from eiex.sw.binarize.user_model import binary_structure
from eiex.sw.user_model import is_model_file, load_model_function
from eiex.sw.train import StageClock, Tensors, TrainConfig, accuracy, fit, predict, seed_everything

# Float reductions split across threads round differently, so the trained network depends on the
# thread count; pinning it makes a seed reproduce on any machine.
DEFAULT_THREADS = 2
#: binarized training: Adam at a high rate first (latent weights must cross zero), then lower
BINARY_SCHEDULE = (TrainConfig(epochs=20, lr=1e-2, batch_size=100), TrainConfig(epochs=10, lr=1e-3, batch_size=100))
FLOAT_SCHEDULE = (TrainConfig(epochs=15, lr=1e-3, batch_size=100),)


@dataclass(frozen=True)
class Training:
    """How ``binarize`` trains: the binarized network's stages, the float twin's, and the
    binarized network's dropout ``(p_input, p_hidden)`` (built-in models only)."""

    binary: tuple[TrainConfig, ...] = BINARY_SCHEDULE
    float: tuple[TrainConfig, ...] = FLOAT_SCHEDULE
    dropout: tuple[float, float] = (0.0, 0.0)


#: tunings for a built-in model on a dataset, over the defaults above (see README, "binarize")
TUNED_TRAINING = {
    ("bnn-lfc", "mnist"): Training(
        binary=(TrainConfig(epochs=30, lr=1e-2, batch_size=100, schedule="cosine", shift=2),),
        float=(TrainConfig(epochs=3, lr=1e-3, batch_size=100, schedule="cosine"),),
        dropout=(0.0, 0.0)),
}


def training_for(model_name, dataset_name: str) -> Training:
    """The tuned training of a built-in model on a dataset, else the defaults."""
    return TUNED_TRAINING.get((model_name, dataset_name), Training()) if isinstance(model_name, str) else Training()


def raw_tensors(split: Split) -> Tensors:
    """Raw pixels as float32 ``(n, pixels)`` (0..255) with their labels: what both MLPs read."""
    x = torch.from_numpy(split.images.reshape(len(split), -1).astype(np.float32))
    return Tensors(x, torch.from_numpy(split.labels))


def train_schedule(model: nn.Module, data: Tensors, schedule, *, seed: int, desc: str, after_step=None,
                   image_shape=None) -> None:
    """``fit`` once per stage of ``schedule`` (a new Adam per stage, a seed per stage)."""
    for stage, config in enumerate(schedule):
        fit(model, data, config, seed=seed + stage, after_step=after_step, desc=f"{desc} {stage + 1}",
            image_shape=image_shape)


def build_bnn(model_name: str, hidden=None, mode: str = DEFAULT_MODE, n_inputs: int = 784,
              n_classes: int = 10, dropout=(0.0, 0.0)) -> BnnMlp:
    """A built-in binarized MLP; ``hidden`` (default: the model's own widths) overrides its widths."""
    if model_name not in MODELS:
        raise EiexError(f"unknown binarized model {model_name!r} (known: {', '.join(MODELS)}, or FILE.py:FUNCTION)")
    return BnnMlp(MODEL_HIDDEN[model_name] if hidden is None else hidden, mode, n_inputs=n_inputs,
                  n_classes=n_classes, dropout=dropout)


def binary_model(model, hidden, mode: str, n_inputs: int, n_classes: int,
                 dropout=(0.0, 0.0)) -> tuple[nn.Module, str, tuple, Callable]:
    """The network to train, the name its report gives it, its layer sizes, and how to turn it
    into a foldable :class:`BnnMlp` after training. ``model``: a built-in name, ``FILE.py:FUNCTION`` or a module
    built from eiex's binarized layers (:mod:`eiex.sw.binarize.user_model`)."""
    if isinstance(model, str) and not is_model_file(model):
        bnn = build_bnn(model, hidden, mode, n_inputs, n_classes, dropout)
        return bnn, model, bnn.sizes, bnn.eval
    if isinstance(model, str):
        name, model = model, load_model_function(model)
    elif isinstance(model, nn.Module):
        name = type(model).__name__
    else:
        raise EiexError(f"model must be a built-in name, FILE.py:FUNCTION or a torch.nn.Module, not "
                        f"{type(model).__name__}")
    structure = binary_structure(model, name)
    sizes = structure.sizes
    if sizes[0] != n_inputs:
        raise EiexError(f"{name} takes {sizes[0]} inputs but the dataset's samples hold {n_inputs} values")
    if sizes[-1] < n_classes:
        raise EiexError(f"{name} scores {sizes[-1]} classes but the dataset has labels up to {n_classes - 1}")
    return model, name, sizes, structure.to_bnn_mlp


def pixel_dataset(dataset_name, data_dir) -> Dataset:
    """The dataset, which must hold uint8 pixels: the input bits are ``pixel >= 128``."""
    dataset = dataset_name if isinstance(dataset_name, Dataset) else load_dataset(dataset_name, data_dir)
    if dataset.train.images.dtype != np.uint8:
        raise EiexError(f"binarize thresholds raw pixels (0-255) at {INPUT_THRESHOLD:g}; {dataset.name} holds "
                        f"{dataset.train.images.dtype} inputs, not uint8 pixels")
    return dataset


@dataclass
class BinarizeResult:
    report: dict
    arrays: dict[str, np.ndarray]  # binary.npz
    model: BnnMlp
    float_model: FloatMlp
    seconds: dict[str, float] = field(default_factory=dict)

    def save(self, out: str | Path, force: bool = False) -> Path:
        """Write the output folder ``eiex binarize`` writes, whole or not at all."""
        return write_outputs(self, out, force)


def binarize(
    model_name: str = "bnn-mlp",
    dataset_name: str = "mnist5k",
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    mode: str = DEFAULT_MODE,
    hidden=None,
    binary_schedule=None,
    float_schedule=None,
    dropout=None,
    threads: int = DEFAULT_THREADS,
    log=print,
) -> BinarizeResult:
    """Train the float twin and the binarized MLP, fold it, and measure both on held-out digits.

    ``binary_accuracy`` comes from the folded integer network (:func:`run_folded`),
    ``torch_binary_accuracy`` from the PyTorch model in eval mode; ``agreement`` is the fraction
    of held-out digits on which the two predict the same class. Training runs on ``threads`` torch
    threads (restored afterwards). The schedules and dropout default to the model's tuning for the
    dataset (:data:`TUNED_TRAINING`), else to :class:`Training`'s; dropout applies to built-in models
    (a user's model holds its own ``Dropout`` modules).
    """
    if isinstance(model_name, str) and not is_model_file(model_name):
        build_bnn(model_name, hidden, mode, dropout=(0.0, 0.0) if dropout is None else dropout)  # refuse bad
        # arguments before loading or training
    elif dropout is not None:
        raise EiexError("dropout is set for built-in models; a model of your own holds its own torch.nn.Dropout "
                        "modules")
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 256:
        raise EiexError(f"threads must be an integer from 1 to 256, not {threads!r}")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _binarize(model_name, dataset_name, data_dir, seed, mode, hidden,
                         (binary_schedule, float_schedule, dropout), threads, log)
    finally:
        torch.set_num_threads(previous_threads)


def _binarize(model_name, dataset_name, data_dir, seed, mode, hidden, overrides, threads, log) -> BinarizeResult:
    dataset = pixel_dataset(dataset_name, data_dir)
    tuned = training_for(model_name, dataset.name)
    binary_schedule, float_schedule, dropout = (tuned_value if value is None else value for value, tuned_value in
                                                zip(overrides, (tuned.binary, tuned.float, tuned.dropout)))
    n_inputs, n_classes = int(np.prod(dataset.sample_shape)), max(dataset.n_classes, 2)
    seed_everything(seed)  # before each model exists: its initial weights come from the seed
    trained, model_name, sizes, to_bnn = binary_model(model_name, hidden, mode, n_inputs, n_classes, dropout)
    train, test = raw_tensors(dataset.train), raw_tensors(dataset.test)
    clock = StageClock()
    lap, seconds = clock.lap, clock.seconds

    seed_everything(seed)
    float_model = FloatMlp(sizes[1:-1], n_inputs=n_inputs, n_classes=sizes[-1])
    image_shape = dataset.sample_shape[-2:] if len(dataset.sample_shape) >= 2 else None
    train_schedule(float_model, train, float_schedule, seed=seed, desc="float", image_shape=image_shape)
    float_accuracy = accuracy(float_model, test)
    log(f"float accuracy {float_accuracy:.2%} on {len(test.y)} held-out digits")
    lap("float")

    seed_everything(seed)
    clip_latent_weights(trained)
    train_schedule(trained, train, binary_schedule, seed=seed, desc="binary",
                   after_step=lambda: clip_latent_weights(trained), image_shape=image_shape)
    torch_predictions = predict(trained, test.x).numpy()
    torch_binary_accuracy = float((torch_predictions == dataset.test.labels).mean())
    model = to_bnn()
    mode = model.mode
    if model is not trained and not np.array_equal(predict(model, test.x).numpy(), torch_predictions):
        raise EiexError(f"{model_name}: the model and its BnnMlp copy disagree; it is not the network eiex folds")
    lap("binary")

    arrays = fold_model(model)
    folded_predictions = run_folded(arrays, dataset.test.images).argmax(1)
    binary_accuracy = float((folded_predictions == dataset.test.labels).mean())
    agreement = float((folded_predictions == torch_predictions).mean())
    lap("fold")
    log(f"{mode} binary accuracy {binary_accuracy:.2%} (folded integer network; PyTorch "
        f"{torch_binary_accuracy:.2%}, the two agree on {agreement:.2%} of digits)")

    layers = []
    for l, (_, alpha, bn) in enumerate(model.fold_inputs()):
        w = arrays[f"w{l}"]
        layer = {"weight_key": f"w{l}", "kind": "output", "in_features": int(w.shape[1]),
                 "out_features": int(w.shape[0])}
        if f"t{l}" in arrays:
            direction = np.sign(bn.gamma) * (1.0 if alpha is None else np.sign(alpha))
            layer.update(kind="hidden", threshold_key=f"t{l}", flipped_rows=int(np.sum(direction < 0)),
                         threshold_range=[int(arrays[f"t{l}"].min()), int(arrays[f"t{l}"].max())])
        layers.append(layer)
    report = {
        "model": model_name,
        "dataset": dataset.name,
        "mode": mode,
        "seed": seed,
        "threads": threads,
        "test_split": f"held-out, {len(test.y)} samples",
        "input": {"kind": "binary", "threshold": model.input_threshold},
        "float_input": "pixel / 255",
        "layers": list(model.sizes),
        "layer_details": layers,
        "float_accuracy": float_accuracy,
        "binary_accuracy": binary_accuracy,
        "torch_binary_accuracy": torch_binary_accuracy,
        "accuracy_loss_pp": 100.0 * (float_accuracy - binary_accuracy),
        "agreement": agreement,
        "disagreements": int(np.sum(folded_predictions != torch_predictions)),
        "training": {
            "float": [vars(c) for c in float_schedule],
            "binary": [vars(c) for c in binary_schedule],
            "dropout": list(dropout) if isinstance(trained, BnnMlp) else "the model's own Dropout modules",
            "optimizer": "Adam, cross-entropy; latent weights clipped to [-1, 1] after every step",
        },
        "seconds": {**seconds, "total": sum(seconds.values())},
    }
    return BinarizeResult(report=report, arrays=arrays, model=model, float_model=float_model, seconds=seconds)


def write_outputs(result: BinarizeResult, out: str | Path, force: bool = False) -> Path:
    """Write ``report.json`` and ``binary.npz`` into ``out``, whole or not at all."""
    with atomic_output_dir(out, force) as folder:
        np.savez(folder / "binary.npz", **result.arrays)
        (folder / "report.json").write_text(json.dumps(result.report, indent=2) + "\n")
    return Path(out)


def run_binarize(out: str | Path, force: bool = False, **kwargs) -> BinarizeResult:
    """``binarize`` then ``write_outputs``; an existing ``out`` is refused before training."""
    check_output_dir(out, force)
    result = binarize(**kwargs)
    result.save(out, force)
    return result
