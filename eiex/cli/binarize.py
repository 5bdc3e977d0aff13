"""``eiex binarize``: train a binarized MLP and fold it into integer thresholds."""

from __future__ import annotations

from pathlib import Path

from eiex.cli.common import add_output, add_seed, int_list, log
from eiex.sw.binarize.layers import DEFAULT_HIDDEN, DEFAULT_MODE, FOLDABLE_MODES
from eiex.sw.binarize.layers import MODELS as BINARY_MODELS
from eiex.sw.binarize.pipeline import DEFAULT_THREADS
from eiex.sw.data import DATASETS


def add_parser(sub) -> None:
    p = sub.add_parser("binarize", help="train a binarized network and fold it to integer thresholds")
    p.add_argument("--model", required=True, choices=BINARY_MODELS)
    p.add_argument("--dataset", default="mnist5k", choices=DATASETS)
    p.add_argument("--data-dir", type=Path, help="folder of the MNIST IDX files (--dataset mnist)")
    p.add_argument("--mode", default=DEFAULT_MODE, choices=FOLDABLE_MODES,
                   help=f"bnn (sign weights) or xnor (plus XNOR-Net scaling alpha); default {DEFAULT_MODE}")
    p.add_argument("--hidden", type=int_list, default=list(DEFAULT_HIDDEN),
                   help=f"hidden layer widths (default {','.join(map(str, DEFAULT_HIDDEN))})")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help=f"torch threads; pinned because results depend on it (default {DEFAULT_THREADS})")
    add_seed(p)
    add_output(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from eiex.sw.binarize.pipeline import run_binarize

    result = run_binarize(
        args.out, force=args.force, model_name=args.model, dataset_name=args.dataset, data_dir=args.data_dir,
        seed=args.seed, mode=args.mode, hidden=tuple(args.hidden), threads=args.threads, log=log,
    )
    r = result.report
    print(f"{args.model} {'-'.join(map(str, r['layers']))} ({r['mode']}): float {r['float_accuracy']:.2%}, "
          f"binary {r['binary_accuracy']:.2%} from the folded integer network "
          f"({r['accuracy_loss_pp']:.1f} pp below float), {r['seconds']['total']:.0f} s; wrote {args.out}")
    return 0
