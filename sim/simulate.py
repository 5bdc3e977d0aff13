"""One way to run an image on a simulated engine: :func:`simulate`, with one :class:`Stats`.

``simulator="amaranth"`` runs the Amaranth design in Amaranth's own simulator
(:mod:`eiex.sim.pysim`); ``"verilator"`` and ``"icarus"`` run its generated Verilog under cocotb
(:mod:`eiex.sim.testbenches.runner`). Every simulator returns the same outputs and the same
statistics; only the figures of the run itself (build time, cache use) differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from eiex.errors import EiexError
from eiex.hw.eie.params import DEFAULT_MAC, DEFAULT_QUEUE_DEPTH
from eiex.sim.engines import get_engine

SIMULATORS = ("amaranth", "verilator", "icarus")


@dataclass
class Stats:
    """The statistics of one simulated run (the "Statistics" sections of the image specs).

    ``samples`` has one dict per input vector: ``cycles`` (first input to last output), and for
    EIE ``compute_cycles`` and ``ideal_cycles``. ``figures`` holds an engine's run-wide figures
    (XNOR: ``cycles``, ``intervals``, ``interval``, ``ideal_interval``), ``run`` the simulator's
    (cocotb: ``run_seconds``, ``build_seconds``, ``verilog_seconds``, ``cached``, ``build_dir``).
    """

    engine: str
    simulator: str
    samples: list[dict]
    sim_cycles: int  # clock cycles simulated, reset and loading included
    sim_seconds: float  # wall time of the simulation, without building
    figures: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)

    @property
    def total(self) -> dict:
        return {k: sum(s[k] for s in self.samples) for k in (self.samples[0] if self.samples else {})}

    @property
    def cycles_per_second(self) -> float | None:
        return self.sim_cycles / self.sim_seconds if self.sim_seconds > 0 else None

    @property
    def interval(self) -> int | None:
        """The steady-state interval between results, for engines that pipeline inferences."""
        return self.figures.get("interval")

    def as_dict(self) -> dict:
        """What ``eiex sim --stats`` writes."""
        return {"samples": self.samples, "total": self.total, **self.figures, "simulator": self.simulator,
                "engine": self.engine, "sim_cycles": self.sim_cycles, "sim_seconds": self.sim_seconds,
                "cycles_per_second": self.cycles_per_second, **self.run}


def check_simulator(simulator) -> None:
    if simulator not in SIMULATORS:
        raise EiexError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")


def simulate(engine, image, inputs, *, simulator: str = "amaranth", queue_depth: int = DEFAULT_QUEUE_DEPTH,
             mac: str = DEFAULT_MAC, preload: bool = False,
             in_valid: float = 1.0, out_ready: float = 1.0, seed: int = 0, **options) -> tuple[np.ndarray, Stats]:
    """Outputs ``(samples, outputs)`` (int64) of ``image`` on ``engine`` for ``inputs`` and the run's
    :class:`Stats`.

    ``inputs`` are the engine's input integers (EIE ``act_bits`` fixed point, XNOR 0/1 bits)
    shaped ``(samples, inputs)``. ``queue_depth`` sizes EIE's activation queue; ``mac`` is its
    PEs' MAC, ``"multiply"`` or ``"shift"`` (:class:`eiex.hw.eie.params.HwParams`). ``preload``
    initializes the memories in the design instead of writing them through the load interface.
    ``in_valid`` / ``out_ready`` are the probabilities per cycle that an input is offered / the
    output is ready (random gaps and back-pressure from ``seed``). ``options`` go to the
    simulator: Amaranth ``vcd``; cocotb ``cache_dir``, ``log``, ``stall_cycles``.
    """
    spec = get_engine(engine)
    check_simulator(simulator)
    for name, p in (("in_valid", in_valid), ("out_ready", out_ready)):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p <= 1.0:
            raise EiexError(f"{name} must be a probability in (0, 1], not {p!r}")
    spec.check_image(image)
    common = dict(preload=preload, in_valid=in_valid, out_ready=out_ready, seed=seed)
    if simulator == "amaranth":
        timing = {}
        outputs, samples, figures = spec.amaranth(image, inputs, queue_depth=queue_depth, mac=mac, timing=timing,
                                                  **common, **options)
        stats = Stats(spec.name, simulator, samples, int(timing["sim_cycles"]), float(timing["sim_seconds"]),
                      figures)
    else:
        from eiex.sim.testbenches.runner import run_cocotb

        outputs, stats = run_cocotb(spec, image, inputs, simulator=simulator, queue_depth=queue_depth, mac=mac, **common,
                                    **options)
    return np.asarray(outputs, dtype=np.int64), stats
