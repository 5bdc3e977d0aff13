"""Float MLP to EIE image: codebooks, fixed-point choice, and load-balancing row order."""

import numpy as np
import pytest

from eiex.hw.eie import golden
from eiex.sw.eie_export import (
    balanced_row_order, choose_weight_frac, codebook_of, export_eie, float_forward, layers_from_npz,
)
from eiex.sw.eie_image import EngineParams
from eiex.sw.errors import EiexError

NORM = {"pixel_scale": 1 / 255, "mean": 0.1, "std": 0.3}


def random_mlp(seed, sizes=(20, 16, 12, 5), values=7, density=0.3):
    rng = np.random.default_rng(seed)
    arrays = {}
    for l, (cols, rows) in enumerate(zip(sizes[:-1], sizes[1:])):
        table = rng.normal(scale=0.3, size=values)
        w = table[rng.integers(0, values, (rows, cols))] * (rng.random((rows, cols)) < density)
        w[0] = 0  # an empty row
        arrays[f"w{l}"], arrays[f"b{l}"] = w.astype(np.float32), rng.normal(scale=0.1, size=rows).astype(np.float32)
    return arrays


def test_codebook_uses_the_distinct_values():
    arrays = random_mlp(0)
    layers = layers_from_npz(arrays, "x")
    codes, codebook = codebook_of(layers[0], idx_bits=3)
    assert codebook[0] == 0 and np.array_equal(codebook[codes], layers[0].weight)


def test_too_many_values_are_clustered():
    arrays = random_mlp(1, values=40)
    codes, codebook = codebook_of(layers_from_npz(arrays, "x")[0], idx_bits=3)
    assert codes.max() <= 7 and codebook[0] == 0
    assert np.array_equal(codes == 0, arrays["w0"] == 0)


def test_weight_frac_is_the_finest_that_fits():
    params = EngineParams(weight_bits=8, bias_bits=32, act_frac=4)
    frac = choose_weight_frac(np.array([0, 0.7, -1.2]), np.zeros(3), 4, params)
    assert round(1.2 * 2**frac) <= 128 and round(1.2 * 2 ** (frac + 1)) > 128


def test_fixed_point_tracks_the_float_model():
    arrays = random_mlp(2)
    layers = layers_from_npz(arrays, "x")
    raw = np.random.default_rng(0).integers(0, 256, (200, 20))
    params = EngineParams(n_pe=3, idx_bits=3, rel_bits=2, act_bits=16, weight_bits=16, bias_bits=32)
    image, info = export_eie(layers, params, input_norm=NORM, calibration=raw)
    fixed = golden.run(image, golden.quantize_input(image, raw)) / 2.0 ** info["act_frac"]
    reference = float_forward(layers, raw, NORM)
    assert np.abs(fixed - reference).max() < 0.01 * np.abs(reference).max()
    assert info["calibration"][info["act_frac"]]["agreement"] == 1.0


def test_balanced_order_is_a_valid_permutation_with_even_work():
    rng = np.random.default_rng(3)
    codes = (rng.random((37, 50)) < rng.random((37, 1))).astype(int)  # very uneven rows
    order = balanced_row_order(codes, 4)
    assert sorted(order.tolist()) == list(range(37))
    work = [np.count_nonzero(codes[order][p::4]) for p in range(4)]
    plain = [np.count_nonzero(codes[p::4]) for p in range(4)]
    assert max(work) <= max(plain) and max(work) - min(work) <= codes.sum(axis=1).max()


def test_row_permutation_does_not_change_the_outputs():
    arrays = random_mlp(4, sizes=(20, 29, 13, 6))
    layers = layers_from_npz(arrays, "x")
    params = EngineParams(n_pe=4, idx_bits=3, rel_bits=2, act_bits=16, act_frac=8)
    plain, _ = export_eie(layers, params)
    balanced, _ = export_eie(layers, params, balance=True)
    assert set(balanced.row_order) == {"fc1", "fc2"}  # hidden layers only; outputs keep their order
    a = np.random.default_rng(5).integers(-2000, 2000, (50, 20))
    assert np.array_equal(golden.run(plain, a), golden.run(balanced, a))


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("w0"), "holds no w0"),
    (lambda a: a.__setitem__("w1", a["w1"][:, :3]), "takes 3 inputs but w0 gives 16"),
    (lambda a: a.__setitem__("b0", np.full(16, np.nan)), "b0 contains NaN"),
    (lambda a: a.__setitem__("relu", np.array([1, 0, 1])), "relu must be a boolean array"),
    (lambda a: a.__setitem__("w0", np.zeros((16, 20, 1))), "w0 has shape"),
])
def test_bad_npz(change, message):
    arrays = random_mlp(6)
    change(arrays)
    with pytest.raises(EiexError, match=message):
        layers_from_npz(arrays, "x")
