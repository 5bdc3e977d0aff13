"""The EIE engine: central control unit (LNZD broadcast, layer sequencing, I/O) and the PEs.

Block diagram::

    load ──► decode ──► every PE's spmat / ptr (even, odd) / bias / codebook, the layer table
    input ─► PE j % n_pe, slot j // n_pe of activation bank 0; flag j packed into window words
                   ┌──────────────── control unit ─────────────────┐
    flag memory ─► │ window word ─► live ─► LNZD ─► column queue   │ ─► A: read a_j (every PE's bank)
    (one window    │                                               │    and every PE's pointers of j
     per word)     │                                               │ ─► A2: data out of the memories
                   │                                               │ ─► B: broadcast (j, a_j); a PE
                   └───────────────────────────────────────────────┘    enqueues (start, end, a_j)
                                                                        only if end > start (waits
                                                                        while a queue is nearly full)
    PE p: pointer banks ─► queue ─► walker ─► spmat word ─► codebook ─► MAC (+ forwarding) ─► acc
    write-back: acc + bias ─► round, saturate, ReLU ─► activation bank dst; flags packed ─► dst words
    output ◄── last layer's bank, rows in order

Activation banks are ping-pong: layer ``l`` reads bank ``l % 2`` and writes bank ``(l + 1) % 2``;
so are the flag memory's two banks and the accumulators (bank ``l % 2`` in every PE), so the
write-back of layer ``l`` runs beside the broadcasts of layer ``l + 1``: the scan loads a window of
flags only once the write-back has stored all of that window's local rows. The layer table (rows,
cols, relu, weight_frac, ptr_base, bias_base, codebook_base, last) is a memory in the control
unit; all its layers run back to back for each input vector.

Control-unit states: ``IDLE`` (loads and inputs) ─► ``SETUP`` (layer fields) ─► ``BCAST``
(LNZD scan and broadcast) ─► ``DRAIN`` (PEs finish; the write-back starts in the background)
─► ``NEXT`` (layer-table read) ─► ``SETUP`` ... last layer: ``DRAIN`` ─► ``FINISH`` (write-back
done) ─► ``OUT`` (results) ─► ``IDLE``.

Control-unit pipeline (:mod:`eiex.hw.eie.scan` for the scan): the scan hands one non-zero per
cycle to a short column queue (``j``, its slot and PE and its pointer-bank addresses, from constant
tables per window position: no divider); stage ``A`` takes the queue head and reads ``a_j`` from
every PE's source bank and, in every PE, the column's two pointers; ``A2`` has the data, ``A3``
registers it (no logic follows a block RAM's slow output in the same cycle) and pushes it into
skid buffers (``a_j``, PE ``j % n_pe``'s word, here; each PE's pointers in its
:class:`~eiex.hw.eie.pointers.PointerReader`). Their heads are stage ``B``, which broadcasts unless a PE's queue
held ``queue_depth - 1`` columns in the cycle before (a registered stall: the decision would
otherwise cross the chip twice in a cycle, from every PE's queue to the control unit and back to
every PE's queue). A PE with no entries in column ``j`` does not enqueue it and spends no cycle on
it. ``A`` .. ``A3`` never hold: ``A`` pops only
while fewer than ``SKID_DEPTH`` columns are in flight (a registered count), which is what keeps a
stalled broadcast from reaching the memories' enables in the same cycle.
"""

from __future__ import annotations

from amaranth import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eiex.hw.eie.params import COLUMN_QUEUE_DEPTH, WEIGHT_FRAC_BITS, HwParams
from eiex.hw.eie.pe import (ProcessingElement, act_port_signature, column_signature, pe_load_signature,
                            writeback_signature)
from eiex.hw.eie.pointers import SKID_DEPTH
from eiex.hw.eie.scan import FlagPacker, WindowScan, column_layout
from eiex.hw.ram import NO_RW_CHECK, registered_read
from eiex.errors import EiexError


#: results between the activation banks and the output port: two reads in flight and room to spare
OUTPUT_QUEUE_DEPTH = 4


