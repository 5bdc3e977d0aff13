"""The threshold compiler: integer XNOR-popcount thresholds equal the float batch-norm sign."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eiex.errors import EiexError
from eiex.sw.binarize.thresholds import BatchNormParams, compile_hidden, compile_output, fold_layers, run_folded
from eiex.sw.images.xnor.export import check_folded


def float_fires(acc, k, alpha, gamma, beta, mean, var, eps):
    """The float semantics, one Python float at a time: y >= 0 at popcount ``acc``."""
    s = alpha * (2 * acc - k)
    return gamma * (s - mean) / math.sqrt(var + eps) + beta >= 0


def input_with_matches(row: np.ndarray, acc: int) -> np.ndarray:
    """A +-1 input that matches ``row`` in exactly ``acc`` columns."""
    x = row.copy()
    x[: len(row) - acc] *= -1
    return x


def assert_hardware_equals_float(w, alpha, bn):
    """For every row and every acc in 0..K, the engine's decision equals the float decision."""
    fold = compile_hidden(w, alpha, bn)
    m, k = w.shape
    alphas = np.ones(m) if alpha is None else np.broadcast_to(np.asarray(alpha, float), (m,))
    for r in range(m):
        for acc in range(k + 1):
            x = input_with_matches(w[r], acc)
            hardware_acc = int(np.sum(x == fold.weights[r]))  # XNOR then popcount, as the engine
            hardware = hardware_acc >= fold.thresholds[r]
            expected = float_fires(acc, k, float(alphas[r]), *(float(v[r]) for v in
                                   (bn.gamma, bn.beta, bn.mean, bn.var)), bn.eps)
            assert hardware == expected, (r, acc, fold.thresholds[r], fold.flipped[r])
    return fold


finite = st.floats(-4, 4, allow_nan=False, allow_subnormal=False)
gammas = st.one_of(finite, st.sampled_from([0.0, -0.0, 1e-30, -1e-30]))


@st.composite
def hidden_layers(draw):
    k = draw(st.integers(1, 40))
    m = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    w = np.where(np.random.default_rng(seed).random((m, k)) < 0.5, -1, 1).astype(np.int8)
    vec = lambda s: np.array(draw(st.lists(s, min_size=m, max_size=m)))  # noqa: E731
    alpha = draw(st.one_of(st.none(), st.just(vec(st.floats(0, 2, allow_subnormal=False)))))
    # beta often sits exactly on a decision boundary so that ties (y == 0) come up
    gamma, mean = vec(gammas), vec(finite)
    var, eps = vec(st.floats(0, 4, allow_subnormal=False)), draw(st.sampled_from([1e-5, 1e-3, 0.1]))
    beta = vec(finite)
    if draw(st.booleans()):
        dots = np.array([draw(st.integers(-k, k)) for _ in range(m)], dtype=float)
        a = np.ones(m) if alpha is None else alpha
        beta = -gamma * (a * dots - mean) / np.sqrt(var + eps)
    return w, alpha, BatchNormParams.of(gamma, beta, mean, var, eps)


@settings(max_examples=300, deadline=None)
@given(hidden_layers())
def test_hardware_decision_equals_float_decision_at_every_count(layer):
    w, alpha, bn = layer
    fold = assert_hardware_equals_float(w, alpha, bn)
    k = w.shape[1]
    assert fold.weights.dtype == np.int8 and fold.thresholds.dtype == np.int64
    assert np.all((fold.thresholds >= 0) & (fold.thresholds <= k + 1))
    # a flipped row is the negated sign row, an unflipped one is untouched
    assert np.array_equal(fold.weights, np.where(fold.flipped[:, None], -w, w))


