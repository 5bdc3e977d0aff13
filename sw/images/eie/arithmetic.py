"""Bit-exact golden model of the EIE image arithmetic (spec sections 6 and 7), vectorized.

Every layer's weights are decoded once from the per-PE sparse columns into a dense integer
matrix; a batch of input vectors then goes through exact int64 matrix products, rounding,
saturation and ReLU.
"""

from __future__ import annotations

import numpy as np

from eiex.sw.images.eie.image import EieImage
from eiex.errors import EiexError
from eiex.sw.images.eie.sparse import SparseColumns, decode_columns


def layer_codes(image: EieImage, l: int) -> np.ndarray:
    """Layer ``l``'s weight codes ``(rows, cols)`` (0 = zero weight), gathered from the PEs."""
    layer, n_pe = image.layers[l], image.engine.n_pe
    codes = np.zeros((layer.rows, layer.cols), dtype=np.int64)
    for p in range(min(n_pe, layer.rows)):
        v, z, ptr = image.layer_entries(l, p)
        codes[p::n_pe] = decode_columns(SparseColumns(v=v, z=z, ptr=ptr, rows=layer.local_rows(p, n_pe),
                                                      rel_bits=image.engine.rel_bits))
    return codes


def decode_weights(image: EieImage, l: int) -> np.ndarray:
    """Layer ``l``'s integer weight matrix ``(rows, cols)``, as the PEs hold it."""
    return image.layer_codebook(l)[layer_codes(image, l)]


def layer_bias(image: EieImage, l: int) -> np.ndarray:
    layer, n_pe = image.layers[l], image.engine.n_pe
    bias = np.zeros(layer.rows, dtype=np.int64)
    for p in range(min(n_pe, layer.rows)):
        bias[p::n_pe] = image.layer_bias(l, p)
    return bias


def rescale(acc: np.ndarray, frac: int, act_bits: int, relu: bool) -> np.ndarray:
    """Steps 2 to 4: round half up by ``frac`` bits, saturate to ``act_bits``, then ReLU."""
    y = (acc + (1 << (frac - 1))) >> frac if frac > 0 else acc
    y = np.clip(y, -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1)
    return np.maximum(y, 0) if relu else y


def check_inputs(image: EieImage, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != image.inputs:
        raise EiexError(f"inputs must be shaped (samples, {image.inputs}), not {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise EiexError(f"inputs must be integers in the engine's fixed point, not {a.dtype}")
    lo, hi = image.engine.act_range()
    if a.size and (a.min() < lo or a.max() > hi):
        raise EiexError(f"inputs must lie in [{lo}, {hi}] (act_bits = {image.engine.act_bits})")
    return a.astype(np.int64)


def run_layers(image: EieImage, a: np.ndarray) -> list[np.ndarray]:
    """Every layer's outputs for a batch of inputs ``(samples, inputs)``; the last is the result."""
    a = check_inputs(image, a)
    e = image.engine
    bound = (1 << (e.act_bits - 1)) * (1 << (e.weight_bits - 1)) * max(l.cols for l in image.layers)
    if bound + (1 << (e.bias_bits - 1)) >= 1 << 62:
        raise EiexError("act_bits, weight_bits and layer widths this large overflow the int64 golden model")
    exact_in_float = bound < 1 << 52  # BLAS products are then exact integers
    outputs = []
    for l, layer in enumerate(image.layers):
        w = decode_weights(image, l)
        if exact_in_float:
            acc = (a.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)
        else:
            acc = a @ w.T
        acc += layer_bias(image, l)
        a = rescale(acc, layer.weight_frac, e.act_bits, layer.relu)
        outputs.append(a)
    return outputs


def run(image: EieImage, a: np.ndarray) -> np.ndarray:
    """The engine's result for each input vector: the last layer's outputs ``(samples, rows)``."""
    return run_layers(image, a)[-1]


def quantize_input(image: EieImage, raw: np.ndarray) -> np.ndarray:
    """Section 7: raw inputs (pixels) to the engine's fixed point, round half to even."""
    if image.input is None:
        raise EiexError("this image records no input conversion")
    norm, e = image.input, image.engine
    x = (np.asarray(raw, dtype=np.float64) * norm["pixel_scale"] - norm["mean"]) / norm["std"]
    lo, hi = e.act_range()
    return np.clip(np.rint(x * (1 << e.act_frac)), lo, hi).astype(np.int64)
