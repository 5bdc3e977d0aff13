"""Encode integer layers into an EIE image (spec sections 2 to 5).

``build_image`` takes layers already in the engine's integers: a code matrix per layer
(``(rows, cols)``, 0 = zero weight), its codebook, biases in accumulator scale, the ReLU flag and
``weight_frac``. Row ``i`` goes to PE ``i % n_pe`` as local row ``i // n_pe``; each PE's columns are
encoded canonically with :func:`eiex.sw.images.eie.sparse.encode_columns`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from eiex.sw.images.eie.arithmetic import layer_bias, layer_codes
from eiex.sw.images.eie.image import EieImage, EieLayer, EngineParams, PeMemories
from eiex.errors import EiexError
from eiex.sw.images.eie.sparse import encode_columns
from eiex.sw.images.words import fits_signed


@dataclass(frozen=True)
class IntLayer:
    """One layer in the engine's integers."""

    codes: np.ndarray  # (rows, cols) ints in [0, 2**idx_bits)
    codebook: np.ndarray  # 2**idx_bits signed ints, codebook[0] == 0
    bias: np.ndarray  # rows signed ints, accumulator scale
    relu: bool
    weight_frac: int
    name: str = ""


def check_layers(layers: list[IntLayer], params: EngineParams) -> None:
    if not layers:
        raise EiexError("an EIE image needs at least one layer")
    for l, layer in enumerate(layers):
        name = layer.name or f"layer {l}"
        codes = np.asarray(layer.codes)
        if codes.ndim != 2 or min(codes.shape) < 1:
            raise EiexError(f"{name}: codes must be a non-empty (rows, cols) matrix, not shape {codes.shape}")
        if l and codes.shape[1] != layers[l - 1].codes.shape[0]:
            raise EiexError(f"{name} has {codes.shape[1]} inputs but the layer before has {layers[l - 1].codes.shape[0]} outputs")
        if codes.min() < 0 or codes.max() >= params.codebook_size:
            raise EiexError(f"{name}: weight codes must lie in 0..{params.codebook_size - 1} (idx_bits = {params.idx_bits})")
        codebook = np.asarray(layer.codebook)
        if codebook.shape != (params.codebook_size,):
            raise EiexError(f"{name}: the codebook needs {params.codebook_size} entries, not {codebook.shape}")
        if codebook[0] != 0:
            raise EiexError(f"{name}: codebook entry 0 must be 0, not {codebook[0]}")
        if not fits_signed(codebook, params.weight_bits):
            raise EiexError(f"{name}: a codebook value does not fit weight_bits = {params.weight_bits}")
        if np.asarray(layer.bias).shape != (codes.shape[0],):
            raise EiexError(f"{name}: {np.asarray(layer.bias).shape} biases for {codes.shape[0]} rows")
        if not fits_signed(np.asarray(layer.bias), params.bias_bits):
            raise EiexError(f"{name}: a bias does not fit bias_bits = {params.bias_bits}")
        if not 0 <= layer.weight_frac < 64:
            raise EiexError(f"{name}: weight_frac must lie in 0..63, not {layer.weight_frac}")


def build_image(layers: list[IntLayer], params: EngineParams, input: dict | None = None) -> EieImage:
    """Distribute, encode and lay out every memory of an image."""
    check_layers(layers, params)
    n_pe = params.n_pe
    table: list[EieLayer] = []
    per_pe = [{"v": [], "z": [], "ptr": [], "bias": []} for _ in range(n_pe)]
    entry_base = [0] * n_pe
    ptr_base = bias_base = 0
    for l, layer in enumerate(layers):
        rows, cols = layer.codes.shape
        entry = EieLayer(
            name=layer.name or f"fc{l + 1}", rows=rows, cols=cols, relu=bool(layer.relu),
            weight_frac=int(layer.weight_frac), ptr_base=ptr_base, bias_base=bias_base,
            codebook_base=l * params.codebook_size,
        )
        slots = entry.slots(n_pe)
        for p in range(n_pe):
            sparse = encode_columns(np.asarray(layer.codes)[p::n_pe], params.rel_bits)
            mem = per_pe[p]
            mem["v"].append(sparse.v)
            mem["z"].append(sparse.z)
            mem["ptr"].append(sparse.ptr + entry_base[p])
            bias = np.zeros(slots, dtype=np.int64)
            local = np.asarray(layer.bias, dtype=np.int64)[p::n_pe]
            bias[: len(local)] = local
            mem["bias"].append(bias)
            entry_base[p] += sparse.n_entries
        table.append(entry)
        ptr_base += cols + 1
        bias_base += slots

    too_far = max(entry_base)
    if too_far >= 1 << params.ptr_bits:
        raise EiexError(f"a PE holds {too_far} entries; pointers of ptr_bits = {params.ptr_bits} reach only {(1 << params.ptr_bits) - 1}")
    pes = [
        PeMemories(
            v=np.concatenate(m["v"]).astype(np.int64), z=np.concatenate(m["z"]).astype(np.int64),
            ptr=np.concatenate(m["ptr"]).astype(np.int64), bias=np.concatenate(m["bias"]),
        )
        for m in per_pe
    ]
    codebook = np.concatenate([np.asarray(layer.codebook, dtype=np.int64) for layer in layers])
    return EieImage(engine=params, layers=table, pes=pes, codebook=codebook, input=input)


def with_pes(image: EieImage, n_pe: int) -> EieImage:
    """The same network encoded for ``n_pe`` PEs: every weight code, codebook, bias and the row order
    kept (rows already permuted for load balance at the image's PE count stay in that order), only
    their distribution over the PEs changes, so the golden outputs are identical."""
    if n_pe == image.engine.n_pe:
        return image
    params = replace(image.engine, n_pe=n_pe)
    layers = [IntLayer(codes=layer_codes(image, l), codebook=image.layer_codebook(l), bias=layer_bias(image, l),
                       relu=layer.relu, weight_frac=layer.weight_frac, name=layer.name)
              for l, layer in enumerate(image.layers)]
    resized = build_image(layers, params, input=image.input)
    resized.row_order = dict(image.row_order)
    return resized
