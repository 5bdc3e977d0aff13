"""``eiex demo``: the main job end to end on the bundled MNIST-5k (:mod:`eiex.flows.demo`)."""

from __future__ import annotations

from pathlib import Path

from eiex.cli.common import add_seed, log


def add_parser(sub) -> None:
    from eiex.flows.demo import QUICK_DIGITS

    p = sub.add_parser("demo", help="the main job end to end on the bundled MNIST subset")
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--quick", action="store_true",
                   help=f"LeNet-300-100 only (no LeNet-5), and the first {QUICK_DIGITS} held-out digits on the RTL")
    p.add_argument("--sim", choices=["verilator", "icarus"], default="verilator",
                   help="simulator for the held-out digits (default verilator)")
    add_seed(p)
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from eiex.flows.demo import run_demo, summary_table

    summary = run_demo(args.out, quick=args.quick, seed=args.seed, force=args.force, simulator=args.sim, log=log)
    print("\n" + summary_table(summary, args.out))
    return 0
