"""Cycle model of the EIE engine in :mod:`eiex.hw.eie.engine`, and the spec's ideal cycle count.

``ideal_cycles`` is section 10 of ``eie-image.md``: per layer ``max(nnz(a_l), max_p work(l, p))``.

``engine_cycles`` predicts the RTL's ``compute_cycles`` and ``cycles`` exactly (inputs offered
every cycle, output always ready), by a recurrence over the broadcasts of each layer (cycle 0 is
the layer's ``SETUP`` cycle, ``D`` the queue depth, ``W`` the LNZD window):

* scan: window ``w`` (``W`` flags) may be read from cycle ``G_w`` (below); an empty window costs
  a cycle, a window is left with its last non-zero; ``A_k = max(reach, G_w, F_{k-1})`` for the
  first non-zero of a window (``reach``: the cycle after the scan left the window before), else
  ``A_k = max(A_{k-1} + 1, F_{k-1})``;
* broadcast: ``F_k = max(A_k + 1, Take_p[m - D] + 1)`` over the PEs ``p`` for which column ``k``
  is non-empty, ``m`` being the column's index among ``p``'s non-empty columns (the queue must
  have room; empty columns are not enqueued and cost ``p`` nothing);
* PE ``p``, non-empty column of ``n`` entries: taken from the queue at ``max(F_k + 1, Last)``,
  its first entry issues at ``max(F_k + 1, Last + 1)`` and ``Last`` becomes its last entry's
  issue cycle;
* the scan ends at ``X`` (last window left), the control unit leaves ``BCAST`` at
  ``max(X + 1, F_last + 1)``, PE ``p`` is idle from ``max(Take_last + 1, Last + 3)`` (its last non-empty column); ``DRAIN`` is
  left (write-back starts in the background) at ``c = max(leave + 1, idle)``.

The next layer's ``SETUP`` is ``c + 2`` (one ``NEXT`` cycle reads the layer table). Its window
``w`` is readable once the write-back stored ``min((w + 1) * window_slots, S)`` local rows
(``S = ceil(rows / n_pe)`` of the layer before): ``G_w = min(...)`` from that ``SETUP``
(no wait for the first layer). The last layer's write-back ends ``S + 2`` cycles after ``c``.
``cycles`` adds the ``cols`` input transfers of the first layer, one cycle to the first output and
``rows`` output transfers.
"""

from __future__ import annotations

import math

import numpy as np

from eiex.hw.eie import golden
from eiex.hw.eie.params import HwParams
from eiex.sw.eie_image import EieImage

NEVER = -(1 << 60)

# Cycles a layer costs beyond its ideal when no PE ever waits: SETUP, the first window read, the
# broadcast register, the queue, the pointer / sparse-matrix / codebook reads, the MAC pipeline's
# drain and NEXT (the recurrence below: a layer of one entry goes from SETUP at 0 to the next
# SETUP at 8).
LAYER_LATENCY = 7


def pipeline_latency(image: EieImage, hw: HwParams) -> int:
    """The fixed part of ``compute_cycles``: ``LAYER_LATENCY`` per layer; for every layer after the
    first, the wait until the write-back has stored the rows of its first LNZD window (the scan
    may start at cycle 1, the window is readable at ``min(window_slots, S)``); the last layer's
    write-back (one cycle per local row slot) and the cycle that sees it end. An image whose PEs
    never wait runs in exactly ``ideal_cycles + pipeline_latency``."""
    slots = [layer.slots(hw.n_pe) for layer in image.layers]
    first_window_wait = sum(min(hw.win_slots, s) - 1 for s in slots[:-1])
    return LAYER_LATENCY * len(slots) + first_window_wait + slots[-1] + 1


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


def ideal_layer_cycles(image: EieImage, l: int, a_l: np.ndarray) -> int:
    nz = np.flatnonzero(a_l)
    work = column_lengths(image, l)[:, nz].sum(axis=1)
    return int(max(len(nz), work.max(initial=0)))


def ideal_cycles(image: EieImage, a: np.ndarray) -> int:
    """Section 10: sum over layers of ``max(nnz(a_l), max_p work(l, p))``."""
    return sum(ideal_layer_cycles(image, l, a_l) for l, a_l in enumerate(layer_inputs(image, a)))


