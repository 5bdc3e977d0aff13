"""Canonical length-limited Huffman coding, checked against independent references:
RFC 1951's worked examples, brute-force optimal length vectors, a heapq Huffman
coder, and a per-symbol string encoder."""

import dataclasses
import heapq
import itertools

import numpy as np
import pytest
from bitarray import bitarray
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from eiex.errors import EiexError
from eiex.sw.compress.huffman import MAX_CODE_LEN, HuffmanCode, canonical_codes, code_lengths

FIB = [1, 1, 2, 3, 5, 8, 13, 21]


# ---------------------------------------------------------------- references


def brute_force_cost(counts, max_len):
    """Minimum sum(count * len) over all length vectors in [1..max_len]^n with Kraft <= 1."""
    used = [c for c in counts if c > 0]
    if len(used) <= 1:
        return sum(used)  # a single used symbol costs one bit per occurrence
    best = None
    for lens in itertools.product(range(1, max_len + 1), repeat=len(used)):
        if sum(2.0**-l for l in lens) <= 1.0:
            cost = sum(c * l for c, l in zip(used, lens))
            best = cost if best is None else min(best, cost)
    return best


def heapq_huffman_cost(counts):
    """Cost of an unconstrained Huffman code: the sum of all merged weights."""
    heap = [c for c in counts if c > 0]
    if len(heap) <= 1:
        return sum(heap)
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        cost += merged
        heapq.heappush(heap, merged)
    return cost


def reference_canonical(lengths):
    """Canonical codes as strings, built the 'increment, then shift' way."""
    order = sorted((l, s) for s, l in enumerate(lengths) if l > 0)
    codes, code, prev_len = {}, 0, order[0][0] if order else 0
    for l, s in order:
        code <<= l - prev_len
        codes[s] = format(code, f"0{l}b")
        code += 1
        prev_len = l
    return codes


def code_strings(code):
    return {s: format(int(code.codes[s]), f"0{int(code.lengths[s])}b") for s in np.flatnonzero(code.lengths)}


def kraft_sum(lengths):
    return sum(2.0 ** -int(l) for l in lengths if l > 0)


def cost(counts, lengths):
    return sum(int(c) * int(l) for c, l in zip(counts, lengths))


# ---------------------------------------------------------------- canonical codes


def test_rfc1951_example_abcdefgh():
    codes = canonical_codes([3, 3, 3, 3, 3, 2, 4, 4])
    as_strings = [format(int(c), f"0{l}b") for c, l in zip(codes, [3, 3, 3, 3, 3, 2, 4, 4])]
    assert as_strings == ["010", "011", "100", "101", "110", "00", "1110", "1111"]


def test_rfc1951_example_abcd():
    # RFC 1951 3.2.2: lengths (2, 1, 3, 3) give B=0, A=10, C=110, D=111.
    assert canonical_codes([2, 1, 3, 3]).tolist() == [0b10, 0b0, 0b110, 0b111]


def test_unused_symbols_get_code_zero():
    codes = canonical_codes([0, 2, 0, 1, 2])
    assert codes.tolist() == [0, 0b10, 0, 0b0, 0b11]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 200), min_size=1, max_size=40), st.integers(1, 12))
def test_canonical_codes_prefix_free_kraft_and_ordered(counts, max_len):
    assume((sum(c > 0 for c in counts) - 1).bit_length() <= max_len)
    lengths = code_lengths(counts, max_len)
    code = HuffmanCode.from_lengths(lengths, max_len)
    strings = code_strings(code)
    assert kraft_sum(lengths) <= 1.0
    words = list(strings.values())
    for a, b in itertools.permutations(words, 2):
        assert not b.startswith(a)
    # Same codes as the independent construction.
    assert strings == reference_canonical(lengths.tolist())
    # Canonical order: sorting by (length, symbol) sorts the codes
    # lexicographically, and within one length codes are consecutive.
    order = sorted(strings, key=lambda s: (len(strings[s]), s))
    assert [strings[s] for s in order] == sorted(words)
    for s, t in zip(order, order[1:]):
        if len(strings[s]) == len(strings[t]):
            assert int(strings[t], 2) == int(strings[s], 2) + 1


