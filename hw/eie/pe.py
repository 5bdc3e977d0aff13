"""One EIE processing element: pointer banks, activation queue, column walker, codebook MAC with
forwarding, accumulators, write-back and the PE's activation banks.

Pipeline of one column ``j`` (one entry per cycle once running, no bubbles between columns):

* pointers (:class:`~eiex.hw.eie.pointers.PointerReader`), read in the control unit's stage ``A``
  and queued in its skid buffer; its head is stage ``B``, where ``need`` tells whether the column
  has entries here;
* broadcast (``col.fire``): only a non-empty column is enqueued, as ``(start, end, a_j)``; an
  empty column costs this PE neither a queue slot nor a cycle. The control unit stalls the
  broadcast in the cycle after any PE's queue holds ``queue_depth - 1`` columns (``full``), so the
  last place is left for the column it may broadcast while that flag travels;
* walker: issues entry addresses ``start .. end - 1``, one per cycle, taking the queue head while
  the previous column issues its last entry; the sparse-matrix word is read;
* ``E1``: the word is registered (every memory's data is, before any logic: a block RAM's
  output is slow); ``E1w``: the entry is selected from it and registered;
* ``E2``: ``r = r + z + 1`` (``r = z`` at a column's first entry); the codebook read is issued;
* ``E3``: the weight is registered (with ``hw.mac == "index"``, the code itself: no codebook);
* ``E4``: ``weight * a_j`` is registered (:class:`~eiex.hw.eie.mac.Product`, which registers both
  on their way in: a multiplier, or with ``hw.mac == "shift"`` a shifter); the accumulator read of
  row ``r`` is issued;
* ``E5``: the accumulator is registered;
* ``E6``: ``acc[r] + product`` is registered;
* ``E7``: it is written to ``acc[r]`` (fillers, ``v == 0``, skipped). The read in ``E4`` misses
  the sums of the three entries ahead (made in the cycle before the read, in its cycle and the
  next): they are forwarded, the newest first.

Write-back, driven by the control unit one local row per cycle (the command registered on
arrival): ``acc[s]`` and ``bias[bias_base + s]`` are read, then
:class:`~eiex.hw.eie.rescale.Rescale` rounds, saturates and ReLUs their sum (the data registered
first); its result goes into the destination activation bank with the non-zero flag reported to
the control unit (:data:`WRITEBACK_LATENCY` cycles after the command), and ``acc[s]``
is cleared to 0 (one cycle after its read) for the layer after next. Accumulating from 0 and adding
the bias at write-back gives the same exact sum as starting the accumulator at the bias, without a
bias-loading pass before each layer.

The accumulators are two banks (layer parity): the write-back of layer ``l`` owns bank ``l % 2``
while the MAC of layer ``l + 1`` works in the other one, so the two overlap.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eiex.hw.eie.mac import Product, codebook_init, codebook_shape, codebook_write
from eiex.hw.eie.params import WEIGHT_FRAC_BITS, HwParams
from eiex.hw.eie.pointers import PointerReader
from eiex.hw.eie.rescale import Rescale
from eiex.hw.ram import BLOCK_RAM, registered_read
from eiex.sw.images.words import to_signed

#: cycles from the last entry's issue to the end of its accumulator write (``E1`` .. ``E7``)
MAC_STAGES = 8
#: cycles from a write-back command to its result's write and flag (the command's register,
#: memory read, its register, then the rescale pipeline)
WRITEBACK_LATENCY = 3 + Rescale.LATENCY


def column_signature(hw: HwParams) -> wiring.Signature:
    """The control unit's broadcast to one PE, from the control unit's side."""
    return wiring.Signature({
        # stage A: read the column's pointers (bank addresses of ptr_base + j, from the column queue)
        "en": Out(1), "ptr_even": Out(hw.ptr_addr_bits), "ptr_odd": Out(hw.ptr_addr_bits), "ptr_odd_first": Out(1),
        "push": Out(1),  # stage A3: the pointers read two cycles before enter the skid buffer
        "fire": Out(1), "a": Out(signed(hw.engine.act_bits)),  # broadcast of stage B's column
        "full": In(1),  # the queue holds queue_depth - 1 columns or more (the broadcast stalls next cycle)
    })


def layer_fields_layout(hw: HwParams) -> data.StructLayout:
    """The layer fields a PE uses: those of the layer multiplied and of the layer written back."""
    return data.StructLayout({
        "codebook_base": hw.codebook_addr_bits,
        "mac_bank": 1,  # accumulator bank of the layer being multiplied (its parity)
        "bias_base": hw.bias_addr_bits, "weight_frac": WEIGHT_FRAC_BITS, "relu": 1,
        "wb_bank": 1,  # accumulator bank written back; activation bank ~wb_bank is written
    })


def writeback_signature(hw: HwParams) -> wiring.Signature:
    """Write-back commands (one local row) and their flags, from the control unit's side."""
    return wiring.Signature({
        "valid": Out(1), "slot": Out(range(hw.slots)), "ok": Out(1),  # ok: the row exists here
        "flag_valid": In(1), "flag": In(1),
    })


