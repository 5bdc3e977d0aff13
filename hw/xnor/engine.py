"""The XNOR engine: one MVTU per layer, chained as a dataflow pipeline.

Block diagram::

    input (S_0 bits a beat) ─► bank ─► MVTU 0 ─► bank ─► MVTU 1 ─► ... ─► MVTU L-1 ─► bank ─► output
                                        (P_0 x S_0)        (P_1 x S_1)     (scores)      (one a beat)
    load ─► every layer's per-PE weight and threshold memories

Every arrow into an MVTU is a :class:`~eiex.hw.xnor.banks.BankedBuffer` of three banks, so all
layers work on successive images at once; the interval between images is the slowest layer's
``NF * SF`` steps. The input stream carries the first layer's SIMD words (``SF_0`` beats per image,
bit ``i`` of beat ``sf`` is input ``sf * S_0 + i``, padding bits ignored); the output stream carries
the ``M`` signed scores ``2 * acc - K`` of the last layer, one per beat, padding rows dropped.
Loads are accepted only while the pipeline is empty.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from eiex.hw.xnor.banks import N_BANKS, BankedBuffer, following
from eiex.hw.xnor.mvtu import LayerGeometry, Mvtu
from eiex.sw.errors import EiexError


def load_layout(layers: list[LayerGeometry]) -> data.StructLayout:
    """Payload of the load interface: one word of one PE's weight (``sel`` 0) or threshold (1) memory."""
    return data.StructLayout({
        "layer": range(max(2, len(layers))),
        "sel": 1,
        "pe": range(max(2, max(g.pe for g in layers))),
        "addr": range(max(2, max(g.nf * g.sf for g in layers))),
        "data": max(max(g.simd, g.thr_bits) for g in layers),
    })


