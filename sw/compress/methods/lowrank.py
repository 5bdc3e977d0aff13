"""Low-rank factorization of fully connected layers by truncated SVD (Xue, Li & Gong,
"Restructuring of Deep Neural Network Acoustic Models with Singular Value Decomposition", 2013;
Denton et al., "Exploiting Linear Structure Within Convolutional Networks for Efficient
Evaluation", 2014).

A layer ``W`` of shape ``(out, in)`` with SVD ``W = U S V^T`` is replaced by two layers,

    first  = sqrt(S_r) V_r^T     (rank, in)
    second = U_r sqrt(S_r)       (out, rank)

so that ``second @ first = U_r S_r V_r^T``, the best rank-``r`` approximation (Eckart–Young), whose
relative error is

    ||W - W_r||_F / ||W||_F = sqrt(sum_{i > r} s_i**2) / sqrt(sum_i s_i**2).

It stores ``r * (in + out)`` weights instead of ``in * out``.
"""

from __future__ import annotations

import numpy as np

from eiex.errors import EiexError
from eiex.sw.compress.methods.arrays import real_weights


def _matrix(w) -> np.ndarray:
    w = np.asarray(w)
    if w.ndim != 2:
        raise EiexError(f"low-rank factorization needs a 2-D (out, in) weight matrix, not {w.ndim}-D")
    return real_weights(w)


def _check_rank(rank, shape: tuple[int, int]) -> int:
    limit = min(shape)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= limit:
        raise EiexError(f"rank must lie in 1..{limit} for a {shape[0]}x{shape[1]} matrix, not {rank}")
    return int(rank)


def _relative_errors(w: np.ndarray) -> np.ndarray:
    """``errors[r - 1]`` is the relative error of the best rank-``r`` approximation, r = 1..min(shape)."""
    singular = np.linalg.svd(w.astype(np.float64), compute_uv=False)
    squares = singular**2
    total = squares.sum()
    if total == 0:
        raise EiexError("the weight matrix is all zero: its relative error is undefined")
    # tail[r] = sum of squares[r:], summed from the small end
    tail = np.cumsum(squares[::-1])[::-1]
    tail = np.append(tail[1:], 0.0)
    return np.sqrt(tail / total)


def relative_error(w: np.ndarray, rank: int) -> float:
    """``||W - W_r||_F / ||W||_F`` of the best rank-``rank`` approximation, from the singular values."""
    w = _matrix(w)
    rank = _check_rank(rank, w.shape)
    return float(_relative_errors(w)[rank - 1])


def rank_for_error(w: np.ndarray, budget: float) -> int:
    """The smallest rank ``r >= 1`` whose relative error is at most ``budget`` (0 < budget < 1)."""
    w = _matrix(w)
    budget = float(budget)
    if not 0 < budget < 1:
        raise EiexError(f"relative error budget must lie in (0, 1), not {budget}")
    errors = _relative_errors(w)
    # the full rank's error is 0, so some rank always fits
    return int(np.flatnonzero(errors <= budget)[0]) + 1


def factorize(w: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """``(first, second)``, ``(rank, in)`` and ``(out, rank)``, with ``second @ first`` the best rank-``rank`` W.

    float32 if ``w`` is float32, float64 otherwise.
    """
    w = _matrix(w)
    rank = _check_rank(rank, w.shape)
    out_dtype = np.float32 if w.dtype == np.float32 else np.float64
    u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    first = root[:, None] * vt[:rank]
    second = u[:, :rank] * root[None, :]
    return first.astype(out_dtype), second.astype(out_dtype)


def saves_storage(shape: tuple[int, int], rank: int) -> bool:
    """Whether the two factors, ``rank * (in + out)`` weights, are fewer than the ``in * out`` of W."""
    shape = tuple(shape)
    if len(shape) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0
                                  for n in shape):
        raise EiexError(f"shape must be two positive integers (out, in), not {shape}")
    out, inp = int(shape[0]), int(shape[1])
    rank = _check_rank(rank, (out, inp))
    return rank * (inp + out) < inp * out
