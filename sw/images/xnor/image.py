"""The XNOR image in memory: binarized layers, their folding, and the packing of their memories.

The meaning is ``shared/spec/xnor-image.md``; section numbers below refer to it. A layer keeps its
weights as an ``(M, K)`` matrix of +1/-1 and its thresholds as integers; :func:`pack_weights` and
:func:`pack_thresholds` lay them out as the per-PE memories of section 4, and
:func:`unpack_weights` and :func:`unpack_thresholds` are their exact inverses.

Any positive ``pe`` and ``simd`` are valid, as section 4 allows: with ``pe > out_features``
(``NF = 1``) PEs ``M .. P - 1`` hold only padding rows, with ``simd > in_features`` (``SF = 1``)
lanes ``K .. S - 1`` only padding columns, all of whose bits are 0.

Policy beyond the spec: ``thr_bits`` is 2 to 64 in every layer; the output layer has no thresholds,
so there it is unused (the exporter writes 2, the minimum) but still a valid width, as the engine's
layer geometry wants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from eiex.errors import EiexError

FORMAT = "eiex-xnor-image"
VERSION = 1
KINDS = ("hidden", "output")
MAX_THR_BITS = 64


def memory_name(l: int, p: int, kind: str) -> str:
    """Section 4: ``l{l}.pe{p}.weights`` or ``l{l}.pe{p}.thresholds``."""
    return f"l{l}.pe{p}.{kind}"


def signed_bits(values) -> int:
    """The smallest two's complement width (at least 2) that holds every value."""
    values = np.asarray(values)
    if values.size == 0:
        return 2
    lo, hi = min(int(values.min()), 0), max(int(values.max()), 0)
    return max(2, hi.bit_length() + 1, (-lo - 1).bit_length() + 1)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_geometry(name: str, in_features, out_features, pe, simd, kind, thr_bits) -> None:
    """Section 3: one layer-table row, on its own (the K chain is :class:`XnorImage`'s)."""
    if not isinstance(name, str) or not name:
        raise EiexError(f"layer name must be a non-empty string, not {name!r}")
    where = f"layer {name}"
    for field, value in (("in_features", in_features), ("out_features", out_features), ("pe", pe), ("simd", simd)):
        if not _is_int(value) or value < 1:
            raise EiexError(f"{where}: {field} must be a positive integer, not {value!r}")
    if kind not in KINDS:
        raise EiexError(f"{where}: kind {kind!r} is not 'hidden' or 'output'")
    if not _is_int(thr_bits) or not 2 <= thr_bits <= MAX_THR_BITS:
        raise EiexError(f"{where}: thr_bits must be an integer from 2 to {MAX_THR_BITS}, not {thr_bits!r}")


def check_layer_chain(layers) -> None:
    """Section 3 across layers: at least one, unique names, ``K == M`` of the layer before, only the
    last layer ``output``. ``layers`` are anything with the layer-table attributes."""
    if not layers:
        raise EiexError("an XNOR image needs at least one layer")
    names = set()
    for l, layer in enumerate(layers):
        if layer.name in names:
            raise EiexError(f"two layers are named {layer.name}")
        names.add(layer.name)
        if l and layer.in_features != layers[l - 1].out_features:
            prev = layers[l - 1]
            raise EiexError(f"layer {layer.name} has in_features {layer.in_features} but {prev.name} has "
                            f"out_features {prev.out_features}")
        last = l == len(layers) - 1
        if layer.kind == "output" and not last:
            raise EiexError(f"layer {layer.name} is an output layer but only the last layer may be")
        if last and layer.kind != "output":
            raise EiexError(f"the last layer {layer.name} must be an output layer, not {layer.kind!r}")


