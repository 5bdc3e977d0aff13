"""``eiex build eie|xnor``: Yosys and nextpnr for a part (the engine alone), or a board's bitstream
(the engine behind the host link)."""

from __future__ import annotations

from pathlib import Path

from eiex.cli.common import ENGINE_OPTIONS, add_output, engine_subparsers, log, read_inputs
from eiex.errors import EiexError
from eiex.sim.engines import get_engine


def add_parser(sub) -> None:
    from eiex.sim.tools.boards import BOARDS
    from eiex.sim.tools.build import DEFAULT_FREQ
    from eiex.sim.tools.parts import PARTS

    engines = engine_subparsers(sub.add_parser(
        "build", help="synthesize, place and route an engine for an FPGA part or a board (Yosys, nextpnr)"))
    for name, options in ENGINE_OPTIONS.items():
        p = engines.add_parser(name, help=options.help)
        options.add(p)
        if name == "eie":
            p.add_argument("--input", type=Path, help="X.npy of engine-format inputs for the throughput "
                           "(default: 100 held-out MNIST-5k digits for a 784-input image)")
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("--part", choices=sorted(PARTS), help="the FPGA part: the engine alone, for its "
                            "resources and Fmax")
        target.add_argument("--board", choices=BOARDS, help="a board: the engine behind the host link "
                            "(docs/host-protocol.md), to a bitstream")
        p.add_argument("--baud", type=int, help="with --board: the UART's baud rate (default 3000000, 115200 on "
                       "the OrangeCrab, whose USB-serial adapter is the user's)")
        p.add_argument("--speed", type=int, choices=(6, 7, 8), help="with --part: ECP5 speed grade (default 6, "
                       "the slowest)")
        p.add_argument("--freq", type=float, help=f"with --part: target clock in MHz for nextpnr (default "
                       f"{DEFAULT_FREQ:g})")
        p.add_argument("--seed", type=int, help="nextpnr placer seed (default: nextpnr's)")
        add_output(p, "build folder")
        p.set_defaults(func=run)


def run(args) -> int:
    """Synthesize, place and route an engine for a part, or behind the host link for a board to a
    bitstream; write the report (sim/tools/build.py)."""
    from eiex.sim.tools.build import run_build
    from eiex.sim.tools.parts import get_part
    from eiex.sw.atomic import check_output_dir

    if args.board is not None:
        return _build_board(args)
    if args.baud is not None:
        raise EiexError("--baud goes with --board: a --part build has no UART")
    part = get_part(args.part, args.speed)
    check_output_dir(args.out, args.force)
    if args.freq is not None and not args.freq > 0:
        raise EiexError(f"--freq must be a positive number of MHz, not {args.freq}")
    options, spec = ENGINE_OPTIONS[args.engine], get_engine(args.engine)
    image, hw, init = options.from_args(args)
    engine = spec.component(hw, init)
    inputs = read_inputs(args.input) if getattr(args, "input", None) is not None else None
    cycles = spec.throughput(image, hw, inputs)
    what, params = options.describe(hw, init), options.params(hw)
    if args.images is not None:
        params["images"] = str(args.images)
    params["preload"] = bool(init)
    log(f"building the {what} for {part.name} ({part.device}); this takes minutes")
    report = run_build(engine, part, args.out, speed=args.speed, freq=args.freq, seed=args.seed,
                       description=params, cycles=cycles, force=args.force, log=log)
    use = report["utilization"]
    print(f"{part.name}: " + ", ".join(f"{name} {row['used']:,} ({row['percent']}%)" for name, row in use.items()))
    for clock, mhz in report["fmax_mhz"].items():
        print(f"Fmax {clock}: {mhz} MHz (target {report['target_mhz'][clock]:g} MHz, "
              f"{'met' if report['met'][clock] else 'NOT met'})")
    t = report.get("throughput")
    if t:
        print(f"{t[t['unit'] + 's_per_s']:,.0f} {t['unit']}s/s ({t['cycles']:,} cycles per {t['unit']}, {t['what']})")
    print(f"report in {args.out}/build.md and build.json")
    return 0


def _build_board(args) -> int:
    """``eiex build --board``: the engine sized for ``--images``, behind the host link, on the board."""
    from eiex.hw.link.engines import link_for
    from eiex.sim.tools.boards import board_clock_hz, get_board
    from eiex.sim.tools.build import run_board_build
    from eiex.sw.atomic import check_output_dir

    board = get_board(args.board)
    clock_hz = board_clock_hz(board)
    if args.speed is not None or args.freq is not None:
        raise EiexError(f"--speed and --freq go with --part; the {board.title} runs at {clock_hz / 1e6:g} MHz"
                        f"{f' on a speed {board.speed} chip' if board.speed else ''}")
    if args.images is None:
        raise EiexError("--board needs --images: the link is built around the engine an image sizes")
    baud = args.baud or board.baud
    check_output_dir(args.out, args.force)
    if any(getattr(args, name, None) for name in ("layers", "pe", "simd", "target_interval", "thr_bits")):
        raise EiexError("--layers, --pe, --simd, --target-interval and --thr-bits go with --part; "
                        "with --board the image fixes the engine")
    options, spec = ENGINE_OPTIONS[args.engine], get_engine(args.engine)
    image = spec.load_image(args.images)
    sizing = {"queue_depth": args.queue_depth, "mac": args.mac} if hasattr(args, "queue_depth") else {}  # EIE's only
    hw = spec.hardware(image, **sizing)
    inputs = read_inputs(args.input) if getattr(args, "input", None) is not None else None
    cycles = spec.throughput(image, hw, inputs)
    what, params = options.describe(hw, args.preload), options.params(hw)
    link = link_for(spec.name, image, clock_hz=clock_hz, baud=baud, preload=args.preload,
                    max_payload=board.max_payload, **sizing)
    params.update(images=str(args.images), preload=bool(args.preload))
    log(f"building the {what} behind the host link for the {board.title} ({board.chip}); this takes minutes")
    report = run_board_build(link, board, args.out, seed=args.seed, description=params, cycles=cycles,
                             force=args.force, log=log)
    use = report["utilization"]
    print(f"{board.name} ({board.chip}): "
          + ", ".join(f"{name} {row['used']:,} ({row['percent']}%)" for name, row in use.items()))
    for clock, mhz in report["fmax_mhz"].items():
        print(f"Fmax {clock}: {mhz} MHz (board clock {report['target_mhz'][clock]:g} MHz, "
              f"{'met' if report['met'][clock] else 'NOT met: the bitstream may misbehave'})")
    t = report.get("throughput")
    if t:
        print(f"{t[t['unit'] + 's_per_s']:,.0f} {t['unit']}s/s at {t['at_mhz']:g} MHz ({t['cycles']:,} cycles per "
              f"{t['unit']}, {t['what']}; the UART limits the rate over the link)")
    bitstream = report["bitstream"]
    print(f"bitstream {args.out}/{bitstream['file']} ({bitstream['bytes']:,} bytes); to load it: {report['flash']}")
    print(f"report in {args.out}/build.md and build.json")
    return 0