def test_canonical_codes_reject_kraft_violation():
    with pytest.raises(EiexError, match="Kraft"):
        canonical_codes([1, 1, 1])
    with pytest.raises(EiexError, match="Kraft"):
        HuffmanCode.from_lengths([2, 2, 2, 2, 2], 2)


def test_from_lengths_rejects_bad_tables():
    with pytest.raises(EiexError, match="exceeds"):
        HuffmanCode.from_lengths([1, 5], 4)
    with pytest.raises(EiexError, match="non-negative"):
        HuffmanCode.from_lengths([1, -1], 4)
    with pytest.raises(EiexError, match="max_len"):
        HuffmanCode.from_lengths([1, 1], 0)
    with pytest.raises(EiexError, match="max_len"):
        HuffmanCode.from_lengths([1, 1], MAX_CODE_LEN + 1)


# ---------------------------------------------------------------- optimal lengths


@pytest.mark.parametrize(
    "counts, max_len",
    [
        (FIB[:6], 4),  # unconstrained Huffman needs 5 bits
        (FIB[:6], 3),
        (FIB[:6], 5),
        (FIB[:5], 3),
        (FIB[:5], 4),
        ([1, 2, 4, 8, 16], 3),
        ([10, 0, 1, 0, 1], 2),
        ([3, 3, 3, 3], 2),
        ([100, 1, 1, 1], 2),
        ([1, 1], 1),
    ],
)
def test_code_lengths_matches_brute_force_examples(counts, max_len):
    lengths = code_lengths(counts, max_len)
    assert lengths.max() <= max_len
    assert kraft_sum(lengths) <= 1.0
    assert cost(counts, lengths) == brute_force_cost(counts, max_len)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=5), st.integers(1, 5))
def test_code_lengths_matches_brute_force(counts, max_len):
    used = sum(c > 0 for c in counts)
    assume(2**max_len >= used)
    lengths = code_lengths(counts, max_len)
    assert lengths.shape == (len(counts),)
    assert all((l == 0) == (c == 0) for c, l in zip(counts, lengths))
    assert lengths.max(initial=0) <= max_len
    assert kraft_sum(lengths) <= 1.0
    assert cost(counts, lengths) == brute_force_cost(counts, max_len)


def test_fibonacci_eight_symbols_limited_to_four_bits():
    # Unconstrained Huffman gives lengths 7,7,6,5,4,3,2,1; the limit forces a
    # flatter tree.  4**8 length vectors are few enough to enumerate.
    unconstrained = code_lengths(FIB, 40)
    assert unconstrained.max() == 7
    limited = code_lengths(FIB, 4)
    assert limited.max() <= 4
    assert cost(FIB, limited) == brute_force_cost(FIB, 4)
    assert cost(FIB, limited) > cost(FIB, unconstrained)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=60))
def test_code_lengths_matches_heapq_huffman_when_unconstrained(counts):
    lengths = code_lengths(counts, 64)
    assert cost(counts, lengths) == heapq_huffman_cost(counts)


def test_code_lengths_skewed_counts_hit_the_limit_exactly():
    counts = [2**k for k in range(20)]  # unconstrained depth 19
    assert code_lengths(counts, 64).max() == 19
    limited = code_lengths(counts, 8)
    assert limited.max() == 8
    assert kraft_sum(limited) == 1.0  # an optimal code is complete


def test_code_lengths_exact_limit_forces_flat_code():
    assert code_lengths([1, 50, 2, 9, 1000, 3, 7, 1], 3).tolist() == [3] * 8


def test_code_lengths_special_cases():
    assert code_lengths([0, 0, 0], 4).tolist() == [0, 0, 0]
    assert code_lengths([], 4).tolist() == []
    assert code_lengths([0, 0, 17, 0], 1).tolist() == [0, 0, 1, 0]
    assert code_lengths([5, 9], 1).tolist() == [1, 1]


def test_code_lengths_huge_counts_stay_exact():
    # Package weights overflow int64 here; the result must still be optimal.
    counts = [2**61, 2**61, 1, 1, 3]
    assert cost(counts, code_lengths(counts, 3)) == brute_force_cost(counts, 3)


