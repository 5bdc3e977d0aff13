"""An XNOR image as the engine's geometry, memory contents, load-interface writes and input beats."""

from __future__ import annotations

import numpy as np

from eiex.hw.xnor.mvtu import LayerGeometry


def engine_for(image) -> list[LayerGeometry]:
    return [LayerGeometry.of(layer) for layer in image.layers]


def ideal_interval(image) -> int:
    """Spec section 7: the slowest layer's ``NF * SF``."""
    return max(g.nf * g.sf for g in engine_for(image))


def words_of_bits(bits: np.ndarray) -> list[int]:
    """Rows of 0/1 ``bits`` ``(n, width)`` as unsigned words, bit ``i`` of a word = column ``i``
    (any width: packed to bytes, then read little-endian)."""
    packed = np.packbits(np.asarray(bits, dtype=np.uint8), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def weight_words(layer) -> list[list[int]]:
    """Per PE, ``NF * SF`` words: word ``nf * SF + sf`` of PE ``p``, bit ``i`` = weight of row
    ``nf * P + p``, column ``sf * S + i`` (1 = +1); padding bits 0."""
    g = LayerGeometry.of(layer)
    bits = np.zeros((g.nf * g.pe, g.sf * g.simd), dtype=np.uint8)
    bits[:g.out_features, :g.in_features] = np.asarray(layer.weights) > 0
    folded = bits.reshape(g.nf, g.pe, g.sf, g.simd).transpose(1, 0, 2, 3)  # (p, nf, sf, i)
    return [words_of_bits(pe.reshape(g.nf * g.sf, g.simd)) for pe in folded]


def threshold_words(layer) -> np.ndarray:
    """``(P, NF)`` unsigned ``thr_bits`` words: threshold of row ``nf * P + p``; padding rows 0."""
    g = LayerGeometry.of(layer)
    t = np.zeros(g.nf * g.pe, dtype=np.int64)
    t[:g.out_features] = layer.thresholds
    return (t & ((1 << g.thr_bits) - 1)).reshape(g.nf, g.pe).T


def memory_contents(image) -> list[dict]:
    """Per layer ``{"weights": [words per PE], "thresholds": [words per PE]}`` for the engine's init."""
    contents = []
    for layer in image.layers:
        entry = {"weights": weight_words(layer)}
        if layer.kind != "output":
            entry["thresholds"] = [[int(t) for t in row] for row in threshold_words(layer)]
        contents.append(entry)
    return contents


def load_writes(image) -> list[dict]:
    """Load-interface payloads writing every memory of the image."""
    writes = []
    for l, entry in enumerate(memory_contents(image)):
        for sel, name in ((0, "weights"), (1, "thresholds")):
            for p, words in enumerate(entry.get(name, [])):
                writes += [{"layer": l, "sel": sel, "pe": p, "addr": a, "data": w} for a, w in enumerate(words)]
    return writes


def pack_input(image, bits: np.ndarray) -> list[list[int]]:
    """Input beats, ``SF_0`` per image: beat ``sf`` bit ``i`` is input ``sf * S_0 + i``."""
    g = LayerGeometry.of(image.layers[0])
    padded = np.zeros((len(bits), g.sf * g.simd), dtype=np.uint8)
    padded[:, :g.in_features] = bits
    words = words_of_bits(padded.reshape(len(bits) * g.sf, g.simd))
    return [words[i * g.sf:(i + 1) * g.sf] for i in range(len(bits))]
