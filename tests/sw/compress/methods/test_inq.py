"""INQ: the exponents, eq. 4 against a brute-force search, the partition, the power-of-two codebook."""

import math
from itertools import pairwise

import numpy as np
import pytest
import torch

from eiex.errors import EiexError
from eiex.sw.compress.methods.inq import (
    inq_partition, is_pow2_codebook, pow2_exponents, pow2_shared, pow2_tensor, quantize_pow2,
)


def eq4_reference(value: float, n1: int, n2: int) -> float:
    """The paper's rule, one value at a time: find adjacent alpha < beta of P with the value in range."""
    levels = [0.0] + [2.0**n for n in range(n2, n1 + 1)]
    magnitude = abs(value)
    if magnitude >= 1.5 * levels[-1]:
        return math.copysign(levels[-1], value)  # eiex's clip (eq. 4 itself says 0)
    for alpha, beta in pairwise(levels):
        if (alpha + beta) / 2 <= magnitude < 3 * beta / 2:
            return math.copysign(beta, value)
    return 0.0


@pytest.mark.parametrize("max_abs, bits, expected", [
    (1.0, 4, (0, -6)),     # 4/3 -> n1 = 0; 7 exponents
    (0.75, 4, (0, -6)),    # 4/3 * 0.75 = 1 exactly
    (0.7499, 4, (-1, -7)),
    (1.5, 2, (1, 1)),      # 4/3 * 1.5 = 2; one exponent
    (0.3, 5, (-2, -16)),   # 0.4 -> -2; 15 exponents
    (6.0, 8, (3, -123)),
])
def test_exponents(max_abs, bits, expected):
    assert pow2_exponents(max_abs, bits) == expected


def test_exponents_are_exact_at_every_boundary():
    for n in range(-60, 60):
        boundary = 0.75 * 2.0**n  # 4/3 * boundary = 2**n exactly
        assert pow2_exponents(boundary, 3)[0] == n
        assert pow2_exponents(np.nextafter(boundary, 0), 3)[0] == n - 1
        assert pow2_exponents(np.nextafter(boundary, np.inf), 3)[0] == n


def test_quantize_against_the_paper_rule():
    rng = np.random.default_rng(0)
    w = rng.normal(scale=0.5, size=4000)
    n1, n2 = pow2_exponents(np.abs(w).max(), 4)
    # the boundaries themselves and values around them
    edges = np.array([2.0**(n2 - 1), 0.75 * 2.0**n2, 1.5 * 2.0**n2, 1.5 * 2.0**n1, 3 * 2.0**n1, 0.0])
    w = np.concatenate([w, edges, -edges, np.nextafter(edges, 0), np.nextafter(edges, 1)])
    got = quantize_pow2(w, n1, n2)
    expected = np.array([eq4_reference(float(v), n1, n2) for v in w])
    np.testing.assert_array_equal(got, expected)


def test_quantize_is_the_nearest_level_ties_up():
    rng = np.random.default_rng(1)
    n1, n2 = 0, -3
    w = rng.uniform(-1.4, 1.4, size=3000)
    levels = np.array([0.0] + [2.0**n for n in range(n2, n1 + 1)])
    distance = np.abs(np.abs(w)[:, None] - levels[None])
    nearest = levels[np.argmin(distance, axis=1)]
    np.testing.assert_array_equal(quantize_pow2(w, n1, n2), np.sign(w) * nearest)
    # ties: halfway between 0.25 and 0.5 goes up, halfway between 0 and 2**-3 goes up
    assert quantize_pow2(np.array([0.375, -0.0625]), n1, n2).tolist() == [0.5, -0.125]


def test_quantize_clips_above_and_keeps_dtype():
    got = quantize_pow2(np.array([5.0, -100.0, 1.0], dtype=np.float32), 0, -2)
    assert got.dtype == np.float32
    assert got.tolist() == [1.0, -1.0, 1.0]


def test_torch_twin_equals_numpy():
    rng = np.random.default_rng(2)
    for dtype in (np.float32, np.float64):
        w = (rng.normal(size=(50, 40)) * 0.1).astype(dtype)
        n1, n2 = pow2_exponents(np.abs(w).max(), 5)
        np.testing.assert_array_equal(pow2_tensor(torch.from_numpy(w), n1, n2).numpy(), quantize_pow2(w, n1, n2))


def test_partition_freezes_largest_first():
    w = np.array([0.1, -0.9, 0.5, 0.3, -0.7, 0.2, 0.8, 0.05])
    mask = np.array([True, True, True, True, True, True, False, True])  # 0.8 is pruned
    frozen = np.zeros(8, dtype=bool)
    half = inq_partition(w, frozen, mask, 0.5)
    # 7 survivors: ceil(3.5) = 4, the largest |w|: 0.9, 0.7, 0.5, 0.3
    assert np.flatnonzero(half).tolist() == [1, 2, 3, 4]
    more = inq_partition(w, half, mask, 0.75)  # ceil(5.25) = 6
    assert np.flatnonzero(more).tolist() == [0, 1, 2, 3, 4, 5]
    everything = inq_partition(w, more, mask, 1.0)
    np.testing.assert_array_equal(everything, mask)
    # already frozen beyond the fraction: unchanged, never shrunk
    np.testing.assert_array_equal(inq_partition(w, more, mask, 0.25), more)


