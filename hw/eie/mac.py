"""A PE's product of a weight and an activation: a multiplier, or a shifter (``HwParams.mac``).

With ``mac == "multiply"`` the codebook memory holds the entries (signed ``weight_bits``) and
:class:`Product` multiplies. With ``mac == "shift"`` every entry is 0 or a signed power of two
(:mod:`eiex.sw.images.eie.powers`), and the memory holds it as a shift code
(:func:`shift_code_layout`): ``nonzero``, ``neg`` and ``k`` for ``w = (-1)**neg * 2**k``, or
``w = 0`` when ``nonzero`` is 0 (so a memory word of zeros, as after power-up or a load that skips
zero words, is the weight 0). :class:`ShiftEncoder` converts an entry on the memory's write path,
:func:`codebook_init` at elaboration; :class:`Product` then shifts. With ``mac == "index"`` there is
no codebook memory: the weight is the entry's code itself, a signed ``idx_bits`` integer
(:mod:`eiex.sw.images.eie.identity`), and :class:`Product` multiplies by it (a narrower multiplier).

``k`` is the entry's lowest set bit: for ``+-2**k`` in two's complement that is ``k`` for both
signs, so the encoder is a priority encoder on the entry's bits with no absolute value first.

The product takes the same two register stages either way (``E4``, ``E5`` of
:mod:`eiex.hw.eie.pe`), so the engine's cycle model (:mod:`eiex.hw.eie.cycles`) holds for all
three. The first stage only registers the weight as it comes (for multiply and shift, the codebook
word): the block RAM's output is slow (the first shift MAC negated there, and that read was its
critical path: 99.01 MHz on the ECP5-85F at 8 PEs, against 111.77 for the multiplier;
``docs/benchmarks.md``).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from eiex.hw.eie.lnzd import LeadingNonZero
from eiex.hw.eie.params import HwParams
from eiex.sw.images.words import to_signed


def shift_code_layout(weight_bits: int) -> data.StructLayout:
    """A codebook entry ``w`` of the shift MAC: ``w = 0`` unless ``nonzero``, else
    ``(-1)**neg * 2**k``."""
    return data.StructLayout({"nonzero": 1, "neg": 1, "k": range(weight_bits)})


def shift_code(value: int) -> dict:
    """The shift code of the signed integer ``value`` (what :class:`ShiftEncoder` computes); it
    stands for ``value`` exactly when ``value`` is 0 or a signed power of two."""
    value = int(value)
    return {"nonzero": int(value != 0), "neg": int(value < 0),
            "k": (value & -value).bit_length() - 1 if value else 0}


def codebook_shape(hw: HwParams):
    """The shape of a decoded weight: a codebook memory word, or (``index``) the code itself."""
    e = hw.engine
    if hw.mac == "shift":
        return shift_code_layout(e.weight_bits)
    return signed(e.idx_bits if hw.mac == "index" else e.weight_bits)


def codebook_init(hw: HwParams, words) -> list:
    """A codebook memory's initial contents from the image's unsigned ``weight_bits`` words."""
    values = to_signed(words, hw.engine.weight_bits).tolist()
    return [shift_code(v) for v in values] if hw.mac == "shift" else values


def codebook_write(m: Module, hw: HwParams, en, addr, word) -> tuple:
    """``(en, addr, data)`` of the codebook memory's write port for a load-interface write of ``word``
    (an entry in its low ``weight_bits``) at ``addr``: the entry as it comes, or, for the shift MAC,
    the write registered in the PE and then converted to its shift code (a :class:`ShiftEncoder`
    added to ``m``). The load bus reaches every PE from one register, so the encoder after it was
    the critical path at 8 PEs (92.0 MHz on the ECP5-85F, ``docs/benchmarks.md``); the write lands
    one cycle later, long before the first input vector can reach the MAC."""
    if hw.mac != "shift":
        return en, addr, word
    en_r, addr_r = Signal(name="codebook_we_r"), Signal.like(addr, name="codebook_waddr_r")
    word_r = Signal(signed(hw.engine.weight_bits), name="codebook_wdata_r")
    m.d.sync += [en_r.eq(en), addr_r.eq(addr), word_r.eq(word[:hw.engine.weight_bits])]
    encoder = m.submodules.codebook_encoder = ShiftEncoder(hw.engine.weight_bits)
    m.d.comb += encoder.value.eq(word_r)
    return en_r, addr_r, encoder.code


class ShiftEncoder(wiring.Component):
    """A codebook entry as its shift code, combinational.

    Parameters
    ----------
    weight_bits : int
        Width of an entry.

    Attributes
    ----------
    value : In(signed(weight_bits))
    code : Out(shift_code_layout(weight_bits))
        ``nonzero = value != 0``, ``neg`` the sign bit, ``k`` the lowest set bit's index.
    """

    def __init__(self, weight_bits: int):
        self.weight_bits = weight_bits
        super().__init__({"value": In(signed(weight_bits)), "code": Out(shift_code_layout(weight_bits))})

    def elaborate(self, platform):
        m = Module()
        lowest = m.submodules.lowest = LeadingNonZero(self.weight_bits)
        m.d.comb += [lowest.flags.eq(self.value.as_unsigned()), self.code.nonzero.eq(lowest.found),
                     self.code.neg.eq(self.value[-1]), self.code.k.eq(lowest.index)]
        return m


class Product(wiring.Component):
    """``w * a``, registered twice: ``w`` and ``a`` (and ``-a`` for the shift) in the first stage, the
    product in the second.

    Parameters
    ----------
    hw : HwParams
        Engine instance (widths, ``mac``).

    Attributes
    ----------
    a : In(signed(act_bits))
        The activation.
    w : In(codebook_shape(hw))
        The decoded weight (registered data), in the same cycle as ``a``.
    p : Out(signed(act_bits + weight_bits))
        ``w * a``, two cycles later.
    """

    #: register stages from ``a``, ``w`` to ``p``
    LATENCY = 2

    def __init__(self, hw: HwParams):
        self.hw = hw
        e = hw.engine
        super().__init__({"a": In(signed(e.act_bits)), "w": In(codebook_shape(hw)),
                          "p": Out(signed(e.act_bits + e.weight_bits))})

    def elaborate(self, platform):
        m = Module()
        e = self.hw.engine
        if self.hw.mac == "shift":
            # first stage: the code (straight from the block RAM's output: no logic on it), a and -a;
            # second: the sign and zero select, then the shift (|a| << k reaches
            # 2**(act_bits + weight_bits - 2), inside the product's width)
            code = Signal.like(self.w, name="code_r")
            a = Signal.like(self.a, name="a_r")
            minus_a = Signal(signed(e.act_bits + 1), name="minus_a_r")
            m.d.sync += [code.eq(self.w), a.eq(self.a), minus_a.eq(-self.a)]
            m.d.sync += self.p.eq(Mux(code.nonzero, Mux(code.neg, minus_a, a), 0) << code.k)
        else:
            a = Signal.like(self.a, name="a_r")
            w = Signal.like(self.w, name="w_r")
            m.d.sync += [a.eq(self.a), w.eq(self.w)]
            m.d.sync += self.p.eq(w * a)
        return m
