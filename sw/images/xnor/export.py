"""Folded binarized weights (npz arrays) to an XNOR image: validation, folding, threshold widths.

The folded arrays are ``w0, w1, ...`` (+1/-1, ``(M_l, K_l)``), ``t0 .. t{L-2}`` (integer hidden
thresholds: ``y = 1`` iff ``acc >= T``, any integer), ``scale`` and ``bias`` (``(M_last,)``) and the
scalar ``input_threshold``; other keys are ignored.

- Thresholds are clamped to ``[0, K + 1]``: ``acc`` lies in ``[0, K]``, so a threshold at or below 0
  always fires and one above ``K`` never does, exactly like 0 and ``K + 1``. The clamp keeps
  ``thr_bits`` (the smallest signed width holding a layer's thresholds, at least 2) small. The
  output layer, without thresholds, gets ``thr_bits = 2``.
- Folding: :func:`eiex.sw.images.xnor.folding.choose_folding`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eiex.errors import EiexError
from eiex.sw.npz import read_npz
from eiex.sw.images.xnor.folding import OUTPUT_THR_BITS, choose_folding
from eiex.sw.images.xnor.image import XnorImage, XnorLayer, signed_bits


def _finite_numbers(source: str, key: str, value: np.ndarray) -> None:
    if value.dtype == bool or not np.issubdtype(value.dtype, np.number) or np.issubdtype(value.dtype, np.complexfloating):
        raise EiexError(f"{source}: {key} must hold real numbers, not {value.dtype}")
    if not np.all(np.isfinite(value)):
        raise EiexError(f"{source}: {key} contains NaN or infinite values")


def check_folded(arrays: dict, source: str = "folded weights") -> tuple[list, list, np.ndarray, np.ndarray, float]:
    """Validate folded arrays; returns (weights, hidden thresholds, scale, bias, input threshold)."""
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
    for key in [f"t{l}" for l in range(n - 1)] + ["scale", "bias", "input_threshold"]:
        if key not in arrays:
            raise EiexError(f"{source} lacks {key}")
    weights, thresholds = [], []
    for l in range(n):
        w = np.asarray(arrays[f"w{l}"])
        if w.ndim != 2 or 0 in w.shape:
            raise EiexError(f"{source}: w{l} has shape {w.shape}; expected a non-empty (out, in) matrix")
        _finite_numbers(source, f"w{l}", w)
        bad = np.argwhere((w != 1) & (w != -1))
        if bad.size:
            r, c = bad[0]
            raise EiexError(f"{source}: w{l} must hold only +1 and -1, found {w[r, c]} at row {r}, column {c}")
        if l and w.shape[1] != weights[-1].shape[0]:
            raise EiexError(f"{source}: w{l} takes {w.shape[1]} inputs but w{l - 1} gives {weights[-1].shape[0]}")
        weights.append(w.astype(np.int8))
        if l < n - 1:
            t = np.asarray(arrays[f"t{l}"])
            if t.shape != (w.shape[0],):
                raise EiexError(f"{source}: t{l} has shape {t.shape}, w{l} needs ({w.shape[0]},)")
            if t.dtype == bool or not np.issubdtype(t.dtype, np.integer):
                raise EiexError(f"{source}: t{l} must hold integers, not {t.dtype}")
            thresholds.append(t.astype(np.int64))
    m = weights[-1].shape[0]
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
    return weights, thresholds, out[0], out[1], float(t_in.reshape(()))


#: the comparisons a threshold can mean: eiex's and the spec's ``acc >= T``, finn-hlslib's ``acc > T``
FIRE_CONVENTIONS = ("ge", "gt")


def image_from_folded(arrays: dict, pe=None, simd=None, target_interval=None, source: str = "folded weights",
                      fire: str = "ge") -> XnorImage:
    """An XNOR image from folded arrays (see the module docstring), folded by :func:`choose_folding`.

    Parameters
    ----------
    fire : ``"ge"`` or ``"gt"``
        What the arrays' thresholds mean: a row fires on ``acc >= T`` (eiex, the spec) or on
        ``acc > T`` (finn-hlslib), which for integers is ``acc >= T + 1``.
    pe, simd : list of int, optional
        Per layer, fixes ``P`` or ``S``.
    target_interval : int, optional
        Cycles per image the slowest layer may take (``NF * SF``).
    source : str
        Names the arrays in error messages.
    """
    if fire not in FIRE_CONVENTIONS:
        raise EiexError(f"fire must be one of {', '.join(FIRE_CONVENTIONS)} (acc >= T or acc > T), not {fire!r}")
    weights, thresholds, scale, bias, input_threshold = check_folded(arrays, source)
    if fire == "gt":
        thresholds = [t + 1 for t in thresholds]
    folding = choose_folding([w.shape for w in weights], pe, simd, target_interval)
    layers = []
    for l, (w, (p, s)) in enumerate(zip(weights, folding)):
        m, k = w.shape
        hidden = l < len(weights) - 1
        t = np.clip(thresholds[l], 0, k + 1) if hidden else None
        layers.append(XnorLayer(name=f"fc{l + 1}", in_features=k, out_features=m, pe=p, simd=s,
                                kind="hidden" if hidden else "output", thr_bits=signed_bits(t) if hidden else OUTPUT_THR_BITS,
                                weights=w, thresholds=t))
    return XnorImage(layers=layers, input_threshold=input_threshold, output_scale=scale, output_bias=bias)


def read_binarized_folder(folder) -> tuple[dict[str, np.ndarray], str]:
    """The folded arrays of an ``eiex binarize`` output folder, and the path naming them in errors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EiexError(f"model folder {folder} does not exist")
    path = folder / "binary.npz"
    if not path.is_file():
        raise EiexError(f"{folder} is not an eiex binarize output: binary.npz is missing")
    return read_npz(path), str(path)
