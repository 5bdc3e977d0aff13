"""Canonical, length-limited Huffman coding of small integer alphabets.

Used for the storage accounting of weight-code and relative-index streams (exact
bit counts) and for writing Huffman-coded memory images.  A code is fully
described by its list of code lengths: codes are canonical as in RFC 1951
section 3.2.2 (ordered by length, then by symbol value), every code is written
most significant bit first, and a single used symbol gets a 1-bit code.

Loops in this module run over symbols of the alphabet or over bit positions,
never over the data stream.
"""

from __future__ import annotations

import dataclasses
from itertools import islice

import numpy as np
from bitarray import bitarray
from bitarray.util import canonical_decode

from eiex.errors import EiexError

__all__ = ["MAX_CODE_LEN", "HuffmanCode", "canonical_codes", "code_lengths"]

#: Longest code that `canonical_codes` and `HuffmanCode` accept; the limit of
#: bitarray's canonical decoder (its count table holds lengths 0..31).
MAX_CODE_LEN = 31

# Symbols per chunk in `HuffmanCode.encode`; bounds the temporary bit matrix
# (chunk x 32 bytes) without looping per symbol.
_ENCODE_CHUNK = 1 << 18


def _integer_vector(values, what: str) -> np.ndarray:
    """Return `values` as a 1-D int64 array of non-negative integers, or raise."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise EiexError(f"{what} must be a 1-D array, got {arr.ndim} dimensions")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind == "f":
        if not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise EiexError(f"{what} must hold integers, got non-integer values")
    elif arr.dtype.kind not in "iu":
        raise EiexError(f"{what} must hold integers, got dtype {arr.dtype}")
    if arr.min() < 0:
        raise EiexError(f"{what} must be non-negative, got {arr.min()}")
    if arr.max() > np.iinfo(np.int64).max:
        raise EiexError(f"{what} must fit in int64, got {arr.max()}")
    return arr.astype(np.int64)


def code_lengths(counts, max_len: int) -> np.ndarray:
    """Optimal code lengths under a length limit (package-merge).

    Parameters
    ----------
    counts : array_like of int, shape (n_symbols,)
        Non-negative frequency of each symbol (index = symbol).
    max_len : int
        Longest allowed code length, at least 1.

    Returns
    -------
    numpy.ndarray of int64, shape (n_symbols,)
        Code lengths minimizing ``sum(counts * lengths)`` subject to
        ``lengths <= max_len`` and Kraft's inequality; 0 for symbols with
        count 0.  A single used symbol gets length 1.

    Raises
    ------
    EiexError
        If `counts` is not a 1-D array of non-negative integers, `max_len` < 1,
        or ``2**max_len`` is smaller than the number of used symbols.

    Notes
    -----
    Larmore & Hirschberg's package-merge ("coin collector") algorithm, which is
    exactly optimal.  Ties are broken by symbol value, so the result is
    deterministic.
    """
    counts = _integer_vector(counts, "counts")
    max_len = int(max_len)
    if max_len < 1:
        raise EiexError(f"max_len must be at least 1, got {max_len}")
    lengths = np.zeros(counts.size, dtype=np.int64)
    used = np.flatnonzero(counts)
    n = used.size
    if n == 0:
        return lengths
    if n == 1:
        lengths[used] = 1
        return lengths
    if (n - 1).bit_length() > max_len:  # ceil(log2(n)) > max_len, i.e. 2**max_len < n
        raise EiexError(f"{n} used symbols do not fit in codes of at most {max_len} bits")

    # Leaves sorted by (count, symbol).  An optimal tree is never deeper than
    # n - 1, so deeper levels would only repeat the unconstrained solution.
    order = used[np.lexsort((used, counts[used]))]
    levels = min(max_len, n - 1)
    weights = counts[order]
    # Package weights reach at most levels * total; fall back to Python ints
    # rather than risk int64 overflow.
    if int(weights.sum()) * levels >= 1 << 62:
        weights = weights.astype(object)

    # Build the lists from the deepest level up.  Each list is truncated to its
    # first 2n - 2 items: no level ever contributes more items to the solution.
    keep = 2 * n - 2
    is_leaf_per_level = []
    current = weights[:keep]
    is_leaf_per_level.append(np.ones(current.size, dtype=bool))
    for _ in range(levels - 1):
        pairs = current.size // 2
        packages = current[0 : 2 * pairs : 2] + current[1 : 2 * pairs : 2]
        merged = np.concatenate([weights, packages])
        idx = np.argsort(merged, kind="stable")[:keep]  # leaves first on ties
        current = merged[idx]
        is_leaf_per_level.append(idx < n)

    # Take the 2n - 2 cheapest items of the top level and walk back down: each
    # selected leaf adds one bit to its symbol, each selected package selects
    # the two items of the deeper level it was made from.
    take = keep
    for is_leaf in reversed(is_leaf_per_level):
        selected_leaves = int(np.count_nonzero(is_leaf[:take]))
        lengths[order[:selected_leaves]] += 1
        take = 2 * (take - selected_leaves)
    return lengths


def _validate_lengths(lengths, limit: int) -> np.ndarray:
    """Return `lengths` as int64 after checking range and Kraft's inequality."""
    lengths = _integer_vector(lengths, "code lengths")
    if lengths.size and lengths.max() > limit:
        raise EiexError(f"code length {lengths.max()} exceeds the limit of {limit} bits")
    used = lengths[lengths > 0]
    if used.size:
        # sum(2**-l) <= 1, in exact integer arithmetic.
        kraft = int(np.sum(np.left_shift(1, limit - used, dtype=np.int64)))
        if kraft > 1 << limit:
            raise EiexError(
                f"code lengths violate Kraft's inequality: sum(2**-len) = {kraft / (1 << limit):g} > 1"
            )
    return lengths


