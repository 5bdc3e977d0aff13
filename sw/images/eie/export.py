"""Float weights of a multi-layer perceptron to an EIE image: codebooks, fixed point, row order.

- Codebooks: a layer with at most ``2**idx_bits - 1`` distinct non-zero weights uses them as its
  codebook; a layer with more is clustered first (k-means, :mod:`eiex.sw.compress.sharing`).
  For an engine built with ``mac="index"`` the codebook is the identity instead, and the codes are
  the weights' integers (:mod:`eiex.sw.images.eie.identity`).
- ``weight_frac`` per layer: the finest scale at which every codebook value fits ``weight_bits``
  and every bias fits ``bias_bits`` (at ``act_frac + weight_frac``); for an identity codebook, the
  scale of the weights' integers.
- ``act_frac``: with calibration inputs, the candidate whose golden-model outputs agree best with
  the float model (most equal predictions, then the smallest squared error); without them, the
  value given in the engine parameters.
- Input mean: folded into the first layer's bias (:func:`fold_input_mean`), so that zero raw inputs
  stay zero and the first layer gets the activation sparsity the engine is built to skip.
- Load balance (optional, beyond the paper): a hidden layer's rows are reordered so that every PE
  gets about the same number of entries in every column, weighted by how often the column's input
  is non-zero on the calibration inputs; the next layer's columns follow, so the image computes the
  same function and the final outputs keep their order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from eiex.sw.images.eie import arithmetic as golden
from eiex.sw.images.eie.encode import IntLayer, build_image
from eiex.sw.images.eie.identity import identity_layer, needed_index_bits
from eiex.sw.images.eie.powers import check_shift_codebook
from eiex.sw.images.eie.image import DEFAULT_MAC, EieImage, EngineParams, check_mac
from eiex.errors import EiexError
from eiex.sw.npz import read_npz
from eiex.sw.compress.sharing import share_layer
from eiex.sw.images.words import fits_signed


@dataclass(frozen=True)
class FloatLayer:
    weight: np.ndarray  # (out, in) float, zeros where pruned
    bias: np.ndarray  # (out,) float
    relu: bool
    name: str


def layers_from_npz(arrays: dict[str, np.ndarray], source: str) -> list[FloatLayer]:
    """``w0, b0, w1, b1, ...`` (and an optional boolean ``relu`` array) as float layers."""
    n = 0
    while f"w{n}" in arrays:
        n += 1
    if n == 0:
        raise EiexError(f"{source} holds no w0: an MLP's weights are saved as w0, b0, w1, b1, ...")
    relu = np.ones(n, dtype=bool)
    relu[-1] = False
    if "relu" in arrays:
        relu = np.asarray(arrays["relu"])
        if relu.shape != (n,) or relu.dtype != bool:
            raise EiexError(f"{source}: relu must be a boolean array of {n} flags, not {relu.dtype} {relu.shape}")
    layers = []
    for l in range(n):
        w = np.asarray(arrays[f"w{l}"])
        b = np.asarray(arrays.get(f"b{l}", np.zeros(w.shape[0] if w.ndim else 0)))
        if w.ndim != 2:
            raise EiexError(f"{source}: w{l} has shape {w.shape}; the EIE engine runs (out, in) matrices")
        if b.shape != (w.shape[0],):
            raise EiexError(f"{source}: b{l} has shape {b.shape}, w{l} needs ({w.shape[0]},)")
        if l and w.shape[1] != layers[-1].weight.shape[0]:
            raise EiexError(f"{source}: w{l} takes {w.shape[1]} inputs but w{l - 1} gives {layers[-1].weight.shape[0]}")
        for key, value in ((f"w{l}", w), (f"b{l}", b)):
            if not np.issubdtype(value.dtype, np.number) or not np.all(np.isfinite(value)):
                raise EiexError(f"{source}: {key} contains NaN, infinite or non-numeric values")
        layers.append(FloatLayer(w.astype(np.float64), b.astype(np.float64), bool(relu[l]), f"fc{l + 1}"))
    return layers


def codebook_of(layer: FloatLayer, idx_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes, float codebook with entry 0 == 0) of one layer."""
    values = np.unique(layer.weight[layer.weight != 0])
    if len(values) <= 2**idx_bits - 1:
        codebook = np.zeros(2**idx_bits)
        codebook[1 : 1 + len(values)] = values
        codes = np.zeros(layer.weight.shape, dtype=np.int64)
        nonzero = layer.weight != 0
        codes[nonzero] = np.searchsorted(values, layer.weight[nonzero]) + 1
        return codes, codebook
    shared = share_layer(layer.weight, idx_bits, "optimal")
    return shared.codes, shared.codebook.astype(np.float64)