class XnorEngine(wiring.Component):
    """Binarized MLP engine.

    Parameters
    ----------
    layers : list of LayerGeometry
        The layers in execution order; only the last is an output layer.
    init : list of dict or None
        Per layer, the MVTU's elaboration-time memory contents (see :class:`Mvtu`).

    Attributes
    ----------
    input : In(stream.Signature(S_0))
    output : Out(stream.Signature(signed(score_bits)))
    load : In(stream.Signature(load_layout(layers)))
    idle : Out(1)
        Nothing in flight: loads are accepted.
    """

    def __init__(self, layers: list[LayerGeometry], init: list[dict] | None = None):
        try:
            if not layers:
                raise EiexError("an XNOR engine needs at least one layer")
            for l, g in enumerate(layers):
                if not isinstance(g, LayerGeometry):
                    raise EiexError(f"layer {l} must be a LayerGeometry, not {type(g).__name__}")
                if g.output != (l == len(layers) - 1):
                    raise EiexError(f"layer {l}: only the last layer is the output layer")
                if l and g.in_features != layers[l - 1].out_features:
                    raise EiexError(f"layer {l} takes {g.in_features} inputs but layer {l - 1} gives "
                                    f"{layers[l - 1].out_features}")
            if init is not None and len(init) != len(layers):
                raise EiexError(f"init holds {len(init)} layers, the engine has {len(layers)}")
        except EiexError:
            self._MustUse__used = True  # a rejected object is no forgotten hardware
            raise
        self.layers = list(layers)
        self.init = init
        last = layers[-1]
        super().__init__({
            "input": In(stream.Signature(layers[0].simd)),
            "output": Out(stream.Signature(signed(last.score_bits))),
            "load": In(stream.Signature(load_layout(layers))),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        layers = self.layers
        first, last = layers[0], layers[-1]

        buffers = [BankedBuffer(first.sf, first.simd, first.simd, first.sf)]
        for g, after in zip(layers[:-1], layers[1:]):
            buffers.append(BankedBuffer(g.nf, g.pe, after.simd, after.sf))
        buffers.append(BankedBuffer(last.nf, last.pe * last.score_bits, last.score_bits, last.out_features))
        for i, buf in enumerate(buffers):
            m.submodules[f"buffer{i}"] = buf

        units = []
        for l, g in enumerate(layers):
            unit = Mvtu(g, None if self.init is None else self.init[l])
            m.submodules[f"mvtu{l}"] = unit
            units.append(unit)
            src, dst = buffers[l], buffers[l + 1]
            m.d.comb += [
                unit.in_full.eq(src.full), src.release.eq(unit.in_release),
                src.release_bank.eq(unit.in_release_bank), src.r_bank.eq(unit.in_bank),
                src.r_index.eq(unit.in_index), unit.in_data.eq(src.r_data),
                unit.out_free.eq(dst.free), dst.claim.eq(unit.out_claim), dst.claim_bank.eq(unit.out_claim_bank),
                dst.we.eq(unit.out_we), dst.w_bank.eq(unit.out_bank), dst.w_index.eq(unit.out_index),
                dst.w_data.eq(unit.out_data), dst.commit.eq(unit.out_commit),
            ]

        # ---- everything idle: loads allowed ----------------------------------------------------
        banks_free = Signal()
        m.d.comb += banks_free.eq(Cat(*(buf.free for buf in buffers)).all())
        busy = Signal()
        m.d.comb += busy.eq(Cat(*(unit.busy for unit in units)).any())
        in_beat = Signal(range(first.sf))
        m.d.comb += self.idle.eq(banks_free & ~busy & (in_beat == 0))

        # ---- load: decoded into every MVTU's memories -------------------------------------------
        m.d.comb += self.load.ready.eq(self.idle)
        for l, unit in enumerate(units):
            m.d.comb += [unit.ld_en.eq(self.load.valid & self.load.ready & (self.load.payload.layer == l)),
                         unit.ld_sel.eq(self.load.payload.sel), unit.ld_pe.eq(self.load.payload.pe),
                         unit.ld_addr.eq(self.load.payload.addr), unit.ld_data.eq(self.load.payload.data)]

        # ---- input: SF_0 beats per image into the first buffer ---------------------------------
        src = buffers[0]
        in_bank = Signal(range(N_BANKS))
        starting = in_beat == 0
        free_now = Signal()
        m.d.comb += free_now.eq(src.free.bit_select(in_bank, 1))
        m.d.comb += self.input.ready.eq(~self.load.valid & (~starting | free_now))
        accept = self.input.valid & self.input.ready
        final_beat = in_beat == first.sf - 1
        m.d.comb += [src.claim.eq(accept & starting), src.claim_bank.eq(in_bank),
                     src.we.eq(accept), src.w_bank.eq(in_bank), src.w_index.eq(in_beat),
                     src.w_data.eq(self.input.payload), src.commit.eq(final_beat)]
        with m.If(accept):
            with m.If(final_beat):
                m.d.sync += [in_beat.eq(0), in_bank.eq(following(in_bank))]
            with m.Else():
                m.d.sync += in_beat.eq(in_beat + 1)

        # ---- output: the M scores of a full bank, one per beat ---------------------------------
        dst = buffers[-1]
        out_bank = Signal(range(N_BANKS))
        out_row = Signal(range(last.out_features))
        ready_bank = Signal()
        m.d.comb += ready_bank.eq(dst.full.bit_select(out_bank, 1))
        m.d.comb += [dst.r_bank.eq(out_bank), dst.r_index.eq(out_row),
                     self.output.valid.eq(ready_bank), self.output.payload.eq(dst.r_data)]
        final_row = out_row == last.out_features - 1
        with m.If(self.output.valid & self.output.ready):
            with m.If(final_row):
                m.d.comb += [dst.release.eq(1), dst.release_bank.eq(out_bank)]
                m.d.sync += [out_row.eq(0), out_bank.eq(following(out_bank))]
            with m.Else():
                m.d.sync += out_row.eq(out_row + 1)
        return m

