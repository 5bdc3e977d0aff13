"""The write-back arithmetic of one row (spec section 6, steps 1 to 4), as a pipeline.

``acc + bias`` (step 1's bias), round half up by ``frac`` bits (step 2), saturate to ``act_bits``
(step 3), ReLU (step 4) and the result's non-zero flag, one row per cycle in
:data:`Rescale.LATENCY` register stages:

* ``S1``: ``total = acc + bias``;
* ``S2``: ``half = (2 * total) >> frac``, so ``floor((total + 2**(f-1)) / 2**f) == (half + 1) >> 1``
  for every ``f``, ``f == 0`` included (no special case);
* ``S3``: ``rounded = (half + 1) >> 1``;
* ``S4``: saturate, ReLU, flag.

A ``tag`` (any shape) travels beside each row, for the caller's address and enables.
"""

from __future__ import annotations

from amaranth import Module, Mux, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from eiex.hw.eie.params import WEIGHT_FRAC_BITS, HwParams


class Rescale(wiring.Component):
    """Round, saturate and ReLU ``acc + bias`` into an activation, pipelined.

    Parameters
    ----------
    hw : HwParams
        Engine instance (accumulator, bias and activation widths).
    tag_shape : shape-castable
        Shape of the ``tag`` carried beside each row.

    Attributes
    ----------
    valid, acc, bias, tag : in
        A row: its accumulator and bias (both as read from memory this cycle).
    frac, relu : in
        The layer's ``weight_frac`` and ReLU; constant while rows are in flight.
    out_valid, y, flag, out_tag : out
        The row :data:`LATENCY` cycles later: its activation and ``y != 0``.
    """

    #: cycles from a row in to its result out
    LATENCY = 4

    def __init__(self, hw: HwParams, tag_shape=1):
        self.hw = hw
        Shape.cast(tag_shape)  # rejects what is no shape
        self.tag_shape = tag_shape
        e = hw.engine
        super().__init__({
            "valid": In(1), "acc": In(signed(hw.acc_bits)), "bias": In(signed(e.bias_bits)),
            "tag": In(self.tag_shape), "frac": In(WEIGHT_FRAC_BITS), "relu": In(1),
            "out_valid": Out(1), "y": Out(signed(e.act_bits)), "flag": Out(1), "out_tag": Out(self.tag_shape),
        })

    def elaborate(self, platform):
        hw, e = self.hw, self.hw.engine
        m = Module()
        valid = [Signal(name=f"valid_{s}") for s in range(1, self.LATENCY + 1)]
        tag = [Signal(self.tag_shape, name=f"tag_{s}") for s in range(1, self.LATENCY + 1)]
        m.d.sync += [valid[0].eq(self.valid), tag[0].eq(self.tag)]
        for s in range(1, self.LATENCY):
            m.d.sync += [valid[s].eq(valid[s - 1]), tag[s].eq(tag[s - 1])]

        total = Signal(signed(hw.acc_bits))
        m.d.sync += total.eq(self.acc + self.bias)
        half = Signal(signed(hw.acc_bits + 1))
        m.d.sync += half.eq((total << 1) >> self.frac)
        rounded = Signal(signed(hw.acc_bits))
        m.d.sync += rounded.eq((half + 1) >> 1)
        lo, hi = e.act_range()
        sat = Signal(signed(e.act_bits))
        with m.If(rounded > hi):
            m.d.comb += sat.eq(hi)
        with m.Elif(rounded < lo):
            m.d.comb += sat.eq(lo)
        with m.Else():
            m.d.comb += sat.eq(rounded)
        y = Signal(signed(e.act_bits))
        m.d.comb += y.eq(Mux(self.relu & sat[-1], 0, sat))
        m.d.sync += [self.y.eq(y), self.flag.eq(y != 0)]
        m.d.comb += [self.out_valid.eq(valid[-1]), self.out_tag.eq(tag[-1])]
        return m
