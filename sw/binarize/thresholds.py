"""The threshold compiler: batch normalisation and sign folded into XNOR-popcount thresholds.

A hidden binarized layer computes, in float, ``s = alpha * dot`` (``dot`` the +-1 dot product of
its input bits with its sign weights), ``y = gamma * (s - mu) / sqrt(var + eps) + beta`` and
outputs the bit ``y >= 0`` (a tie, ``y == 0``, fires). The XNOR engine (``xnor-image.md``
section 5) counts ``acc = (dot + K) / 2`` matching bits and fires iff ``acc >= T``. Since ``y`` is
monotone in ``acc``, a row maps to one integer ``T``; a row whose ``y`` falls as ``acc`` rises
(``gamma * alpha < 0``) has its weights negated first, so its count becomes ``K - acc``.

``T`` is not trusted to a closed form: the ceiling of the closed form is checked against the
float decision (:func:`hidden_fires`, float64) at ``T - 1`` (must not fire) and ``T`` (must
fire), and rows failing the check are bisected over ``0..K + 1`` with the same decision. Each
float64 operation rounds monotonically, so the float decision is itself monotone in ``acc`` and
the hardware agrees with it at every ``acc`` in ``0..K``.

The output layer keeps ``y = 2 * acc - K`` and gets per-row ``scale`` and ``bias`` (section 6).

A binarized conv layer (``xnor-image.md`` section 7) is a hidden layer over the ``k * k * C``
columns of each patch: one threshold per output channel (:func:`compile_conv`). A max-pool of the
sign bits is the OR of the bits and needs no folding.

The folded network is the dictionary written as ``binary.npz``: ``w0, w1, ...`` int8 +-1
``(M_l, K_l)`` hardware weights, ``t0 .. t{L-2}`` int64 thresholds of the hidden layers,
``scale`` and ``bias`` float64 of the output layer and ``input_threshold`` float64 (a raw pixel
value; input bit = pixel >= threshold). A network with conv and pool layers adds ``kinds``,
``input_shape`` and ``pool_sizes``, and its conv weights are ``(M, k, k, C)``
(:mod:`eiex.sw.images.xnor.export` describes the layout); a multi-layer perceptron's arrays are
exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eiex.errors import EiexError
from eiex.sw.images.xnor.arithmetic import run_layer
from eiex.sw.images.xnor.export import check_folded, read_folded

INPUT_THRESHOLD = 128.0


@dataclass(frozen=True)
class BatchNormParams:
    """One batch normalisation in eval mode: ``gamma * (x - mean) / sqrt(var + eps) + beta``."""

    gamma: np.ndarray  # float64 (M,)
    beta: np.ndarray  # float64 (M,)
    mean: np.ndarray  # float64 (M,)
    var: np.ndarray  # float64 (M,)
    eps: float

    @classmethod
    def of(cls, gamma, beta, mean, var, eps: float) -> "BatchNormParams":
        """Float64 vectors of one length; finiteness and the layer's size are checked when folding."""
        arrays = [np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in (gamma, beta, mean, var)]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1 or arrays[0].ndim != 1:
            raise EiexError(f"batch norm gamma, beta, mean and var must be equal-length vectors, got shapes "
                            f"{', '.join(str(a.shape) for a in arrays)}")
        return cls(*arrays, eps=float(eps))

    def std(self) -> np.ndarray:
        return np.sqrt(self.var + self.eps)


@dataclass(frozen=True)
class HiddenFold:
    """A hidden layer for the engine: fires iff ``acc >= thresholds`` with ``weights``."""

    weights: np.ndarray  # int8 (M, K), +-1, rows negated where ``flipped``
    thresholds: np.ndarray  # int64 (M,), anywhere in 0..K + 1
    flipped: np.ndarray  # bool (M,)


@dataclass(frozen=True)
class OutputFold:
    """The output layer for the engine: ``score = scale * (2 * acc - K) + bias``."""

    weights: np.ndarray  # int8 (M, K), +-1
    scale: np.ndarray  # float64 (M,)
    bias: np.ndarray  # float64 (M,)


