"""The ``eiex`` command line. Every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eiex.sw.data import DATASETS
from eiex.sw.errors import EiexError
from eiex.sw.models import MODELS


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"seed must be an integer from 0 to 2**32 - 1, not {text!r}")
    return value


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_compress(args) -> int:
    from eiex.sw.compress import run_compress

    result = run_compress(
        args.out, force=args.force, model_name=args.model, dataset_name=args.dataset,
        data_dir=args.data_dir, recipe_path=args.recipe, seed=args.seed, dense_weights=args.weights,
        log=_log,
    )
    r = result.report
    print(f"{args.model}: dense {r['dense_accuracy']:.2%}, compressed {r['compressed_accuracy']:.2%}, "
          f"{r['compression_ratio']:.1f}x ({r['dense_bytes']:,} -> {r['compressed_bytes']:,} bytes); "
          f"wrote {args.out}")
    return 0


def cmd_demo(args) -> int:
    from eiex.sw.atomic import atomic_output_dir, check_output_dir
    from eiex.sw.compress import compress, write_outputs

    check_output_dir(args.out, args.force)
    models = ["lenet300"] if args.quick else ["lenet300", "lenet5"]
    results = {}
    for name in models:
        _log(f"== compressing {name} on MNIST-5k")
        results[name] = compress(name, "mnist5k", seed=args.seed, log=_log)
    with atomic_output_dir(args.out, args.force) as folder:
        for name, result in results.items():
            (folder / name).mkdir()
            write_outputs(result, folder / name)
    print(f"\n{'model':<10} {'dense':>7} {'compressed':>11} {'ratio':>7} {'kept':>6} {'seconds':>8}")
    for name, result in results.items():
        r = result.report
        print(f"{name:<10} {r['dense_accuracy']:>7.2%} {r['compressed_accuracy']:>11.2%} "
              f"{r['compression_ratio']:>6.1f}x {r['kept_fraction']:>6.1%} {r['seconds']['total']:>8.0f}")
    print(f"\nreports, npz files and plots in {args.out}/<model>/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="eiex", description="Compressed neural networks on FPGAs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("compress", help="Deep Compression: prune, share weights, Huffman-code")
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--dataset", default="mnist5k", choices=DATASETS)
    p.add_argument("--data-dir", type=Path, help="folder of the MNIST IDX files (--dataset mnist)")
    p.add_argument("--recipe", type=Path, help="TOML file overriding the built-in recipe")
    p.add_argument("--weights", type=Path, help="npz of trained dense weights (w0, b0, ...): skip dense training")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", type=Path, required=True, help="output folder (written atomically)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("demo", help="the main job end to end on the bundled MNIST subset")
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--quick", action="store_true", help="LeNet-300-100 only")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EiexError as e:
        print(f"eiex: error: {e}", file=sys.stderr)
    except OSError as e:
        print(f"eiex: error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
    except KeyboardInterrupt:
        print("eiex: interrupted; no output was written", file=sys.stderr)
        return 130
    return 1
