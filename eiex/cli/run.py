"""``eiex run eie|xnor``: inputs through an engine over the host link, on a board or on Verilator."""

from __future__ import annotations

from pathlib import Path

from eiex.cli.common import add_inputs, add_mac, add_queue_depth, engine_inputs, engine_subparsers, log
from eiex.errors import EiexError
from eiex.hw.eie.params import DEFAULT_MAC, DEFAULT_QUEUE_DEPTH


def add_parser(sub) -> None:
    engines = engine_subparsers(sub.add_parser(
        "run", help="run inputs on an engine over the host link: a board, or its top on Verilator"))
    for name, help_text, x_help in (("eie", "the EIE sparse engine", "integers in act_bits fixed point"),
                                    ("xnor", "the XNOR binary engine", "bits, 0 or 1")):
        p = engines.add_parser(name, help=help_text)
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--port", help="the board's serial port (/dev/ttyUSB0)")
        where.add_argument("--sim", choices=("verilator",), help="the board's link top under Verilator")
        p.add_argument("--baud", type=int, default=3_000_000, help="with --port: the line's baud rate (default "
                       "3000000, what eiex build --board makes)")
        p.add_argument("--images", type=Path, required=True, help=f"an {name.upper()} image folder")
        add_inputs(p, x_help)
        p.add_argument("--out", type=Path, required=True, help="Y.npy to write: (samples, outputs)")
        p.add_argument("--stats", type=Path, help="S.json to write: wire bytes, link and engine rates, counters")
        p.add_argument("--preload", action="store_true", help="with --sim: the image in the simulated "
                       "bitstream (nothing to load over the link)")
        if name == "eie":
            add_queue_depth(p, "with --sim: ")
            add_mac(p, "with --sim: ")
        p.set_defaults(func=run)


def run(args) -> int:
    """An image's inputs through an engine over the host link: a board on a serial port, or the link
    top under Verilator; every output checked against the golden model (eiex/flows/run.py)."""
    import io
    import json

    import numpy as np

    from eiex.driver import Device
    from eiex.flows.run import run_over_link, simulated_link, summary_line
    from eiex.sim.engines import get_engine
    from eiex.sw.atomic import atomic_write

    spec = get_engine(args.engine)
    image = spec.load_image(args.images)
    inputs, labels = engine_inputs(spec, image, args)
    if args.port is not None:
        if args.preload:
            raise EiexError("--preload goes with --sim: a board's bitstream holds its image or not already")
        from eiex.driver.serial_port import SerialTransport

        transport = SerialTransport(args.port, args.baud)
        baud = args.baud
    else:
        from eiex.sim.testbenches.verilator_link import VerilatorTransport
        from eiex.hw.uart import BAUD_DEFAULT

        link = simulated_link(args.engine, image, preload=args.preload,
                              queue_depth=getattr(args, "queue_depth", DEFAULT_QUEUE_DEPTH),
                              mac=getattr(args, "mac", DEFAULT_MAC))
        log("building the link top for Verilator (cached after the first run)")
        transport = VerilatorTransport(link, link.divisor)
        baud = BAUD_DEFAULT  # the figures are the board's; the simulated line runs faster
    with Device(transport) as device:
        outputs, report = run_over_link(args.engine, image, inputs, device, baud=baud, labels=labels, log=log)
    buffer = io.BytesIO()
    np.save(buffer, outputs)
    atomic_write(args.out, buffer.getvalue())
    if args.stats is not None:
        atomic_write(args.stats, (json.dumps(report, indent=2) + "\n").encode())
    print(summary_line(report))
    print(f"outputs in {args.out}" + (f", report in {args.stats}" if args.stats else ""))
    return 0
