"""1-D k-means for weight sharing, checked against independent references: brute-force
enumeration of contiguous splits, a plain quadratic dynamic programme, and a plain
point-by-point Lloyd loop."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eiex.errors import EiexError
from eiex.sw.compress import kmeans as km
from eiex.sw.compress.kmeans import KMeansResult, kmeans1d, linear_init, lloyd, optimal

# ----------------------------------------------------------------------------- references


def sse(x, w=None):
    """Plain weighted sum of squared deviations from the (weighted) mean."""
    x = np.asarray(x, dtype=float)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=float)
    mean = np.sum(w * x) / np.sum(w)
    return float(np.sum(w * (x - mean) ** 2))


def brute_force_inertia(x, k):
    """Minimum inertia over every split of the sorted points into min(k, n) contiguous groups."""
    xs = np.sort(np.asarray(x, dtype=float))
    n = xs.size
    groups = min(k, n)
    return min(
        sum(sse(part) for part in np.split(xs, cuts))
        for cuts in itertools.combinations(range(1, n), groups - 1)
    )


def dp_reference_inertia(x, k):
    """Textbook O(k n^2) dynamic programme on the sorted points, costs by np.var."""
    xs = np.sort(np.asarray(x, dtype=float))
    n = xs.size
    groups = min(k, n)
    cost = np.full((n + 1, n + 1), np.inf)
    for j in range(n):
        for i in range(j + 1, n + 1):
            cost[j, i] = np.var(xs[j:i]) * (i - j)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    for _ in range(groups):
        best = np.array([np.min(best[:i] + cost[:i, i]) if i else np.inf for i in range(n + 1)])
    return float(best[n])


def reference_lloyd(x, centroids, w=None, max_iter=300):
    """Lloyd's algorithm one point and one cluster at a time; ties go to the upper centroid."""
    x = np.asarray(x, dtype=float)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=float)
    c = np.sort(np.asarray(centroids, dtype=float))

    def assign(c):
        labels = []
        for v in x:
            d = np.abs(c - v)
            labels.append(int(np.flatnonzero(d == d.min())[-1]))
        return np.array(labels)

    labels = assign(c)
    iterations = 0
    while iterations < max_iter:
        new = c.copy()
        for j in range(c.size):
            member = labels == j
            if w[member].sum() > 0:
                new[j] = np.sum(w[member] * x[member]) / np.sum(w[member])
        c = new
        iterations += 1
        new_labels = assign(c)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
    return c, labels, iterations


def check_result(res, x, k, w=None):
    """Shape and self-consistency: the reported inertia is what labels and centroids give."""
    x = np.asarray(x, dtype=float)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=float)
    assert isinstance(res, KMeansResult)
    c = res.centroids
    assert c.dtype == np.float64 and c.ndim == 1
    assert np.all(np.diff(c) >= 0)
    assert 1 <= c.size <= k
    assert res.labels.shape == x.shape
    assert np.issubdtype(res.labels.dtype, np.integer)
    assert res.labels.min() >= 0 and res.labels.max() < c.size
    recomputed = float(np.sum(w * (x - c[res.labels]) ** 2))
    assert np.isclose(res.inertia, recomputed, rtol=1e-9, atol=1e-9 * (1 + np.sum(w * x * x)))


def assert_inertia_equal(got, expected, x):
    scale = 1 + float(np.sum(np.asarray(x, dtype=float) ** 2))
    assert np.isclose(got, expected, rtol=1e-9, atol=1e-9 * scale), (got, expected)


# Small values on an integer grid make duplicates and exact ties common.
values = st.one_of(
    st.integers(-4, 4).map(float),
    st.floats(-1000, 1000, allow_nan=False, allow_infinity=False, allow_subnormal=False),
)


# ----------------------------------------------------------------------------- optimal


@settings(max_examples=200, deadline=None)
@given(st.lists(values, min_size=1, max_size=9), st.integers(1, 6))
def test_optimal_matches_brute_force(x, k):
    x = np.array(x)
    res = optimal(x, k)
    check_result(res, x, k)
    assert res.centroids.size == min(k, np.unique(x).size)
    assert np.all(np.diff(res.centroids) > 0)
    assert_inertia_equal(res.inertia, brute_force_inertia(x, k), x)


