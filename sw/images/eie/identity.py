"""Identity codebooks: the images an EIE engine that decodes without a codebook can run.

Such an engine (``HwParams.mac == "index"``) takes a weight's index ``v`` as the integer weight
itself, read as ``idx_bits``-bit two's complement (``signed(v)``): it has no codebook memory. It runs
exactly the images in which every code a layer uses has ``codebook[v] == signed(v)``; the arithmetic
of ``eie-image.md`` section 6 does not change.

The exporter writes such an image for layers whose weights are ``q * 2**-f`` with integers ``q``
that fit ``idx_bits`` (linear quantization with a power-of-two scale,
:mod:`eiex.sw.compress.methods.linear`): codes ``q`` in two's complement, the identity codebook, and
``weight_frac = f``.
"""

from __future__ import annotations

import numpy as np

from eiex.errors import EiexError
from eiex.sw.images.eie.arithmetic import layer_codes
from eiex.sw.images.eie.image import MAX_IDX_BITS, EieImage

#: the finest grid looked for: weight_frac is a 6-bit field, and float64 holds 2**-62 exactly
MAX_FRAC = 62
HOW = "compress --quantize linear --linear-scale pow2 gives such weights"


def signed_codes(idx_bits: int) -> np.ndarray:
    """``signed(v)`` for every code ``v`` of ``idx_bits`` bits: the identity codebook."""
    v = np.arange(1 << idx_bits, dtype=np.int64)
    return np.where(v >= 1 << (idx_bits - 1), v - (1 << idx_bits), v)


def weight_grid(weight: np.ndarray, name: str) -> tuple[int, np.ndarray]:
    """``(f, q)``: the smallest ``f >= 0`` at which every weight times ``2**f`` is an integer, and those
    integers ``q``."""
    w = np.asarray(weight, dtype=np.float64)
    nonzero = w[w != 0]
    for f in range(MAX_FRAC + 1):
        scaled = np.ldexp(nonzero, f)
        if np.array_equal(scaled, np.rint(scaled)):
            return f, np.rint(np.ldexp(w, f)).astype(np.int64)
    raise EiexError(f"{name}: --mac index needs weights that are integer multiples of one power of two, "
                    f"and these are not (not even of 2**-{MAX_FRAC}); {HOW}")


def index_bits_for(q: np.ndarray) -> int:
    """The fewest two's complement bits that hold every integer of ``q``."""
    q = np.asarray(q, dtype=np.int64)
    top, bottom = int(q.max(initial=0)), int(q.min(initial=0))
    return 1 + max(top.bit_length(), (-bottom - 1).bit_length() if bottom < 0 else 0)


def _layer_integers(weight: np.ndarray, idx_bits: int, name: str) -> tuple[int, np.ndarray, int]:
    """``(f, q, bits q needs)``, or an error naming the layer when ``q`` does not fit ``idx_bits``."""
    f, q = weight_grid(weight, name)
    need = index_bits_for(q)
    if need > idx_bits:
        raise EiexError(f"{name}: --mac index takes the index as the weight; these weights are integers "
                        f"{int(q.min())}..{int(q.max())} times 2**-{f}, which need idx_bits = {need}, not {idx_bits} "
                        f"({HOW} at that many bits)")
    return f, q, need


def identity_layer(weight: np.ndarray, idx_bits: int, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``(codes, float codebook, f)`` of a layer for an identity-codebook image: ``codes`` are the
    weights' ``q`` in ``idx_bits``-bit two's complement, the codebook ``signed(v) * 2**-f``."""
    f, q, _ = _layer_integers(weight, idx_bits, name)
    codes = np.where(q < 0, q + (1 << idx_bits), q)
    return codes, np.ldexp(signed_codes(idx_bits).astype(np.float64), -f), f


def needed_index_bits(weights: list[np.ndarray], names: list[str]) -> int:
    """``idx_bits`` of an identity-codebook image of these layers: the widest layer's ``q`` (an error
    naming the first layer wider than an image's index may be)."""
    return max(_layer_integers(w, MAX_IDX_BITS, n)[2] for w, n in zip(weights, names))


def check_identity_codebook(image: EieImage) -> None:
    """Raise :class:`EiexError` naming the first code a layer of ``image`` uses whose codebook entry is
    not the code itself (``signed(v)``)."""
    identity = signed_codes(image.engine.idx_bits)
    for l, layer in enumerate(image.layers):
        used = np.unique(layer_codes(image, l))
        codebook = image.layer_codebook(l)
        bad = used[codebook[used] != identity[used]]
        if len(bad):
            v = int(bad[0])
            raise EiexError(f"--mac index takes each weight's index as the weight, so a layer's codebook must be "
                            f"the identity; layer {layer.name} uses code {v}, whose entry is {int(codebook[v])}, "
                            f"not {int(identity[v])} (export eie --mac index writes such images)")
