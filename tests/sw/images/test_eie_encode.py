"""EIE image encoding: the paper's Figure 3, and decode(encode(W)) == W on random layers."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eiex.hw.eie import golden
from eiex.sw.images.eie.encode import IntLayer, build_image
from eiex.sw.images.eie.image import EngineParams
from eiex.errors import EiexError

# EIE (ISCA 2016) Figure 2/3: a 16 x 8 matrix on 4 PEs; PE0 owns rows 0, 4, 8 and 12 and stores
# W0,0 W8,0 W12,0 | W4,1 | W0,2 W12,2 | | W0,4 W4,4 | W0,5 W12,5 | W0,6 | W8,7 W12,7
PE0_WEIGHTS = [(0, 0), (8, 0), (12, 0), (4, 1), (0, 2), (12, 2), (0, 4), (4, 4), (0, 5), (12, 5),
               (0, 6), (8, 7), (12, 7)]
PE0_RELATIVE_ROW_INDEX = [0, 1, 0, 1, 0, 2, 0, 0, 0, 2, 0, 2, 0]
PE0_COLUMN_POINTER = [0, 3, 4, 6, 6, 8, 10, 11, 13]


def figure3_layer():
    codes = np.zeros((16, 8), dtype=np.int64)
    for k, (row, col) in enumerate(PE0_WEIGHTS):
        codes[row, col] = 1 + k % 15
    rng = np.random.default_rng(3)
    other_rows = np.array([r for r in range(16) if r % 4])
    codes[other_rows] = (rng.random((12, 8)) < 0.4) * rng.integers(1, 16, (12, 8))
    return IntLayer(codes=codes, codebook=np.arange(16) * 3, bias=np.zeros(16, dtype=np.int64),
                    relu=True, weight_frac=0)


def test_figure3_relative_indices_and_column_pointers():
    layer = figure3_layer()
    image = build_image([layer], EngineParams(n_pe=4, idx_bits=4, rel_bits=4))
    pe0 = image.pes[0]
    assert pe0.z.tolist() == PE0_RELATIVE_ROW_INDEX
    assert pe0.ptr.tolist() == PE0_COLUMN_POINTER
    assert pe0.v.tolist() == [layer.codes[r, c] for r, c in PE0_WEIGHTS]


def test_pointers_are_absolute_across_layers_and_biases_fill_slots():
    rng = np.random.default_rng(0)
    a = IntLayer(codes=rng.integers(0, 4, (5, 6)), codebook=np.array([0, 1, 2, 3]),
                 bias=np.arange(5), relu=True, weight_frac=0)
    b = IntLayer(codes=rng.integers(0, 4, (3, 5)), codebook=np.array([0, -1, -2, -3]),
                 bias=np.array([7, 8, 9]), relu=False, weight_frac=1)
    image = build_image([a, b], EngineParams(n_pe=2, idx_bits=2, rel_bits=2))
    l0, l1 = image.layers
    assert (l0.ptr_base, l1.ptr_base) == (0, 7) and (l0.bias_base, l1.bias_base) == (0, 3)
    assert l1.codebook_base == 4
    for p, pe in enumerate(image.pes):
        assert pe.ptr[l1.ptr_base] == pe.ptr[l0.ptr_base + l0.cols]  # layer 1 starts where 0 ended
        assert len(pe.bias) == 3 + 2
    assert image.pes[1].bias.tolist() == [1, 3, 0, 8, 0]  # PE1: rows 1, 3 | row 1; unused slots 0


@settings(max_examples=60, deadline=None)
@given(n_pe=st.integers(1, 6), rel_bits=st.integers(1, 4), seed=st.integers(0, 2**31),
       shape=st.tuples(st.integers(1, 13), st.integers(1, 9), st.integers(1, 7)))
def test_golden_decode_is_the_original_matrix(n_pe, rel_bits, seed, shape):
    rng = np.random.default_rng(seed)
    params = EngineParams(n_pe=n_pe, idx_bits=3, rel_bits=rel_bits, act_bits=8, act_frac=2)
    sizes = [shape[1], shape[0], shape[2]]
    layers = []
    for rows, cols in zip(sizes[1:], sizes[:-1]):
        density = rng.random()
        codes = (rng.random((rows, cols)) < density) * rng.integers(1, 8, (rows, cols))
        codebook = np.r_[0, rng.integers(-20, 20, 7)]
        layers.append(IntLayer(codes, codebook, rng.integers(-50, 50, rows), relu=True, weight_frac=2))
    image = build_image(layers, params)
    for l, layer in enumerate(layers):
        assert np.array_equal(golden.decode_weights(image, l), layer.codebook[layer.codes])
        assert np.array_equal(golden.layer_bias(image, l), layer.bias)


@pytest.mark.parametrize("change, message", [
    (dict(codebook=np.array([5, 1, 2, 3])), "entry 0 must be 0"),
    (dict(codes=np.full((3, 4), 4)), "codes must lie in 0..3"),
    (dict(codebook=np.array([0, 1, 2, 999])), "does not fit weight_bits"),
    (dict(bias=np.zeros(2)), "biases for 3 rows"),
])
def test_bad_layers(change, message):
    base = dict(codes=np.ones((3, 4), dtype=int), codebook=np.array([0, 1, 2, 3]),
                bias=np.zeros(3, dtype=int), relu=True, weight_frac=0)
    with pytest.raises(EiexError, match=message):
        build_image([IntLayer(**{**base, **change})], EngineParams(idx_bits=2, weight_bits=8))


def test_pointer_overflow_and_chaining():
    big = IntLayer(np.ones((4, 300), dtype=int), np.array([0, 1]), np.zeros(4, dtype=int), True, 0)
    with pytest.raises(EiexError, match="ptr_bits = 8"):
        build_image([big], EngineParams(n_pe=1, idx_bits=1, ptr_bits=8))
    small = IntLayer(np.ones((2, 5), dtype=int), np.array([0, 1]), np.zeros(2, dtype=int), True, 0)
    with pytest.raises(EiexError, match="5 inputs but the layer before has 4 outputs"):
        build_image([big, small], EngineParams(n_pe=1, idx_bits=1))


@settings(max_examples=40, deadline=None)
@given(idx_bits=st.integers(1, 8), rel_bits=st.integers(1, 8), per_word=st.integers(1, 12),
       count=st.integers(0, 60), seed=st.integers(0, 2**31))
def test_spmat_word_packing_follows_the_spec(idx_bits, rel_bits, per_word, count, seed):
    """Entry k of a word sits at bits [k*E, (k+1)*E); unused slots are 0; unpacking inverts it
    (words up to 192 bits wide, so both the uint64 and the Python-int paths run)."""
    from eiex.sw.images.eie.image import pack_entries, unpack_entries

    params = EngineParams(idx_bits=idx_bits, rel_bits=rel_bits, entries_per_word=per_word)
    e = params.entry_bits
    entries = np.random.default_rng(seed).integers(0, 2**e, count)
    words = pack_entries(entries, params)
    assert len(words) == max(1, -(-count // per_word))
    expected = [0] * len(words)
    for i, value in enumerate(entries.tolist()):
        expected[i // per_word] |= value << ((i % per_word) * e)
    assert words == expected
    assert unpack_entries(words, params, count).tolist() == entries.tolist()
