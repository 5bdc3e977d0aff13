"""Matrix-vector-threshold unit (FINN's MVTU): one binarized layer, ``P`` rows x ``S`` lanes.

Per image the unit steps through ``NF`` row folds and, inside each, ``SF`` column folds, one step
per cycle and no bubble between images. Step ``(nf, sf)`` goes through a pipeline, one stage a
cycle:

* issue: weight word ``nf * SF + sf`` (all ``P`` PEs side by side) and input slice ``sf`` are
  addressed (synchronous reads);
* fetch: the memories' outputs are registered (block RAM outputs are slow);
* popcount (``popcount_latency(S)`` stages): ``popcount(XNOR(w_p, x))`` per PE;
* accumulate: ``acc_p = (sf == 0 ? -pad : acc_p) + count_p``, where ``pad = SF * S - K`` padding
  columns each count 1 on the last column fold: their weights are 0 (spec section 4) and their
  inputs 0 (the producer zeroes them), so no mask is needed; threshold ``nf`` is read one stage
  earlier and registered here;
* compare, after the last column fold: a hidden layer's ``acc_p >= T`` (0 for a padding row, so
  that the next layer's padding inputs are 0), the output layer's ``2 * acc_p - K``;
* write: the ``P`` results of fold ``nf`` go to the next stage's buffer; the write of the last fold
  commits the image.

Padding that fills whole PEs or lanes gets no hardware (spec section 4 allows ``P > M`` and
``S > K``, where ``NF`` or ``SF`` is 1): only :attr:`LayerGeometry.used_pe` ``= min(P, M)`` PEs have
memories and popcounts and write results (with ``P > M`` the fold's write holds the ``M`` real rows
only: the padding rows are dropped); only :attr:`LayerGeometry.used_simd` ``= min(S, K)`` lanes are
read, stored and counted, so with ``S > K`` the input's lanes ``K .. S - 1`` and the weight
memories' padding bits are never looked at (and ``pad`` is 0). Beyond ``M`` and ``K``, only the
load interface (its PE number and word width) grows with ``P`` and ``S``.

The unit starts an image when its input bank is full and the next stage's bank is free; it starts
the next image in the cycle of the last step, and frees its input bank in that cycle (the input was
read at issue).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eiex.hw.xnor.banks import N_BANKS, BufferGeometry, consumer_signature, following, producer_signature
from eiex.hw.xnor.popcount import Popcount, popcount_latency
from eiex.hw.ram import BLOCK_RAM, registered_read
from eiex.errors import EiexError


#: cycles from issue to the registered memory outputs: the synchronous read, then a register
FETCH = 2
#: data bits of one block RAM (18 Kb with parity) on ECP5 and 7-series
BLOCK_RAM_DATA_BITS = 16 * 1024


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class LayerGeometry:
    """What the hardware of one layer depends on (spec section 3)."""

    in_features: int
    out_features: int
    pe: int
    simd: int
    output: bool
    thr_bits: int

    def __post_init__(self):
        for name in ("in_features", "out_features", "pe", "simd", "thr_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise EiexError(f"{name} must be a positive integer, not {value!r}")

    @classmethod
    def of(cls, layer) -> "LayerGeometry":
        """From any layer record with the spec's fields (an image layer)."""
        return cls(int(layer.in_features), int(layer.out_features), int(layer.pe), int(layer.simd),
                   layer.kind == "output", int(layer.thr_bits))

    @property
    def nf(self) -> int:
        return ceil_div(self.out_features, self.pe)

    @property
    def sf(self) -> int:
        return ceil_div(self.in_features, self.simd)

    @property
    def used_pe(self) -> int:
        """PEs that hold a real row, ``min(P, M)``: with ``P > M`` the others hold only padding rows."""
        return min(self.pe, self.out_features)

    @property
    def used_simd(self) -> int:
        """Lanes that see a real column, ``min(S, K)``: with ``S > K`` the others see only padding."""
        return min(self.simd, self.in_features)

    @property
    def padding_columns(self) -> int:
        """Padding columns counted by the used lanes, ``SF * used_simd - K`` (0 when ``S >= K``)."""
        return self.sf * self.used_simd - self.in_features

    @property
    def acc_bits(self) -> int:
        return self.in_features.bit_length()

    @property
    def score_bits(self) -> int:
        """Signed width of ``2 * acc - K``, in ``[-K, K]``."""
        return self.in_features.bit_length() + 1

    @property
    def result_bits(self) -> int:
        """Bits of one PE's result: a bit (hidden) or a score (output)."""
        return self.score_bits if self.output else 1


