"""How an XNOR network is folded onto the engine: ``(P, S)`` per layer for a target interval.

:func:`solve_folding` gives every layer the fewest lanes ``P * S`` that reach a target interval
``NF * SF``. Without a target, :func:`default_target` is the best interval the largest layer (most
weights) reaches with at most ``DEFAULT_LANES`` lanes; the other layers then get just enough lanes
to keep up with it. :func:`choose_folding` adds per-layer ``pe``/``simd`` overrides, one value per
layer with weights (pool layers take none).

The solver never gives a layer more PEs than rows or more lanes than columns (that never shortens
the fold: ``NF`` or ``SF`` is already 1), but an override may, as the spec allows (section 4:
``P > M`` and ``S > K`` add PEs and lanes that hold only padding, which the engine builds no
hardware for), for instance to give every layer the same ``P``. It may go up to the larger of the
layer's size and :data:`MAX_PADDED_OVERRIDE`, so that a typing slip does not write an image of a
million padding memories.

Version 2 (XNOR spec section 7): a ``conv`` layer runs its matrix once per output position, so its
shape is ``(M, K, positions)`` with ``positions = H_out * W_out`` and it needs
``positions * NF * SF <= target``; a ``pool`` layer, given as ``None``, gets no folding (``None``).
A fully connected layer is ``(M, K)`` (one position), solved exactly as before.
"""

from __future__ import annotations

import math

import numpy as np

from eiex.errors import EiexError

DEFAULT_LANES = 64
#: the largest ``pe`` (``simd``) override above a layer's ``out_features`` (``in_features``)
MAX_PADDED_OVERRIDE = 4096
OUTPUT_THR_BITS = 2  # the output layer has no thresholds; its thr_bits is unused, the smallest valid width


def _fold(m: int, k: int, p: int, s: int) -> int:
    return math.ceil(m / p) * math.ceil(k / s)


def _split(shape) -> tuple[int, int, int]:
    """``(M, K, positions)`` of a layer shape ``(M, K)`` or ``(M, K, positions)``."""
    m, k, *rest = shape
    return int(m), int(k), int(rest[0]) if rest else 1


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


