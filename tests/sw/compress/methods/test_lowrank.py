"""Low-rank factorization: Eckart–Young errors against numpy's own reconstruction, minimal ranks."""

import numpy as np
import pytest

from eiex.errors import EiexError
from eiex.sw.compress.methods.lowrank import factorize, rank_for_error, relative_error, saves_storage


def reconstruction(w: np.ndarray, rank: int) -> np.ndarray:
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    return u[:, :rank] @ np.diag(s[:rank]) @ vt[:rank]


@pytest.fixture
def w():
    rng = np.random.default_rng(0)
    # a decaying spectrum, like a trained layer's
    return (rng.normal(size=(30, 8)) @ np.diag(2.0 ** -np.arange(8)) @ rng.normal(size=(8, 50))
            + 0.01 * rng.normal(size=(30, 50)))


def test_relative_error_against_reconstruction(w):
    for rank in range(1, 31):
        expected = np.linalg.norm(w - reconstruction(w, rank)) / np.linalg.norm(w)
        assert relative_error(w, rank) == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert relative_error(w, 30) == 0.0


def test_rank_for_error_is_minimal(w):
    for budget in (0.5, 0.1, 0.05, 0.01, 0.001):
        rank = rank_for_error(w, budget)
        assert relative_error(w, rank) <= budget
        if rank > 1:
            assert relative_error(w, rank - 1) > budget
    assert relative_error(w, 1) > 0.01  # rank 1 fails the budget
    assert rank_for_error(w, 0.01) > 1
    assert rank_for_error(np.outer(np.arange(1.0, 5), np.arange(1.0, 4)), 1e-9) == 1


def test_factors_reconstruct_the_best_approximation(w):
    for rank in (1, 3, 8, 30):
        first, second = factorize(w, rank)
        assert first.shape == (rank, 50) and second.shape == (30, rank)
        assert first.dtype == np.float64
        np.testing.assert_allclose(second @ first, reconstruction(w, rank), rtol=0, atol=1e-12)
    first, second = factorize(w.astype(np.float32), 4)
    assert first.dtype == np.float32 and second.dtype == np.float32
    np.testing.assert_allclose(second @ first, reconstruction(w, 4), rtol=0, atol=1e-4)


def test_saves_storage():
    assert saves_storage((300, 784), 200)  # 200 * 1084 = 216800 < 235200
    assert not saves_storage((300, 784), 217)  # 217 * 1084 = 235228
    assert not saves_storage((10, 10), 5)  # 100 == 100: no saving
    assert saves_storage((10, 10), 4)


@pytest.mark.parametrize("call, message", [
    (lambda: relative_error(np.ones(4), 1), "needs a 2-D \\(out, in\\) weight matrix, not 1-D"),
    (lambda: factorize(np.ones((2, 2, 2)), 1), "not 3-D"),
    (lambda: factorize(np.array([[1.0, np.nan]]), 1), "weights contain NaN or infinite values"),
    (lambda: factorize(np.ones((3, 4)), 4), "rank must lie in 1..3 for a 3x4 matrix, not 4"),
    (lambda: relative_error(np.ones((3, 4)), 0), "rank must lie in 1..3 for a 3x4 matrix, not 0"),
    (lambda: relative_error(np.zeros((3, 4)), 1), "the weight matrix is all zero"),
    (lambda: rank_for_error(np.ones((3, 4)), 1.0), r"relative error budget must lie in \(0, 1\), not 1.0"),
    (lambda: rank_for_error(np.ones((3, 4)), 0), r"relative error budget must lie in \(0, 1\), not 0.0"),
    (lambda: saves_storage((3, 4, 5), 1), r"shape must be two positive integers \(out, in\)"),
    (lambda: saves_storage((3, 0), 1), r"shape must be two positive integers \(out, in\)"),
    (lambda: saves_storage((3, 4), 4), "rank must lie in 1..3 for a 3x4 matrix, not 4"),
])
def test_bad_input(call, message):
    with pytest.raises(EiexError, match=message):
        call()
