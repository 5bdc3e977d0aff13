"""The ``binarize`` pipeline: train a float twin and a binarized network, fold, measure, write.

``binarize()`` trains a float twin (for ``float_accuracy``) and the binarized network (a built-in
MLP such as ``bnn-mlp``, the CNN ``bnn-cnv``, or a user's model), folds the binarized one into
integer thresholds (:mod:`eiex.sw.binarize.thresholds`) and measures ``binary_accuracy`` on the
folded integer network, with the XNOR engine's own arithmetic (its golden model's layers).
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
from eiex.sw.binarize.layers import (DEFAULT_MODE, FOLDABLE_MODES, MODEL_CHANNELS, MODEL_HIDDEN, MODELS, BnnCnv, BnnMlp,
                                      FloatCnv, FloatMlp, check_dropout, clip_latent_weights, cnv_maps)
from eiex.sw.binarize.thresholds import INPUT_THRESHOLD, fold_model, run_folded
from eiex.sw.images.xnor.export import read_folded
from eiex.sw.data import Dataset, Split, load_dataset
from eiex.sw.binarize.user_model import binary_structure
from eiex.sw.user_model import is_model_file, load_model_function
from eiex.sw.compress.methods.distill import Distillation, LiveDistillation
from eiex.sw.teacher import Distill, resolve_teacher, teacher_function
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


#: bnn-cnv on the 60,000 digits of full MNIST (and Fashion-MNIST, the same recipe): about 21 minutes
#: on one torch thread of this machine
CNV_FULL_TRAINING = Training(
    binary=(TrainConfig(epochs=8, lr=1e-2, batch_size=100, schedule="cosine", shift=2),),
    float=(TrainConfig(epochs=2, lr=1e-3, batch_size=100, schedule="cosine"),),
    dropout=(0.0, 0.0))

#: tunings for a built-in model on a dataset, over the defaults above (see README, "binarize")
TUNED_TRAINING = {
    ("bnn-lfc", "mnist"): Training(
        binary=(TrainConfig(epochs=30, lr=1e-2, batch_size=100, schedule="cosine", shift=2),),
        float=(TrainConfig(epochs=3, lr=1e-3, batch_size=100, schedule="cosine"),),
        dropout=(0.0, 0.0)),
    ("bnn-cnv", "mnist"): CNV_FULL_TRAINING,
    ("bnn-cnv", "fashion"): CNV_FULL_TRAINING,
    ("bnn-cnv", "mnist5k"): Training(  # the 4,000 training digits of make demo's MNIST-5k: about 2.5 minutes
        binary=(TrainConfig(epochs=12, lr=1e-2, batch_size=100, schedule="cosine", shift=2),),
        float=(TrainConfig(epochs=3, lr=1e-3, batch_size=100, schedule="cosine"),),
        dropout=(0.0, 0.0)),
}


def training_for(model_name, dataset_name: str) -> Training:
    """The tuned training of a built-in model on a dataset, else the defaults."""
    return TUNED_TRAINING.get((model_name, dataset_name), Training()) if isinstance(model_name, str) else Training()


def raw_tensors(split: Split, shape=None) -> Tensors:
    """Raw pixels as float32 (0..255) with their labels: ``(n, pixels)`` (what the MLPs read), or
    ``(n, *shape)`` (a CNN's ``(C, H, W)``)."""
    x = torch.from_numpy(split.images.reshape(len(split), *((-1,) if shape is None else shape)).astype(np.float32))
    return Tensors(x, torch.from_numpy(split.labels))


def train_schedule(model: nn.Module, data: Tensors, schedule, *, seed: int, desc: str, after_step=None,
                   image_shape=None, loss=None) -> None:
    """``fit`` once per stage of ``schedule`` (a new Adam per stage, a seed per stage)."""
    for stage, config in enumerate(schedule):
        fit(model, data, config, seed=seed + stage, after_step=after_step, desc=f"{desc} {stage + 1}",
            image_shape=image_shape, loss=loss)


def check_built_in(model_name: str, hidden=None, mode: str = DEFAULT_MODE, dropout=(0.0, 0.0), channels=None) -> None:
    """Refuse a built-in model's bad arguments before any data loads (the map sizes are checked
    against the images once they are known, by :func:`build_bnn`)."""
    if model_name not in MODELS:
        raise EiexError(f"unknown binarized model {model_name!r} (known: {', '.join(MODELS)}, or FILE.py:FUNCTION)")
    if mode not in FOLDABLE_MODES:
        raise EiexError(f"{model_name} needs binary activations: mode must be one of {', '.join(FOLDABLE_MODES)}, "
                        f"not {mode!r}")
    if hidden is not None and (isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__") or not all(
            isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in hidden)):
        raise EiexError(f"hidden widths must be positive integers, not {hidden!r}")
    check_dropout(dropout)
    if model_name in MODEL_CHANNELS:
        cnv_maps(MODEL_CHANNELS[model_name] if channels is None else channels)
    elif channels is not None:
        raise EiexError(f"channels sets the conv widths of {', '.join(MODEL_CHANNELS)}; {model_name} has no conv "
                        f"layers")


