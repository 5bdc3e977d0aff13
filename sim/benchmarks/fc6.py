"""Compression at the scale of AlexNet's fc6 (9216 inputs x 4096 outputs, 37.7M weights).

One layer goes through eiex's whole flow: magnitude pruning to 9% kept, weight sharing into 16
values (code 0 = pruned, 15 shared values for the survivors, as Deep Compression's 4-bit fc
codebooks), encoding for 64 EIE PEs, Huffman coding of the entry streams and writing the image
folder. Every stage is timed and its peak memory measured.

Beside it, on the same data, the tools the public Deep Compression reimplementations use:
scikit-learn's ``KMeans`` (Lloyd from the paper's linear initialisation) against the k-means that
eiex's weight sharing calls, and a plain-Python Huffman coder (``heapq`` and strings of '0' and
'1') against eiex's.

Run ``python -m eiex.sim.benchmarks.fc6 --json fc6.json`` to print and save the measurements.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import resource
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from eiex.sw.images.eie.export import export_model, layers_from_npz
from eiex.sw.images.eie.files import write_image
from eiex.sw.images.eie.image import EngineParams
from eiex.errors import EiexError
from eiex.sw.compress.huffman import MAX_CODE_LEN, HuffmanCode
from eiex.sw.compress.kmeans import kmeans1d, linear_init
from eiex.sw.compress.sharing import share_layer

FC6_ROWS, FC6_COLS = 4096, 9216
#: AlexNet fc6's trained weights are bell-shaped around zero with a standard deviation of about
#: 0.005 and heavier tails than a Gaussian; a Student-t with 5 degrees of freedom has both.
FC6_STD = 0.005
FC6_DOF = 5

#: Stages that make up "the whole layer" (`fc6_seconds`, `fc6_peak_gb`). Generating the weights
#: stands in for loading a trained layer and is reported but not counted; the Huffman coding is
#: counted inside ``write``, which codes the streams again as ``eiex export-eie --huffman`` does.
FC6_STAGES = ("prune", "share", "encode", "write")
#: The targets of the measurement: the whole layer within 60 s and 4 GB; eiex's k-means at least
#: 10 times faster than scikit-learn's, at equal or lower within-cluster error.
TARGET_SECONDS = 60.0
TARGET_PEAK_GB = 4.0
TARGET_KMEANS_SPEEDUP = 10.0
#: Longest Huffman code, as ``eiex export-eie --huffman`` without a value.
HUFFMAN_MAX_LEN = 16
GB = 1e9


def fc6_weights(seed: int = 0, rows: int = FC6_ROWS, cols: int = FC6_COLS) -> np.ndarray:
    """A dense float32 ``(rows, cols)`` layer drawn from the bell-shaped distribution above."""
    rng = np.random.default_rng(seed)
    t = rng.standard_t(FC6_DOF, size=(rows, cols)).astype(np.float32)
    return t * np.float32(FC6_STD / np.sqrt(FC6_DOF / (FC6_DOF - 2)))


def prune_in_place(weights: np.ndarray, keep: float) -> int:
    """Zero all but the ``round(keep * size)`` largest-magnitude weights; returns how many are kept.

    The threshold comes from ``np.partition`` (linear time); weights tied with it are kept in
    memory order until the count is exact.
    """
    if not weights.flags.c_contiguous:
        raise EiexError("prune_in_place needs a C-contiguous array (it zeroes weights through a flat view)")
    n = weights.size
    n_keep = int(round(keep * n))
    flat = weights.reshape(-1)
    if n_keep >= n:
        return int(np.count_nonzero(flat))
    magnitude = np.abs(flat)
    magnitude.partition(n - n_keep)
    threshold = magnitude[n - n_keep]
    np.abs(flat, out=magnitude)
    kept = magnitude > threshold
    missing = n_keep - int(np.count_nonzero(kept))
    if missing > 0:
        kept[np.flatnonzero(magnitude == threshold)[:missing]] = True
    del magnitude
    np.logical_not(kept, out=kept)
    flat[kept] = 0
    return int(np.count_nonzero(flat))


# ------------------------------------------------------------------------------ measuring


class _Meter:
    """Wall time and peak resident memory (RSS) of each stage.

    On Linux the kernel's high-water mark ``VmHWM`` is reset before every stage (writing 5 to
    ``/proc/self/clear_refs``), so a stage's peak is the most memory the whole process held during
    that stage: everything resident counts, the interpreter, the libraries and the arrays kept
    from earlier stages included. Where the reset is not possible, ``ru_maxrss`` is used and a
    stage's peak is the process's peak so far (an upper bound). The reset also resets
    ``ru_maxrss``, so the process's peak over the whole run is kept here (`process_peak_bytes`).
    """

    def __init__(self):
        self.stages: dict[str, dict] = {}
        self._earlier_peak = process_peak_bytes()
        try:
            self._reset()
            self._read_hwm()
            self.method = "rss-hwm-per-stage"
        except OSError:
            self.method = "ru-maxrss-cumulative"

    def _reset(self) -> None:
        self._earlier_peak = max(self._earlier_peak, process_peak_bytes())
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    @staticmethod
    def _read_hwm() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise OSError("no VmHWM in /proc/self/status")

    def peak_bytes(self) -> int:
        if self.method == "rss-hwm-per-stage":
            return self._read_hwm()
        return process_peak_bytes()

    def process_peak_bytes(self) -> int:
        """The process's peak resident memory since it started, across the resets (``ru_maxrss``
        and ``VmHWM`` are sampled apart by the kernel, so the stages' own peaks count too)."""
        stage_peaks = (round(stage["peak_gb"] * GB) for stage in self.stages.values())
        return max(self._earlier_peak, process_peak_bytes(), *stage_peaks)

    @contextmanager
    def stage(self, name: str, log):
        if self.method == "rss-hwm-per-stage":
            self._reset()
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        peak = self.peak_bytes() / GB
        self.stages[name] = {"seconds": seconds, "peak_gb": peak}
        log(f"{name:>8}: {seconds:7.2f} s, peak {peak:.2f} GB")


