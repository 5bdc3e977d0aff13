"""Binarized networks: BinaryConnect, BNN and XNOR-Net layers, and the ``binarize`` pipeline.

Every binarization uses one sign convention, ``+1 if x >= 0 else -1`` (never 0). Gradients pass
straight through the sign: for activations only where ``|x| <= 1`` (the hardtanh estimator of
Hubara et al. 2016), for weights unchanged (BinaryConnect); latent float weights are clipped to
``[-1, 1]`` after every optimizer step (:func:`clip_latent_weights`).

``binarize()`` trains a float twin (for ``float_accuracy``) and the binarized ``bnn-mlp``, folds
the binarized one into integer thresholds (:mod:`eiex.sw.thresholds`) and measures
``binary_accuracy`` on the folded integer network, with the XNOR engine's own arithmetic.
``write_outputs()`` writes ``report.json`` and ``binary.npz`` atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from eiex.sw.atomic import atomic_output_dir, check_output_dir
from eiex.sw.data import N_CLASSES, Split, load_dataset
from eiex.sw.errors import EiexError
from eiex.sw.thresholds import INPUT_THRESHOLD, BatchNormParams, fold_model, run_folded
from eiex.sw.train import StageClock, Tensors, TrainConfig, accuracy, fit, predict, seed_everything

MODES = ("binaryconnect", "bnn", "xnor")
FOLDABLE_MODES = ("bnn", "xnor")  # binary activations: what the XNOR engine runs
MODELS = ("bnn-mlp",)
DEFAULT_HIDDEN = (512, 512)
DEFAULT_MODE = "xnor"
# Float reductions split across threads round differently, so the trained network depends on the
# thread count; pinning it makes a seed reproduce on any machine.
DEFAULT_THREADS = 2
#: binarized training: Adam at a high rate first (latent weights must cross zero), then lower
BINARY_SCHEDULE = (TrainConfig(epochs=20, lr=1e-2, batch_size=100), TrainConfig(epochs=10, lr=1e-3, batch_size=100))
FLOAT_SCHEDULE = (TrainConfig(epochs=15, lr=1e-3, batch_size=100),)


def sign(x: torch.Tensor) -> torch.Tensor:
    """``+1`` where ``x >= 0``, else ``-1``, in ``x``'s dtype (no gradient)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


