"""``eiex run``: a batch of inputs through an engine over the host link, checked against the golden model.

The same run for a board on a serial port and for the link top simulated under Verilator
(:class:`eiex.sim.testbenches.verilator_link.VerilatorTransport`): identify the device, load the image unless
it already holds it, run the inputs, read the statistics. The report gives the bytes on the wire
per inference, the rate the link allows at its baud rate, and the engine's own rate from the
cycles the device counted.
"""

from __future__ import annotations

import time

import numpy as np

from eiex.errors import EiexError
from eiex.hw.eie.params import DEFAULT_MAC, DEFAULT_QUEUE_DEPTH
from eiex.sim.engines import get_engine

#: the clock a simulated link top reports as its own (it runs the board's 3 Mbaud at divisor 16)
SIM_CLOCK_HZ = 48_000_000
#: clock cycles per bit of a simulated link: the fewest the UART allows, so the simulation is short
SIM_DIVISOR = 4


def simulated_link(kind: str, image, *, preload: bool = False, queue_depth: int = DEFAULT_QUEUE_DEPTH,
                   mac: str = DEFAULT_MAC, max_payload: int | None = None):
    """The link top a board carries (engine, host link and UART, without the board's clock and pins),
    for Verilator: the board's 48 MHz clock in its descriptor, but :data:`SIM_DIVISOR` cycles a bit,
    and a quiet time of 64 bytes."""
    from eiex.hw.link.engines import link_for

    return link_for(kind, image, clock_hz=SIM_CLOCK_HZ, divisor=SIM_DIVISOR, timeout_cycles=64 * 10 * SIM_DIVISOR,
                    preload=preload, queue_depth=queue_depth, mac=mac, max_payload=max_payload)


def run_over_link(kind: str, image, inputs, device, *, baud: float, labels=None, log=print) -> tuple[np.ndarray, dict]:
    """Run ``inputs`` through ``device`` (an :class:`eiex.driver.Device`); outputs and the report.

    ``baud`` is the line rate the link-limited figures are given for (the board's, also for a
    simulated link). Raises :class:`EiexError` if any output differs from the golden model.
    """
    engine = get_engine(kind)
    inputs = engine.check_inputs(image, inputs)
    if labels is not None:
        labels = engine.check_labels(labels, len(inputs))
    identity = device.identify()
    descriptor = identity.descriptor
    if descriptor["engine"] != kind:
        raise EiexError(f"the device runs the {descriptor['engine']} engine, not {kind}")
    started = time.perf_counter()
    loaded = device.ensure(image)
    load_seconds = time.perf_counter() - started
    if loaded:
        log(f"loaded the image over the link in {load_seconds:.1f} s")
    before = device.link_stats()
    started = time.perf_counter()
    outputs = device.run(image, inputs)
    run_seconds = time.perf_counter() - started
    after = device.link_stats()
    stats = device.stats()

    expected = engine.golden(image, inputs)
    if not np.array_equal(outputs, expected):
        sample, column = np.argwhere(outputs != expected)[0]
        raise EiexError(f"output {column} of input {sample} is {outputs[sample, column]} over the link, the golden "
                        f"model says {expected[sample, column]}")
    n = len(inputs)
    wire = {k: after[k] - before[k] for k in ("bytes_sent", "bytes_received")}
    per_inference = (wire["bytes_sent"] + wire["bytes_received"]) / n
    clock = descriptor["clock_hz"]
    # the line carries the request and the reply one after another (docs/host-protocol.md, Timing)
    link_rate = baud / 10 / per_inference
    run_cycles, run_samples = stats.counters["run_cycles"], stats.counters["run_samples"]
    engine_rate = run_samples * clock / run_cycles if run_cycles else None
    report = {"engine": kind, "inputs": n, "matches_golden": True, "loaded_image": bool(loaded),
              "baud": baud, "clock_hz": clock,
              "wire_bytes": wire, "wire_bytes_per_inference": round(per_inference, 2),
              "link_inferences_per_s": round(link_rate, 1),
              "engine_cycles_per_inference": round(run_cycles / run_samples, 1) if run_samples else None,
              "engine_inferences_per_s": round(engine_rate, 1) if engine_rate else None,
              "last_batch": {"run_cycles": run_cycles, "run_samples": run_samples},
              "device_stats": stats.as_dict(), "run_seconds": round(run_seconds, 3),
              "wall_inferences_per_s": round(n / run_seconds, 1)}
    if labels is not None:
        report["accuracy"] = engine.accuracy(image, outputs, labels)
    return outputs, report


def summary_line(report: dict) -> str:
    accuracy = f"accuracy {report['accuracy']:.2%}; " if "accuracy" in report else ""
    engine = (f"the engine alone {report['engine_inferences_per_s']:,.0f}/s at {report['clock_hz'] / 1e6:g} MHz "
              f"({report['engine_cycles_per_inference']:,.0f} cycles each)") if report["engine_inferences_per_s"] else ""
    return (f"{report['inputs']} inputs over the link, every output equal to the golden model; {accuracy}"
            f"{report['wire_bytes_per_inference']:,.0f} bytes on the wire per inference: "
            f"{report['link_inferences_per_s']:,.0f} inferences/s at {report['baud'] / 1e6:g} Mbaud, {engine}")
