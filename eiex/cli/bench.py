"""``eiex bench``: the measurements (``docs/benchmarks.md``), all of them or one by name."""

from __future__ import annotations

from pathlib import Path

from eiex.cli.common import Parser, add_output, int_list, log
from eiex.errors import EiexError
from eiex.sim.benchmarks.methods import ROWS as METHOD_ROWS


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measurements: eiex bench [--quick] [--json FILE], or one bench by name")
    p.add_argument("--quick", action="store_true", help="the short run (within 5 minutes): no full sweeps")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--model", type=Path, help="an eiex compress --model lenet300 output folder (default: compress one)")
    add_output(p, required=False, default=Path("out/bench"))
    p.set_defaults(func=run)
    benches = p.add_subparsers(dest="bench", required=False, parser_class=Parser)
    p = benches.add_parser("eie-balance", help="EIE load efficiency vs queue depth and PE count (paper Fig. 11, 13)")
    p.add_argument("--model", type=Path, required=True, help="an eiex compress output folder (an MLP)")
    p.add_argument("--samples", type=int, default=20, help="held-out digits to average over (default 20)")
    p.add_argument("--rtl-samples", type=int, default=2,
                   help="digits also run on the RTL to check the cycle model, per row order (default 2)")
    add_output(p)
    p.set_defaults(func=run_eie_balance)
    p = benches.add_parser("mnist", help="Deep Compression's MNIST table on the real MNIST test set (minutes per model)")
    p.add_argument("--models", type=lambda text: tuple(text.split(",")),
                   default=("lenet300", "lenet5", "bnn-lfc", "bnn-cnv"),
                   help="comma-separated, from lenet300, lenet5 (compressed), bnn-lfc and bnn-cnv (binarized, then "
                        "run on Verilator: bnn-lfc over the whole test set, bnn-cnv over 1,000 digits); default all four")
    add_output(p, default=Path("out/bench-mnist"), required=False)
    p.set_defaults(func=run_mnist)
    p = benches.add_parser("methods", help="LeNet-300-100 compressed by each method (Deep Compression, distillation, "
                           "L1 and neuron removal, TWN, INQ, linear, low-rank): size, error, EIE cycles, and the "
                           "resources of the shift and index MACs (about an hour on full MNIST)")
    p.add_argument("--quick", action="store_true", help="MNIST-5k and a few epochs per stage (a minute or two)")
    p.add_argument("--model", choices=("lenet300", "lenet5"), default="lenet300",
                   help="the network compressed (default lenet300; lenet5 runs the rows that apply to convolutions, "
                        "without EIE figures)")
    p.add_argument("--rows", type=lambda text: tuple(text.split(",")),
                   help="comma-separated subset of the rows (default all): " + ", ".join(row[0] for row in METHOD_ROWS))
    p.add_argument("--part", default="ecp5-85k",
                   help="part the engines of the INQ and linear-index rows are built for, each with the multiplier "
                        "and with its own MAC (shift, index) (default ecp5-85k; 'none' skips the builds)")
    p.add_argument("--pes", type=int, default=8, help="EIE processing elements (default 8)")
    p.add_argument("--build-pes", type=int, default=2,
                   help="PEs of those builds (default 2: at 8 the shift MAC routes for an hour)")
    p.add_argument("--digits", type=int, default=1000, help="test digits the cycle model averages over (default 1000)")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows an earlier run into the same --out finished (and its compress outputs)")
    add_output(p, default=Path("out/bench-methods"), required=False)
    p.set_defaults(func=run_methods)
    p = benches.add_parser("distill", help="bnn-mlp on MNIST-5k with and without knowledge distillation, on the digits "
                           "as they are and randomly shifted: the gap to the float twin (about 20 minutes)")
    p.add_argument("--teachers", type=lambda text: tuple(text.split(",")), default=("float",),
                   help="comma-separated teachers: float (the float twin), FILE.py:FUNCTION or output folders "
                        "(default float)")
    p.add_argument("--temperature", type=float, default=4.0, help="distillation temperature (default 4)")
    p.add_argument("--alpha", type=float, default=0.9, help="weight of the teacher's term (default 0.9)")
    add_output(p, default=Path("out/bench-distill"), required=False)
    p.set_defaults(func=run_distill)
    p = benches.add_parser("explore", help="an eiex explore sweep at several Dask worker counts (fresh caches), "
                           "then from the cache: wall times, speed-up, per-point cost, larger sweeps estimated")
    add_explore_options(p)
    p.add_argument("--workers", type=int_list, default=[1, 2], help="worker counts to run (default 1,2)")
    add_output(p, default=Path("out/bench-explore"), required=False)
    p.set_defaults(func=run_explore)


def run_distill(args) -> int:
    """``eiex bench distill``: how much of the binarized MLP's gap distillation closes."""
    from eiex.sim.benchmarks.distill import run_distillation

    run_distillation(args.out, teachers=args.teachers, temperature=args.temperature, alpha=args.alpha, log=log)
    print((args.out / "distill.md").read_text(), end="")
    return 0


