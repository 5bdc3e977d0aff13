"""The fc6-scale compression bench, run on a scaled-down layer through the same function: what it
measures must be what eiex does (pruning, sharing, the image), and its baselines must be honest."""

import math

import numpy as np
import pytest

from eiex.hw.eie import golden
from eiex.sim.benchmarks import fc6 as bench
from eiex.sw.compress import kmeans as km
from eiex.sw.images.eie.files import load_image
from eiex.errors import EiexError

ROWS, COLS, SEED = 256, 576, 3


@pytest.fixture(scope="module", params=["grid", "exact"])
def small(request, tmp_path_factory):
    """run_fc6 on a 256 x 576 layer, 64 PEs, image written to a folder. "grid": k-means takes the
    large-input path that an fc6-sized layer takes (gridded_optimal); "exact": the default path for
    a layer this small."""
    out = tmp_path_factory.mktemp("fc6") / "image"
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "grid":
            mp.setattr(km, "EXACT_WORK_LIMIT", 0)
        result = bench.run_fc6(SEED, 64, 0.09, 4, out=out, rows=ROWS, cols=COLS, repeats=1, keep_arrays=True)
    return result, out


def test_pruning_keeps_the_largest_nine_percent(small):
    result, _ = small
    original = bench.fc6_weights(SEED, ROWS, COLS)
    pruned = result["arrays"]["pruned"]
    kept = pruned != 0
    assert abs(result["kept"] - 0.09 * ROWS * COLS) <= 1
    assert result["kept"] == np.count_nonzero(kept)
    assert np.array_equal(pruned, np.where(kept, original, 0))
    assert np.abs(original[kept]).min() >= np.abs(original[~kept]).max()


def test_sixteen_codes_zero_for_pruned(small):
    result, _ = small
    codes, codebook = result["arrays"]["codes"], result["arrays"]["codebook"]
    pruned = result["arrays"]["pruned"]
    assert codebook.shape == (16,) and codebook[0] == 0
    assert np.all(np.diff(codebook[1:]) > 0) and np.all(codebook[1:] != 0)
    assert np.array_equal(codes == 0, pruned == 0)
    assert np.array_equal(np.unique(codes), np.arange(16))
    assert result["codes_used"] == 16 and result["codes_zero_iff_pruned"]


def test_image_loads_and_decodes_to_the_shared_weights(small):
    result, out = small
    back = load_image(out)  # checks every file, pointer, row index and Huffman stream
    assert back.engine.n_pe == 64 and back.engine.idx_bits == 4
    assert back.engine.ptr_bits == result["ptr_bits"] and 1 << back.engine.ptr_bits > result["max_pe_entries"]
    shared = result["arrays"]["codebook"].astype(np.float64)[result["arrays"]["codes"]]
    frac = back.layers[0].weight_frac
    assert frac == result["weight_frac"]
    assert np.array_equal(golden.decode_weights(back, 0), np.rint(shared * 2.0**frac))
    assert sum(len(pe.v) for pe in back.pes) == result["entries"]


def test_eiex_kmeans_is_what_sharing_used_and_no_worse_than_sklearn(small):
    result, _ = small
    pruned, codes, codebook = (result["arrays"][key] for key in ("pruned", "codes", "codebook"))
    survivors = pruned[pruned != 0].astype(np.float64)
    assert result["kmeans_points"] == survivors.size
    # the shared codebook (float32) gives the inertia measured for eiex's k-means
    shared_inertia = bench.inertia(survivors, codebook, codes[pruned != 0])
    assert shared_inertia == pytest.approx(result["kmeans_eiex_inertia"], rel=1e-5)
    assert result["kmeans_eiex_inertia"] <= result["kmeans_sklearn_inertia"]
    assert result["kmeans_inertia_ratio_vs_sklearn"] <= 1.0


def test_sklearn_baseline_starts_from_the_linear_initialisation():
    x = np.array([0.0, 0.1, 0.2, 5.0, 5.1, 9.9, 10.0])
    fitted = bench.sklearn_kmeans(x, 3)
    np.testing.assert_allclose(fitted.init.ravel(), [0.0, 5.0, 10.0])
    assert bench.inertia(x, fitted.cluster_centers_, fitted.labels_) == pytest.approx(fitted.inertia_)


def test_huffman_coders_agree_on_the_bit_count(small):
    result, _ = small
    assert not result["huffman_limit_binding"]  # this layer's optimal codes fit 16 bits ...
    assert result["huffman_eiex_bits"] == result["huffman_python_bits"]  # ... so both codes are optimal
    assert result["huffman_python_lengths_bits_in_eiex"] == result["huffman_python_bits"]
    assert result["huffman_bits"] == result["huffman_eiex_bits"] and result["huffman_eiex_excess_bits"] == 0