@pytest.mark.parametrize(
    "x, k, centroids, inertia",
    [
        ([0, 1, 2, 10, 11, 12], 2, [1, 11], 4.0),
        # Far from zero: the centred prefix sums must not cancel catastrophically.
        (1e8 + np.array([0, 1, 2, 10, 11, 12]), 2, 1e8 + np.array([1, 11]), 4.0),
        ([5, 0, 5, 0, 5], 2, [0, 5], 0.0),
        ([3, 3, 3], 2, [3], 0.0),
        ([2, 1], 7, [1, 2], 0.0),
        ([0, 1, 2, 3], 1, [1.5], 5.0),
        ([-1, -1, 0, 7, 8, 9, 30], 3, [-2 / 3, 8, 30], 2 / 3 + 2),
    ],
)
def test_optimal_fixed_cases(x, k, centroids, inertia):
    res = optimal(np.asarray(x, dtype=float), k)
    check_result(res, x, k)
    np.testing.assert_allclose(res.centroids, centroids, rtol=1e-12)
    assert res.inertia == pytest.approx(inertia, abs=1e-9)
    assert res.iterations == 0


@pytest.mark.parametrize("k", [2, 3, 5, 9, 16])
def test_optimal_matches_quadratic_dp(k):
    # Enough distinct values for many recursion levels in the divide and conquer.
    rng = np.random.default_rng(k)
    x = np.round(rng.laplace(0, 1, 140), 1)  # rounding leaves some duplicates
    res = optimal(x, k)
    check_result(res, x, k)
    assert_inertia_equal(res.inertia, dp_reference_inertia(x, k), x)


@pytest.mark.parametrize("k", [2, 4, 7])
def test_optimal_far_from_zero(k):
    # Spread 1e-3 around 1e6: uncentred prefix sums of x**2 would lose every digit of the costs.
    rng = np.random.default_rng(k)
    offsets = rng.normal(0, 1e-3, 60)
    res = optimal(1e6 + offsets, k)
    expected = dp_reference_inertia(offsets, k)
    assert res.inertia == pytest.approx(expected, rel=1e-6)
    shifted = optimal(offsets, k)
    np.testing.assert_array_equal(res.labels, shifted.labels)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(values, st.integers(0, 4)), min_size=1, max_size=8).filter(
        lambda pairs: any(w for _, w in pairs)
    ),
    st.integers(1, 5),
)
def test_optimal_weights_equal_repetition(pairs, k):
    x = np.array([v for v, _ in pairs])
    w = np.array([c for _, c in pairs])
    repeated = np.repeat(x, w)
    res_w = optimal(x, k, sample_weight=w)
    res_r = optimal(repeated, k)
    check_result(res_w, x, k, w)
    np.testing.assert_allclose(res_w.centroids, res_r.centroids, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.repeat(res_w.labels, w), res_r.labels)
    assert_inertia_equal(res_w.inertia, res_r.inertia, repeated)
    assert_inertia_equal(res_w.inertia, dp_reference_inertia(repeated, k), repeated)


def test_optimal_zero_weight_points_do_not_move_centroids():
    x = np.array([0.0, 1.0, 50.0, 10.0, 11.0])
    w = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
    res = optimal(x, 2, sample_weight=w)
    np.testing.assert_allclose(res.centroids, [0.5, 10.5])
    assert res.inertia == pytest.approx(1.0)
    assert res.labels.tolist() == [0, 0, 1, 1, 1]  # the idle point goes to its nearest centroid


def test_optimal_beats_lloyd_on_skewed_data():
    rng = np.random.default_rng(7)
    x = rng.laplace(0, 0.05, 5000).astype(np.float32)
    x = x[np.abs(x) > 0.02]  # pruned: a gap around zero, as surviving weights have
    for k in (3, 15, 31):
        best = optimal(x, k)
        check_result(best, x, k)
        assert best.inertia <= lloyd(x, k).inertia * (1 + 1e-12)


# ----------------------------------------------------------------------------- lloyd


def test_linear_init():
    x = np.array([3.0, -1.0, 0.5, 7.0])
    np.testing.assert_allclose(linear_init(x, 5), [-1, 1, 3, 5, 7])
    assert linear_init(x, 2).tolist() == [-1.0, 7.0]
    assert linear_init(x, 1).tolist() == [np.mean(x)]
    assert linear_init(np.float32([1, 2]), 3).dtype == np.float64


@settings(max_examples=150, deadline=None)
@given(st.lists(values, min_size=1, max_size=40), st.integers(1, 8))
def test_lloyd_returns_a_fixed_point(x, k):
    x = np.array(x)
    res = lloyd(x, k, max_iter=10_000)
    assert res.iterations < 10_000
    check_result(res, x, k)
    c = res.centroids
    scale = 1 + np.max(np.abs(x))
    # Every point sits with its nearest centroid.
    dist = np.abs(x[:, None] - c[None, :])
    assert np.all(dist[np.arange(x.size), res.labels] <= dist.min(axis=1) + 1e-12 * scale)
    # Every non-empty cluster's centroid is its mean.
    for j in np.unique(res.labels):
        assert c[j] == pytest.approx(np.mean(x[res.labels == j]), abs=1e-12 * scale)
    best = optimal(x, k).inertia
    assert res.inertia >= best - 1e-9 * (1 + np.sum(x * x))


