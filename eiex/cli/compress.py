"""``eiex compress``: Deep Compression of a built-in or user's model on a dataset."""

from __future__ import annotations

from pathlib import Path

from eiex.cli.common import add_dataset, add_output, add_seed, log, model_choice
from eiex.sw.compress.recipe import QUANTIZERS
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
    methods = p.add_argument_group("other compression methods (each also a recipe key; see README)")
    methods.add_argument("--quantize", choices=QUANTIZERS,
                         help="how surviving weights become codes: kmeans (Deep Compression, the default), linear "
                              "(uniform levels per layer), ternary (TWN), pow2 (INQ's powers of two)")
    methods.add_argument("--linear-scale", choices=("real", "pow2"),
                         help="linear's per-layer scale: max|w| / levels (real, the default) or that rounded up to a "
                              "power of two, so the index is the weight (pow2: for export/build with --mac index)")
    methods.add_argument("--l1", type=float, metavar="STRENGTH",
                         help="L1 penalty on every weight in dense training and pruning's retraining ([sparsity] l1)")
    methods.add_argument("--remove-neurons", action="store_true", default=None,
                         help="after pruning, remove hidden neurons left without inputs or outputs "
                              "([sparsity] remove_neurons; fully connected models)")
    methods.add_argument("--low-rank", type=float, metavar="ERROR",
                         help="factorize every fully connected layer by truncated SVD at this relative error "
                              "budget ([lowrank] error)")
    methods.add_argument("--teacher", metavar="dense|FILE.py:FUNCTION|DIR",
                         help="knowledge distillation from this run's dense model, a trained model, or a compress or "
                              "binarize output folder ([distill] teacher)")
    methods.add_argument("--temperature", type=float, help="distillation temperature (default 4)")
    methods.add_argument("--alpha", type=float, help="weight of the teacher's term in the loss (default 0.9)")
    add_seed(p)
    add_output(p)
    p.set_defaults(func=run)


def method_overrides(args) -> dict:
    """The recipe tables the method flags set (flags left out keep the recipe's values)."""
    tables = {}

    def put(table, key, value):
        if value is not None:
            tables.setdefault(table, {})[key] = value

    put("quantize", "method", args.quantize)
    put("quantize", "scale", args.linear_scale)
    put("sparsity", "l1", args.l1)
    put("sparsity", "remove_neurons", args.remove_neurons)
    put("lowrank", "error", args.low_rank)
    put("distill", "teacher", args.teacher)
    put("distill", "temperature", args.temperature)
    put("distill", "alpha", args.alpha)
    return tables


def run(args) -> int:
    from eiex.sw.compress.pipeline import run_compress

    result = run_compress(
        args.out, force=args.force, model_name=args.model, dataset_name=args.dataset,
        data_dir=args.data_dir, recipe_path=args.recipe, recipe_overrides=method_overrides(args), seed=args.seed,
        dense_weights=args.weights,
        log=log,
    )
    r = result.report
    print(f"{args.model}: dense {r['dense_accuracy']:.2%}, compressed {r['compressed_accuracy']:.2%}, "
          f"{r['compression_ratio']:.1f}x ({r['dense_bytes']:,} -> {r['compressed_bytes']:,} bytes); "
          f"wrote {args.out}")
    return 0