def test_code_lengths_rejects_bad_input():
    with pytest.raises(EiexError, match="do not fit"):
        code_lengths([1] * 9, 3)
    with pytest.raises(EiexError, match="max_len"):
        code_lengths([1, 1], 0)
    with pytest.raises(EiexError, match="non-negative"):
        code_lengths([1, -2, 3], 4)
    with pytest.raises(EiexError, match="integers"):
        code_lengths([1.5, 2.0], 4)
    with pytest.raises(EiexError, match="1-D"):
        code_lengths([[1, 2], [3, 4]], 4)


# ---------------------------------------------------------------- HuffmanCode


def test_fit_uses_symbol_frequencies():
    data = np.array([0] * 8 + [1] * 4 + [2] * 2 + [3] * 1 + [4] * 1)
    code = HuffmanCode.fit(data, 6, 8)
    assert code.lengths.tolist() == [1, 2, 3, 4, 4, 0]
    assert code.encoded_bits(data) == 8 * 1 + 4 * 2 + 2 * 3 + 2 * 4
    assert code.table_bits() == 6 * 4


def test_single_symbol_code_is_one_zero_bit():
    code = HuffmanCode.fit(np.full(5, 3), 6, 4)
    assert code.lengths.tolist() == [0, 0, 0, 1, 0, 0]
    assert int(code.codes[3]) == 0
    bits = code.encode(np.full(5, 3))
    assert bits == bitarray("00000")
    assert code.decode(bits, 5).tolist() == [3] * 5
    with pytest.raises(EiexError, match="truncated or invalid"):
        code.decode(bitarray("0010"), 4)  # '1' is not a code


def test_empty_streams():
    empty = HuffmanCode.fit(np.array([], dtype=np.int64), 4, 3)
    assert empty.lengths.tolist() == [0, 0, 0, 0]
    assert len(empty.encode([])) == 0
    assert empty.encoded_bits([]) == 0
    assert empty.decode(bitarray(), 0).tolist() == []
    with pytest.raises(EiexError, match="empty"):
        empty.decode(bitarray("0101"), 1)
    code = HuffmanCode.fit([0, 1, 1], 2, 2)
    assert len(code.encode(np.array([], dtype=np.int64))) == 0
    assert code.decode(bitarray(), 0).shape == (0,)


def test_encode_is_msb_first_canonical():
    # RFC 1951 example again, now through the stream: A..H = 0..7.
    code = HuffmanCode.from_lengths([3, 3, 3, 3, 3, 2, 4, 4], 4)
    bits = code.encode([5, 0, 7, 6, 1])  # F A H G B
    assert bits == bitarray("00" "010" "1111" "1110" "011")
    assert code.decode(bits, 5).tolist() == [5, 0, 7, 6, 1]


@st.composite
def streams(draw):
    n_symbols = draw(st.integers(1, 40))
    max_len = draw(st.integers(1, 10))
    # Skewed draws so that the length limit often binds.
    weights = draw(st.lists(st.integers(0, 2**12), min_size=n_symbols, max_size=n_symbols))
    weights = [w * w for w in weights]
    size = draw(st.integers(0, 400))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if sum(weights) == 0:
        weights = [1] * n_symbols
    p = np.array(weights, dtype=float) / sum(weights)
    data = rng.choice(n_symbols, size=size, p=p)
    used = np.unique(data).size
    assume((used - 1).bit_length() <= max_len)
    return data, n_symbols, max_len


def reference_encode(code, data):
    strings = code_strings(code)
    return bitarray("".join(strings[int(s)] for s in data))


@settings(max_examples=120, deadline=None)
@given(streams())
def test_round_trip(case):
    data, n_symbols, max_len = case
    code = HuffmanCode.fit(data, n_symbols, max_len)
    assert code.lengths.max(initial=0) <= max_len
    bits = code.encode(data)
    assert len(bits) == code.encoded_bits(data)
    assert bits == reference_encode(code, data)
    assert np.array_equal(code.decode(bits, data.size), data)
    # Bytes with trailing padding decode the same.
    padded = bits + bitarray("1" * 7)
    assert np.array_equal(code.decode(padded.tobytes(), data.size, nbits=len(bits)), data)
    assert np.array_equal(code.decode(padded, data.size), data)