@pytest.mark.parametrize(
    "centres, k",
    [([-5.0, -1.0, 3.0, 8.0], 4), ([0.0, 10.0], 2), ([-0.3, -0.1, 0.1, 0.3], 4)],
)
def test_lloyd_finds_the_optimum_on_separated_clusters(centres, k):
    rng = np.random.default_rng(1)
    spread = 0.01 * (max(centres) - min(centres))
    sizes = rng.integers(20, 200, len(centres))
    x = np.concatenate([rng.normal(c, spread, s) for c, s in zip(centres, sizes)])
    rng.shuffle(x)
    res, best = lloyd(x, k), optimal(x, k)
    assert res.inertia == pytest.approx(best.inertia, rel=1e-12)
    np.testing.assert_allclose(res.centroids, best.centroids, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.centroids, centres, atol=5 * spread)
    np.testing.assert_array_equal(res.labels, best.labels)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [2, 3, 7, 15])
def test_lloyd_matches_plain_lloyd_loop(seed, k):
    rng = np.random.default_rng(100 * seed + k)
    n = 250
    kind = seed % 4
    if kind == 0:
        x = rng.laplace(0, 0.1, n)
    elif kind == 1:
        x = rng.normal(3, 2, n)
    elif kind == 2:
        x = rng.uniform(-1, 1, n) ** 3
    else:
        x = np.concatenate([rng.normal(-2, 0.5, n // 2), rng.normal(1, 1, n - n // 2)])
    w = rng.uniform(0.1, 3, n) if seed >= 2 else None
    res = lloyd(x, k, sample_weight=w)
    check_result(res, x, k, w)
    c, labels, iterations = reference_lloyd(x, linear_init(x, k), w)
    np.testing.assert_allclose(res.centroids, c, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res.labels, labels)
    assert res.iterations == iterations


def test_lloyd_with_given_init_and_empty_cluster():
    x = np.array([0.0, 1.0, 2.0, 10.0, 11.0, 12.0])
    res = lloyd(x, 3)  # linear init 0, 6, 12: the middle cluster never gets a point
    np.testing.assert_allclose(res.centroids, [1, 6, 11])
    assert res.labels.tolist() == [0, 0, 0, 2, 2, 2]
    assert res.inertia == pytest.approx(4.0)
    res = lloyd(x, 2, init=[11.0, 0.0])
    np.testing.assert_allclose(res.centroids, [1, 11])
    assert res.iterations == 1


def test_lloyd_max_iter_and_tol_stop_early():
    x = np.random.default_rng(3).laplace(0, 1, 2000)
    full = lloyd(x, 15)
    assert full.iterations > 2
    assert lloyd(x, 15, max_iter=2).iterations == 2
    assert lloyd(x, 15, tol=1e6).iterations == 1


@pytest.mark.parametrize("method", ["optimal", "lloyd"])
def test_few_distinct_values_each_get_a_centroid(method):
    res = kmeans1d(np.array([2.0, 1.0, 2.0, 1.0, 4.0]), 15, method=method)
    assert res.centroids.tolist() == [1.0, 2.0, 4.0]
    assert res.labels.tolist() == [1, 0, 1, 0, 2]
    assert res.inertia == 0.0


def test_kmeans1d_dispatches():
    x = np.random.default_rng(5).normal(0, 1, 300)
    np.testing.assert_array_equal(kmeans1d(x, 4).centroids, optimal(x, 4).centroids)
    got = kmeans1d(x, 4, method="lloyd", max_iter=3)
    np.testing.assert_array_equal(got.centroids, lloyd(x, 4, max_iter=3).centroids)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("method", ["optimal", "lloyd"])
@pytest.mark.parametrize(
    "x, k, kw, message",
    [
        ([1.0, np.nan, 2.0], 2, {}, "NaN or infinite"),
        ([1.0, np.inf], 2, {}, "NaN or infinite"),
        ([-np.inf, 1.0], 2, {}, "NaN or infinite"),
        ([], 2, {}, "empty"),
        ([[1.0, 2.0]], 2, {}, "1-D"),
        (["a", "b"], 2, {}, "real numeric"),
        ([1.0, 2.0], 0, {}, "positive integer"),
        ([1.0, 2.0], -3, {}, "positive integer"),
        ([1.0, 2.0], 2.5, {}, "positive integer"),
        ([1.0, 2.0], True, {}, "positive integer"),
        ([1.0, 2.0], 2, {"sample_weight": [1.0, -1.0]}, "negative"),
        ([1.0, 2.0], 2, {"sample_weight": [1.0]}, "shape"),
        ([1.0, 2.0], 2, {"sample_weight": [0.0, 0.0]}, "sums to zero"),
        ([1.0, 2.0], 2, {"sample_weight": [np.nan, 1.0]}, "NaN or infinite"),
    ],
)
def test_bad_input_raises(method, x, k, kw, message):
    with pytest.raises(EiexError, match=message):
        kmeans1d(x, k, method=method, **kw)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: lloyd([1.0, 2.0, 3.0], 2, init=[1.0]), "init must be 2"),
        (lambda: lloyd([1.0, 2.0, 3.0], 2, init=[1.0, np.nan]), "init contains NaN"),
        (lambda: lloyd([1.0, 2.0, 3.0], 2, max_iter=0), "max_iter"),
        (lambda: lloyd([1.0, 2.0, 3.0], 2, tol=-1.0), "tol"),
        (lambda: kmeans1d([1.0, 2.0], 2, method="kmeans++"), "unknown k-means method"),
        (lambda: kmeans1d([1.0, 2.0], 2, max_iter=5), "takes no options"),
        (lambda: kmeans1d([1.0, 2.0], 2, method="lloyd", n_init=5), "unknown option"),
        (lambda: linear_init([np.nan], 1), "NaN or infinite"),
        (lambda: linear_init([1.0], 0), "positive integer"),
    ],
)
def test_bad_options_raise(call, message):
    with pytest.raises(EiexError, match=message):
        call()