def solve_folding(shapes, target_interval: int) -> list[tuple[int, int] | None]:
    """Per layer ``(M, K)`` or ``(M, K, positions)``, the ``(P, S)`` with the fewest lanes ``P * S``
    such that ``positions * ceil(M / P) * ceil(K / S) <= target_interval``; ties go to fewer padding
    bits, then smaller ``P``. A ``None`` shape (a pool layer) gives ``None``.

    Every target of at least ``positions`` is reachable (``P = M``, ``S = K`` takes one cycle per
    position); a smaller one is refused.
    """
    target = _check_target(target_interval)
    folding = []
    for l, shape in enumerate(shapes):
        if shape is None:
            folding.append(None)
            continue
        m, k, positions = _split(shape)
        if positions > target:
            raise EiexError(f"layer {l}: its {positions} output positions take at least {positions} cycles, more "
                            f"than the target interval {target}")
        folding.append(_solve_layer(m, k, target // positions))
    return folding


def default_target(shapes, lanes: int = DEFAULT_LANES) -> int:
    """The smallest interval the largest layer (most weights times positions) reaches with at most
    ``lanes`` lanes; ``None`` shapes (pool layers) are skipped."""
    m, k, positions = max((_split(s) for s in shapes if s is not None), key=lambda s: s[0] * s[1] * s[2])
    return positions * min(_fold(m, k, p, min(k, lanes // p)) for p in range(1, min(m, lanes) + 1))


def _check_shape(l: int, shape) -> None:
    if shape is None:
        return
    if not isinstance(shape, (tuple, list)) or len(shape) not in (2, 3) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v >= 1 for v in shape):
        raise EiexError(f"layer {l}: a layer shape is (M, K) (fully connected), (M, K, positions) (conv) or None "
                        f"(pool), not {shape!r}")


def kind_names(kinds) -> list[str]:
    """The image's layer names for layer kinds: ``conv1, conv2, ...``, ``pool1, ...`` and ``fc1, fc2,
    ...`` for hidden and output layers, counted per kind (a multi-layer perceptron's are ``fc1 ..``)."""
    counts, names = {}, []
    for kind in kinds:
        prefix = kind if kind in ("conv", "pool") else "fc"
        counts[prefix] = counts.get(prefix, 0) + 1
        names.append(f"{prefix}{counts[prefix]}")
    return names


def layer_names(shapes) -> list[str]:
    """:func:`kind_names` of layer shapes: ``(M, K, positions)`` conv, ``None`` pool, ``(M, K)`` fully connected."""
    return kind_names("pool" if shape is None else "conv" if len(shape) == 3 else "fc" for shape in shapes)


def _check_overrides(name: str, values, n: int, pools: int) -> list | None:
    if values is None:
        return None
    values = list(values)
    if len(values) != n:
        skipped = "" if not pools else " with weights (the pool layer takes none)" if pools == 1 else \
            f" with weights (the {pools} pool layers take none)"
        raise EiexError(f"{name} gives {len(values)} values for {n} layers{skipped}")
    return values


def _cycles(positions: int, folds: str) -> str:
    """``NF = 4`` for a fully connected layer, ``64 positions x NF = 4`` for a conv layer."""
    return folds if positions == 1 else f"{positions} positions x {folds}"


def choose_folding(shapes, pe=None, simd=None, target_interval=None) -> list[tuple[int, int] | None]:
    """Per layer ``(P, S)`` (``None`` for a pool layer): solved for the target (:func:`default_target`
    when None), with ``pe`` and ``simd`` lists fixing their dimension; the other dimension is then the
    smallest that meets the target. With both lists given, a given target is checked, not used. An
    override may exceed the layer's ``out_features`` (``pe``) or ``in_features`` (``simd``), up to
    :data:`MAX_PADDED_OVERRIDE`.

    ``shapes`` as for :func:`solve_folding`: ``(M, K)``, ``(M, K, positions)`` (conv) or ``None``
    (pool). ``pe`` and ``simd`` hold one value per layer with weights: pool layers are skipped."""
    for l, shape in enumerate(shapes):
        _check_shape(l, shape)
    weighted = [l for l, shape in enumerate(shapes) if shape is not None]
    if not weighted:
        raise EiexError("a network needs at least one layer with weights (conv or fully connected)")
    pools = len(shapes) - len(weighted)
    pe, simd = _check_overrides("pe", pe, len(weighted), pools), _check_overrides("simd", simd, len(weighted), pools)
    names = layer_names(shapes)
    explicit = target_interval is not None
    target = _check_target(target_interval) if explicit else default_target(shapes)
    folding: list[tuple[int, int] | None] = [None] * len(shapes)
    solved = solve_folding(shapes, target) if pe is None or simd is None else None
    for i, l in enumerate(weighted):
        m, k, positions = _split(shapes[l])
        where = f"layer {names[l]}"
        given_p = None if pe is None else pe[i]
        given_s = None if simd is None else simd[i]
        for field, value, size, what in (("pe", given_p, m, "out_features"), ("simd", given_s, k, "in_features")):
            limit = max(size, MAX_PADDED_OVERRIDE)
            if value is not None and (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
                                      or not 1 <= value <= limit):
                raise EiexError(f"{where}: {field} must be an integer from 1 to {limit} (the larger of "
                                f"{what} {size} and {MAX_PADDED_OVERRIDE}), not {value!r}")
        if given_p is not None and given_s is not None:
            p, s = int(given_p), int(given_s)
            if explicit and positions * _fold(m, k, p, s) > target:
                raise EiexError(f"{where}: pe {p} and simd {s} take {positions * _fold(m, k, p, s)} cycles, more "
                                f"than the target interval {target}")
        elif given_p is not None:
            p = int(given_p)
            sf_max = target // (positions * math.ceil(m / p))
            if sf_max < 1:
                raise EiexError(f"{where}: with pe {p}, {_cycles(positions, f'NF = {math.ceil(m / p)}')} already "
                                f"exceeds the target interval {target}; give simd too or a larger target")
            s = math.ceil(k / min(k, sf_max))
        elif given_s is not None:
            s = int(given_s)
            nf_max = target // (positions * math.ceil(k / s))
            if nf_max < 1:
                raise EiexError(f"{where}: with simd {s}, {_cycles(positions, f'SF = {math.ceil(k / s)}')} already "
                                f"exceeds the target interval {target}; give pe too or a larger target")
            p = math.ceil(m / min(m, nf_max))
        else:
            p, s = solved[l]
        folding[l] = (p, s)
    return folding


def xnor_lanes(layers) -> int:
    """XNOR lanes with hardware: ``min(P, M) * min(S, K)`` per layer (padding PEs and lanes have none;
    pool layers have no lanes). ``layers``: image layers (``rows``, ``columns``) or engine geometries
    (``out_features``, ``in_features``)."""
    return sum(min(l.pe, getattr(l, "rows", None) or l.out_features) * min(l.simd, getattr(l, "columns", None)
                                                                          or l.in_features)
               for l in layers if hasattr(l, "pe"))
