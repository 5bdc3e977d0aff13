"""``eiex explore eie|xnor``: sweep an image's design points through synthesis, place and route on
Dask, and report the Pareto front of inferences/s against LUTs (sim/explore/)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from eiex.cli.common import add_output, engine_subparsers, int_list, log, read_inputs
from eiex.errors import EiexError
from eiex.sim.engines import ENGINES, get_engine
from eiex.sw.images.eie.image import MAC_KINDS

#: lane counts whose intervals make the XNOR sweep's default targets
DEFAULT_TARGET_LANES = (16, 64, 256)


def _default_targets(image) -> list[int]:
    from eiex.sw.images.xnor.export import folding_shapes
    from eiex.sw.images.xnor.folding import default_target

    shapes = folding_shapes(image)
    return sorted({default_target(shapes, lanes) for lanes in DEFAULT_TARGET_LANES}, reverse=True)


def _default_queue_depths(image) -> list[int]:
    from eiex.hw.eie.params import DEFAULT_QUEUE_DEPTH

    return [DEFAULT_QUEUE_DEPTH]


def mac_list(text: str) -> list[str]:
    """A comma list of EIE MAC kinds: ``multiply,shift``."""
    values = text.split(",")
    wrong = [v for v in values if v not in MAC_KINDS]
    if wrong:
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(MAC_KINDS)}, not {text!r}")
    return list(dict.fromkeys(values))


@dataclass(frozen=True)
class KnobOption:
    """The command-line option that lists one knob's values."""

    flag: str
    help: str
    default: Callable  # image -> the values swept when the option is not given (None: the knob is not swept)
    parse: Callable = int_list


KNOB_OPTIONS = {
    "n_pe": KnobOption("--pes", "PE counts (default 2,4,8,16); the image is re-encoded for each",
                       lambda image: [2, 4, 8, 16]),
    "queue_depth": KnobOption("--queue-depth", "activation queue depths per PE (default 8)", _default_queue_depths),
    "mac": KnobOption("--mac", "MACs, of multiply, shift and index (default: multiply only, and left out of the "
                      "points' ids); a point whose image the MAC cannot run is reported as failed, with the reason",
                      lambda image: None, mac_list),
    "target_interval": KnobOption("--target-interval", "cycles per image to fold for with the fewest lanes (default: "
                                  "the intervals 16, 64 and 256 lanes give the largest layer)", _default_targets),
}


def add_parser(sub) -> None:
    from eiex.sim.explore.cache import CACHE_ENV
    from eiex.sim.tools.build import DEFAULT_FREQ
    from eiex.sim.tools.parts import PARTS

    engines = engine_subparsers(sub.add_parser(
        "explore", help="sweep design points through Yosys and nextpnr on Dask: the Pareto front of an image's "
                        "accelerators"))
    for name, spec in ENGINES.items():
        p = engines.add_parser(name, help=f"the {spec.title}")
        p.add_argument("--images", type=Path, required=True, help="the image whose network every point runs")
        p.add_argument("--part", required=True, choices=sorted(PARTS), help="the FPGA part")
        for knob in spec.knobs:
            option = KNOB_OPTIONS[knob]
            p.add_argument(option.flag, dest=knob, type=option.parse, help=f"comma list: {option.help}")
        p.add_argument("--seeds", type=int, default=1, help="nextpnr placer seeds per point, 1..N (default 1)")
        p.add_argument("--input", type=Path, help="X.npy of engine-format inputs for the cycle model (default: 100 "
                       "held-out MNIST-5k digits where the image takes 28x28 digits and the work depends on them)")
        p.add_argument("--speed", type=int, choices=(6, 7, 8), help="ECP5 speed grade (default 6, the slowest)")
        p.add_argument("--freq", type=float, default=DEFAULT_FREQ,
                       help=f"nextpnr target MHz (default {DEFAULT_FREQ:g})")
        where = p.add_mutually_exclusive_group()
        where.add_argument("--scheduler", help="address of an existing Dask scheduler (tcp://host:port); its "
                           "workers need eiex installed")
        where.add_argument("--workers", type=int, help="worker processes of the local Dask cluster (default: the "
                           "cores)")
        p.add_argument("--cache", type=Path, help=f"folder of built results (default ${CACHE_ENV} or "
                       "~/.cache/eiex/explore); a rerun builds only new points")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        add_output(p, "exploration folder")
        p.set_defaults(func=run)


def run(args) -> int:
    from eiex.sim.explore.cache import ResultCache
    from eiex.sim.explore.run import explore
    from eiex.sim.tools.parts import get_part
    from eiex.sw.atomic import check_output_dir

    spec = get_engine(args.engine)
    part = get_part(args.part, args.speed)
    check_output_dir(args.out, args.force)
    if not args.freq > 0:
        raise EiexError(f"--freq must be a positive number of MHz, not {args.freq}")
    image = spec.load_image(args.images)
    inputs = spec.check_inputs(image, read_inputs(args.input)) if args.input is not None else None
    axes = {knob: getattr(args, knob) or KNOB_OPTIONS[knob].default(image) for knob in spec.knobs}
    axes = {knob: values for knob, values in axes.items() if values is not None}
    content = explore(spec.name, image, part, axes, args.out, seeds=args.seeds, inputs=inputs, speed=args.speed,
                      freq=args.freq, scheduler=args.scheduler, workers=args.workers,
                      cache=ResultCache(args.cache), images=str(args.images), force=args.force,
                      progress=not args.no_progress, log=log)
    meta = content["meta"]
    print(f"{meta['points']} points in {meta['seconds']:.0f} s on {meta['workers']} workers: {meta['built']} built, "
          f"{meta['cached']} from the cache, {meta['unfit']} do not fit {part.name}, {meta['failed']} failed")
    for record in content["points"]:
        if record["status"] == "ok":
            print(f"{record['id']:<28} LUT4 {record['luts']:>7,}  BRAM {record['brams']:>4}  Fmax "
                  f"{record['fmax_mhz']:>6.1f} MHz  {record['inferences_per_s']:>12,.0f} inferences/s"
                  f"{'  pareto' if record['pareto'] else ''}")
        else:
            print(f"{record['id']:<28} {record['status']}: {record['error']}")
    print(f"report in {args.out}/explore.md, explore.csv, explore.json and pareto.png")
    return 0
