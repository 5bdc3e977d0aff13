"""The XNOR image in memory: binarized layers, their folding, and the packing of their memories.

The meaning is ``shared/spec/xnor-image.md``; section numbers below refer to it. A layer keeps its
weights as an ``(M, K)`` matrix of +1/-1 and its thresholds as integers; :func:`pack_weights` and
:func:`pack_thresholds` lay them out as the per-PE memories of section 4, and
:func:`unpack_weights` and :func:`unpack_thresholds` are their exact inverses.

Any positive ``pe`` and ``simd`` are valid, as section 4 allows: with ``pe > out_features``
(``NF = 1``) PEs ``M .. P - 1`` hold only padding rows, with ``simd > in_features`` (``SF = 1``)
lanes ``K .. S - 1`` only padding columns, all of whose bits are 0.

Version 2 (section 7) adds :class:`XnorConvLayer` (a hidden layer over the ``K = k * k * C``
columns of each ``k x k`` patch, packed exactly like :class:`XnorLayer` with this ``K`` and ``M``)
and :class:`XnorPoolLayer` (no weights, no memories). Every layer class offers ``kind``, ``name``,
``input_size`` and ``output_size`` (bits per image, channels-last for maps); the two with weights
add ``rows`` (``M``), ``columns`` (``K``), ``nf``, ``sf`` and ``positions`` (output positions per
image: ``H_out * W_out`` for a convolution, 1 for a fully connected layer).

Policy beyond the spec: ``thr_bits`` is 2 to 64 in every layer; the output layer has no thresholds,
so there it is unused (the exporter writes 2, the minimum) but still a valid width, as the engine's
layer geometry wants. A map layer may follow a fully connected one when the sizes agree: its bits
are then read as the map in channels-last order, as section 7 defines the flat index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from eiex.errors import EiexError

FORMAT = "eiex-xnor-image"
VERSION = 1
#: version 2 (section 7) adds the map layers ``conv`` and ``pool``; writers use it only when a network has one
MAP_VERSION = 2
KINDS = ("hidden", "output")
MAP_KINDS = ("conv", "pool")
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
    _check_name(name)
    where = f"layer {name}"
    _check_positive(where, (("in_features", in_features), ("out_features", out_features), ("pe", pe), ("simd", simd)))
    if kind not in KINDS:
        raise EiexError(f"{where}: kind {kind!r} is not 'hidden' or 'output'")
    _check_thr_bits(where, thr_bits)


def _check_name(name) -> None:
    if not isinstance(name, str) or not name:
        raise EiexError(f"layer name must be a non-empty string, not {name!r}")


def _check_positive(where: str, fields) -> None:
    for field, value in fields:
        if not _is_int(value) or value < 1:
            raise EiexError(f"{where}: {field} must be a positive integer, not {value!r}")


def _check_thr_bits(where: str, thr_bits) -> None:
    if not _is_int(thr_bits) or not 2 <= thr_bits <= MAX_THR_BITS:
        raise EiexError(f"{where}: thr_bits must be an integer from 2 to {MAX_THR_BITS}, not {thr_bits!r}")


def map_shape(value, what: str) -> tuple[int, int, int]:
    """``[H, W, C]`` of positive integers as a tuple; ``what`` names it in the error."""
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(_is_int(v) and v >= 1 for v in value):
        raise EiexError(f"{what} must be [H, W, C], three positive integers, not {value!r}")
    return tuple(int(v) for v in value)


def conv_out_shape(in_shape, out_channels: int, kernel: int) -> tuple[int, int, int]:
    """Section 7: a valid convolution, stride 1: ``[H - k + 1, W - k + 1, M]``."""
    h, w, _ = in_shape
    return (h - kernel + 1, w - kernel + 1, out_channels)


def pool_out_shape(in_shape, size: int) -> tuple[int, int, int]:
    """Section 7: ``[floor(H / p), floor(W / p), C]``, trailing rows and columns dropped."""
    h, w, c = in_shape
    return (h // size, w // size, c)


def check_conv_geometry(name: str, in_shape, out_channels, kernel, pe, simd, thr_bits) -> tuple[int, int, int]:
    """Section 7: one ``conv`` row of the layer table, on its own; returns ``in_shape`` as a tuple."""
    _check_name(name)
    where = f"layer {name}"
    in_shape = map_shape(in_shape, f"{where}: in_shape")
    _check_positive(where, (("out_channels", out_channels), ("kernel", kernel), ("pe", pe), ("simd", simd)))
    _check_thr_bits(where, thr_bits)
    h, w, _ = in_shape
    if kernel > h or kernel > w:
        raise EiexError(f"{where}: kernel {kernel} is larger than its {h} x {w} input map")
    return in_shape


def check_pool_geometry(name: str, in_shape, size) -> tuple[int, int, int]:
    """Section 7: one ``pool`` row of the layer table, on its own; returns ``in_shape`` as a tuple."""
    _check_name(name)
    where = f"layer {name}"
    in_shape = map_shape(in_shape, f"{where}: in_shape")
    _check_positive(where, (("size", size),))
    h, w, _ = in_shape
    if h // size == 0 or w // size == 0:
        raise EiexError(f"{where}: pooling a {h} x {w} map by {size} leaves nothing (size must be at most {min(h, w)})")
    return in_shape


def layer_io(layer) -> tuple[tuple | None, int, tuple | None, int]:
    """``(in_shape, input_size, out_shape, output_size)`` of a layer-table row (shapes None for fully
    connected layers); ``layer`` is anything with the row's attributes."""
    if layer.kind == "conv":
        out_shape = conv_out_shape(layer.in_shape, layer.out_channels, layer.kernel)
    elif layer.kind == "pool":
        out_shape = pool_out_shape(layer.in_shape, layer.size)
    else:
        return None, layer.in_features, None, layer.out_features
    return tuple(layer.in_shape), math.prod(layer.in_shape), out_shape, math.prod(out_shape)