@dataclass(eq=False)
class XnorLayer:
    """Section 3: one binarized layer with its folding and contents.

    Attributes
    ----------
    weights : np.ndarray
        int8 ``(out_features, in_features)`` of +1/-1.
    thresholds : np.ndarray or None
        int64 ``(out_features,)`` for a hidden layer (``y = 1`` iff ``acc >= T``), None for the
        output layer.
    """

    name: str
    in_features: int
    out_features: int
    pe: int
    simd: int
    kind: str
    thr_bits: int
    weights: np.ndarray
    thresholds: np.ndarray | None = None

    def __post_init__(self):
        check_geometry(self.name, self.in_features, self.out_features, self.pe, self.simd, self.kind, self.thr_bits)
        where = f"layer {self.name}"
        w = np.asarray(self.weights)
        if w.shape != (self.out_features, self.in_features):
            raise EiexError(f"{where}: weights have shape {w.shape}, expected {(self.out_features, self.in_features)} "
                            f"(out_features, in_features)")
        if not np.issubdtype(w.dtype, np.number):
            raise EiexError(f"{where}: weights must be numbers +1 or -1, not {w.dtype}")
        bad = np.argwhere((w != 1) & (w != -1))
        if bad.size:
            r, c = bad[0]
            raise EiexError(f"{where}: weights must be +1 or -1, found {w[r, c]} at row {r}, column {c}")
        self.weights = w.astype(np.int8)
        if self.kind == "output":
            if self.thresholds is not None:
                raise EiexError(f"{where}: an output layer has no thresholds")
            return
        if self.thresholds is None:
            raise EiexError(f"{where}: a hidden layer needs thresholds")
        t = np.asarray(self.thresholds)
        if t.shape != (self.out_features,):
            raise EiexError(f"{where}: thresholds have shape {t.shape}, expected ({self.out_features},)")
        if not np.issubdtype(t.dtype, np.integer):
            raise EiexError(f"{where}: thresholds must be integers, not {t.dtype}")
        lo, hi = -(1 << (self.thr_bits - 1)), (1 << (self.thr_bits - 1)) - 1
        bad = np.flatnonzero((t < lo) | (t > hi))
        if bad.size:
            r = int(bad[0])
            raise EiexError(f"{where}: threshold {int(t[r])} of row {r} does not fit thr_bits {self.thr_bits} "
                            f"(signed, {lo} .. {hi})")
        self.thresholds = t.astype(np.int64)

    @property
    def nf(self) -> int:
        """``NF = ceil(M / P)``: row folds."""
        return math.ceil(self.out_features / self.pe)

    @property
    def sf(self) -> int:
        """``SF = ceil(K / S)``: column folds."""
        return math.ceil(self.in_features / self.simd)

    def to_json(self) -> dict:
        """The layer-table row of the manifest (section 3)."""
        return {"name": self.name, "in_features": self.in_features, "out_features": self.out_features,
                "pe": self.pe, "simd": self.simd, "kind": self.kind, "thr_bits": self.thr_bits}


@dataclass(eq=False)
class XnorImage:
    """A whole image (sections 2, 3 and 6): layers in execution order, input threshold, output scores.

    Attributes
    ----------
    input_threshold : float
        Input bit ``c`` is 1 when the raw value ``>= input_threshold``.
    output_scale, output_bias : np.ndarray
        float64 ``(M_last,)``: ``score = scale * y + bias``.
    """

    layers: list[XnorLayer]
    input_threshold: float
    output_scale: np.ndarray
    output_bias: np.ndarray

    def __post_init__(self):
        for l, layer in enumerate(self.layers):
            if not isinstance(layer, XnorLayer):
                raise EiexError(f"layer {l} is a {type(layer).__name__}, not an XnorLayer")
        check_layer_chain(self.layers)
        t = self.input_threshold
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, float, np.integer, np.floating)) \
                or not math.isfinite(t):
            raise EiexError(f"input_threshold must be a finite number, not {t!r}")
        self.input_threshold = float(t)
        m = self.outputs
        for field in ("output_scale", "output_bias"):
            value = np.asarray(getattr(self, field))
            real = np.issubdtype(value.dtype, np.number) and not np.issubdtype(value.dtype, np.complexfloating)
            if value.shape != (m,) or not real:
                raise EiexError(f"{field} must be {m} real numbers, not {value.dtype} {value.shape}")
            if not np.all(np.isfinite(value)):
                raise EiexError(f"{field} contains NaN or infinite values")
            setattr(self, field, value.astype(np.float64))

    @property
    def inputs(self) -> int:
        return self.layers[0].in_features

    @property
    def outputs(self) -> int:
        return self.layers[-1].out_features


# ---- packing (section 4)