def process_peak_bytes() -> int:
    """The process's peak resident memory (``ru_maxrss``: since it started or since the peak was
    last reset)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


# ------------------------------------------------------------------------------ baselines


def inertia(x: np.ndarray, centroids: np.ndarray, labels: np.ndarray) -> float:
    """Sum of squared distances of the points to their assigned centroid, in float64."""
    d = np.asarray(x, dtype=np.float64) - np.asarray(centroids, dtype=np.float64).reshape(-1)[labels]
    return float(np.dot(d, d))


def sklearn_kmeans(x: np.ndarray, k: int):
    """scikit-learn's Lloyd from Deep Compression's linear initialisation, one run: the fitted
    ``KMeans`` (its ``cluster_centers_`` and ``labels_``)."""
    from sklearn.cluster import KMeans

    init = linear_init(x, k).reshape(-1, 1)
    return KMeans(n_clusters=k, init=init, n_init=1, algorithm="lloyd").fit(x.reshape(-1, 1))


def python_huffman(streams: list[np.ndarray]) -> tuple[dict[int, str], list[bytes], int]:
    """Huffman coding as the public Deep Compression reimplementations write it.

    Symbol frequencies by counting Python ints, a tree built with ``heapq``, codes as strings of
    '0' and '1' by walking the tree, each stream encoded by joining its symbols' strings and
    packed to bytes eight characters at a time. One code serves all streams.

    Returns
    -------
    (codes, packed, bits)
        The code string of each symbol, each stream's bytes, and the total number of coded bits.
    """
    symbol_lists = [s.tolist() for s in streams]
    freq = Counter()
    for symbols in symbol_lists:
        freq.update(symbols)
    heap = [(count, order, symbol) for order, (symbol, count) in enumerate(sorted(freq.items()))]
    heapq.heapify(heap)
    order = len(heap)
    while len(heap) > 1:
        c1, _, left = heapq.heappop(heap)
        c2, _, right = heapq.heappop(heap)
        heapq.heappush(heap, (c1 + c2, order, (left, right)))
        order += 1
    codes: dict[int, str] = {}
    pending = [(heap[0][2], "")] if heap else []
    while pending:
        node, prefix = pending.pop()
        if isinstance(node, tuple):
            pending.append((node[0], prefix + "0"))
            pending.append((node[1], prefix + "1"))
        else:
            codes[node] = prefix or "0"  # a single symbol still needs one bit
    packed, bits = [], 0
    for symbols in symbol_lists:
        stream = "".join([codes[s] for s in symbols])
        bits += len(stream)
        stream += "0" * (-len(stream) % 8)
        packed.append(bytes(int(stream[i : i + 8], 2) for i in range(0, len(stream), 8)))
    return codes, packed, bits


def eiex_huffman(streams: list[np.ndarray], n_symbols: int, max_len: int) -> tuple[HuffmanCode, list[bytes], int]:
    """eiex's Huffman coding of the same streams, as ``write_image`` does it: one canonical,
    length-limited code fitted over all streams, then each stream encoded and packed."""
    code = HuffmanCode.fit(np.concatenate(streams), n_symbols, max_len)
    packed, bits = [], 0
    for symbols in streams:
        stream = code.encode(symbols)
        bits += len(stream)
        packed.append(stream.tobytes())
    return code, packed, bits


def _huffman_comparison(streams, n_symbols, max_len, repeats, log) -> dict:
    eiex_s, (code, _, eiex_bits) = _median_time(lambda: eiex_huffman(streams, n_symbols, max_len), repeats)
    python_s, (codes, _, python_bits) = _median_time(lambda: python_huffman(streams), max(1, (repeats + 1) // 2))
    python_lengths = np.zeros(n_symbols, dtype=np.int64)
    for symbol, string in codes.items():
        python_lengths[symbol] = len(string)
    longest = int(python_lengths.max())
    # eiex's encoder given the plain-Python code's lengths writes as many bits as that code.
    same_lengths_bits = None
    if longest <= MAX_CODE_LEN:
        same = HuffmanCode.from_lengths(python_lengths, max(longest, 1))
        same_lengths_bits = int(sum(len(same.encode(s)) for s in streams))
    log(f"Huffman: eiex {eiex_s:.3f} s, plain Python {python_s:.3f} s; {eiex_bits} bits (codes <= {max_len}) "
        f"vs {python_bits} (longest {longest})")
    return {
        "huffman_eiex_seconds": eiex_s,
        "huffman_python_seconds": python_s,
        "huffman_speedup_vs_python": python_s / eiex_s,
        "huffman_eiex_bits": eiex_bits,
        "huffman_python_bits": python_bits,
        "huffman_eiex_longest_code": int(code.lengths.max()),
        "huffman_python_longest_code": longest,
        "huffman_limit_binding": longest > max_len,
        "huffman_eiex_excess_bits": eiex_bits - python_bits,
        "huffman_python_lengths_bits_in_eiex": same_lengths_bits,
        "huffman_symbols": int(sum(len(s) for s in streams)),
    }


def _ratio(ours: float, theirs: float) -> float:
    if theirs > 0:
        return ours / theirs
    return 1.0 if ours == 0 else math.inf


def _kmeans_comparison(x: np.ndarray, k: int, repeats: int, log) -> dict:
    """eiex's k-means (the call weight sharing makes) and scikit-learn's, interleaved so that both
    see the same machine load; medians of the wall times."""
    eiex_times, sklearn_times = [], []
    ours = theirs = None
    for i in range(repeats):
        start = time.perf_counter()
        ours = kmeans1d(x, k, method="optimal")
        eiex_times.append(time.perf_counter() - start)
        if i < (repeats + 1) // 2:
            start = time.perf_counter()
            theirs = sklearn_kmeans(x, k)
            sklearn_times.append(time.perf_counter() - start)
    eiex_s, sklearn_s = float(np.median(eiex_times)), float(np.median(sklearn_times))
    eiex_inertia = inertia(x, ours.centroids, ours.labels)
    sklearn_inertia = inertia(x, theirs.cluster_centers_, theirs.labels_)
    log(f"k-means on {x.size} weights, k={k}: eiex {eiex_s:.3f} s, inertia {eiex_inertia:.6g}; "
        f"scikit-learn {sklearn_s:.3f} s, inertia {sklearn_inertia:.6g} ({theirs.n_iter_} iterations)")
    return {
        "kmeans_points": int(x.size),
        "kmeans_clusters": k,
        "kmeans_eiex_seconds": eiex_s,
        "kmeans_sklearn_seconds": sklearn_s,
        "kmeans_eiex_runs": len(eiex_times),
        "kmeans_sklearn_runs": len(sklearn_times),
        "kmeans_eiex_inertia": eiex_inertia,
        "kmeans_sklearn_inertia": sklearn_inertia,
        "kmeans_sklearn_iterations": int(theirs.n_iter_),
        "kmeans_speedup_vs_sklearn": sklearn_s / eiex_s,
        "kmeans_inertia_ratio_vs_sklearn": _ratio(eiex_inertia, sklearn_inertia),
    }


# ------------------------------------------------------------------------------ the layer


def _image_bits(manifest: dict, huffman: HuffmanCode) -> tuple[int, int]:
    """Bits of the image as stored: (plain, with Huffman-coded entry streams and their table)."""
    by_kind: dict[str, int] = {}
    for memory in manifest["memories"]:
        by_kind[memory["kind"]] = by_kind.get(memory["kind"], 0) + memory["width"] * memory["depth"]
    rest = by_kind["ptr"] + by_kind["bias"] + by_kind["codebook"]
    return by_kind["spmat"] + rest, by_kind["spmat_huff"] + huffman.table_bits() + rest


def _check_args(seed, n_pe, keep, bits, rows, cols, repeats, baselines) -> None:
    for name, value, lo in (("seed", seed, 0), ("n_pe", n_pe, 1), ("bits", bits, 1), ("rows", rows, 1),
                            ("cols", cols, 1), ("repeats", repeats, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise EiexError(f"{name} must be an integer >= {lo}, not {value!r}")
    if not (isinstance(keep, (int, float)) and 0 < keep <= 1):
        raise EiexError(f"keep must be a fraction in (0, 1], not {keep!r}")
    if baselines and round(keep * rows * cols) < 2**bits - 1:
        raise EiexError(f"the k-means baselines need at least {2**bits - 1} kept weights, "
                        f"not {round(keep * rows * cols)}")


def _image_figures(image, manifest: dict, code, huffman_bits: int, huffman_max_len: int) -> dict:
    """The encoded layer's entries and widths, and its size with and without Huffman coding against
    the dense float32 layer."""
    e, layer = image.engine, image.layers[0]
    plain_bits, huffman_image_bits = _image_bits(manifest, code)
    dense_bytes = 4 * (layer.rows * layer.cols + layer.rows)  # float32 weights and biases
    entries = sum(len(pe.v) for pe in image.pes)
    return dict(
        entries=entries, fillers=int(sum(np.count_nonzero(pe.v == 0) for pe in image.pes)),
        max_pe_entries=int(max(len(pe.v) for pe in image.pes)), ptr_bits=e.ptr_bits, rel_bits=e.rel_bits,
        idx_bits=e.idx_bits, weight_frac=layer.weight_frac,
        huffman_max_len=huffman_max_len, huffman_bits=huffman_bits,
        huffman_bits_per_entry=huffman_bits / max(entries, 1),
        dense_bytes=dense_bytes, image_bytes=math.ceil(plain_bits / 8),
        image_huffman_bytes=math.ceil(huffman_image_bits / 8),
        compression_ratio=dense_bytes * 8 / plain_bits, compression_ratio_huffman=dense_bytes * 8 / huffman_image_bits)


def run_fc6(seed: int = 0, n_pe: int = 64, keep: float = 0.09, bits: int = 4, out=None, baselines: bool = True,
            log=None, *, rows: int = FC6_ROWS, cols: int = FC6_COLS, huffman_max_len: int = HUFFMAN_MAX_LEN,
            repeats: int = 5, keep_arrays: bool = False) -> dict:
    """Compress one fc6-sized layer with eiex, stage by stage, and measure it.

    Stages: ``generate`` (:func:`fc6_weights`), ``prune`` (:func:`prune_in_place`), ``share``
    (:func:`eiex.sw.compress.sharing.share_layer`, method "optimal": ``2**bits - 1`` shared values, code 0
    for pruned weights, then the shared float weights), ``encode`` (the shared weights as a
    one-layer network through :func:`eiex.sw.images.eie.export.export_model` with pointer widths sized
    automatically, as ``eiex export-eie --npz`` does), ``huffman`` (eiex's Huffman coding of every
    PE's entry stream, timed on its own) and ``write`` (:func:`eiex.sw.images.eie.files.write_image` with
    Huffman-coded streams, which codes them again).

    Parameters
    ----------
    seed, rows, cols : int
        The layer (:func:`fc6_weights`).
    n_pe : int
        PEs the image is encoded for.
    keep : float
        Fraction of the weights kept by pruning.
    bits : int
        Weight index width: ``2**bits`` codebook entries, entry 0 for pruned weights.
    out : path, optional
        Image folder to write (replaced if it exists); by default a temporary folder, removed.
    baselines : bool
        Also compare with scikit-learn's k-means and a plain-Python Huffman coder on the same data.
    log : callable, optional
        Called with one line of progress per stage.
    huffman_max_len : int
        Longest Huffman code in the image.
    repeats : int
        Runs of eiex's k-means and Huffman coder; the slow baselines run ``(repeats + 1) // 2``
        times. Medians are reported.
    keep_arrays : bool
        Also return the pruned weights, codes and codebook under ``"arrays"``.

    Returns
    -------
    dict
        ``stages``: per stage ``seconds`` (wall) and ``peak_gb`` (peak resident memory of the whole
        process during the stage, in units of 1e9 bytes; ``memory_method`` says how it was
        measured, see `_Meter`). ``fc6_seconds`` is the sum over `FC6_STAGES` (prune, share,
        encode, write; the Huffman coding is inside write), ``fc6_peak_gb`` their largest peak.
        Then the layer (``kept``, ``entries``, ``ptr_bits``, ...), the image's size against the
        dense float32 layer, and with `baselines` the ``kmeans_*`` and ``huffman_*`` comparisons
        and ``targets``.

    Notes
    -----
    On Linux the measurement resets the process's peak-RSS counter before each stage, which also
    resets ``ru_maxrss``; ``process_peak_gb`` is the peak over the whole run all the same.
    """
    _check_args(seed, n_pe, keep, bits, rows, cols, repeats, baselines)
    log = log or (lambda message: None)
    meter = _Meter()
    k = 2**bits - 1
    result: dict = {"rows": rows, "cols": cols, "weights": rows * cols, "seed": seed, "n_pe": n_pe, "keep": keep,
                    "bits": bits, "memory_method": meter.method, "fc6_stages": list(FC6_STAGES)}

    with meter.stage("generate", log):
        weights = fc6_weights(seed, rows, cols)
    with meter.stage("prune", log):
        kept = prune_in_place(weights, keep)
    with meter.stage("share", log):
        shared = share_layer(weights, bits, "optimal")
        shared_weights = shared.weights()
    survivors = weights[weights != 0].astype(np.float64) if baselines else None
    counts = np.bincount(shared.codes.reshape(-1), minlength=2**bits)
    result.update(kept=kept, kept_fraction=kept / weights.size, codes_used=int(np.count_nonzero(counts)),
                  codes_zero_iff_pruned=bool(np.array_equal(shared.codes == 0, weights == 0)))
    arrays = {"pruned": weights, "codes": shared.codes, "codebook": shared.codebook} if keep_arrays else None
    del weights, shared

    with meter.stage("encode", log):
        layers = layers_from_npz({"w0": shared_weights, "b0": np.zeros(rows, dtype=np.float32)}, "fc6")
        del shared_weights
        image, _ = export_model(layers, EngineParams(n_pe=n_pe, idx_bits=bits), input_norm=None, calibration=None,
                                balance=False, auto_ptr_bits=True, search_act_frac=False)
        del layers
    e = image.engine
    streams = [(pe.z << e.idx_bits) | pe.v for pe in image.pes]
    with meter.stage("huffman", log):
        code, _, huffman_bits = eiex_huffman(streams, 1 << e.entry_bits, huffman_max_len)

    with tempfile.TemporaryDirectory(prefix="eiex-fc6-") as scratch:
        folder = Path(out) if out is not None else Path(scratch) / "fc6"
        with meter.stage("write", log):
            manifest = write_image(image, folder, huffman_max_len=huffman_max_len, force=True)
    stages = meter.stages
    fc6_seconds = sum(stages[s]["seconds"] for s in FC6_STAGES)
    fc6_peak = max(stages[s]["peak_gb"] for s in FC6_STAGES)
    entries = sum(len(pe.v) for pe in image.pes)
    result.update(stages=stages, fc6_seconds=fc6_seconds, fc6_peak_gb=fc6_peak,
                  **_image_figures(image, manifest, code, huffman_bits, huffman_max_len),
                  image_dir=str(out) if out is not None else None)
    log(f"whole layer ({' + '.join(FC6_STAGES)}): {fc6_seconds:.2f} s, peak {fc6_peak:.2f} GB; "
        f"{kept} of {rows * cols} weights kept, {entries} entries, image {result['image_huffman_bytes']} bytes "
        f"with Huffman coding ({result['compression_ratio_huffman']:.1f}x smaller than float32)")

    targets = {"fc6_seconds": fc6_seconds <= TARGET_SECONDS, "fc6_peak_gb": fc6_peak <= TARGET_PEAK_GB}
    if baselines:
        result.update(_kmeans_comparison(survivors, k, repeats, log))
        result.update(_huffman_comparison(streams, 1 << e.entry_bits, huffman_max_len, repeats, log))
        targets["kmeans_speedup_vs_sklearn"] = result["kmeans_speedup_vs_sklearn"] >= TARGET_KMEANS_SPEEDUP
        targets["kmeans_inertia_ratio_vs_sklearn"] = result["kmeans_inertia_ratio_vs_sklearn"] <= 1.0
    result["targets"] = targets
    result["process_peak_gb"] = meter.process_peak_bytes() / GB
    if arrays is not None:
        result["arrays"] = arrays
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eiex.sim.benchmarks.fc6", description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pes", type=int, default=64)
    p.add_argument("--keep", type=float, default=0.09)
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--rows", type=int, default=FC6_ROWS)
    p.add_argument("--cols", type=int, default=FC6_COLS)
    p.add_argument("--out", type=Path, help="write the image folder here (default: a temporary folder)")
    p.add_argument("--json", type=Path, help="save the measurements here")
    p.add_argument("--no-baselines", action="store_true")
    args = p.parse_args(argv)
    result = run_fc6(args.seed, args.pes, args.keep, args.bits, out=args.out, baselines=not args.no_baselines,
                     log=print, rows=args.rows, cols=args.cols)
    print("targets:", ", ".join(f"{name} {'met' if ok else 'MISSED'}" for name, ok in result["targets"].items()))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
