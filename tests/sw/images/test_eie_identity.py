"""Identity codebooks for the EIE engine's ``mac="index"``: the code is the weight. The helpers
against brute force and exact rational arithmetic (``fractions``), the exporter's identity images
against the spec (section 4: codebook entries; section 6: the arithmetic, via the golden model) and
against the usual (codebook) export of the same layers, and every refusal as one line."""

from fractions import Fraction

import numpy as np
import pytest

from eiex.errors import EiexError
from eiex.hw.eie import golden
from eiex.sw.compress.methods.linear import linear_quantize
from eiex.sw.compress.sharing import share_layer
from eiex.sw.images.eie.encode import IntLayer, build_image
from eiex.sw.images.eie.export import FloatLayer, engine_for, export_eie, float_forward
from eiex.sw.images.eie.identity import (
    check_identity_codebook, identity_layer, index_bits_for, needed_index_bits, signed_codes, weight_grid,
)
from eiex.sw.images.eie.image import EngineParams


def signed(v: int, bits: int) -> int:
    """Two's complement by hand: bit ``bits - 1`` weighs ``-2**(bits - 1)``, the others their usual."""
    return sum(((v >> i) & 1) << i for i in range(bits - 1)) - ((v >> (bits - 1)) & 1) * (1 << (bits - 1))


def fits(values, bits: int) -> bool:
    return all(-(1 << (bits - 1)) <= int(x) <= (1 << (bits - 1)) - 1 for x in values)


def brute_index_bits(q) -> int:
    """The fewest two's complement bits holding every integer of ``q``: try widths one by one."""
    return next(b for b in range(1, 70) if fits(np.ravel(q), b))


def grid_reference(w) -> tuple[int, list[int]] | None:
    """Exact rationals: ``f`` the largest power of two in a weight's denominator (every finite float is
    ``m / 2**k``), 0 for none; ``None`` beyond 2**-62 (what the exporter looks for)."""
    values = [Fraction(float(x)) for x in np.ravel(w)]
    f = max([v.denominator.bit_length() - 1 for v in values if v], default=0)
    if f > 62:
        return None
    scaled = [v * 2**f for v in values]
    assert all(s.denominator == 1 for s in scaled)
    return f, [int(s) for s in scaled]


# ---- the helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("idx_bits", [1, 2, 3, 5, 8, 12])
def test_signed_codes_are_twos_complement(idx_bits):
    got = signed_codes(idx_bits)
    assert got.shape == (1 << idx_bits,) and got.dtype == np.int64
    assert got.tolist() == [signed(v, idx_bits) for v in range(1 << idx_bits)]
    assert got[0] == 0  # spec section 1: entry 0 is always 0
    assert got[1 << (idx_bits - 1)] == -(1 << (idx_bits - 1))  # the most negative code is the most negative weight


def test_index_bits_for_every_range_against_enumeration():
    for lo in range(-70, 71):
        for hi in range(lo, 71):
            q = np.array([lo, hi])
            assert index_bits_for(q) == brute_index_bits(q), (lo, hi)
    rng = np.random.default_rng(0)
    for _ in range(200):
        q = rng.integers(-(1 << rng.integers(0, 40)), 1 << rng.integers(0, 40), rng.integers(1, 6))
        assert index_bits_for(q) == brute_index_bits(q), q
    assert index_bits_for(np.zeros((3, 4), dtype=np.int64)) == 1
    assert index_bits_for(np.array([-1])) == 1 and index_bits_for(np.array([1])) == 2
    assert index_bits_for(np.array([-(1 << 11), (1 << 11) - 1])) == 12


@pytest.mark.parametrize("q, f", [
    ([3, -5, 0, 7, -8], 4),  # negative and zero
    ([2, 4, -6, 0], 3),  # all even: the grid is one step coarser
    ([8, -16, 24], 1),  # all multiples of 8: f 1 - 3 < 0, so integers (f = 0)
    ([0, 0, 0], 5),  # zeros only
    ([1, -1], 62),  # the finest grid looked for
    ([-128, 127, 1], 7),
    ([5, -3], 0),  # integers already
])
def test_weight_grid_of_integer_multiples_of_a_power_of_two(q, f):
    w = np.ldexp(np.array(q, dtype=np.float64).reshape(1, -1), -f)
    ref_f, ref_q = grid_reference(w)
    got_f, got_q = weight_grid(w, "fc1")
    assert got_f == ref_f and got_q.ravel().tolist() == ref_q and got_q.dtype == np.int64 and got_q.shape == w.shape
    assert np.array_equal(np.ldexp(got_q.astype(np.float64), -got_f), w)  # exact