def _canonical_order(lengths: np.ndarray) -> np.ndarray:
    """Used symbols sorted by (length, symbol value)."""
    used = np.flatnonzero(lengths)
    return used[np.lexsort((used, lengths[used]))]


def canonical_codes(lengths) -> np.ndarray:
    """Canonical codes of RFC 1951 section 3.2.2.

    Parameters
    ----------
    lengths : array_like of int, shape (n_symbols,)
        Code length of each symbol, 0 for unused symbols, at most
        `MAX_CODE_LEN`.

    Returns
    -------
    numpy.ndarray of int64, shape (n_symbols,)
        Code of each symbol as an integer whose `lengths[s]` low bits are the
        code, most significant bit first; 0 for unused symbols.

    Raises
    ------
    EiexError
        If the lengths are negative, too long, or violate Kraft's inequality.
    """
    lengths = _validate_lengths(lengths, MAX_CODE_LEN)
    codes = np.zeros(lengths.size, dtype=np.int64)
    if not lengths.any():
        return codes
    top = int(lengths.max())
    bl_count = np.bincount(lengths, minlength=top + 1)
    bl_count[0] = 0
    next_code = np.zeros(top + 1, dtype=np.int64)
    code = 0
    for bits in range(1, top + 1):
        code = (code + int(bl_count[bits - 1])) << 1
        next_code[bits] = code
    # Within one length, codes are consecutive in symbol order.
    order = _canonical_order(lengths)
    ordered_lengths = lengths[order]
    first_of_length = np.searchsorted(ordered_lengths, ordered_lengths, side="left")
    rank = np.arange(order.size) - first_of_length
    codes[order] = next_code[ordered_lengths] + rank
    return codes


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, dtype=np.int64, copy=True)
    arr.setflags(write=False)
    return arr


