"""Ternary weight networks (Li & Liu, "Ternary Weight Networks", 2016).

Every weight becomes one of ``{-alpha, 0, +alpha}``. TWN's approximate solution of
``min ||W - alpha * T||^2`` with a threshold-based ternary function takes the threshold

    delta = 0.7 * mean(|W_i|)                           (the paper's 0.7 * E(|W|) rule)

and, for that threshold, the scale that minimizes the squared error,

    alpha = mean(|W_i|) over the i with |W_i| > delta

with ``T_i = +1`` where ``W_i > delta``, ``-1`` where ``W_i < -delta`` and ``0`` elsewhere. Weights
that a pruning mask removed take no part in either mean and stay zero.

In eiex's codes (``SharedLayer``, 2 bits) code 1 is ``+alpha``, code 2 is ``-alpha`` and codes 0
and 3 are zero.
"""

from __future__ import annotations

import numpy as np
import torch

from eiex.errors import EiexError
from eiex.sw.compress.methods.arrays import real_weights, weight_mask
from eiex.sw.compress.sharing import SharedLayer

#: TWN's threshold factor: delta = 0.7 * E(|W|)
THRESHOLD_FACTOR = 0.7


def twn_threshold(w: np.ndarray, mask: np.ndarray | None = None) -> float:
    """TWN's threshold ``delta = 0.7 * mean(|w|)`` over the weights where ``mask`` is True."""
    w = real_weights(w)
    mask = weight_mask(mask, w.shape)
    if not mask.any():
        raise EiexError("no weight survives the mask: the TWN threshold is undefined")
    return THRESHOLD_FACTOR * float(np.mean(np.abs(w[mask]), dtype=np.float64))


def twn_scale(w: np.ndarray, delta: float, mask: np.ndarray | None = None) -> float:
    """TWN's scale: the mean ``|w_i|`` of the surviving weights with ``|w_i| > delta`` (0.0 if none)."""
    w = real_weights(w)
    mask = weight_mask(mask, w.shape)
    delta = float(delta)
    if not np.isfinite(delta) or delta < 0:
        raise EiexError(f"TWN threshold must be a finite non-negative number, not {delta}")
    magnitudes = np.abs(w[mask]).astype(np.float64)
    above = magnitudes[magnitudes > delta]
    return float(above.mean()) if above.size else 0.0


def ternarize(w: np.ndarray, mask: np.ndarray | None = None) -> SharedLayer:
    """The layer's ternary weights as 2-bit codes into ``[0, +alpha, -alpha, 0]``."""
    w = real_weights(w)
    mask = weight_mask(mask, w.shape)
    delta = twn_threshold(w, mask)
    alpha = twn_scale(w, delta, mask)
    codes = np.zeros(w.shape, dtype=np.int64)
    codes[mask & (w > delta)] = 1
    codes[mask & (w < -delta)] = 2
    codebook = np.array([0.0, alpha, -alpha, 0.0], dtype=np.float32)
    return SharedLayer(codes=codes, codebook=codebook, bits=2)


def ternary_tensor(w: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The same ternary values as :func:`ternarize`, as a tensor of ``w``'s dtype (no gradient).

    Meant for straight-through training: the forward pass uses these values while the gradient
    goes to the full-precision weights.
    """
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise EiexError("ternary_tensor needs a floating-point torch tensor of weights")
    if w.numel() == 0:
        raise EiexError("weights are empty")
    if not torch.isfinite(w).all():
        raise EiexError("weights contain NaN or infinite values")
    if mask is None:
        mask = torch.ones_like(w, dtype=torch.bool)
    elif not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise EiexError("mask must be a boolean torch tensor")
    elif mask.shape != w.shape:
        raise EiexError(f"mask shape {tuple(mask.shape)} does not match the weights' {tuple(w.shape)}")
    w64 = w.detach().to(torch.float64)
    magnitudes = w64.abs()
    if not mask.any():
        raise EiexError("no weight survives the mask: the TWN threshold is undefined")
    delta = THRESHOLD_FACTOR * magnitudes[mask].mean()
    above = mask & (magnitudes > delta)
    alpha = magnitudes[above].mean() if above.any() else torch.zeros((), dtype=torch.float64)
    signs = torch.where(above, torch.sign(w64), torch.zeros_like(w64))
    # alpha as float32 first, as ternarize's codebook holds it
    return (signs * alpha.to(torch.float32).to(torch.float64)).to(w.dtype)