def test_weight_grid_of_random_arrays_against_exact_rationals():
    """Random q, f, and float32 (as compress writes them) and arbitrary floats: the same f and q as
    the rational arithmetic, or the refusal exactly when it finds no grid up to 2**-62."""
    rng = np.random.default_rng(1)
    refused = accepted = 0
    for trial in range(300):
        shape = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        kind = trial % 3
        if kind == 0:
            w = np.ldexp(rng.integers(-300, 300, shape).astype(np.float64), int(rng.integers(0, 40)))
            w = np.ldexp(w, -int(rng.integers(0, 80)))
        elif kind == 1:
            w = rng.normal(0, 10.0 ** rng.integers(-6, 2), shape).astype(np.float32)
        else:
            w = rng.normal(0, 10.0 ** rng.integers(-6, 2), shape)
        w[rng.random(shape) < 0.3] = 0
        ref = grid_reference(w)
        if ref is None:
            refused += 1
            with pytest.raises(EiexError, match="not even of 2\\*\\*-62"):
                weight_grid(w, "fc1")
        else:
            accepted += 1
            f, q = weight_grid(w, "fc1")
            assert (f, q.ravel().tolist()) == ref
    assert refused > 20 and accepted > 100


def test_weight_grid_refusal_is_one_line_naming_the_layer():
    for w in ([0.5, 2.0**-63], [np.pi * 1e-6], [1e-30, 0.25]):
        with pytest.raises(EiexError) as e:
            weight_grid(np.array(w), "fc3")
        message = str(e.value)
        assert message.startswith("fc3: --mac index needs weights that are integer multiples of one power of two")
        assert "--linear-scale pow2" in message and "\n" not in message


@pytest.mark.parametrize("q, f, idx_bits", [
    ([[3, -4, 0], [1, -1, 2]], 2, 3),  # -4: the most negative code, 4
    ([[3, -4, 0], [1, -1, 2]], 2, 6),  # wider than needed: -1 is code 63
    ([[0, 0]], 0, 1),
    ([[-1, 0]], 9, 1),  # one bit: -1 is code 1
    ([[2, 6, -10]], 5, 5),  # all even: f 4, q 1, 3, -5
])
def test_identity_layer_codes_codebook_and_frac(q, f, idx_bits):
    w = np.ldexp(np.array(q, dtype=np.float64), -f)
    ref_f, ref_q = grid_reference(w)
    codes, codebook, got_f = identity_layer(w, idx_bits, "fc1")
    assert got_f == ref_f
    assert codes.shape == w.shape and codes.min() >= 0 and codes.max() < 1 << idx_bits
    assert [signed(int(c), idx_bits) for c in codes.ravel()] == ref_q
    assert codebook.tolist() == [signed(v, idx_bits) * 2.0**-ref_f for v in range(1 << idx_bits)]
    assert np.array_equal(codebook[codes], w)  # the image decodes to the weights exactly


def test_identity_layer_refuses_too_few_index_bits():
    w = np.array([[0.5, -2.0], [1.0, 0.0]])  # -4..2 times 2**-1
    assert identity_layer(w, 3, "fc2")[2] == 1
    with pytest.raises(EiexError) as e:
        identity_layer(w, 2, "fc2")
    assert str(e.value) == ("fc2: --mac index takes the index as the weight; these weights are integers -4..2 times "
                            "2**-1, which need idx_bits = 3, not 2 (compress --quantize linear --linear-scale pow2 "
                            "gives such weights at that many bits)")