def build_bnn(model_name: str, hidden=None, mode: str = DEFAULT_MODE, n_inputs: int = 784,
              n_classes: int = 10, dropout=(0.0, 0.0), channels=None, in_shape=None) -> BnnMlp | BnnCnv:
    """A built-in binarized network; ``hidden`` (default: the model's own widths) overrides its fully
    connected widths and ``channels`` a CNN's conv widths. A CNN reads ``in_shape`` ``(C, H, W)``
    maps (default ``(1, 28, 28)``), an MLP ``n_inputs`` values."""
    check_built_in(model_name, hidden, mode, dropout, channels)
    hidden = MODEL_HIDDEN[model_name] if hidden is None else hidden
    if model_name in MODEL_CHANNELS:
        maps = cnv_maps(MODEL_CHANNELS[model_name] if channels is None else channels)
        return BnnCnv((1, 28, 28) if in_shape is None else in_shape, maps, hidden, mode, n_classes=n_classes,
                      dropout=dropout, name=model_name)
    return BnnMlp(hidden, mode, n_inputs=n_inputs, n_classes=n_classes, dropout=dropout)


def float_twin(bnn: BnnMlp | BnnCnv) -> FloatMlp | FloatCnv:
    """The float network of the same shape as ``bnn`` (for ``float_accuracy``)."""
    if isinstance(bnn, BnnCnv):
        return FloatCnv(bnn.in_shape, bnn.maps, bnn.sizes[1:-1], bnn.sizes[-1], bnn.name)
    return FloatMlp(bnn.sizes[1:-1], n_inputs=bnn.sizes[0], n_classes=bnn.sizes[-1])


@dataclass
class BinaryModel:
    """The network ``binarize`` trains and how the pipeline treats it."""

    trained: nn.Module
    name: str  # in the report
    layers: list  # the report's ``layers``: sizes of an MLP, the notation of a CNN
    foldable: Callable[[], BnnMlp | BnnCnv]  # after training: the network that folds, in eval mode
    float_twin: Callable[[], nn.Module]
    input_shape: tuple[int, int, int] | None  # ``(C, H, W)`` the model reads, None for ``(n, values)``


def image_shape_of(dataset: Dataset, what: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of the dataset's samples, for a model with conv layers."""
    shape = dataset.sample_shape
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) == 3:
        return shape
    raise EiexError(f"{what} has conv layers and reads images; {dataset.name} holds samples shaped {shape}, not "
                    f"(H, W) or (C, H, W)")