class MemSel(enum.Enum, shape=3):
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
        "sel": MemSel,
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
        Optional elaboration-time memory contents, from :func:`eiex.hw.eie.memory_map.memory_contents`.

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
        hw = self.hw
        m = Module()
        init = self.init or {}
        # the control unit's side of every PE's interfaces
        self._cols = [column_signature(hw).create(path=(f"col{p}",)) for p in range(hw.n_pe)]
        self._wbs = [writeback_signature(hw).create(path=(f"wb{p}",)) for p in range(hw.n_pe)]
        self._acts = [act_port_signature(hw).create(path=(f"act{p}",)) for p in range(hw.n_pe)]
        self._pes = []
        for p in range(hw.n_pe):
            pe = m.submodules[f"pe{p}"] = ProcessingElement(hw, init=init["pes"][p] if init else None)
            self._pes.append(pe)
            wiring.connect(m, self._cols[p], pe.col)
            wiring.connect(m, self._wbs[p], pe.wb)
            wiring.connect(m, self._acts[p], pe.act)

        table = m.submodules.layer_table = Memory(shape=layer_layout(hw), depth=hw.max_layers,
                                                  init=init.get("layers", []))
        self._table_r = table.read_port()
        self._l_idx = Signal(range(max(2, hw.max_layers)))
        m.d.comb += self._table_r.addr.eq(self._l_idx)
        self._cur = Signal(layer_layout(hw))  # the running layer's fields
        self._wbl = Signal(layer_layout(hw))  # the fields of the layer being written back
        self._wb_parity = Signal()  # its index's parity: accumulator bank, activation bank ~parity
        for pe in self._pes:
            fields = {"codebook_base": self._cur.codebook_base,
                      "mac_bank": self._l_idx[0], "bias_base": self._wbl.bias_base,
                      "weight_frac": self._wbl.weight_frac, "relu": self._wbl.relu, "wb_bank": self._wb_parity}
            m.d.comb += [getattr(pe.layer, name).eq(value) for name, value in fields.items()]

        self._load(m, table)
        # the scan loads a window only once every flag of it is stored (the gate), so no read
        # needs a word written in its cycle: no collision logic
        flags = m.submodules.flags = Memory(shape=hw.window, depth=hw.flag_depth, init=[], attrs=NO_RW_CHECK)
        flag_w = flags.write_port()
        flag_raddr, flag_rdata = registered_read(m, flags, "flag")
        scan = m.submodules.scan = WindowScan(hw)
        m.d.comb += [flag_raddr.eq(scan.flag_addr), scan.flag_data.eq(flag_rdata)]
        in_fire = self._inputs(m, flag_w)
        self._writeback(m, flag_w, in_fire)
        colq = m.submodules.column_queue = SyncFIFO(width=column_layout(hw).size, depth=COLUMN_QUEUE_DEPTH)
        m.d.comb += [colq.w_en.eq(scan.column.valid), colq.w_data.eq(scan.column.payload),
                     scan.column.ready.eq(colq.w_rdy)]
        stages_empty = self._broadcast(m, colq)
        self._control(m, scan, colq, stages_empty)
        return m

    def _bank_addr(self, bank, slot):
        return Mux(bank, self.hw.slots + slot, slot)

    def _load(self, m, table):
        """Decode load-interface writes into the layer table and every PE's memories. The decoded
        writes are registered (one cycle later), so the strobes reach the PEs' memories, spread
        over the chip, from flip-flops."""
        hw = self.hw
        ld = self.load.payload
        fire = Signal()
        m.d.comb += fire.eq(self.load.valid & self.load.ready)
        addr, word = Signal.like(ld.addr, name="ld_addr"), Signal.like(ld.data, name="ld_data")
        table_we = Signal()
        m.d.sync += [addr.eq(ld.addr), word.eq(ld.data), table_we.eq(fire & (ld.sel == MemSel.LAYER))]
        tw = table.write_port()
        m.d.comb += [tw.en.eq(table_we), tw.addr.eq(addr), tw.data.eq(word[:layer_layout(hw).size])]
        for p, pe in enumerate(self._pes):
            port = pe_load_signature(hw).create(path=(f"ld{p}",))
            wiring.connect(m, port, pe.load)
            mine = fire & (ld.pe == p)
            m.d.sync += [port.spmat.eq(mine & (ld.sel == MemSel.SPMAT)), port.ptr.eq(mine & (ld.sel == MemSel.PTR)),
                         port.bias.eq(mine & (ld.sel == MemSel.BIAS)),
                         port.codebook.eq(fire & (ld.sel == MemSel.CODEBOOK))]
            m.d.comb += [port.addr.eq(addr), port.data.eq(word)]
        self._ld_fire = fire
        self._ld_last = Signal()  # a transfer in the cycle before
        m.d.sync += self._ld_last.eq(fire)

    def _inputs(self, m, flag_w):
        """Input counters: activation ``j`` to PE ``j % n_pe``, slot ``j // n_pe`` of bank 0, its
        flag packed into window word ``j // W`` of bank 0. Returns the input transfer strobe."""
        hw = self.hw
        self._in_j = Signal(hw.width_bits)
        in_pe = Signal(range(max(2, hw.n_pe)))
        in_slot = Signal(range(hw.slots))
        in_k = Signal(range(max(2, hw.window)))  # position in the window
        in_win = Signal(range(hw.n_windows))
        fire = Signal()
        m.d.comb += fire.eq(self.input.valid & self.input.ready)
        # in_j + 1 == cols, registered: both outcomes of this cycle's transfer compared ahead
        cols = self._table_r.data.cols
        self._in_final = Signal()
        m.d.sync += self._in_final.eq(Mux(fire, Mux(self._in_final, cols == 1, self._in_j + 2 == cols),
                                          self._in_j + 1 == cols))
        self._in_first = Signal(init=1)  # in_j == 0, registered: it gates the load and input handshakes
        with m.If(fire):
            m.d.sync += self._in_first.eq(self._in_final)
        packer = m.submodules.input_flags = FlagPacker(hw.window, 1)
        m.d.comb += [packer.valid.eq(fire), packer.pos.eq(in_k), packer.bits.eq(self.input.payload != 0)]
        with m.If(fire):
            m.d.comb += [flag_w.en.eq(1), flag_w.addr.eq(in_win), flag_w.data.eq(packer.word)]
            for p, act in enumerate(self._acts):
                m.d.comb += [act.we.eq(in_pe == p), act.waddr.eq(in_slot), act.wdata.eq(self.input.payload)]
            with m.If(in_pe == hw.n_pe - 1):
                m.d.sync += [in_pe.eq(0), in_slot.eq(in_slot + 1)]
            with m.Else():
                m.d.sync += in_pe.eq(in_pe + 1)
            with m.If(in_k == hw.window - 1):
                m.d.sync += [in_k.eq(0), in_win.eq(in_win + 1)]
            with m.Else():
                m.d.sync += in_k.eq(in_k + 1)
            m.d.sync += self._in_j.eq(self._in_j + 1)
            with m.If(self._in_final):
                m.d.sync += [self._in_j.eq(0), in_pe.eq(0), in_slot.eq(0), in_k.eq(0), in_win.eq(0)]
        return fire

    def _writeback(self, m, flag_w, in_fire):
        """Write-back sequencer: one local row per cycle in every PE, beside the next layer's
        scan; the PEs' flags packed into the destination bank's window words."""
        hw = self.hw
        wbl = self._wbl
        self._wb_start = Signal()
        self._wb_running = Signal()
        issued = Signal(range(hw.slots + 1))
        wb_j = Signal(hw.width_bits + 1)  # issued * n_pe
        self._wb_written = Signal(range(hw.slots + 1))  # local rows whose results and flags are stored
        pos = Signal(range(max(2, hw.win_slots)))  # the next flag group's place in its window
        win = Signal(range(hw.n_windows))
        lim = Signal(hw.width_bits + 2)
        m.d.comb += lim.eq(wbl.rows - wb_j)
        flag_valid = self._wbs[0].flag_valid  # every PE writes back the same slot in the same cycle
        packer = m.submodules.writeback_flags = FlagPacker(hw.window, hw.n_pe)
        m.d.comb += [packer.valid.eq(flag_valid), packer.pos.eq(pos), packer.bits.eq(Cat(wb.flag for wb in self._wbs))]
        with m.If(flag_valid & ~in_fire):
            m.d.comb += [flag_w.en.eq(1), flag_w.addr.eq(Mux(self._wb_parity, win, hw.n_windows + win)),
                         flag_w.data.eq(packer.word)]
        # the commands go out of registers (a write-back starts only once the one before is over,
        # so wb_start never meets a running write-back)
        m.d.sync += [wb.valid.eq(0) for wb in self._wbs]
        with m.If(self._wb_running & (wb_j < wbl.rows)):
            for p, wb in enumerate(self._wbs):
                m.d.sync += [wb.valid.eq(1), wb.slot.eq(issued), wb.ok.eq(p < lim)]
            m.d.sync += [issued.eq(issued + 1), wb_j.eq(wb_j + hw.n_pe)]
        with m.If(self._wb_start):
            m.d.sync += [wbl.eq(self._cur), self._wb_parity.eq(self._l_idx[0]), self._wb_running.eq(1),
                         issued.eq(0), wb_j.eq(0), self._wb_written.eq(0), pos.eq(0), win.eq(0)]
        with m.Elif(self._wb_running):
            with m.If(flag_valid):
                m.d.sync += self._wb_written.eq(self._wb_written + 1)
                with m.If(pos == hw.win_slots - 1):
                    m.d.sync += [pos.eq(0), win.eq(win + 1)]
                with m.Else():
                    m.d.sync += pos.eq(pos + 1)
                with m.If((self._wb_written + 1 == issued) & (wb_j >= wbl.rows)):
                    m.d.sync += self._wb_running.eq(0)

    def _broadcast(self, m, colq):
        """Stages ``A``, ``A2``, ``A3`` and the skid buffers whose heads are ``B``: returns "no
        column in them"."""
        hw = self.hw
        head = data.View(column_layout(hw), colq.r_data)
        a2_valid = Signal()
        a2_pe = Signal(range(max(2, hw.n_pe)))
        a3_valid = Signal()
        a3_pe = Signal(range(max(2, hw.n_pe)))
        a3_act = self._a3_act = [Signal(signed(hw.engine.act_bits), name=f"a3_act{p}") for p in range(hw.n_pe)]
        # a_j of the columns in the PEs' pointer skid buffers, in step with them
        skid = m.submodules.act_skid = SyncFIFO(width=hw.engine.act_bits, depth=SKID_DEPTH)
        # the broadcast stalls while a PE's queue held depth - 1 columns in the cycle before: a
        # register, so the decision does not cross the chip twice in one cycle (PEs to the control
        # unit and back); it stalls even for a PE that does not need the column
        stall = Signal()
        m.d.sync += stall.eq(Cat(col.full for col in self._cols).any())
        fire = Signal()
        m.d.comb += fire.eq(skid.r_rdy & ~stall)
        # columns popped and not yet broadcast; a pop needs one of the SKID_DEPTH places (registered,
        # so the broadcast's stall never reaches the memories' enables in the same cycle)
        in_flight = Signal(range(SKID_DEPTH + 1))
        self._room = Signal(init=1)
        self._pop = Signal()  # driven in BCAST
        m.d.comb += colq.r_en.eq(self._pop)
        flight_next = Signal(range(SKID_DEPTH + 2))
        m.d.comb += flight_next.eq(in_flight + self._pop - fire)
        m.d.sync += [in_flight.eq(flight_next), self._room.eq(flight_next < SKID_DEPTH)]
        self._head = head
        for col in self._cols:
            m.d.comb += [col.ptr_even.eq(head.ptr_even), col.ptr_odd.eq(head.ptr_odd),
                         col.ptr_odd_first.eq(head.ptr_odd_first), col.push.eq(a3_valid), col.fire.eq(fire),
                         col.a.eq(skid.r_data)]
        m.d.sync += [a2_valid.eq(self._pop), a2_pe.eq(head.pe), a3_valid.eq(a2_valid), a3_pe.eq(a2_pe)]
        m.d.sync += [reg.eq(act.rdata) for reg, act in zip(a3_act, self._acts)]
        m.d.comb += [skid.w_en.eq(a3_valid), skid.w_data.eq(Array(a3_act)[a3_pe]), skid.r_en.eq(fire)]
        return ~colq.r_rdy & (in_flight == 0)

    def _control(self, m, scan, colq, stages_empty):
        hw = self.hw
        cur, l_idx, tr = self._cur, self._l_idx, self._table_r
        src_bank, dst_bank = l_idx[0], ~l_idx[0]

        running = Signal()
        computing = Signal()
        run_count = Signal(self.STAT_BITS)
        comp_count = Signal(self.STAT_BITS)
        with m.If(running):
            m.d.sync += run_count.eq(run_count + 1)
        with m.If(computing):
            m.d.sync += comp_count.eq(comp_count + 1)

        m.d.comb += [scan.bank.eq(src_bank), scan.cols.eq(cur.cols), scan.ptr_base.eq(cur.ptr_base),
                     scan.readable.eq(Mux(self._wb_running, self._wb_written, hw.slots))]

        out_j = Signal(hw.width_bits)  # next to read
        out_more = Signal()  # out_j < rows, registered
        out_pe = Signal(range(max(2, hw.n_pe)))
        out_slot = Signal(range(hw.slots))
        out_sent = Signal(hw.width_bits)
        out_final = Signal()  # out_sent + 1 == rows, registered
        # results: a row is read from every PE's bank (R), comes out of the block RAMs (R2), is in the
        # broadcast's a3_act registers (R3), then PE o_pe's word enters the output queue: no logic
        # after a block RAM's output, and the output port is driven by the queue
        out_q = m.submodules.output_queue = SyncFIFO(width=hw.engine.act_bits, depth=OUTPUT_QUEUE_DEPTH)
        o_read = Signal()
        o_r2, o_r3 = Signal(), Signal()
        o_pe2, o_pe3 = Signal(range(max(2, hw.n_pe))), Signal(range(max(2, hw.n_pe)))
        m.d.sync += [o_r2.eq(o_read), o_pe2.eq(out_pe), o_r3.eq(o_r2), o_pe3.eq(o_pe2)]
        m.d.comb += [out_q.w_en.eq(o_r3), out_q.w_data.eq(Array(self._a3_act)[o_pe3]),
                     self.output.valid.eq(out_q.r_rdy), self.output.payload.eq(out_q.r_data),
                     out_q.r_en.eq(self.output.ready)]
        o_room = Signal()  # a place for this read besides the two in flight (the level is a register)
        m.d.comb += o_room.eq(out_q.level < OUTPUT_QUEUE_DEPTH - 2)
        any_busy = Signal()
        m.d.comb += any_busy.eq(Cat(pe.busy for pe in self._pes).any())
        # inputs wait for the input counter's registered end-of-vector comparison with row 0 of the
        # layer table as it is now: in IDLE, the table's read (of row 0, also after OUT's last
        # layer), then the comparison, two cycles in which nothing is loaded; a load is written to
        # the table a cycle after its transfer
        settled = Signal()  # one of those cycles has passed
        tbl_ok = Signal()  # both have
        m.d.sync += [settled.eq(0), tbl_ok.eq(0)]

        with m.FSM(name="ccu"):
            with m.State("IDLE"):
                # loads only between input vectors
                quiet = ~self._ld_fire & ~self._ld_last
                m.d.sync += [settled.eq(quiet), tbl_ok.eq(settled & quiet)]
                m.d.comb += [self.load.ready.eq(self._in_first),
                             self.input.ready.eq(tbl_ok & ~(self.load.valid & self._in_first))]
                with m.If(self.input.valid & self.input.ready):
                    with m.If(self._in_first):
                        m.d.sync += [running.eq(1), run_count.eq(1)]
                    with m.If(self._in_final):
                        m.next = "SETUP"

            with m.State("SETUP"):
                m.d.comb += scan.start.eq(1)
                m.d.sync += [cur.eq(tr.data), computing.eq(1)]
                with m.If(l_idx == 0):
                    m.d.sync += comp_count.eq(1)
                m.next = "BCAST"

            with m.State("BCAST"):
                m.d.comb += [scan.run.eq(1), self._pop.eq(colq.r_rdy & self._room)]
                for col, act in zip(self._cols, self._acts):
                    m.d.comb += [col.en.eq(self._pop), act.raddr.eq(self._bank_addr(src_bank, self._head.slot)),
                                 act.ren.eq(self._pop)]
                with m.If(scan.done & stages_empty):
                    m.next = "DRAIN"

            with m.State("DRAIN"):
                # the previous layer's write-back is over: this layer's scan needed all of it
                with m.If(~any_busy):
                    m.d.comb += self._wb_start.eq(1)
                    with m.If(cur.last):
                        m.next = "FINISH"
                    with m.Else():
                        m.d.sync += l_idx.eq(l_idx + 1)
                        m.next = "NEXT"

            with m.State("FINISH"):
                with m.If(~self._wb_running):
                    m.d.sync += [computing.eq(0), out_j.eq(0), out_more.eq(1), out_pe.eq(0), out_slot.eq(0),
                                 out_sent.eq(0), out_final.eq(cur.rows == 1)]
                    m.next = "OUT"

            with m.State("NEXT"):
                m.next = "SETUP"

            with m.State("OUT"):
                with m.If(out_more & o_room):
                    m.d.comb += o_read.eq(1)
                    for act in self._acts:
                        m.d.comb += [act.raddr.eq(self._bank_addr(dst_bank, out_slot)), act.ren.eq(1)]
                    m.d.sync += [out_j.eq(out_j + 1), out_more.eq(out_j + 1 < cur.rows)]
                    with m.If(out_pe == hw.n_pe - 1):
                        m.d.sync += [out_pe.eq(0), out_slot.eq(out_slot + 1)]
                    with m.Else():
                        m.d.sync += out_pe.eq(out_pe + 1)
                with m.If(self.output.valid & self.output.ready):
                    m.d.sync += [out_sent.eq(out_sent + 1), out_final.eq(out_sent + 2 == cur.rows)]
                    with m.If(out_final):
                        m.d.sync += [running.eq(0), self.cycles.eq(run_count + 1),
                                     self.compute_cycles.eq(comp_count), l_idx.eq(0)]
                        m.next = "IDLE"
