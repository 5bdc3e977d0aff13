"""``eiex verilog eie|xnor``: an engine's Verilog, sized by an image or by engine parameters."""

from __future__ import annotations

from pathlib import Path

from eiex.cli.common import ENGINE_OPTIONS, describe_eie, describe_folding, eie_engine, engine_subparsers, xnor_engine


def add_parser(sub) -> None:
    engines = engine_subparsers(sub.add_parser("verilog", help="generate an engine's Verilog"))
    for name, (help_text, add_engine) in ENGINE_OPTIONS.items():
        p = engines.add_parser(name, help=help_text)
        add_engine(p)
        p.add_argument("-o", "--output", type=Path, required=True, help="Verilog file to write")
        p.set_defaults(func=run)


def run(args) -> int:
    from eiex.sim.engines import get_engine
    from eiex.sw.atomic import atomic_write

    if args.engine == "eie":
        _, hw, init = eie_engine(args)
        what = describe_eie(hw, init)
    else:
        _, hw, init = xnor_engine(args)
        what = f"XNOR engine, {describe_folding(hw)}"
        what += f", memories initialized from {args.images}" if init else ""
    atomic_write(args.output, get_engine(args.engine).to_verilog(hw, init=init).encode())
    print(f"wrote {args.output}: {what}")
    return 0