def _check_link(prev, layer) -> None:
    """Layer ``layer`` reads what ``prev`` gives: the same map, or the same number of bits."""
    _, _, prev_shape, prev_size = layer_io(prev)
    in_shape, in_size, _, _ = layer_io(layer)
    if in_shape is not None and prev_shape is not None:
        if in_shape != prev_shape:
            raise EiexError(f"layer {layer.name} has in_shape {list(in_shape)} but {prev.name} gives a "
                            f"{list(prev_shape)} map")
    elif in_shape is not None:
        if in_size != prev_size:
            raise EiexError(f"layer {layer.name} has in_shape {list(in_shape)} ({in_size} bits) but {prev.name} has "
                            f"out_features {prev_size}")
    elif in_size != prev_size:
        if prev_shape is not None:
            raise EiexError(f"layer {layer.name} has in_features {in_size} but {prev.name} gives a {list(prev_shape)} "
                            f"map of {prev_size} bits")
        raise EiexError(f"layer {layer.name} has in_features {in_size} but {prev.name} has out_features {prev_size}")


def check_layer_chain(layers) -> None:
    """Sections 3 and 7 across layers: at least one, unique names, each layer reads what the one
    before gives (``K == M``, the same map, or a map of ``K`` bits), only the last layer ``output``.
    ``layers`` are anything with the layer-table attributes."""
    if not layers:
        raise EiexError("an XNOR image needs at least one layer")
    names = set()
    for l, layer in enumerate(layers):
        if layer.name in names:
            raise EiexError(f"two layers are named {layer.name}")
        names.add(layer.name)
        if l:
            _check_link(layers[l - 1], layer)
        last = l == len(layers) - 1
        if layer.kind == "output" and not last:
            raise EiexError(f"layer {layer.name} is an output layer but only the last layer may be")
        if last and layer.kind != "output":
            raise EiexError(f"the last layer {layer.name} must be an output layer, not {layer.kind!r}")


def _checked_weights(where: str, weights, shape: tuple[int, int], named: str) -> np.ndarray:
    w = np.asarray(weights)
    if w.shape != shape:
        raise EiexError(f"{where}: weights have shape {w.shape}, expected {shape} ({named})")
    if not np.issubdtype(w.dtype, np.number):
        raise EiexError(f"{where}: weights must be numbers +1 or -1, not {w.dtype}")
    bad = np.argwhere((w != 1) & (w != -1))
    if bad.size:
        r, c = bad[0]
        raise EiexError(f"{where}: weights must be +1 or -1, found {w[r, c]} at row {r}, column {c}")
    return w.astype(np.int8)


