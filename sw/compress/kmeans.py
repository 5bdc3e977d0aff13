"""One-dimensional k-means for weight sharing (Deep Compression, Han, Mao and Dally, ICLR 2016).

The surviving weights of a pruned layer are clustered into ``k`` shared values. Three solvers:

- :func:`lloyd`, Lloyd's algorithm from the paper's linear initialisation;
- :func:`optimal`, the exact global optimum by dynamic programming;
- :func:`gridded_optimal`, the same dynamic programme over the cells of a fine grid, for millions
  of points (what :func:`kmeans1d` uses for large layers).

The first two run on the sorted distinct values with prefix sums, the third on per-cell sums, so
no Python loop ever runs over the weights; loops run over iterations, clusters or recursion
levels only. Reserving code 0 for
exact zero is the caller's business: here every input point is clustered.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from eiex.errors import EiexError

__all__ = ["KMeansResult", "linear_init", "lloyd", "optimal", "gridded_optimal", "kmeans1d"]

# Backtracking in `optimal` keeps one int32 row of split points per cluster count; refuse
# (instead of exhausting memory) when that table would exceed this many bytes.
OPTIMAL_TABLE_LIMIT_BYTES = 2 << 30

# Above this many points times clusters, kmeans1d(method="optimal") solves on a grid
# (`gridded_optimal`): the exact solver takes about 40 s on the 3.4M distinct surviving weights of
# an AlexNet-fc6-sized layer at k=15, the grid of GRID_BINS cells about 0.06 s, 1e-5 above the
# optimum's inertia there (scikit-learn's Lloyd from the linear initialisation: 2.5e-3 above).
EXACT_WORK_LIMIT = 1 << 22
GRID_BINS = 1 << 14


@dataclass(frozen=True, eq=False)
class KMeansResult:
    """A 1-D clustering.

    Attributes
    ----------
    centroids : np.ndarray
        float64, sorted ascending, length ``k_eff`` (``min(k, number of distinct values)``).
    labels : np.ndarray
        Index into `centroids` for every input point, in input order.
    inertia : float
        Sum of squared distances to the assigned centroid (weighted if weights were given).
    iterations : int
        Lloyd iterations performed; 0 for :func:`optimal` and when no iteration was needed.

    Notes
    -----
    Compared by identity (``eq=False``): element-wise array equality has no single truth value.
    """

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    iterations: int


# --------------------------------------------------------------------------- validation


def _points_and_range(x) -> tuple[np.ndarray, float, float]:
    """`x` as float64 points, checked, with its minimum and maximum."""
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise EiexError(f"x must be a real numeric array, got dtype {a.dtype}")
    if a.ndim != 1:
        raise EiexError(f"x must be 1-D, got shape {a.shape}")
    if a.size == 0:
        raise EiexError("x is empty; k-means needs at least one point")
    a = a.astype(np.float64, copy=False)
    # min/max propagate NaN and expose +-inf, at a fraction of the cost of isfinite().all().
    lo, hi = float(a.min()), float(a.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise EiexError("x contains NaN or infinite values")
    return a, lo, hi


def _as_points(x) -> np.ndarray:
    return _points_and_range(x)[0]


def _as_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise EiexError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _as_weights(sample_weight, n: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "fiu":
        raise EiexError(f"sample_weight must be a real numeric array, got dtype {w.dtype}")
    if w.shape != (n,):
        raise EiexError(f"sample_weight must have shape ({n},) like x, got {w.shape}")
    w = w.astype(np.float64, copy=False)
    if not (np.isfinite(w.min()) and np.isfinite(w.max())):
        raise EiexError("sample_weight contains NaN or infinite values")
    if w.min() < 0:
        raise EiexError("sample_weight contains negative values")
    if not w.sum() > 0:
        raise EiexError("sample_weight sums to zero; at least one point needs a positive weight")
    return w


def _prepare(x, k, sample_weight):
    """Validate, then collapse to sorted distinct values `u` with total weights `cw` > 0."""
    x = _as_points(x)
    k = _as_k(k)
    w = _as_weights(sample_weight, x.size)
    if w is None:
        xs, ws = np.sort(x), None
    else:
        order = np.argsort(x, kind="stable")
        xs, ws = x[order], w[order]
        positive = ws > 0
        if not positive.all():
            xs, ws = xs[positive], ws[positive]
    first = np.empty(xs.size, dtype=bool)
    first[0] = True
    np.not_equal(xs[1:], xs[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    u = xs[starts]
    if ws is None:
        cw = np.diff(np.append(starts, xs.size)).astype(np.float64)
    else:
        cw = np.add.reduceat(ws, starts)
    return x, k, w, u, cw


# --------------------------------------------------------------------------- shared pieces


def _midpoints(c: np.ndarray) -> np.ndarray:
    return c[:-1] * 0.5 + c[1:] * 0.5  # no overflow near the float64 limits


def _prefix(values: np.ndarray) -> np.ndarray:
    out = np.zeros(values.size + 1)
    np.cumsum(values, out=out[1:])
    return out


def _inertia(u, cw, centroids, lab_u) -> float:
    d = u - centroids[lab_u]
    return float(np.dot(cw, d * d))


def _from_segments(x, w, u, cw, bounds, iterations) -> KMeansResult:
    """Result for clusters ``u[bounds[t]:bounds[t + 1]]`` (contiguous, non-empty)."""
    starts = bounds[:-1]
    sizes = np.diff(bounds)
    lab_u = np.repeat(np.arange(sizes.size), sizes)
    first = u[starts]
    # Mean taken relative to the cluster's first value: exact for single-value clusters.
    offset = np.add.reduceat(cw * (u - first[lab_u]), starts) / np.add.reduceat(cw, starts)
    centroids = np.clip(first + offset, first, u[bounds[1:] - 1])
    labels = np.searchsorted(u[bounds[1:-1]], x, side="right")
    if w is not None:
        # Values whose total weight is zero were left out of the fit: nearest centroid.
        idle = np.flatnonzero(w == 0)
        if idle.size:
            labels[idle] = np.searchsorted(_midpoints(centroids), x[idle], side="right")
    return KMeansResult(centroids, labels, _inertia(u, cw, centroids, lab_u), iterations)


def _each_value_alone(x, w, u, cw) -> KMeansResult:
    return _from_segments(x, w, u, cw, np.arange(u.size + 1), 0)


# --------------------------------------------------------------------------- public API


def linear_init(x, k) -> np.ndarray:
    """Deep Compression's linear initialisation of the centroids.

    Parameters
    ----------
    x : array_like
        1-D finite data.
    k : int
        Number of centroids.

    Returns
    -------
    np.ndarray
        ``k`` float64 values evenly spaced over ``[min(x), max(x)]``, endpoints included.
        For ``k == 1`` the mean of `x`, the best single centroid.
    """
    x = _as_points(x)
    k = _as_k(k)
    if k == 1:
        return np.array([x.mean()])
    return np.linspace(x.min(), x.max(), k)


def lloyd(x, k, init=None, max_iter=300, tol=0.0, sample_weight=None) -> KMeansResult:
    """Lloyd's algorithm in 1-D, vectorised with sorting and prefix sums.

    Each iteration cuts the sorted data at the midpoints between consecutive centroids
    (``np.searchsorted``) and reads every cluster's weight and mean off prefix sums, which
    costs O(k log n) whatever the number of points.

    Parameters
    ----------
    x : array_like
        1-D finite data.
    k : int
        Number of clusters.
    init : array_like, optional
        ``k`` starting centroids (sorted here); default :func:`linear_init`.
    max_iter : int
        Upper bound on the number of iterations.
    tol : float
        Also stop once no centroid moves by more than `tol`. The default 0 runs to a fixed
        point: stop when no cluster boundary moves.
    sample_weight : array_like, optional
        Non-negative weight of each point.

    Returns
    -------
    KMeansResult
        ``k`` centroids. A cluster that loses all its points keeps its previous centroid and
        stays in the result without members. If `x` has at most `k` distinct values (of
        positive weight), each of them is its own centroid and `init` is not used.

    Notes
    -----
    A point exactly on a boundary joins the upper cluster.
    """
    x, k, w, u, cw = _prepare(x, k, sample_weight)
    if init is None:
        c = linear_init(x, k)
    else:
        c = np.asarray(init)
        if c.dtype.kind not in "fiu" or c.shape != (k,):
            raise EiexError(
                f"init must be {k} real numbers (one per cluster), "
                f"got shape {c.shape} dtype {c.dtype}"
            )
        c = np.sort(c.astype(np.float64))
        if not (np.isfinite(c[0]) and np.isfinite(c[-1])):
            raise EiexError("init contains NaN or infinite values")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise EiexError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not (isinstance(tol, numbers.Real) and np.isfinite(tol) and tol >= 0):
        raise EiexError(f"tol must be a finite non-negative number, got {tol!r}")
    m = u.size
    if k >= m:
        return _each_value_alone(x, w, u, cw)

    mu = np.dot(cw, u) / cw.sum()  # centring keeps the prefix sums well conditioned
    W = _prefix(cw)
    S = _prefix(cw * (u - mu))
    edges = np.empty(k + 1, dtype=np.intp)
    edges[0], edges[-1] = 0, m
    edges[1:-1] = np.searchsorted(u, _midpoints(c), side="left")
    iterations = 0
    for iterations in range(1, int(max_iter) + 1):
        weight = W[edges[1:]] - W[edges[:-1]]
        filled = weight > 0
        new = c.copy()
        new[filled] = mu + (S[edges[1:]] - S[edges[:-1]])[filled] / weight[filled]
        new.sort()  # means of contiguous clusters are ordered; this only guards rounding
        shift = np.max(np.abs(new - c))
        c = new
        cuts = np.searchsorted(u, _midpoints(c), side="left")
        settled = np.array_equal(cuts, edges[1:-1]) or shift <= tol
        edges[1:-1] = cuts
        if settled:
            break

    lab_u = np.repeat(np.arange(k), np.diff(edges))
    labels = np.searchsorted(_midpoints(c), x, side="right")
    return KMeansResult(c, labels, _inertia(u, cw, c, lab_u), iterations)


def _cost(W, S, Q, j, i):
    """Within-cluster sum of squares of distinct points ``j .. i-1`` (prefix-sum indices)."""
    dw = W[i] - W[j]
    ds = S[i] - S[j]
    cost = (Q[i] - Q[j]) - ds * ds / dw
    return np.maximum(cost, 0.0)  # rounding can leave tiny negatives


def _dc_row(prev, W, S, Q, first_i, last_i, first_j, cur, arg):
    """Fill ``cur[i] = min_j prev[j] + cost(j, i)`` and its argmin for ``first_i <= i <= last_i``.

    Divide and conquer on the monotone optimal split, vectorised one recursion level at a
    time: each level holds a batch of disjoint ``i`` intervals with their admissible ``j``
    ranges, evaluates every (middle i, j) candidate pair in one flat array, and splits.
    """
    ilo = np.array([first_i])
    ihi = np.array([last_i])
    jlo = np.array([first_j])
    jhi = np.array([last_i - 1])
    while ilo.size:
        mid = (ilo + ihi) >> 1
        count = np.minimum(jhi, mid - 1) - jlo + 1  # >= 1 since jlo < ilo <= mid
        ends = np.cumsum(count)
        starts = ends - count
        seg = np.repeat(np.arange(count.size), count)  # interval of each candidate pair
        jj = np.arange(ends[-1])
        jj += (jlo - starts)[seg]
        dw = W[mid][seg]
        dw -= W[jj]
        ds = S[mid][seg]
        ds -= S[jj]
        val = Q[mid][seg]
        val -= Q[jj]
        ds *= ds
        ds /= dw
        val -= ds
        np.maximum(val, 0.0, out=val)  # rounding can leave tiny negatives
        val += prev[jj]
        best = np.minimum.reduceat(val, starts)
        hits = np.flatnonzero(val == best[seg])
        jbest = jj[hits[np.searchsorted(hits, starts)]]  # first (smallest) minimiser
        cur[mid] = best
        arg[mid] = jbest
        left = mid > ilo
        right = mid < ihi
        ilo, ihi, jlo, jhi = (
            np.concatenate((ilo[left], mid[right] + 1)),
            np.concatenate((mid[left] - 1, ihi[right])),
            np.concatenate((jlo[left], jbest[right])),
            np.concatenate((jbest[left], jhi[right])),
        )


def _optimal_bounds(u, cw, k) -> np.ndarray:
    """Boundaries (length k + 1) of the optimal clustering of ``len(u) > k >= 2`` values."""
    mu = np.dot(cw, u) / cw.sum()
    d = u - mu  # centred: the variance formula below cancels far less
    return _optimal_runs(_prefix(cw), _prefix(cw * d), _prefix(cw * d * d), k)


def _optimal_runs(W, S, Q, k) -> np.ndarray:
    """Boundaries (length k + 1) of the cheapest split of ``m > k >= 2`` items into k runs.

    Item ``t`` carries total weight ``W[t+1] - W[t]``, weighted sum ``S[t+1] - S[t]`` and
    weighted sum of squares ``Q[t+1] - Q[t]`` (prefix sums, ``m + 1`` long) of the points it
    stands for; a run costs its points' sum of squared deviations from their mean.
    """
    m = W.size - 1
    # D_t[i]: best cost of the first i values in t clusters; only i <= m - k + t can lead to
    # a full solution, and i >= t leaves no cluster empty.
    prev = np.full(m + 1, np.inf)
    i = np.arange(1, m - k + 2)
    prev[i] = _cost(W, S, Q, 0, i)
    rows = k - 2
    dtype = np.int32 if m < 2**31 - 1 else np.int64
    need = rows * (m + 1) * np.dtype(dtype).itemsize
    if need > OPTIMAL_TABLE_LIMIT_BYTES:
        raise EiexError(
            f"optimal k-means with k={k} on {m} distinct values needs {need / 2**30:.1f} GiB of "
            "split points; snap x to a grid and pass the counts as sample_weight, or use lloyd"
        )
    arg = np.zeros((rows, m + 1), dtype=dtype)
    for t in range(2, k):
        cur = np.full(m + 1, np.inf)
        _dc_row(prev, W, S, Q, t, m - k + t, t - 1, cur, arg[t - 2])
        prev = cur
    j = np.arange(k - 1, m)
    split = int(j[np.argmin(prev[j] + _cost(W, S, Q, j, m))])
    bounds = np.empty(k + 1, dtype=np.intp)
    bounds[0], bounds[k], bounds[k - 1] = 0, m, split
    for t in range(k - 1, 1, -1):
        bounds[t - 1] = arg[t - 2, bounds[t]]
    return bounds


def optimal(x, k, sample_weight=None) -> KMeansResult:
    """Exact global optimum of 1-D k-means.

    Optimal clusters are contiguous runs of the sorted distinct values, so dynamic programming
    over prefix sums of ``w``, ``w*x`` and ``w*x**2`` finds them. Each of the ``k - 2`` middle
    rows uses divide and conquer on the monotone optimal split point, vectorised level by
    level: O(k m log m) arithmetic in O(k log m) numpy calls for ``m`` distinct values.

    Parameters
    ----------
    x : array_like
        1-D finite data.
    k : int
        Number of clusters.
    sample_weight : array_like, optional
        Non-negative weight of each point. For millions of mostly distinct values, snapping
        `x` to a fine grid and passing the counts here is much faster.

    Returns
    -------
    KMeansResult
        ``min(k, m)`` centroids; with ``k >= m`` each distinct value is its own centroid and
        the inertia is 0. Ties between equally good clusterings are broken deterministically.

    Raises
    ------
    EiexError
        On bad input, or when the backtracking table would exceed
        `OPTIMAL_TABLE_LIMIT_BYTES`.
    """
    x, k, w, u, cw = _prepare(x, k, sample_weight)
    m = u.size
    if k >= m:
        return _each_value_alone(x, w, u, cw)
    bounds = np.array([0, m]) if k == 1 else _optimal_bounds(u, cw, k)
    return _from_segments(x, w, u, cw, bounds, 0)


def gridded_optimal(x, k, sample_weight=None, bins: int = GRID_BINS) -> KMeansResult:
    """Near-optimal 1-D k-means for millions of points, without sorting them.

    Each point falls into one of ``bins`` equal cells over ``[min(x), max(x)]`` (one more cell
    holds the points that rounding puts at the top edge). Every cell keeps the total weight, sum
    and sum of squares of its own points, so the cost of any run of cells is exact for the raw
    points, and the dynamic programme of :func:`optimal` over the occupied cells finds the best
    clustering whose boundaries lie on the grid; the centroids are the exact means of its
    clusters. Then every point joins its nearest centroid: a cell that lies wholly between two
    midpoints takes its label from a table, and only the points of the (at most ``k - 1``) cells
    that hold a midpoint are compared one by one. The cost is a few vectorised passes over the
    points plus a dynamic programme over at most ``bins + 1`` cells.

    Parameters
    ----------
    x : array_like
        1-D finite data.
    k : int
        Number of clusters.
    sample_weight : array_like, optional
        Non-negative weight of each point; points of weight 0 join their nearest centroid.
    bins : int
        Number of grid cells, 1 .. 2**26. Only points within one cell of an optimal boundary
        can end up in another cluster than in the optimum, so finer cells come closer to it
        (`GRID_BINS` says what the default gives on an fc6-sized layer).

    Returns
    -------
    KMeansResult
        ``k`` centroids, sorted; ``iterations`` is 0. If the points of positive weight occupy
        fewer than ``k`` cells, the result of :func:`optimal`.
    """
    x, lo, hi = _points_and_range(x)
    k = _as_k(k)
    w = _as_weights(sample_weight, x.size)
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or not 1 <= bins <= 1 << 26:
        raise EiexError(f"bins must be an integer from 1 to 2**26, got {bins!r}")
    bins = int(bins)
    span = hi - lo
    scale = bins / span if span > 0 else np.inf
    if not np.isfinite(scale) or not np.isfinite(span):  # one value, or a span float64 cannot scale
        return optimal(x, k, sample_weight=w)

    # u: position in cells; q: the cell (floor); then u - q in [0, 1), kept in place of u.
    # Sums are taken relative to each cell's lower edge, which keeps the costs well conditioned.
    u = np.subtract(x, lo)
    u *= scale
    q = u.astype(np.intp)  # u >= 0, so truncation is the floor; u <= bins up to rounding
    np.subtract(u, q, out=u)
    cells = bins + 1
    if w is None:
        counts = np.bincount(q, minlength=cells).astype(np.float64)
        first = np.bincount(q, weights=u, minlength=cells)
        np.square(u, out=u)
        second = np.bincount(q, weights=u, minlength=cells)
    else:
        counts = np.bincount(q, weights=w, minlength=cells)
        wu = w * u
        first = np.bincount(q, weights=wu, minlength=cells)
        wu *= u
        second = np.bincount(q, weights=wu, minlength=cells)
        del wu
    del u
    occupied = np.flatnonzero(counts > 0)
    m = occupied.size
    if m < k:  # the data sit in fewer than k cells: the exact solver is cheap then
        return optimal(x, k, sample_weight=w)

    # Cluster the occupied cells, positions centred on the mean cell for conditioning.
    cw, f1, f2 = counts[occupied], first[occupied], second[occupied]
    centre = float(np.round(np.dot(cw, occupied) / cw.sum()))
    b = occupied - centre
    if k == 1:
        bounds = np.array([0, m])
    elif k == m:
        bounds = np.arange(m + 1)
    else:
        bounds = _optimal_runs(_prefix(cw), _prefix(b * cw + f1), _prefix(b * b * cw + 2 * b * f1 + f2), k)
    starts = bounds[:-1]
    weight = np.add.reduceat(cw, starts)
    # Mean position in cells relative to the cluster's first cell: exact for one-cell clusters.
    base = occupied[starts].astype(np.float64)
    offset = np.add.reduceat((occupied - np.repeat(base, np.diff(bounds))) * cw + f1, starts) / weight
    pos = base + offset  # centroids in cells
    centroids = np.clip(lo + pos / scale, lo, hi)

    # Nearest centroid for every point, ties to the upper one (as lloyd). The cell of a point is
    # a monotone function of the point, so a point in a cell before (after) a midpoint's cell lies
    # below (above) that midpoint.
    mid = _midpoints(centroids)
    mid_cell = ((mid - lo) * scale).astype(np.intp)
    table = np.searchsorted(mid_cell, np.arange(cells), side="left")
    table[mid_cell] = -1
    labels = table[q]
    split = np.flatnonzero(labels < 0)
    xs = x[split]
    labels[split] = np.searchsorted(mid, xs, side="right")

    # Inertia: whole cells from their sums (in cell units), split cells point by point.
    whole = np.flatnonzero(table >= 0)
    gap = whole - pos[table[whole]]
    inertia = np.dot(counts[whole], gap * gap) + 2 * np.dot(first[whole], gap) + second[whole].sum()
    inertia /= scale * scale
    d = xs - centroids[labels[split]]
    inertia += np.dot(d * d, w[split]) if w is not None else np.dot(d, d)
    return KMeansResult(centroids, labels, float(max(inertia, 0.0)), 0)


def kmeans1d(x, k, method="optimal", sample_weight=None, **kw) -> KMeansResult:
    """Cluster `x` into `k` values with the named method.

    Parameters
    ----------
    x : array_like
        1-D finite data.
    k : int
        Number of clusters.
    method : {"optimal", "lloyd"}
        :func:`optimal` (exact; :func:`gridded_optimal` once ``len(x) * k`` exceeds
        `EXACT_WORK_LIMIT`) or :func:`lloyd` (the paper's heuristic).
    sample_weight : array_like, optional
        Non-negative weight of each point.
    **kw
        Options of :func:`lloyd` (`init`, `max_iter`, `tol`); :func:`optimal` takes none.

    Returns
    -------
    KMeansResult
    """
    if method == "optimal":
        if kw:
            given = ", ".join(sorted(kw))
            raise EiexError(f"k-means method 'optimal' takes no options, got {given}")
        if np.size(x) * k > EXACT_WORK_LIMIT:
            return gridded_optimal(x, k, sample_weight=sample_weight, bins=GRID_BINS)
        return optimal(x, k, sample_weight=sample_weight)
    if method == "lloyd":
        unknown = sorted(set(kw) - {"init", "max_iter", "tol"})
        if unknown:
            raise EiexError(f"unknown option(s) for k-means method 'lloyd': {', '.join(unknown)}")
        return lloyd(x, k, sample_weight=sample_weight, **kw)
    raise EiexError(f"unknown k-means method {method!r}; expected 'optimal' or 'lloyd'")