def _mvtu_source(geometry, source):
    """The MVTU's source buffer geometry (a default one for ``None``), or an EiexError."""
    if not isinstance(geometry, LayerGeometry):
        raise EiexError(f"geometry must be a LayerGeometry, not {type(geometry).__name__}")
    lanes = geometry.used_simd
    source = source or BufferGeometry(geometry.sf, lanes, lanes, geometry.sf)
    if (source.read_width, source.reads) != (lanes, geometry.sf):
        raise EiexError(f"the source buffer gives {source.reads} slices of {source.read_width} "
                        f"bits, the layer reads {geometry.sf} of {lanes}")
    return source


def step_layout(g: LayerGeometry) -> data.StructLayout:
    """One step ``(nf, sf)`` as issued to the datapath: the weight word it reads, where its fold goes."""
    return data.StructLayout({
        "valid": 1,
        "first": 1,   # sf == 0: the accumulators restart
        "last": 1,    # sf == SF - 1: the fold's results are compared and written
        "nf": range(max(2, g.nf)),
        "commit": 1,  # the image's last step: its fold is the image's last write
        "bank": range(N_BANKS),
        "waddr": range(max(2, g.nf * g.sf)),  # weight word nf * SF + sf
    })


def fold_layout(g: LayerGeometry) -> data.StructLayout:
    """A fold's results as the datapath writes them (``we`` with the step's ``last``); ``last_fold``:
    fold ``NF - 1``, whose padding rows are 0."""
    return data.StructLayout({"we": 1, "bank": range(N_BANKS), "commit": 1, "last_fold": 1,
                              "data": g.used_pe * g.result_bits})


def load_signature(g: LayerGeometry) -> dict:
    """The memory-write members of a unit: ``ld_sel`` 0 = weights, 1 = thresholds."""
    return {"ld_en": In(1), "ld_sel": In(1), "ld_pe": In(range(max(2, g.pe))),
            "ld_addr": In(range(max(2, g.nf * g.sf))), "ld_data": In(max(g.simd, g.thr_bits))}


