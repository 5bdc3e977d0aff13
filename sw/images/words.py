"""Two's complement words: how signed values (codebooks, biases, thresholds) sit in the memories."""

from __future__ import annotations

import numpy as np


def to_unsigned(values, bits: int) -> list[int]:
    """Signed integers as ``bits``-wide two's complement words."""
    mask = (1 << bits) - 1
    return [int(v) & mask for v in np.asarray(values).reshape(-1).tolist()]


def to_signed(words, bits: int) -> np.ndarray:
    """``bits``-wide two's complement words as signed int64."""
    w = np.asarray(words, dtype=np.int64).reshape(-1)
    return np.where(w >= 1 << (bits - 1), w - (1 << bits), w)


def fits_signed(values, bits: int) -> bool:
    """Every value lies in the ``bits``-wide signed range."""
    values = np.asarray(values)
    return values.size == 0 or bool(values.min() >= -(1 << (bits - 1)) and values.max() < 1 << (bits - 1))
