"""What a compressed network takes to store, counted bit by bit as Deep Compression stores it.

Per layer (a convolution as its ``(out, in*kh*kw)`` matrix) the weights are kept as sparse
columns (:mod:`eiex.sw.images.eie.sparse`): every entry holds a ``bits``-wide weight code and an
``index_bits``-wide relative row index, filler entries included. Beside the entries a layer
stores its column pointers (``cols + 1`` of them, each wide enough for the entry count), its
codebook (``2**bits - 1`` float32 values; code 0 means zero and is not stored) and its biases
(float32). With Huffman coding (P+Q+H) the weight codes and the indices are two streams, each with
its own canonical code, whose table of code lengths is stored too. The dense original is every
weight and bias in float32.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from eiex.sw.compress.huffman import HuffmanCode
from eiex.sw.images.eie.sparse import encode_columns

FLOAT_BITS = 32


@dataclass(frozen=True)
class LayerStorage:
    name: str
    weights: int  # weights of the dense layer
    kept: int  # non-zero weights after pruning
    entries: int  # stored sparse entries, fillers included
    bits: int  # weight code width (P+Q)
    index_bits: int  # relative index width (P+Q)
    weight_huffman_bits: int  # the weight-code stream, Huffman-coded
    index_huffman_bits: int  # the index stream, Huffman-coded
    huffman_table_bits: int  # code-length tables of both streams
    pointer_bits: int
    codebook_bits: int
    bias_bits: int
    dense_bits: int

    @property
    def overhead_bits(self) -> int:
        return self.pointer_bits + self.codebook_bits + self.bias_bits

    @property
    def pq_bits(self) -> int:
        return self.entries * (self.bits + self.index_bits) + self.overhead_bits

    @property
    def pqh_bits(self) -> int:
        huffman = self.weight_huffman_bits + self.index_huffman_bits + self.huffman_table_bits
        return huffman + self.overhead_bits

    def table_row(self) -> dict:
        """One row of Deep Compression's Table 2."""
        entries = max(self.entries, 1)
        return {
            "layer": self.name,
            "weights": self.weights,
            "kept_percent": 100.0 * self.kept / self.weights,
            "weight_bits_pq": self.bits,
            "weight_bits_pqh": self.weight_huffman_bits / entries,
            "index_bits_pq": self.index_bits,
            "index_bits_pqh": self.index_huffman_bits / entries,
            "share_pq_percent": 100.0 * self.pq_bits / self.dense_bits,
            "share_pqh_percent": 100.0 * self.pqh_bits / self.dense_bits,
        }

    def to_json(self) -> dict:
        return {**asdict(self), "pq_bits": self.pq_bits, "pqh_bits": self.pqh_bits, **self.table_row()}


def account_layer(
    name: str,
    codes: np.ndarray,
    bits: int,
    index_bits: int,
    n_biases: int,
    huffman_max_len: int,
) -> LayerStorage:
    """Storage of one layer from its weight codes (0 = pruned), as stored and as Huffman-coded."""
    matrix = codes.reshape(codes.shape[0], -1)
    sparse = encode_columns(matrix, index_bits)
    weight_code = HuffmanCode.fit(sparse.v, 2**bits, huffman_max_len)
    index_code = HuffmanCode.fit(sparse.z, 2**index_bits, huffman_max_len)
    pointer_width = max(1, int(sparse.n_entries).bit_length())
    return LayerStorage(
        name=name,
        weights=int(matrix.size),
        kept=int(np.count_nonzero(matrix)),
        entries=sparse.n_entries,
        bits=bits,
        index_bits=index_bits,
        weight_huffman_bits=weight_code.encoded_bits(sparse.v),
        index_huffman_bits=index_code.encoded_bits(sparse.z),
        huffman_table_bits=weight_code.table_bits() + index_code.table_bits(),
        pointer_bits=(matrix.shape[1] + 1) * pointer_width,
        codebook_bits=(2**bits - 1) * FLOAT_BITS,
        bias_bits=n_biases * FLOAT_BITS,
        dense_bits=(matrix.size + n_biases) * FLOAT_BITS,
    )


@dataclass(frozen=True)
class ModelStorage:
    layers: list[LayerStorage]
    #: the dense original's bits when its layers are not these (neurons removed, layers factorized)
    original_bits: int | None = None

    @property
    def dense_bytes(self) -> int:
        bits = sum(l.dense_bits for l in self.layers) if self.original_bits is None else self.original_bits
        return math.ceil(bits / 8)

    @property
    def pq_bytes(self) -> int:
        return math.ceil(sum(l.pq_bits for l in self.layers) / 8)

    @property
    def pqh_bytes(self) -> int:
        return math.ceil(sum(l.pqh_bits for l in self.layers) / 8)

    @property
    def kept_fraction(self) -> float:
        return sum(l.kept for l in self.layers) / sum(l.weights for l in self.layers)

    def total_row(self) -> dict:
        weights = sum(l.weights for l in self.layers)
        entries = max(sum(l.entries for l in self.layers), 1)
        dense_bits = sum(l.dense_bits for l in self.layers) if self.original_bits is None else self.original_bits
        return {
            "layer": "total",
            "weights": weights,
            "kept_percent": 100.0 * self.kept_fraction,
            "weight_bits_pq": sum(l.entries * l.bits for l in self.layers) / entries,
            "weight_bits_pqh": sum(l.weight_huffman_bits for l in self.layers) / entries,
            "index_bits_pq": sum(l.entries * l.index_bits for l in self.layers) / entries,
            "index_bits_pqh": sum(l.index_huffman_bits for l in self.layers) / entries,
            "share_pq_percent": 100.0 * sum(l.pq_bits for l in self.layers) / dense_bits,
            "share_pqh_percent": 100.0 * sum(l.pqh_bits for l in self.layers) / dense_bits,
        }