def _checked_thresholds(where: str, thresholds, rows: int, thr_bits: int) -> np.ndarray:
    t = np.asarray(thresholds)
    if t.shape != (rows,):
        raise EiexError(f"{where}: thresholds have shape {t.shape}, expected ({rows},)")
    if not np.issubdtype(t.dtype, np.integer):
        raise EiexError(f"{where}: thresholds must be integers, not {t.dtype}")
    lo, hi = -(1 << (thr_bits - 1)), (1 << (thr_bits - 1)) - 1
    bad = np.flatnonzero((t < lo) | (t > hi))
    if bad.size:
        r = int(bad[0])
        raise EiexError(f"{where}: threshold {int(t[r])} of row {r} does not fit thr_bits {thr_bits} "
                        f"(signed, {lo} .. {hi})")
    return t.astype(np.int64)


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
        self.weights = _checked_weights(where, self.weights, (self.out_features, self.in_features),
                                        "out_features, in_features")
        if self.kind == "output":
            if self.thresholds is not None:
                raise EiexError(f"{where}: an output layer has no thresholds")
            return
        if self.thresholds is None:
            raise EiexError(f"{where}: a hidden layer needs thresholds")
        self.thresholds = _checked_thresholds(where, self.thresholds, self.out_features, self.thr_bits)

    rows = property(lambda self: self.out_features, doc="``M``: rows of the weight matrix.")
    columns = property(lambda self: self.in_features, doc="``K``: columns of the weight matrix.")
    input_size = property(lambda self: self.in_features, doc="Input bits per image.")
    output_size = property(lambda self: self.out_features, doc="Output bits (values) per image.")
    positions = property(lambda self: 1, doc="Output positions per image: one matrix-vector product.")

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
class XnorConvLayer:
    """Section 7: a binarized convolution, valid and stride 1, over a channels-last ``[H, W, C]`` map.

    It is a hidden layer over ``K = kernel * kernel * C`` columns: column ``(ky * k + kx) * C + ci``
    of row ``r`` is the weight of output channel ``r`` at kernel position ``(ky, kx)``, input channel
    ``ci``; its memories are section 4's with this ``K`` and ``M = out_channels``.

    Attributes
    ----------
    in_shape : tuple[int, int, int]
        ``(H, W, C)`` of the input map.
    weights : np.ndarray
        int8 ``(out_channels, K)`` of +1/-1.
    thresholds : np.ndarray
        int64 ``(out_channels,)``: ``y = 1`` iff ``acc >= T``.
    """

    name: str
    in_shape: tuple[int, int, int]
    out_channels: int
    kernel: int
    pe: int
    simd: int
    thr_bits: int
    weights: np.ndarray
    thresholds: np.ndarray

    kind = "conv"

    def __post_init__(self):
        self.in_shape = check_conv_geometry(self.name, self.in_shape, self.out_channels, self.kernel, self.pe,
                                            self.simd, self.thr_bits)
        where = f"layer {self.name}"
        k, c = self.kernel, self.in_shape[2]
        self.weights = _checked_weights(where, self.weights, (self.out_channels, self.columns),
                                        f"out_channels, K = kernel * kernel * C = {k} * {k} * {c}")
        if self.thresholds is None:
            raise EiexError(f"{where}: a conv layer needs thresholds")
        self.thresholds = _checked_thresholds(where, self.thresholds, self.out_channels, self.thr_bits)

    rows = property(lambda self: self.out_channels, doc="``M``: output channels, the weight matrix's rows.")
    columns = property(lambda self: self.kernel * self.kernel * self.in_shape[2], doc="``K = k * k * C``.")
    out_shape = property(lambda self: conv_out_shape(self.in_shape, self.out_channels, self.kernel),
                         doc="``(H - k + 1, W - k + 1, M)``.")
    input_size = property(lambda self: math.prod(self.in_shape), doc="Input bits per image: ``H * W * C``.")
    output_size = property(lambda self: math.prod(self.out_shape), doc="Output bits per image.")
    positions = property(lambda self: self.out_shape[0] * self.out_shape[1], doc="``H_out * W_out``.")
    nf = property(lambda self: math.ceil(self.rows / self.pe), doc="``NF = ceil(M / P)``: row folds.")
    sf = property(lambda self: math.ceil(self.columns / self.simd), doc="``SF = ceil(K / S)``: column folds.")

    def to_json(self) -> dict:
        """The layer-table row of the manifest (section 7)."""
        return {"name": self.name, "kind": self.kind, "in_shape": list(self.in_shape),
                "out_channels": self.out_channels, "kernel": self.kernel, "pe": self.pe, "simd": self.simd,
                "thr_bits": self.thr_bits}