@pytest.mark.parametrize("alpha, gamma, beta, mean, flipped, threshold", [
    # K = 8, var + eps = 1: y = gamma * (alpha * dot - mean) + beta, acc = (dot + 8) / 2
    (1.0, 1.0, 0.0, 2.0, False, 5),  # y == 0 exactly at dot 2 (acc 5): the tie fires
    (0.5, 1.0, 0.0, 1.0, False, 5),  # alpha scales the dot product: tie again at dot 2
    (1.0, -1.0, 0.0, 2.0, True, 3),  # fires iff dot <= 2, i.e. K - acc >= 3 after the flip
    (1.0, 2.0, -1.0, 0.0, False, 5),  # 2 * dot - 1 >= 0 iff dot >= 1/2: dot 2, acc 5
    (1.0, 0.0, 0.0, 5.0, False, 0),  # gamma 0: y = beta = 0 fires always
    (1.0, 0.0, -1e-300, 5.0, False, 9),  # gamma 0, beta < 0: never, T = K + 1
    (1.0, 1.0, 100.0, 0.0, False, 0),  # always fires: T = 0
    (1.0, 1.0, -100.0, 0.0, False, 9),  # never fires: T = K + 1
    (0.0, 1.0, 0.0, 0.0, False, 0),  # alpha 0 (all-zero latent row): y = 0 fires always
])
def test_pinned_thresholds(alpha, gamma, beta, mean, flipped, threshold):
    w = np.ones((1, 8), dtype=np.int8)
    bn = BatchNormParams.of([gamma], [beta], [mean], [1.0], 0.0)
    fold = assert_hardware_equals_float(w, [alpha], bn)
    assert fold.flipped[0] == flipped
    assert fold.thresholds[0] == threshold


@pytest.mark.parametrize("k, alpha, gamma, beta, mean, var, eps", [
    # cases where ceil of the closed-form boundary is one off the float decision
    (8, 0.05, 1.0, -2.1213203435596424, -2.8, 2.0, 0.0),
    (11, 0.7, 1 / 3, 1.4849242404917495, 0.0, 2.0, 0.0),
    (1, 0.05, 0.1, 0.3833333333333333, 1.2, 0.09, 0.0),
])
def test_thresholds_follow_the_float_formula_where_a_ceil_would_be_wrong(k, alpha, gamma, beta, mean, var, eps):
    std = math.sqrt(var + eps)
    naive = math.ceil(((mean - beta * std / gamma) / alpha + k) / 2)
    exact = next((a for a in range(k + 1) if float_fires(a, k, alpha, gamma, beta, mean, var, eps)), k + 1)
    assert naive != exact  # the trap is real
    bn = BatchNormParams.of([gamma], [beta], [mean], [var], eps)
    fold = assert_hardware_equals_float(np.ones((1, k), np.int8), [alpha], bn)
    assert fold.thresholds[0] == exact


@settings(max_examples=100, deadline=None)
@given(hidden_layers())
def test_output_scale_and_bias_reproduce_the_float_scores(layer):
    w, alpha, bn = layer
    fold = compile_output(w, alpha, bn)
    assert np.array_equal(fold.weights, w)  # no flip: a negative scale carries the sign
    m, k = w.shape
    a = np.ones(m) if alpha is None else alpha
    dots = np.arange(-k, k + 1, 2, dtype=float)[:, None]
    expected = bn.gamma * (a * dots - bn.mean) / np.sqrt(bn.var + bn.eps) + bn.beta
    got = fold.scale * dots + fold.bias
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * (1 + np.abs(expected).max()))


def naive_engine(arrays, raw):
    """The spec's arithmetic one sample and one row at a time, on 0/1 bits."""
    n_layers = len([key for key in arrays if key.startswith("w")])
    scores = []
    for sample in raw.reshape(len(raw), -1):
        bits = [int(v >= arrays["input_threshold"]) for v in sample]
        for l in range(n_layers):
            w_bits = (arrays[f"w{l}"] > 0).astype(int)
            accs = [sum(int(b == wb) for b, wb in zip(bits, row)) for row in w_bits]
            if l < n_layers - 1:
                bits = [int(acc >= t) for acc, t in zip(accs, arrays[f"t{l}"])]
            else:
                k = len(bits)
                scores.append([s * (2 * acc - k) + b for acc, s, b in zip(accs, arrays["scale"], arrays["bias"])])
    return np.array(scores)


