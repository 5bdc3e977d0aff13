"""Leading-non-zero detection: the lowest set bit of a window of flags, as a tree.

EIE's central control unit finds the next non-zero activation with a quadtree of LNZD nodes; each
node merges up to four children's ``(found, index)`` pairs, preferring the lowest. This is that
tree, combinational, over any window width.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from eiex.errors import EiexError

#: children per tree node (the paper's quadtree)
FANOUT = 4


class LeadingNonZero(wiring.Component):
    """Index of the lowest set bit of ``flags``.

    Parameters
    ----------
    width : int
        Number of flags.

    Attributes
    ----------
    flags : Signal(width), in
    found : Signal(1), out
        Some flag is set.
    index : Signal(range(width)), out
        The lowest set flag's index (0 when none is set).
    """

    def __init__(self, width: int):
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise EiexError(f"width must be a positive integer, not {width!r}")
        self.width = width
        super().__init__({
            "flags": In(width),
            "found": Out(1),
            "index": Out(range(max(2, width))),
        })

    def elaborate(self, platform):
        m = Module()
        index_shape = Shape.cast(range(max(2, self.width)))
        # leaves: (found, index) per flag; then merge FANOUT at a time until one node is left
        level = [(self.flags[k], Const(k, index_shape)) for k in range(self.width)]
        depth = 0
        while len(level) > 1:
            merged = []
            for g in range(0, len(level), FANOUT):
                group = level[g:g + FANOUT]
                found = Signal(name=f"lnzd_found_{depth}_{g // FANOUT}")
                index = Signal(index_shape, name=f"lnzd_index_{depth}_{g // FANOUT}")
                m.d.comb += found.eq(Cat(*(f for f, _ in group)).any())
                pick = group[-1][1]
                for f, i in reversed(group[:-1]):
                    pick = Mux(f, i, pick)
                m.d.comb += index.eq(pick)
                merged.append((found, index))
            level = merged
            depth += 1
        found, index = level[0]
        m.d.comb += [self.found.eq(found), self.index.eq(Mux(found, index, 0))]
        return m
