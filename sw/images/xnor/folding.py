"""How an XNOR network is folded onto the engine: ``(P, S)`` per layer for a target interval.

:func:`solve_folding` gives every layer the fewest lanes ``P * S`` that reach a target interval
``NF * SF``. Without a target, :func:`default_target` is the best interval the largest layer (most
weights) reaches with at most ``DEFAULT_LANES`` lanes; the other layers then get just enough lanes
to keep up with it. :func:`choose_folding` adds per-layer ``pe``/``simd`` overrides.

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
    target. With both lists given, a given target is checked, not used. An override may exceed the
    layer's ``out_features`` (``pe``) or ``in_features`` (``simd``), up to :data:`MAX_PADDED_OVERRIDE`."""
    n = len(shapes)
    for l, shape in enumerate(shapes):
        if shape is None or len(shape) != 2:
            raise EiexError(f"layer {l}: choose_folding takes fully connected layers (M, K), not {shape!r}; fold conv "
                            f"and pool layers with solve_folding")
    pe, simd = _check_overrides("pe", pe, n), _check_overrides("simd", simd, n)
    explicit = target_interval is not None
    target = _check_target(target_interval) if explicit else default_target(shapes)
    folding = []
    for l, ((m, k), (p, s)) in enumerate(zip(shapes, solve_folding(shapes, target))):
        given_p = None if pe is None else pe[l]
        given_s = None if simd is None else simd[l]
        for field, value, size, what in (("pe", given_p, m, "out_features"), ("simd", given_s, k, "in_features")):
            limit = max(size, MAX_PADDED_OVERRIDE)
            if value is not None and (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
                                      or not 1 <= value <= limit):
                raise EiexError(f"layer fc{l + 1}: {field} must be an integer from 1 to {limit} (the larger of "
                                f"{what} {size} and {MAX_PADDED_OVERRIDE}), not {value!r}")
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


def xnor_lanes(layers) -> int:
    """XNOR lanes with hardware: ``min(P, M) * min(S, K)`` per layer (padding PEs and lanes have none)."""
    return sum(min(l.pe, l.out_features) * min(l.simd, l.in_features) for l in layers)
