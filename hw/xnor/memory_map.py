"""An XNOR image as the engine's geometry, memory contents, load-interface writes and input beats."""

from __future__ import annotations

import numpy as np

from eiex.hw.xnor.mvtu import LayerGeometry
from eiex.errors import EiexError
from eiex.sw.images.xnor.folding import OUTPUT_THR_BITS, choose_folding
from eiex.sw.images.xnor.image import bits_to_words, check_geometry, pack_thresholds, pack_weights, signed_bits


def check_fully_connected(image) -> None:
    """The engine's RTL runs hidden and output layers; a version-2 image's conv or pool layer (which
    the golden model runs) gets one line."""
    for layer in image.layers:
        if layer.kind not in ("hidden", "output"):
            raise EiexError(f"the XNOR engine's hardware runs fully connected layers so far; layer {layer.name} is "
                            f"{layer.kind} (the golden model runs it)")


def engine_for(image) -> list[LayerGeometry]:
    check_fully_connected(image)
    return [LayerGeometry.of(layer) for layer in image.layers]


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
    """Per layer ``{"weights": [words per PE], "thresholds": [words per PE]}`` for the engine's init."""
    check_fully_connected(image)
    contents = []
    for layer in image.layers:
        entry = {"weights": pack_weights(layer)}
        if layer.kind != "output":
            entry["thresholds"] = pack_thresholds(layer)
        contents.append(entry)
    return contents


def load_writes(image) -> list[dict]:
    """Load-interface payloads writing every memory of the image that the engine has: with
    ``P > M`` the PEs ``M .. P - 1`` hold only padding rows and have no memories, so their words
    (all 0) are not sent."""
    writes = []
    for l, entry in enumerate(memory_contents(image)):
        used_pe = LayerGeometry.of(image.layers[l]).used_pe
        for sel, name in ((0, "weights"), (1, "thresholds")):
            for p, words in enumerate(entry.get(name, [])[:used_pe]):
                writes += [{"layer": l, "sel": sel, "pe": p, "addr": a, "data": w} for a, w in enumerate(words)]
    return writes


def pack_input(image, bits: np.ndarray) -> list[list[int]]:
    """Input beats, ``SF_0`` per image: beat ``sf`` bit ``i`` is input ``sf * S_0 + i``."""
    g = LayerGeometry.of(image.layers[0])
    padded = np.zeros((len(bits), g.sf * g.simd), dtype=np.uint8)
    padded[:, :g.in_features] = bits
    words = bits_to_words(padded.reshape(len(bits) * g.sf, g.simd))
    return [words[i * g.sf:(i + 1) * g.sf] for i in range(len(bits))]
