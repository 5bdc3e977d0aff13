"""Matrix-vector-threshold unit (FINN's MVTU): one binarized layer, ``P`` rows x ``S`` lanes.

Per image the unit steps through ``NF`` row folds and, inside each, ``SF`` column folds, one step
per cycle and no bubble between images. Step ``(nf, sf)`` of PE ``p``:

* ``I`` (issue): the weight word ``nf * SF + sf`` is read from PE ``p``'s weight memory, SIMD word
  ``sf`` of the input vector from the input bank, threshold ``nf`` from the threshold memory;
* ``A``: ``acc_p = (sf == 0 ? 0 : acc_p) + popcount(XNOR(w, x) & valid)``, ``valid`` masking the
  padding columns of the last column fold; after the last column fold a hidden layer compares
  ``acc_p >= T``, the output layer forms ``2 * acc_p - K``;
* ``W``: the ``P`` results of fold ``nf`` are written to the next stage's bank as word ``nf``; the
  write of the last fold completes the bank.

The unit starts an image when its input bank is full and the next stage's bank is free; it starts
the next image in the cycle of the last step, and frees its input bank in that cycle (the input was
read at issue).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eiex.hw.xnor.banks import N_BANKS, following
from eiex.sw.errors import EiexError


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


def popcount(bits):
    """Number of set bits of ``bits``, as a balanced adder tree."""
    terms = [bits[i] for i in range(len(bits))]
    if not terms:
        return Const(0, 1)
    while len(terms) > 1:
        paired = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        terms = paired + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]


class Mvtu(wiring.Component):
    """One layer's matrix-vector-threshold unit.

    Parameters
    ----------
    geometry : LayerGeometry
    init : dict or None
        ``{"weights": [[word, ...] per PE], "thresholds": [[word, ...] per PE]}`` (unsigned words as
        in the image's memories) for elaboration-time contents; zeros otherwise.

    Attributes
    ----------
    in_* : the consumer side of the input :class:`~eiex.hw.xnor.banks.BankedBuffer`.
    out_* : the producer side of the next stage's buffer; ``out_data`` holds ``P`` results.
    ld_* : memory writes; ``ld_sel`` 0 = weights, 1 = thresholds.
    busy : Out(1)
        An image is being issued or is in the pipeline.
    """

    def __init__(self, geometry: LayerGeometry, init: dict | None = None):
        self.g = g = geometry
        self.init = init
        bank = range(N_BANKS)
        super().__init__({
            "in_full": In(N_BANKS), "in_release": Out(1), "in_release_bank": Out(bank),
            "in_bank": Out(bank), "in_index": Out(range(g.sf)), "in_data": In(g.simd),
            "out_free": In(N_BANKS), "out_claim": Out(1), "out_claim_bank": Out(bank),
            "out_we": Out(1), "out_bank": Out(bank), "out_index": Out(range(g.nf)),
            "out_data": Out(g.pe * g.result_bits), "out_commit": Out(1),
            "ld_en": In(1), "ld_sel": In(1), "ld_pe": In(range(max(2, g.pe))),
            "ld_addr": In(range(max(2, g.nf * g.sf))), "ld_data": In(max(g.simd, g.thr_bits)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        g = self.g
        m = Module()
        steps = g.nf * g.sf

        # ---- memories, one weight and one threshold memory per PE ------------------------------
        w_ports, t_ports = [], []
        for p in range(g.pe):
            w_init = (self.init or {}).get("weights", [[]] * g.pe)[p]
            wmem = Memory(shape=g.simd, depth=steps, init=list(w_init))
            m.submodules[f"weights{p}"] = wmem
            w_ports.append(wmem.read_port())
            wp = wmem.write_port()
            m.d.comb += [wp.en.eq(self.ld_en & (self.ld_sel == 0) & (self.ld_pe == p)),
                         wp.addr.eq(self.ld_addr), wp.data.eq(self.ld_data[:g.simd])]
            if not g.output:
                t_init = (self.init or {}).get("thresholds", [[]] * g.pe)[p]
                tmem = Memory(shape=signed(g.thr_bits), depth=g.nf, init=[_signed(x, g.thr_bits) for x in t_init])
                m.submodules[f"thresholds{p}"] = tmem
                t_ports.append(tmem.read_port())
                tp = tmem.write_port()
                m.d.comb += [tp.en.eq(self.ld_en & (self.ld_sel == 1) & (self.ld_pe == p)),
                             tp.addr.eq(self.ld_addr), tp.data.eq(self.ld_data[:g.thr_bits])]

        # ---- issue stage -----------------------------------------------------------------------
        running = Signal()
        nf = Signal(range(g.nf))
        sf = Signal(range(g.sf))
        waddr = Signal(range(max(2, steps)))
        rd_bank = Signal(range(N_BANKS))
        wr_bank = Signal(range(N_BANKS))

        last_sf = sf == g.sf - 1
        last_step = running & last_sf & (nf == g.nf - 1)
        want = ~running | last_step
        next_rd = Mux(running, following(rd_bank), rd_bank)
        next_wr = Mux(running, following(wr_bank), wr_bank)
        start = Signal()
        m.d.comb += start.eq(want & Array(self.in_full)[next_rd] & Array(self.out_free)[next_wr])

        m.d.comb += [self.in_bank.eq(rd_bank), self.in_index.eq(sf),
                     self.in_release.eq(last_step), self.in_release_bank.eq(rd_bank),
                     self.out_claim.eq(start), self.out_claim_bank.eq(next_wr)]
        for port in w_ports:
            m.d.comb += port.addr.eq(waddr)
        for port in t_ports:
            m.d.comb += port.addr.eq(nf)

        with m.If(want):
            m.d.sync += [rd_bank.eq(next_rd), wr_bank.eq(next_wr), running.eq(start),
                         nf.eq(0), sf.eq(0), waddr.eq(0)]
        with m.Else():
            m.d.sync += waddr.eq(waddr + 1)
            with m.If(last_sf):
                m.d.sync += [sf.eq(0), nf.eq(nf + 1)]
            with m.Else():
                m.d.sync += sf.eq(sf + 1)

        # ---- stage A: XNOR, popcount, accumulate, threshold ----------------------------------
        a_valid, a_first, a_last, a_commit = Signal(), Signal(), Signal(), Signal()
        a_nf = Signal(range(g.nf))
        a_bank = Signal(range(N_BANKS))
        a_x = Signal(g.simd)
        m.d.sync += [a_valid.eq(running), a_first.eq(sf == 0), a_last.eq(last_sf), a_nf.eq(nf),
                     a_commit.eq(nf == g.nf - 1), a_bank.eq(wr_bank), a_x.eq(self.in_data)]
        tail = g.in_features - (g.sf - 1) * g.simd  # real columns of the last column fold
        full_mask = Const((1 << g.simd) - 1, g.simd)
        last_mask = Const((1 << tail) - 1, g.simd)
        mask = Mux(a_last, last_mask, full_mask)

        w_valid, w_commit = Signal(), Signal()
        w_nf = Signal(range(g.nf))
        w_bank = Signal(range(N_BANKS))
        results = []
        for p in range(g.pe):
            acc = Signal(g.acc_bits, name=f"acc{p}")
            total = Signal(g.acc_bits, name=f"total{p}")
            m.d.comb += total.eq(Mux(a_first, 0, acc) + popcount(~(w_ports[p].data ^ a_x) & mask))
            with m.If(a_valid):
                m.d.sync += acc.eq(total)
            result = Signal(signed(g.score_bits) if g.output else 1, name=f"result{p}")
            if g.output:
                with m.If(a_valid & a_last):
                    m.d.sync += result.eq(2 * total - g.in_features)
            else:
                with m.If(a_valid & a_last):
                    m.d.sync += result.eq(total >= t_ports[p].data)  # unsigned vs signed: exact
            results.append(result)
        m.d.sync += [w_valid.eq(a_valid & a_last), w_commit.eq(a_commit), w_nf.eq(a_nf), w_bank.eq(a_bank)]

        # ---- stage W: the fold's results into the next stage's bank ----------------------------
        m.d.comb += [self.out_we.eq(w_valid), self.out_bank.eq(w_bank), self.out_index.eq(w_nf),
                     self.out_data.eq(Cat(*results)), self.out_commit.eq(w_commit)]
        m.d.comb += self.busy.eq(running | a_valid | w_valid)
        return m


def _signed(word: int, bits: int) -> int:
    word &= (1 << bits) - 1
    return word - (1 << bits) if word >> (bits - 1) else word
