"""A top for place and route that keeps every port of an engine inside the FPGA, yet observable.

An engine has hundreds of port bits (load words, streams, statistics); no package has that many
pins, and a port left unconnected would let synthesis delete the logic behind it. The top gives
the engine four pins:

* ``din`` and ``shift``: a shift register as wide as all the engine's input ports together takes
  one bit from ``din`` in each cycle ``shift`` is high; its bits drive the inputs (stream payloads and valids, readies of output streams). The
  register's contents are unknown to synthesis, so no input is a constant and nothing is pruned;
* ``capture`` and ``dout``: every output bit of the engine is registered into a shift register of
  the same width when ``capture`` is high, and shifted out on ``dout`` otherwise, so every output
  (and all the logic and memories that feed it) stays observable.

Both chains are registers next to the engine's own ports, so they add one register stage on each
side and no logic in the engine's paths: the Fmax measured is the engine's.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from eiex.errors import EiexError


def port_bits(engine: wiring.Component) -> tuple[list, list]:
    """The engine's input and output port values (``(inputs, outputs)``), in signature order."""
    inputs, outputs = [], []
    for path, member, value in engine.signature.flatten(engine):
        (inputs if member.flow == wiring.In else outputs).append(Value.cast(value))
    return inputs, outputs


class ObservableTop(wiring.Component):
    """``engine`` with its ports behind a serial-in and a capture-and-shift-out register chain.

    Parameters
    ----------
    engine : wiring.Component
        The design to build; becomes the submodule ``engine``.

    Attributes
    ----------
    din : In(1)
        Serial input into the chain that drives the engine's inputs.
    shift : In(1)
        Shift ``din`` into that chain (else it holds).
    capture : In(1)
        Load the output chain from the engine's outputs (else it shifts towards ``dout``).
    dout : Out(1)
        Serial output of the output chain.
    in_bits, out_bits : int
        Lengths of the two chains.
    """

    def __init__(self, engine: wiring.Component):
        if not isinstance(engine, wiring.Component):
            raise EiexError(f"engine must be an amaranth wiring.Component, not {type(engine).__name__}")
        self.engine = engine
        inputs, outputs = port_bits(engine)
        self.in_bits = sum(len(v) for v in inputs)
        self.out_bits = sum(len(v) for v in outputs)
        if not self.in_bits or not self.out_bits:
            raise EiexError("the engine needs at least one input and one output port bit")
        super().__init__({"din": In(1), "shift": In(1), "capture": In(1), "dout": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = self.engine
        inputs, outputs = port_bits(self.engine)

        chain_in = Signal(self.in_bits)
        with m.If(self.shift):
            m.d.sync += chain_in.eq(Cat(self.din, chain_in[:-1]))
        m.d.comb += Cat(*inputs).eq(chain_in)

        chain_out = Signal(self.out_bits)
        m.d.sync += chain_out.eq(Mux(self.capture, Cat(*outputs), chain_out >> 1))
        m.d.comb += self.dout.eq(chain_out[0])
        return m