def test_partition_fractions_and_ties_on_random_weights():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(20, 30))
    w[0, :10] = 10.0  # ties: taken in flat order
    mask = rng.random(w.shape) > 0.2
    frozen = np.zeros(w.shape, dtype=bool)
    survivors = int(mask.sum())
    for fraction in (0.5, 0.75, 0.875, 1.0):
        new = inq_partition(w, frozen, mask, fraction)
        assert np.all(new[frozen]) and not np.any(new & ~mask)
        assert new.sum() == math.ceil(fraction * survivors)
        added = new & ~frozen
        rest = mask & ~new
        if rest.any():
            assert np.abs(w[added]).min() >= np.abs(w[rest]).max()
        frozen = new
    single = inq_partition(w, np.zeros(w.shape, dtype=bool), np.ones(w.shape, dtype=bool), 3 / 600)
    assert np.flatnonzero(single).tolist() == [0, 1, 2]
    assert inq_partition(np.arange(10.0), np.zeros(10, bool), np.ones(10, bool), 0.3).sum() == 3


def test_shared_codebook_is_powers_of_two_and_matches_quantize():
    rng = np.random.default_rng(4)
    w = rng.normal(scale=0.2, size=(40, 30)).astype(np.float32)
    mask = rng.random(w.shape) > 0.4
    for bits in (2, 3, 4, 5, 8):
        shared = pow2_shared(w, bits, mask)
        n1, n2 = pow2_exponents(np.abs(w[mask]).max(), bits)
        assert shared.bits == bits and len(shared.codebook) == 2**bits
        assert shared.codebook.dtype == np.float32 and shared.codes.dtype == np.int64
        assert np.all(is_pow2_codebook(shared.codebook))
        levels = 2.0 ** np.arange(n1, n2 - 1, -1)
        np.testing.assert_array_equal(shared.codebook[1:1 + 2 * len(levels):2], levels)
        np.testing.assert_array_equal(shared.codebook[2:2 + 2 * len(levels):2], -levels)
        assert np.all(shared.codebook[1 + 2 * len(levels):] == 0)
        assert shared.codebook[0] == 0
        expected = np.where(mask, quantize_pow2(w, n1, n2), 0)
        np.testing.assert_array_equal(shared.weights(), expected)
        assert np.all(shared.codes[~mask] == 0)
        assert np.all((shared.codes == 0) == (expected == 0))


def test_shared_of_zero_weights():
    shared = pow2_shared(np.zeros((3, 4)), 4)
    assert np.all(shared.codes == 0) and np.all(shared.codebook == 0)
    masked = pow2_shared(np.ones((2, 2)), 3, np.zeros((2, 2), dtype=bool))
    assert np.all(masked.codes == 0)


def test_is_pow2_codebook():
    values = np.array([0.0, 1.0, -0.5, 2.0**-130, 3.0, 0.75, -1024.0, np.nan, np.inf, 2.0**-149], dtype=np.float64)
    assert is_pow2_codebook(values).tolist() == [True, True, True, True, False, False, True, False, False, True]
    assert is_pow2_codebook(np.float32([0.1])).tolist() == [False]


@pytest.mark.parametrize("call, message", [
    (lambda: pow2_exponents(1.0, 1), "INQ bits must lie in 2..8, not 1"),
    (lambda: pow2_exponents(1.0, 9), "INQ bits must lie in 2..8, not 9"),
    (lambda: pow2_shared(np.ones(3), 4.0), r"INQ bits must lie in 2..8, not 4.0"),
    (lambda: pow2_exponents(0.0, 4), "largest weight magnitude must be a finite positive number, not 0.0"),
    (lambda: quantize_pow2(np.array([np.nan]), 0, -2), "weights contain NaN or infinite values"),
    (lambda: quantize_pow2(np.ones(2), -2, 0), "the smallest exponent n2=0 exceeds the largest n1=-2"),
    (lambda: quantize_pow2(np.ones(2), 0.5, 0), "power-of-two exponents must be integers"),
    (lambda: pow2_tensor(torch.tensor([float("inf")]), 0, -2), "weights contain NaN or infinite values"),
    (lambda: pow2_shared(np.array([1.0, np.inf]), 4), "weights contain NaN or infinite values"),
    (lambda: pow2_shared(np.ones(3), 4, np.ones((3, 1), dtype=bool)), r"mask shape \(3, 1\) does not match"),
    (lambda: pow2_shared(np.array([1e-40]), 8), r"powers of two 2\*\*-259..2\*\*-133 do not fit float32"),
    (lambda: inq_partition(np.ones(3), np.zeros(3, bool), np.ones(3, bool), 0.0), r"INQ fraction must lie in \(0, 1\]"),
    (lambda: inq_partition(np.ones(3), np.ones(3, bool), np.array([1, 1, 0], bool), 0.5),
     "frozen weights must all survive the mask"),
    (lambda: inq_partition(np.ones(3), np.zeros(3), np.ones(3, bool), 0.5), "frozen must be boolean"),
    (lambda: is_pow2_codebook(np.array(["a"])), "values must be real numbers"),
])
def test_bad_input(call, message):
    with pytest.raises(EiexError, match=message):
        call()