@dataclasses.dataclass(frozen=True, eq=False)
class HuffmanCode:
    """A canonical Huffman code over symbols ``0 .. len(lengths) - 1``.

    Parameters
    ----------
    lengths : numpy.ndarray of int
        Code length per symbol, 0 for symbols without a code.
    max_len : int
        Declared length limit, 1 .. `MAX_CODE_LEN`; sets the width of each
        entry of the stored length table.

    Attributes
    ----------
    codes : numpy.ndarray of int64
        Canonical code per symbol (see `canonical_codes`).
    """

    lengths: np.ndarray
    max_len: int
    codes: np.ndarray = dataclasses.field(init=False, repr=False)
    # Tables for bitarray's canonical decoder: symbols per length 0..top, and
    # the symbols in canonical order.
    _decode_count: list = dataclasses.field(init=False, repr=False)
    _decode_symbols: list = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        max_len = int(self.max_len)
        if not 1 <= max_len <= MAX_CODE_LEN:
            raise EiexError(f"max_len must be in 1..{MAX_CODE_LEN}, got {max_len}")
        lengths = _validate_lengths(self.lengths, max_len)
        object.__setattr__(self, "max_len", max_len)
        object.__setattr__(self, "lengths", _readonly(lengths))
        object.__setattr__(self, "codes", _readonly(canonical_codes(lengths)))
        top = int(lengths.max()) if lengths.size else 0
        count = np.bincount(lengths, minlength=top + 1)
        count[0] = 0
        object.__setattr__(self, "_decode_count", [int(c) for c in count])
        object.__setattr__(self, "_decode_symbols", [int(s) for s in _canonical_order(lengths)])

    def __eq__(self, other):
        if not isinstance(other, HuffmanCode):
            return NotImplemented
        return self.max_len == other.max_len and np.array_equal(self.lengths, other.lengths)

    def __hash__(self):
        return hash((self.max_len, self.lengths.tobytes()))

    @property
    def n_symbols(self) -> int:
        """Size of the alphabet."""
        return int(self.lengths.size)

    @classmethod
    def fit(cls, symbols, n_symbols: int, max_len: int) -> HuffmanCode:
        """Optimal length-limited code for the symbol frequencies of `symbols`.

        Parameters
        ----------
        symbols : array_like of int
            Data stream (any shape; only the frequencies matter), values in
            ``[0, n_symbols)``.
        n_symbols : int
            Size of the alphabet.
        max_len : int
            Longest allowed code.
        """
        n_symbols = int(n_symbols)
        if n_symbols < 0:
            raise EiexError(f"n_symbols must be non-negative, got {n_symbols}")
        flat = np.asarray(symbols).reshape(-1)
        flat = _check_symbols(flat, n_symbols)
        counts = np.bincount(flat, minlength=n_symbols)
        return cls(code_lengths(counts, max_len), max_len)

    @classmethod
    def from_lengths(cls, lengths, max_len: int) -> HuffmanCode:
        """Code from a stored table of code lengths (validated)."""
        return cls(np.asarray(lengths), max_len)

    def _stream(self, symbols) -> np.ndarray:
        symbols = np.asarray(symbols)
        if symbols.ndim != 1:
            raise EiexError(f"symbol stream must be a 1-D array, got {symbols.ndim} dimensions")
        symbols = _check_symbols(symbols, self.n_symbols)
        if symbols.size:
            missing = self.lengths[symbols] == 0
            if missing.any():
                bad = int(symbols[np.argmax(missing)])
                raise EiexError(f"symbol {bad} has no Huffman code (it did not occur when the code was built)")
        return symbols

    def encoded_bits(self, symbols) -> int:
        """Exact number of bits `encode` produces for `symbols`."""
        symbols = self._stream(symbols)
        return int(self.lengths[symbols].sum())

    def encode(self, symbols) -> bitarray:
        """Bit stream of `symbols`: codes concatenated in order, each MSB first.

        Raises
        ------
        EiexError
            If a symbol is out of range or has no code.
        """
        symbols = self._stream(symbols)
        columns = np.arange(32, dtype=np.int64)
        pieces = []
        for start in range(0, symbols.size, _ENCODE_CHUNK):
            chunk = symbols[start : start + _ENCODE_CHUNK]
            lens = self.lengths[chunk]
            # Left-align each code in a big-endian 32-bit word, unpack to a
            # (chunk, 32) bit matrix and keep the first lens[i] bits per row.
            words = (self.codes[chunk] << (32 - lens)).astype(">u4")
            matrix = np.unpackbits(words.view(np.uint8).reshape(-1, 4), axis=1)
            pieces.append(matrix[columns < lens[:, None]])
        bits = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint8)
        out = bitarray(endian="big")
        out.frombytes(np.packbits(bits).tobytes())
        del out[bits.size :]
        return out

    def decode(self, bits, count: int, nbits: int | None = None) -> np.ndarray:
        """Decode exactly `count` symbols from the start of a bit stream.

        Parameters
        ----------
        bits : bitarray or bytes-like
            The stream; bytes are read MSB first.  Bits after the `count`-th
            symbol are ignored.
        count : int
            Number of symbols to decode.
        nbits : int, optional
            Valid bits when `bits` is bytes-like (default: all of them).

        Returns
        -------
        numpy.ndarray of int64, shape (count,)

        Raises
        ------
        EiexError
            If the stream ends early or holds a bit pattern that is no code.
        """
        count = int(count)
        if count < 0:
            raise EiexError(f"count must be non-negative, got {count}")
        stream = _as_bitarray(bits, nbits)
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        if not self._decode_symbols:
            raise EiexError(f"cannot decode {count} symbols with an empty Huffman code")
        decoder = canonical_decode(stream, self._decode_count, self._decode_symbols)
        try:
            return np.fromiter(islice(decoder, count), dtype=np.int64, count=count)
        except ValueError as exc:
            raise EiexError(
                f"Huffman stream of {len(stream)} bits is truncated or invalid: cannot decode {count} symbols ({exc})"
            ) from None

    def table_bits(self) -> int:
        """Bits to store the code as its table of lengths.

        ``n_symbols * ceil(log2(max_len + 1))``: one fixed-width entry per
        symbol.
        """
        return self.n_symbols * self.max_len.bit_length()


def _check_symbols(symbols: np.ndarray, n_symbols: int) -> np.ndarray:
    """Return `symbols` as int64 after checking dtype and range [0, n_symbols)."""
    if symbols.size == 0:
        return np.zeros(symbols.shape, dtype=np.int64)
    if symbols.dtype.kind not in "iu":
        raise EiexError(f"symbols must be integers, got dtype {symbols.dtype}")
    lo, hi = symbols.min(), symbols.max()
    if lo < 0 or hi >= n_symbols:
        bad = lo if lo < 0 else hi
        raise EiexError(f"symbol {bad} is outside the alphabet 0..{n_symbols - 1}")
    return symbols.astype(np.int64, copy=False)


def _as_bitarray(bits, nbits: int | None) -> bitarray:
    """View a bitarray or bytes-like object (MSB first) as a bitarray of `nbits` bits."""
    if isinstance(bits, bitarray):
        if nbits is None:
            return bits
        stream = bits
    elif isinstance(bits, (bytes, bytearray, memoryview)):
        stream = bitarray(endian="big")
        stream.frombytes(bytes(bits))
    else:
        raise EiexError(f"bits must be a bitarray or bytes, got {type(bits).__name__}")
    if nbits is None:
        return stream
    nbits = int(nbits)
    if not 0 <= nbits <= len(stream):
        raise EiexError(f"nbits must be in 0..{len(stream)}, got {nbits}")
    return stream[:nbits]
