"""Folded binarized weights (npz arrays) to an XNOR image: validation, folding, threshold widths.

The folded arrays of a multi-layer perceptron are ``w0, w1, ...`` (+1/-1, ``(M_l, K_l)``),
``t0 .. t{L-2}`` (integer hidden thresholds: ``y = 1`` iff ``acc >= T``, any integer), ``scale``
and ``bias`` (``(M_last,)``) and the scalar ``input_threshold``; other keys are ignored.

A network with conv and pool layers (``xnor-image.md`` section 7) adds three keys and is written
as a version-2 image:

- ``kinds``: the layer kinds in execution order (strings ``conv``, ``pool``, ``hidden``,
  ``output``); conv and pool layers come first, ``output`` is last. ``w{l}`` and ``t{l}`` number
  the layers with weights (conv, hidden, output) in order, pool layers skipped.
- ``input_shape``: ``[H, W, C]`` of the input map; the inputs are read channels-last.
- ``pool_sizes``: the window ``p`` of each pool layer, in order.

A conv layer's ``w{l}`` is int8 ``(M, k, k, C)``: ``w[r, ky, kx, ci]``, so that its reshape to
``(M, k * k * C)`` is the image's column order ``(ky * k + kx) * C + ci``; its ``t{l}`` are per
output channel. The map shapes follow from ``input_shape`` (valid stride-1 convs, pools dropping
trailing rows and columns) and the first fully connected layer reads the last map channels-last.

- Thresholds are clamped to ``[0, K + 1]``: ``acc`` lies in ``[0, K]``, so a threshold at or below 0
  always fires and one above ``K`` never does, exactly like 0 and ``K + 1``. The clamp keeps
  ``thr_bits`` (the smallest signed width holding a layer's thresholds, at least 2) small. The
  output layer, without thresholds, gets ``thr_bits = 2``.
- Folding: :func:`eiex.sw.images.xnor.folding.choose_folding`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from eiex.errors import EiexError
from eiex.sw.npz import read_npz
from eiex.sw.images.xnor.folding import OUTPUT_THR_BITS, choose_folding, kind_names
from eiex.sw.images.xnor.image import (XnorConvLayer, XnorImage, XnorLayer, XnorPoolLayer, conv_out_shape,
                                       pool_out_shape, signed_bits)

#: the keys a network with conv and pool layers adds to the folded arrays
MAP_KEYS = ("kinds", "input_shape", "pool_sizes")
FOLDED_KINDS = ("conv", "pool", "hidden", "output")


def _finite_numbers(source: str, key: str, value: np.ndarray) -> None:
    if value.dtype == bool or not np.issubdtype(value.dtype, np.number) or np.issubdtype(value.dtype, np.complexfloating):
        raise EiexError(f"{source}: {key} must hold real numbers, not {value.dtype}")
    if not np.all(np.isfinite(value)):
        raise EiexError(f"{source}: {key} contains NaN or infinite values")


def _count_weight_keys(arrays: dict, source: str) -> int:
    """How many layers ``w0, w1, ...`` hold; stray ``w`` and ``t`` keys are refused."""
    n = 0
    while f"w{n}" in arrays:
        n += 1
    if n == 0:
        raise EiexError(f"{source} holds no w0: folded binary weights are saved as w0, w1, ... and t0, t1, ...")
    for key in arrays:
        if key[:1] in "wt" and key[1:].isdigit():
            index = int(key[1:])
            if key[0] == "w" and index >= n:
                raise EiexError(f"{source}: {key} is present but w{n} is missing")
            if key[0] == "t" and index >= n - 1:
                expected = f"t0 .. t{n - 2}" if n > 1 else "none"
                raise EiexError(f"{source}: {key} is present but the output layer w{n - 1} takes no thresholds "
                                f"(expected {expected})")
    return n


def _plus_minus_one(source: str, key: str, w: np.ndarray) -> np.ndarray:
    _finite_numbers(source, key, w)
    bad = np.argwhere((w != 1) & (w != -1))
    if bad.size:
        axes = ("row", "column") if w.ndim == 2 else ("row", "ky", "kx", "channel")
        at = ", ".join(f"{axis} {i}" for axis, i in zip(axes, bad[0]))
        raise EiexError(f"{source}: {key} must hold only +1 and -1, found {w[tuple(bad[0])]} at {at}")
    return w.astype(np.int8)


def _thresholds(arrays: dict, source: str, l: int, rows: int, note: str = "") -> np.ndarray:
    t = np.asarray(arrays[f"t{l}"])
    if t.shape != (rows,):
        raise EiexError(f"{source}: t{l} has shape {t.shape}, w{l} needs ({rows},){note}")
    if t.dtype == bool or not np.issubdtype(t.dtype, np.integer):
        raise EiexError(f"{source}: t{l} must hold integers, not {t.dtype}")
    return t.astype(np.int64)


def _outputs_and_input(arrays: dict, source: str, n: int, m: int) -> tuple[np.ndarray, np.ndarray, float]:
    for key in ("scale", "bias", "input_threshold"):
        if key not in arrays:
            raise EiexError(f"{source} lacks {key}")
    out = []
    for key in ("scale", "bias"):
        value = np.asarray(arrays[key])
        if value.shape != (m,):
            raise EiexError(f"{source}: {key} has shape {value.shape}, w{n - 1} needs ({m},)")
        _finite_numbers(source, key, value)
        out.append(value.astype(np.float64))
    t_in = np.asarray(arrays["input_threshold"])
    if t_in.size != 1 or t_in.ndim > 1:
        raise EiexError(f"{source}: input_threshold must be a scalar, not shape {t_in.shape}")
    _finite_numbers(source, "input_threshold", t_in)
    return out[0], out[1], float(t_in.reshape(()))


def check_folded(arrays: dict, source: str = "folded weights") -> tuple[list, list, np.ndarray, np.ndarray, float]:
    """Validate the folded arrays of a multi-layer perceptron; returns (weights, hidden thresholds,
    scale, bias, input threshold). Arrays with conv or pool layers are read by :func:`read_folded`."""
    if "kinds" in arrays:
        raise EiexError(f"{source} holds conv or pool layers (kinds); read it with read_folded")
    n = _count_weight_keys(arrays, source)
    for key in [f"t{l}" for l in range(n - 1)] + ["scale", "bias", "input_threshold"]:
        if key not in arrays:
            raise EiexError(f"{source} lacks {key}")
    weights, thresholds = [], []
    for l in range(n):
        w = np.asarray(arrays[f"w{l}"])
        if w.ndim != 2 or 0 in w.shape:
            raise EiexError(f"{source}: w{l} has shape {w.shape}; expected a non-empty (out, in) matrix")
        w = _plus_minus_one(source, f"w{l}", w)
        if l and w.shape[1] != weights[-1].shape[0]:
            raise EiexError(f"{source}: w{l} takes {w.shape[1]} inputs but w{l - 1} gives {weights[-1].shape[0]}")
        weights.append(w)
        if l < n - 1:
            thresholds.append(_thresholds(arrays, source, l, w.shape[0]))
    scale, bias, input_threshold = _outputs_and_input(arrays, source, n, weights[-1].shape[0])
    return weights, thresholds, scale, bias, input_threshold


@dataclass(frozen=True)
class FoldedLayer:
    """One layer of a folded network, with the attributes the golden model's ``run_layer`` reads.

    ``weights`` int8 ``(M, K)`` +1/-1 in the image's column order and ``thresholds`` int64 ``(M,)``
    (None for pool and output layers); ``in_shape`` ``(H, W, C)``, ``kernel`` and ``size`` for the
    map layers."""

    name: str
    kind: str
    weights: np.ndarray | None = None
    thresholds: np.ndarray | None = None
    in_shape: tuple[int, int, int] | None = None
    kernel: int | None = None
    size: int | None = None

    in_features = property(lambda self: self.weights.shape[1], doc="``K``: columns of the weight matrix.")
    out_features = property(lambda self: self.weights.shape[0], doc="``M``: rows of the weight matrix.")

    @property
    def out_shape(self) -> tuple[int, int, int] | None:
        if self.kind == "conv":
            return conv_out_shape(self.in_shape, self.out_features, self.kernel)
        return pool_out_shape(self.in_shape, self.size) if self.kind == "pool" else None

    @property
    def folding_shape(self):
        """What :func:`choose_folding` folds: ``(M, K)``, ``(M, K, positions)`` for a conv, None for a pool."""
        if self.kind == "pool":
            return None
        if self.kind == "conv":
            h, w, _ = self.out_shape
            return (self.out_features, self.in_features, h * w)
        return (self.out_features, self.in_features)


@dataclass(frozen=True)
class FoldedNetwork:
    """Validated folded arrays: the layers in execution order and the output scores' ``scale`` and
    ``bias``; ``input_shape`` ``(H, W, C)`` for a network with maps, else None."""

    layers: list[FoldedLayer]
    scale: np.ndarray
    bias: np.ndarray
    input_threshold: float
    input_shape: tuple[int, int, int] | None = None

    @property
    def inputs(self) -> int:
        """Input values per sample."""
        if self.input_shape is not None:
            return int(np.prod(self.input_shape))
        return self.layers[0].in_features


def read_folded(arrays: dict, source: str = "folded weights") -> FoldedNetwork:
    """Validate folded arrays (see the module docstring), with or without conv and pool layers."""
    if "kinds" not in arrays:
        weights, thresholds, scale, bias, input_threshold = check_folded(arrays, source)
        names = kind_names(["hidden"] * len(weights))
        layers = [FoldedLayer(names[l], "hidden" if l < len(weights) - 1 else "output", w,
                              thresholds[l] if l < len(weights) - 1 else None) for l, w in enumerate(weights)]
        return FoldedNetwork(layers, scale, bias, input_threshold)
    return _read_map_network(arrays, source)


def _positive_integers(arrays: dict, key: str, source: str, length: int, what: str) -> list[int]:
    """``length`` positive integers under ``key``; ``what`` says what they must be (``be ...``, ``list ...``)."""
    if key not in arrays:
        raise EiexError(f"{source} lacks {key}, which a network with conv or pool layers records")
    value = np.asarray(arrays[key])
    if value.ndim != 1 or len(value) != length or value.dtype == bool or not np.issubdtype(value.dtype, np.integer) \
            or np.any(value < 1):
        raise EiexError(f"{source}: {key} must {what}, not {value.tolist()!r}")
    return [int(v) for v in value]


def _read_map_network(arrays: dict, source: str) -> FoldedNetwork:
    kinds = np.asarray(arrays["kinds"])
    if kinds.ndim != 1 or kinds.dtype.kind != "U" or len(kinds) == 0 or not set(kinds.tolist()) <= set(FOLDED_KINDS):
        raise EiexError(f"{source}: kinds must list the layer kinds ({', '.join(FOLDED_KINDS)}), not "
                        f"{kinds.tolist()!r}")
    kinds = kinds.tolist()
    if kinds[-1] != "output" or "output" in kinds[:-1]:
        raise EiexError(f"{source}: kinds must end with the one output layer, not {kinds}")
    fully_connected = [i for i, kind in enumerate(kinds) if kind in ("hidden", "output")]
    if any(kind in ("conv", "pool") for kind in kinds[fully_connected[0]:]):
        raise EiexError(f"{source}: conv and pool layers come before the fully connected ones, not {kinds}")
    n = _count_weight_keys(arrays, source)
    if n != len(kinds) - kinds.count("pool"):
        raise EiexError(f"{source}: kinds name {len(kinds) - kinds.count('pool')} layers with weights but the "
                        f"arrays hold w0 .. w{n - 1}")
    for key in [f"t{l}" for l in range(n - 1)]:
        if key not in arrays:
            raise EiexError(f"{source} lacks {key}")
    h, w, c = _positive_integers(arrays, "input_shape", source, 3, "be [H, W, C], three positive integers")
    input_shape = (h, w, c)
    pools = kinds.count("pool")
    pool_sizes = iter(_positive_integers(arrays, "pool_sizes", source, pools,
                                         f"list one positive integer per pool layer ({pools} in all)") if pools else ())
    names = kind_names(kinds)
    layers, l, size = [], 0, h * w * c
    for name, kind in zip(names, kinds):
        where = f"{source}: layer {name}"
        if kind == "pool":
            p = next(pool_sizes)
            if p > h or p > w:
                raise EiexError(f"{where}: pooling a {h} x {w} map by {p} leaves nothing")
            layers.append(FoldedLayer(name, kind, in_shape=(h, w, c), size=p))
            h, w = h // p, w // p
            size = h * w * c
            continue
        weights = np.asarray(arrays[f"w{l}"])
        if kind == "conv":
            if weights.ndim != 4 or 0 in weights.shape or weights.shape[1] != weights.shape[2]:
                raise EiexError(f"{where}: w{l} has shape {weights.shape}; a conv layer's weights are (out, k, k, "
                                f"in_channels)")
            m, k, _, c_in = weights.shape
            if c_in != c:
                raise EiexError(f"{where}: w{l} reads {c_in} channels but its input map has {c}")
            if k > h or k > w:
                raise EiexError(f"{where}: kernel {k} is larger than its {h} x {w} input map")
            matrix = _plus_minus_one(source, f"w{l}", weights).reshape(m, -1)
            layers.append(FoldedLayer(name, kind, matrix, _thresholds(arrays, source, l, m, " (one per channel)"),
                                      in_shape=(h, w, c), kernel=k))
            h, w, c = h - k + 1, w - k + 1, m
            size = h * w * c
        else:
            if weights.ndim != 2 or 0 in weights.shape:
                raise EiexError(f"{source}: w{l} has shape {weights.shape}; expected a non-empty (out, in) matrix")
            if weights.shape[1] != size:
                raise EiexError(f"{source}: w{l} takes {weights.shape[1]} inputs but the layer before gives {size}")
            matrix = _plus_minus_one(source, f"w{l}", weights)
            thresholds = _thresholds(arrays, source, l, len(matrix)) if kind == "hidden" else None
            layers.append(FoldedLayer(name, kind, matrix, thresholds))
            size = len(matrix)
        l += 1
    scale, bias, input_threshold = _outputs_and_input(arrays, source, n, layers[-1].out_features)
    return FoldedNetwork(layers, scale, bias, input_threshold, input_shape)


#: the comparisons a threshold can mean: eiex's and the spec's ``acc >= T``, finn-hlslib's ``acc > T``
FIRE_CONVENTIONS = ("ge", "gt")


def image_from_folded(arrays: dict, pe=None, simd=None, target_interval=None, source: str = "folded weights",
                      fire: str = "ge") -> XnorImage:
    """An XNOR image from folded arrays (see the module docstring), folded by :func:`choose_folding`:
    version 1 for a multi-layer perceptron, version 2 (with the input shape) for a network with
    conv or pool layers.

    Parameters
    ----------
    fire : ``"ge"`` or ``"gt"``
        What the arrays' thresholds mean: a row fires on ``acc >= T`` (eiex, the spec) or on
        ``acc > T`` (finn-hlslib), which for integers is ``acc >= T + 1``.
    pe, simd : list of int, optional
        Per layer with weights (conv, hidden, output; pool layers take none), fixes ``P`` or ``S``.
    target_interval : int, optional
        Cycles per image the slowest layer may take (``NF * SF``, times the output positions of a conv).
    source : str
        Names the arrays in error messages.
    """
    if fire not in FIRE_CONVENTIONS:
        raise EiexError(f"fire must be one of {', '.join(FIRE_CONVENTIONS)} (acc >= T or acc > T), not {fire!r}")
    network = read_folded(arrays, source)
    folding = choose_folding([layer.folding_shape for layer in network.layers], pe, simd, target_interval)
    layers = []
    for layer, fold in zip(network.layers, folding):
        if layer.kind == "pool":
            layers.append(XnorPoolLayer(layer.name, layer.in_shape, layer.size))
            continue
        p, s = fold
        k = layer.in_features
        t = None
        if layer.thresholds is not None:
            t = np.clip(layer.thresholds + (1 if fire == "gt" else 0), 0, k + 1)
        thr_bits = OUTPUT_THR_BITS if t is None else signed_bits(t)
        if layer.kind == "conv":
            layers.append(XnorConvLayer(layer.name, layer.in_shape, layer.out_features, layer.kernel, p, s, thr_bits,
                                        layer.weights, t))
        else:
            layers.append(XnorLayer(name=layer.name, in_features=k, out_features=layer.out_features, pe=p, simd=s,
                                    kind=layer.kind, thr_bits=thr_bits, weights=layer.weights, thresholds=t))
    return XnorImage(layers=layers, input_threshold=network.input_threshold, output_scale=network.scale,
                     output_bias=network.bias, input_shape=network.input_shape)


def folding_shapes(image: XnorImage) -> list:
    """What :func:`choose_folding` folds, per layer of an image: ``(M, K)``, ``(M, K, positions)`` for a
    conv layer, None for a pool layer."""
    return [None if layer.kind == "pool" else
            (layer.rows, layer.columns, layer.positions) if layer.kind == "conv" else (layer.rows, layer.columns)
            for layer in image.layers]


def refold(image: XnorImage, pe=None, simd=None, target_interval=None) -> XnorImage:
    """The same network folded anew by :func:`choose_folding` (arguments as for
    :func:`image_from_folded`): weights, thresholds and output scores unchanged, only each layer's
    ``pe`` and ``simd``, so the golden outputs are identical."""
    folding = choose_folding(folding_shapes(image), pe, simd, target_interval)
    layers = [layer if fold is None else replace(layer, pe=fold[0], simd=fold[1])
              for layer, fold in zip(image.layers, folding)]
    return replace(image, layers=layers)


def read_binarized_folder(folder) -> tuple[dict[str, np.ndarray], str]:
    """The folded arrays of an ``eiex binarize`` output folder, and the path naming them in errors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EiexError(f"model folder {folder} does not exist")
    path = folder / "binary.npz"
    if not path.is_file():
        raise EiexError(f"{folder} is not an eiex binarize output: binary.npz is missing")
    return read_npz(path), str(path)
