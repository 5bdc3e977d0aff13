"""``eiex verilog eie|xnor``: an engine's Verilog, sized by an image or by engine parameters."""

from __future__ import annotations

from pathlib import Path

from eiex.cli.common import ENGINE_OPTIONS, engine_subparsers


def add_parser(sub) -> None:
    engines = engine_subparsers(sub.add_parser("verilog", help="generate an engine's Verilog"))
    for name, options in ENGINE_OPTIONS.items():
        p = engines.add_parser(name, help=options.help)
        options.add(p)
        p.add_argument("-o", "--output", type=Path, required=True, help="Verilog file to write")
        p.set_defaults(func=run)


def run(args) -> int:
    from eiex.sim.engines import get_engine
    from eiex.sw.atomic import atomic_write

    options = ENGINE_OPTIONS[args.engine]
    _, hw, init = options.from_args(args)
    atomic_write(args.output, get_engine(args.engine).to_verilog(hw, init=init).encode())
    print(f"wrote {args.output}: {options.describe(hw, init, args.images)}")
    return 0
