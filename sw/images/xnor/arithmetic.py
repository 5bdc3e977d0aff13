"""Bit-exact arithmetic of the XNOR image (the engine's golden model) (XNOR spec sections 2, 5, 6 and 7), vectorized.

It reads each layer's +1/-1 weights and thresholds straight from the image, not from the packed
memories, so that a packing mistake cannot hide in both the model and the packer. With inputs
``x`` in {0, 1} and weights ``w`` in {+1, -1}, the +-1 dot product ``d = (2x - 1) . w`` equals
``2 * acc - K``, so ``acc = (d + K) / 2``; ``d`` comes from a float64 matrix product, exact because
``|d| <= K < 2**53``.
"""

from __future__ import annotations

import numpy as np

from eiex.errors import EiexError
from eiex.sw.images.xnor.image import XnorImage


def ideal_interval(image: XnorImage) -> int:
    """Section 7: ``max over layers of NF * SF``, the cycles per image of the slowest layer."""
    return max(layer.nf * layer.sf for layer in image.layers)


def binarize_input(image: XnorImage, raw) -> np.ndarray:
    """Section 2: raw inputs ``(N, K)`` (or one ``(K,)``) to bits, 1 where ``raw >= threshold``."""
    raw = np.asarray(raw)
    if raw.ndim == 1:
        raw = raw[None, :]
    if raw.ndim != 2 or raw.shape[1] != image.inputs:
        raise EiexError(f"raw inputs must be shaped (samples, {image.inputs}), not {raw.shape}")
    if raw.dtype == bool or not np.issubdtype(raw.dtype, np.number) or np.issubdtype(raw.dtype, np.complexfloating):
        raise EiexError(f"raw inputs must be real numbers, not {raw.dtype}")
    if np.issubdtype(raw.dtype, np.floating) and np.isnan(raw).any():
        raise EiexError("raw inputs contain NaN")
    return (raw >= image.input_threshold).astype(np.uint8)


def check_bits(image: XnorImage, bits) -> np.ndarray:
    bits = np.asarray(bits)
    if bits.ndim == 1:
        bits = bits[None, :]
    if bits.ndim != 2 or bits.shape[1] != image.inputs:
        raise EiexError(f"input bits must be shaped (samples, {image.inputs}), not {bits.shape}")
    if not (np.issubdtype(bits.dtype, np.integer) or bits.dtype == bool) or np.any((bits != 0) & (bits != 1)):
        raise EiexError("input bits must be integers 0 or 1")
    return bits.astype(np.uint8)


def propagate(weights, thresholds, bits: np.ndarray) -> list[np.ndarray]:
    """Section 5 on checked 0/1 input bits ``(N, K)``: ``weights`` are the layers' +1/-1 matrices
    ``(M, K)``, ``thresholds`` the hidden layers' (one fewer). Hidden layers give 0/1 bits (uint8),
    the last layer the int64 ``2 * acc - K``."""
    x, outputs = bits, []
    for l, w in enumerate(weights):
        d = ((2.0 * x - 1.0) @ np.asarray(w).T.astype(np.float64)).astype(np.int64)  # 2 * acc - K, exact
        if l == len(weights) - 1:
            outputs.append(d)
        else:
            acc = (d + w.shape[1]) // 2
            x = (acc >= thresholds[l]).astype(np.uint8)
            outputs.append(x)
    return outputs


def run_layers(image: XnorImage, bits) -> list[np.ndarray]:
    """Section 5: every layer's outputs for input bits ``(N, K)``; hidden layers give 0/1 bits
    (uint8), the output layer the int64 ``2 * acc - K``."""
    layers = image.layers
    return propagate([l.weights for l in layers], [l.thresholds for l in layers[:-1]], check_bits(image, bits))


def run(image: XnorImage, bits) -> np.ndarray:
    """The engine's result: the output layer's int64 ``y = 2 * acc - K``, shaped ``(N, M_last)``."""
    return run_layers(image, bits)[-1]


def scores(image: XnorImage, y) -> np.ndarray:
    """Section 6: float64 ``scale * y + bias`` of output values ``y`` ``(N, M_last)``."""
    y = np.asarray(y, dtype=np.int64)
    return image.output_scale * y.astype(np.float64) + image.output_bias


def predict(image: XnorImage, raw) -> np.ndarray:
    """The predicted class of each raw input: the largest score, the lowest index on ties."""
    return np.argmax(scores(image, run(image, binarize_input(image, raw))), axis=1)
