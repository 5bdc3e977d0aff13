"""Amaranth-simulator helpers shared by the engines' testbenches: stream transfers that await the
handshake instead of polling every cycle, with optional random gaps and back-pressure."""

from __future__ import annotations

import random


async def send(ctx, port, payload, valid: float = 1.0, rng: random.Random | None = None) -> None:
    """One transfer on stream ``port`` (a DUT input); with ``valid`` < 1 the beat is offered only
    with that probability per cycle, leaving gaps."""
    ctx.set(port.payload, payload)
    while valid < 1.0 and rng.random() >= valid:
        ctx.set(port.valid, 0)
        await ctx.tick()
    ctx.set(port.valid, 1)
    await ctx.tick().until(port.ready)


async def receive(ctx, port, ready: float = 1.0, rng: random.Random | None = None):
    """The payload of one transfer on stream ``port`` (a DUT output); with ``ready`` < 1 the
    testbench is ready only with that probability per cycle."""
    if ready >= 1.0:
        ctx.set(port.ready, 1)
        (value,) = await ctx.tick().sample(port.payload).until(port.valid)
        return value
    while True:
        taking = rng.random() < ready
        ctx.set(port.ready, taking)
        _, _, value, valid = await ctx.tick().sample(port.payload, port.valid)
        if taking and valid:
            return value