class _SignActivation(torch.autograd.Function):
    """Sign forward; the gradient passes where ``|x| <= 1`` (hardtanh straight-through)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class _SignWeight(torch.autograd.Function):
    """Sign forward; the gradient passes unchanged (BinaryConnect's straight-through)."""

    @staticmethod
    def forward(ctx, w):
        return sign(w)

    @staticmethod
    def backward(ctx, grad):
        return grad


def binarize_activation(x: torch.Tensor) -> torch.Tensor:
    """Sign of activations with the hardtanh straight-through gradient."""
    return _SignActivation.apply(x)


def binarize_weight(w: torch.Tensor) -> torch.Tensor:
    """Sign of latent weights with the plain straight-through gradient."""
    return _SignWeight.apply(w)


class BinaryLinear(nn.Module):
    """A linear layer without bias whose weights (and, but for BinaryConnect, inputs) are +-1.

    Parameters
    ----------
    in_features, out_features : int
    mode : ``"binaryconnect"`` (binary weights, float inputs), ``"bnn"`` (binary weights and
        inputs: the layer takes the sign of its input, which leaves +-1 inputs as they are) or
        ``"xnor"`` (bnn, each output scaled by XNOR-Net's ``alpha = mean |W|`` of its latent row).

    Attributes
    ----------
    weight : the latent float weights ``(out_features, in_features)``, kept in ``[-1, 1]``.
    """

    def __init__(self, in_features: int, out_features: int, mode: str = "bnn"):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise EiexError(f"BinaryLinear {name} must be a positive integer, not {value!r}")
        if mode not in MODES:
            raise EiexError(f"binarization mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.in_features, self.out_features, self.mode = in_features, out_features, mode
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.uniform_(self.weight, -1.0 / in_features**0.5, 1.0 / in_features**0.5)

    def alpha(self) -> torch.Tensor | None:
        """XNOR-Net's per-output scaling ``mean |W|`` of the latent rows, or None outside xnor mode."""
        return self.weight.abs().mean(dim=1) if self.mode == "xnor" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode != "binaryconnect":
            x = binarize_activation(x)
        y = x @ binarize_weight(self.weight).t()
        alpha = self.alpha()
        return y if alpha is None else y * alpha

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, mode={self.mode}"


@torch.no_grad()
def clip_latent_weights(model: nn.Module) -> None:
    """Clip the latent weights of every :class:`BinaryLinear` in ``model`` to ``[-1, 1]``."""
    for module in model.modules():
        if isinstance(module, BinaryLinear):
            module.weight.clamp_(-1.0, 1.0)


def _check_sizes(n_inputs: int, hidden, n_classes: int) -> tuple[int, ...]:
    sizes = (n_inputs, *hidden, n_classes)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes):
        raise EiexError(f"layer sizes must be positive integers, not {list(sizes)}")
    return sizes


class BnnMlp(nn.Module):
    """A binarized multi-layer perceptron the XNOR engine runs after folding.

    Input bit ``+1`` where the raw pixel (0..255) ``>= input_threshold``, else ``-1``; each hidden
    layer is BinaryLinear -> BatchNorm1d -> sign (the sign is taken by the next BinaryLinear);
    the output layer is BinaryLinear -> BatchNorm1d, whose outputs are the class scores.
    """

    def __init__(self, hidden=DEFAULT_HIDDEN, mode: str = DEFAULT_MODE, n_inputs: int = 784,
                 n_classes: int = N_CLASSES, input_threshold: float = INPUT_THRESHOLD):
        super().__init__()
        if mode not in FOLDABLE_MODES:
            raise EiexError(f"bnn-mlp needs binary activations: mode must be one of "
                            f"{', '.join(FOLDABLE_MODES)}, not {mode!r}")
        self.sizes = _check_sizes(n_inputs, hidden, n_classes)
        self.mode = mode
        self.input_threshold = float(input_threshold)
        self.linears = nn.ModuleList(BinaryLinear(k, m, mode) for k, m in zip(self.sizes, self.sizes[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(m) for m in self.sizes[1:])

    def binarize_input(self, raw: torch.Tensor) -> torch.Tensor:
        return sign(raw.flatten(1).to(torch.float32) - self.input_threshold)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = self.binarize_input(raw)
        for linear, norm in zip(self.linears, self.norms):
            x = norm(linear(x))  # the next BinaryLinear takes the sign
        return x

    def fold_inputs(self) -> list[tuple[np.ndarray, np.ndarray | None, BatchNormParams]]:
        """Per layer: sign weights (int8 +-1), alpha (float64, or None) and the batch norm."""
        layers = []
        for l, (linear, norm) in enumerate(zip(self.linears, self.norms)):
            w = linear.weight.detach().cpu()
            if not torch.isfinite(w).all():
                raise EiexError(f"bnn-mlp layer {l}: latent weights contain NaN or infinite values")
            alpha = linear.alpha()
            alpha = None if alpha is None else alpha.detach().cpu().double().numpy()
            bn = BatchNormParams.of(
                norm.weight.detach().cpu().double().numpy(), norm.bias.detach().cpu().double().numpy(),
                norm.running_mean.cpu().double().numpy(), norm.running_var.cpu().double().numpy(), norm.eps,
            )
            layers.append((sign(w).to(torch.int8).numpy(), alpha, bn))
        return layers


class FloatMlp(nn.Module):
    """The float twin of :class:`BnnMlp`: the same layers with float weights and ReLU.

    It reads pixels scaled to ``[0, 1]`` (not thresholded): the float reference of the network.
    """

    def __init__(self, hidden=DEFAULT_HIDDEN, n_inputs: int = 784, n_classes: int = N_CLASSES):
        super().__init__()
        self.sizes = _check_sizes(n_inputs, hidden, n_classes)
        self.linears = nn.ModuleList(nn.Linear(k, m, bias=False) for k, m in zip(self.sizes, self.sizes[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(m) for m in self.sizes[1:])

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = raw.flatten(1).to(torch.float32) / 255.0
        for l, (linear, norm) in enumerate(zip(self.linears, self.norms)):
            x = norm(linear(x))
            if l < len(self.linears) - 1:
                x = torch.relu(x)
        return x


def raw_tensors(split: Split) -> Tensors:
    """Raw pixels as float32 ``(n, 784)`` (0..255) with their labels: what both MLPs read."""
    x = torch.from_numpy(split.images.reshape(len(split), -1).astype(np.float32))
    return Tensors(x, torch.from_numpy(split.labels))


def train_schedule(model: nn.Module, data: Tensors, schedule, *, seed: int, desc: str, after_step=None) -> None:
    """``fit`` once per stage of ``schedule`` (a new Adam per stage, a seed per stage)."""
    for stage, config in enumerate(schedule):
        fit(model, data, config, seed=seed + stage, after_step=after_step, desc=f"{desc} {stage + 1}")


def build_bnn(model_name: str, hidden=DEFAULT_HIDDEN, mode: str = DEFAULT_MODE) -> BnnMlp:
    if model_name not in MODELS:
        raise EiexError(f"unknown binarized model {model_name!r} (known: {', '.join(MODELS)})")
    return BnnMlp(hidden, mode)


@dataclass
class BinarizeResult:
    report: dict
    arrays: dict[str, np.ndarray]  # binary.npz
    model: BnnMlp
    float_model: FloatMlp
    seconds: dict[str, float] = field(default_factory=dict)


def binarize(
    model_name: str = "bnn-mlp",
    dataset_name: str = "mnist5k",
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    mode: str = DEFAULT_MODE,
    hidden=DEFAULT_HIDDEN,
    binary_schedule=BINARY_SCHEDULE,
    float_schedule=FLOAT_SCHEDULE,
    threads: int = DEFAULT_THREADS,
    log=print,
) -> BinarizeResult:
    """Train the float twin and the binarized MLP, fold it, and measure both on held-out digits.

    ``binary_accuracy`` comes from the folded integer network (:func:`run_folded`),
    ``torch_binary_accuracy`` from the PyTorch model in eval mode; ``agreement`` is the fraction
    of held-out digits on which the two predict the same class. Training runs on ``threads`` torch
    threads (restored afterwards).
    """
    build_bnn(model_name, hidden, mode)  # refuse bad arguments before loading or training
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 256:
        raise EiexError(f"threads must be an integer from 1 to 256, not {threads!r}")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _binarize(model_name, dataset_name, data_dir, seed, mode, hidden, binary_schedule, float_schedule,
                         threads, log)
    finally:
        torch.set_num_threads(previous_threads)


def _binarize(model_name, dataset_name, data_dir, seed, mode, hidden, binary_schedule, float_schedule, threads,
              log) -> BinarizeResult:
    dataset = load_dataset(dataset_name, data_dir)
    train, test = raw_tensors(dataset.train), raw_tensors(dataset.test)
    clock = StageClock()
    lap, seconds = clock.lap, clock.seconds

    seed_everything(seed)  # before each model exists: its initial weights come from the seed
    float_model = FloatMlp(hidden)
    train_schedule(float_model, train, float_schedule, seed=seed, desc="float")
    float_accuracy = accuracy(float_model, test)
    log(f"float accuracy {float_accuracy:.2%} on {len(test.y)} held-out digits")
    lap("float")

    seed_everything(seed)
    model = build_bnn(model_name, hidden, mode)
    clip_latent_weights(model)
    train_schedule(model, train, binary_schedule, seed=seed, desc=mode,
                   after_step=lambda: clip_latent_weights(model))
    torch_predictions = predict(model, test.x).numpy()
    torch_binary_accuracy = float((torch_predictions == dataset.test.labels).mean())
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
    write_outputs(result, out, force)
    return result
