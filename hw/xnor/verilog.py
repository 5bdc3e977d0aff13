"""Verilog of an XNOR engine instance (Amaranth's builtin Yosys)."""

from __future__ import annotations

from amaranth.back import verilog

from eiex.hw.xnor.engine import XnorEngine
from eiex.hw.xnor.mvtu import LayerGeometry


def to_verilog(layers: list[LayerGeometry], name: str = "xnor_engine", init: list[dict] | None = None) -> str:
    """Verilog source of the engine; memories empty (loaded through ``load``) unless ``init``
    (from :func:`eiex.hw.xnor.memory_map.memory_contents`) gives their contents."""
    return verilog.convert(XnorEngine(layers, init=init), name=name)
