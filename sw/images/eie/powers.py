"""Codebooks of powers of two (incremental network quantization): the images an EIE engine whose
MAC shifts instead of multiplying can run.

Such an engine (``HwParams.mac == "shift"``) holds each codebook entry as a shift: it runs exactly
the images whose integer codebook entries (``eie-image.md`` section 4) are all 0 or a signed power
of two, ``+-2**k`` for ``k`` from 0 to ``weight_bits - 1`` (``-2**(weight_bits - 1)`` included).
The arithmetic of section 6 does not change: such a weight times an activation is a shift.
"""

from __future__ import annotations

import numpy as np

from eiex.errors import EiexError
from eiex.sw.images.eie.image import EieImage


def is_power_of_two_codebook(codebook, weight_bits: int) -> np.ndarray:
    """Mask of the entries of ``codebook`` (signed integers) that are 0 or ``+-2**k`` within
    ``weight_bits``."""
    values = np.asarray(codebook, dtype=np.int64)
    magnitude = np.abs(values)
    power = (magnitude & (magnitude - 1)) == 0  # 0 and every 2**k
    fits = (values >= -(1 << (weight_bits - 1))) & (values < 1 << (weight_bits - 1))
    return power & fits


def check_shift_codebook(image: EieImage) -> None:
    """Raise :class:`EiexError` naming the first codebook entry of ``image`` that is neither 0 nor a
    signed power of two."""
    e = image.engine
    bad = np.flatnonzero(~is_power_of_two_codebook(image.codebook, e.weight_bits))
    if len(bad):
        index = int(bad[0])
        layer = next((l for l in image.layers if l.codebook_base <= index < l.codebook_base + e.codebook_size), None)
        where = (f"layer {layer.name} code {index - layer.codebook_base}" if layer is not None
                 else f"codebook word {index}")
        raise EiexError(f"--mac shift needs every codebook entry to be 0 or a signed power of two; {where} is "
                        f"{int(image.codebook[index])}")
