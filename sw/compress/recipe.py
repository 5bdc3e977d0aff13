"""Compression recipes: training schedules and per-layer quality, bits and index bits, from TOML.

Each built-in model has a recipe (``sw/compress/recipes/<model>.toml``) that reaches the Deep
Compression targets on MNIST-5k, and ``<model>@<dataset>.toml`` merged over it where a dataset
needs its own tuning (``lenet300@mnist.toml``); a user's model gets ``recipes/default.toml``, its
``[defaults.*]`` tables applied per layer. A ``--recipe FILE.toml`` overrides any part of either.
The optional tables ``[quantize]``, ``[distill]``, ``[sparsity]`` and ``[lowrank]`` choose the
other compression methods (absent: Deep Compression alone). Every key is checked: an unknown
section, key or layer, or a value out of range, is an error naming it.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from eiex.errors import EiexError
from eiex.sw.compress.huffman import MAX_CODE_LEN
from eiex.sw.compress.methods.linear import LINEAR_SCALES
from eiex.sw.models import CompressibleModel
from eiex.sw.teacher import Distill
from eiex.sw.train import LR_SCHEDULES, TrainConfig

MAX_WEIGHT_BITS = 12  # a codebook of 4096 values; more is no longer weight sharing
MAX_INDEX_BITS = 16

SHARING_METHODS = ("optimal", "lloyd")
#: how surviving weights become codes: Deep Compression's trained k-means sharing, uniform (linear)
#: levels, TWN's ternary {-a, 0, +a}, or INQ's powers of two {0, +-2**n}
QUANTIZERS = ("kmeans", "linear", "ternary", "pow2")
#: INQ's default schedule: the fractions of each layer's surviving weights quantized after each step
INQ_STEPS = (0.5, 0.75, 0.875, 1.0)


@dataclass(frozen=True)
class LayerRecipe:
    quality: float  # prune threshold = quality * std of the layer's dense weights
    bits: int  # weight code width: 2**bits - 1 shared values plus code 0 for pruned
    index_bits: int  # width of the relative row index
    filters: float = 0.0  # fraction of a conv layer's filters removed by L1 norm


@dataclass(frozen=True)
class Quantize:
    """How surviving weights become codes; ``train`` is the straight-through (linear, ternary) or
    incremental (pow2) retraining, ``steps`` INQ's quantized fractions, ``scale`` linear's per-layer
    scale (``real``, or ``pow2`` for the EIE engine's codebook-free ``--mac index``)."""

    method: str
    train: TrainConfig
    steps: tuple[float, ...] = INQ_STEPS
    scale: str = "real"


@dataclass(frozen=True)
class Sparsity:
    """``l1``: strength of the L1 penalty on every weight in dense training and pruning's retraining;
    ``remove_neurons``: after pruning, hidden neurons left without inputs or outputs are removed."""

    l1: float = 0.0
    remove_neurons: bool = False


@dataclass(frozen=True)
class Recipe:
    train: TrainConfig
    prune: TrainConfig
    prune_steps: int
    sensitivity: tuple[float, ...]
    share: TrainConfig
    share_method: str
    huffman_max_len: int
    layers: dict[str, LayerRecipe]
    quantize: Quantize | None = None  # None: k-means with the [share] training
    distill: Distill = Distill()
    sparsity: Sparsity = Sparsity()
    #: low-rank factorization: each fully connected layer's relative error budget (0: off)
    lowrank: float = 0.0

    @property
    def quantizer(self) -> str:
        return "kmeans" if self.quantize is None else self.quantize.method

    def to_json(self) -> dict:
        def cfg(c: TrainConfig) -> dict:
            return {"epochs": c.epochs, "lr": c.lr, "batch_size": c.batch_size, "weight_decay": c.weight_decay,
                    "schedule": c.schedule}

        quantize = {"method": self.quantizer}
        if self.quantize is not None:
            quantize.update(cfg(self.quantize.train), steps=list(self.quantize.steps), scale=self.quantize.scale)
        return {
            "train": cfg(self.train),
            "prune": {**cfg(self.prune), "steps": self.prune_steps, "sensitivity": list(self.sensitivity)},
            "share": {**cfg(self.share), "method": self.share_method},
            "huffman": {"max_len": self.huffman_max_len},
            "quantize": quantize,
            "distill": vars(self.distill),
            "sparsity": vars(self.sparsity),
            "lowrank": {"error": self.lowrank},
            "layers": {n: vars(l) for n, l in self.layers.items()},
        }


def builtin_recipe_text(model_name: str) -> str:
    return resources.files("eiex.sw.compress").joinpath("recipes", f"{model_name}.toml").read_text()


def has_builtin_recipe(model_name: str) -> bool:
    return resources.files("eiex.sw.compress").joinpath("recipes", f"{model_name}.toml").is_file() \
        and model_name != "default"


def builtin_table(model_name: str, dataset: str | None) -> dict:
    """``<model>.toml``, with ``<model>@<dataset>.toml`` over it where a dataset has its own tuning."""
    table = tomllib.loads(builtin_recipe_text(model_name))
    if dataset is not None and has_builtin_recipe(f"{model_name}@{dataset}"):
        table = merge_tables(table, tomllib.loads(builtin_recipe_text(f"{model_name}@{dataset}")))
    return table


def default_recipe_table(model: CompressibleModel) -> dict:
    """The recipe of a model without its own: ``[defaults.linear|conv2d|output]`` per layer."""
    table = tomllib.loads(builtin_recipe_text("default"))
    defaults = table.pop("defaults")
    names = list(model.layers())
    table["layers"] = {
        name: dict(defaults["output" if name == names[-1] else
                            "conv2d" if layer.weight.dim() == 4 else "linear"])
        for name, layer in model.layers().items()
    }
    return table


def merge_tables(base: dict, override: dict) -> dict:
    """``base`` with ``override``'s keys over it, sub-tables merged key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_tables(merged[key], value)
        else:
            merged[key] = value
    return merged


class _Reader:
    """Takes values out of one TOML table, checking each, and complains about leftovers."""

    def __init__(self, table: dict, where: str):
        if not isinstance(table, dict):
            raise EiexError(f"recipe: [{where}] must be a table")
        self.table, self.where, self.used = table, where, set()

    def _get(self, key):
        self.used.add(key)
        if key not in self.table:
            raise EiexError(f"recipe: [{self.where}] lacks {key!r}")
        return self.table[key]

    def optional(self, key) -> dict:
        """A sub-table that may be absent (then empty: its keys take their defaults)."""
        self.used.add(key)
        return self.table.get(key, {})

    def _typed(self, key, default, kind: type, what: str):
        self.used.add(key)
        value = self.table.get(key, default)
        if not isinstance(value, kind):
            raise EiexError(f"recipe: [{self.where}] {key} must be {what}, not {value!r}")
        return value

    def boolean(self, key, default: bool) -> bool:
        return self._typed(key, default, bool, "true or false")

    def text(self, key, default: str) -> str:
        return self._typed(key, default, str, "a string")

    def integer(self, key, lo, hi=None):
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
            bound = f"an integer from {lo} to {hi}" if hi is not None else f"an integer >= {lo}"
            raise EiexError(f"recipe: [{self.where}] {key} must be {bound}, not {value!r}")
        return value

    def number(self, key, lo, hi=None, *, lo_open=False, hi_open=False, default=None):
        if default is not None and key not in self.table:
            self.used.add(key)
            return default
        value = self._get(key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value > lo if lo_open else value >= lo)
        ok = ok and (hi is None or (value < hi if hi_open else value <= hi))
        if not ok:
            raise EiexError(f"recipe: [{self.where}] {key} = {value!r} is out of range")
        return float(value)

    def choice(self, key, options, default=None):
        if default is not None and key not in self.table:
            self.used.add(key)
            return default
        value = self._get(key)
        if value not in options:
            raise EiexError(f"recipe: [{self.where}] {key} must be one of {', '.join(options)}, not {value!r}")
        return value

    def train(self, defaults: TrainConfig | None = None) -> TrainConfig:
        """A training stage; with ``defaults``, every key may be left out."""
        def given(key, read):
            if defaults is not None and key not in self.table:
                self.used.add(key)
                return getattr(defaults, key)
            return read()

        return TrainConfig(
            epochs=given("epochs", lambda: self.integer("epochs", 0)),
            lr=given("lr", lambda: self.number("lr", 0, lo_open=True)),
            batch_size=given("batch_size", lambda: self.integer("batch_size", 1)),
            weight_decay=given("weight_decay", lambda: self.number("weight_decay", 0)),
            schedule=self.choice("schedule", LR_SCHEDULES, default=defaults.schedule if defaults else "constant"),
        )

    def done(self):
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise EiexError(f"recipe: [{self.where}] has unknown key(s) {', '.join(map(repr, unknown))}")


def parse_recipe(table: dict, model: CompressibleModel) -> Recipe:
    top = _Reader(table, "recipe")
    train = _Reader(top._get("train"), "train")
    prune = _Reader(top._get("prune"), "prune")
    share = _Reader(top._get("share"), "share")
    huffman = _Reader(top._get("huffman"), "huffman")
    quantize = _Reader(top.optional("quantize"), "quantize")
    distill = _Reader(top.optional("distill"), "distill")
    sparsity = _Reader(top.optional("sparsity"), "sparsity")
    lowrank = _Reader(top.optional("lowrank"), "lowrank")
    layer_tables = top._get("layers")
    top.done()
    if not isinstance(layer_tables, dict):
        raise EiexError("recipe: [layers] must be a table of layer tables")

    model_layers = model.layers()
    unknown = sorted(set(layer_tables) - set(model_layers))
    if unknown:
        raise EiexError(
            f"recipe names unknown layer(s) {', '.join(unknown)}; the model has {', '.join(model_layers)}"
        )
    layers = {}
    for name, module in model_layers.items():
        if name not in layer_tables:
            raise EiexError(f"recipe: no [layers.{name}] table")
        r = _Reader(layer_tables[name], f"layers.{name}")
        layer = LayerRecipe(
            quality=r.number("quality", 0),
            bits=r.integer("bits", 1, MAX_WEIGHT_BITS),
            index_bits=r.integer("index_bits", 1, MAX_INDEX_BITS),
            filters=r.number("filters", 0, 1, hi_open=True, default=0.0),
        )
        r.done()
        if layer.filters and module.weight.dim() != 4:
            raise EiexError(f"recipe: [layers.{name}] filters applies to convolutions only")
        layers[name] = layer

    recipe = Recipe(
        train=train.train(),
        prune=prune.train(),
        prune_steps=prune.integer("steps", 1),
        sensitivity=tuple(_fractions(prune._get("sensitivity"))),
        share=share.train(),
        share_method=share.choice("method", SHARING_METHODS),
        huffman_max_len=huffman.integer("max_len", 1, MAX_CODE_LEN),
        layers=layers,
    )
    method = quantize.choice("method", QUANTIZERS, default="kmeans")
    scale = quantize.choice("scale", LINEAR_SCALES, default="real")
    if "scale" in quantize.table and method != "linear":
        raise EiexError(f"recipe: [quantize] scale applies to method = \"linear\", not {method!r}")
    recipe = replace(
        recipe,
        quantize=None if method == "kmeans" and not quantize.table else Quantize(
            method, quantize.train(defaults=recipe.prune), _inq_steps(quantize), scale),
        distill=Distill(distill.text("teacher", ""), distill.number("temperature", 0, lo_open=True, default=4.0),
                        distill.number("alpha", 0, 1, default=0.9)),
        sparsity=Sparsity(sparsity.number("l1", 0, default=0.0), sparsity.boolean("remove_neurons", False)),
        lowrank=lowrank.number("error", 0, 1, hi_open=True, default=0.0),
    )
    for reader in (train, prune, share, huffman, quantize, distill, sparsity, lowrank):
        reader.done()
    widest = max(max(l.bits, l.index_bits) for l in layers.values())
    if recipe.huffman_max_len < widest:
        raise EiexError(
            f"recipe: [huffman] max_len = {recipe.huffman_max_len} cannot code {2**widest} symbols; "
            f"it must be at least {widest}"
        )
    return recipe


def _inq_steps(reader: _Reader) -> tuple[float, ...]:
    """INQ's schedule: increasing fractions in (0, 1], the last 1 (every weight quantized)."""
    if "steps" not in reader.table:
        reader.used.add("steps")
        return INQ_STEPS
    steps = reader._get("steps")
    ok = isinstance(steps, list) and steps and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1 for v in steps)
    if not ok or list(steps) != sorted(set(steps)) or steps[-1] != 1:
        raise EiexError(f"recipe: [quantize] steps must be increasing fractions in (0, 1] ending at 1, not {steps!r}")
    return tuple(float(v) for v in steps)


