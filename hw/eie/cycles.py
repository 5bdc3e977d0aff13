"""Cycle model of the EIE engine in :mod:`eiex.hw.eie.engine`, and the spec's ideal cycle count.

``ideal_cycles`` is section 10 of ``eie-image.md``: per layer ``max(nnz(a_l), max_p work(l, p))``.

``engine_cycles`` predicts the RTL's ``compute_cycles`` and ``cycles`` exactly (inputs offered
every cycle, output always ready), by a recurrence over the non-zero columns ``k`` of each layer
(cycle 0 is the layer's ``SETUP`` cycle, ``D`` the PE queue depth, ``Dc`` the column queue's):

* scan (:mod:`eiex.hw.eie.scan`): window ``w`` is loaded at ``L_w = max(fin_{w-1}, G_w)``
  (``fin_{-1} = 1``, ``G_w`` below); an all-zero window finishes at ``L_w + 1``, any other one
  at its last flag's issue. Flags issue into the column queue one per cycle from ``L_w + 1``:
  ``I_k = max(L_w + 1 or I_{k-1} + 1, P_{k-Dc} + 1)`` (the queue must have room);
* stage ``A`` pops the queue at ``P_k = max(I_k + 1, P_{k-1} + 1, F_{k-H} + 1)`` (``H`` =
  ``SKID_DEPTH`` columns in flight at most: the place of column ``k - H`` is free the cycle after its
  broadcast);
* broadcast: ``F_k`` is the first cycle ``t >= max(P_k + 3, F_{k-1} + 1)`` at which no PE's queue
  held ``D - 1`` columns at ``t - 1`` (the stall is a register), every PE counted, whether column
  ``k`` is non-empty in it or not. PE ``p`` holds at ``t - 1`` its columns broadcast before ``t - 1``
  less those it took before ``t - 1``: ``t >= Take_p[m - D + 1] + 2``, ``m`` being the number of
  ``p``'s non-empty columns before ``k``, or ``m`` less one when column ``k - 1`` is non-empty in ``p``
  and broadcast at ``t - 1``. Empty columns are not enqueued and cost ``p`` nothing;
* PE ``p``, non-empty column of ``n`` entries: taken from the queue at ``max(F_k + 1, Last)``,
  its first entry issues at ``max(F_k + 1, Last + 1)`` and ``Last`` becomes its last entry's
  issue cycle;
* the scan is done from ``fin + 1`` after the last window, the control unit leaves ``BCAST`` at
  ``max(fin + 1, F_last + 1)``, PE ``p`` is idle from ``Last + 1 + MAC_STAGES`` (its last
  non-empty column); ``DRAIN`` is left (write-back starts in the background) at
  ``c = max(leave + 1, idle + 1)`` (the PEs report idle through a register).

The next layer's ``SETUP`` is ``c + 2`` (one ``NEXT`` cycle reads the layer table). Local row
``s`` of the write-back is decided at ``c + 1 + s``, its flag stored ``WRITEBACK_LATENCY`` cycles
later, so that layer's window ``w`` can be loaded from
``G_w = c + 2 + WRITEBACK_LATENCY + min((w + 1) * window_slots, S)`` (``S = ceil(rows / n_pe)``
of the layer before; no wait for the first layer). The last layer's write-back ends
``S + WRITEBACK_LATENCY + 1`` cycles after ``c``. ``cycles`` adds the ``cols`` input transfers of
the first layer, ``OUTPUT_LATENCY`` cycles to the first output (the activation bank's read, its
register, the output queue) and ``rows`` output transfers.
"""

from __future__ import annotations

import math

import numpy as np

from eiex.hw.eie import golden
from eiex.hw.eie.params import COLUMN_QUEUE_DEPTH, HwParams
from eiex.hw.eie.pe import MAC_STAGES
from eiex.hw.eie.pe import WRITEBACK_LATENCY as PE_WRITEBACK_LATENCY
from eiex.hw.eie.pointers import SKID_DEPTH
from eiex.sw.images.eie.image import EieImage

#: cycles from the control unit's decision to write back a local row to its result and flag: the
#: command register, then the PE's pipeline
WRITEBACK_LATENCY = 1 + PE_WRITEBACK_LATENCY