def _python_decode(codes: dict, data: bytes, count: int) -> list:
    bits = "".join(format(byte, "08b") for byte in data)
    table = {string: symbol for symbol, string in codes.items()}
    out, current = [], ""
    for bit in bits:
        current += bit
        if current in table:
            out.append(table[current])
            current = ""
            if len(out) == count:
                break
    return out


@pytest.mark.parametrize("max_len", [16, 4])
def test_both_huffman_coders_round_trip(max_len):
    # Fibonacci frequencies make the deepest possible tree: 7 bits, so a limit of 4 binds.
    counts = [1, 1, 2, 3, 5, 8, 13, 21]
    rng = np.random.default_rng(0)
    symbols = rng.permutation(np.repeat(np.arange(8), counts))
    streams = [symbols[:20], symbols[20:]]  # one code for both streams, as for the PEs
    codes, packed, python_bits = bench.python_huffman(streams)
    assert [_python_decode(codes, data, len(s)) for data, s in zip(packed, streams)] == [s.tolist() for s in streams]
    code, eiex_packed, eiex_bits = bench.eiex_huffman(streams, 8, max_len)
    for data, s in zip(eiex_packed, streams):
        assert np.array_equal(code.decode(data, len(s)), s)
    assert max(len(c) for c in codes.values()) == 7
    if max_len >= 7:
        assert eiex_bits == python_bits
    else:
        assert eiex_bits > python_bits and code.lengths.max() <= max_len


def test_python_huffman_gives_a_lone_symbol_one_bit():
    codes, packed, bits = bench.python_huffman([np.array([5, 5, 5])])
    assert codes == {5: "0"} and bits == 3 and packed == [b"\x00"]


def test_result_keys_are_present_and_finite(small):
    result, out = small
    assert set(result["stages"]) == {"generate", "prune", "share", "encode", "huffman", "write"}
    for stage in result["stages"].values():
        assert stage["seconds"] >= 0 and stage["peak_gb"] > 0
    assert result["fc6_seconds"] == pytest.approx(sum(result["stages"][s]["seconds"] for s in bench.FC6_STAGES))
    assert result["fc6_peak_gb"] == max(result["stages"][s]["peak_gb"] for s in bench.FC6_STAGES)
    assert result["process_peak_gb"] >= result["fc6_peak_gb"]
    numbers = ["fc6_seconds", "fc6_peak_gb", "kept", "entries", "image_bytes", "image_huffman_bytes",
               "compression_ratio", "compression_ratio_huffman", "kmeans_eiex_seconds", "kmeans_sklearn_seconds",
               "kmeans_eiex_inertia", "kmeans_sklearn_inertia", "kmeans_speedup_vs_sklearn",
               "kmeans_inertia_ratio_vs_sklearn", "huffman_eiex_seconds", "huffman_python_seconds",
               "huffman_speedup_vs_python", "huffman_eiex_bits", "huffman_python_bits"]
    for key in numbers:
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert set(result["targets"]) == {"fc6_seconds", "fc6_peak_gb", "kmeans_speedup_vs_sklearn",
                                      "kmeans_inertia_ratio_vs_sklearn"}
    assert result["compression_ratio_huffman"] > result["compression_ratio"] > 1
    assert result["image_dir"] == str(out)


def test_without_baselines(tmp_path):
    result = bench.run_fc6(1, 4, 0.2, 3, rows=40, cols=30, baselines=False)
    assert result["kept"] == round(0.2 * 1200) and result["codes_used"] == 8
    assert "kmeans_eiex_seconds" not in result and set(result["targets"]) == {"fc6_seconds", "fc6_peak_gb"}
    assert result["image_dir"] is None and "arrays" not in result


def test_prune_in_place_keeps_an_exact_count_on_ties():
    w = np.array([[1.0, -1.0, 1.0], [2.0, -2.0, 0.5]], dtype=np.float32)
    assert bench.prune_in_place(w, 0.5) == 3
    assert w.tolist() == [[1.0, 0.0, 0.0], [2.0, -2.0, 0.0]]


@pytest.mark.parametrize("kwargs, message", [
    ({"keep": 0.0}, "keep"), ({"keep": 1.5}, "keep"), ({"n_pe": 0}, "n_pe"), ({"rows": 0}, "rows"),
    ({"repeats": 0}, "repeats"), ({"keep": 0.1}, "at least 15 kept weights"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(EiexError, match=message):
        bench.run_fc6(**{"rows": 8, "cols": 8, **kwargs})


def test_prune_refuses_a_strided_view():
    with pytest.raises(EiexError, match="contiguous"):
        bench.prune_in_place(np.ones((4, 4), dtype=np.float32)[:, ::2], 0.5)
