"""The XNOR engine: one unit per layer, chained as a dataflow pipeline.

Block diagram::

    input ─► buffer ─► unit 0 ─► buffer ─► unit 1 ─► ... ─► unit L-1 ─► buffer ─► output
                                                              (scores)          (one a beat)
    load ─► every MVTU's per-PE weight and threshold memories

A unit is an MVTU for a fully connected layer (:class:`~eiex.hw.xnor.mvtu.Mvtu`), a sliding-window
unit with an MVTU for a conv layer (:class:`~eiex.hw.xnor.conv.ConvUnit`) or a pool unit
(:class:`~eiex.hw.xnor.pool.PoolUnit`). Every buffer holds three images, so all layers work on
successive images at once and the interval between images is the slowest unit's steps: ``NF * SF``
for a fully connected layer, ``positions * T`` for a conv layer. The buffer before a fully
connected layer is a :class:`~eiex.hw.xnor.banks.BankedBuffer` read in its SIMD words; before a
conv or pool layer, a :class:`~eiex.hw.xnor.maps.MapBuffer` of pixels.

The input stream carries, per image, the first layer's ``SF_0`` SIMD words (bit ``i`` of beat
``sf`` is input ``sf * S_0 + i``, padding bits ignored) when it is fully connected, or the ``H * W``
pixels of its input map (``C`` bits each, raster order) when it is a conv or pool layer; the
output stream carries the ``M`` signed scores ``2 * acc - K`` of the last layer, one per beat,
padding rows dropped. Loads are accepted only while the pipeline is empty.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from eiex.errors import EiexError
from eiex.hw.xnor.banks import N_BANKS, BankedBuffer, BufferGeometry, following
from eiex.hw.xnor.conv import ConvGeometry, ConvUnit
from eiex.hw.xnor.maps import MapBuffer, MapGeometry
from eiex.hw.xnor.mvtu import LayerGeometry, Mvtu
from eiex.hw.xnor.pool import PoolGeometry, PoolUnit

GEOMETRIES = (LayerGeometry, ConvGeometry, PoolGeometry)


def matrix_of(g):
    """The MVTU geometry of a layer with weights (fully connected or conv), else None."""
    return g if isinstance(g, LayerGeometry) else g.matrix if isinstance(g, ConvGeometry) else None


def engine_lanes(layers) -> int:
    """XNOR lanes with hardware: ``min(P, M) * min(S, K)`` per layer with weights (padding PEs and
    lanes have none; a conv layer's ``K`` is ``k * k * C``)."""
    return sum(g.used_pe * g.used_simd for g in map(matrix_of, layers) if g is not None)


def out_shape(g):
    """The map a layer gives, or None for a fully connected layer."""
    return None if isinstance(g, LayerGeometry) else g.out_shape


def load_layout(layers) -> data.StructLayout:
    """Payload of the load interface: one word of one PE's weight (``sel`` 0) or threshold (1)
    memory of layer ``layer`` (counted over all layers, pool layers included)."""
    matrices = [g for g in map(matrix_of, layers) if g is not None]
    return data.StructLayout({
        "layer": range(max(2, len(layers))),
        "sel": 1,
        "pe": range(max(2, max(g.pe for g in matrices))),
        "addr": range(max(2, max(g.nf * g.sf for g in matrices))),
        "data": max(max(g.simd, g.thr_bits) for g in matrices),
    })


def check_layers(layers, init=None) -> None:
    """The layers chain as the engine needs (one clear line otherwise)."""
    if not layers:
        raise EiexError("an XNOR engine needs at least one layer")
    for l, g in enumerate(layers):
        if not isinstance(g, GEOMETRIES):
            raise EiexError(f"layer {l} must be a LayerGeometry, ConvGeometry or PoolGeometry, not "
                            f"{type(g).__name__}")
        last = l == len(layers) - 1
        if last != (isinstance(g, LayerGeometry) and g.output):
            raise EiexError(f"layer {l}: only the last layer is the output layer (fully connected)")
        if not l:
            continue
        before, shape = layers[l - 1], out_shape(layers[l - 1])
        if isinstance(g, LayerGeometry):
            if g.in_features != before.out_features:
                raise EiexError(f"layer {l} takes {g.in_features} inputs but layer {l - 1} gives "
                                f"{before.out_features}")
        elif shape is None:
            raise EiexError(f"layer {l} takes a map but layer {l - 1} is fully connected: the XNOR engine's "
                            f"hardware reads maps from its input, conv and pool layers only")
        elif tuple(g.in_shape) != tuple(shape):
            raise EiexError(f"layer {l} takes a {list(g.in_shape)} map but layer {l - 1} gives {list(shape)}")
    if init is not None and len(init) != len(layers):
        raise EiexError(f"init holds {len(init)} layers, the engine has {len(layers)}")


def input_beats(first) -> tuple[int, int]:
    """``(beats per image, bits per beat)`` of the input stream."""
    if isinstance(first, LayerGeometry):
        return first.sf, first.simd
    h, w, c = first.in_shape
    return h * w, c


def _writes(g) -> tuple[int, int]:
    """``(writes per image, bits per write)`` a unit gives the buffer after it."""
    if isinstance(g, LayerGeometry):
        return g.nf, g.used_pe * g.result_bits
    h, w, c = g.out_shape
    return h * w, c


def buffer_geometries(layers) -> list:
    """The buffers before each layer and after the last. Before a fully connected layer a
    :class:`BufferGeometry` of the producer's writes (input beats, a layer's folds of ``P``
    results, pixels of a map) read as the layer's SIMD words; before a conv or pool layer the
    :class:`MapGeometry` it reads. Only real rows and columns are stored: a layer with ``P > M``
    writes its one fold's ``M`` results (``used_pe``), one with ``S > K`` reads its one SIMD word's
    ``K`` bits (``used_simd``). After the output layer: its folds of ``P`` scores, read one by one."""
    geometries = []
    for l, g in enumerate(layers):
        if not isinstance(g, LayerGeometry):
            geometries.append(g.source)
            continue
        if l == 0:
            geometries.append(BufferGeometry(g.sf, g.used_simd, g.used_simd, g.sf))
        else:
            writes, width = _writes(layers[l - 1])
            geometries.append(BufferGeometry(writes, width, g.used_simd, g.sf))
    last = layers[-1]
    geometries.append(BufferGeometry(last.nf, last.used_pe * last.score_bits, last.score_bits, last.out_features))
    return geometries


class XnorEngine(wiring.Component):
    """Binarized network engine: fully connected, conv and pool layers.

    Parameters
    ----------
    layers : list of LayerGeometry, ConvGeometry or PoolGeometry
        The layers in execution order; only the last is an output layer (fully connected).
    init : list of dict or None
        Per layer, the MVTU's elaboration-time memory contents (see :class:`Mvtu`; ``None`` or
        an empty dict for a pool layer).

    Attributes
    ----------
    input : In(stream.Signature(S_0, or C of the first map))
    output : Out(stream.Signature(signed(score_bits)))
    load : In(stream.Signature(load_layout(layers)))
    idle : Out(1)
        Nothing in flight: loads are accepted.
    """

    def __new__(cls, layers, init=None, *, src_loc_at=0):
        # checked before the object exists, so a refused engine is no unused hardware
        check_layers(layers, init)
        return super().__new__(cls, src_loc_at=1 + src_loc_at)

    def __init__(self, layers, init: list[dict] | None = None):
        self.layers = list(layers)
        self.init = init
        self.buffer_geometries = buffer_geometries(self.layers)
        #: one unit per layer (an Mvtu, ConvUnit or PoolUnit), in order
        self.units = [self._unit(l, g) for l, g in enumerate(self.layers)]
        last = layers[-1]
        super().__init__({
            "input": In(stream.Signature(input_beats(layers[0])[1])),
            "output": Out(stream.Signature(signed(last.score_bits))),
            "load": In(stream.Signature(load_layout(layers))),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        layers, units = self.layers, self.units
        buffers = [MapBuffer(bg) if isinstance(bg, MapGeometry) else BankedBuffer(bg) for bg in self.buffer_geometries]
        for i, buf in enumerate(buffers):
            m.submodules[f"buffer{i}"] = buf
        for l, unit in enumerate(units):
            m.submodules[f"{type(unit).__name__.lower()}{l}"] = unit
            wiring.connect(m, unit.src, buffers[l].r)
            wiring.connect(m, unit.dst, buffers[l + 1].w)

        # ---- everything idle: loads allowed ----------------------------------------------------
        beats, _ = input_beats(layers[0])
        banks_free = Signal()
        m.d.comb += banks_free.eq(Cat(*(buf.w.free for buf in buffers)).all())
        busy = Signal()
        m.d.comb += busy.eq(Cat(*(unit.busy for unit in units)).any())
        in_beat = Signal(range(beats))
        m.d.comb += self.idle.eq(banks_free & ~busy & (in_beat == 0))

        # ---- load: registered, then decoded into every MVTU's memories ---------------------------
        # (the register keeps the idle logic off the memories' write paths; a word is written the
        # cycle after it is accepted, long before any image reaches the first MVTU)
        m.d.comb += self.load.ready.eq(self.idle)
        accepted = Signal()
        word = Signal.like(self.load.payload)
        m.d.sync += [accepted.eq(self.load.valid & self.load.ready), word.eq(self.load.payload)]
        for l, unit in enumerate(units):
            if matrix_of(layers[l]) is not None:
                m.d.comb += [unit.ld_en.eq(accepted & (word.layer == l)),
                             unit.ld_sel.eq(word.sel), unit.ld_pe.eq(word.pe),
                             unit.ld_addr.eq(word.addr), unit.ld_data.eq(word.data)]

        self._input(m, buffers[0].w, in_beat)
        self._output(m, buffers[-1].r)
        return m

    def _unit(self, l, g):
        init = None if self.init is None else self.init[l]
        if isinstance(g, LayerGeometry):
            return Mvtu(g, self.buffer_geometries[l], init)
        if isinstance(g, ConvGeometry):
            return ConvUnit(g, init)
        return PoolUnit(g)

    def _input(self, m, w, in_beat):
        """The input beats of an image into the first buffer. For a fully connected first layer,
        ``SF_0`` SIMD words, padding bits zeroed (the MVTU counts on it); with ``S_0 > K_0`` only
        the ``K_0`` real bits of the one beat are stored. For a map, its pixels as they come."""
        first = self.layers[0]
        beats, _ = input_beats(first)
        in_bank = Signal(range(N_BANKS))
        starting = in_beat == 0
        m.d.comb += self.input.ready.eq(~self.load.valid & (~starting | w.free.bit_select(in_bank, 1)))
        accept = self.input.valid & self.input.ready
        final_beat = in_beat == beats - 1
        data = self.input.payload
        if isinstance(first, LayerGeometry):
            data = data[:first.used_simd]
            tail = first.in_features - (first.sf - 1) * first.simd  # real bits of the final beat
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
