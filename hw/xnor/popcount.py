"""Pipelined population count: a balanced adder tree with a register every few levels.

Level ``j`` of the tree adds pairs of ``j``-bit counts; a register follows every
``levels_per_stage`` levels and the last level, so that each cycle holds at most that many adders
in series. The count of the bits given in cycle ``t`` is in ``count`` from cycle ``t + latency``.
Registers update every cycle (no enable): the pipeline never stalls.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from eiex.errors import EiexError

LEVELS_PER_STAGE = 3


def tree_levels(width: int) -> int:
    """Adder levels of a balanced tree over ``width`` bits."""
    return (width - 1).bit_length()


def popcount_latency(width: int, levels_per_stage: int = LEVELS_PER_STAGE) -> int:
    """Registers from ``bits`` to ``count``: one after every ``levels_per_stage`` levels and the last."""
    return max(1, -(-tree_levels(width) // levels_per_stage))


class Popcount(wiring.Component):
    """Number of set bits of ``bits``, ``latency`` cycles later.

    Parameters
    ----------
    width : int
        Bits counted.
    levels_per_stage : int
        Adder levels between registers.

    Attributes
    ----------
    bits : In(width)
    count : Out(range(width + 1))
    latency : int
    """

    def __init__(self, width: int, levels_per_stage: int = LEVELS_PER_STAGE):
        for name, value in (("width", width), ("levels_per_stage", levels_per_stage)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise EiexError(f"{name} must be a positive integer, not {value!r}")
        self.width, self.levels_per_stage = width, levels_per_stage
        self.latency = popcount_latency(width, levels_per_stage)
        super().__init__({"bits": In(width), "count": Out(range(width + 1))})

    def elaborate(self, platform):
        m = Module()
        terms = list(self.bits)
        level = 0
        while len(terms) > 1:
            paired = [a + b for a, b in zip(terms[0::2], terms[1::2])]
            terms = paired + ([terms[-1]] if len(terms) % 2 else [])
            level += 1
            if level % self.levels_per_stage == 0 and len(terms) > 1:
                terms = [self._register(m, t, f"l{level}_{i}") for i, t in enumerate(terms)]
        m.d.sync += self.count.eq(terms[0])
        return m

    @staticmethod
    def _register(m, value, name):
        reg = Signal(len(value), name=name)
        m.d.sync += reg.eq(value)
        return reg
