"""An EIE image as the engine's memory contents and as load-interface writes (the paper's I/O mode)."""

from __future__ import annotations

from eiex.hw.eie.engine import MemSel, layer_layout
from eiex.hw.eie.params import HwParams
from eiex.sw.images.eie.image import EieImage
from eiex.sw.images.words import to_unsigned


def layer_rows(image: EieImage, hw: HwParams) -> list[dict]:
    """The layer table: one dict per layer, ``last`` set on the final one."""
    rows = []
    for l, layer in enumerate(image.layers):
        rows.append({"rows": layer.rows, "cols": layer.cols, "relu": int(layer.relu),
                     "weight_frac": layer.weight_frac, "ptr_base": layer.ptr_base,
                     "bias_base": layer.bias_base, "codebook_base": layer.codebook_base,
                     "last": int(l == len(image.layers) - 1)})
    return rows


def memory_contents(image: EieImage, hw: HwParams) -> dict:
    """Every memory's words (unsigned), for :class:`EieEngine`'s ``init`` or for loading."""
    hw.check_image(image)
    e = image.engine

    codebook = to_unsigned(image.codebook, e.weight_bits)
    pes = []
    for pe in image.pes:
        pes.append({
            "spmat": pe.spmat_words(e) if len(pe.v) else [],
            "ptr": to_unsigned(pe.ptr, e.ptr_bits),
            "bias": to_unsigned(pe.bias, e.bias_bits),
            "codebook": codebook,
        })
    return {"pes": pes, "layers": layer_rows(image, hw)}


def load_writes(image: EieImage, hw: HwParams, skip_zero: bool = False) -> list[dict]:
    """Load-interface payloads (``sel``, ``pe``, ``addr``, ``data``) writing the whole image.

    ``skip_zero`` leaves out zero words: enough for an engine whose memories are still 0."""
    contents = memory_contents(image, hw)
    writes = []

    def put(sel, pe, words):
        for addr, word in enumerate(words):
            if word or not skip_zero:
                writes.append({"sel": sel.value, "pe": pe, "addr": addr, "data": int(word)})

    for p, pe in enumerate(contents["pes"]):
        put(MemSel.SPMAT, p, pe["spmat"])
        put(MemSel.PTR, p, pe["ptr"])
        put(MemSel.BIAS, p, pe["bias"])
    put(MemSel.CODEBOOK, 0, contents["pes"][0]["codebook"])
    lay = layer_layout(hw)
    for l, row in enumerate(contents["layers"]):
        writes.append({"sel": MemSel.LAYER.value, "pe": 0, "addr": l, "data": lay.const(row).as_value().value})
    return writes