@dataclass(eq=False)
class XnorPoolLayer:
    """Section 7: logical OR over non-overlapping ``size x size`` windows of a channels-last map;
    trailing rows and columns are dropped. No weights, no memories."""

    name: str
    in_shape: tuple[int, int, int]
    size: int

    kind = "pool"

    def __post_init__(self):
        self.in_shape = check_pool_geometry(self.name, self.in_shape, self.size)

    out_shape = property(lambda self: pool_out_shape(self.in_shape, self.size), doc="``(H // p, W // p, C)``.")
    input_size = property(lambda self: math.prod(self.in_shape), doc="Input bits per image: ``H * W * C``.")
    output_size = property(lambda self: math.prod(self.out_shape), doc="Output bits per image.")

    def to_json(self) -> dict:
        """The layer-table row of the manifest (section 7)."""
        return {"name": self.name, "kind": self.kind, "in_shape": list(self.in_shape), "size": self.size}


LAYER_TYPES = (XnorLayer, XnorConvLayer, XnorPoolLayer)


@dataclass(eq=False)
class XnorImage:
    """A whole image (sections 2, 3, 6 and 7): layers in execution order, input threshold, output scores.

    Attributes
    ----------
    input_threshold : float
        Input bit ``c`` is 1 when the raw value ``>= input_threshold``.
    output_scale, output_bias : np.ndarray
        float64 ``(M_last,)``: ``score = scale * y + bias``.
    input_shape : tuple[int, int, int] or None
        ``(H, W, C)`` of the input map (section 7), required when the first layer is ``conv`` or
        ``pool`` (and then equal to its ``in_shape``); optional otherwise, where its product must be
        the first layer's ``in_features``. A version-1 image does not record it.
    """

    layers: list
    input_threshold: float
    output_scale: np.ndarray
    output_bias: np.ndarray
    input_shape: tuple[int, int, int] | None = None

    def __post_init__(self):
        for l, layer in enumerate(self.layers):
            if not isinstance(layer, LAYER_TYPES):
                raise EiexError(f"layer {l} is a {type(layer).__name__}, not an XnorLayer, XnorConvLayer or "
                                f"XnorPoolLayer")
        check_layer_chain(self.layers)
        self.input_shape = check_input_shape(self.input_shape, self.layers[0])
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
        """Input bits per image (``H * W * C`` for a map)."""
        return self.layers[0].input_size

    @property
    def outputs(self) -> int:
        return self.layers[-1].out_features

    @property
    def version(self) -> int:
        """The format version a writer uses: 2 when a layer is ``conv`` or ``pool``, else 1 (section 7)."""
        return MAP_VERSION if any(layer.kind in MAP_KINDS for layer in self.layers) else VERSION


def check_input_shape(input_shape, first) -> tuple[int, int, int] | None:
    """Section 7: ``input_shape`` against the first layer (anything with the layer-table attributes)."""
    first_shape, first_size, _, _ = layer_io(first)
    if input_shape is None:
        if first_shape is not None:
            raise EiexError(f"the input shape [H, W, C] is required: the first layer {first.name} is a "
                            f"{first.kind} layer")
        return None
    shape = map_shape(input_shape, "the input shape")
    if math.prod(shape) != first_size:
        raise EiexError(f"the input shape {list(shape)} holds {math.prod(shape)} bits but the first layer "
                        f"{first.name} reads {first_size}")
    if first_shape is not None and shape != first_shape:
        raise EiexError(f"the input shape {list(shape)} is not the first layer {first.name}'s in_shape "
                        f"{list(first_shape)}")
    return shape


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


def pack_weights(layer: XnorLayer | XnorConvLayer) -> list[list[int]]:
    """Per PE ``p``, the ``NF * SF`` words of ``l{l}.pe{p}.weights``: word ``nf * SF + sf``, bit ``i``
    is the weight of row ``nf * P + p``, column ``sf * S + i`` (1 for +1); padding bits (rows
    ``>= M``, columns ``>= K``, whole PEs when ``P > M`` and whole lanes when ``S > K``) are 0."""
    p, s, nf, sf = layer.pe, layer.simd, layer.nf, layer.sf
    bits = np.zeros((nf * p, sf * s), dtype=np.uint8)
    bits[: layer.rows, : layer.columns] = layer.weights > 0
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


def pack_thresholds(layer: XnorLayer | XnorConvLayer) -> list[list[int]]:
    """Per PE ``p``, the ``NF`` words of ``l{l}.pe{p}.thresholds``: the threshold of row ``nf * P + p``
    at address ``nf``, two's complement masked to ``thr_bits``; padding rows hold 0."""
    if layer.thresholds is None:
        raise EiexError(f"layer {layer.name}: an output layer has no threshold memories")
    t = np.zeros(layer.nf * layer.pe, dtype=np.int64)
    t[: layer.rows] = layer.thresholds
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
