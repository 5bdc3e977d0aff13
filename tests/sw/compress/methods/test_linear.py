"""Linear quantization: the scale (real, or rounded up to a power of two), round-half-even codes, two's
complement, the index is the weight; the recipe's ``[quantize] scale``."""

import numpy as np
import pytest
import torch

from eiex.errors import EiexError
from eiex.sw.compress.methods.linear import LINEAR_SCALES, linear_quantize, linear_scale, linear_tensor, scale_of
from eiex.sw.compress.recipe import load_recipe
from eiex.sw.models import build_model


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


# ---- the power-of-two scale ----------------------------------------------------------------------


def brute_pow2_scale(max_abs: float, bits: int) -> float:
    """The smallest ``2**k`` (k an integer, tried from -300 up) that is at least ``max_abs / L``."""
    if max_abs == 0:
        return 0.0
    target = max_abs / (2 ** (bits - 1) - 1)
    return next(2.0**k for k in range(-300, 300) if 2.0**k >= target)


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 12])
def test_pow2_scale_is_the_smallest_power_of_two_at_least_the_real_one(bits):
    rng = np.random.default_rng(bits)
    for _ in range(200):
        w = rng.normal(0, 10.0 ** rng.uniform(-30, 30), (5, 7))
        mask = rng.random(w.shape) > 0.3
        max_abs = float(np.abs(w[mask]).max(initial=0))
        expected = brute_pow2_scale(max_abs, bits)
        assert scale_of(max_abs, bits, "pow2") == expected
        assert linear_scale(w, bits, mask, kind="pow2") == expected
        real = linear_scale(w, bits, mask)
        assert real == scale_of(max_abs, bits) == linear_scale(w, bits, mask, kind="real")
        assert real <= expected < 2 * real


@pytest.mark.parametrize("bits, k", [(2, 0), (2, -1), (3, -4), (4, 5), (8, -20), (12, 3)])
def test_pow2_scale_of_an_exact_power_of_two_is_itself(bits, k):
    levels = 2 ** (bits - 1) - 1
    max_abs = levels * 2.0**k  # max / L == 2**k exactly
    assert scale_of(max_abs, bits, "pow2") == 2.0**k
    assert linear_scale(np.array([max_abs, -0.5 * max_abs]), bits, kind="pow2") == 2.0**k
    # a hair above it: the next power
    assert scale_of(np.nextafter(max_abs, np.inf), bits, "pow2") == 2.0 ** (k + 1)
    assert scale_of(0.0, bits, "pow2") == 0.0 and linear_scale(np.zeros(4), bits, kind="pow2") == 0.0


@pytest.mark.parametrize("bits", [2, 3, 5, 8])
def test_pow2_codes_are_exact_integer_multiples_of_the_scale(bits):
    rng = np.random.default_rng(10 + bits)
    w = rng.normal(0, 0.3, (30, 40)).astype(np.float32)
    mask = rng.random(w.shape) > 0.4
    shared = linear_quantize(w, bits, mask, kind="pow2")
    s = linear_scale(w, bits, mask, kind="pow2")
    levels = 2 ** (bits - 1) - 1
    q = np.vectorize(lambda c: twos_complement(int(c), bits))(shared.codes)
    assert np.all(np.abs(q) <= levels) and np.all(q[~mask] == 0)
    # round half to even of w / s, clipped (w / s is within L here, the scale being at least max|w| / L)
    expected = np.where(mask, np.clip(np.rint(w.astype(np.float64) / s), -levels, levels), 0)
    assert np.array_equal(q, expected)
    # the weights are q * 2**-f exactly, in float32 as stored
    weights = shared.weights()
    assert weights.dtype == np.float32
    assert np.array_equal(weights.astype(np.float64), q * s)
    f = -int(np.log2(s))
    assert 2.0**-f == s and np.array_equal(np.ldexp(weights.astype(np.float64), f), q)
    for v in range(2**bits):
        assert shared.codebook[v] == (0.0 if v == 2 ** (bits - 1) else twos_complement(v, bits) * s)
    # a coarser scale than the real one: never more levels used, at least about half of them
    top = int(np.abs(q).max())
    assert levels // 2 <= top <= levels


def test_pow2_projection_of_the_retraining_equals_the_codes():
    """compress's straight-through projection with ``kind="pow2"`` gives the weights the final
    ``linear_quantize`` does (the retrained weights are then a fixed point)."""
    from eiex.sw.compress.quantize import _linear_projection

    rng = np.random.default_rng(3)
    w = rng.normal(0, 0.1, (12, 9)).astype(np.float32)
    mask = rng.random(w.shape) > 0.3
    w[~mask] = 0
    for bits in (2, 4, 6):
        projected = _linear_projection(bits, torch.from_numpy(mask), "pow2")(torch.from_numpy(w)).numpy()
        expected = linear_quantize(w, bits, mask, kind="pow2").weights()
        np.testing.assert_array_equal(projected, expected)
        again = _linear_projection(bits, torch.from_numpy(mask), "pow2")(torch.from_numpy(projected)).numpy()
        np.testing.assert_array_equal(again, projected)


@pytest.mark.parametrize("call", [
    lambda: scale_of(1.0, 4, "log"),
    lambda: linear_scale(np.ones(3), 4, kind="log"),
    lambda: linear_quantize(np.ones(3), 4, kind="log"),
])
def test_unknown_scale_kind_is_refused(call):
    assert LINEAR_SCALES == ("real", "pow2")
    with pytest.raises(EiexError) as e:
        call()
    assert str(e.value) == "linear quantization scale must be one of real, pow2, not 'log'"


# ---- the recipe's [quantize] scale ---------------------------------------------------------------


@pytest.mark.parametrize("table, scale", [
    ({"method": "linear", "scale": "pow2"}, "pow2"),
    ({"method": "linear", "scale": "real"}, "real"),
    ({"method": "linear"}, "real"),
])
def test_recipe_quantize_scale(table, scale):
    recipe = load_recipe("lenet300", build_model("lenet300"), {"quantize": table})
    assert recipe.quantizer == "linear" and recipe.quantize.scale == scale
    assert recipe.to_json()["quantize"]["scale"] == scale


def test_recipe_quantize_scale_from_a_toml_file(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[quantize]\nmethod = "linear"\nscale = "pow2"\nepochs = 2\n')
    recipe = load_recipe("lenet300", build_model("lenet300"), path)
    assert recipe.quantize.scale == "pow2" and recipe.quantize.train.epochs == 2


@pytest.mark.parametrize("table, message", [
    ({"scale": "pow2"}, "recipe: [quantize] scale applies to method = \"linear\", not 'kmeans'"),
    ({"method": "kmeans", "scale": "real"}, "recipe: [quantize] scale applies to method = \"linear\", not 'kmeans'"),
    ({"method": "pow2", "scale": "pow2"}, "recipe: [quantize] scale applies to method = \"linear\", not 'pow2'"),
    ({"method": "ternary", "scale": "real"}, "recipe: [quantize] scale applies to method = \"linear\", not 'ternary'"),
    ({"method": "linear", "scale": "log"}, "recipe: [quantize] scale must be one of real, pow2, not 'log'"),
    ({"method": "linear", "scale": 2}, "recipe: [quantize] scale must be one of real, pow2, not 2"),
])
def test_bad_recipe_quantize_scale_is_one_line(table, message):
    with pytest.raises(EiexError) as e:
        load_recipe("lenet300", build_model("lenet300"), {"quantize": table})
    assert str(e.value) == message