def test_needed_index_bits_is_the_widest_layer():
    ws = [np.array([[0.25, -0.5]]), np.array([[6.0, -1.0, 0.0]]), np.array([[0.0]])]  # q: 1,-2 / 6,-1 / 0
    assert needed_index_bits(ws, ["a", "b", "c"]) == max(brute_index_bits(grid_reference(w)[1]) for w in ws) == 4
    with pytest.raises(EiexError, match="^c: --mac index needs weights"):
        needed_index_bits([ws[0], np.array([[2.0**-70]])], ["b", "c"])


# ---- check_identity_codebook ---------------------------------------------------------------------


def image_with_books(books, codes, idx_bits=3, weight_bits=8):
    params = EngineParams(n_pe=2, idx_bits=idx_bits, rel_bits=2, act_bits=10, act_frac=3, weight_bits=weight_bits,
                          bias_bits=16, ptr_bits=12, entries_per_word=3)
    layers = [IntLayer(np.asarray(c), np.asarray(b), np.zeros(len(c), dtype=np.int64), l == 0, 2, f"fc{l + 1}")
              for l, (b, c) in enumerate(zip(books, codes))]
    return build_image(layers, params)


IDENTITY3 = [0, 1, 2, 3, -4, -3, -2, -1]


def test_identity_codebooks_pass_and_unused_codes_may_hold_anything():
    codes = [[[1, 4, 0], [7, 3, 0]], [[6, 0], [1, 4], [0, 7]]]
    check_identity_codebook(image_with_books([IDENTITY3, IDENTITY3], codes))
    # codes 2, 5, 6 unused in fc1, 2, 3, 5 in fc2: their entries do not matter
    check_identity_codebook(image_with_books([[0, 1, 50, 3, -4, 9, -70, -1], [0, 1, -2, 100, -4, -8, -2, -1]], codes))


@pytest.mark.parametrize("books, message", [
    ([[0, 1, 2, 3, 4, -3, -2, -1], IDENTITY3], "layer fc1 uses code 4, whose entry is 4, not -4"),
    ([IDENTITY3, [0, 1, 2, 3, -4, -3, 2, -1]], "layer fc2 uses code 6, whose entry is 2, not -2"),
    ([[0, 1, 2, 3, -4, -3, -2, 7], [0, 2, 2, 3, -4, -3, -2, -1]], "layer fc1 uses code 7, whose entry is 7, not -1"),
    ([IDENTITY3, [0, -1, 2, 3, -4, -3, 5, -1]], "layer fc2 uses code 1, whose entry is -1, not 1"),  # the first
])
def test_check_identity_codebook_names_the_layer_and_code(books, message):
    codes = [[[1, 4, 0], [7, 3, 0]], [[6, 0], [1, 4], [0, 7]]]
    with pytest.raises(EiexError) as e:
        check_identity_codebook(image_with_books(books, codes))
    assert str(e.value) == ("--mac index takes each weight's index as the weight, so a layer's codebook must be the "
                            f"identity; {message} (export eie --mac index writes such images)")


# ---- the exporter --------------------------------------------------------------------------------


def pow2_layers(seed, sizes=(20, 16, 12, 5), bits=(4, 5, 3), density=0.4, bias_scale=0.3):
    """Random float layers quantized by ``linear_quantize(kind="pow2")``: each layer's weights are
    ``q * 2**-f``, ``|q| <= 2**(bits - 1) - 1``; biases arbitrary floats."""
    rng = np.random.default_rng(seed)
    layers = []
    for l, (cols, rows) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.normal(0, 0.2 * (l + 1), (rows, cols))
        mask = rng.random((rows, cols)) < density
        weight = linear_quantize(w, bits[l], mask, kind="pow2").weights().astype(np.float64)
        layers.append(FloatLayer(weight, rng.normal(0, bias_scale, rows), l < len(sizes) - 2, f"fc{l + 1}"))
    return layers


def on_grid(layers, act_frac):
    """The same layers with each bias rounded (half to even, as the exporter) to the grid of the index
    image's accumulator, ``2**-(f + act_frac)``."""
    out = []
    for layer in layers:
        f, _ = grid_reference(layer.weight)
        step = 2.0 ** (f + act_frac)
        out.append(FloatLayer(layer.weight, np.rint(layer.bias * step) / step, layer.relu, layer.name))
    return out


PARAMS = EngineParams(n_pe=3, idx_bits=5, rel_bits=2, act_bits=12, act_frac=6, weight_bits=10, bias_bits=24)