NEVER = -(1 << 60)

#: cycles from the end of FINISH to the first result on the output port
OUTPUT_LATENCY = 3

# Cycles a layer costs beyond its ideal when no PE ever waits: SETUP, the first window load, the
# column queue, stages A, A2, A3 and B, the PE queue, the MAC pipeline's drain, the PEs' registered
# idle flag and NEXT (the recurrence below: a layer of one entry goes from SETUP at 0 to the next
# SETUP at 19).
LAYER_LATENCY = 18


def pipeline_latency(image: EieImage, hw: HwParams) -> int:
    """The fixed part of ``compute_cycles``: ``LAYER_LATENCY`` per layer; for every layer after the
    first, the wait until the write-back has stored the rows of its first LNZD window (the scan
    may load at cycle 1, the window is loadable at ``WRITEBACK_LATENCY + min(window_slots, S)``);
    the last layer's write-back (one cycle per local row slot, plus its pipeline). An image whose
    PEs never wait runs in exactly ``ideal_cycles + pipeline_latency``."""
    slots = [layer.slots(hw.n_pe) for layer in image.layers]
    first_window_wait = sum(min(hw.win_slots, s) + WRITEBACK_LATENCY - 1 for s in slots[:-1])
    return LAYER_LATENCY * len(slots) + first_window_wait + slots[-1] + WRITEBACK_LATENCY


def layer_inputs(image: EieImage, a: np.ndarray) -> list[np.ndarray]:
    """Each layer's input vector for one input vector ``a``."""
    a = golden.check_inputs(image, a)[0]
    outs = golden.run_layers(image, a[None, :])
    return [a] + [o[0] for o in outs[:-1]]


def column_lengths(image: EieImage, l: int) -> np.ndarray:
    """Entries (fillers included) of every column of layer ``l`` in every PE: ``(n_pe, cols)``."""
    layer = image.layers[l]
    ptr = np.stack([pe.ptr[layer.ptr_base: layer.ptr_base + layer.cols + 1] for pe in image.pes])
    return np.diff(ptr, axis=1)


def ideal_layer_cycles(image: EieImage, a: np.ndarray) -> np.ndarray:
    """Section 10 for every input vector of ``a`` ``(samples, inputs)`` at once, per layer:
    ``max(nnz(a_l), max_p work(l, p))``, shaped ``(samples, layers)``."""
    a = golden.check_inputs(image, a)
    layer_in = [a] + golden.run_layers(image, a)[:-1]
    per_layer = np.zeros((len(a), len(layer_in)), dtype=np.int64)
    for l, a_l in enumerate(layer_in):
        live = (np.asarray(a_l) != 0).astype(np.int64)
        work = live @ column_lengths(image, l).T.astype(np.int64)  # (samples, n_pe)
        per_layer[:, l] = np.maximum(live.sum(axis=1), work.max(axis=1, initial=0))
    return per_layer


def ideal_cycles_batch(image: EieImage, a: np.ndarray) -> np.ndarray:
    """Section 10's ``ideal_cycles`` of every input vector of ``a`` ``(samples, inputs)``."""
    return ideal_layer_cycles(image, a).sum(axis=1)


def ideal_cycles(image: EieImage, a: np.ndarray) -> int:
    """Section 10 for one input vector ``a``."""
    return int(ideal_cycles_batch(image, golden.check_inputs(image, a)[:1])[0])