def layer_drain_end(image: EieImage, l: int, a_l: np.ndarray, hw: HwParams, gate_slots: int) -> int:
    """The cycle (from the layer's ``SETUP`` cycle, 0) at which the PEs are idle and the layer's
    write-back starts (``DRAIN`` left). ``gate_slots``: local rows of the previous layer still being
    written back (0 for the first layer): window ``w`` is readable from cycle
    ``min((w + 1) * window_slots, gate_slots)``."""
    layer, n_pe, depth, window = image.layers[l], hw.n_pe, hw.queue_depth, hw.window
    nz = np.flatnonzero(a_l)
    lengths = column_lengths(image, l)[:, nz]  # (n_pe, K)
    n_windows = math.ceil(layer.cols / window)
    k_count = len(nz)

    def gate(w):
        return min((w + 1) * hw.win_slots, gate_slots) if gate_slots else NEVER

    def skip_empty(t, first, stop):  # windows first .. stop - 1 hold no non-zero: one cycle each
        for w in range(first, stop):
            t = max(t, gate(w)) + 1
        return t

    take = np.full(n_pe, NEVER, dtype=np.int64)
    last = np.full(n_pe, NEVER, dtype=np.int64)
    takes = [[] for _ in range(n_pe)]  # take cycles of each PE's non-empty columns
    t = 1  # first cycle at which the scan may look at its next window
    a_prev = f_prev = NEVER
    w_prev = -1
    windows = nz // window
    for k in range(k_count):
        w = int(windows[k])
        if w != w_prev:
            t = skip_empty(t, w_prev + 1, w)
            a_k = max(t, gate(w), f_prev)
        else:
            a_k = max(a_prev + 1, f_prev)
        if k + 1 == k_count or windows[k + 1] != w:
            t = a_k + 1  # the window is left with its last non-zero
        f_k = a_k + 1
        n = lengths[:, k]
        for p in range(n_pe):
            if n[p] > 0 and len(takes[p]) >= depth:
                f_k = max(f_k, takes[p][-depth] + 1)
        for p in range(n_pe):
            if n[p] > 0:
                tk = max(f_k + 1, int(last[p]))
                take[p] = tk
                takes[p].append(tk)
                last[p] = max(f_k + 1, int(last[p]) + 1) + int(n[p]) - 1
        a_prev, f_prev, w_prev = a_k, f_k, w
    scan_end = skip_empty(t, w_prev + 1, n_windows) - 1
    leave = max(scan_end + 1, f_prev + 1)  # BCAST left at the end of this cycle
    idle = int(np.maximum(take + 1, last + 3).max()) if k_count else NEVER
    return max(leave + 1, idle)


def engine_cycles(image: EieImage, a: np.ndarray, hw: HwParams) -> dict:
    """Predicted statistics of one input vector: ``cycles``, ``compute_cycles``, ``ideal_cycles``
    and the per-layer spans and ideals."""
    inputs = layer_inputs(image, a)
    ideals = [ideal_layer_cycles(image, l, a_l) for l, a_l in enumerate(inputs)]
    setup, gate_slots, spans = 0, 0, []
    for l, a_l in enumerate(inputs):
        drain_end = setup + layer_drain_end(image, l, a_l, hw, gate_slots)
        spans.append(drain_end - setup + 1)
        gate_slots = image.layers[l].slots(hw.n_pe)
        setup = drain_end + 2  # NEXT (layer-table read), then the next layer's SETUP
    # the last write-back: rows issued from drain_end + 1, the last stored at drain_end + slots + 1,
    # FINISH sees it one cycle later; compute_cycles counts cycle 0 too
    compute = drain_end + gate_slots + 3
    return {
        "cycles": image.inputs + compute + 1 + image.outputs,
        "compute_cycles": compute,
        "ideal_cycles": sum(ideals),
        "latency": pipeline_latency(image, hw),
        "layer_spans": spans,  # SETUP to the start of write-back, per layer
        "layer_ideal": ideals,
    }
