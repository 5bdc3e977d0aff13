"""Linear quantization: the scale, round-half-even codes, two's complement, the index is the weight."""

import numpy as np
import pytest
import torch

from eiex.errors import EiexError
from eiex.sw.compress.methods.linear import linear_quantize, linear_scale, linear_tensor


def twos_complement(code: int, bits: int) -> int:
    return code - 2**bits if code >= 2 ** (bits - 1) else code


def test_hand_example():
    # 3 bits: L = 3, s = 1.5 / 3 = 0.5
    w = np.array([1.5, -1.5, 0.25, 0.75, -0.26, 0.1, -0.7], dtype=np.float32)
    assert linear_scale(w, 3) == pytest.approx(0.5)
    shared = linear_quantize(w, 3)
    # w / s = 3, -3, 0.5 (half-even: 0), 1.5 (half-even: 2), -0.52, 0.2, -1.4
    q = [3, -3, 0, 2, -1, 0, -1]
    assert shared.codes.tolist() == [3, 5, 0, 2, 7, 0, 7]
    assert shared.codebook.tolist() == [0.0, 0.5, 1.0, 1.5, 0.0, -1.5, -1.0, -0.5]
    assert shared.weights().tolist() == [0.5 * v for v in q]
    assert shared.bits == 3 and shared.codes.dtype == np.int64 and shared.codebook.dtype == np.float32


@pytest.mark.parametrize("bits", [2, 4, 8, 12])
def test_codes_round_trip_and_stay_within_half_a_step(bits):
    rng = np.random.default_rng(bits)
    w = rng.normal(size=(30, 40)).astype(np.float32)
    mask = rng.random(w.shape) > 0.3
    shared = linear_quantize(w, bits, mask)
    s = linear_scale(w, bits, mask)
    assert s == pytest.approx(np.abs(w[mask]).max() / (2 ** (bits - 1) - 1))
    q = np.vectorize(lambda c: twos_complement(int(c), bits))(shared.codes)
    assert np.all(np.abs(q) <= 2 ** (bits - 1) - 1)
    assert np.all(q[~mask] == 0) and np.all(shared.codes[~mask] == 0)
    assert np.all((shared.codes == 0) == (q == 0))
    # the index is the weight, up to the scale
    np.testing.assert_allclose(shared.weights(), (q * s).astype(np.float32), rtol=0, atol=0)
    assert np.all(np.abs(shared.weights()[mask] - w[mask]) <= s / 2 * (1 + 1e-6))
    for v in range(2**bits):
        expected = 0.0 if v == 2 ** (bits - 1) else twos_complement(v, bits) * s
        assert shared.codebook[v] == np.float32(expected)


def test_masked_outliers_are_clipped_not_scaled():
    w = np.array([1.0, -0.5, 50.0])
    mask = np.array([True, True, False])
    shared = linear_quantize(w, 4, mask)
    assert linear_scale(w, 4, mask) == pytest.approx(1 / 7)
    assert shared.codes[2] == 0
    # unmasked, the outlier sets the scale and is clipped to L
    assert linear_quantize(np.array([1.0, 20.0]), 2, np.array([True, True])).codes.tolist() == [0, 1]


def test_all_zero_weights():
    shared = linear_quantize(np.zeros((3, 3)), 4)
    assert linear_scale(np.zeros(3), 4) == 0.0
    assert np.all(shared.codes == 0) and np.all(shared.codebook == 0)


def test_tensor_twin_equals_the_codes():
    rng = np.random.default_rng(7)
    w = rng.normal(size=(25, 17)).astype(np.float32)
    mask = rng.random(w.shape) > 0.5
    for bits in (2, 5, 8):
        s = linear_scale(w, bits, mask)
        got = linear_tensor(torch.from_numpy(w), s, bits, torch.from_numpy(mask))
        assert got.dtype == torch.float32
        np.testing.assert_array_equal(got.numpy(), linear_quantize(w, bits, mask).weights())
    assert torch.all(linear_tensor(torch.ones(3), 0.0, 4) == 0)


@pytest.mark.parametrize("call, message", [
    (lambda: linear_scale(np.ones(3), 1), "linear quantization bits must lie in 2..12, not 1"),
    (lambda: linear_quantize(np.ones(3), 13), "linear quantization bits must lie in 2..12, not 13"),
    (lambda: linear_tensor(torch.ones(3), 0.1, True), "linear quantization bits must lie in 2..12, not True"),
    (lambda: linear_quantize(np.array([np.nan, 1.0]), 4), "weights contain NaN or infinite values"),
    (lambda: linear_quantize(np.ones(3), 4, np.ones(2, dtype=bool)), r"mask shape \(2,\) does not match"),
    (lambda: linear_quantize(np.float32([1e-44]), 12), "underflows float32"),
    (lambda: linear_tensor(torch.tensor([float("nan")]), 0.1, 4), "weights contain NaN or infinite values"),
    (lambda: linear_tensor(torch.ones(3), -1.0, 4), "quantization scale must be a finite non-negative number"),
    (lambda: linear_tensor(torch.ones(3), 0.1, 4, torch.ones(3)), "mask must be a boolean torch tensor"),
])
def test_bad_input(call, message):
    with pytest.raises(EiexError, match=message):
        call()
