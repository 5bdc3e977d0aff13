"""Bit-exact arithmetic of the XNOR image (the engine's golden model) (XNOR spec sections 2, 5, 6 and 7), vectorized.

It reads each layer's +1/-1 weights and thresholds straight from the image, not from the packed
memories, so that a packing mistake cannot hide in both the model and the packer. With inputs
``x`` in {0, 1} and weights ``w`` in {+1, -1}, the +-1 dot product ``d = (2x - 1) . w`` equals
``2 * acc - K``, so ``acc = (d + K) / 2``; ``d`` comes from a float64 matrix product, exact because
``|d| <= K < 2**53``.

Version 2 (section 7): a convolution is the same product over every ``k x k`` patch, taken as one
matrix of patches (rows: images x positions, columns in the spec's ``(ky * k + kx) * C + ci``
order) per chunk of images, so that memory stays bounded (:data:`CONV_CHUNK_BYTES`); a pool is
a maximum over ``p x p`` windows of a reshaped map. Feature maps travel between layers flattened
channels-last, ``(N, H * W * C)``, the order a following fully connected layer reads them in.
"""

from __future__ import annotations

import numpy as np

from numpy.lib.stride_tricks import sliding_window_view

from eiex.errors import EiexError
from eiex.sw.images.xnor.image import XnorImage

#: the largest float64 patch matrix one chunk of images may build in :func:`convolve`
CONV_CHUNK_BYTES = 1 << 27


def ideal_interval(image: XnorImage) -> int:
    """Section 7: the cycles per image of the slowest layer, ``H_out * W_out * NF * SF`` for a conv
    layer and ``NF * SF`` for a fully connected one; pool layers never limit it."""
    return max(layer.positions * layer.nf * layer.sf for layer in image.layers if layer.kind != "pool")


def binarize_input(image: XnorImage, raw) -> np.ndarray:
    """Section 2: raw inputs ``(N, K)`` (or one ``(K,)``) to bits, 1 where ``raw >= threshold``; a
    map's samples are flattened channels-last (section 7: ``(N, H * W * C)``; for ``C = 1`` an
    ``(N, H, W)`` array reshaped row-major)."""
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


def _signed_dot(bits: np.ndarray, weights) -> np.ndarray:
    """``2 * acc - K`` of every row of 0/1 ``bits`` ``(N, K)`` against +1/-1 ``weights`` ``(M, K)``, exact."""
    return ((2.0 * bits - 1.0) @ np.asarray(weights).T.astype(np.float64)).astype(np.int64)


def _fire(d: np.ndarray, columns: int, thresholds) -> np.ndarray:
    """Section 5's hidden rule on ``d = 2 * acc - K``: 1 where ``acc >= T``."""
    return ((d + columns) // 2 >= thresholds).astype(np.uint8)


def convolve(bits, in_shape, kernel: int, weights, thresholds) -> np.ndarray:
    """Section 7's conv layer on checked 0/1 bits ``(N, H * W * C)`` (channels-last): the uint8 output
    map ``(N, (H - k + 1) * (W - k + 1) * M)``, channels-last, ``1`` where ``acc >= T``.

    ``weights`` are ``(M, k * k * C)`` +1/-1, column ``(ky * k + kx) * C + ci``; ``thresholds`` ``(M,)``.
    """
    h, w, c = in_shape
    ho, wo, k = h - kernel + 1, w - kernel + 1, kernel * kernel * c
    m = len(weights)
    maps = np.asarray(bits).reshape(-1, h, w, c)
    wt = np.asarray(weights).T.astype(np.float64)
    chunk = max(1, CONV_CHUNK_BYTES // (ho * wo * k * 8))
    out = np.empty((len(maps), ho * wo * m), dtype=np.uint8)
    for start in range(0, len(maps), chunk):
        signed = 2.0 * maps[start:start + chunk] - 1.0
        windows = sliding_window_view(signed, (kernel, kernel), axis=(1, 2))  # (n, Ho, Wo, C, ky, kx)
        patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, k)  # columns (ky * k + kx) * C + ci
        d = (patches @ wt).astype(np.int64)
        out[start:start + chunk] = _fire(d, k, thresholds).reshape(-1, ho * wo * m)
    return out


def pool(bits, in_shape, size: int) -> np.ndarray:
    """Section 7's pool layer on 0/1 bits ``(N, H * W * C)`` (channels-last): the OR of every
    non-overlapping ``size x size`` window, trailing rows and columns dropped; uint8
    ``(N, (H // p) * (W // p) * C)``."""
    h, w, c = in_shape
    ho, wo = h // size, w // size
    maps = np.asarray(bits).reshape(-1, h, w, c)[:, :ho * size, :wo * size]
    return maps.reshape(-1, ho, size, wo, size, c).max(axis=(2, 4)).astype(np.uint8).reshape(-1, ho * wo * c)


def propagate(weights, thresholds, bits: np.ndarray) -> list[np.ndarray]:
    """Section 5 on checked 0/1 input bits ``(N, K)``: ``weights`` are the layers' +1/-1 matrices
    ``(M, K)``, ``thresholds`` the hidden layers' (one fewer). Hidden layers give 0/1 bits (uint8),
    the last layer the int64 ``2 * acc - K``."""
    x, outputs = bits, []
    for l, w in enumerate(weights):
        d = _signed_dot(x, w)
        if l == len(weights) - 1:
            outputs.append(d)
        else:
            x = _fire(d, w.shape[1], thresholds[l])
            outputs.append(x)
    return outputs


def run_layer(layer, bits: np.ndarray) -> np.ndarray:
    """One layer (sections 5 and 7) on checked 0/1 bits ``(N, input_size)``: hidden, conv and pool
    layers give 0/1 bits (uint8, maps flattened channels-last), the output layer the int64 ``2 * acc - K``."""
    if layer.kind == "conv":
        return convolve(bits, layer.in_shape, layer.kernel, layer.weights, layer.thresholds)
    if layer.kind == "pool":
        return pool(bits, layer.in_shape, layer.size)
    d = _signed_dot(bits, layer.weights)
    return d if layer.kind == "output" else _fire(d, layer.in_features, layer.thresholds)


def run_layers(image: XnorImage, bits) -> list[np.ndarray]:
    """Sections 5 and 7: every layer's outputs for input bits ``(N, inputs)``; hidden, conv and pool
    layers give 0/1 bits (uint8; maps ``(N, H_out * W_out * C_out)`` channels-last), the output layer
    the int64 ``2 * acc - K``."""
    x, outputs = check_bits(image, bits), []
    for layer in image.layers:
        x = run_layer(layer, x)
        outputs.append(x)
    return outputs


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
