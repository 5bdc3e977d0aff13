"""The XNOR engine: one MVTU per layer, chained as a dataflow pipeline.

Block diagram::

    input (S_0 bits a beat) ─► bank ─► MVTU 0 ─► bank ─► MVTU 1 ─► ... ─► MVTU L-1 ─► bank ─► output
                                        (P_0 x S_0)        (P_1 x S_1)     (scores)      (one a beat)
    load ─► every layer's per-PE weight and threshold memories

Every arrow into or out of an MVTU is a :class:`~eiex.hw.xnor.banks.BankedBuffer` of three banks
in one memory, so all layers work on successive images at once; the interval between images is the slowest layer's
``NF * SF`` steps. The input stream carries the first layer's SIMD words (``SF_0`` beats per image,
bit ``i`` of beat ``sf`` is input ``sf * S_0 + i``, padding bits ignored); the output stream carries
the ``M`` signed scores ``2 * acc - K`` of the last layer, one per beat, padding rows dropped.
Loads are accepted only while the pipeline is empty.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from eiex.hw.xnor.banks import N_BANKS, BankedBuffer, BufferGeometry, following
from eiex.hw.xnor.mvtu import LayerGeometry, Mvtu
from eiex.errors import EiexError


def load_layout(layers: list[LayerGeometry]) -> data.StructLayout:
    """Payload of the load interface: one word of one PE's weight (``sel`` 0) or threshold (1) memory."""
    return data.StructLayout({
        "layer": range(max(2, len(layers))),
        "sel": 1,
        "pe": range(max(2, max(g.pe for g in layers))),
        "addr": range(max(2, max(g.nf * g.sf for g in layers))),
        "data": max(max(g.simd, g.thr_bits) for g in layers),
    })


