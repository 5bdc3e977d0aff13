"""Block RAM without collision logic: a read port whose data Yosys may leave undefined on a collision.

An Amaranth synchronous read port that is not transparent returns, when the same cycle writes its
address, the old data. A block RAM's two ports do not promise that (ECP5 DP16KD, 7-series RAMB18
across ports), so Yosys emulates it: the write data and address registered, an address comparator
and a multiplexer on every data bit, per memory. The XNOR engine never uses a word read in the
cycle it is written (a buffer's consumer reads only banks that are full, weights and thresholds
are written only while the pipeline is empty), so it reads through an asynchronous port followed
by a register, and marks the memory ``no_rw_check``: Yosys merges the register into a synchronous
read port whose data on a collision is undefined, and adds no logic. In simulation the register
gives exactly the non-transparent synchronous read.

The EIE engine's memories read the same way: the image's (sparse matrix, pointers, codebooks,
biases) are written only by the load interface, between input vectors; a row of activations, and a
window of non-zero flags, is read only once it is stored; and where the MAC reads an accumulator in the cycle another entry's
sum is written to it, its forwarding uses that sum, never the word read.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib.memory import Memory

#: Memory attributes: no logic for read-write collisions (see the module docstring)
NO_RW_CHECK = {"no_rw_check": 1}
#: ... and block RAM
BLOCK_RAM = {"ram_style": "block", **NO_RW_CHECK}


def registered_read(m: Module, memory: Memory, name: str, en=None) -> tuple[Signal, Signal]:
    """``(addr, data)`` of a read port of ``memory``: ``data`` is the word at ``addr`` of the
    cycle before, as read before that cycle's write. With ``en`` (a signal), ``data`` changes only
    after cycles with ``en`` high, as a synchronous port's enable."""
    port = memory.read_port(domain="comb")
    addr = Signal.like(port.addr, name=f"{name}_addr")
    data = Signal.like(port.data, name=f"{name}_data")
    m.d.comb += port.addr.eq(addr)
    if en is None:
        m.d.sync += data.eq(port.data)
    else:
        with m.If(en):
            m.d.sync += data.eq(port.data)
    return addr, data
