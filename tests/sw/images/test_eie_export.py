"""Float MLP to EIE image: codebooks, fixed-point choice, and load-balancing row order."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eiex.hw.eie import golden
from eiex.sw.images.eie.export import (
    TOTAL_BALANCE_WEIGHT, balanced_row_order, choose_weight_frac, codebook_of, export_eie, float_forward,
    fold_input_mean, layers_from_npz,
)
from eiex.sw.images import memfiles
from eiex.sw.images.eie.files import load_image, write_image
from eiex.sw.images.eie.image import EngineParams
from eiex.errors import EiexError

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


def balance_objective(codes, order, n_pe, activity):
    """The balancer's objective, written out directly: per-column squares plus weighted totals."""
    x = (codes[order] != 0).astype(float)
    load = np.stack([x[p::n_pe].sum(axis=0) for p in range(n_pe)])
    total = load @ activity
    return float(((load**2) @ activity).sum() + TOTAL_BALANCE_WEIGHT * (total**2).sum())


def uneven_codes(seed, rows=37, cols=50):
    rng = np.random.default_rng(seed)
    return (rng.random((rows, cols)) < rng.random((rows, 1)) * rng.random((1, cols))).astype(int)


@pytest.mark.parametrize("seed, n_pe", [(3, 4), (4, 3), (5, 8), (6, 1)])
def test_balanced_order_is_a_permutation_no_single_swap_improves(seed, n_pe):
    codes = uneven_codes(seed)
    activity = np.random.default_rng(seed).random(codes.shape[1])
    order = balanced_row_order(codes, n_pe, activity)
    assert sorted(order.tolist()) == list(range(len(codes)))
    best = balance_objective(codes, order, n_pe, activity)
    assert best <= balance_objective(codes, np.arange(len(codes)), n_pe, activity) + 1e-9
    for i in range(len(order)):  # brute force over every swap of two rows on different PEs
        for j in range(i + 1, len(order)):
            if i % n_pe != j % n_pe:
                swapped = order.copy()
                swapped[[i, j]] = swapped[[j, i]]
                assert balance_objective(codes, swapped, n_pe, activity) >= best - 1e-6


def test_balanced_order_evens_out_every_column():
    codes = uneven_codes(7, rows=64, cols=40)
    order = balanced_row_order(codes, 4)
    spread = lambda o: np.ptp(np.stack([np.count_nonzero(codes[o][p::4], axis=0) for p in range(4)]), axis=0).mean()
    assert spread(order) < 0.7 * spread(np.arange(64))
    work = [np.count_nonzero(codes[order][p::4]) for p in range(4)]
    plain = [np.count_nonzero(codes[p::4]) for p in range(4)]
    assert max(work) - min(work) <= max(plain) - min(plain)


def test_input_mean_folds_into_the_first_bias():
    layers = layers_from_npz(random_mlp(8), "x")
    raw = np.random.default_rng(8).integers(0, 256, (30, 20)) * (np.random.default_rng(9).random((30, 20)) < 0.4)
    folded, norm = fold_input_mean(layers, NORM)
    assert norm == {**NORM, "mean": 0.0} and folded[1:] == layers[1:]
    np.testing.assert_allclose(float_forward(folded, raw, norm), float_forward(layers, raw, NORM), rtol=0, atol=1e-9)
    params = EngineParams(n_pe=3, idx_bits=3, rel_bits=2, act_bits=16, act_frac=8)
    image, _ = export_eie(layers, params, input_norm=NORM)
    assert image.input["mean"] == 0.0
    a = golden.quantize_input(image, raw)
    assert np.array_equal(a == 0, raw == 0)  # background pixels reach the engine as zeros


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


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), n_pe=st.integers(1, 6), balance=st.booleans(),
       sizes=st.lists(st.integers(1, 24), min_size=2, max_size=4), density=st.floats(0.05, 0.9),
       mean=st.sampled_from([0.0, 0.13, -0.4]))
def test_export_write_load_decode_recovers_the_float_weights(tmp_path_factory, seed, n_pe, balance, sizes,
                                                             density, mean):
    """Float MLP -> image -> files in every format -> loader -> decoded matrices: every weight and
    bias is the float one at its layer's fixed-point scale, wherever the row permutation put it."""
    layers = layers_from_npz(random_mlp(seed, sizes=tuple(sizes), density=density), "x")
    norm = {"pixel_scale": 1 / 255, "mean": mean, "std": 0.3}
    params = EngineParams(n_pe=n_pe, idx_bits=3, rel_bits=2, act_bits=16, act_frac=6, weight_bits=16, bias_bits=32)
    image, _ = export_eie(layers, params, input_norm=norm, balance=balance)
    out = tmp_path_factory.mktemp("img") / "image"
    write_image(image, out, formats=memfiles.FORMATS, huffman_max_len=8)
    back = load_image(out)
    folded, _ = fold_input_mean(layers, norm)
    cols = np.arange(sizes[0])
    for l, layer in enumerate(folded):
        rows = np.asarray(back.row_order.get(layer.name, np.arange(layer.weight.shape[0])))
        frac = back.layers[l].weight_frac
        expected = np.rint(layer.weight[np.ix_(rows, cols)] * 2.0**frac)
        assert np.array_equal(golden.decode_weights(back, l), expected)
        bias = np.rint(layer.bias[rows] * 2.0 ** (frac + back.engine.act_frac))
        assert np.array_equal(golden.layer_bias(back, l), bias)
        cols = rows
    assert back.input == {**norm, "mean": 0.0}
