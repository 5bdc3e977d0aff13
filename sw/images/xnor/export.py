"""Folded binarized weights (npz arrays) to an XNOR image: validation, folding, threshold widths.

The folded arrays are ``w0, w1, ...`` (+1/-1, ``(M_l, K_l)``), ``t0 .. t{L-2}`` (integer hidden
thresholds: ``y = 1`` iff ``acc >= T``, any integer), ``scale`` and ``bias`` (``(M_last,)``) and the
scalar ``input_threshold``; other keys are ignored.

- Thresholds are clamped to ``[0, K + 1]``: ``acc`` lies in ``[0, K]``, so a threshold at or below 0
  always fires and one above ``K`` never does, exactly like 0 and ``K + 1``. The clamp keeps
  ``thr_bits`` (the smallest signed width holding a layer's thresholds, at least 2) small. The
  output layer, without thresholds, gets ``thr_bits = 2``.
- Folding: :func:`solve_folding` gives every layer the fewest lanes ``P * S`` that reach a target
  interval ``NF * SF``. Without a target, :func:`default_target` is the best interval the largest
  layer (most weights) reaches with at most ``DEFAULT_LANES`` lanes; the other layers then get just
  enough lanes to keep up with it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from eiex.errors import EiexError
from eiex.sw.npz import read_npz
from eiex.sw.images.xnor.image import XnorImage, XnorLayer, signed_bits

DEFAULT_LANES = 64
OUTPUT_THR_BITS = 2  # the output layer has no thresholds; its thr_bits is unused, the smallest valid width


def _fold(m: int, k: int, p: int, s: int) -> int:
    return math.ceil(m / p) * math.ceil(k / s)


def _solve_layer(m: int, k: int, target: int) -> tuple[int, int]:
    best = None
    for p in range(1, m + 1):
        sf_max = min(k, target // math.ceil(m / p))
        if sf_max < 1:
            continue
        s = math.ceil(k / sf_max)  # the fewest lanes per PE that fit the target with this P
        padding = math.ceil(m / p) * p * math.ceil(k / s) * s - m * k
        key = (p * s, padding, p)
        if best is None or key < best[0]:
            best = (key, (p, s))
    return best[1]


def _check_target(target_interval) -> int:
    if isinstance(target_interval, (bool, np.bool_)) or not isinstance(target_interval, (int, np.integer)) \
            or target_interval < 1:
        raise EiexError(f"the target interval must be an integer of at least 1 cycle, not {target_interval!r}")
    return int(target_interval)


def solve_folding(shapes, target_interval: int) -> list[tuple[int, int]]:
    """Per layer ``(M, K)``, the ``(P, S)`` with the fewest lanes ``P * S`` such that
    ``ceil(M / P) * ceil(K / S) <= target_interval``; ties go to fewer padding bits, then smaller ``P``.

    Every target of at least 1 is reachable (``P = M``, ``S = K`` takes one cycle).
    """
    target = _check_target(target_interval)
    return [_solve_layer(int(m), int(k), target) for m, k in shapes]


def default_target(shapes, lanes: int = DEFAULT_LANES) -> int:
    """The smallest interval the largest layer (most weights) reaches with at most ``lanes`` lanes."""
    m, k = max(shapes, key=lambda shape: shape[0] * shape[1])
    return min(_fold(m, k, p, min(k, lanes // p)) for p in range(1, min(m, lanes) + 1))


def _check_overrides(name: str, values, n: int) -> list | None:
    if values is None:
        return None
    values = list(values)
    if len(values) != n:
        raise EiexError(f"{name} gives {len(values)} values for {n} layers")
    return values


def choose_folding(shapes, pe=None, simd=None, target_interval=None) -> list[tuple[int, int]]:
    """Per layer ``(P, S)``: solved for the target (:func:`default_target` when None), with ``pe`` and
    ``simd`` lists fixing their dimension; the other dimension is then the smallest that meets the
    target. With both lists given, a given target is checked, not used."""
    n = len(shapes)
    pe, simd = _check_overrides("pe", pe, n), _check_overrides("simd", simd, n)
    explicit = target_interval is not None
    target = _check_target(target_interval) if explicit else default_target(shapes)
    folding = []
    for l, ((m, k), (p, s)) in enumerate(zip(shapes, solve_folding(shapes, target))):
        given_p = None if pe is None else pe[l]
        given_s = None if simd is None else simd[l]
        for field, value, limit, what in (("pe", given_p, m, "out_features"), ("simd", given_s, k, "in_features")):
            if value is not None and (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
                                      or not 1 <= value <= limit):
                raise EiexError(f"layer fc{l + 1}: {field} must be an integer from 1 to {limit} ({what}), not {value!r}")
        if given_p is not None and given_s is not None:
            p, s = int(given_p), int(given_s)
            if explicit and _fold(m, k, p, s) > target:
                raise EiexError(f"layer fc{l + 1}: pe {p} and simd {s} take {_fold(m, k, p, s)} cycles, more than "
                                f"the target interval {target}")
        elif given_p is not None:
            p = int(given_p)
            sf_max = target // math.ceil(m / p)
            if sf_max < 1:
                raise EiexError(f"layer fc{l + 1}: with pe {p}, NF = {math.ceil(m / p)} already exceeds the target "
                                f"interval {target}; give simd too or a larger target")
            s = math.ceil(k / min(k, sf_max))
        elif given_s is not None:
            s = int(given_s)
            nf_max = target // math.ceil(k / s)
            if nf_max < 1:
                raise EiexError(f"layer fc{l + 1}: with simd {s}, SF = {math.ceil(k / s)} already exceeds the target "
                                f"interval {target}; give pe too or a larger target")
            p = math.ceil(m / min(m, nf_max))
        folding.append((p, s))
    return folding


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


def image_from_folded(arrays: dict, pe=None, simd=None, target_interval=None, source: str = "folded weights") -> XnorImage:
    """An XNOR image from folded arrays (see the module docstring), folded by :func:`choose_folding`.

    Parameters
    ----------
    pe, simd : list of int, optional
        Per layer, fixes ``P`` or ``S``.
    target_interval : int, optional
        Cycles per image the slowest layer may take (``NF * SF``).
    source : str
        Names the arrays in error messages.
    """
    weights, thresholds, scale, bias, input_threshold = check_folded(arrays, source)
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
