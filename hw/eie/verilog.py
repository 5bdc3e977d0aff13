"""Verilog of an EIE engine instance (Amaranth's builtin Yosys)."""

from __future__ import annotations

from amaranth.back import verilog

from eiex.hw.eie.engine import EieEngine
from eiex.hw.eie.params import HwParams


def to_verilog(hw: HwParams, name: str = "eie_engine", init: dict | None = None) -> str:
    """Verilog source of the engine; memories empty (loaded through ``load``) unless ``init``
    (from :func:`eiex.hw.eie.memory_map.memory_contents`) gives their contents."""
    return verilog.convert(EieEngine(hw, init=init), name=name)