class MvtuDatapath(wiring.Component):
    """The MVTU's arithmetic, fed one step a cycle by a controller: weight and threshold memories,
    XNOR and popcount per PE, accumulate, compare (see the module docstring).

    Parameters
    ----------
    geometry : LayerGeometry
    init : dict or None
        Elaboration-time memory contents (see :class:`Mvtu`).

    Attributes
    ----------
    step : In(step_layout(geometry))
        The step issued this cycle.
    x : In(used_simd)
        The step's input slice, one cycle after the step (a synchronous read's data).
    fold : Out(fold_layout(geometry))
        A fold's results, ``latency`` cycles after its last step.
    ld_* : memory writes.
    busy : Out(1)
        A step is in the pipeline.
    """

    def __init__(self, geometry: LayerGeometry, init: dict | None = None):
        self.g = geometry
        self.init = init
        self.latency = mvtu_latency(geometry)
        super().__init__({"step": In(step_layout(geometry)), "x": In(geometry.used_simd),
                          "fold": Out(fold_layout(geometry)), "busy": Out(1), **load_signature(geometry)})

    def elaborate(self, platform):
        g = self.g
        m = Module()
        step = self.step

        # ---- memories: weights (per PE, in block-RAM-sized column groups), thresholds ----------
        w_data = self._weights(m, g.nf * g.sf)
        if not g.output:
            tmem = Memory(shape=g.used_pe * g.thr_bits, depth=g.nf, attrs=BLOCK_RAM,
                          init=_rows(self.init, "thresholds", g.used_pe, g.thr_bits, g.nf))
            m.submodules.thresholds = tmem
            t_addr, t_data = registered_read(m, tmem, "threshold")
            t_write = tmem.write_port(granularity=g.thr_bits)
            ld = self.ld_en & (self.ld_sel == 1)
            m.d.comb += [t_write.addr.eq(self.ld_addr),
                         t_write.data.eq(self.ld_data[:g.thr_bits].replicate(g.used_pe)),
                         t_write.en.eq(self._pe_select(ld))]

        # ---- the step's control, delayed to each stage -------------------------------------------
        issue = {"valid": step.valid, "first": step.first, "last": step.last, "nf": step.nf,
                 "commit": step.commit, "bank": step.bank}
        pc_latency = popcount_latency(g.used_simd)
        stages = delay(m, issue, FETCH + pc_latency + 2, "stage")  # memory read, popcount, acc, compare
        acc_stage, cmp_stage, wr_stage = stages[-3:]

        # ---- XNOR and popcount per PE, accumulate, threshold ---------------------------------------
        # Padding columns of the used lanes need no mask: their weights are 0 (spec section 4) and
        # their inputs are 0 (zeroed by the producer), so each counts 1 on the last column fold: the
        # accumulator starts at minus their number.
        padding = g.padding_columns
        if not g.output:  # threshold nf read in the accumulate stage, registered for the compare
            m.d.comb += t_addr.eq(stages[-4]["nf"])
            t_q = Signal.like(t_data)
            m.d.sync += t_q.eq(t_data)
        real_rows = g.out_features - (g.nf - 1) * g.pe  # PEs with a real row on the last fold
        # the memories' outputs registered (block RAM outputs are slow); only the used lanes
        lanes = g.used_simd
        w_q, x_q = Signal(g.used_pe * lanes), Signal(lanes)
        m.d.sync += [w_q.eq(w_data), x_q.eq(self.x)]
        results = []
        for p in range(g.used_pe):
            counter = Popcount(lanes)
            m.submodules[f"popcount{p}"] = counter
            m.d.comb += counter.bits.eq(~(w_q.word_select(p, lanes) ^ x_q))
            acc = Signal(signed(g.acc_bits + 1), name=f"acc{p}")  # -padding .. K (padding < used_simd <= K)
            with m.If(acc_stage["valid"]):
                m.d.sync += acc.eq(Mux(acc_stage["first"], -padding, acc) + counter.count)
            result = Signal(signed(g.score_bits) if g.output else 1, name=f"result{p}")
            with m.If(cmp_stage["valid"] & cmp_stage["last"]):
                if g.output:
                    m.d.sync += result.eq(2 * acc - g.in_features)
                else:
                    threshold = t_q.word_select(p, g.thr_bits).as_signed()
                    fire = acc >= threshold
                    if p >= real_rows:  # a padding row on the last fold: 0 for the next layer
                        fire &= cmp_stage["nf"] != g.nf - 1
                    m.d.sync += result.eq(fire)
            results.append(result)

        m.d.comb += [self.fold.we.eq(wr_stage["valid"] & wr_stage["last"]), self.fold.bank.eq(wr_stage["bank"]),
                     self.fold.data.eq(Cat(*results)), self.fold.commit.eq(wr_stage["commit"]),
                     self.fold.last_fold.eq(wr_stage["nf"] == g.nf - 1)]
        m.d.comb += self.busy.eq(Cat(*(s["valid"] for s in stages)).any())
        return m

    def _weights(self, m, steps):
        """Weight word ``nf * SF + sf`` of every used PE, its used lanes only (``used_pe * used_simd``
        bits, PE ``p`` at ``p * used_simd``), read the cycle after its address. Each PE's columns
        are split into groups of :func:`block_columns` bits, one memory each, so that one block RAM
        holds a group's whole depth and no multiplexer joins blocks of different addresses."""
        g = self.g
        width = block_columns(steps)
        words = (self.init or {}).get("weights")
        outputs = []
        ld = self.ld_en & (self.ld_sel == 0)
        for p in range(g.used_pe):
            for lo in range(0, g.used_simd, width):
                hi = min(lo + width, g.used_simd)
                init = [] if words is None else [(int(w) >> lo) & ((1 << (hi - lo)) - 1) for w in words[p]]
                mem = Memory(shape=hi - lo, depth=steps, init=init, attrs=BLOCK_RAM)
                m.submodules[f"weights{p}_{lo}"] = mem
                read_addr, read_data = registered_read(m, mem, f"weights{p}_{lo}")
                write = mem.write_port()
                m.d.comb += [read_addr.eq(self.step.waddr), write.addr.eq(self.ld_addr),
                             write.data.eq(self.ld_data[lo:hi]), write.en.eq(ld & (self.ld_pe == p))]
                outputs.append(read_data)
        return Cat(*outputs)

    def _pe_select(self, enable):
        """One write-enable bit per used PE: PE ``ld_pe`` when ``enable`` (writes to the others,
        padding, are dropped)."""
        return Cat(*(enable & (self.ld_pe == p) for p in range(self.g.used_pe)))


