"""The EIE engine: central control unit (LNZD broadcast, layer sequencing, I/O) and the PEs.

Block diagram::

    load ──► decode ──► every PE's spmat / ptr (even, odd) / bias / codebook, the layer table
    input ─► PE j % n_pe, slot j // n_pe of activation bank 0, non-zero flag j of bank 0
                   ┌─────────── control unit ────────────┐
    flags[src] ──► │ window of W flags ─► LNZD tree ─► j │ ─► A: read a_j (every PE's bank, addr slot)
                   │                                      │    and every PE's pointers of column j
                   │                                      │ ─► B: broadcast (j, a_j); a PE enqueues
                   └──────────────────────────────────────┘     (start, end, a_j) only if end > start
                                                                (waits while such a queue is full)
    PE p: pointer banks ─► queue ─► walker ─► spmat word ─► codebook ─► MAC (+ forwarding) ─► acc
    write-back: acc + bias ─► round, saturate, ReLU ─► activation bank dst, flags[dst]
    output ◄── last layer's bank, rows in order

Activation banks are ping-pong: layer ``l`` reads bank ``l % 2`` and writes bank ``(l + 1) % 2``;
accumulators are ping-pong too (bank ``l % 2`` in every PE), so the write-back of layer ``l`` runs
beside the broadcasts of layer ``l + 1``: the LNZD scan reads a window of flags only once the
write-back has stored all of that window's local rows. The layer table (rows, cols, relu,
weight_frac, ptr_base, bias_base, codebook_base, last) is a memory in the control unit; all its
layers run back to back for each input vector.

Control-unit states: ``IDLE`` (loads and inputs) ─► ``SETUP`` (layer fields) ─► ``BCAST``
(LNZD scan and broadcast) ─► ``DRAIN`` (PEs finish; the write-back starts in the background)
─► ``NEXT`` (layer-table read) ─► ``SETUP`` ... last layer: ``DRAIN`` ─► ``FINISH`` (write-back
done) ─► ``OUT`` (results) ─► ``IDLE``.

Control-unit pipeline: stage A finds the window's lowest live flag (LNZD tree), or skips an
all-zero window in one cycle, and reads ``a_j`` from every PE's source bank (slot ``j // n_pe``,
from a constant table per window position: no divider) and, in every PE, the column's two pointers;
stage B selects PE ``j % n_pe``'s word and broadcasts when every PE for which the column is
non-empty has room in its queue, otherwise holds (the read ports keep their data). A PE with no
entries in column ``j`` neither enqueues it nor holds the broadcast back.
"""

from __future__ import annotations

import enum

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eiex.hw.eie.lnzd import LeadingNonZero
from eiex.hw.eie.params import WEIGHT_FRAC_BITS, HwParams
from eiex.hw.eie.pe import ProcessingElement
from eiex.sw.errors import EiexError


class MemSel(enum.IntEnum):
    """Which memory a load-interface write goes to."""

    SPMAT = 0
    PTR = 1
    BIAS = 2
    CODEBOOK = 3  # every PE's copy at once; ``pe`` ignored
    LAYER = 4  # the layer table; ``pe`` ignored


def layer_layout(hw: HwParams) -> data.StructLayout:
    """One row of the layer table."""
    return data.StructLayout({
        "rows": hw.width_bits,
        "cols": hw.width_bits,
        "relu": 1,
        "weight_frac": WEIGHT_FRAC_BITS,
        "ptr_base": hw.ptr_addr_bits,
        "bias_base": hw.bias_addr_bits,
        "codebook_base": hw.codebook_addr_bits,
        "last": 1,
    })


def load_layout(hw: HwParams) -> data.StructLayout:
    """Payload of the load interface: one memory word."""
    e = hw.engine
    return data.StructLayout({
        "sel": 3,
        "pe": range(max(2, hw.n_pe)),
        "addr": max(hw.spmat_addr_bits, hw.ptr_addr_bits, hw.bias_addr_bits, hw.codebook_addr_bits,
                    hw.layer_bits),
        "data": max(e.spmat_width, e.ptr_bits, e.bias_bits, e.weight_bits, layer_layout(hw).size),
    })


