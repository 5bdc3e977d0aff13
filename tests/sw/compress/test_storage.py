"""Storage accounting against hand-computed examples."""

import numpy as np

from eiex.sw.compress.storage import ModelStorage, account_layer


def small_layer():
    # (out=4, in=3); column 0: rows 0 and 3, column 1 empty, column 2: row 3
    codes = np.zeros((4, 3), dtype=int)
    codes[0, 0], codes[3, 0], codes[3, 2] = 1, 2, 1
    return codes


def test_hand_computed_pq_and_pqh():
    s = account_layer("fc", small_layer(), bits=2, index_bits=2, n_biases=4, huffman_max_len=4)
    # entries (v, z): (1, 0) (2, 2) | | (1, 3): 3 entries, no fillers
    assert (s.weights, s.kept, s.entries) == (12, 3, 3)
    assert s.pointer_bits == 4 * 2  # 4 pointers, values up to 3 need 2 bits
    assert s.codebook_bits == 3 * 32 and s.bias_bits == 4 * 32
    assert s.dense_bits == (12 + 4) * 32
    assert s.pq_bits == 3 * (2 + 2) + 8 + 96 + 128
    # weights 1,2,1: two symbols, one bit each; indices 0,2,3: lengths 1,2,2
    assert s.weight_huffman_bits == 3 and s.index_huffman_bits == 5
    # tables: 4 symbols x 3 bits (lengths up to 4) per stream
    assert s.huffman_table_bits == 2 * 4 * 3
    assert s.pqh_bits == 3 + 5 + 24 + 8 + 96 + 128


def test_fillers_are_stored_entries():
    s = account_layer("fc", small_layer(), bits=2, index_bits=1, n_biases=4, huffman_max_len=4)
    # index 1 bit: (1,0) | (0,1) (2,0) | | (0,1) (1,1): gaps 2 and 3 each need a filler
    assert s.entries == 5 and s.kept == 3
    assert s.pq_bits == 5 * (2 + 1) + 4 * 3 + 96 + 128


def test_conv_weights_are_stored_as_out_by_taps():
    codes = np.zeros((2, 3, 2, 2), dtype=int)
    codes[1, 2, 1, 1] = 1
    s = account_layer("conv", codes, bits=1, index_bits=1, n_biases=2, huffman_max_len=2)
    assert s.weights == 24 and s.entries == 1
    assert s.pointer_bits == 13 * 1  # 12 columns (3 x 2 x 2 taps) + 1 pointers, 1 bit each


def test_model_totals_and_ratio():
    a = account_layer("a", small_layer(), 2, 2, 4, 4)
    b = account_layer("b", np.ones((2, 2), dtype=int), 1, 1, 2, 2)
    m = ModelStorage([a, b])
    assert m.dense_bytes == (a.dense_bits + b.dense_bits) // 8
    assert m.pq_bytes == -(-(a.pq_bits + b.pq_bits) // 8)
    assert m.kept_fraction == (3 + 4) / (12 + 4)
    assert m.total_row()["share_pq_percent"] == 100 * (a.pq_bits + b.pq_bits) / (a.dense_bits + b.dense_bits)
