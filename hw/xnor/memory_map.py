"""An XNOR image as the engine's geometry, memory contents, load-interface writes and input beats."""

from __future__ import annotations

import numpy as np

from eiex.hw.xnor.conv import ConvGeometry
from eiex.hw.xnor.engine import check_layers, input_beats, matrix_of
from eiex.hw.xnor.mvtu import LayerGeometry
from eiex.hw.xnor.pool import PoolGeometry
from eiex.errors import EiexError
from eiex.sw.images.xnor.folding import OUTPUT_THR_BITS, choose_folding
from eiex.sw.images.xnor.image import bits_to_words, check_geometry, pack_thresholds, pack_weights, signed_bits


def geometry_of(layer):
    """The engine geometry of an image layer (hidden, output, conv or pool)."""
    if layer.kind == "conv":
        return ConvGeometry.of(layer)
    if layer.kind == "pool":
        return PoolGeometry.of(layer)
    return LayerGeometry.of(layer)


def engine_for(image) -> list:
    """The engine's geometry for an image, one entry per layer; a network the hardware cannot
    chain (a map after a fully connected layer, which the golden model runs) gets one line."""
    layers = [geometry_of(layer) for layer in image.layers]
    check_layers(layers)
    return layers


def engine_for_sizes(sizes, pe=None, simd=None, target_interval=None, thr_bits=None) -> list[LayerGeometry]:
    """Geometry of an engine for layer sizes ``[K_0, M_0, M_1, ...]`` without an image: folding by
    :func:`choose_folding`; each hidden layer's ``thr_bits`` wide enough for any threshold in
    ``[0, K + 1]`` unless ``thr_bits`` (one per hidden layer) is given."""
    sizes = list(sizes)
    if len(sizes) < 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
        raise EiexError(f"layer sizes must be at least two positive integers (inputs, ..., outputs), not {sizes}")
    shapes = [(m, k) for k, m in zip(sizes, sizes[1:])]
    hidden = len(shapes) - 1
    if thr_bits is None:
        thr_bits = [signed_bits([k + 1]) for _, k in shapes[:-1]]
    elif len(thr_bits) != hidden:
        raise EiexError(f"thr_bits gives {len(thr_bits)} values for {hidden} hidden layers")
    folding = choose_folding(shapes, pe, simd, target_interval)
    layers = []
    for l, ((m, k), (p, s)) in enumerate(zip(shapes, folding)):
        kind, bits = ("output", OUTPUT_THR_BITS) if l == hidden else ("hidden", thr_bits[l])
        check_geometry(f"fc{l + 1}", k, m, p, s, kind, bits)
        layers.append(LayerGeometry(k, m, p, s, kind == "output", bits))
    return layers


def memory_contents(image) -> list[dict]:
    """Per layer ``{"weights": [words per PE], "thresholds": [words per PE]}`` for the engine's init
    (an empty dict for a pool layer)."""
    contents = []
    for layer in image.layers:
        entry = {}
        if layer.kind != "pool":
            entry["weights"] = pack_weights(layer)
        if layer.kind in ("hidden", "conv"):
            entry["thresholds"] = pack_thresholds(layer)
        contents.append(entry)
    return contents


def load_writes(image) -> list[dict]:
    """Load-interface payloads writing every memory of the image that the engine has: with
    ``P > M`` the PEs ``M .. P - 1`` hold only padding rows and have no memories, so their words
    (all 0) are not sent."""
    writes = []
    for l, (layer, entry) in enumerate(zip(image.layers, memory_contents(image))):
        matrix = matrix_of(geometry_of(layer))
        if matrix is None:
            continue
        for sel, name in ((0, "weights"), (1, "thresholds")):
            for p, words in enumerate(entry.get(name, [])[:matrix.used_pe]):
                writes += [{"layer": l, "sel": sel, "pe": p, "addr": a, "data": w} for a, w in enumerate(words)]
    return writes


def pack_input(image, bits: np.ndarray) -> list[list[int]]:
    """Input beats per image: for a fully connected first layer its ``SF_0`` SIMD words (beat ``sf``
    bit ``i`` is input ``sf * S_0 + i``); for a conv or pool first layer the ``H * W`` pixels of the
    map, ``C`` bits each (the flat input is channels-last, so pixel ``j`` is bits ``[j * C, (j + 1) * C)``)."""
    first = geometry_of(image.layers[0])
    beats, width = input_beats(first)
    padded = np.zeros((len(bits), beats * width), dtype=np.uint8)
    padded[:, :bits.shape[1]] = bits
    words = bits_to_words(padded.reshape(len(bits) * beats, width))
    return [words[i * beats:(i + 1) * beats] for i in range(len(bits))]