def needed_idx_bits(layers: list[FloatLayer]) -> int:
    distinct = max(len(np.unique(l.weight[l.weight != 0])) for l in layers)
    return max(1, int(distinct).bit_length())


def choose_weight_frac(codebook: np.ndarray, bias: np.ndarray, act_frac: int, params: EngineParams) -> int:
    """The finest scale at which the codebook fits weight_bits and the biases fit bias_bits."""
    for frac in range(62 - act_frac, -1, -1):
        if fits_signed(np.rint(codebook * 2.0**frac), params.weight_bits) and fits_signed(
            np.rint(bias * 2.0 ** (frac + act_frac)), params.bias_bits
        ):
            return frac
    raise EiexError("a codebook value or bias is too large for weight_bits/bias_bits at any scale")


# How much the balance of whole-layer totals counts beside the balance of each column (measured on
# the compressed LeNet-300-100 at 8 PEs: 1 and 10 are within 1% of each other, 0 is 2% slower).
TOTAL_BALANCE_WEIGHT = 10.0
# Pairwise swap search only while one sweep costs at most this many multiply-adds (rows**2 * cols);
# larger layers (an fc6-sized layer) keep the greedy assignment.
SWAP_SEARCH_BUDGET = 1 << 28
MAX_SWEEPS = 20