def _check_layer(sign_weights, alpha, bn: BatchNormParams, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The +-1 weights as int8 and alpha as float64 (M,), or an EiexError naming ``what``."""
    w = np.asarray(sign_weights)
    if w.ndim != 2 or w.shape[0] == 0 or w.shape[1] == 0:
        raise EiexError(f"{what}: sign weights must be a non-empty (out, in) matrix, got shape {w.shape}")
    if not (np.issubdtype(w.dtype, np.integer) or np.issubdtype(w.dtype, np.floating)):
        raise EiexError(f"{what}: sign weights are not numeric ({w.dtype})")
    if not np.all((w == 1) | (w == -1)):
        raise EiexError(f"{what}: sign weights must all be +1 or -1")
    m = w.shape[0]
    a = np.ones(m) if alpha is None else np.asarray(alpha, dtype=np.float64)
    a = np.broadcast_to(a, (m,)) if a.ndim == 0 else a
    if a.shape != (m,):
        raise EiexError(f"{what}: alpha has shape {a.shape}, the layer has {m} rows")
    if bn.gamma.shape != (m,):
        raise EiexError(f"{what}: batch norm has {bn.gamma.shape[0]} channels, the layer has {m} rows")
    for name, value in (("alpha", a), ("gamma", bn.gamma), ("beta", bn.beta), ("mean", bn.mean),
                        ("var", bn.var), ("eps", np.float64(bn.eps))):
        if not np.all(np.isfinite(value)):
            raise EiexError(f"{what}: batch norm/alpha {name} contains NaN or infinite values")
    if not np.all(bn.var + bn.eps > 0):
        raise EiexError(f"{what}: batch norm var + eps must be positive")
    return w.astype(np.int8), np.array(a, dtype=np.float64)


def hidden_fires(acc, k: int, alpha, bn: BatchNormParams, rows=slice(None)) -> np.ndarray:
    """The float decision of a hidden layer: ``y >= 0`` at popcount ``acc`` (of the unflipped row).

    ``y = gamma * (alpha * (2 * acc - k) - mean) / sqrt(var + eps) + beta`` in float64, elementwise
    over ``acc`` (broadcast against the selected ``rows``). This is the definition the compiled
    thresholds reproduce exactly.
    """
    alpha = np.ones_like(bn.gamma) if alpha is None else np.broadcast_to(np.asarray(alpha, np.float64), bn.gamma.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        s = alpha[rows] * (2.0 * np.asarray(acc, dtype=np.float64) - k)
        y = bn.gamma[rows] * (s - bn.mean[rows]) / bn.std()[rows] + bn.beta[rows]
    return y >= 0


def compile_hidden(sign_weights, alpha, bn: BatchNormParams, what: str = "hidden layer") -> HiddenFold:
    """Fold alpha, batch norm and sign of one hidden layer into integer thresholds.

    Parameters
    ----------
    sign_weights : (M, K) array of +1/-1
    alpha : (M,) array, a scalar, or None (meaning 1): the XNOR-Net output scaling.
    bn : the layer's batch normalisation.

    Returns
    -------
    HiddenFold whose rows fire iff ``acc >= T``, exactly when :func:`hidden_fires` says so.
    """
    w, a = _check_layer(sign_weights, alpha, bn, what)
    m, k = w.shape
    direction = np.sign(bn.gamma) * np.sign(a)  # +1: y rises with acc; 0: y is constant
    flipped = direction < 0
    orient = np.where(flipped, -1.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # y >= 0  <=>  orient * dot >= orient * (mean - beta * std / gamma) / alpha
        boundary = orient * (bn.mean - bn.beta * bn.std() / bn.gamma) / a
        estimate = np.ceil((boundary + k) / 2.0)
    estimate = np.where(np.isfinite(estimate), estimate, 0.0)
    thresholds = np.clip(estimate, 0, k + 1).astype(np.int64)

    def fires(oriented_acc: np.ndarray, rows: np.ndarray) -> np.ndarray:
        acc = np.where(flipped[rows], k - oriented_acc, oriented_acc)
        return hidden_fires(acc, k, a, bn, rows)

    every_row = np.arange(m)
    with np.errstate(invalid="ignore", over="ignore"):  # only 0 * inf makes y NaN, at an end
        nan_rows = np.isnan(bn.gamma * (a * np.array([[-k], [k]], dtype=np.float64) - bn.mean)).any(0)
    if np.any(nan_rows):
        raise EiexError(f"{what}: batch norm/alpha values are so large that y is NaN "
                        f"(rows {', '.join(map(str, np.flatnonzero(nan_rows)[:5]))})")
    # the float decision is monotone in the oriented count, so T is exact iff it fires at T and
    # not at T - 1; rows where the estimate fails that check are bisected over 0..K + 1
    below = np.zeros(m, dtype=bool)
    below[thresholds > 0] = fires(thresholds[thresholds > 0] - 1, every_row[thresholds > 0])
    at = np.ones(m, dtype=bool)  # T = K + 1 counts as firing at T
    at[thresholds <= k] = fires(thresholds[thresholds <= k], every_row[thresholds <= k])
    wrong = np.flatnonzero(below | ~at)
    low, high = np.zeros(len(wrong), dtype=np.int64), np.full(len(wrong), k + 1, dtype=np.int64)
    while np.any(low < high):
        active = low < high
        mid = (low + high) // 2  # <= K while low < high
        fire = fires(mid, wrong)
        high = np.where(active & fire, mid, high)
        low = np.where(active & ~fire, mid + 1, low)
    thresholds[wrong] = low
    hardware = np.where(flipped[:, None], -w, w).astype(np.int8)
    return HiddenFold(weights=hardware, thresholds=thresholds, flipped=flipped)


def compile_output(sign_weights, alpha, bn: BatchNormParams, what: str = "output layer") -> OutputFold:
    """Fold alpha and batch norm of the output layer into ``scale * dot + bias`` (no flip needed)."""
    w, a = _check_layer(sign_weights, alpha, bn, what)
    std = bn.std()
    return OutputFold(weights=w, scale=bn.gamma * a / std, bias=bn.beta - bn.gamma * bn.mean / std)


def conv_matrix(sign_kernels) -> np.ndarray:
    """Conv sign kernels ``(M, C, k, k)`` (PyTorch's layout) as the image's ``(M, k * k * C)`` matrix,
    column ``(ky * k + kx) * C + ci`` (``xnor-image.md`` section 7)."""
    w = np.asarray(sign_kernels)
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise EiexError(f"conv sign kernels must be shaped (out, in, k, k), got {w.shape}")
    return w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)


def compile_conv(sign_kernels, alpha, bn: BatchNormParams, what: str = "conv layer") -> HiddenFold:
    """A binarized conv layer with its per-channel alpha and batch norm as a hidden layer over the
    ``k * k * C`` patch columns: one threshold per output channel, exactly as :func:`compile_hidden`."""
    return compile_hidden(conv_matrix(sign_kernels), alpha, bn, what)


def fold_layers(hidden: list[HiddenFold], output: OutputFold,
                input_threshold: float = INPUT_THRESHOLD) -> dict[str, np.ndarray]:
    """The ``binary.npz`` dictionary of a folded network (see the module docstring)."""
    arrays: dict[str, np.ndarray] = {}
    for l, layer in enumerate(hidden):
        arrays[f"w{l}"] = layer.weights.astype(np.int8)
        arrays[f"t{l}"] = layer.thresholds.astype(np.int64)
    arrays[f"w{len(hidden)}"] = output.weights.astype(np.int8)
    arrays["scale"] = output.scale.astype(np.float64)
    arrays["bias"] = output.bias.astype(np.float64)
    arrays["input_threshold"] = np.array(input_threshold, dtype=np.float64)
    check_folded(arrays, "folded network")
    return arrays


def fold_model(model) -> dict[str, np.ndarray]:
    """Fold a trained :class:`eiex.sw.binarize.layers.BnnMlp` or :class:`~eiex.sw.binarize.layers.BnnCnv`
    into the ``binary.npz`` dictionary."""
    from eiex.sw.binarize.layers import BnnCnv  # that module builds on this one

    if isinstance(model, BnnCnv):
        return fold_map_layers(model.fold_inputs(), model.input_map_shape, model.input_threshold)
    layers = model.fold_inputs()
    hidden = [compile_hidden(w, a, bn, what=f"layer {l}") for l, (w, a, bn) in enumerate(layers[:-1])]
    output = compile_output(*layers[-1], what=f"layer {len(layers) - 1}")
    return fold_layers(hidden, output, model.input_threshold)


def fold_map_layers(layers, input_shape, input_threshold: float = INPUT_THRESHOLD) -> dict[str, np.ndarray]:
    """The ``binary.npz`` dictionary of a network with conv and pool layers.

    ``layers`` in execution order: ``("conv", sign kernels (M, C, k, k), alpha, bn)``, ``("pool", size)``
    or ``("linear", sign weights (M, K), alpha, bn)`` (columns in the image's channels-last order),
    the last one the output layer; ``input_shape`` ``(H, W, C)``.
    """
    arrays: dict[str, np.ndarray] = {}
    kinds, pool_sizes = [], []
    weighted = sum(step[0] != "pool" for step in layers)
    l = 0
    for step in layers:
        what = f"layer {len(kinds)}"
        if step[0] == "pool":
            kinds.append("pool")
            pool_sizes.append(int(step[1]))
            continue
        kind, sign_weights, alpha, bn = step
        if l == weighted - 1:
            if kind != "linear":
                raise EiexError(f"{what}: the output layer must be fully connected, not {kind}")
            output = compile_output(sign_weights, alpha, bn, what)
            arrays[f"w{l}"] = output.weights.astype(np.int8)
            arrays["scale"], arrays["bias"] = output.scale.astype(np.float64), output.bias.astype(np.float64)
            kinds.append("output")
        elif kind == "conv":
            fold = compile_conv(sign_weights, alpha, bn, what)
            m, c, k, _ = np.shape(sign_weights)
            arrays[f"w{l}"] = fold.weights.reshape(m, k, k, c).astype(np.int8)  # the image's columns, unflattened
            arrays[f"t{l}"] = fold.thresholds.astype(np.int64)
            kinds.append("conv")
        else:
            fold = compile_hidden(sign_weights, alpha, bn, what)
            arrays[f"w{l}"] = fold.weights.astype(np.int8)
            arrays[f"t{l}"] = fold.thresholds.astype(np.int64)
            kinds.append("hidden")
        l += 1
    arrays["kinds"] = np.array(kinds)
    arrays["input_shape"] = np.array(input_shape, dtype=np.int64)
    arrays["pool_sizes"] = np.array(pool_sizes, dtype=np.int64)
    arrays["input_threshold"] = np.array(input_threshold, dtype=np.float64)
    read_folded(arrays, "folded network")
    return arrays


def run_folded(arrays: dict[str, np.ndarray], raw_inputs: np.ndarray, batch: int = 2000) -> np.ndarray:
    """Scores of the folded network, with the engine's arithmetic (``xnor-image.md`` 5, 6 and 7: the
    golden model's layers).

    ``raw_inputs`` are raw values (uint8 pixels), shaped ``(n, ...)`` and flattened per sample; for a
    network with maps, ``(n, C, H, W)`` samples (PyTorch's layout) are read channels-last first, as
    the image's input is. Returns float64 scores ``(n, classes)``; the prediction is their argmax
    (lowest on ties).
    """
    network = read_folded(arrays, "folded network")
    x_all = np.asarray(raw_inputs)
    if network.input_shape is not None and x_all.ndim == 4:
        x_all = x_all.transpose(0, 2, 3, 1)
    x_all = x_all.reshape(len(x_all), -1)
    if x_all.shape[1] != network.inputs:
        raise EiexError(f"inputs have {x_all.shape[1]} values each, the network takes {network.inputs}")
    scores = []
    for start in range(0, len(x_all), batch):
        x = (x_all[start:start + batch] >= network.input_threshold).astype(np.uint8)
        for layer in network.layers:
            x = run_layer(layer, x)
        scores.append(network.scale * x + network.bias)
    return np.concatenate(scores) if scores else np.zeros((0, len(network.scale)))