def layer_drain_end(image: EieImage, l: int, a_l: np.ndarray, hw: HwParams, gate_slots: int) -> int:
    """The cycle (from the layer's ``SETUP`` cycle, 0) at which the PEs are idle and the layer's
    write-back starts (``DRAIN`` left). ``gate_slots``: local rows of the previous layer still being
    written back (0 for the first layer): window ``w`` is loadable from cycle
    ``WRITEBACK_LATENCY + min((w + 1) * window_slots, gate_slots)`` (the scan sees ``readable`` a
    cycle late)."""
    layer, n_pe, depth, window = image.layers[l], hw.n_pe, hw.queue_depth, hw.window
    nz = np.flatnonzero(a_l)
    lengths = column_lengths(image, l)[:, nz]  # (n_pe, K)
    n_windows = math.ceil(layer.cols / window)
    by_window = [[] for _ in range(n_windows)]
    for k, j in enumerate(nz):
        by_window[j // window].append(k)

    def gate(w):
        return WRITEBACK_LATENCY + min((w + 1) * hw.win_slots, gate_slots) if gate_slots else NEVER

    last = np.full(n_pe, NEVER, dtype=np.int64)
    takes = [[] for _ in range(n_pe)]  # take cycles of each PE's non-empty columns
    pops: list[int] = []
    fires: list[int] = []
    def clear_from(held):
        """The first ``t`` at which no PE held ``depth - 1`` columns at ``t - 1``, ``held[p]`` being
        PE ``p``'s columns broadcast before ``t - 1``: its take number ``held[p] - depth + 1`` came
        before ``t - 1``."""
        return max((takes[p][held[p] - depth + 1] + 2 for p in range(n_pe) if held[p] >= depth - 1),
                   default=NEVER)

    fin = 1  # the scan may load its next window from this cycle
    i_prev = p_prev = f_prev = NEVER
    for w in range(n_windows):
        load = max(fin, gate(w))
        if not by_window[w]:
            fin = load + 1
            continue
        i_prev = load
        for k in by_window[w]:
            i_k = i_prev + 1
            if k >= COLUMN_QUEUE_DEPTH:
                i_k = max(i_k, pops[k - COLUMN_QUEUE_DEPTH] + 1)
            p_k = max(i_k + 1, p_prev + 1)
            if k >= SKID_DEPTH:
                p_k = max(p_k, fires[k - SKID_DEPTH] + 1)
            f_k = max(p_k + 3, f_prev + 1)
            n = lengths[:, k]
            held = [len(t) for t in takes]
            if k > 0 and f_k == f_prev + 1:  # column k - 1, broadcast at t - 1, is not held yet
                before = [h - int(size > 0) for h, size in zip(held, lengths[:, k - 1])]
                if clear_from(before) > f_k:
                    f_k = max(f_k + 1, clear_from(held))
            else:
                f_k = max(f_k, clear_from(held))
            for p in range(n_pe):
                if n[p] > 0:
                    takes[p].append(max(f_k + 1, int(last[p])))
                    last[p] = max(f_k + 1, int(last[p]) + 1) + int(n[p]) - 1
            pops.append(p_k)
            fires.append(f_k)
            i_prev, p_prev, f_prev = i_k, p_k, f_k
        fin = i_prev
    leave = max(fin + 1, f_prev + 1)  # BCAST left at the end of this cycle
    idle = int(last.max()) + 1 + MAC_STAGES if len(nz) else NEVER
    return max(leave + 1, idle + 1)  # the PEs' busy flags are registered


def engine_cycles(image: EieImage, a: np.ndarray, hw: HwParams) -> dict:
    """Predicted statistics of one input vector: ``cycles``, ``compute_cycles``, ``ideal_cycles``
    and the per-layer spans and ideals."""
    inputs = layer_inputs(image, a)
    ideals = [int(i) for i in ideal_layer_cycles(image, golden.check_inputs(image, a)[:1])[0]]
    setup, gate_slots, spans = 0, 0, []
    for l, a_l in enumerate(inputs):
        drain_end = setup + layer_drain_end(image, l, a_l, hw, gate_slots)
        spans.append(drain_end - setup + 1)
        gate_slots = image.layers[l].slots(hw.n_pe)
        setup = drain_end + 2  # NEXT (layer-table read), then the next layer's SETUP
    # the last write-back: rows issued from drain_end + 1, the last stored at
    # drain_end + slots + WRITEBACK_LATENCY, FINISH sees it one cycle later; compute_cycles counts
    # cycle 0 too
    compute = drain_end + gate_slots + WRITEBACK_LATENCY + 2
    return {
        "cycles": image.inputs + compute + OUTPUT_LATENCY + image.outputs,
        "compute_cycles": compute,
        "ideal_cycles": sum(ideals),
        "latency": pipeline_latency(image, hw),
        "layer_spans": spans,  # SETUP to the start of write-back, per layer
        "layer_ideal": ideals,
    }