def balanced_row_order(codes: np.ndarray, n_pe: int, activity: np.ndarray | None = None) -> np.ndarray:
    """Original row indices in image order, so that every PE gets about the same work in every
    column, not only in total.

    A PE's queue absorbs only a few columns of imbalance, so the objective is the spread of entries
    between PEs column by column, each column weighted by how often its input is non-zero
    (``activity``, uniform when not given), plus ``TOTAL_BALANCE_WEIGHT`` times the spread of the
    weighted totals. Rows are placed greedily (most work first, each where it adds the least), then
    pairs of rows on different PEs are swapped while a swap lowers the objective. PE ``p`` owns
    exactly ``ceil((rows - p) / n_pe)`` rows, kept in their original order.
    """
    rows, cols = codes.shape
    x = (codes != 0).astype(np.float64)
    w = np.ones(cols) if activity is None else np.asarray(activity, dtype=np.float64)
    lam = TOTAL_BALANCE_WEIGHT
    t = x @ w  # expected work of each row
    load = np.zeros((n_pe, cols))  # entries per PE and column
    total = np.zeros(n_pe)
    capacity = np.array([max(0, -(-(rows - p) // n_pe)) for p in range(n_pe)])
    pe_of = np.empty(rows, dtype=np.int64)
    for r in np.argsort(-t, kind="stable"):  # a loop over rows, vectorized over PEs and columns
        nz = np.flatnonzero(x[r])
        open_pes = np.flatnonzero(capacity > 0)
        added = load[np.ix_(open_pes, nz)] @ w[nz] + lam * total[open_pes] * t[r]
        p = open_pes[np.argmin(added)]
        pe_of[r], capacity[p] = p, capacity[p] - 1
        load[p, nz] += 1
        total[p] += t[r]
    if n_pe > 1 and rows * rows * cols <= SWAP_SEARCH_BUDGET:
        _swap_search(x, w, t, pe_of, load, total, lam)
    order = np.empty(rows, dtype=np.int64)
    for p in range(n_pe):
        order[p::n_pe] = np.flatnonzero(pe_of == p)
    return order


def _swap_search(x, w, t, pe_of, load, total, lam) -> None:
    """Swap row pairs between PEs (best partner of each row in turn) while the objective falls.

    Swapping row ``r`` (on PE ``p``) with row ``s`` (on ``q``) changes the objective by
    ``2 * sum_j w_j (d_j (L_pj - L_qj) + d_j**2) + 2 * lam * (e (T_p - T_q) + e**2)``
    with ``d = x_s - x_r`` and ``e = t_s - t_r``."""
    for _ in range(MAX_SWEEPS):
        swapped = False
        for r in range(len(x)):
            p = pe_of[r]
            d = x - x[r]
            e = t - t[r]
            delta = ((d * (load[p] - load[pe_of]) + d * d) @ w) + lam * (e * (total[p] - total[pe_of]) + e * e)
            delta[pe_of == p] = np.inf
            s = int(np.argmin(delta))
            if delta[s] < -1e-9:
                q = pe_of[s]
                load[p] += x[s] - x[r]
                load[q] += x[r] - x[s]
                total[p] += t[s] - t[r]
                total[q] += t[r] - t[s]
                pe_of[r], pe_of[s] = q, p
                swapped = True
        if not swapped:
            return


def fold_input_mean(layers: list[FloatLayer], input_norm: dict) -> tuple[list[FloatLayer], dict]:
    """Move the input normalization's mean into the first layer's bias.

    ``W (x s - m) / d + b = W (x s / d) + (b - (m / d) W 1)``: the same function, but a raw input
    of 0 (a background pixel) now reaches the engine as 0, so the leading non-zero detector skips
    it. Without the fold every normalized pixel is non-zero and the first layer gets no activation
    sparsity at all.
    """
    mean, std = float(input_norm["mean"]), float(input_norm["std"])
    if mean == 0:
        return layers, input_norm
    first = layers[0]
    folded = replace(first, bias=first.bias - (mean / std) * first.weight.sum(axis=1))
    return [folded, *layers[1:]], {**input_norm, "mean": 0.0}


@dataclass(frozen=True)
class SharedFloatLayer:
    """A layer after codebook assignment and row reordering, before fixed-point scaling."""

    codes: np.ndarray
    codebook: np.ndarray
    bias: np.ndarray
    relu: bool
    name: str
    weight_frac: int | None = None  # fixed (an identity codebook), else the finest that fits


def share_and_order(layers: list[FloatLayer], params: EngineParams, balance: bool,
                    activity: list[np.ndarray] | None = None,
                    identity: bool = False) -> tuple[list[SharedFloatLayer], dict]:
    shared, row_order = [], {}
    previous_order = None
    for l, layer in enumerate(layers):
        frac = None
        if identity:
            codes, codebook, frac = identity_layer(layer.weight, params.idx_bits, layer.name)
        else:
            codes, codebook = codebook_of(layer, params.idx_bits)
        bias = layer.bias
        column_activity = None if activity is None else activity[l]
        if previous_order is not None:
            codes = codes[:, previous_order]  # this layer's inputs arrive in the new order
            column_activity = None if activity is None else column_activity[previous_order]
        previous_order = None
        if balance and l < len(layers) - 1:
            previous_order = balanced_row_order(codes, params.n_pe, column_activity)
            codes, bias = codes[previous_order], bias[previous_order]
            row_order[layer.name] = previous_order.tolist()
        shared.append(SharedFloatLayer(codes, codebook, bias, layer.relu, layer.name, frac))
    return shared, row_order


def scale(layers: list[SharedFloatLayer], params: EngineParams) -> list[IntLayer]:
    """Fixed point at ``params.act_frac``, each layer at its own ``weight_frac`` if it has one, else at
    its finest fitting one."""
    scaled = []
    for layer in layers:
        frac = layer.weight_frac
        if frac is None:
            frac = choose_weight_frac(layer.codebook, layer.bias, params.act_frac, params)
        elif not fits_signed(np.rint(layer.bias * 2.0 ** (frac + params.act_frac)), params.bias_bits):
            raise EiexError(f"{layer.name}: a bias does not fit bias_bits = {params.bias_bits} at act_frac "
                            f"{params.act_frac} + weight_frac {frac}")
        codebook = np.rint(layer.codebook * 2.0**frac).astype(np.int64)
        bias = np.rint(layer.bias * 2.0 ** (frac + params.act_frac)).astype(np.int64)
        scaled.append(IntLayer(layer.codes, codebook, bias, layer.relu, frac, layer.name))
    return scaled


def export_eie(
    layers: list[FloatLayer],
    params: EngineParams,
    *,
    input_norm: dict | None = None,
    calibration: np.ndarray | None = None,
    balance: bool = False,
    search_act_frac: bool = True,
    mac: str = DEFAULT_MAC,
) -> tuple[EieImage, dict]:
    """An image of ``layers`` for an engine whose MAC is ``mac``, and a record of the fixed-point
    choice. ``mac="index"``: identity codebooks (or an error naming a layer whose weights do not allow
    one); ``mac="shift"``: an error unless every codebook entry is 0 or a signed power of two.

    The input normalization's mean, if any, is folded into the first layer's bias; the image's
    ``input`` records the normalization that remains (mean 0).

    ``calibration`` is raw inputs, e.g. the training pixels. With it (and ``search_act_frac``)
    every ``act_frac`` is tried on the golden model and the one that agrees best with the float
    model is kept: most equal predictions, then the smallest squared error of the outputs;
    otherwise ``params.act_frac`` is used as given. It also tells the load balancer how often each
    input is non-zero.
    """
    check_mac(mac)
    if calibration is not None and input_norm is None:
        raise EiexError("calibration needs the input normalization (pixel_scale, mean, std)")
    if input_norm is not None:
        layers, input_norm = fold_input_mean(layers, input_norm)
    activity = None
    if calibration is not None:
        values = float_activations(layers, calibration, input_norm)
        activity = [(x != 0).mean(axis=0) for x in values[:-1]]
        reference = values[-1]
    shared, row_order = share_and_order(layers, params, balance, activity, identity=mac == "index")
    searching = calibration is not None and search_act_frac
    candidates = range(params.act_bits - 1, -1, -1) if searching else [params.act_frac]
    best, tried = None, {}
    for act_frac in candidates:
        trial = replace(params, act_frac=act_frac)
        try:
            image = build_image(scale(shared, trial), trial, input=input_norm)
        except EiexError:
            if not searching:
                raise
            continue
        image.row_order = row_order
        if mac == "shift":
            check_shift_codebook(image)  # act_frac does not change the codebook: the first trial decides
        if not searching:
            return image, {"act_frac": act_frac}
        fixed = golden.run(image, golden.quantize_input(image, calibration)) / 2.0**act_frac
        agreement = float((fixed.argmax(axis=1) == reference.argmax(axis=1)).mean())
        error = float(((fixed - reference) ** 2).mean())
        tried[act_frac] = {"agreement": agreement, "mse": error}
        if best is None or (agreement, -error) > (tried[best[0]]["agreement"], -tried[best[0]]["mse"]):
            best = (act_frac, image)
    if best is None:
        raise EiexError("no act_frac gives an image whose values fit the engine's widths")
    return best[1], {"act_frac": best[0], "calibration": tried}


def float_activations(layers: list[FloatLayer], raw: np.ndarray, input_norm: dict) -> list[np.ndarray]:
    """The float MLP on raw inputs: every layer's input, then the final output."""
    x = (np.asarray(raw, dtype=np.float64) * input_norm["pixel_scale"] - input_norm["mean"]) / input_norm["std"]
    values = [x]
    for layer in layers:
        x = x @ layer.weight.T + layer.bias
        if layer.relu:
            x = np.maximum(x, 0)
        values.append(x)
    return values


def float_forward(layers: list[FloatLayer], raw: np.ndarray, input_norm: dict) -> np.ndarray:
    """The float MLP on raw inputs: what the fixed-point image approximates."""
    return float_activations(layers, raw, input_norm)[-1]


#: what a layer kind of a report's architecture is called in PyTorch, for error messages
TORCH_NAMES = {"conv2d": "Conv2d", "maxpool2d": "MaxPool2d", "avgpool2d": "AvgPool2d", "batchnorm": "BatchNorm"}


def relu_flags(architecture: list[dict], model: str) -> np.ndarray:
    """Which linear layers a ReLU follows, from a report's architecture; anything the EIE engine
    cannot run (convolutions, pooling, batch norm left unfolded) is refused by name."""
    relu = []
    for entry in architecture:
        op, name = entry.get("op"), entry.get("name", entry.get("key", "?"))
        if op == "linear":
            relu.append(False)
        elif op == "relu":
            if not relu:
                raise EiexError(f"{model}: `{name}` applies ReLU to the input; EIE's first layer reads the "
                                "input as it is")
            relu[-1] = True
        elif op == "batchnorm":
            raise EiexError(f"{model}: batch norm `{name}` does not directly follow a Linear layer, so it could "
                            "not be folded into one; EIE runs Linear layers and ReLU")
        elif op not in ("flatten", "dropout"):
            raise EiexError(f"{model}: EIE runs fully connected layers; `{name}` is {TORCH_NAMES.get(op, op)}")
    return np.array(relu, dtype=bool)


def read_model_folder(folder: Path) -> tuple[dict[str, np.ndarray], dict]:
    """compressed.npz (with the ``relu`` flags of its architecture) and report.json of an
    ``eiex compress`` output folder whose model is an MLP."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EiexError(f"model folder {folder} does not exist")
    report_path, npz_path = folder / "report.json", folder / "compressed.npz"
    for path in (report_path, npz_path):
        if not path.is_file():
            raise EiexError(f"{folder} is not an eiex compress output: {path.name} is missing")
    try:
        report = json.loads(report_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EiexError(f"cannot read {report_path}: {e}") from None
    arrays = read_npz(npz_path)
    if isinstance(report.get("architecture"), list):
        arrays["relu"] = relu_flags(report["architecture"], report.get("model", str(folder)))
    return arrays, report


def calibration_images(dataset: str | None, limit: int = 10_000) -> np.ndarray | None:
    """Up to ``limit`` training inputs of the dataset a model was compressed on, flattened; None
    when that dataset cannot be read here (a user's npz that has moved, say)."""
    from eiex.sw.data import load_dataset

    if dataset is None:
        return None
    try:
        train = load_dataset(dataset).train.images[:limit]
    except EiexError:
        return None
    return train.reshape(len(train), -1)


def export_model_folder(folder, n_pe: int, *, balance: bool = False, mac: str = DEFAULT_MAC, **overrides) -> EieImage:
    """The image of an ``eiex compress`` output folder for an engine whose MAC is ``mac``: its input
    normalization folded in, and ``act_frac`` (unless given) calibrated on the training inputs of the
    dataset it was compressed on, when they can be read. ``overrides``: engine parameters
    (``idx_bits``, ``act_bits``, ...)."""
    arrays, report = read_model_folder(folder)
    layers = layers_from_npz(arrays, str(Path(folder) / "compressed.npz"))
    image, _ = export_model(layers, engine_for(layers, n_pe, mac=mac, **overrides), input_norm=report.get("input"),
                            calibration=calibration_images(report.get("dataset")), balance=balance,
                            auto_ptr_bits=overrides.get("ptr_bits") is None,
                            search_act_frac=overrides.get("act_frac") is None, mac=mac)
    return image


def engine_for(layers: list[FloatLayer], n_pe: int, mac: str = DEFAULT_MAC, **overrides) -> EngineParams:
    """Engine parameters for these layers: idx_bits, unless given, from their distinct values (for
    ``mac="index"``: from the range of their integers)."""
    settings = {"n_pe": n_pe, **{k: v for k, v in overrides.items() if v is not None}}
    if "idx_bits" not in settings:
        settings["idx_bits"] = needed_index_bits([l.weight for l in layers], [l.name for l in layers]) \
            if mac == "index" else needed_idx_bits(layers)
    return EngineParams(**settings)


def export_model(
    layers: list[FloatLayer],
    params: EngineParams,
    *,
    input_norm: dict | None,
    calibration: np.ndarray | None,
    balance: bool,
    auto_ptr_bits: bool,
    search_act_frac: bool = True,
    mac: str = DEFAULT_MAC,
) -> tuple[EieImage, dict]:
    """``export_eie`` with pointer width grown to the largest PE when the caller did not fix it."""
    if auto_ptr_bits:
        params = replace(params, ptr_bits=32)
    image, info = export_eie(layers, params, input_norm=input_norm, calibration=calibration, balance=balance,
                             search_act_frac=search_act_frac, mac=mac)
    if auto_ptr_bits:
        widest = max(int(pe.ptr.max(initial=0)) for pe in image.pes)
        image.engine = replace(image.engine, ptr_bits=max(16, widest.bit_length()))
    return image, info
