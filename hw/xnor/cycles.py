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
  (from the start for the first three images);
* a conv layer (:class:`~eiex.hw.xnor.conv.ConvUnit`) runs the same recurrence on its fixed
  schedule of ``positions * T`` cycles an image (its first window read where an MVTU issues its
  first step): it frees its input bank after its last window read and writes its last pixel
  ``D + (positions - 1) * T + NF * SF - 1 + latency`` cycles after its start
  (:func:`~eiex.hw.xnor.conv.conv_unit_constants`); a pool layer reads one pixel a cycle for
  ``steps`` cycles and writes its last pixel ``POOL_LATENCY`` cycles after its last read; a map
  buffer is seen full the cycle after its last write;
* a conv or pool first layer takes ``H * W`` input beats an image (one pixel each) instead of ``SF_0``.

Padding PEs and lanes (``P > M`` or ``S > K``, spec section 4) change nothing here: such a layer
takes ``NF * SF`` steps like any other, its latency counts the popcount of its used lanes and its
buffers hold only real rows and columns (:func:`~eiex.hw.xnor.engine.buffer_geometries`).

The testbench stamps a handshake with the cycle after it; ``cycles`` of an image is last score
minus first beat, plus one, and ``interval`` the gap between successive last scores.
"""

from __future__ import annotations

from eiex.hw.xnor.banks import N_BANKS
from eiex.hw.xnor.conv import ConvGeometry, conv_unit_constants
from eiex.hw.xnor.engine import buffer_geometries, input_beats
from eiex.hw.xnor.mvtu import LayerGeometry, mvtu_latency
from eiex.hw.xnor.pool import POOL_LATENCY

NEVER = -(1 << 40)


def unit_timing(g) -> tuple[int, int, int]:
    """``(steps, release, write)`` of a layer's unit, from the first cycle of an image: cycles
    until the next image may start, the cycle its input bank is freed, the cycle of its last write."""
    if isinstance(g, LayerGeometry):
        steps = g.nf * g.sf
        return steps, steps - 1, steps - 1 + mvtu_latency(g)
    if isinstance(g, ConvGeometry):
        c = conv_unit_constants(g)
        return c["steps"], c["release"], c["write"]
    return g.steps, g.steps - 1, g.steps - 1 + POOL_LATENCY


def pipeline_cycles(layers, images: int) -> dict:
    """Per image: first-beat and last-score stamps, ``cycles``; the gaps between results."""
    n = len(layers)
    beats, rows_out = input_beats(layers[0])[0], layers[-1].out_features
    timing = [unit_timing(g) for g in layers]
    complete = [bg.complete_delay for bg in buffer_geometries(layers)]
    # seen_free[s][i]: cycle from which buffer s's bank for image i is seen free (buffer 0: input)
    seen_free = [[NEVER] * images for _ in range(n + 1)]
    seen_full = [[NEVER] * images for _ in range(n + 1)]
    first_beat, last_score = [], []
    accept = out_start = NEVER
    last_issue = [NEVER] * n
    for i in range(images):
        accept = max(accept + beats, seen_free[0][i]) if i else max(0, seen_free[0][i])
        seen_full[0][i] = accept + beats
        first_beat.append(accept)
        for l, (steps, release, write) in enumerate(timing):
            begin = max(last_issue[l], seen_full[l][i], seen_free[l + 1][i]) + 1
            last_issue[l] = begin + steps - 1
            if i + N_BANKS < images:
                seen_free[l][i + N_BANKS] = begin + release + 1
            seen_full[l + 1][i] = begin + write + complete[l + 1]
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


def steady_interval(layers) -> int:
    """The interval once the pipeline is full: the slowest unit, or the streams when they are
    slower (input beats or ``M`` scores per image)."""
    return max(max(unit_timing(g)[0] for g in layers), input_beats(layers[0])[0], layers[-1].out_features)
