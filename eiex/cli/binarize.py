"""``eiex binarize``: train a binarized network (a built-in MLP or CNN, or a user's) and fold it into
integer thresholds."""

from __future__ import annotations

import argparse

from eiex.cli.common import add_dataset, add_output, add_seed, int_list, log, model_choice
from eiex.sw.binarize.layers import DEFAULT_MODE, FOLDABLE_MODES, MODEL_CHANNELS, MODEL_HIDDEN
from eiex.sw.binarize.layers import MODELS as BINARY_MODELS
from eiex.sw.binarize.pipeline import DEFAULT_THREADS


def add_parser(sub) -> None:
    p = sub.add_parser("binarize", help="train a binarized network and fold it to integer thresholds")
    p.add_argument("--model", required=True, type=model_choice(sorted(BINARY_MODELS)), metavar="|".join(BINARY_MODELS) + "|FILE.py:FUNCTION",
                   help="a built-in binarized MLP (bnn-lfc: FINN's LFC size, 784-1024-1024-1024-10), the "
                        "binarized CNN bnn-cnv (FINN's CNV pattern: 3x3 convs 32,32, 2x2 max-pool, 64,64, max-pool, "
                        "FC 256, 10), or a Python file's function that returns a model built from eiex's binarized "
                        "layers")
    add_dataset(p)
    p.add_argument("--mode", default=DEFAULT_MODE, choices=FOLDABLE_MODES,
                   help=f"built-in models: bnn (sign weights) or xnor (plus XNOR-Net scaling alpha); default "
                        f"{DEFAULT_MODE}")
    p.add_argument("--hidden", type=int_list,
                   help="built-in models: fully connected hidden layer widths (default: the model's, " +
                        "; ".join(f"{m} {','.join(map(str, h))}" for m, h in MODEL_HIDDEN.items()) + ")")
    p.add_argument("--channels", type=int_list,
                   help="bnn-cnv: conv widths, a 2x2 max-pool after every second conv (default " +
                        "; ".join(f"{m} {','.join(map(str, c))}" for m, c in MODEL_CHANNELS.items()) + ")")
    p.add_argument("--dropout", type=rate_pair, metavar="P_IN,P_HIDDEN",
                   help="built-in models: dropout of the input bits and of each hidden layer's bits while "
                        "training (default: the model's tuning for the dataset, else none; bnn-lfc on mnist 0.2,0.2)")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help=f"torch threads; pinned because results depend on it (default {DEFAULT_THREADS})")
    p.add_argument("--teacher", metavar="float|FILE.py:FUNCTION|DIR",
                   help="knowledge distillation: train the binarized network as the student of its float twin "
                        "(float), a trained model, or a compress or binarize output folder")
    p.add_argument("--temperature", type=float, default=4.0, help="distillation temperature (default 4)")
    p.add_argument("--alpha", type=float, default=0.9,
                   help="weight of the teacher's term in the distillation loss (default 0.9)")
    add_seed(p)
    add_output(p)
    p.set_defaults(func=run)


def rate_pair(text: str) -> tuple[float, float]:
    """``0.2,0.5``: two dropout rates in [0, 1), checked by the layers' own rule."""
    from eiex.errors import EiexError
    from eiex.sw.binarize.layers import check_dropout

    try:
        return check_dropout(text.split(","))
    except EiexError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def run(args) -> int:
    from eiex.sw.binarize.pipeline import run_binarize
    from eiex.sw.teacher import Distill

    result = run_binarize(
        args.out, force=args.force, model_name=args.model, dataset_name=args.dataset, data_dir=args.data_dir,
        seed=args.seed, mode=args.mode, hidden=None if args.hidden is None else tuple(args.hidden),
        channels=None if args.channels is None else tuple(args.channels), dropout=args.dropout, threads=args.threads,
        distill=None if args.teacher is None else Distill(args.teacher, args.temperature, args.alpha), log=log,
    )
    r = result.report
    print(f"{args.model} {'-'.join(map(str, r['layers']))} ({r['mode']}): float {r['float_accuracy']:.2%}, "
          f"binary {r['binary_accuracy']:.2%} from the folded integer network "
          f"({r['accuracy_loss_pp']:.1f} pp below float), {r['seconds']['total']:.0f} s; wrote {args.out}")
    return 0