class EieEngine(wiring.Component):
    """EIE sparse matrix-vector engine running every layer of an image per input vector.

    Parameters
    ----------
    hw : HwParams
        Engine parameters, queue depth and memory depths.
    init : dict or None
        Optional elaboration-time memory contents, from :func:`eiex.hw.eie.loader.memory_contents`.

    Attributes
    ----------
    load : In(stream.Signature(load_layout(hw)))
        Memory writes (accepted only between input vectors).
    input : In(stream.Signature(signed(act_bits)))
        The first layer's ``cols`` inputs, in order.
    output : Out(stream.Signature(signed(act_bits)))
        The last layer's ``rows`` results, in order.
    cycles, compute_cycles : Out(32)
        Statistics of the last finished input vector: first input accepted to last output
        delivered, and the first layer's ``SETUP`` to the end of the last write-back (inclusive).
    """

    STAT_BITS = 32

    def __init__(self, hw: HwParams, init: dict | None = None):
        try:
            if not isinstance(hw, HwParams):
                raise EiexError(f"hw must be a HwParams, not {type(hw).__name__}")
            if init is not None:
                missing = {"pes", "layers"} - set(init)
                if missing:
                    raise EiexError(f"init lacks {sorted(missing)}")
                if len(init["pes"]) != hw.n_pe:
                    raise EiexError(f"init holds {len(init['pes'])} PEs, the engine has {hw.n_pe}")
                if len(init["layers"]) > hw.max_layers:
                    raise EiexError(f"init holds {len(init['layers'])} layers, the table has {hw.max_layers} rows")
        except EiexError:
            self._MustUse__used = True  # a rejected object is no forgotten hardware
            raise
        self.hw = hw
        self.init = init
        act = signed(hw.engine.act_bits)
        super().__init__({
            "load": In(stream.Signature(load_layout(hw))),
            "input": In(stream.Signature(act)),
            "output": Out(stream.Signature(act)),
            "cycles": Out(self.STAT_BITS),
            "compute_cycles": Out(self.STAT_BITS),
        })

    def elaborate(self, platform):
        hw, e = self.hw, self.hw.engine
        n_pe, slots, W = hw.n_pe, hw.slots, hw.window
        m = Module()
        init = self.init or {}

        pes = []
        for p in range(n_pe):
            pe = ProcessingElement(hw, init=init["pes"][p] if init else None)
            m.submodules[f"pe{p}"] = pe
            pes.append(pe)

        # ---- layer table ------------------------------------------------------------------
        lay = layer_layout(hw)
        table = m.submodules.layer_table = Memory(shape=lay, depth=hw.max_layers,
                                                  init=init.get("layers", []))
        tw = table.write_port()
        tr = table.read_port()
        l_idx = Signal(range(max(2, hw.max_layers)))
        m.d.comb += tr.addr.eq(l_idx)
        cur = Signal(lay)  # the running layer's fields
        wbl = Signal(lay)  # the fields of the layer being written back
        wb_parity = Signal()  # its index's parity: accumulator bank, activation bank ~wb_parity

        # ---- load interface ---------------------------------------------------------------
        ld = self.load.payload
        ld_fire = Signal()
        tbl_ok = Signal()  # the layer table read port shows row 0 as it is now
        m.d.comb += ld_fire.eq(self.load.valid & self.load.ready)
        m.d.sync += tbl_ok.eq(0)
        m.d.comb += [tw.en.eq(ld_fire & (ld.sel == MemSel.LAYER)), tw.addr.eq(ld.addr),
                     tw.data.eq(ld.data[:lay.size])]
        for p, pe in enumerate(pes):
            mine = ld_fire & (ld.pe == p)
            m.d.comb += [
                pe.ld_spmat.eq(mine & (ld.sel == MemSel.SPMAT)),
                pe.ld_ptr.eq(mine & (ld.sel == MemSel.PTR)),
                pe.ld_bias.eq(mine & (ld.sel == MemSel.BIAS)),
                pe.ld_codebook.eq(ld_fire & (ld.sel == MemSel.CODEBOOK)),
                pe.ld_addr.eq(ld.addr), pe.ld_data.eq(ld.data),
                pe.ptr_base.eq(cur.ptr_base), pe.codebook_base.eq(cur.codebook_base),
                pe.mac_bank.eq(l_idx[0]),
                pe.bias_base.eq(wbl.bias_base), pe.weight_frac.eq(wbl.weight_frac),
                pe.relu.eq(wbl.relu), pe.wb_bank.eq(wb_parity),
            ]

        # ---- non-zero flags beside the activation banks -----------------------------------
        flags = Signal(2 * hw.flag_bits)
        src_bank = l_idx[0]
        dst_bank = ~l_idx[0]

        # ---- statistics -------------------------------------------------------------------
        running = Signal()
        computing = Signal()
        run_count = Signal(self.STAT_BITS)
        comp_count = Signal(self.STAT_BITS)
        with m.If(running):
            m.d.sync += run_count.eq(run_count + 1)
        with m.If(computing):
            m.d.sync += comp_count.eq(comp_count + 1)

        # ---- input counters ---------------------------------------------------------------
        in_j = Signal(hw.width_bits)
        in_pe = Signal(range(max(2, n_pe)))
        in_slot = Signal(range(slots))

        # ---- LNZD scan state --------------------------------------------------------------
        win = Signal(range(hw.n_windows + 1))  # window index
        jbase = Signal(hw.width_bits + 1)  # win * W
        pos = Signal(range(W + 1))  # first flag of the window still to look at
        scan_done = Signal()
        lnzd = m.submodules.lnzd = LeadingNonZero(W)
        window = Signal(W)
        m.d.comb += window.eq(flags.word_select(Mux(src_bank, hw.n_windows + win, win), W))
        lim = Signal(hw.width_bits + 2)
        m.d.comb += lim.eq(cur.cols - jbase)
        mask = Signal(W)
        m.d.comb += mask.eq(Cat(*((k >= pos) & (k < lim) for k in range(W))))
        live = Signal(W)  # flags still to broadcast in this window
        m.d.comb += live.eq(Mux(scan_done, 0, window & mask))
        m.d.comb += lnzd.flags.eq(live)
        last_in_window = Signal()  # the detected flag is the window's last live one
        m.d.comb += last_in_window.eq((live & (live - 1)) == 0)
        idx_slot = Array(Const(k // n_pe, range(max(2, hw.win_slots))) for k in range(W))
        idx_pe = Array(Const(k % n_pe, range(max(2, n_pe))) for k in range(W))

        next_window = Signal()
        # stage B: the activation read is in flight / held; broadcast when every queue has room
        b_valid = Signal()
        b_j = Signal(hw.width_bits)
        b_pe = Signal(range(max(2, n_pe)))
        all_ready = Signal()
        # only the PEs for which column b_j has entries enqueue it (pointers read in stage A)
        m.d.comb += all_ready.eq(Cat(*(pe.q_ready | ~pe.q_ne for pe in pes)).all())
        fire = Signal()
        m.d.comb += fire.eq(b_valid & all_ready)
        advance = Signal()
        m.d.comb += advance.eq(~b_valid | fire)
        rdata = Array(pe.act_rdata for pe in pes)
        for pe in pes:
            m.d.comb += [pe.q_valid.eq(fire), pe.q_a.eq(rdata[b_pe])]

        # ---- write-back: one local row per cycle in every PE, beside the next layer's scan --
        wb_running = Signal()
        wb_start = Signal()
        wb_slot = Signal(range(slots + 1))
        wb_j = Signal(hw.width_bits + 1)  # wb_slot * n_pe
        wb_written = Signal(range(slots + 1))  # local rows whose results and flags are stored
        wb_lim = Signal(hw.width_bits + 2)
        m.d.comb += wb_lim.eq(wbl.rows - wb_j)
        wb_flag_slot = Signal(range(slots))
        wb_flag_valid = Signal()
        m.d.comb += wb_flag_valid.eq(pes[0].flag_valid)
        m.d.sync += wb_flag_slot.eq(wb_slot)  # the slot issued one cycle earlier
        with m.If(wb_start):
            m.d.sync += [wbl.eq(cur), wb_parity.eq(l_idx[0]), wb_running.eq(1), wb_slot.eq(0),
                         wb_j.eq(0), wb_written.eq(0)]
        with m.Elif(wb_running):
            with m.If(wb_j < wbl.rows):
                for p, pe in enumerate(pes):
                    m.d.comb += [pe.wb_valid.eq(1), pe.wb_slot.eq(wb_slot), pe.wb_ok.eq(p < wb_lim)]
                m.d.sync += [wb_slot.eq(wb_slot + 1), wb_j.eq(wb_j + n_pe)]
            with m.If(wb_flag_valid):
                m.d.sync += wb_written.eq(wb_flag_slot + 1)
                with m.If(wb_j >= wbl.rows):
                    m.d.sync += wb_running.eq(0)
        # the scan reads a window only once the write-back has stored all of it
        window_ready = Signal()
        m.d.comb += window_ready.eq(~wb_running | (wb_written >= (win + 1) * hw.win_slots))

        # ---- output counters --------------------------------------------------------------
        out_j = Signal(hw.width_bits)  # next to read
        out_pe = Signal(range(max(2, n_pe)))
        out_slot = Signal(range(slots))
        out_sent = Signal(hw.width_bits)
        o_valid = Signal()
        o_pe = Signal(range(max(2, n_pe)))
        m.d.comb += self.output.valid.eq(o_valid)
        m.d.comb += self.output.payload.eq(rdata[o_pe])

        any_busy = Signal()
        m.d.comb += any_busy.eq(Cat(*(pe.busy for pe in pes)).any())

        def bank_addr(bank, slot):
            return Mux(bank, slots + slot, slot)

        with m.FSM(name="ccu"):
            with m.State("IDLE"):
                # loads only between input vectors; inputs not in the cycle after a load (table read)
                m.d.sync += tbl_ok.eq(~ld_fire)
                m.d.comb += [self.load.ready.eq(in_j == 0),
                             self.input.ready.eq(tbl_ok & ~(self.load.valid & (in_j == 0)))]
                with m.If(self.input.valid & self.input.ready):
                    for p, pe in enumerate(pes):
                        m.d.comb += [pe.act_we.eq(in_pe == p), pe.act_waddr.eq(in_slot),
                                     pe.act_wdata.eq(self.input.payload)]
                    m.d.sync += flags.bit_select(in_j, 1).eq(self.input.payload != 0)
                    with m.If(in_j == 0):
                        m.d.sync += [running.eq(1), run_count.eq(1)]
                    with m.If(in_pe == n_pe - 1):
                        m.d.sync += [in_pe.eq(0), in_slot.eq(in_slot + 1)]
                    with m.Else():
                        m.d.sync += in_pe.eq(in_pe + 1)
                    m.d.sync += in_j.eq(in_j + 1)
                    with m.If(in_j + 1 == tr.data.cols):
                        m.d.sync += [in_j.eq(0), in_pe.eq(0), in_slot.eq(0)]
                        m.next = "SETUP"

            with m.State("SETUP"):
                m.d.sync += [cur.eq(tr.data), win.eq(0), jbase.eq(0), pos.eq(0), scan_done.eq(0),
                             computing.eq(1)]
                with m.If(l_idx == 0):
                    m.d.sync += comp_count.eq(1)
                m.next = "BCAST"

            with m.State("BCAST"):
                # stage A: pick the next non-zero of the window, or skip the window
                a_issue = Signal()  # stage A hands a non-zero to stage B this cycle
                with m.If(~scan_done & window_ready):
                    with m.If(lnzd.found):
                        with m.If(advance):
                            m.d.comb += a_issue.eq(1)
                            slot = Signal(range(slots))
                            m.d.comb += slot.eq(win * hw.win_slots + idx_slot[lnzd.index])
                            for pe in pes:
                                m.d.comb += [pe.act_raddr.eq(bank_addr(src_bank, slot)), pe.act_ren.eq(1),
                                             pe.pr_en.eq(1), pe.pr_j.eq(jbase + lnzd.index)]
                            m.d.sync += [b_valid.eq(1), b_j.eq(jbase + lnzd.index),
                                         b_pe.eq(idx_pe[lnzd.index]), pos.eq(lnzd.index + 1)]
                            with m.If(last_in_window):
                                m.d.comb += next_window.eq(1)
                    with m.Else():
                        m.d.comb += next_window.eq(1)
                    with m.If(next_window):
                        m.d.sync += [win.eq(win + 1), jbase.eq(jbase + W), pos.eq(0)]
                        with m.If(jbase + W >= cur.cols):
                            m.d.sync += scan_done.eq(1)
                # (a window not yet written back may show stale flags: only a_issue refills B)
                with m.If(fire & ~a_issue):
                    m.d.sync += b_valid.eq(0)
                with m.If(scan_done & ~b_valid):
                    m.next = "DRAIN"

            with m.State("DRAIN"):
                # the previous layer's write-back is over: this layer's scan needed all of it
                with m.If(~any_busy):
                    m.d.comb += wb_start.eq(1)
                    with m.If(cur.last):
                        m.next = "FINISH"
                    with m.Else():
                        m.d.sync += l_idx.eq(l_idx + 1)
                        m.next = "NEXT"

            with m.State("FINISH"):
                with m.If(~wb_running):
                    m.d.sync += [computing.eq(0), out_j.eq(0), out_pe.eq(0), out_slot.eq(0),
                                 out_sent.eq(0), o_valid.eq(0)]
                    m.next = "OUT"

            with m.State("NEXT"):
                m.next = "SETUP"

            with m.State("OUT"):
                adv = Signal()
                m.d.comb += adv.eq(~o_valid | self.output.ready)
                with m.If(adv):
                    with m.If(out_j < cur.rows):
                        for pe in pes:
                            m.d.comb += [pe.act_raddr.eq(bank_addr(dst_bank, out_slot)), pe.act_ren.eq(1)]
                        m.d.sync += [o_valid.eq(1), o_pe.eq(out_pe), out_j.eq(out_j + 1)]
                        with m.If(out_pe == n_pe - 1):
                            m.d.sync += [out_pe.eq(0), out_slot.eq(out_slot + 1)]
                        with m.Else():
                            m.d.sync += out_pe.eq(out_pe + 1)
                    with m.Else():
                        m.d.sync += o_valid.eq(0)
                with m.If(self.output.valid & self.output.ready):
                    m.d.sync += out_sent.eq(out_sent + 1)
                    with m.If(out_sent + 1 == cur.rows):
                        m.d.sync += [running.eq(0), self.cycles.eq(run_count + 1),
                                     self.compute_cycles.eq(comp_count), l_idx.eq(0), o_valid.eq(0)]
                        m.next = "IDLE"

        # flags written back by the PEs (all PEs write back the same slot in the same cycle)
        with m.If(wb_flag_valid):
            m.d.sync += flags.word_select(bank_addr(~wb_parity, wb_flag_slot), n_pe).eq(
                Cat(*(pe.flag for pe in pes)))
        return m
