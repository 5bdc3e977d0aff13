"""An XNOR image as the engine's geometry, memory contents, load-interface writes and input beats."""

from __future__ import annotations

import numpy as np

from eiex.hw.xnor.mvtu import LayerGeometry
from eiex.sw.xnor_image import bits_to_words, pack_thresholds, pack_weights


def engine_for(image) -> list[LayerGeometry]:
    return [LayerGeometry.of(layer) for layer in image.layers]


def memory_contents(image) -> list[dict]:
    """Per layer ``{"weights": [words per PE], "thresholds": [words per PE]}`` for the engine's init."""
    contents = []
    for layer in image.layers:
        entry = {"weights": pack_weights(layer)}
        if layer.kind != "output":
            entry["thresholds"] = pack_thresholds(layer)
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
    words = bits_to_words(padded.reshape(len(bits) * g.sf, g.simd))
    return [words[i * g.sf:(i + 1) * g.sf] for i in range(len(bits))]
