"""Sparse columns with relative indices, against the EIE spec and a per-column reference loop."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eiex.errors import EiexError
from eiex.sw.images.eie.sparse import decode_columns, encode_columns


def reference_encode(codes, rel_bits):
    """Straight from the spec: walk each column, emit fillers while the gap is too long."""
    z_max = 2**rel_bits - 1
    v, z, ptr = [], [], [0]
    for j in range(codes.shape[1]):
        last = -1
        for r in np.flatnonzero(codes[:, j]):
            gap = r - last - 1
            while gap > z_max:
                v.append(0), z.append(z_max)
                gap -= z_max + 1
            v.append(codes[r, j]), z.append(gap)
            last = r
        ptr.append(len(v))
    return v, z, ptr


def test_spec_example_twenty_zeros():
    codes = np.zeros((21, 1), dtype=int)
    codes[20, 0] = 7
    s = encode_columns(codes, rel_bits=4)
    assert s.v.tolist() == [0, 7] and s.z.tolist() == [15, 4] and s.ptr.tolist() == [0, 2]


def test_deep_compression_figure_gap_of_exactly_max_plus_one():
    # 3-bit index: a non-zero 8 rows after the previous one needs a filler (Deep Compression Fig. 2)
    codes = np.zeros((12, 1), dtype=int)
    codes[1, 0], codes[10, 0] = 3, 5
    s = encode_columns(codes, rel_bits=3)
    assert list(zip(s.v, s.z)) == [(3, 1), (0, 7), (5, 0)]


@settings(max_examples=150, deadline=None)
@given(
    rows=st.integers(1, 40), cols=st.integers(1, 12), density=st.floats(0, 1),
    rel_bits=st.integers(1, 5), seed=st.integers(0, 2**31),
)
def test_matches_reference_and_round_trips(rows, cols, density, rel_bits, seed):
    rng = np.random.default_rng(seed)
    codes = (rng.random((rows, cols)) < density) * rng.integers(1, 16, (rows, cols))
    s = encode_columns(codes, rel_bits)
    v, z, ptr = reference_encode(codes, rel_bits)
    assert s.v.tolist() == v and s.z.tolist() == z and s.ptr.tolist() == ptr
    assert s.n_fillers == sum(1 for x in v if x == 0)
    assert np.array_equal(decode_columns(s), codes)


def test_empty_matrix_and_empty_columns():
    s = encode_columns(np.zeros((5, 3), dtype=int), 2)
    assert s.n_entries == 0 and s.ptr.tolist() == [0, 0, 0, 0]
    assert not decode_columns(s).any()


def test_bad_input():
    with pytest.raises(EiexError, match="2-D"):
        encode_columns(np.zeros(4, dtype=int), 2)
    with pytest.raises(EiexError, match="rel_bits"):
        encode_columns(np.zeros((2, 2), dtype=int), 0)
    s = encode_columns(np.eye(3, dtype=int), 2)
    bad = type(s)(v=s.v, z=s.z + 5, ptr=s.ptr, rows=3, rel_bits=2)
    with pytest.raises(EiexError, match="outside"):
        decode_columns(bad)