@pytest.mark.parametrize("balance", [False, True])
def test_index_export_writes_identity_codebooks_at_the_weights_scale(balance):
    layers = pow2_layers(0)
    image, info = export_eie(layers, PARAMS, balance=balance, mac="index")
    assert info == {"act_frac": PARAMS.act_frac} and image.engine == PARAMS
    cols = np.arange(layers[0].weight.shape[1])
    for l, layer in enumerate(layers):
        f, q = grid_reference(layer.weight)
        assert image.layers[l].weight_frac == f
        assert image.layer_codebook(l).tolist() == [signed(v, PARAMS.idx_bits) for v in range(1 << PARAMS.idx_bits)]
        rows = np.asarray(image.row_order.get(layer.name, np.arange(layer.weight.shape[0])))
        q = np.array(q).reshape(layer.weight.shape)
        assert np.array_equal(golden.decode_weights(image, l), q[np.ix_(rows, cols)])
        # spec section 1: biases at act_frac + weight_frac, rounded half to even
        assert np.array_equal(golden.layer_bias(image, l), np.rint(layer.bias[rows] * 2.0 ** (f + PARAMS.act_frac)))
        cols = rows
    check_identity_codebook(image)
    assert bool(image.row_order) == balance


@pytest.mark.parametrize("balance", [False, True])
def test_index_image_computes_what_the_codebook_image_computes(balance):
    """The golden model of the identity image against that of the usual export at the same act_frac.

    What is exact: both images hold the weights exactly (the usual codebook is the distinct values,
    at a weight_frac ``F >= f`` since ``q`` fits ``idx_bits <= weight_bits``), so the usual image's
    integer weights are ``q * 2**(F - f)``. Its biases are rounded at ``2**-(F + act_frac)``, the
    identity image's at the coarser ``2**-(f + act_frac)``: for biases already on the coarse grid
    both accumulators are the same number times ``2**(F - f)``, and section 6's rounding by ``F`` and
    by ``f`` bits gives the same ``y`` in every layer. For arbitrary biases the outputs may differ by
    the bias rounding, so there the identity image is compared with the usual image of the layers
    whose biases were first rounded to the coarse grid: again exactly."""
    layers = pow2_layers(1, bias_scale=0.5)
    rng = np.random.default_rng(2)
    lo, hi = PARAMS.act_range()
    a = rng.integers(lo // 4, hi // 4, (60, 20)) * (rng.random((60, 20)) < 0.6)
    a[0] = np.where(np.arange(20) % 2, lo, hi)  # saturating
    index, _ = export_eie(layers, PARAMS, balance=balance, mac="index")
    plain, _ = export_eie(on_grid(layers, PARAMS.act_frac), PARAMS, balance=balance)
    for l in range(len(layers)):  # the premise: the usual image's scale is at least as fine
        assert plain.layers[l].weight_frac > index.layers[l].weight_frac
        assert len(set(plain.layer_codebook(l).tolist())) > 3
    assert np.array_equal(golden.run(index, a), golden.run(plain, a))
    # biases on the grid: the identity image is the same whether or not they were rounded first
    gridded, _ = export_eie(on_grid(layers, PARAMS.act_frac), PARAMS, balance=balance, mac="index")
    assert np.array_equal(golden.run(gridded, a), golden.run(index, a))
    # and it is the float network, up to fixed point (activations at 2**-6 over three layers)
    raw = np.abs(a[1:]) % 256
    norm = {"pixel_scale": 1 / 255, "mean": 0.0, "std": 0.5}
    index.input = norm
    fixed = golden.run(index, golden.quantize_input(index, raw)) / 2.0**PARAMS.act_frac
    reference = float_forward(layers, raw, norm)
    assert np.abs(fixed - reference).max() < 0.05 * np.abs(reference).max()


def test_index_export_with_calibration_searches_act_frac():
    layers = pow2_layers(3)
    raw = np.random.default_rng(3).integers(0, 256, (80, 20))
    norm = {"pixel_scale": 1 / 255, "mean": 0.2, "std": 0.3}
    image, info = export_eie(layers, PARAMS, input_norm=norm, calibration=raw, mac="index")
    assert image.engine.act_frac == info["act_frac"] and len(info["calibration"]) > 1
    assert [l.weight_frac for l in image.layers] == [grid_reference(l.weight)[0] for l in layers]
    check_identity_codebook(image)


def test_engine_for_index_takes_idx_bits_from_the_integers():
    layers = pow2_layers(4, bits=(4, 6, 3))
    params = engine_for(layers, 2, mac="index")
    q_bits = [brute_index_bits(grid_reference(l.weight)[1]) for l in layers]
    assert params.idx_bits == max(q_bits) <= 6 and params.n_pe == 2
    assert engine_for(layers, 2, mac="index", idx_bits=8, act_frac=5).idx_bits == 8
    image, _ = export_eie(layers, params, mac="index")
    check_identity_codebook(image)


def kmeans_layers():
    """A k-means layer as compress writes it: float32 centroids."""
    rng = np.random.default_rng(5)
    w = rng.normal(0, 0.1, (8, 12)) * (rng.random((8, 12)) < 0.5)
    weight = share_layer(w, 4, "optimal").weights().astype(np.float32).astype(np.float64)
    return [FloatLayer(weight, np.zeros(8), True, "fc1"), FloatLayer(np.full((3, 8), 0.25), np.zeros(3), False, "fc2")]


@pytest.mark.parametrize("make, message", [
    (lambda: export_eie(kmeans_layers(), EngineParams(n_pe=2, idx_bits=4), mac="index"),
     (r"^fc1: --mac index takes the index as the weight; these weights are integers -?\d+\.\.\d+ times 2\*\*-\d+, "
      r"which need idx_bits = \d+, not 4")),
    (lambda: export_eie([FloatLayer(np.array([[np.pi * 1e-6, 0.5]]), np.zeros(1), False, "fc1")],
                        EngineParams(n_pe=2, idx_bits=4), mac="index"),
     "^fc1: --mac index needs weights that are integer multiples of one power of two"),
    (lambda: export_eie(pow2_layers(6, bits=(4, 5, 3)), EngineParams(n_pe=2, idx_bits=4), mac="index"),
     "^fc2: --mac index takes the index as the weight; .* not 4"),
    (lambda: export_eie([FloatLayer(np.array([[0.5, -1.0]]), np.array([300.0]), False, "fc1")],
                        EngineParams(n_pe=2, idx_bits=3, act_frac=8, bias_bits=16), mac="index"),
     r"^fc1: a bias does not fit bias_bits = 16 at act_frac 8 \+ weight_frac 1$"),
    (lambda: export_eie(pow2_layers(6), PARAMS, mac="add"), r"^mac must be one of multiply, shift, index, not 'add'$"),
    (lambda: export_eie(pow2_layers(6), PARAMS, mac="shift"),
     "^--mac shift needs every codebook entry to be 0 or a signed power of two; layer fc"),
])
def test_export_refusals_are_one_clear_line(make, message):
    with pytest.raises(EiexError, match=message) as e:
        make()
    assert "\n" not in str(e.value)


def test_engine_for_index_refuses_kmeans_weights_naming_the_layer():
    """Without idx_bits given (export eie --mac index on a k-means folder), the refusal is the
    exporter's, naming the layer and --mac index, not EngineParams' range check of a 27-bit index."""
    with pytest.raises(EiexError) as e:
        engine_for(kmeans_layers(), 2, mac="index")
    assert "fc1" in str(e.value) and "--mac index" in str(e.value), str(e.value)


def test_a_bias_that_fits_at_a_coarser_scale_only_is_still_refused():
    """The usual export would pick a coarser weight_frac for a large bias; the identity image's
    weight_frac is fixed by the weights, so a bias beyond bias_bits at it is an error, not a rescale."""
    layers = [FloatLayer(np.array([[0.125, -0.25]]), np.array([300.0]), False, "fc1")]
    params = EngineParams(n_pe=1, idx_bits=3, act_frac=4, bias_bits=16)
    plain, _ = export_eie(layers, params)
    assert plain.layers[0].weight_frac < 3
    with pytest.raises(EiexError, match="at act_frac 4 \\+ weight_frac 3$"):
        export_eie(layers, params, mac="index")
