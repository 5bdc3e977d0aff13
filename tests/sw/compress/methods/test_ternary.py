"""TWN: the 0.7 * E|W| threshold, the optimal scale for it, the 2-bit codes, the mask, the torch twin."""

import numpy as np
import pytest
import torch

from eiex.errors import EiexError
from eiex.sw.compress.methods.ternary import ternarize, ternary_tensor, twn_scale, twn_threshold


def test_threshold_and_scale_by_hand():
    w = np.array([[1.0, -2.0], [0.5, -0.1]], dtype=np.float32)
    # mean |w| = 3.6 / 4 = 0.9, delta = 0.63; above it: 1.0 and 2.0, alpha = 1.5
    assert twn_threshold(w) == pytest.approx(0.63)
    assert twn_scale(w, 0.63) == pytest.approx(1.5)
    shared = ternarize(w)
    assert shared.bits == 2
    assert shared.codebook.dtype == np.float32 and shared.codes.dtype == np.int64
    assert shared.codebook.tolist() == [0.0, 1.5, -1.5, 0.0]
    assert shared.codes.tolist() == [[1, 2], [0, 0]]
    assert shared.weights().tolist() == [[1.5, -1.5], [0.0, 0.0]]


def test_mask_removes_weights_from_both_means_and_the_codes():
    w = np.array([4.0, 1.0, -1.0, 0.2, 100.0])
    mask = np.array([True, True, True, True, False])
    # survivors' mean |w| = 6.2 / 4 = 1.55, delta = 1.085: only 4.0 is above
    assert twn_threshold(w, mask) == pytest.approx(0.7 * 1.55)
    assert twn_scale(w, twn_threshold(w, mask), mask) == pytest.approx(4.0)
    shared = ternarize(w, mask)
    assert shared.codes.tolist() == [1, 0, 0, 0, 0]


def test_scale_minimizes_the_squared_error_for_its_threshold():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(10, 8))
    delta = twn_threshold(w)
    ternary = np.sign(w) * (np.abs(w) > delta)
    grid = np.linspace(0, 3, 30001)
    errors = ((w[None] - grid[:, None, None] * ternary[None]) ** 2).sum(axis=(1, 2))
    best = grid[np.argmin(errors)]
    assert twn_scale(w, delta) == pytest.approx(best, abs=1e-4)


def test_scale_is_zero_when_nothing_exceeds_the_threshold():
    assert twn_scale(np.array([0.1, -0.2]), 5.0) == 0.0
    shared = ternarize(np.zeros((2, 3)))
    assert np.all(shared.codes == 0)


def test_codes_against_an_independent_loop():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(8, 9)).astype(np.float32)
    mask = rng.random(w.shape) > 0.3
    shared = ternarize(w, mask)
    survivors = [abs(float(v)) for v, m in zip(w.flat, mask.flat) if m]
    delta = 0.7 * sum(survivors) / len(survivors)
    big = [a for a in survivors if a > delta]
    alpha = sum(big) / len(big)
    for v, m, code in zip(w.flat, mask.flat, shared.codes.flat):
        expected = 0 if not m or abs(float(v)) <= delta else (1 if v > 0 else 2)
        assert code == expected
    assert shared.codebook[1] == pytest.approx(alpha, rel=1e-6)
    assert shared.codebook[2] == -shared.codebook[1]


def test_tensor_twin_equals_the_codes():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(16, 12)).astype(np.float32)
    mask = rng.random(w.shape) > 0.5
    expected = ternarize(w, mask).weights()
    with torch.no_grad():
        got = ternary_tensor(torch.from_numpy(w), torch.from_numpy(mask))
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), expected)
    np.testing.assert_array_equal(ternary_tensor(torch.from_numpy(w)).numpy(), ternarize(w).weights())


@pytest.mark.parametrize("call, message", [
    (lambda: ternarize(np.array([1.0, np.nan])), "weights contain NaN or infinite values"),
    (lambda: twn_threshold(np.array([1.0, np.inf])), "weights contain NaN or infinite values"),
    (lambda: ternarize(np.ones(3), np.zeros(3, dtype=bool)), "no weight survives the mask"),
    (lambda: ternarize(np.ones(3), np.ones(4, dtype=bool)), r"mask shape \(4,\) does not match the weights' \(3,\)"),
    (lambda: ternarize(np.ones(3), np.ones(3)), "mask must be boolean, not float64"),
    (lambda: ternarize(np.ones((0, 3))), "weights are empty"),
    (lambda: twn_scale(np.ones(3), -1.0), "TWN threshold must be a finite non-negative number, not -1.0"),
    (lambda: ternary_tensor(torch.tensor([1.0, float("nan")])), "weights contain NaN or infinite values"),
    (lambda: ternary_tensor(torch.ones(3), torch.ones(2, dtype=torch.bool)), r"mask shape \(2,\) does not match"),
    (lambda: ternary_tensor(torch.ones(3, dtype=torch.int64)), "needs a floating-point torch tensor"),
])
def test_bad_input(call, message):
    with pytest.raises(EiexError, match=message):
        call()
