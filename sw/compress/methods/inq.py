"""Incremental network quantization (Zhou et al., "Incremental Network Quantization: Towards
Lossless CNNs with Low-Precision Weights", ICLR 2017).

Every weight becomes zero or a signed power of two, ``P = {0, +-2**n2, ..., +-2**n1}``. The largest
exponent comes from the layer's largest magnitude ``s = max |W|`` (eq. 2):

    n1 = floor(log2(4 * s / 3))

so that ``s`` rounds to ``2**n1``. The paper spends one extra bit on zero, so its ``b`` bits hold
``2**(b-1)`` non-zero values, ``2**(b-2)`` magnitudes (``n2 = n1 + 1 - 2**(b-1) / 2``). eiex's codes
reserve code 0 for zero and store both signs of each magnitude as separate entries, so a
``bits``-bit codebook of ``2**bits`` entries holds ``N = 2**(bits - 1) - 1`` magnitudes (``2 * N``
non-zero values, one entry left unused):

    n2 = n1 - N + 1        (bits = 4: 7 exponents, 14 non-zero values; bits = 2: one exponent)

Quantization is eq. 4: with ``alpha < beta`` adjacent in ``P`` (sorted, zero included),

    w_hat = sign(w) * beta   if (alpha + beta) / 2 <= |w| < 3 * beta / 2,   else 0

which is ``|w|`` rounded to the nearest element of ``P``, ties towards the larger one. Eq. 4 sends
``|w| >= 3/2 * 2**n1`` to zero; that cannot happen for the layer ``n1`` was computed from, and for
any other weights (a later step of training) eiex clips such magnitudes to ``2**n1`` instead.
Magnitudes below ``2**n2 / 2`` go to zero (``alpha = 0``).

The weights are quantized a part at a time (section 2.2): each step freezes the largest-magnitude
surviving weights that are not yet frozen ("pruning-inspired partition"), quantizes them, and
retrains the rest.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from eiex.errors import EiexError
from eiex.sw.compress.methods.arrays import real_weights, weight_mask
from eiex.sw.compress.sharing import SharedLayer

MIN_BITS, MAX_BITS = 2, 8
#: exponents a float64 power of two can take (subnormals included)
FLOAT64_EXPONENTS = (-1074, 1023)
#: exponents a float32 power of two can take (subnormals included)
FLOAT32_EXPONENTS = (-149, 127)


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not MIN_BITS <= bits <= MAX_BITS:
        raise EiexError(f"INQ bits must lie in {MIN_BITS}..{MAX_BITS}, not {bits}")
    return int(bits)


def _check_exponents(n1, n2) -> tuple[int, int]:
    for n in (n1, n2):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise EiexError(f"power-of-two exponents must be integers, not {n!r}")
    n1, n2 = int(n1), int(n2)
    if n2 > n1:
        raise EiexError(f"the smallest exponent n2={n2} exceeds the largest n1={n1}")
    low, high = FLOAT64_EXPONENTS
    if n2 < low or n1 > high:
        raise EiexError(f"exponents {n2}..{n1} leave float64's range {low}..{high}")
    return n1, n2


def pow2_exponents(max_abs: float, bits: int) -> tuple[int, int]:
    """``(n1, n2)``: ``n1 = floor(log2(4 * max_abs / 3))`` and ``n2 = n1 - (2**(bits-1) - 1) + 1``.

    ``n1`` is computed exactly: it is the ``n`` with ``3 * 2**n <= 4 * max_abs < 3 * 2**(n+1)``.
    """
    bits = _check_bits(bits)
    max_abs = float(max_abs)
    if not math.isfinite(max_abs) or max_abs <= 0:
        raise EiexError(f"the largest weight magnitude must be a finite positive number, not {max_abs}")
    four_s = 4.0 * max_abs  # exact: a power-of-two scaling
    n1 = math.floor(math.log2(four_s / 3.0))
    # log2 of the rounded quotient can be one off near a boundary; both tests below are exact
    while 3.0 * math.ldexp(1.0, n1 + 1) <= four_s:
        n1 += 1
    while 3.0 * math.ldexp(1.0, n1) > four_s:
        n1 -= 1
    n_exponents = 2 ** (bits - 1) - 1
    return n1, n1 - n_exponents + 1


def _pow2_exponent_of(magnitude: np.ndarray) -> np.ndarray:
    """Per positive magnitude ``a``: the ``k`` of the nearest power of two, ties (``1.5 * 2**j``) up."""
    mantissa, exponent = np.frexp(magnitude)  # a = m * 2**e, 0.5 <= m < 1
    return exponent.astype(np.int64) - 1 + (mantissa >= 0.75)


def quantize_pow2(w: np.ndarray, n1: int, n2: int) -> np.ndarray:
    """INQ's eq. 4 on every weight: zero or ``sign(w) * 2**n``, ``n2 <= n <= n1``.

    Magnitudes at or above ``3/2 * 2**n1`` are clipped to ``2**n1`` (eq. 4 would give zero). The
    result has ``w``'s floating dtype (float64 for integer input).
    """
    w = real_weights(w)
    n1, n2 = _check_exponents(n1, n2)
    out_dtype = w.dtype if np.issubdtype(w.dtype, np.floating) else np.float64
    w64 = w.astype(np.float64)
    magnitude = np.abs(w64)
    nonzero = magnitude >= math.ldexp(1.0, n2 - 1)  # (0 + 2**n2) / 2, exact
    k = np.clip(_pow2_exponent_of(np.where(nonzero, magnitude, 1.0)), n2, n1)
    return np.where(nonzero, np.ldexp(np.sign(w64), k), 0.0).astype(out_dtype)


def pow2_tensor(w: torch.Tensor, n1: int, n2: int) -> torch.Tensor:
    """:func:`quantize_pow2` with torch ops, in ``w``'s dtype, without gradient."""
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise EiexError("pow2_tensor needs a floating-point torch tensor of weights")
    if not torch.isfinite(w).all():
        raise EiexError("weights contain NaN or infinite values")
    n1, n2 = _check_exponents(n1, n2)
    w64 = w.detach().to(torch.float64)
    magnitude = w64.abs()
    nonzero = magnitude >= math.ldexp(1.0, n2 - 1)
    mantissa, exponent = torch.frexp(torch.where(nonzero, magnitude, torch.ones_like(magnitude)))
    k = (exponent.to(torch.int64) - 1 + (mantissa >= 0.75).to(torch.int64)).clamp(n2, n1)
    values = torch.ldexp(torch.sign(w64), k.to(torch.float64))
    return torch.where(nonzero, values, torch.zeros_like(values)).to(w.dtype)