# ---------------------------------------------------------------- gridded optimum for large inputs


def test_gridded_optimal_is_close_to_the_exact_optimum():
    rng = np.random.default_rng(7)
    x = rng.laplace(scale=0.02, size=20_000)
    exact = optimal(x, 7)
    near = km.gridded_optimal(x, 7, bins=512)
    assert near.inertia <= exact.inertia * (1 + 1e-3)
    assert near.inertia >= exact.inertia * (1 - 1e-12)
    # a Lloyd fixed point of the raw data: every point sits with its nearest centroid
    nearest = np.argmin(np.abs(x[:, None] - near.centroids[None, :]), axis=1)
    assert np.array_equal(near.centroids[nearest], near.centroids[near.labels])


def test_kmeans1d_switches_to_the_grid_for_large_inputs(monkeypatch):
    rng = np.random.default_rng(8)
    x = rng.normal(size=3000)
    monkeypatch.setattr(km, "EXACT_WORK_LIMIT", 1000)
    monkeypatch.setattr(km, "GRID_BINS", 64)
    got = km.kmeans1d(x, 5, method="optimal")
    want = km.gridded_optimal(x, 5, bins=64)
    assert np.array_equal(got.centroids, want.centroids)
    monkeypatch.setattr(km, "EXACT_WORK_LIMIT", 10**9)
    assert np.array_equal(km.kmeans1d(x, 5).centroids, optimal(x, 5).centroids)


def test_gridded_optimal_with_data_in_few_cells():
    x = np.concatenate([np.zeros(100), np.full(100, 1e-9), [1.0]])
    result = km.gridded_optimal(x, 3, bins=16)
    assert result.inertia == optimal(x, 3).inertia


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 400), k=st.integers(2, 8), bins=st.integers(1, 64),
       weighted=st.booleans())
def test_gridded_optimal_never_beats_the_optimum_and_labels_are_nearest(seed, n, k, bins, weighted):
    """The grid solves the exact problem restricted to grid boundaries: never below the optimum,
    its inertia the true one of its labels, and every point with its nearest centroid."""
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3, size=n) * rng.uniform(1e-3, 10)
    w = rng.integers(0, 4, size=n).astype(float) if weighted else None
    if w is not None and not w.any():
        w[0] = 1.0
    near = km.gridded_optimal(x, k, sample_weight=w, bins=bins)
    exact = optimal(x, k, sample_weight=w)
    weights = np.ones(n) if w is None else w
    recomputed = float(np.sum(weights * (x - near.centroids[near.labels]) ** 2))
    assert near.inertia == pytest.approx(recomputed, rel=1e-9, abs=1e-12)
    assert near.inertia >= exact.inertia * (1 - 1e-9) - 1e-12
    distance = np.abs(x[:, None] - near.centroids[None, :])
    assert np.allclose(distance[np.arange(n), near.labels], distance.min(axis=1), rtol=0, atol=1e-12)
