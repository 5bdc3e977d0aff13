"""Run the XNOR engine on Amaranth's simulator: load, stream images in, take scores out.

The testbench measures the spec's statistics from the handshakes: ``cycles`` per image (first input
beat accepted to last score delivered, inclusive) and ``interval`` (cycles between the last scores
of successive images).
"""

from __future__ import annotations

import random

import numpy as np
from eiex.sim.pysim.timed import receive, run_timed, send
from eiex.hw.xnor import golden
from eiex.hw.xnor.engine import XnorEngine
from eiex.hw.xnor.memory_map import engine_for, load_writes, memory_contents, pack_input


def simulate(image, bits: np.ndarray, *, preload: bool = False, out_ready: float = 1.0, in_valid: float = 1.0,
             seed: int = 0, vcd: str | None = None, timing: dict | None = None) -> tuple[np.ndarray, dict]:
    """Scores ``(images, M)`` and the run's statistics for input bits ``(images, K)`` (0/1).

    ``out_ready`` / ``in_valid``: probability that the output is ready / an input beat is offered
    in a cycle (1.0: always), to exercise back-pressure and gaps. ``preload``: memories initialized
    at elaboration instead of written through the load interface. ``timing``: a dict to receive
    ``sim_cycles`` (cycles simulated, load included) and ``sim_seconds`` (wall time).
    """
    bits = golden.check_bits(image, bits)
    dut = XnorEngine(engine_for(image), memory_contents(image) if preload else None)
    writes = [] if preload else load_writes(image)
    beats = pack_input(image, bits)
    m_out = image.layers[-1].out_features
    outputs = np.zeros((len(bits), m_out), dtype=np.int64)
    first_in, last_out = [], []
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)

    async def driver(ctx, top):
        for w in writes:
            await send(ctx, dut.load, w)
        ctx.set(dut.load.valid, 0)
        for image_beats in beats:
            for b, beat in enumerate(image_beats):
                await send(ctx, dut.input, int(beat), in_valid, rng_in)
                if b == 0:
                    first_in.append(ctx.get(top.cycle))
        ctx.set(dut.input.valid, 0)

    async def monitor(ctx, top):
        for s in range(len(bits)):
            for r in range(m_out):
                outputs[s, r] = await receive(ctx, dut.output, out_ready, rng_out)
            last_out.append(ctx.get(top.cycle))
        ctx.set(dut.output.ready, 0)

    run_timed(dut, driver, monitor, vcd, timing)
    return outputs, statistics(image, first_in, last_out)


def statistics(image, first_in: list[int], last_out: list[int]) -> dict:
    """Per-image cycles and the steady-state interval (median gap between successive results)."""
    cycles = [int(end - start + 1) for start, end in zip(first_in, last_out)]
    gaps = np.diff(last_out)
    steady = gaps[len(gaps) // 2:] if len(gaps) > 2 else gaps
    return {"cycles": cycles, "interval": int(np.median(steady)) if len(steady) else None,
            "intervals": [int(g) for g in gaps], "ideal_interval": golden.ideal_interval(image)}