@settings(max_examples=30, deadline=None)
@given(st.integers(4, 20), st.integers(0, 2**32 - 1))
def test_round_trip_fibonacci_at_the_limit(max_len, seed):
    # Fibonacci frequencies over 16 symbols: unconstrained depth 15.
    n = 16
    fib = [1, 1]
    while len(fib) < n:
        fib.append(fib[-1] + fib[-2])
    data = np.repeat(np.arange(n), fib)
    np.random.default_rng(seed).shuffle(data)
    code = HuffmanCode.fit(data, n, max_len)
    assert code.lengths.max() <= max_len
    if max_len >= n - 1:
        assert cost(fib, code.lengths) == heapq_huffman_cost(fib)
    else:
        assert cost(fib, code.lengths) > heapq_huffman_cost(fib)
    bits = code.encode(data)
    assert len(bits) == code.encoded_bits(data) == cost(fib, code.lengths)
    assert np.array_equal(code.decode(bits, data.size), data)


def test_round_trip_large_alphabet():
    rng = np.random.default_rng(7)
    data = np.minimum(rng.geometric(0.02, size=300_000) - 1, 511)
    code = HuffmanCode.fit(data, 512, 15)
    bits = code.encode(data)
    assert len(bits) == code.encoded_bits(data) == cost(np.bincount(data, minlength=512), code.lengths)
    assert np.array_equal(code.decode(bits, data.size), data)


def test_decode_rejects_truncated_stream():
    code = HuffmanCode.fit([0, 1, 2, 2, 3, 3, 3, 3], 4, 4)
    data = np.array([3, 0, 1, 2, 3])
    bits = code.encode(data)
    with pytest.raises(EiexError, match="truncated or invalid"):
        code.decode(bits[:-1], data.size)
    with pytest.raises(EiexError, match="truncated or invalid"):
        code.decode(bits, data.size + 1)
    with pytest.raises(EiexError, match="nbits"):
        code.decode(bits.tobytes(), data.size, nbits=len(bits.tobytes()) * 8 + 1)


def test_decode_rejects_invalid_code_in_incomplete_code():
    code = HuffmanCode.from_lengths([1, 2], 2)  # codes 0 and 10; 11 is unused
    assert code.decode(bitarray("0100"), 3).tolist() == [0, 1, 0]
    with pytest.raises(EiexError, match="truncated or invalid"):
        code.decode(bitarray("011" + "0" * 40), 3)


def test_encode_rejects_symbols_without_code():
    code = HuffmanCode.fit([0, 0, 2], 4, 3)
    with pytest.raises(EiexError, match="symbol 1 has no Huffman code"):
        code.encode([0, 1, 2])
    with pytest.raises(EiexError, match="no Huffman code"):
        code.encoded_bits([3])
    with pytest.raises(EiexError, match="outside the alphabet"):
        code.encode([0, 4])
    with pytest.raises(EiexError, match="outside the alphabet"):
        code.encode([-1])
    with pytest.raises(EiexError, match="integers"):
        code.encode([0.0, 2.0])


def test_fit_rejects_bad_input():
    with pytest.raises(EiexError, match="do not fit"):
        HuffmanCode.fit(np.arange(5), 5, 2)
    with pytest.raises(EiexError, match="outside the alphabet"):
        HuffmanCode.fit([0, 5], 5, 4)


def test_table_bits_width_of_max_len():
    lengths = code_lengths(np.ones(512, dtype=np.int64), 15)
    assert HuffmanCode.from_lengths(lengths, 15).table_bits() == 512 * 4
    assert HuffmanCode.from_lengths(lengths, 16).table_bits() == 512 * 5
    assert HuffmanCode.from_lengths([1, 1, 0], 1).table_bits() == 3


def test_code_is_frozen_and_compares_by_value():
    code = HuffmanCode.from_lengths([1, 2, 2], 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        code.max_len = 4
    with pytest.raises(ValueError):
        code.lengths[0] = 2
    assert code == HuffmanCode.from_lengths(np.array([1, 2, 2]), 3)
    assert code != HuffmanCode.from_lengths([1, 2, 2], 4)
    assert hash(code) == hash(HuffmanCode.from_lengths([1, 2, 2], 3))