def _frozen_target(fraction: float, survivors: int) -> int:
    # round away binary noise first: 0.3 * 10 is 3.0000000000000004, which must freeze 3, not 4
    return min(survivors, math.ceil(round(fraction * survivors, 9)))


def inq_partition(w: np.ndarray, frozen: np.ndarray, mask: np.ndarray, fraction: float) -> np.ndarray:
    """The new frozen mask: ``frozen`` plus the largest-``|w|`` surviving weights not yet frozen.

    Weights are added until at least ``fraction`` of the surviving (``mask`` True) weights are
    frozen, that is ``ceil(fraction * survivors)`` of them. Equal magnitudes are taken in flat
    (C) order. ``frozen`` must lie within ``mask``; it is never shrunk.
    """
    w = real_weights(w)
    frozen = weight_mask(frozen, w.shape, "frozen")
    mask = weight_mask(mask, w.shape)
    fraction = float(fraction)
    if not 0 < fraction <= 1:
        raise EiexError(f"INQ fraction must lie in (0, 1], not {fraction}")
    if np.any(frozen & ~mask):
        raise EiexError("frozen weights must all survive the mask")
    target = _frozen_target(fraction, int(mask.sum()))
    needed = target - int(frozen.sum())
    result = frozen.copy()
    if needed <= 0:
        return result
    candidates = np.flatnonzero(mask & ~frozen)
    order = np.argsort(-np.abs(w.reshape(-1)[candidates].astype(np.float64)), kind="stable")
    result.reshape(-1)[candidates[order[:needed]]] = True
    return result


def pow2_shared(w: np.ndarray, bits: int, mask: np.ndarray | None = None) -> SharedLayer:
    """The layer as ``bits``-bit codes into ``[0, +2**n1, -2**n1, +2**(n1-1), ..., -2**n2, 0...]``.

    ``n1`` and ``n2`` come from the largest surviving magnitude (:func:`pow2_exponents`); a weight's
    code is that of its :func:`quantize_pow2` value, 0 where that is zero or ``mask`` is False. If no
    surviving weight is non-zero, every code and every codebook entry is 0.
    """
    bits = _check_bits(bits)
    w = real_weights(w)
    mask = weight_mask(mask, w.shape)
    codes = np.zeros(w.shape, dtype=np.int64)
    codebook = np.zeros(2**bits, dtype=np.float32)
    magnitude = np.where(mask, np.abs(w.astype(np.float64)), 0.0)
    max_abs = float(magnitude.max())
    if max_abs == 0:
        return SharedLayer(codes=codes, codebook=codebook, bits=bits)
    n1, n2 = pow2_exponents(max_abs, bits)
    low, high = FLOAT32_EXPONENTS
    if n2 < low or n1 > high:
        raise EiexError(f"powers of two 2**{n2}..2**{n1} do not fit float32 (exponents {low}..{high})")
    exponents = np.arange(n1, n2 - 1, -1)
    levels = np.ldexp(1.0, exponents)
    codebook[1 : 1 + 2 * len(levels)] = np.stack([levels, -levels], axis=1).reshape(-1)
    quantized = quantize_pow2(np.where(mask, w.astype(np.float64), 0.0), n1, n2)
    used = quantized != 0
    _, exponent = np.frexp(np.abs(quantized[used]))  # |q| = 2**k gives exponent k + 1
    codes[used] = 1 + 2 * (n1 - (exponent.astype(np.int64) - 1)) + (quantized[used] < 0)
    return SharedLayer(codes=codes, codebook=codebook, bits=bits)


def is_pow2_codebook(values: np.ndarray) -> np.ndarray:
    """Per value: True where it is exactly 0 or ``+-2**k`` for an integer ``k`` (NaN and inf: False)."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
        raise EiexError(f"values must be real numbers, not {values.dtype}")
    values = values.astype(np.float64)
    finite = np.isfinite(values)
    mantissa, _ = np.frexp(np.where(finite, values, 0.0))
    return finite & ((values == 0) | (np.abs(mantissa) == 0.5))
