"""Uniform symmetric per-layer weight quantization (gemmlowp; Jacob et al., "Quantization and
Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018).

A real weight is ``w = s * q`` with an integer ``q`` and one scale ``s`` per layer (eq. 1 with zero
point 0: symmetric weights). With ``b`` bits and ``L = 2**(b-1) - 1`` (the symmetric range leaves
``-2**(b-1)`` unused),

    s = max |w| / L,        q = clip(round_half_even(w / s), -L, L)

With ``scale = "pow2"`` the scale is rounded up to a power of two, ``s = 2**ceil(log2(max |w| / L))``:
``q`` then spans between ``L / 2`` and ``L`` levels (up to one bit of range is lost), but a weight is
exactly ``q * 2**-f``, so in the EIE engine's fixed point (``weight_frac = f``) the integer weight *is*
``q``: an engine built with ``--mac index`` multiplies by the index itself and needs no codebook
memory (:mod:`eiex.sw.images.eie.identity`).

In eiex's codes the index is the weight: a weight's code is ``q`` in ``b``-bit two's complement
(``q = -1`` is code ``2**b - 1``), so code 0 is exactly ``q = 0``, and ``codebook[v] = signed(v) * s``
for every ``v``, the unused ``-2**(b-1)`` entry set to 0. Pruned weights (``mask`` False) get
``q = 0``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from eiex.errors import EiexError
from eiex.sw.compress.methods.arrays import real_weights, weight_mask
from eiex.sw.compress.sharing import SharedLayer

MIN_BITS, MAX_BITS = 2, 12
#: the scale of a layer: gemmlowp's real ``max |w| / L``, or that rounded up to a power of two
LINEAR_SCALES = ("real", "pow2")


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not MIN_BITS <= bits <= MAX_BITS:
        raise EiexError(f"linear quantization bits must lie in {MIN_BITS}..{MAX_BITS}, not {bits}")
    return int(bits)


def _levels(bits: int) -> int:
    """``L = 2**(bits-1) - 1``, the largest ``|q|``."""
    return 2 ** (bits - 1) - 1


def _check_kind(kind) -> str:
    if kind not in LINEAR_SCALES:
        raise EiexError(f"linear quantization scale must be one of {', '.join(LINEAR_SCALES)}, not {kind!r}")
    return kind


def scale_of(max_abs: float, bits: int, kind: str = "real") -> float:
    """The scale for a largest surviving magnitude ``max_abs``: ``max_abs / L``, or (``pow2``) the
    smallest power of two at least that; 0.0 when ``max_abs`` is 0."""
    scale = float(max_abs) / _levels(bits)
    if _check_kind(kind) == "real" or scale == 0:
        return scale
    mantissa, exponent = math.frexp(scale)  # scale = mantissa * 2**exponent, mantissa in [0.5, 1)
    return math.ldexp(1.0, exponent - 1 if mantissa == 0.5 else exponent)


def linear_scale(w: np.ndarray, bits: int, mask: np.ndarray | None = None, kind: str = "real") -> float:
    """``s = max |w| / (2**(bits-1) - 1)`` over the surviving weights (rounded up to a power of two
    with ``kind="pow2"``); 0.0 if they are all zero."""
    bits = _check_bits(bits)
    w = real_weights(w)
    mask = weight_mask(mask, w.shape)
    max_abs = float(np.max(np.where(mask, np.abs(w.astype(np.float64)), 0.0)))
    return scale_of(max_abs, bits, kind)


def linear_quantize(w: np.ndarray, bits: int, mask: np.ndarray | None = None, kind: str = "real") -> SharedLayer:
    """The layer as ``bits``-bit two's-complement codes of ``q`` into ``codebook[v] = signed(v) * s``
    (``kind``: the scale, :data:`LINEAR_SCALES`)."""
    bits = _check_bits(bits)
    w = real_weights(w)
    mask = weight_mask(mask, w.shape)
    scale = linear_scale(w, bits, mask, kind)
    if scale > 0 and np.float32(scale) == 0:
        raise EiexError(f"the quantization scale {scale:.3g} underflows float32")
    levels = _levels(bits)
    if scale > 0:
        q = np.clip(np.rint(w.astype(np.float64) / scale), -levels, levels).astype(np.int64)
        q[~mask] = 0
    else:
        q = np.zeros(w.shape, dtype=np.int64)
    codes = np.where(q < 0, q + 2**bits, q)
    v = np.arange(2**bits, dtype=np.int64)
    signed = np.where(v >= 2 ** (bits - 1), v - 2**bits, v)
    signed[2 ** (bits - 1)] = 0  # -2**(bits-1): outside the symmetric range, never used
    codebook = (signed * scale).astype(np.float32)
    return SharedLayer(codes=codes, codebook=codebook, bits=bits)


def linear_tensor(w: torch.Tensor, scale: float, bits: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The dequantized weights ``q * s`` in ``w``'s dtype, with torch ops and no gradient."""
    bits = _check_bits(bits)
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise EiexError("linear_tensor needs a floating-point torch tensor of weights")
    if not torch.isfinite(w).all():
        raise EiexError("weights contain NaN or infinite values")
    scale = float(scale)
    if not np.isfinite(scale) or scale < 0:
        raise EiexError(f"quantization scale must be a finite non-negative number, not {scale}")
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise EiexError("mask must be a boolean torch tensor")
        if mask.shape != w.shape:
            raise EiexError(f"mask shape {tuple(mask.shape)} does not match the weights' {tuple(w.shape)}")
    if scale == 0:
        return torch.zeros_like(w)
    levels = _levels(bits)
    q = torch.round(w.detach().to(torch.float64) / scale).clamp(-levels, levels)
    if mask is not None:
        q = torch.where(mask, q, torch.zeros_like(q))
    return (q * scale).to(w.dtype)
