"""``eiex sim eie|xnor``: an image on a simulated engine (Amaranth, Verilator or Icarus), checked
against the golden model."""

from __future__ import annotations

from pathlib import Path

from eiex.cli.common import add_inputs, add_mac, add_queue_depth, engine_inputs, engine_subparsers
from eiex.hw.eie.params import DEFAULT_MAC, DEFAULT_QUEUE_DEPTH
from eiex.sim.simulate import SIMULATORS

#: per engine: what its X.npy, Y.npy and S.json hold
FILES = {
    "eie": ("the EIE sparse engine", "an EIE image folder", "integers in act_bits fixed point",
            "integers", "cycles, compute_cycles, ideal_cycles"),
    "xnor": ("the XNOR binary engine", "an XNOR image folder", "bits, 0 or 1", "scores 2*acc - K",
             "cycles per image, interval, ideal_interval"),
}


def add_parser(sub) -> None:
    engines = engine_subparsers(sub.add_parser("sim", help="run an image on a simulated engine"))
    for name, (help_text, images, x, y, stats) in FILES.items():
        p = engines.add_parser(name, help=help_text)
        p.add_argument("--images", type=Path, required=True, help=images)
        add_inputs(p, x)
        p.add_argument("--out", type=Path, required=True, help=f"Y.npy to write: (samples, outputs) {y}")
        p.add_argument("--stats", type=Path, help=f"S.json to write: {stats}")
        p.add_argument("--sim", choices=SIMULATORS, default="amaranth",
                       help="Amaranth's simulator, or the generated Verilog under cocotb (default amaranth)")
        if name == "eie":
            add_queue_depth(p)
            add_mac(p)
        p.set_defaults(func=run)


def run(args) -> int:
    """Run ``args.images`` on ``args.input`` on the chosen simulator; write Y.npy and S.json; compare
    with the golden model."""
    import io
    import json

    import numpy as np

    from eiex.sim.engines import get_engine
    from eiex.sim.simulate import simulate
    from eiex.sw.atomic import atomic_write

    spec = get_engine(args.engine)
    image = spec.load_image(args.images)
    inputs, labels = engine_inputs(spec, image, args)
    outputs, stats = simulate(spec.name, image, inputs, simulator=args.sim,
                              queue_depth=getattr(args, "queue_depth", DEFAULT_QUEUE_DEPTH),
                              mac=getattr(args, "mac", DEFAULT_MAC))
    record = stats.as_dict()
    accuracy = ""
    if labels is not None:
        record["accuracy"] = spec.accuracy(image, outputs, labels)
        accuracy = f"accuracy {record['accuracy']:.2%}; "
    buffer = io.BytesIO()
    np.save(buffer, outputs)
    atomic_write(args.out, buffer.getvalue())
    if args.stats is not None:
        atomic_write(args.stats, (json.dumps(record, indent=2) + "\n").encode())
    matches = bool(np.array_equal(outputs, spec.golden(image, inputs)))
    interval = f"interval {stats.interval} cycles (ideal {stats.figures['ideal_interval']}); " if stats.interval else ""
    print(f"{len(inputs)} input vectors on {args.sim}: {accuracy}{interval}{stats.cycles_per_second:,.0f} simulated "
          f"cycles/s; outputs in {args.out}; golden model {'agrees' if matches else 'DISAGREES'}")
    return 0 if matches else 1
