"""Input checks the quantizers share: a layer's weights and its pruning mask."""

from __future__ import annotations

import numpy as np

from eiex.errors import EiexError


def real_weights(w) -> np.ndarray:
    """``w`` as a numpy array of finite real numbers; anything else is refused in one line."""
    w = np.asarray(w)
    if w.size == 0:
        raise EiexError("weights are empty")
    if not np.issubdtype(w.dtype, np.number) or np.issubdtype(w.dtype, np.complexfloating):
        raise EiexError(f"weights must be real numbers, not {w.dtype}")
    if not np.all(np.isfinite(w)):
        raise EiexError("weights contain NaN or infinite values")
    return w


def weight_mask(mask, shape, what: str = "mask") -> np.ndarray:
    """A boolean mask of ``shape`` (``None``: every weight survives)."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise EiexError(f"{what} must be boolean, not {mask.dtype}")
    if mask.shape != shape:
        raise EiexError(f"{what} shape {mask.shape} does not match the weights' {shape}")
    return mask