class Mvtu(wiring.Component):
    """One fully connected layer's matrix-vector-threshold unit: a controller stepping through
    ``NF x SF`` per image over a :class:`MvtuDatapath`.

    Parameters
    ----------
    geometry : LayerGeometry
    source : BufferGeometry or None
        The input buffer (its words and slices), read in ``SF`` slices of ``used_simd`` bits (``S``,
        or ``K`` when ``S > K``); by default one of ``SF`` words of ``used_simd`` bits.
    init : dict or None
        ``{"weights": [[word, ...] per PE], "thresholds": [[word, ...] per PE]}`` (unsigned words as
        in the image's memories) for elaboration-time contents; zeros otherwise.

    Attributes
    ----------
    src : Out(consumer_signature(source))
        The input buffer; padding columns of the input must be 0 (see the module docstring).
    dst : Out(producer_signature(used_pe * result_bits))
        The next stage's buffer; ``data`` holds the ``used_pe`` results of a fold (``P``, or ``M``
        when ``P > M``), padding rows 0.
    ld_* : memory writes; ``ld_sel`` 0 = weights, 1 = thresholds.
    busy : Out(1)
        An image is being issued or is in the pipeline.
    latency : int
        Cycles from a fold's last issue to its write into ``dst``.
    """

    def __new__(cls, geometry, source=None, init=None, *, src_loc_at=0):
        # the arguments are checked before the object exists, so a refused one is no unused hardware
        _mvtu_source(geometry, source)
        return super().__new__(cls, src_loc_at=1 + src_loc_at)

    def __init__(self, geometry: LayerGeometry, source: BufferGeometry | None = None, init: dict | None = None):
        self.g = g = geometry
        self.source = _mvtu_source(geometry, source)
        self.init = init
        self.latency = mvtu_latency(g)
        super().__init__({
            "src": Out(consumer_signature(self.source)),
            "dst": Out(producer_signature(g.used_pe * g.result_bits)),
            **load_signature(g),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        g = self.g
        m = Module()
        m.submodules.datapath = datapath = MvtuDatapath(g, self.init)
        for name in ("ld_en", "ld_sel", "ld_pe", "ld_addr", "ld_data"):
            m.d.comb += getattr(datapath, name).eq(getattr(self, name))

        # ---- issue: step (nf, sf) addresses weight word nf * SF + sf and input slice sf ------------
        src, dst = self.src, self.dst
        running = Signal()
        nf = Signal(range(g.nf))
        sf = Signal(range(g.sf))
        waddr = Signal(range(max(2, g.nf * g.sf)))
        rd_bank = Signal(range(N_BANKS))
        wr_bank = Signal(range(N_BANKS))

        last_sf = sf == g.sf - 1
        last_step = running & last_sf & (nf == g.nf - 1)
        want = ~running | last_step
        next_rd = Mux(running, following(rd_bank), rd_bank)
        next_wr = Mux(running, following(wr_bank), wr_bank)
        start = Signal()
        m.d.comb += start.eq(want & src.full.bit_select(next_rd, 1) & dst.free.bit_select(next_wr, 1))
        m.d.comb += [src.bank.eq(rd_bank), src.release.eq(last_step), src.release_bank.eq(rd_bank),
                     dst.claim.eq(start), dst.claim_bank.eq(next_wr)]
        slice_counters(m, self.source, src, sf, want, last_sf)

        with m.If(want):
            m.d.sync += [rd_bank.eq(next_rd), wr_bank.eq(next_wr), running.eq(start),
                         nf.eq(0), sf.eq(0), waddr.eq(0)]
        with m.Else():
            m.d.sync += waddr.eq(waddr + 1)
            with m.If(last_sf):
                m.d.sync += [sf.eq(0), nf.eq(nf + 1)]
            with m.Else():
                m.d.sync += sf.eq(sf + 1)

        m.d.comb += [datapath.step.valid.eq(running), datapath.step.first.eq(sf == 0),
                     datapath.step.last.eq(last_sf), datapath.step.nf.eq(nf),
                     datapath.step.commit.eq(nf == g.nf - 1), datapath.step.bank.eq(wr_bank),
                     datapath.step.waddr.eq(waddr), datapath.x.eq(src.data)]
        fold = datapath.fold
        m.d.comb += [dst.we.eq(fold.we), dst.bank.eq(fold.bank), dst.data.eq(fold.data), dst.commit.eq(fold.commit)]
        m.d.comb += self.busy.eq(running | datapath.busy)
        return m


def slice_counters(m, source: BufferGeometry, src, sf, restart, last_sf) -> None:
    """Input word ``sf // k`` and slice ``sf % k`` of a banked buffer of ``k`` slices a word, counted
    beside ``sf`` (back to 0 with ``restart`` or after the last slice)."""
    k = source.slices
    if k == 1:
        m.d.comb += src.word.eq(sf)
        return
    word = Signal(range(max(2, source.words)))
    slice_ = Signal(range(k))
    m.d.comb += [src.word.eq(word), src.slice.eq(slice_)]
    with m.If(restart | last_sf):
        m.d.sync += [word.eq(0), slice_.eq(0)]
    with m.Elif(slice_ == k - 1):
        m.d.sync += [word.eq(word + 1), slice_.eq(0)]
    with m.Else():
        m.d.sync += slice_.eq(slice_ + 1)


def mvtu_latency(g: LayerGeometry) -> int:
    """Cycles from a step's issue to the write of its fold: the memory read and its register, the
    popcount (of the used lanes), the accumulation, the threshold (or score) register."""
    return FETCH + popcount_latency(g.used_simd) + 2


def block_columns(depth: int) -> int:
    """Bits of a memory of ``depth`` words that fill one 18 Kb block RAM (16 Kb of data: ECP5
    DP16KD, 7-series RAMB18) without a second block in depth: 32 up to 512 words, 16 up to 1,024,
    ... 1 beyond 8,192."""
    return max(1, min(32, BLOCK_RAM_DATA_BITS >> (depth - 1).bit_length()))


def delay(m: Module, values: dict, cycles: int, name: str) -> list[dict]:
    """``values`` registered once, twice, ... ``cycles`` times: one dict of the same keys per stage."""
    stages = []
    for c in range(cycles):
        staged = {}
        for key, value in values.items():
            reg = Signal(len(value), name=f"{name}{c + 1}_{key}")
            m.d.sync += reg.eq(value)
            staged[key] = reg
        stages.append(staged)
        values = staged
    return stages


def _rows(init: dict | None, key: str, pe: int, width: int, depth: int) -> list[int]:
    """Per address, the words of PEs ``0 .. pe - 1`` side by side (PE ``p`` at bits
    ``[p * width, (p + 1) * width)``)."""
    if not init or key not in init:
        return []
    mask = (1 << width) - 1
    rows = [0] * depth
    for p, words in enumerate(init[key][:pe]):  # PEs beyond ``pe`` hold only padding
        for a, word in enumerate(words):
            rows[a] |= (int(word) & mask) << (p * width)
    return rows
