"""Compression methods side by side on LeNet-300-100: size, error, and what the EIE engine makes of them.

Each row compresses LeNet-300-100 one way on full MNIST (60,000 training digits, the official
10,000 test digits held out) and exports the result to an EIE image at 8 PEs. The rows share
work: the baseline trains the one dense model and prunes it, and the other rows start from its
dense weights or from its pruned weights (whose zeros they keep), so each row differs from the
baseline in its method alone:

- ``deep-compression``: pruning, trained k-means sharing, Huffman coding (the built-in recipe), the
  baseline;
- ``distill``: from the dense weights, pruning's retraining as the student of the dense model
  (Hinton et al.);
- ``l1-neurons``: from the dense weights, pruning with an L1 penalty in its retraining, then hidden
  neurons left without inputs or outputs removed;
- ``ternary``: from the pruned weights, TWN's ``{-a, 0, +a}`` per layer (2-bit codes);
- ``pow2``: from the pruned weights, INQ's powers of two; one of the two rows whose hardware
  changes: the engine (re-encoded for :data:`BUILD_PES` PEs) is built with the multiplier
  (``--mac multiply``) and with the shifter (``--mac shift``);
- ``linear``: from the pruned weights, uniform levels at the baseline's bits per layer (k-means vs
  linear at equal bits); ``linear8``: the same at 8 bits (INT8); ``linear-index``: the same levels
  with a power-of-two scale, exported with identity codebooks for the codebook-free engine
  (``--mac index``), which is built with the multiplier and codebook memory (``--mac multiply``) and
  without (``--mac index``);
- ``lowrank``: from the dense weights, truncated SVD of every layer at a relative error budget,
  fine-tuned, then k-means sharing, no pruning.

``--model lenet5`` runs the rows that apply to a network with convolutions (all but ``l1-neurons``
and ``lowrank``, which need fully connected layers); its results have no EIE image (the EIE
engine runs fully connected layers only), so their engine columns are empty.

Per row: compressed size and ratio (eiex's storage accounting, Huffman-coded), test error of the
PyTorch model and of the integer image (the golden model, which the RTL equals bit for bit), and
EIE cycles per inference from the cycle model over test digits. Each row's image is kept in
``out/<key>-image``. ``--quick`` runs every row on
MNIST-5k with a few epochs (what the tests run).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from eiex.sw.compress.recipe import merge_tables

#: where a row starts: its own dense training, the baseline's dense weights, or the baseline's
#: pruned (and retrained) weights, whose zeros are kept and not retrained further
OWN_DENSE, BASELINE_DENSE, BASELINE_PRUNED = "own dense", "baseline dense", "baseline pruned"
#: the recipe tables that start from already pruned weights: their zeros stay, nothing else goes
KEEP_PRUNED = {"prune": {"steps": 1, "epochs": 0}}
#: the quantizers' retraining from pruned weights (``[quantize]`` otherwise takes ``[prune]``'s
#: epochs, which :data:`KEEP_PRUNED` sets to 0): the built-in recipe's epochs per pruning step
QUANTIZE_EPOCHS = 4
#: (key, what the row is, recipe tables over the model's recipe, where it starts)
ROWS = (
    ("deep-compression", "Deep Compression: pruning + k-means + Huffman (baseline)", {}, OWN_DENSE),
    ("distill", "+ distillation from the dense model in pruning's retraining (T 4, alpha 0.9)",
     {"distill": {"teacher": "dense"}}, BASELINE_DENSE),
    ("l1-neurons", "pruning with an L1 penalty (1e-5) in its retraining + neuron removal + k-means",
     {"sparsity": {"l1": 1e-5, "remove_neurons": True}}, BASELINE_DENSE),
    ("ternary", "pruning + ternary (TWN), 2-bit codes", {"quantize": {"method": "ternary"}}, BASELINE_PRUNED),
    ("pow2", "pruning + powers of two (INQ)", {"quantize": {"method": "pow2"}}, BASELINE_PRUNED),
    ("linear", "pruning + linear levels at the baseline's bits", {"quantize": {"method": "linear"}}, BASELINE_PRUNED),
    ("linear8", "pruning + linear 8-bit (INT8)", {"quantize": {"method": "linear"}}, BASELINE_PRUNED),
    ("linear-index", "pruning + linear levels at the baseline's bits, power-of-two scale (codebook-free decode)",
     {"quantize": {"method": "linear", "scale": "pow2"}}, BASELINE_PRUNED),
    ("lowrank", "low-rank SVD (error budget 0.3), 4 epochs of fine-tuning + k-means, no pruning",
     {"lowrank": {"error": 0.3}, "prune": {"steps": 1, "epochs": 4}}, BASELINE_DENSE),
)
#: the recipe tables that shorten every stage for ``--quick``
QUICK_RECIPE = {"train": {"epochs": 3}, "prune": {"epochs": 1, "steps": 2, "sensitivity": [0.0, 0.5]},
                "share": {"epochs": 1}, "quantize": {"epochs": 1}}
PES = 8
#: the models the bench compresses, and the rows that need a fully connected network
MODELS = ("lenet300", "lenet5")
MLP_ROWS = ("l1-neurons", "lowrank")
#: PEs of the builds of the rows whose hardware changes (one per MAC): at 8 PEs the shift MAC's place
#: and route took over an hour on this machine, at 2 PEs about a minute
BUILD_PES = 2
#: the rows whose hardware changes: the MAC their image is exported for, then the MACs built
ROW_MACS = {"pow2": ("shift", ("multiply", "shift")), "linear-index": ("index", ("multiply", "index"))}


def row_recipe(key: str, tables: dict, start: str, model_layers, quick: bool) -> dict:
    recipe = merge_tables(QUICK_RECIPE, tables) if quick else dict(tables)
    layers = {name: {} for name in model_layers}
    if start == BASELINE_PRUNED:
        recipe = merge_tables(recipe, KEEP_PRUNED)
        recipe["quantize"] = {"epochs": QUANTIZE_EPOCHS, **recipe.get("quantize", {})}
        layers = {name: {"quality": 0.0} for name in model_layers}
    if key == "linear8":
        layers = {name: {**table, "bits": 8} for name, table in layers.items()}
    if any(layers.values()):
        recipe["layers"] = layers
    return recipe


def engine_figures(folder: Path, test_images: np.ndarray, test_labels: np.ndarray, digits: int, n_pe: int,
                   mac: str = "multiply") -> dict:
    """The row's EIE image for an engine whose MAC is ``mac``: its golden-model test error and mean
    cycles per inference."""
    from eiex.hw.eie.params import HwParams
    from eiex.sim.benchmarks.throughput import eie_cycles
    from eiex.sw.images.eie import arithmetic as golden
    from eiex.sw.images.eie.export import export_model_folder

    image = export_model_folder(folder, n_pe, mac=mac)
    inputs = golden.quantize_input(image, test_images.reshape(len(test_images), -1))
    outputs = golden.run(image, inputs)
    cycles = eie_cycles(image, HwParams.for_image(image, mac=mac), inputs[:digits])
    return {"image": image, "engine_error": float(np.mean(outputs.argmax(1) != test_labels)),
            "idx_bits": image.engine.idx_bits, "eie_layers": len(image.layers), "cycles": cycles["cycles"],
            "ideal_cycles": cycles["ideal_cycles"], "cycle_digits": min(digits, len(inputs))}


def build_figures(image, part: str, out: Path, mac: str, log) -> dict:
    """LUT4, DSP, block RAM and Fmax of the engine for ``image`` built with ``mac``."""
    from eiex.sim.engines import get_engine
    from eiex.sim.explore.evaluate import figures_of
    from eiex.sim.tools.build import run_build
    from eiex.sim.tools.parts import get_part

    spec = get_engine("eie")
    hw = spec.hardware(image, mac=mac)
    started = time.perf_counter()
    report = run_build(spec.component(hw), get_part(part), out, description={"engine": "eie", "hardware": repr(hw)},
                       cycles=spec.throughput(image, hw), force=True, log=log)
    return {**figures_of(report), "seconds": round(time.perf_counter() - started, 1)}


def row_of(key: str, what: str, start: str, report: dict, seconds: float) -> dict:
    """A row's figures from its compress report (the engine's are added by :func:`engine_figures`)."""
    return {"key": key, "method": what, "start": start, "compressed_bytes": report["compressed_bytes"],
            "ratio": report["compression_ratio"], "error": 1 - report["compressed_accuracy"],
            "kept_fraction": report["kept_fraction"], "methods": report["methods"], "seconds": round(seconds, 1),
            "bits": {l["name"]: l["bits"] for l in report["layers"]}}


def rows_for(model: str, rows=None) -> list[tuple]:
    """The rows of :data:`ROWS` run for ``model``: the keys ``rows``, or every row that applies."""
    from eiex.errors import EiexError

    if model not in MODELS:
        raise EiexError(f"bench methods runs {' or '.join(MODELS)}, not {model!r}")
    mlp = model == "lenet300"
    unknown = set(rows or ()) - {row[0] for row in ROWS}
    if unknown:
        raise EiexError(f"unknown method row(s) {', '.join(sorted(unknown))}; known: {', '.join(r[0] for r in ROWS)}")
    chosen = [row for row in ROWS if (mlp or row[0] not in MLP_ROWS) if rows is None or row[0] in rows]
    if not mlp and set(rows or ()) & set(MLP_ROWS):
        raise EiexError(f"the rows {' and '.join(MLP_ROWS)} need a fully connected network; {model} has convolutions")
    return chosen


def run_methods(out: Path, *, quick: bool = False, seed: int = 0, part: str | None = "ecp5-85k", n_pe: int = PES,
                digits: int = 1000, rows=None, resume: bool = False, build_pes: int = BUILD_PES,
                model: str = "lenet300", log=print) -> dict:
    """Every row of :data:`ROWS` that applies to ``model`` (or the keys ``rows``) into ``out/<key>``;
    writes ``methods.json`` and ``methods.md`` and returns the former's content. Each finished row is also kept as
    ``out/<key>.json``; with ``resume``, a row kept so is not run again, and a row whose compress
    output is in ``out/<key>`` is not compressed again (a long run stopped half-way goes on)."""
    from eiex.errors import EiexError
    from eiex.sim.engines import get_engine
    from eiex.sw.compress.pipeline import compress
    from eiex.sw.data import load_dataset
    from eiex.sw.images.eie.encode import with_pes
    from eiex.sw.models import build_model

    chosen = rows_for(model, rows)
    mlp = model == "lenet300"
    dataset = "mnist5k" if quick else "mnist"
    test = load_dataset(dataset).test
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layer_names = list(build_model(model).layers())
    starts = {OWN_DENSE: None}
    results = []
    started_all = time.perf_counter()
    for key, what, tables, start in chosen:
        if start not in starts:
            raise EiexError(f"method row {key} starts from the {start} weights: run the deep-compression row with it")
        folder = out / key
        if resume and (out / f"{key}.json").is_file():
            row = json.loads((out / f"{key}.json").read_text())
            log(f"== {key}: kept from {out / f'{key}.json'}")
        else:
            row = None
        if row is None and resume and (folder / "report.json").is_file():
            log(f"== {key}: compressed before, in {folder}")
            report = json.loads((folder / "report.json").read_text())
            seconds = report["seconds"]["total"]
        elif row is None:
            log(f"== {key}: {what}")
            started = time.perf_counter()
            result = compress(model, dataset, seed=seed,
                              recipe_path=row_recipe(key, tables, start, layer_names, quick),
                              dense_weights=starts[start], log=log)
            seconds = time.perf_counter() - started
            result.save(folder, force=True)
            report = result.report
            if key == "deep-compression":
                np.savez(out / "baseline-pruned.npz", **result.pruned)
        if key == "deep-compression":
            starts.update({BASELINE_DENSE: folder / "dense.npz", BASELINE_PRUNED: out / "baseline-pruned.npz"})
        if row is None and not mlp:
            row = {**row_of(key, what, start, report, seconds), "engine_error": None, "cycles": None}
            (out / f"{key}.json").write_text(json.dumps(row, indent=2) + "\n")
        if row is None:
            row = row_of(key, what, start, report, seconds)
            image_mac, built_macs = ROW_MACS.get(key, ("multiply", ()))
            figures = engine_figures(folder, test.images, test.labels, digits, n_pe, image_mac)
            image = figures.pop("image")
            row.update(figures)
            get_engine("eie").write_image(image, out / f"{key}-image", force=True)
            if built_macs and part is not None:
                built = with_pes(image, build_pes)
                row["builds"] = {mac: build_figures(built, part, out / f"{key}-build-{mac}", mac, log)
                                 for mac in built_macs}
                row["build_pes"] = build_pes
            (out / f"{key}.json").write_text(json.dumps(row, indent=2) + "\n")
        results.append(row)
        engine = (f" (image {row['engine_error']:.2%}), {row['cycles']:.0f} cycles at {n_pe} PEs"
                  if row["cycles"] is not None else "")
        log(f"{key}: {row['compressed_bytes']:,} bytes ({row['ratio']:.1f}x), error {row['error']:.2%}{engine}, "
            f"{row['seconds'] / 60:.1f} min")
    summary = {"model": model, "dataset": dataset, "seed": seed, "pes": n_pe, "part": part, "quick": quick,
               "rows": results, "seconds": round(time.perf_counter() - started_all, 1)}
    (out / "methods.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "methods.md").write_text(markdown(summary))
    return summary


def markdown(summary: dict) -> str:
    """The comparison table (and the build figures of the rows whose hardware changes, when measured)."""
    lines = [f"| method | compressed size | ratio | test error (PyTorch) | test error (EIE image) | EIE cycles per "
             f"inference at {summary['pes']} PEs | weight bits |",
             "|---|---|---|---|---|---|---|"]
    for row in summary["rows"]:
        bits = ", ".join(f"{n} {b}" for n, b in row["bits"].items())
        engine = ("- | -" if row["cycles"] is None  # a network with convolutions: no EIE image
                  else f"{row['engine_error']:.2%} | {row['cycles']:,.0f}")
        lines.append(f"| {row['method']} | {row['compressed_bytes']:,} B | {row['ratio']:.1f}x | {row['error']:.2%} | "
                     f"{engine} | {bits} |")
    for row in summary["rows"]:
        if "builds" in row:
            lines += ["", f"{row['key']} on the {summary['part']}, {row['build_pes']} PEs:", "",
                      "| MAC | LUT4 | DSP | block RAM | Fmax | build time |", "|---|---|---|---|---|---|"]
            for mac, b in row["builds"].items():
                fmax = f"{b['fmax_mhz']:.1f} MHz" if b.get("fmax_mhz") else "-"
                lines.append(f"| {mac} | {b.get('luts')} | {b.get('dsps')} | {b.get('brams')} | {fmax} | "
                             f"{b['seconds']:.0f} s |")
    return "\n".join(lines) + "\n"