def bits_to_words(bits: np.ndarray) -> list[int]:
    """Rows of bits ``(depth, width)`` as words, bit ``i`` of a word from column ``i``."""
    packed = np.packbits(bits, axis=1, bitorder="little")  # byte j holds bits 8j .. 8j+7
    n = packed.shape[1]
    if n <= 8:  # numpy's fast path: one uint64 per word
        wide = np.zeros((len(packed), 8), dtype=np.uint8)
        wide[:, :n] = packed
        return wide.view("<u8")[:, 0].tolist()
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def _words_to_bits(words: list[int], width: int) -> np.ndarray:
    """The inverse of :func:`bits_to_words`: ``(len(words), width)`` uint8 bits."""
    n = -(-width // 8)
    if n <= 8:
        raw = np.array(words, dtype="<u8").reshape(-1).view(np.uint8).reshape(-1, 8)
    else:
        raw = np.frombuffer(b"".join(w.to_bytes(n, "little") for w in words), dtype=np.uint8).reshape(-1, n)
    return np.unpackbits(raw, axis=1, bitorder="little", count=width)


def pack_weights(layer: XnorLayer) -> list[list[int]]:
    """Per PE ``p``, the ``NF * SF`` words of ``l{l}.pe{p}.weights``: word ``nf * SF + sf``, bit ``i``
    is the weight of row ``nf * P + p``, column ``sf * S + i`` (1 for +1); padding bits (rows
    ``>= M``, columns ``>= K``, whole PEs when ``P > M`` and whole lanes when ``S > K``) are 0."""
    p, s, nf, sf = layer.pe, layer.simd, layer.nf, layer.sf
    bits = np.zeros((nf * p, sf * s), dtype=np.uint8)
    bits[: layer.out_features, : layer.in_features] = layer.weights > 0
    lanes = bits.reshape(nf, p, sf, s).transpose(1, 0, 2, 3).reshape(p, nf * sf, s)
    return [bits_to_words(lanes[q]) for q in range(p)]


def unpack_weights(words: list[list[int]], out_features: int, in_features: int, pe: int, simd: int,
                   layer_index: int = 0) -> np.ndarray:
    """The int8 ``(M, K)`` +1/-1 weights from every PE's weight words: the inverse of :func:`pack_weights`.

    Raises an :class:`EiexError` naming the memory when a PE's depth is wrong, a word is wider than
    ``simd`` bits or a padding bit is 1.
    """
    nf, sf = math.ceil(out_features / pe), math.ceil(in_features / simd)
    if len(words) != pe:
        raise EiexError(f"layer {layer_index}: {len(words)} weight memories, expected pe = {pe}")
    for q, ws in enumerate(words):
        name = memory_name(layer_index, q, "weights")
        if len(ws) != nf * sf:
            raise EiexError(f"{name}: {len(ws)} words, expected NF * SF = {nf} * {sf} = {nf * sf}")
        if ws and (min(ws) < 0 or max(ws) >> simd):
            raise EiexError(f"{name}: a word does not fit simd = {simd} bits")
    bits = np.stack([_words_to_bits(ws, simd) for ws in words])  # (P, NF * SF, S)
    full = bits.reshape(pe, nf, sf, simd).transpose(1, 0, 2, 3).reshape(nf * pe, sf * simd)
    padding = full.copy()
    padding[:out_features, :in_features] = 0
    if padding.any():
        r, c = (int(i) for i in np.argwhere(padding)[0])
        raise EiexError(f"{memory_name(layer_index, r % pe, 'weights')}: padding bit {c % simd} of word "
                        f"{(r // pe) * sf + c // simd} is 1 (row {r}, column {c} of a {out_features} x "
                        f"{in_features} layer); padding bits must be 0")
    return np.where(full[:out_features, :in_features] == 1, 1, -1).astype(np.int8)


def pack_thresholds(layer: XnorLayer) -> list[list[int]]:
    """Per PE ``p``, the ``NF`` words of ``l{l}.pe{p}.thresholds``: the threshold of row ``nf * P + p``
    at address ``nf``, two's complement masked to ``thr_bits``; padding rows hold 0."""
    if layer.thresholds is None:
        raise EiexError(f"layer {layer.name}: an output layer has no threshold memories")
    t = np.zeros(layer.nf * layer.pe, dtype=np.int64)
    t[: layer.out_features] = layer.thresholds
    mask = np.uint64((1 << layer.thr_bits) - 1)
    words = t.astype(np.uint64) & mask  # int64 -> uint64 keeps the two's complement bits
    return words.reshape(layer.nf, layer.pe).T.tolist()


def unpack_thresholds(words: list[list[int]], out_features: int, pe: int, thr_bits: int,
                      layer_index: int = 0) -> np.ndarray:
    """The int64 ``(M,)`` signed thresholds: the inverse of :func:`pack_thresholds` (padding dropped)."""
    nf = math.ceil(out_features / pe)
    if len(words) != pe:
        raise EiexError(f"layer {layer_index}: {len(words)} threshold memories, expected pe = {pe}")
    for q, ws in enumerate(words):
        name = memory_name(layer_index, q, "thresholds")
        if len(ws) != nf:
            raise EiexError(f"{name}: {len(ws)} words, expected NF = {nf}")
        if ws and (min(ws) < 0 or max(ws) >> thr_bits):
            raise EiexError(f"{name}: a word does not fit thr_bits = {thr_bits} bits")
    u = np.array(words, dtype=np.uint64).reshape(pe, nf).T.reshape(-1)[:out_features]
    shift = np.uint64(64 - thr_bits)  # sign extension: the sign bit to bit 63, then an arithmetic shift back
    return (u << shift).view(np.int64) >> shift.astype(np.int64)