def run_methods(args) -> int:
    """``eiex bench methods``: the comparison table of the compression methods."""
    from eiex.sim.benchmarks.methods import run_methods as bench

    if args.pes < 1 or args.digits < 1 or args.build_pes < 1:
        raise EiexError("--pes, --build-pes and --digits must be positive")
    summary = bench(args.out, quick=args.quick, part=None if args.part == "none" else args.part, n_pe=args.pes,
                    digits=args.digits, rows=args.rows, resume=args.resume, build_pes=args.build_pes, model=args.model,
                    log=log)
    print((args.out / "methods.md").read_text(), end="")
    print(f"{len(summary['rows'])} rows in {summary['seconds'] / 60:.1f} min; methods.json and methods.md in {args.out}/")
    return 0


def run(args) -> int:
    """The whole bench: fc6-scale compression, EIE sweeps, XNOR intervals, simulator speeds, resources."""
    import json

    from eiex.flows.bench import run_full_bench
    from eiex.sim.benchmarks.suite import HEADLINE_KEYS
    from eiex.sw.atomic import atomic_write

    result = run_full_bench(args.out, quick=args.quick, model=args.model, force=args.force, log=log)
    if args.json is not None:
        atomic_write(args.json, (json.dumps(result, indent=2) + "\n").encode())
    width = max(len(k) for k in HEADLINE_KEYS)
    for key in HEADLINE_KEYS:
        value = result[key]
        if value is None:
            value = "not measured (the full bench only: place and route, full MNIST)"
        print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    print(f"plots and bench.json in {args.out}/")
    return 0


def run_eie_balance(args) -> int:
    from eiex.sim.benchmarks.eie_balance import balance_curves, write_curves
    from eiex.sw.atomic import atomic_output_dir, check_output_dir

    check_output_dir(args.out, args.force)
    if not 1 <= args.samples <= 1000:
        raise EiexError(f"--samples must be between 1 and the 1,000 held-out digits, not {args.samples}")
    if not 0 <= args.rtl_samples <= args.samples:
        raise EiexError(f"--rtl-samples must be between 0 and --samples ({args.samples}), not {args.rtl_samples}")
    result = balance_curves(args.model, samples=args.samples, rtl_samples=args.rtl_samples)
    with atomic_output_dir(args.out, args.force) as folder:
        write_curves(result, folder)
    for row in result["rows"]:
        print(f"{row['sweep']:<12} pes {row['pes']:>3}  depth {row['queue_depth']:>3}  "
              f"{'permuted' if row['balance'] else 'interleaved':<11}  efficiency {row['efficiency']:.1%}  "
              f"compute/ideal {row['compute_over_ideal']:.3f} "
              f"({row['beyond_latency_over_ideal']:.3f} beyond the {row['latency']}-cycle latency)  "
              f"cycles {row['compute_cycles']:.0f}")
    if result["rtl_checks"]:
        print(f"RTL spot check: {len(result['rtl_checks'])} runs on the Amaranth simulator, compute_cycles "
              "equal to the cycle model's")
    print(f"curves in {args.out}/balance.png, data in balance.csv and balance.json")
    return 0


def run_mnist(args) -> int:
    from eiex.sim.benchmarks import mnist
    from eiex.sw.atomic import atomic_output_dir, check_output_dir

    unknown = [m for m in args.models if m not in mnist.MODELS]
    if unknown:
        raise EiexError(f"unknown model {unknown[0]!r} for bench mnist; choose from {', '.join(mnist.MODELS)}")
    check_output_dir(args.out, args.force)
    with atomic_output_dir(args.out, args.force) as folder:
        result = mnist.run_mnist(folder, args.models, log=log)
    print(mnist.markdown(result["mnist_rows"]), end="")
    for key in mnist.mnist_keys(args.models):
        print(f"{key}  {result[key]:.4g}")
    print(f"mnist.json, mnist.md and each model's output folder in {args.out}/")
    return 0


def add_explore_options(p) -> None:
    from eiex.cli.explore import KNOB_OPTIONS
    from eiex.sim.engines import ENGINES
    from eiex.sim.tools.parts import PARTS

    p.add_argument("engine", choices=sorted(ENGINES), help="the engine the image is for")
    p.add_argument("--images", type=Path, required=True, help="the image whose network every point runs")
    p.add_argument("--part", required=True, choices=sorted(PARTS), help="the FPGA part")
    for knob, option in KNOB_OPTIONS.items():
        p.add_argument(option.flag, dest=knob, type=int_list, help=f"comma list: {option.help}")


def run_explore(args) -> int:
    from eiex.cli.explore import KNOB_OPTIONS
    from eiex.sim.benchmarks.explore_scaling import markdown, scaling
    from eiex.sim.engines import get_engine
    from eiex.sim.tools.parts import get_part
    from eiex.sw.atomic import atomic_output_dir, check_output_dir

    spec = get_engine(args.engine)
    part = get_part(args.part)
    check_output_dir(args.out, args.force)
    stray = [KNOB_OPTIONS[k].flag for k in KNOB_OPTIONS if k not in spec.knobs and getattr(args, k) is not None]
    if stray:
        raise EiexError(f"{', '.join(stray)} do not size the {spec.title}")
    image = spec.load_image(args.images)
    axes = {knob: getattr(args, knob) or KNOB_OPTIONS[knob].default(image) for knob in spec.knobs}
    with atomic_output_dir(args.out, args.force) as folder:
        result = scaling(spec.name, image, part, axes, folder, workers=tuple(args.workers),
                         images=str(args.images), log=log)
    print(markdown(result), end="")
    print(f"scaling.json, scaling.md and each run's exploration folder in {args.out}/")
    return 0
