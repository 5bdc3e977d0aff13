"""Cycle model of the XNOR engine in :mod:`eiex.hw.xnor.engine`, exact against the RTL.

Inputs are offered every cycle and scores always taken. Cycle 0 is the one in which the first
input beat is accepted; "seen" means the cycle from which a registered bank state is visible.

* input: image ``i`` is accepted from ``a_i = max(a_{i-1} + SF_0, free_0(i))``, one beat a cycle;
  its bank is seen full from ``a_i + SF_0``;
* MVTU ``l`` (``C = NF * SF`` steps): issues image ``i`` from ``max(last_{i-1}, full_l(i), free_{l+1}(i)) + 1``
  to ``last_i`` (``C`` cycles), frees its input bank at ``last_i`` (seen free one cycle later) and
  commits its output bank ``latency_l`` cycles later (:func:`~eiex.hw.xnor.mvtu.mvtu_latency`: the
  memory read, the popcount stages, accumulate, compare); the bank is seen full one cycle after
  that, or two when the buffer flushes a partial word after the commit
  (:attr:`~eiex.hw.xnor.banks.BufferGeometry.complete_delay`);
* output: the ``M`` scores of image ``i`` go out from ``max(out_{i-1} + M, full_L(i) + 1)`` (the
  read is synchronous), one a cycle, and the bank is free (seen) one cycle after the last;
* a bank is reused three images later: ``free_l(i)`` is when its consumer freed image ``i - 3``
  (from the start for the first three images).

Padding PEs and lanes (``P > M`` or ``S > K``, spec section 4) change nothing here: such a layer
takes ``NF * SF`` steps like any other, its latency counts the popcount of its used lanes and its
buffers hold only real rows and columns (:func:`~eiex.hw.xnor.engine.buffer_geometries`).

The testbench stamps a handshake with the cycle after it; ``cycles`` of an image is last score
minus first beat, plus one, and ``interval`` the gap between successive last scores.
"""

from __future__ import annotations

from eiex.hw.xnor.banks import N_BANKS
from eiex.hw.xnor.engine import buffer_geometries
from eiex.hw.xnor.mvtu import LayerGeometry, mvtu_latency

NEVER = -(1 << 40)


def pipeline_cycles(layers: list[LayerGeometry], images: int) -> dict:
    """Per image: first-beat and last-score stamps, ``cycles``; the gaps between results."""
    n = len(layers)
    sf0, rows_out = layers[0].sf, layers[-1].out_features
    steps = [g.nf * g.sf for g in layers]
    latency = [mvtu_latency(g) for g in layers]
    complete = [bg.complete_delay for bg in buffer_geometries(layers)]
    # seen_free[s][i]: cycle from which buffer s's bank for image i is seen free (buffer 0: input)
    seen_free = [[NEVER] * images for _ in range(n + 1)]
    seen_full = [[NEVER] * images for _ in range(n + 1)]
    first_beat, last_score = [], []
    accept = out_start = NEVER
    last_issue = [NEVER] * n
    for i in range(images):
        accept = max(accept + sf0, seen_free[0][i]) if i else max(0, seen_free[0][i])
        seen_full[0][i] = accept + sf0
        first_beat.append(accept)
        for l in range(n):
            begin = max(last_issue[l], seen_full[l][i], seen_free[l + 1][i]) + 1
            last_issue[l] = begin + steps[l] - 1
            if i + N_BANKS < images:
                seen_free[l][i + N_BANKS] = last_issue[l] + 1
            seen_full[l + 1][i] = last_issue[l] + latency[l] + complete[l + 1]
        out_start = max(out_start + rows_out, seen_full[n][i] + 1)
        done = out_start + rows_out - 1
        last_score.append(done)
        if i + N_BANKS < images:
            seen_free[n][i + N_BANKS] = done + 1
    return {
        "first_beat": first_beat,
        "last_score": last_score,
        "cycles": [end - start + 1 for start, end in zip(first_beat, last_score)],
        "intervals": [b - a for a, b in zip(last_score, last_score[1:])],
    }


def steady_interval(layers: list[LayerGeometry]) -> int:
    """The interval once the pipeline is full: the slowest layer, or the streams when they are
    slower (``SF_0`` input beats or ``M`` scores per image)."""
    return max(max(g.nf * g.sf for g in layers), layers[0].sf, layers[-1].out_features)
