"""The EIE image in memory: engine parameters, layer table and every memory's contents.

This is the one representation that the encoder produces, the file writer and loader
(:mod:`eiex.sw.images.eie.files`) serialize, and the golden model and the hardware consume. Its meaning
is ``shared/spec/eie-image.md``; section numbers below refer to it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from eiex.errors import EiexError

FORMAT = "eiex-eie-image"
VERSION = 1
#: the widest weight index an image may have
MAX_IDX_BITS = 12

#: what an engine's MAC does with a weight's code (:mod:`eiex.hw.eie.mac`): multiply by its codebook
#: entry; shift by it (every entry 0 or a signed power of two, :mod:`.powers`); or multiply by the
#: code itself, with no codebook memory (identity codebooks, :mod:`.identity`)
MAC_KINDS = ("multiply", "shift", "index")
DEFAULT_MAC = "multiply"


def check_mac(mac) -> str:
    if mac not in MAC_KINDS:
        raise EiexError(f"mac must be one of {', '.join(MAC_KINDS)}, not {mac!r}")
    return mac


def _check_int(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise EiexError(f"{name} must be an integer from {lo} to {hi}, not {value!r}")


@dataclass(frozen=True)
class EngineParams:
    """Section 1: what an engine is built for and an image is encoded for."""

    n_pe: int = 8
    idx_bits: int = 4
    rel_bits: int = 4
    act_bits: int = 16
    act_frac: int = 8
    weight_bits: int = 16
    bias_bits: int = 32
    ptr_bits: int = 16
    entries_per_word: int = 8

    def __post_init__(self):
        _check_int("n_pe", self.n_pe, 1, 4096)
        _check_int("idx_bits", self.idx_bits, 1, MAX_IDX_BITS)
        _check_int("rel_bits", self.rel_bits, 1, 16)
        _check_int("act_bits", self.act_bits, 2, 32)
        _check_int("act_frac", self.act_frac, 0, self.act_bits - 1)
        _check_int("weight_bits", self.weight_bits, 2, 32)
        _check_int("bias_bits", self.bias_bits, 2, 64)
        _check_int("ptr_bits", self.ptr_bits, 1, 32)
        _check_int("entries_per_word", self.entries_per_word, 1, 64)

    @property
    def entry_bits(self) -> int:
        return self.idx_bits + self.rel_bits

    @property
    def spmat_width(self) -> int:
        return self.entries_per_word * self.entry_bits

    @property
    def codebook_size(self) -> int:
        return 1 << self.idx_bits

    def act_range(self) -> tuple[int, int]:
        return -(1 << (self.act_bits - 1)), (1 << (self.act_bits - 1)) - 1

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EieLayer:
    """Section 5: one row of the layer table."""

    name: str
    rows: int
    cols: int
    relu: bool
    weight_frac: int
    ptr_base: int
    bias_base: int
    codebook_base: int

    def local_rows(self, pe: int, n_pe: int) -> int:
        """``L(l, p)``: how many of this layer's rows PE ``pe`` owns."""
        return max(0, math.ceil((self.rows - pe) / n_pe))

    def slots(self, n_pe: int) -> int:
        """``S_l``: bias slots reserved per PE for this layer."""
        return math.ceil(self.rows / n_pe)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class PeMemories:
    """One PE's memories, decoded: entries as (v, z) pairs, pointers, signed biases."""

    v: np.ndarray  # int64, all layers' entries, layer after layer
    z: np.ndarray  # int64
    ptr: np.ndarray  # int64, sum over layers of cols + 1
    bias: np.ndarray  # int64 signed, sum over layers of S_l

    def spmat_words(self, params: EngineParams) -> list[int]:
        """Section 4: entries packed ``entries_per_word`` to a word, entry k at bits [k*E, (k+1)*E)."""
        return pack_entries((self.z << params.idx_bits) | self.v, params)


def _word_dtype(params: EngineParams):
    """uint64 where a word fits it (numpy's fast path), Python ints otherwise."""
    return np.uint64 if params.spmat_width <= 64 else object


def pack_entries(entries: np.ndarray, params: EngineParams) -> list[int]:
    """Entries (``E``-bit values) into spmat words; unused slots of the last word are 0."""
    e, per_word, dtype = params.entry_bits, params.entries_per_word, _word_dtype(params)
    n_words = max(1, -(-len(entries) // per_word))
    padded = np.zeros(n_words * per_word, dtype=dtype)
    padded[: len(entries)] = np.asarray(entries).astype(dtype)
    shifts = np.array([k * e for k in range(per_word)]).astype(dtype)
    return [int(x) for x in np.bitwise_or.reduce(padded.reshape(n_words, per_word) << shifts, axis=1)]


def unpack_entries(words: list[int], params: EngineParams, count: int) -> np.ndarray:
    """The first ``count`` entries of spmat words, as int64: the inverse of :func:`pack_entries`."""
    e, per_word, dtype = params.entry_bits, params.entries_per_word, _word_dtype(params)
    shifts = np.array([k * e for k in range(per_word)]).astype(dtype)
    mask = np.array((1 << e) - 1).astype(dtype)
    entries = (np.array(words, dtype=dtype)[:, None] >> shifts) & mask
    return entries.reshape(-1)[:count].astype(np.int64)


@dataclass
class EieImage:
    """A whole image (sections 1 to 8): what a board or a simulator loads."""

    engine: EngineParams
    layers: list[EieLayer]
    pes: list[PeMemories]
    codebook: np.ndarray  # int64 signed, n_layers * 2**idx_bits
    input: dict | None = None  # {"pixel_scale", "mean", "std"} (section 7)
    #: per layer, the original index of each row in image order, when rows were permuted for load balance
    row_order: dict[str, list[int]] = field(default_factory=dict)

    @property
    def inputs(self) -> int:
        return self.layers[0].cols

    @property
    def outputs(self) -> int:
        return self.layers[-1].rows

    def layer_entries(self, l: int, pe: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The (v, z) entries of layer ``l`` in PE ``pe`` and its pointers rebased to them."""
        layer = self.layers[l]
        ptr = self.pes[pe].ptr[layer.ptr_base : layer.ptr_base + layer.cols + 1]
        lo, hi = int(ptr[0]), int(ptr[-1])
        return self.pes[pe].v[lo:hi], self.pes[pe].z[lo:hi], ptr - lo

    def layer_codebook(self, l: int) -> np.ndarray:
        base = self.layers[l].codebook_base
        return self.codebook[base : base + self.engine.codebook_size]

    def layer_bias(self, l: int, pe: int) -> np.ndarray:
        layer = self.layers[l]
        return self.pes[pe].bias[layer.bias_base : layer.bias_base + layer.local_rows(pe, self.engine.n_pe)]