def random_network(sizes, seed):
    rng = np.random.default_rng(seed)
    hidden = []
    for k, m in zip(sizes[:-2], sizes[1:-1]):
        w = np.where(rng.random((m, k)) < 0.5, -1, 1)
        bn = BatchNormParams.of(rng.normal(size=m), rng.normal(size=m), rng.normal(size=m) * 3,
                                rng.random(m) + 0.1, 1e-5)
        hidden.append(compile_hidden(w, rng.random(m), bn))
    w = np.where(rng.random((sizes[-1], sizes[-2])) < 0.5, -1, 1)
    output = compile_output(w, None, BatchNormParams.of(rng.normal(size=sizes[-1]), rng.normal(size=sizes[-1]),
                                                        rng.normal(size=sizes[-1]), np.ones(sizes[-1]), 1e-5))
    return fold_layers(hidden, output, input_threshold=128.0)


def test_run_folded_matches_the_spec_arithmetic_sample_by_sample():
    arrays = random_network((30, 12, 9, 4), seed=1)
    raw = np.random.default_rng(2).integers(0, 256, size=(25, 30), dtype=np.uint8)
    raw[0] = 128  # exactly on the input threshold: bit 1
    np.testing.assert_allclose(run_folded(arrays, raw), naive_engine(arrays, raw), rtol=0, atol=1e-12)


def test_folded_arrays_have_the_contract_keys_and_types():
    arrays = random_network((30, 12, 9, 4), seed=3)
    assert set(arrays) == {"w0", "w1", "w2", "t0", "t1", "scale", "bias", "input_threshold"}
    assert all(arrays[f"w{l}"].dtype == np.int8 for l in range(3))
    assert all(arrays[f"t{l}"].dtype == np.int64 for l in range(2))
    assert arrays["scale"].dtype == arrays["bias"].dtype == np.float64
    assert arrays["input_threshold"].shape == () and float(arrays["input_threshold"]) == 128.0
    assert [arrays[f"w{l}"].shape for l in range(3)] == [(12, 30), (9, 12), (4, 9)]
    assert len(check_folded(arrays)[0]) == 3


def one_line_error(fn, *args, match):
    with pytest.raises(EiexError, match=match) as e:
        fn(*args)
    assert "\n" not in str(e.value)


def test_bad_layers_are_refused_with_one_line():
    bn = BatchNormParams.of([1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0], 1e-5)
    good = np.ones((2, 3))
    one_line_error(compile_hidden, np.array([[1, 0, -1], [1, 1, 1]]), None, bn, match="must all be \\+1 or -1")
    one_line_error(compile_hidden, np.array([[1, np.nan, -1], [1, 1, 1]]), None, bn, match="must all be \\+1 or -1")
    one_line_error(compile_hidden, good, [np.nan, 1.0], bn, match="alpha contains NaN")
    one_line_error(compile_hidden, np.ones((3, 3)), None, bn, match="2 channels, the layer has 3 rows")
    nan_bn = BatchNormParams.of([1.0, np.nan], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0], 1e-5)
    one_line_error(compile_output, good, None, nan_bn, match="gamma contains NaN")
    zero_var = BatchNormParams.of([1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], 0.0)
    one_line_error(compile_hidden, good, None, zero_var, match="var \\+ eps must be positive")
    huge = BatchNormParams.of([0.0, 1.0], [0.0, 0.0], [-1e308, 0.0], [1.0, 1.0], 1e-5)
    one_line_error(compile_hidden, good, [1e308, 1.0], huge, match="so large that y is NaN")


def test_malformed_folded_arrays_are_refused():
    arrays = random_network((6, 5, 3), seed=4)
    broken = {k: v for k, v in arrays.items() if k != "t0"}
    one_line_error(check_folded, broken, match="lacks t0")
    broken = dict(arrays, w1=arrays["w1"][:, :4])
    one_line_error(check_folded, broken, match="w1 takes 4 inputs but w0 gives 5")
    broken = dict(arrays, w0=np.zeros_like(arrays["w0"]))
    one_line_error(check_folded, broken, match="w0 must hold only \\+1 and -1, found 0 at row 0, column 0")
    one_line_error(run_folded, arrays, np.zeros((2, 7)), match="inputs have 7 values each, the network takes 6")
