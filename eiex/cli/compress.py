"""``eiex compress``: Deep Compression of a built-in or user's model on a dataset."""

from __future__ import annotations

from pathlib import Path

from eiex.cli.common import add_dataset, add_output, add_seed, log, model_choice
from eiex.sw.models import MODELS


def add_parser(sub) -> None:
    p = sub.add_parser("compress", help="Deep Compression: prune, share weights, Huffman-code")
    p.add_argument("--model", required=True, type=model_choice(sorted(MODELS)),
                   metavar="|".join(sorted(MODELS)) + "|FILE.py:FUNCTION",
                   help="a built-in model, or a Python file's function that returns a torch.nn.Module")
    add_dataset(p)
    p.add_argument("--recipe", type=Path, help="TOML file overriding the built-in (or default) recipe")
    p.add_argument("--weights", type=Path,
                   help="trained dense weights: a state_dict (.pt) or an npz of w0, b0, ...; skips dense training")
    add_seed(p)
    add_output(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from eiex.sw.compress.pipeline import run_compress

    result = run_compress(
        args.out, force=args.force, model_name=args.model, dataset_name=args.dataset,
        data_dir=args.data_dir, recipe_path=args.recipe, seed=args.seed, dense_weights=args.weights,
        log=log,
    )
    r = result.report
    print(f"{args.model}: dense {r['dense_accuracy']:.2%}, compressed {r['compressed_accuracy']:.2%}, "
          f"{r['compression_ratio']:.1f}x ({r['dense_bytes']:,} -> {r['compressed_bytes']:,} bytes); "
          f"wrote {args.out}")
    return 0