def act_port_signature(hw: HwParams) -> wiring.Signature:
    """The control unit's read and (input) write port of a PE's activation banks."""
    e = hw.engine
    return wiring.Signature({
        "raddr": Out(range(2 * hw.slots)), "ren": Out(1), "rdata": In(signed(e.act_bits)),
        "we": Out(1), "waddr": Out(range(2 * hw.slots)), "wdata": Out(signed(e.act_bits)),
    })


def pe_load_signature(hw: HwParams) -> wiring.Signature:
    """Load-interface writes, already decoded for one PE."""
    e = hw.engine
    return wiring.Signature({
        "spmat": Out(1), "ptr": Out(1), "bias": Out(1), "codebook": Out(1),
        "addr": Out(max(hw.spmat_addr_bits, hw.ptr_addr_bits, hw.bias_addr_bits, hw.codebook_addr_bits)),
        "data": Out(max(e.spmat_width, e.ptr_bits, e.bias_bits, e.weight_bits)),
    })


def queue_layout(hw: HwParams) -> data.StructLayout:
    e = hw.engine
    return data.StructLayout({"start": e.ptr_bits, "end": e.ptr_bits, "a": signed(e.act_bits)})


class ProcessingElement(wiring.Component):
    """One PE.

    Parameters
    ----------
    hw : HwParams
        Engine instance.
    init : dict or None
        Initial memory contents (``spmat``, ``ptr``, ``bias``, ``codebook``: lists of unsigned
        words) for elaboration-time loading.

    Attributes
    ----------
    col : In(column_signature(hw))
    layer : In(layer_fields_layout(hw))
    wb : In(writeback_signature(hw))
    act : In(act_port_signature(hw))
    load : In(pe_load_signature(hw))
    busy : Out(1)
        A column was queued or in the MAC pipeline in the cycle before.
    """

    def __init__(self, hw: HwParams, init: dict | None = None):
        self.hw = hw
        self.init = init or {}
        super().__init__({
            "col": In(column_signature(hw)), "layer": In(layer_fields_layout(hw)),
            "wb": In(writeback_signature(hw)), "act": In(act_port_signature(hw)),
            "load": In(pe_load_signature(hw)), "busy": Out(1),
        })

    def elaborate(self, platform):
        hw, e = self.hw, self.hw.engine
        m = Module()
        init, ld = self.init, self.load

        # the image's memories: written by the load interface only, read without collision logic
        spmat = m.submodules.spmat = Memory(shape=e.spmat_width, depth=hw.spmat_depth, init=init.get("spmat", []),
                                            attrs=BLOCK_RAM)
        bias = m.submodules.bias = Memory(shape=signed(e.bias_bits), depth=hw.bias_depth,
                                          init=to_signed(init.get("bias", []), e.bias_bits).tolist(), attrs=BLOCK_RAM)
        loaded = [(spmat, ld.spmat, ld.addr, ld.data), (bias, ld.bias, ld.addr, ld.data)]
        codebook = None  # with mac "index" the code is the weight, and codebook loads are dropped
        if hw.mac != "index":
            # the codebook holds each entry as the MAC uses it: the value, or its shift code (hw.mac)
            codebook = m.submodules.codebook = Memory(shape=codebook_shape(hw), depth=hw.codebook_depth,
                                                      init=codebook_init(hw, init.get("codebook", [])),
                                                      attrs=BLOCK_RAM)
            loaded.append((codebook, *codebook_write(m, hw, ld.codebook, ld.addr, ld.data)))
        for mem, sel, addr, word in loaded:
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(sel), wp.addr.eq(addr), wp.data.eq(word)]
        # ping-pong accumulators: layer l accumulates in bank l % 2 while layer l - 1's bank is
        # written back
        # (the MAC may read a row in the cycle it is written; the forwarding in _mac never uses such
        # a read, so these too go without collision logic)
        accs = [Memory(shape=signed(hw.acc_bits), depth=hw.slots, init=[], attrs=BLOCK_RAM) for _ in range(2)]
        m.submodules.acc0, m.submodules.acc1 = accs
        acc_rs = [SimpleNamespace(**dict(zip(("addr", "data"), registered_read(m, acc, f"acc{b}"))))
                  for b, acc in enumerate(accs)]
        acc_ws = [acc.write_port() for acc in accs]

        # ---- pointers and queue of non-empty columns ---------------------------------------
        ptr = m.submodules.pointers = PointerReader(hw, init.get("ptr", []))
        m.d.comb += [ptr.en.eq(self.col.en), ptr.even_addr.eq(self.col.ptr_even), ptr.odd_addr.eq(self.col.ptr_odd),
                     ptr.odd_first.eq(self.col.ptr_odd_first), ptr.push.eq(self.col.push),
                     ptr.pop.eq(self.col.fire),
                     ptr.ld_en.eq(ld.ptr), ptr.ld_addr.eq(ld.addr), ptr.ld_data.eq(ld.data)]
        ql = queue_layout(hw)
        fifo = m.submodules.queue = SyncFIFO(width=ql.size, depth=hw.queue_depth)
        m.d.comb += [fifo.w_en.eq(self.col.fire & ptr.need), self.col.full.eq(fifo.level >= hw.queue_depth - 1)]
        q_in = data.View(ql, fifo.w_data)
        m.d.comb += [q_in.start.eq(ptr.start), q_in.end.eq(ptr.end), q_in.a.eq(self.col.a)]
        head = data.View(ql, fifo.r_data)

        issue, issue_k, issue_a, issue_first, walking = self._walker(m, fifo, head)
        e_valid = self._mac(m, spmat, codebook, acc_rs, acc_ws, issue, issue_k, issue_a, issue_first)
        self._writeback(m, bias, acc_rs, acc_ws)
        m.d.sync += self.busy.eq(fifo.r_rdy | walking | e_valid)  # registered: it fans in over the chip
        return m

    def _walker(self, m, fifo, head):
        """Entry addresses of the queued columns, one per cycle."""
        e = self.hw.engine
        active = Signal()
        k = Signal(e.ptr_bits)
        left = Signal(e.ptr_bits)  # entries of the column after k (a counter: no adder before take)
        a = Signal(signed(e.act_bits))
        first = Signal()
        last = Signal()
        m.d.comb += last.eq(left == 0)
        take = Signal()
        m.d.comb += [take.eq(fifo.r_rdy & (~active | last)), fifo.r_en.eq(take)]
        length = Signal(e.ptr_bits)  # the head's entries
        m.d.comb += length.eq(head.end - head.start)
        issue = Signal()
        issue_k = Signal(e.ptr_bits)
        issue_a = Signal(signed(e.act_bits))
        issue_first = Signal()
        with m.If(active):
            m.d.comb += [issue.eq(1), issue_k.eq(k), issue_a.eq(a), issue_first.eq(first)]
            m.d.sync += [k.eq(k + 1), left.eq(left - 1), first.eq(0)]
            with m.If(last):
                m.d.sync += active.eq(0)
                with m.If(take):
                    m.d.sync += [active.eq(1), k.eq(head.start), left.eq(length - 1), a.eq(head.a), first.eq(1)]
        with m.Elif(take):
            m.d.comb += [issue.eq(1), issue_k.eq(head.start), issue_a.eq(head.a), issue_first.eq(1)]
            m.d.sync += [active.eq(length != 1), k.eq(head.start + 1), left.eq(length - 2), a.eq(head.a),
                         first.eq(0)]
        return issue, issue_k, issue_a, issue_first, active

    def _mac(self, m, spmat, codebook, acc_rs, acc_ws, issue, issue_k, issue_a, issue_first):
        """``E1`` .. ``E7``; returns "an entry is in flight"."""
        hw, e = self.hw, self.hw.engine
        lay = self.layer
        sp_addr, sp_data = registered_read(m, spmat, "spmat")
        m.d.comb += sp_addr.eq(issue_k // e.entries_per_word)
        row_bits = max(hw.slot_bits, e.rel_bits) + 1
        act = signed(e.act_bits)

        def stage(name, **fields):
            return {f: Signal(shape, name=f"{name}_{f}") for f, shape in fields.items()}

        e1 = stage("e1", valid=1, off=range(e.entries_per_word), a=act, first=1)
        e1w = stage("e1w", valid=1, word=e.spmat_width, off=range(e.entries_per_word), a=act, first=1)
        e2 = stage("e2", valid=1, v=e.idx_bits, z=e.rel_bits, a=act, first=1)
        e3 = stage("e3", valid=1, write=1, r=row_bits, a=act)
        e4 = stage("e4", valid=1, write=1, r=row_bits)
        e5 = stage("e5", valid=1, write=1, r=row_bits)
        e6 = stage("e6", valid=1, write=1, r=row_bits, p=signed(e.act_bits + e.weight_bits),
                   acc=signed(hw.acc_bits))

        m.d.sync += [e1["valid"].eq(issue), e1["off"].eq(issue_k % e.entries_per_word), e1["a"].eq(issue_a),
                     e1["first"].eq(issue_first)]
        # every memory's data is registered before any logic: a block RAM's output is slow
        m.d.sync += [e1w["valid"].eq(e1["valid"]), e1w["word"].eq(sp_data), e1w["off"].eq(e1["off"]),
                     e1w["a"].eq(e1["a"]), e1w["first"].eq(e1["first"])]
        entry = e1w["word"].word_select(e1w["off"], e.entry_bits)
        m.d.sync += [e2["valid"].eq(e1w["valid"]), e2["v"].eq(entry[:e.idx_bits]), e2["z"].eq(entry[e.idx_bits:]),
                     e2["a"].eq(e1w["a"]), e2["first"].eq(e1w["first"])]
        r = Signal(row_bits)
        r_new = Signal(row_bits)
        m.d.comb += r_new.eq(Mux(e2["first"], e2["z"], r + e2["z"] + 1))
        with m.If(e2["valid"]):
            m.d.sync += r.eq(r_new)
        if codebook is None:
            weight = Signal(codebook_shape(hw), name="index_weight")
            m.d.sync += weight.eq(e2["v"].as_signed())
        else:
            cb_addr, weight = registered_read(m, codebook, "codebook")
            m.d.comb += cb_addr.eq(lay.codebook_base + e2["v"])
        m.d.sync += [e3["valid"].eq(e2["valid"]), e3["write"].eq(e2["valid"] & (e2["v"] != 0)), e3["r"].eq(r_new),
                     e3["a"].eq(e2["a"])]
        product = m.submodules.product = Product(hw)
        m.d.comb += [product.a.eq(e3["a"]), product.w.eq(weight)]
        m.d.sync += [e4["valid"].eq(e3["valid"]), e4["write"].eq(e3["write"]), e4["r"].eq(e3["r"])]
        m.d.sync += [e5["valid"].eq(e4["valid"]), e5["write"].eq(e4["write"]), e5["r"].eq(e4["r"])]
        m.d.sync += [e6["valid"].eq(e5["valid"]), e6["write"].eq(e5["write"]), e6["r"].eq(e5["r"]),
                     e6["p"].eq(product.p), e6["acc"].eq(Mux(lay.mac_bank, acc_rs[1].data, acc_rs[0].data))]
        # E6's sum is registered and written in E7 (the accumulator block RAM may sit far from the
        # adder). The accumulator read for a row (E4) sees only writes made before it, so the
        # three sums made since are forwarded: the newest first (each includes the ones before it)
        e7 = stage("e7", valid=1, write=1, r=row_bits)
        m.d.sync += [e7["valid"].eq(e6["valid"]), e7["write"].eq(e6["write"]), e7["r"].eq(e6["r"])]
        total = Signal(signed(hw.acc_bits))
        sums = [Signal(signed(hw.acc_bits), name=f"sum{age}") for age in (1, 2, 3)]  # made 1, 2, 3 cycles ago
        m.d.sync += [sums[0].eq(total), sums[1].eq(sums[0]), sums[2].eq(sums[1])]
        # E6's row equals the row summed 1, 2, 3 cycles earlier: compared when the older entry was
        # in E6 and this one in E5, E4, E3, then delayed
        hits = [Signal(name=f"hit{age}") for age in (1, 2, 3)]
        hit2_e5, hit3_e4, hit3_e5 = Signal(), Signal(), Signal()
        m.d.sync += [hits[0].eq(e6["write"] & (e6["r"] == e5["r"])),
                     hit2_e5.eq(e6["write"] & (e6["r"] == e4["r"])), hits[1].eq(hit2_e5),
                     hit3_e4.eq(e6["write"] & (e6["r"] == e3["r"])), hit3_e5.eq(hit3_e4), hits[2].eq(hit3_e5)]
        old = Mux(hits[0], sums[0], Mux(hits[1], sums[1], Mux(hits[2], sums[2], e6["acc"])))
        m.d.comb += total.eq(old + e6["p"])

        # accumulator ports: a bank being written back belongs to the write-back (the MAC works
        # in the other bank then), else to the MAC
        for b, (acc_r, acc_w) in enumerate(zip(acc_rs, acc_ws)):
            with m.If(lay.mac_bank == b):
                m.d.comb += [acc_r.addr.eq(e4["r"]), acc_w.en.eq(e7["write"]), acc_w.addr.eq(e7["r"]),
                             acc_w.data.eq(sums[0])]
        return Cat(st["valid"] for st in (e1, e1w, e2, e3, e4, e5, e6, e7)).any()

    def _writeback(self, m, bias, acc_rs, acc_ws):
        """Read ``acc[s]`` and its bias, rescale, write the activation, report the flag."""
        hw = self.hw
        lay, wb, act = self.layer, self.wb, self.act
        tag = data.StructLayout({"slot": range(hw.slots), "ok": 1})
        rescale = m.submodules.rescale = Rescale(hw, tag)
        # the command, registered here first: it comes from the control unit, across the chip
        w0_valid = Signal()
        w0_slot = Signal(range(hw.slots))
        w0_ok = Signal()
        m.d.sync += [w0_valid.eq(wb.valid), w0_slot.eq(wb.slot), w0_ok.eq(wb.ok)]
        bias_addr, bias_data = registered_read(m, bias, "bias")
        m.d.comb += bias_addr.eq(lay.bias_base + w0_slot)
        w1_valid = Signal()
        w1_slot = Signal(range(hw.slots))
        w1_ok = Signal()
        m.d.sync += [w1_valid.eq(w0_valid), w1_slot.eq(w0_slot), w1_ok.eq(w0_ok)]
        w2_valid = Signal()
        w2_tag = Signal(tag)
        w2_acc = Signal(signed(hw.acc_bits))
        w2_bias = Signal(signed(hw.engine.bias_bits))
        m.d.sync += [w2_valid.eq(w1_valid), w2_tag.slot.eq(w1_slot), w2_tag.ok.eq(w1_ok),
                     w2_acc.eq(Mux(lay.wb_bank, acc_rs[1].data, acc_rs[0].data)), w2_bias.eq(bias_data)]
        m.d.comb += [rescale.valid.eq(w2_valid), rescale.acc.eq(w2_acc), rescale.bias.eq(w2_bias),
                     rescale.tag.eq(w2_tag), rescale.frac.eq(lay.weight_frac), rescale.relu.eq(lay.relu)]
        for b, (acc_r, acc_w) in enumerate(zip(acc_rs, acc_ws)):
            with m.If((lay.wb_bank == b) & (w0_valid | w1_valid)):
                m.d.comb += [acc_r.addr.eq(w0_slot), acc_w.en.eq(w1_valid), acc_w.addr.eq(w1_slot),
                             acc_w.data.eq(0)]

        # activation banks: one read port (control unit), one write port (write-back or input)
        # (no word is read in the cycle it is written: the broadcast reads a row of the bank being
        # written back only once its window is stored, inputs and outputs have the banks to themselves)
        mem = m.submodules.act = Memory(shape=signed(hw.engine.act_bits), depth=2 * hw.slots, init=[],
                                        attrs=BLOCK_RAM)
        act_raddr, act_rdata = registered_read(m, mem, "act", en=act.ren)
        act_w = mem.write_port()
        m.d.comb += [act_raddr.eq(act.raddr), act.rdata.eq(act_rdata)]
        done = rescale.out_tag
        with m.If(rescale.out_valid):
            m.d.comb += [act_w.en.eq(done.ok), act_w.addr.eq(Mux(lay.wb_bank, done.slot, hw.slots + done.slot)),
                         act_w.data.eq(rescale.y)]
        with m.Else():
            m.d.comb += [act_w.en.eq(act.we), act_w.addr.eq(act.waddr), act_w.data.eq(act.wdata)]
        m.d.comb += [wb.flag_valid.eq(rescale.out_valid), wb.flag.eq(done.ok & rescale.flag)]
