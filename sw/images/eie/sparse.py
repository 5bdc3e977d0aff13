"""Compressed sparse columns with relative row indices and filler entries.

This is the storage of Deep Compression and EIE (and section 3 of the EIE image spec): each
column's non-zeros are kept in row order as entries ``(v, z)``, ``v`` the weight's code and ``z``
the number of zero rows skipped since the previous entry of the column. ``z`` is ``rel_bits``
wide; a longer run of zeros is bridged by filler entries ``(v=0, z=2**rel_bits - 1)``. Decoding a
column starts at ``r = -1`` and does ``r += z + 1`` per entry. ``ptr[j] .. ptr[j+1]`` are the
entries of column ``j``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eiex.errors import EiexError


@dataclass(frozen=True)
class SparseColumns:
    v: np.ndarray  # int64, entry codes (0 for fillers)
    z: np.ndarray  # int64, relative row index of each entry
    ptr: np.ndarray  # int64, cols + 1 entry pointers
    rows: int
    rel_bits: int

    @property
    def cols(self) -> int:
        return len(self.ptr) - 1

    @property
    def n_entries(self) -> int:
        return len(self.v)

    @property
    def n_fillers(self) -> int:
        return int(np.count_nonzero(self.v == 0))


def encode_columns(codes: np.ndarray, rel_bits: int) -> SparseColumns:
    """Canonical encoding of a ``(rows, cols)`` matrix of codes (0 = zero weight).

    One entry per non-zero, plus ``z >> rel_bits`` fillers before a non-zero that follows a run
    of ``z`` zero rows; nothing after a column's last non-zero.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise EiexError(f"sparse encoding needs a 2-D matrix of codes, not shape {codes.shape}")
    if not isinstance(rel_bits, (int, np.integer)) or rel_bits < 1:
        raise EiexError(f"rel_bits must be a positive integer, not {rel_bits!r}")
    if codes.size and codes.min() < 0:
        raise EiexError("weight codes must be non-negative")
    rows, cols = codes.shape
    col, row = np.nonzero(codes.T)  # column-major order: by column, then by row
    prev = np.empty_like(row)
    prev[1:] = row[:-1]
    first_in_column = np.ones(len(row), dtype=bool)
    first_in_column[1:] = col[1:] != col[:-1]
    prev[first_in_column] = -1
    gap = row - prev - 1
    fillers = gap >> rel_bits
    per_nonzero = fillers + 1

    owner = np.repeat(np.arange(len(row)), per_nonzero)
    starts = np.cumsum(per_nonzero) - per_nonzero
    is_filler = np.arange(len(owner)) - starts[owner] < fillers[owner]
    z_max = (1 << rel_bits) - 1
    v = np.where(is_filler, 0, codes[row, col][owner]).astype(np.int64)
    z = np.where(is_filler, z_max, (gap & z_max)[owner]).astype(np.int64)

    per_column = np.bincount(col, weights=per_nonzero, minlength=cols).astype(np.int64)
    ptr = np.zeros(cols + 1, dtype=np.int64)
    np.cumsum(per_column, out=ptr[1:])
    return SparseColumns(v=v, z=z, ptr=ptr, rows=rows, rel_bits=rel_bits)


def decode_columns(sparse: SparseColumns) -> np.ndarray:
    """The ``(rows, cols)`` code matrix back from its entries (fillers leave no trace)."""
    v, z, ptr = sparse.v, sparse.z, sparse.ptr
    if np.any(np.diff(ptr) < 0) or ptr[0] != 0 or ptr[-1] != len(v):
        raise EiexError("column pointers must start at 0, never decrease and end at the entry count")
    col = np.repeat(np.arange(sparse.cols), np.diff(ptr))
    steps = z + 1
    running = np.cumsum(steps)
    # the row of an entry is the sum of the steps since its column began, minus one
    before_column = np.concatenate(([0], running))[ptr[:-1]]
    row = running - before_column[col] - 1
    if len(row) and row.max() >= sparse.rows:
        raise EiexError(f"a decoded row index ({int(row.max())}) is outside the matrix's {sparse.rows} rows")
    out = np.zeros((sparse.rows, sparse.cols), dtype=np.int64)
    keep = v != 0
    out[row[keep], col[keep]] = v[keep]
    return out
