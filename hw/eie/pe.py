"""One EIE processing element: activation queue, pointer banks, sparse-matrix walk, codebook MAC,
accumulators with forwarding, write-back (round, saturate, ReLU) and the PE's activation banks.

Pipeline of one column ``j`` (one entry per cycle once running, no bubbles between columns):

* pointer read, in the control unit's stage A (``pr_en``, ``pr_j``): ``ptr[ptr_base + j]`` and
  ``ptr[ptr_base + j + 1]`` from the even and odd pointer banks (one read each, same cycle); the
  data is held while the broadcast waits, and ``q_ne`` tells whether the column has entries here.
* broadcast (stage B, ``q_valid``): only a non-empty column is enqueued, as ``(start, end, a_j)``;
  an empty column costs this PE neither a queue slot nor a cycle. The control unit broadcasts when
  every PE with ``q_ne`` has room (``q_ready``), so a PE without entries never blocks it.
* walker: issues entry addresses ``start .. end - 1``, one per cycle, taking the queue head while
  the previous column issues its last entry.
* ``E1``: the sparse-matrix word (``entries_per_word`` entries) arrives; the entry is selected,
  ``r = r + z + 1`` (``r = z`` at a column's first entry); codebook and accumulator reads issued.
* ``E2``: ``acc[r] += codebook[v] * a_j`` (fillers, ``v == 0``, skipped) and written back; when
  ``E1`` reads the row that ``E2`` writes in the same cycle, the new sum is forwarded.

Write-back, driven by the control unit one local row per cycle: ``W1`` reads ``acc[s]`` and
``bias[bias_base + s]``, ``W2`` writes ``round(acc + bias)``, saturated (and ReLU'd) into the
destination activation bank, reports the non-zero flag, and clears ``acc[s]`` to 0 for the layer
after next. Accumulating from 0 and adding the bias at write-back gives the same exact sum as
starting the accumulator at the bias, without a bias-loading pass before each layer.

The accumulators are two banks (layer parity): the write-back of layer ``l`` owns bank ``l % 2``
while the MAC of layer ``l + 1`` works in the other one, so the two overlap.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eiex.hw.eie.params import WEIGHT_FRAC_BITS, HwParams


def pe_signature(hw: HwParams) -> dict:
    e = hw.engine
    act_addr = range(2 * hw.slots)
    return {
        # broadcast from the control unit into the activation queue
        # pointer read of the column the control unit will broadcast next (its stage A); the
        # data is held until the next read, and ``q_ne`` tells whether that column has entries here
        "pr_en": In(1), "pr_j": In(hw.width_bits), "q_ne": Out(1),
        "q_valid": In(1), "q_a": In(signed(e.act_bits)), "q_ready": Out(1),
        # current layer's fields
        "ptr_base": In(hw.ptr_addr_bits), "codebook_base": In(hw.codebook_addr_bits),
        "mac_bank": In(1),  # accumulator bank of the layer being multiplied (its parity)
        # fields of the layer being written back (may be the previous one, overlapping)
        "bias_base": In(hw.bias_addr_bits), "weight_frac": In(WEIGHT_FRAC_BITS), "relu": In(1),
        "wb_bank": In(1),  # its accumulator bank; it writes activation bank ``~wb_bank``
        "busy": Out(1),
        # write-back command (local row) and its result flag (two cycles later)
        "wb_valid": In(1), "wb_slot": In(range(hw.slots)), "wb_ok": In(1),
        "flag_valid": Out(1), "flag": Out(1),
        # activation banks: the control unit's read port and its (input) write port
        "act_raddr": In(act_addr), "act_ren": In(1), "act_rdata": Out(signed(e.act_bits)),
        "act_we": In(1), "act_waddr": In(act_addr), "act_wdata": In(signed(e.act_bits)),
        # load interface (already decoded for this PE)
        "ld_spmat": In(1), "ld_ptr": In(1), "ld_bias": In(1), "ld_codebook": In(1),
        "ld_addr": In(max(hw.spmat_addr_bits, hw.ptr_addr_bits, hw.bias_addr_bits, hw.codebook_addr_bits)),
        "ld_data": In(max(e.spmat_width, e.ptr_bits, e.bias_bits, e.weight_bits)),
    }


class ProcessingElement(wiring.Component):
    """One PE. ``init``: optional dict of initial memory contents (``spmat``, ``ptr``, ``bias``,
    ``codebook``: lists of unsigned words) for elaboration-time loading."""

    def __init__(self, hw: HwParams, init: dict | None = None):
        self.hw = hw
        self.init = init or {}
        super().__init__(pe_signature(hw))

    def elaborate(self, platform):
        hw, e = self.hw, self.hw.engine
        m = Module()
        init = self.init

        # ---- memories ---------------------------------------------------------------------
        spmat = m.submodules.spmat = Memory(shape=e.spmat_width, depth=hw.spmat_depth,
                                            init=init.get("spmat", []))
        ptr_init = init.get("ptr", [])
        ptr_even = m.submodules.ptr_even = Memory(shape=e.ptr_bits, depth=hw.ptr_bank_depth,
                                                  init=ptr_init[0::2])
        ptr_odd = m.submodules.ptr_odd = Memory(shape=e.ptr_bits, depth=hw.ptr_bank_depth,
                                                init=ptr_init[1::2])
        bias = m.submodules.bias = Memory(shape=signed(e.bias_bits), depth=hw.bias_depth,
                                          init=_signed(init.get("bias", []), e.bias_bits))
        codebook = m.submodules.codebook = Memory(shape=signed(e.weight_bits), depth=hw.codebook_depth,
                                                  init=_signed(init.get("codebook", []), e.weight_bits))
        # ping-pong accumulators: layer l accumulates in bank l % 2 while layer l - 1's bank is
        # written back
        accs = [Memory(shape=signed(hw.acc_bits), depth=hw.slots, init=[]) for _ in range(2)]
        m.submodules.acc0, m.submodules.acc1 = accs
        act = m.submodules.act = Memory(shape=signed(e.act_bits), depth=2 * hw.slots, init=[])

        # load writes
        for mem, sel, width, addr in (
            (spmat, self.ld_spmat, e.spmat_width, self.ld_addr),
            (bias, self.ld_bias, e.bias_bits, self.ld_addr),
            (codebook, self.ld_codebook, e.weight_bits, self.ld_addr),
        ):
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(sel), wp.addr.eq(addr), wp.data.eq(self.ld_data[:width])]
        for bank, parity in ((ptr_even, 0), (ptr_odd, 1)):
            wp = bank.write_port()
            m.d.comb += [wp.en.eq(self.ld_ptr & (self.ld_addr[0] == parity)),
                         wp.addr.eq(self.ld_addr[1:]), wp.data.eq(self.ld_data[:e.ptr_bits])]

        # activation banks: one read port (control unit), one write port (input or write-back)
        act_r = act.read_port()
        act_w = act.write_port()
        m.d.comb += [act_r.addr.eq(self.act_raddr), act_r.en.eq(self.act_ren),
                     self.act_rdata.eq(act_r.data)]

        # ---- pointer read (control unit's stage A) and queue of non-empty columns -----------
        pa = Signal(hw.ptr_addr_bits + 1)
        m.d.comb += pa.eq(self.ptr_base + self.pr_j)
        ev_r = ptr_even.read_port()
        od_r = ptr_odd.read_port()
        m.d.comb += [ev_r.addr.eq((pa + 1) >> 1), od_r.addr.eq(pa >> 1),
                     ev_r.en.eq(self.pr_en), od_r.en.eq(self.pr_en)]
        pr_odd = Signal()
        with m.If(self.pr_en):
            m.d.sync += pr_odd.eq(pa[0])
        c_start = Signal(e.ptr_bits)
        c_end = Signal(e.ptr_bits)
        m.d.comb += [c_start.eq(Mux(pr_odd, od_r.data, ev_r.data)),
                     c_end.eq(Mux(pr_odd, ev_r.data, od_r.data)),
                     self.q_ne.eq(c_start != c_end)]
        fifo = m.submodules.queue = SyncFIFO(width=2 * e.ptr_bits + e.act_bits, depth=hw.queue_depth)
        # an empty column is never enqueued: it costs this PE neither a slot nor a cycle
        m.d.comb += [fifo.w_en.eq(self.q_valid & self.q_ne),
                     fifo.w_data.eq(Cat(c_start, c_end, self.q_a)),
                     self.q_ready.eq(fifo.w_rdy)]
        p1_start = fifo.r_data[:e.ptr_bits]
        p1_end = fifo.r_data[e.ptr_bits:2 * e.ptr_bits]
        p1_a = fifo.r_data[2 * e.ptr_bits:].as_signed()

        # ---- walker -----------------------------------------------------------------------
        w_active = Signal()
        w_k = Signal(e.ptr_bits)
        w_end = Signal(e.ptr_bits)
        w_a = Signal(signed(e.act_bits))
        w_first = Signal()
        w_last = Signal()
        m.d.comb += w_last.eq(w_k + 1 == w_end)
        p1_take = Signal()
        m.d.comb += p1_take.eq(fifo.r_rdy & (~w_active | w_last))
        m.d.comb += fifo.r_en.eq(p1_take)

        issue = Signal()
        issue_k = Signal(e.ptr_bits)
        issue_a = Signal(signed(e.act_bits))
        issue_first = Signal()
        with m.If(w_active):
            m.d.comb += [issue.eq(1), issue_k.eq(w_k), issue_a.eq(w_a), issue_first.eq(w_first)]
            m.d.sync += [w_k.eq(w_k + 1), w_first.eq(0)]
            with m.If(w_last):
                m.d.sync += w_active.eq(0)
                with m.If(p1_take):
                    m.d.sync += [w_active.eq(1), w_k.eq(p1_start), w_end.eq(p1_end),
                                 w_a.eq(p1_a), w_first.eq(1)]
        with m.Elif(p1_take):
            m.d.comb += [issue.eq(1), issue_k.eq(p1_start), issue_a.eq(p1_a), issue_first.eq(1)]
            m.d.sync += [w_active.eq(p1_start + 1 != p1_end), w_k.eq(p1_start + 1), w_end.eq(p1_end),
                         w_a.eq(p1_a), w_first.eq(0)]

        # ---- E1: sparse-matrix word, entry select, relative index -------------------------
        sp_r = spmat.read_port()
        m.d.comb += sp_r.addr.eq(issue_k // e.entries_per_word)
        e1_valid = Signal()
        e1_off = Signal(range(e.entries_per_word))
        e1_a = Signal(signed(e.act_bits))
        e1_first = Signal()
        m.d.sync += [e1_valid.eq(issue), e1_off.eq(issue_k % e.entries_per_word), e1_a.eq(issue_a),
                     e1_first.eq(issue_first)]
        entry = Signal(e.entry_bits)
        m.d.comb += entry.eq(sp_r.data.word_select(e1_off, e.entry_bits))
        v = entry[:e.idx_bits]
        z = entry[e.idx_bits:]
        row_bits = max(hw.slot_bits, e.rel_bits) + 1
        r = Signal(row_bits)
        r_new = Signal(row_bits)
        m.d.comb += r_new.eq(Mux(e1_first, z, r + z + 1))
        with m.If(e1_valid):
            m.d.sync += r.eq(r_new)

        cb_r = codebook.read_port()
        acc_rs = [acc.read_port() for acc in accs]
        acc_ws = [acc.write_port() for acc in accs]
        m.d.comb += cb_r.addr.eq(self.codebook_base + v)

        e2_valid = Signal()
        e2_r = Signal(row_bits)
        e2_a = Signal(signed(e.act_bits))
        e2_sum = Signal(signed(hw.acc_bits))
        fwd_hit = Signal()
        fwd_val = Signal(signed(hw.acc_bits))
        e2_write = Signal()  # not a filler: the entry updates acc[r]
        m.d.sync += [e2_valid.eq(e1_valid), e2_write.eq(e1_valid & (v != 0)), e2_r.eq(r_new),
                     e2_a.eq(e1_a), fwd_hit.eq(e2_write & (e2_r == r_new)), fwd_val.eq(e2_sum)]

        # ---- E2: multiply-accumulate with forwarding ----------------------------------------
        old = Signal(signed(hw.acc_bits))
        m.d.comb += [old.eq(Mux(fwd_hit, fwd_val, Mux(self.mac_bank, acc_rs[1].data, acc_rs[0].data))),
                     e2_sum.eq(old + cb_r.data * e2_a)]

        # ---- write-back ---------------------------------------------------------------------
        w1_valid = Signal()
        w1_ok = Signal()
        w1_slot = Signal(range(hw.slots))
        bias_r = bias.read_port()
        m.d.comb += bias_r.addr.eq(self.bias_base + self.wb_slot)
        m.d.sync += [w1_valid.eq(self.wb_valid), w1_ok.eq(self.wb_ok), w1_slot.eq(self.wb_slot)]
        total = Signal(signed(hw.acc_bits))
        m.d.comb += total.eq(Mux(self.wb_bank, acc_rs[1].data, acc_rs[0].data) + bias_r.data)
        rounded = Signal(signed(hw.acc_bits))
        with m.If(self.weight_frac == 0):
            m.d.comb += rounded.eq(total)
        with m.Else():
            # floor((x + 2**(f-1)) / 2**f) == floor((floor(x / 2**(f-1)) + 1) / 2)
            shift = Signal(WEIGHT_FRAC_BITS)
            m.d.comb += shift.eq(self.weight_frac - 1)
            m.d.comb += rounded.eq(((total >> shift) + 1) >> 1)
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
        m.d.comb += [self.flag_valid.eq(w1_valid), self.flag.eq(w1_ok & (y != 0))]

        # accumulator ports: a bank being written back belongs to the write-back (the MAC works
        # in the other bank then), else to the MAC
        for b, (acc_r, acc_w) in enumerate(zip(acc_rs, acc_ws)):
            with m.If((self.wb_bank == b) & (self.wb_valid | w1_valid)):
                m.d.comb += [acc_r.addr.eq(self.wb_slot),
                             acc_w.en.eq(w1_valid), acc_w.addr.eq(w1_slot), acc_w.data.eq(0)]
            with m.Else():
                m.d.comb += [acc_r.addr.eq(r_new),
                             acc_w.en.eq(e2_write & (self.mac_bank == b)), acc_w.addr.eq(e2_r),
                             acc_w.data.eq(e2_sum)]

        # activation write port: write-back result, else the control unit's input write
        with m.If(w1_valid):
            m.d.comb += [act_w.en.eq(w1_ok),
                         act_w.addr.eq(Mux(self.wb_bank, w1_slot, hw.slots + w1_slot)),
                         act_w.data.eq(y)]
        with m.Else():
            m.d.comb += [act_w.en.eq(self.act_we), act_w.addr.eq(self.act_waddr),
                         act_w.data.eq(self.act_wdata)]

        m.d.comb += self.busy.eq(fifo.r_rdy | w_active | e1_valid | e2_valid)
        return m


def _signed(words, bits: int) -> list[int]:
    """Unsigned two's complement words to signed ints (Memory init of a signed shape)."""
    half = 1 << (bits - 1)
    return [int(w) - (1 << bits) if int(w) >= half else int(w) for w in words]