def binary_model(model, hidden, mode: str, dataset: Dataset, dropout=(0.0, 0.0), channels=None) -> BinaryModel:
    """The network to train and how to fold it after training. ``model``: a built-in name,
    ``FILE.py:FUNCTION`` or a module built from eiex's binarized layers
    (:mod:`eiex.sw.binarize.user_model`)."""
    n_inputs, n_classes = int(np.prod(dataset.sample_shape)), max(dataset.n_classes, 2)
    if isinstance(model, str) and not is_model_file(model):
        in_shape = image_shape_of(dataset, model) if model in MODEL_CHANNELS else None
        bnn = build_bnn(model, hidden, mode, n_inputs, n_classes, dropout, channels, in_shape)
        return BinaryModel(bnn, model, bnn.describe(), bnn.eval, lambda: float_twin(bnn), in_shape)
    if isinstance(model, str):
        name, model = model, load_model_function(model)
    elif isinstance(model, nn.Module):
        name = type(model).__name__
    else:
        raise EiexError(f"model must be a built-in name, FILE.py:FUNCTION or a torch.nn.Module, not "
                        f"{type(model).__name__}")
    in_shape = image_shape_of(dataset, name) if len(dataset.sample_shape) in (2, 3) else None
    structure = binary_structure(model, name, in_shape)
    sizes = structure.sizes
    if not structure.maps and sizes[0] != n_inputs:
        raise EiexError(f"{name} takes {sizes[0]} inputs but the dataset's samples hold {n_inputs} values")
    if sizes[-1] < n_classes:
        raise EiexError(f"{name} scores {sizes[-1]} classes but the dataset has labels up to {n_classes - 1}")
    return BinaryModel(model, name, structure.describe(), structure.to_foldable, structure.float_twin,
                       structure.in_shape if structure.maps else None)


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
    model: BnnMlp | BnnCnv
    float_model: FloatMlp | FloatCnv
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
    channels=None,
    binary_schedule=None,
    float_schedule=None,
    dropout=None,
    threads: int = DEFAULT_THREADS,
    distill: Distill | None = None,
    log=print,
) -> BinarizeResult:
    """Train the float twin and the binarized network, fold it, and measure both on held-out digits.

    ``binary_accuracy`` comes from the folded integer network (:func:`run_folded`),
    ``torch_binary_accuracy`` from the PyTorch model in eval mode; ``agreement`` is the fraction
    of held-out digits on which the two predict the same class. Training runs on ``threads`` torch
    threads (restored afterwards). The schedules and dropout default to the model's tuning for the
    dataset (:data:`TUNED_TRAINING`), else to :class:`Training`'s; dropout applies to built-in models
    (a user's model holds its own ``Dropout`` modules). ``hidden`` and ``channels`` set a built-in
    model's fully connected and conv widths. ``distill`` trains the binarized network as the
    student of a teacher (:mod:`eiex.sw.teacher`; ``float``: the float twin trained first).
    """
    if isinstance(model_name, str) and not is_model_file(model_name):
        check_built_in(model_name, hidden, mode, (0.0, 0.0) if dropout is None else dropout, channels)  # refuse bad
        # arguments before loading or training
    elif dropout is not None:
        raise EiexError("dropout is set for built-in models; a model of your own holds its own torch.nn.Dropout "
                        "modules")
    elif channels is not None or hidden is not None:
        raise EiexError("hidden and channels set the widths of built-in models; a model of your own has its own")
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 256:
        raise EiexError(f"threads must be an integer from 1 to 256, not {threads!r}")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _binarize(model_name, dataset_name, data_dir, seed, mode, hidden, channels,
                         (binary_schedule, float_schedule, dropout), threads, distill, log)
    finally:
        torch.set_num_threads(previous_threads)


def _binarize(model_name, dataset_name, data_dir, seed, mode, hidden, channels, overrides, threads, distill,
              log) -> BinarizeResult:
    dataset = pixel_dataset(dataset_name, data_dir)
    tuned = training_for(model_name, dataset.name)
    binary_schedule, float_schedule, dropout = (tuned_value if value is None else value for value, tuned_value in
                                                zip(overrides, (tuned.binary, tuned.float, tuned.dropout)))
    seed_everything(seed)  # before each model exists: its initial weights come from the seed
    network = binary_model(model_name, hidden, mode, dataset, dropout, channels)
    trained, model_name = network.trained, network.name
    train, test = raw_tensors(dataset.train, network.input_shape), raw_tensors(dataset.test, network.input_shape)
    clock = StageClock()
    lap, seconds = clock.lap, clock.seconds

    live = any(config.shift for config in binary_schedule)  # shifted digits: the teacher must see them too
    teacher = None
    if distill is not None and distill.teacher not in ("", "float"):  # a bad teacher is refused before training
        teacher = teacher_of(distill, train, dataset, None, live, log)
    seed_everything(seed)
    float_model = network.float_twin()
    image_shape = dataset.sample_shape[-2:] if len(dataset.sample_shape) >= 2 else None
    train_schedule(float_model, train, float_schedule, seed=seed, desc="float", image_shape=image_shape)
    float_accuracy = accuracy(float_model, test)
    log(f"float accuracy {float_accuracy:.2%} on {len(test.y)} held-out digits")
    lap("float")

    if distill is not None and distill.teacher == "float":
        teacher = teacher_of(distill, train, dataset, float_model, live, log)
    loss = None if teacher is None else teacher.loss
    seed_everything(seed)
    clip_latent_weights(trained)
    train_schedule(trained, train, binary_schedule, seed=seed, desc="binary",
                   after_step=lambda: clip_latent_weights(trained), image_shape=image_shape, loss=loss)
    torch_predictions = predict(trained, test.x).numpy()
    torch_binary_accuracy = float((torch_predictions == dataset.test.labels).mean())
    model = network.foldable()
    mode = model.mode
    if model is not trained and not np.array_equal(predict(model, test.x).numpy(), torch_predictions):
        raise EiexError(f"{model_name}: the model and its {type(model).__name__} copy disagree; it is not the network "
                        f"eiex folds")
    lap("binary")

    arrays = fold_model(model)
    folded_predictions = run_folded(arrays, dataset.test.images).argmax(1)
    binary_accuracy = float((folded_predictions == dataset.test.labels).mean())
    agreement = float((folded_predictions == torch_predictions).mean())
    lap("fold")
    log(f"{mode} binary accuracy {binary_accuracy:.2%} (folded integer network; PyTorch "
        f"{torch_binary_accuracy:.2%}, the two agree on {agreement:.2%} of digits)")

    source = {"kind": "binary", "threshold": model.input_threshold}
    if isinstance(model, BnnCnv):
        source["shape"] = list(model.input_map_shape)
    report = {
        "model": model_name,
        "dataset": dataset.name,
        "mode": mode,
        "seed": seed,
        "threads": threads,
        "test_split": f"held-out, {len(test.y)} samples",
        "input": source,
        "float_input": "pixel / 255",
        "layers": network.layers,
        "layer_details": layer_details(model, arrays),
        "float_accuracy": float_accuracy,
        "binary_accuracy": binary_accuracy,
        "torch_binary_accuracy": torch_binary_accuracy,
        "accuracy_loss_pp": 100.0 * (float_accuracy - binary_accuracy),
        "agreement": agreement,
        "disagreements": int(np.sum(folded_predictions != torch_predictions)),
        "training": {
            "float": [vars(c) for c in float_schedule],
            "binary": [vars(c) for c in binary_schedule],
            "dropout": list(dropout) if isinstance(trained, (BnnMlp, BnnCnv)) else "the model's own Dropout modules",
            "optimizer": "Adam, cross-entropy; latent weights clipped to [-1, 1] after every step",
            "distill": vars(distill) if distill is not None and distill.teacher else None,
        },
        "seconds": {**seconds, "total": sum(seconds.values())},
    }
    return BinarizeResult(report=report, arrays=arrays, model=model, float_model=float_model, seconds=seconds)


