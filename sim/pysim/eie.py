"""Run an EIE image on the engine in Amaranth's simulator: load, stream inputs, collect outputs.

The same call shape as :func:`eiex.hw.eie.golden.run`, plus per-vector statistics.
"""

from __future__ import annotations

import random

import numpy as np

from eiex.hw.eie import golden
from eiex.hw.eie.cycles import ideal_cycles
from eiex.hw.eie.engine import EieEngine
from eiex.hw.eie.memory_map import load_writes, memory_contents
from eiex.hw.eie.params import DEFAULT_MAC, HwParams
from eiex.sim.pysim.timed import receive, run_timed, send
from eiex.sw.images.eie.image import EieImage


def build(image: EieImage, hw: HwParams | None = None, queue_depth: int = 8,
          preload: bool = False, mac: str = DEFAULT_MAC) -> EieEngine:
    """An engine sized for ``image``; ``preload``: its memories initialized from the image."""
    hw = hw or HwParams.for_image(image, queue_depth=queue_depth, mac=mac)
    return EieEngine(hw, init=memory_contents(image, hw) if preload else None)


def cycle_budget(image: EieImage, writes: int, vectors: int, rate: float = 1.0) -> int:
    """Cycles the engine needs at most, many times over: the loads, then per vector every
    transfer, column, entry and row of every layer plus a fixed latency; ``rate``, the lowest
    handshake probability, stretches it. A run beyond it is a deadlock."""
    entries = sum(int(pe.ptr.max(initial=0)) for pe in image.pes)
    work = image.inputs + image.outputs + entries + sum(l.cols + l.rows + 100 for l in image.layers)
    return int((1000 + 2 * writes + 4 * vectors * work) / max(rate, 0.01))


def simulate(image: EieImage, inputs: np.ndarray, queue_depth: int = 8, hw: HwParams | None = None,
             preload: bool = False, mac: str = DEFAULT_MAC, out_ready: float = 1.0, in_valid: float = 1.0, seed: int = 0,
             vcd: str | None = None, timing: dict | None = None) -> tuple[np.ndarray, list[dict]]:
    """Outputs ``(samples, rows_last)`` and one statistics dict per input vector (``cycles`` and
    ``compute_cycles`` as the engine counted them, ``ideal_cycles`` per the spec, section 10).

    ``out_ready`` / ``in_valid``: probability that the output is ready / an input is offered in a
    cycle (1.0: always), to exercise back-pressure and gaps. ``preload``: memories initialized at
    elaboration instead of written through the load interface. ``mac``: the PEs' MAC kind
    (:class:`HwParams`; ``hw``, when given, says it instead). ``timing``: a dict to receive
    ``sim_cycles`` (cycles simulated, load included) and ``sim_seconds`` (wall time).
    """
    a = golden.check_inputs(image, inputs)
    hw = hw or HwParams.for_image(image, queue_depth=queue_depth, mac=mac)
    hw.check_image(image)
    dut = build(image, hw, preload=preload)
    writes = [] if preload else load_writes(image, hw, skip_zero=True)
    n_out = image.outputs
    outputs = np.zeros((len(a), n_out), dtype=np.int64)
    stats: list[dict] = []
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)

    async def driver(ctx, top):
        for w in writes:
            await send(ctx, dut.load, w)
        ctx.set(dut.load.valid, 0)
        for vec in a:
            for x in vec:
                await send(ctx, dut.input, int(x), in_valid, rng_in)
            ctx.set(dut.input.valid, 0)

    async def monitor(ctx, top):
        for s in range(len(a)):
            for i in range(n_out):
                outputs[s, i] = await receive(ctx, dut.output, out_ready, rng_out)
            ctx.set(dut.output.ready, 0)
            await ctx.tick()  # the statistics registers update at the last transfer's edge
            stats.append({"cycles": ctx.get(dut.cycles), "compute_cycles": ctx.get(dut.compute_cycles),
                          "ideal_cycles": ideal_cycles(image, a[s])})

    run_timed(dut, driver, monitor, vcd, timing, max_cycles=cycle_budget(image, len(writes), len(a),
                                                                        min(in_valid, out_ready)))
    return outputs, stats