def _check_layers(layers, init) -> None:
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

    def __new__(cls, layers, init=None, *, src_loc_at=0):
        # checked before the object exists, so a refused engine is no unused hardware
        _check_layers(layers, init)
        return super().__new__(cls, src_loc_at=1 + src_loc_at)

    def __init__(self, layers: list[LayerGeometry], init: list[dict] | None = None):
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
        first = layers[0]
        geometries = buffer_geometries(layers)
        buffers = [BankedBuffer(bg) for bg in geometries]
        for i, buf in enumerate(buffers):
            m.submodules[f"buffer{i}"] = buf

        units = []
        for l, g in enumerate(layers):
            unit = Mvtu(g, geometries[l], None if self.init is None else self.init[l])
            m.submodules[f"mvtu{l}"] = unit
            units.append(unit)
            wiring.connect(m, unit.src, buffers[l].r)
            wiring.connect(m, unit.dst, buffers[l + 1].w)

        # ---- everything idle: loads allowed ----------------------------------------------------
        banks_free = Signal()
        m.d.comb += banks_free.eq(Cat(*(buf.w.free for buf in buffers)).all())
        busy = Signal()
        m.d.comb += busy.eq(Cat(*(unit.busy for unit in units)).any())
        in_beat = Signal(range(first.sf))
        m.d.comb += self.idle.eq(banks_free & ~busy & (in_beat == 0))

        # ---- load: registered, then decoded into every MVTU's memories ---------------------------
        # (the register keeps the idle logic off the memories' write paths; a word is written the
        # cycle after it is accepted, long before any image reaches the first MVTU)
        m.d.comb += self.load.ready.eq(self.idle)
        accepted = Signal()
        word = Signal.like(self.load.payload)
        m.d.sync += [accepted.eq(self.load.valid & self.load.ready), word.eq(self.load.payload)]
        for l, unit in enumerate(units):
            m.d.comb += [unit.ld_en.eq(accepted & (word.layer == l)),
                         unit.ld_sel.eq(word.sel), unit.ld_pe.eq(word.pe),
                         unit.ld_addr.eq(word.addr), unit.ld_data.eq(word.data)]

        self._input(m, buffers[0].w, in_beat)
        self._output(m, buffers[-1].r)
        return m

    def _input(self, m, w, in_beat):
        """``SF_0`` beats per image into the first buffer, padding bits zeroed (the MVTU counts on it);
        with ``S_0 > K_0`` only the ``K_0`` real bits of the one beat are stored."""
        first = self.layers[0]
        in_bank = Signal(range(N_BANKS))
        starting = in_beat == 0
        m.d.comb += self.input.ready.eq(~self.load.valid & (~starting | w.free.bit_select(in_bank, 1)))
        accept = self.input.valid & self.input.ready
        final_beat = in_beat == first.sf - 1
        tail = first.in_features - (first.sf - 1) * first.simd  # real bits of the final beat
        data = self.input.payload[:first.used_simd]
        if tail < first.used_simd:
            data = Cat(data[:tail], Mux(final_beat, 0, data[tail:]))
        m.d.comb += [w.claim.eq(accept & starting), w.claim_bank.eq(in_bank),
                     w.we.eq(accept), w.bank.eq(in_bank), w.data.eq(data), w.commit.eq(final_beat)]
        with m.If(accept):
            with m.If(final_beat):
                m.d.sync += [in_beat.eq(0), in_bank.eq(following(in_bank))]
            with m.Else():
                m.d.sync += in_beat.eq(in_beat + 1)

    def _output(self, m, r):
        """The ``M`` scores of a full bank, one a beat. The read is synchronous: the address is that
        of the next beat, and a bank is offered from the second cycle it is seen full (so that its
        last word was written before the read)."""
        last = self.layers[-1]
        bank = Signal(range(N_BANKS))
        row = Signal(range(last.out_features))
        word = Signal(range(max(2, last.nf)))
        slice_ = Signal(range(max(2, last.pe)))
        full_before = Signal(N_BANKS)
        m.d.sync += full_before.eq(r.full)
        m.d.comb += [self.output.valid.eq(full_before.bit_select(bank, 1)), self.output.payload.eq(r.data)]
        next_bank, next_row = Signal.like(bank), Signal.like(row)
        next_word, next_slice = Signal.like(word), Signal.like(slice_)
        m.d.comb += [next_bank.eq(bank), next_row.eq(row), next_word.eq(word), next_slice.eq(slice_)]
        with m.If(self.output.valid & self.output.ready):
            with m.If(row == last.out_features - 1):
                m.d.comb += [r.release.eq(1), r.release_bank.eq(bank), next_bank.eq(following(bank)),
                             next_row.eq(0), next_word.eq(0), next_slice.eq(0)]
            with m.Else():
                m.d.comb += next_row.eq(row + 1)
                if last.pe == 1:
                    m.d.comb += next_word.eq(word + 1)
                else:
                    with m.If(slice_ == last.pe - 1):
                        m.d.comb += [next_word.eq(word + 1), next_slice.eq(0)]
                    with m.Else():
                        m.d.comb += next_slice.eq(slice_ + 1)
        m.d.sync += [bank.eq(next_bank), row.eq(next_row), word.eq(next_word), slice_.eq(next_slice)]
        m.d.comb += [r.bank.eq(next_bank), r.word.eq(next_word), r.slice.eq(next_slice)]


def buffer_geometries(layers: list[LayerGeometry]) -> list[BufferGeometry]:
    """The buffers before each layer and after the last: input beats, each layer's folds of ``P``
    results (read as the next layer's SIMD words), the output layer's folds of ``P`` scores. Only
    real rows and columns are stored: a layer with ``P > M`` writes its one fold's ``M`` results
    (``used_pe``), one with ``S > K`` reads its one SIMD word's ``K`` bits (``used_simd``)."""
    first, last = layers[0], layers[-1]
    geometries = [BufferGeometry(first.sf, first.used_simd, first.used_simd, first.sf)]
    for g, after in zip(layers[:-1], layers[1:]):
        geometries.append(BufferGeometry(g.nf, g.used_pe, after.used_simd, after.sf))
    geometries.append(BufferGeometry(last.nf, last.used_pe * last.score_bits, last.score_bits, last.out_features))
    return geometries