def teacher_of(distill: Distill, train: Tensors, dataset: Dataset, float_model, live: bool, log):
    """The distillation of the binarized network (``float_model``: the float twin, if trained):
    the teacher's logits computed once over the training digits, or with ``live`` (training on
    shifted digits) asked about every batch as the student sees it."""
    logits = resolve_teacher(distill.teacher, student_x=train.x, raw_images=dataset.train.images,
                             n_classes=dataset.n_classes, own=float_model)
    log(f"distilling from {distill.teacher} (T = {distill.temperature:g}, alpha = {distill.alpha:g}"
        f"{', on every shifted batch' if live else ''}); the teacher is right on "
        f"{float((logits.argmax(1) == train.y).float().mean()):.2%} of the training digits")
    if live:
        teacher = teacher_function(distill.teacher, sample_shape=dataset.sample_shape, own=float_model)
        return LiveDistillation(teacher, distill.temperature, distill.alpha)
    return Distillation(logits, distill.temperature, distill.alpha)


def layer_details(model: BnnMlp | BnnCnv, arrays: dict[str, np.ndarray]) -> list[dict]:
    """The report's per-layer table: kind, shapes, and for layers with thresholds how many rows
    (channels) were flipped (``gamma * alpha < 0``) and the thresholds' range."""
    details = []
    network = read_folded(arrays, "folded network")
    weight_index = 0
    for layer, folded in zip(model.fold_inputs(), network.layers):
        if folded.kind == "pool":
            h, w, c = folded.in_shape
            details.append({"name": folded.name, "kind": "pool", "in_shape": [h, w, c], "size": folded.size,
                            "out_shape": list(folded.out_shape)})
            continue
        alpha, bn = layer[-2:]
        l, weight_index = weight_index, weight_index + 1
        detail = {"weight_key": f"w{l}", "kind": folded.kind, "in_features": int(folded.in_features),
                  "out_features": int(folded.out_features)}
        if isinstance(model, BnnCnv):
            detail = {"name": folded.name, **detail}
        if folded.kind == "conv":
            detail.update(in_shape=list(folded.in_shape), out_channels=int(folded.out_features), kernel=folded.kernel,
                          out_shape=list(folded.out_shape))
        if folded.thresholds is not None:
            direction = np.sign(bn.gamma) * (1.0 if alpha is None else np.sign(alpha))
            detail.update(threshold_key=f"t{l}", flipped_rows=int(np.sum(direction < 0)),
                          threshold_range=[int(folded.thresholds.min()), int(folded.thresholds.max())])
        details.append(detail)
    return details


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