def _fractions(values) -> list[float]:
    if not isinstance(values, list) or not values or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1 for v in values
    ):
        raise EiexError(f"recipe: [prune] sensitivity must be a list of fractions in [0, 1), not {values!r}")
    return sorted(float(v) for v in values)


def load_recipe(model_name: str, model: CompressibleModel, path: str | Path | dict | None = None,
                dataset: str | None = None, overrides: dict | None = None) -> Recipe:
    """The built-in recipe of ``model_name`` on ``dataset`` (or the default recipe for a user's
    model), overridden by the TOML file at ``path`` (or a dict of the same tables) if given, then
    by ``overrides`` (the command line's flags, as tables)."""
    table = builtin_table(model_name, dataset) if has_builtin_recipe(model_name) else default_recipe_table(model)
    if isinstance(path, dict):
        table = merge_tables(table, path)
    elif path is not None:
        path = Path(path)
        try:
            override = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise EiexError(f"recipe file {path} not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise EiexError(f"cannot read recipe {path}: {e}") from None
        except tomllib.TOMLDecodeError as e:
            raise EiexError(f"recipe {path} is not valid TOML: {e}") from None
        table = merge_tables(table, override)
    if overrides:
        table = merge_tables(table, overrides)
    return parse_recipe(table, model)
