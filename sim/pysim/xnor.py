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
             seed: int = 0, vcd: str | None = None, timing: dict | None = None,
             hidden_outputs: bool = False) -> tuple[np.ndarray, dict]:
    """Scores ``(images, M)`` and the run's statistics for input bits ``(images, K)`` (0/1).

    ``out_ready`` / ``in_valid``: probability that the output is ready / an input beat is offered
    in a cycle (1.0: always), to exercise back-pressure and gaps. ``preload``: memories initialized
    at elaboration instead of written through the load interface. ``timing``: a dict to receive
    ``sim_cycles`` (cycles simulated, load included) and ``sim_seconds`` (wall time).
    ``hidden_outputs``: the statistics also hold ``hidden_outputs``, per layer but the last the
    ``(images, output bits)`` its unit wrote into the next buffer (see :func:`unit_outputs`).
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

    spies = [] if not hidden_outputs else [unit_outputs(unit, layer, len(bits))
                                         for unit, layer in zip(dut.units[:-1], image.layers)]
    run_timed(dut, driver, monitor, vcd, timing, spies=[spy for spy, _ in spies])
    stats = statistics(image, first_in, last_out)
    if hidden_outputs:
        stats["hidden_outputs"] = [result() for _, result in spies]
    return outputs, stats


def unit_outputs(unit, layer, images: int):
    """A simulator process recording the writes of a unit into the next buffer, and a function
    giving them as ``(images, output bits)`` 0/1 once the run is over: a fully connected layer's
    folds of ``P`` results (padding rows dropped), a conv or pool layer's pixels, in order."""
    writes = []

    async def spy(ctx):
        async for _, _, we, data in ctx.tick().sample(unit.dst.we, unit.dst.data):
            if we:
                writes.append(data)

    def result():
        width = len(unit.dst.data)
        bits = ((np.array(writes, dtype=object)[:, None] >> np.arange(width)) & 1).astype(np.uint8)
        per_image = bits.reshape(images, -1)
        return per_image[:, :layer.output_size]

    return spy, result


def statistics(image, first_in: list[int], last_out: list[int]) -> dict:
    """Per-image cycles and the steady-state interval (median gap between successive results)."""
    cycles = [int(end - start + 1) for start, end in zip(first_in, last_out)]
    gaps = np.diff(last_out)
    steady = gaps[len(gaps) // 2:] if len(gaps) > 2 else gaps
    return {"cycles": cycles, "interval": int(np.median(steady)) if len(steady) else None,
            "intervals": [int(g) for g in gaps], "ideal_interval": golden.ideal_interval(image)}
