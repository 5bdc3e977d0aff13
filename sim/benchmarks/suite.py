"""The measurements of ``eiex bench``: EIE load balance at two scales, XNOR intervals, simulator
speeds and FPGA resources. Each piece returns a JSON-ready dict; :func:`run_bench` runs them all,
draws their plots and writes ``bench.json``.

What each piece measures, and the choices behind it:

:func:`eie_sweeps`
    ``compute_cycles / ideal_cycles`` and load efficiency (``ideal / compute``) from the cycle
    model (:func:`eiex.hw.eie.cycles.engine_cycles`, exact against the RTL) as the PE count grows
    (1 to 64, queue depth 8) and as the queue deepens (1 to 32), rows interleaved or permuted, on
    two models:

    - the compressed LeNet-300-100 (an ``eiex compress`` folder) over held-out MNIST-5k digits
      spread over the split (it is sorted by class): 20 (quick) or 200 per point, queue sweep at 8
      PEs. The headline ``eie_lenet300_cycle_ratio_8pe`` is the median ``compute / ideal`` at 8
      PEs and queue depth 8 with permuted rows (the image ``eiex demo`` and ``eiex sim`` run) over
      100 digits (quick) or all 1,000;
    - an fc6-sized layer (AlexNet fc6, 4096 x 9216): :func:`fc6_layer` keeps the 9% largest
      magnitudes (EIE's Table III for Alex-6) and shares them as 15 values plus 0 (4-bit codes) by
      exact 1-D k-means. Its inputs are ReLU outputs of a Gaussian with 35.1% of them non-zero
      (EIE's Table III activation density for Alex-6), independent across inputs. The exporter
      permutes no rows of a network's last layer, since its outputs must stay in order; a single
      layer is its own last layer, so here the layer's rows are permuted before the export with
      the same :func:`~eiex.sw.images.eie.export.balanced_row_order`, weighting every column alike (the
      outputs come out permuted, which changes no cycle count). At 4,096 rows the exporter's
      pairwise swap search is over its budget, so the permutation is its greedy placement. The
      queue sweep runs at 64 PEs (:data:`FC6_QUEUE_PES`). The cycle model takes about 0.7 s per
      vector and configuration on the full layer (two vectors came out 0.4% apart at 64 PEs), so
      the full run averages over 4 vectors; the quick run takes every row and an eighth of the
      columns (4096 x 1152, 2 vectors): each PE keeps its rows, density and per-column
      statistics, with an eighth of the broadcasts.

    The RTL is spot-checked on Verilator (:func:`eiex.sim.benchmarks.eie_balance.rtl_spot_check`): its
    ``compute_cycles`` must equal the model's input by input, or the piece raises. Quick:
    LeNet-300-100 at 8 PEs, depth 8, permuted, 20 digits. Full: five LeNet-300-100
    configurations (:data:`FULL`) on 100 digits, and one vector of the 4096 x 1152 fc6 slice at
    8 PEs (the whole layer's Verilator model takes many minutes and 4 GB to compile).
:func:`xnor_intervals`
    The steady interval (cycles between results) of the XNOR engine on Verilator for the BNN
    784-512-512-10 shape folded several ways, beside the ideal ``max NF * SF`` and the cycle model
    (:mod:`eiex.hw.xnor.cycles`), which must agree image by image. Weights and thresholds are
    random (:func:`bnn_image`): the timing does not depend on values. ``xnor_interval_ratio`` is
    measured / ideal at the exporter's default folding.
:func:`simulator_speeds`
    Simulated cycles per second of Amaranth's simulator, Verilator and Icarus (when ``iverilog``
    is installed) on the same design and the same inputs: EIE with the LeNet-300-100 image at 8
    PEs on 4 held-out digits, XNOR with the BNN image on 3 images. The memories are preloaded
    (initialized in the design) on every simulator, so the runs time the simulation of streaming
    inputs through the engine, not the Python testbench writing the load interface (which would
    dominate such short runs: 37,000 XNOR load writes against 30,000 cycles of images). Medians of
    repeated runs. ``verilator_vs_amaranth_speed`` is the smaller of the two engines' Verilator /
    Amaranth ratios (both are reported).
:func:`resources`
    Yosys cell counts (:mod:`eiex.sim.tools.synth`). ``xnor_luts_per_lane`` is the MVTUs' datapath on
    xilinx (XNOR, popcount, accumulate, threshold, weight and threshold memories: what FINN-R's
    6.6 LUTs per lane counts); ``xnor_luts_per_lane_engine`` the whole engine (with the bank
    buffers between layers). The EIE engine is sized per PE count for the LeNet-300-100 image.
    Quick: the XNOR engine on xilinx and ecp5; full: both engines on all three targets.
:func:`fpga_builds`
    Full plan only: ``eiex build`` of both engines on the ECP5-85F at speed 6 (Fmax, throughput),
    and the Verilog generation time of FINN's LFC network at interval 512.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from eiex.errors import EiexError  # noqa: E402
from eiex.hw.eie.params import DEFAULT_PES, DEFAULT_QUEUE_DEPTH  # noqa: E402
from eiex.sim.benchmarks.cnv import cnv_engine  # noqa: E402
from eiex.sim.benchmarks.mnist import mnist_keys  # noqa: E402

#: the EIE configuration of the headline and of the sweeps' fixed axes
EIE_PES = DEFAULT_PES
QUEUE_DEPTH = DEFAULT_QUEUE_DEPTH

#: AlexNet fc6: outputs, inputs; weights kept and activations non-zero (EIE, Han et al. 2016, Table III)
FC6_ROWS, FC6_COLS = 4096, 9216
FC6_KEPT = 0.09
FC6_ACT_DENSITY = 0.351
FC6_CODE_BITS = 4  # 16 shared values, code 0 the pruned weights
QUICK_FC6_COLS = FC6_COLS // 8
#: the fc6 layer's queue-depth sweep runs at EIE's 64 PEs (its Fig. 11); at 8 PEs, with about 46
#: entries per PE and column, even a queue of one hides the imbalance
FC6_QUEUE_PES = 64

#: the BNN MLP of ``eiex binarize --model bnn-mlp``
BNN_SIZES = (784, 512, 512, 10)

#: the headline keys of :func:`run_bench` (besides the fc6 compression keys the CLI merges in)
SUITE_HEADLINE_KEYS = ("eie_lenet300_cycle_ratio_8pe", "xnor_interval_ratio", "verilator_vs_amaranth_speed",
                 "xnor_luts_per_lane")
#: what ``eiex.sim.benchmarks.fc6.run_fc6`` reports; :func:`run_bench` takes it as ``fc6_compression``
FC6_COMPRESSION_KEYS = ("fc6_seconds", "fc6_peak_gb", "kmeans_speedup_vs_sklearn", "kmeans_inertia_ratio_vs_sklearn")
#: what ``eiex.sim.benchmarks.mnist.run_mnist`` reports (the full bench runs it; quick leaves them None)
MNIST_KEYS = mnist_keys()
#: the CNV-shaped XNOR engine (:mod:`eiex.sim.benchmarks.cnv`): the full bench runs it; quick leaves them None
CNV_KEYS = ("xnor_cnv_interval_ratio", "xnor_cnv_luts_per_lane_engine_ecp5")
#: what ``eiex bench`` prints and its JSON holds at least (issues 6, 14 and 15)
HEADLINE_KEYS = ("fc6_seconds", "fc6_peak_gb", "kmeans_speedup_vs_sklearn", "kmeans_inertia_ratio_vs_sklearn",
                 "eie_lenet300_cycle_ratio_8pe", "xnor_interval_ratio", "verilator_vs_amaranth_speed",
                 "xnor_luts_per_lane", "xnor_luts_per_lane_engine", "xnor_luts_per_lane_engine_ecp5",
                 "eie_fmax_mhz_ecp5", "xnor_fmax_mhz_ecp5", "eie_lenet300_inferences_per_s_ecp5",
                 "xnor_bnn_images_per_s_ecp5", "xnor_verilog_seconds_lfc", *MNIST_KEYS, *CNV_KEYS)


@dataclass(frozen=True)
class Plan:
    """How much of each measurement one run does."""

    lenet_samples: int  # held-out digits per point of the LeNet-300-100 sweeps
    lenet_headline_samples: int  # digits of the 8-PE, depth-8 headline
    lenet_rtl: tuple  # (pes, queue_depth, balance) checked on Verilator
    lenet_rtl_samples: int
    fc6_cols: int
    fc6_vectors: int
    fc6_rtl: tuple  # (pes, queue_depth, balance) checked on Verilator, one vector of the 4096 x 1152 slice
    xnor_targets: tuple  # target intervals; None is the exporter's default folding
    xnor_images: int
    repeats: dict  # runs per simulator for the speed comparison
    xnor_synth_targets: tuple
    eie_synth_pes: tuple
    eie_synth_targets: tuple
    fpga_builds: bool  # place and route both engines on the ECP5-85F (minutes each)
    cnv: bool = False  # the CNV-shaped XNOR engine at two foldings: Verilator and Yosys (minutes)


QUICK = Plan(lenet_samples=20, lenet_headline_samples=100, lenet_rtl=((EIE_PES, QUEUE_DEPTH, True),),
             lenet_rtl_samples=20, fc6_cols=QUICK_FC6_COLS, fc6_vectors=2, fc6_rtl=(),
             xnor_targets=(None,), xnor_images=12, repeats={"amaranth": 1, "verilator": 3, "icarus": 1},
             xnor_synth_targets=("xilinx", "ecp5"), eie_synth_pes=(), eie_synth_targets=(), fpga_builds=False)
FULL = Plan(lenet_samples=200, lenet_headline_samples=1000,
            lenet_rtl=((EIE_PES, QUEUE_DEPTH, False), (EIE_PES, QUEUE_DEPTH, True), (EIE_PES, 1, True),
                       (1, QUEUE_DEPTH, True), (64, QUEUE_DEPTH, True)),
            lenet_rtl_samples=100, fc6_cols=FC6_COLS, fc6_vectors=4, fc6_rtl=((EIE_PES, QUEUE_DEPTH, False),),
            xnor_targets=(None, 3136, 1568, 784), xnor_images=20,
            repeats={"amaranth": 3, "verilator": 5, "icarus": 3},
            xnor_synth_targets=("xilinx", "ecp5", "ice40"), eie_synth_pes=(1, 4, 8),
            eie_synth_targets=("xilinx", "ecp5", "ice40"), fpga_builds=True, cnv=True)
#: the digits / images each simulator runs in the speed comparison
SPEED_INPUTS = {"eie": 4, "xnor": 3}  # a few seconds each on Amaranth


def plan_for(quick) -> Plan:
    if not isinstance(quick, (bool, np.bool_)):
        raise EiexError(f"quick must be True or False, not {quick!r}")
    return QUICK if quick else FULL


def _folder(lenet300_folder) -> Path:
    if not isinstance(lenet300_folder, (str, Path)):
        raise EiexError(f"the LeNet-300-100 folder must be a path, not {lenet300_folder!r}")
    folder = Path(lenet300_folder)
    if not folder.is_dir():
        raise EiexError(f"LeNet-300-100 folder {folder} does not exist")
    return folder


def _quiet(message: str) -> None:
    pass


# ---- EIE: the fc6-sized layer ------------------------------------------------------------------

def fc6_layer(cols: int = FC6_COLS, seed: int = 0):
    """The fc6-sized layer ``(4096, cols)`` of ``fc6_weights(seed)``, pruned to 9% by magnitude and
    shared as 15 values plus 0, as an exporter :class:`~eiex.sw.images.eie.export.FloatLayer` (ReLU, no
    bias)."""
    from eiex.sim.benchmarks.fc6 import fc6_weights, prune_in_place
    from eiex.sw.images.eie.export import FloatLayer
    from eiex.sw.compress.sharing import share_layer

    if isinstance(cols, bool) or not isinstance(cols, int) or not 1 <= cols <= FC6_COLS:
        raise EiexError(f"fc6 columns must be an integer from 1 to {FC6_COLS}, not {cols!r}")
    weight = fc6_weights(seed, FC6_ROWS, cols)
    prune_in_place(weight, FC6_KEPT)
    shared = share_layer(weight, FC6_CODE_BITS, "optimal")
    return FloatLayer(shared.weights(), np.zeros(FC6_ROWS), True, "fc6")


def relu_inputs(vectors: int, cols: int, density: float = FC6_ACT_DENSITY, seed: int = 0) -> np.ndarray:
    """``(vectors, cols)`` ReLU outputs ``max(0, z)``, ``z`` Gaussian (unit variance) with its mean set
    so that a ``density`` fraction is non-zero."""
    if not 0 < density < 1:
        raise EiexError(f"the activation density must lie in (0, 1), not {density!r}")
    mean = statistics.NormalDist().inv_cdf(density)
    return np.maximum(np.random.default_rng(seed).normal(mean, 1.0, (vectors, cols)), 0.0)


def fc6_images(layer, raw: np.ndarray):
    """``image_for(n_pe, balance) -> (image, inputs)`` for :func:`eiex.sim.benchmarks.eie_balance.sweep`:
    the layer exported at ``n_pe`` PEs (rows permuted beforehand when ``balance``), ``raw`` in its
    fixed point."""
    from dataclasses import replace

    from eiex.sw.images.eie.export import balanced_row_order, engine_for, export_model

    def image_for(n_pe, balance):
        if balance:
            layer_n = replace(layer, weight=layer.weight[balanced_row_order(layer.weight, n_pe)])
        else:
            layer_n = layer
        image, _ = export_model([layer_n], engine_for([layer_n], n_pe), input_norm=None, calibration=None,
                                balance=False, auto_ptr_bits=True, search_act_frac=False)
        return image, to_fixed(raw, image.engine)

    return image_for


def to_fixed(raw: np.ndarray, engine) -> np.ndarray:
    """Real activations in an engine's fixed point (``act_frac``), rounded and saturated."""
    lo, hi = engine.act_range()
    return np.clip(np.rint(raw * 2.0**engine.act_frac), lo, hi).astype(np.int64)


# ---- EIE: both models --------------------------------------------------------------------------

def eie_sweeps(lenet300_folder, quick: bool, log=None) -> dict:
    """Both sweeps on the compressed LeNet-300-100 and on the fc6-sized layer, with RTL spot checks
    on Verilator (see the module docstring). Returns ``eie_lenet300_cycle_ratio_8pe`` and, per model,
    the sweep ``rows`` (as :func:`eiex.sim.benchmarks.eie_balance.sweep`), ``rtl_checks`` and settings."""
    from eiex.hw.eie import golden
    from eiex.sim.benchmarks.eie_balance import efficiency, held_out_digits, model_images, rtl_spot_check, sweep
    from eiex.sw.images.eie.image import EngineParams

    plan, folder, log = plan_for(quick), _folder(lenet300_folder), log or _quiet
    log(f"== EIE sweeps: LeNet-300-100 from {folder}, {plan.lenet_samples} held-out digits")
    start = time.perf_counter()
    model_image, info = model_images(folder, EIE_PES)
    raw = held_out_digits(plan.lenet_samples, spread=True)
    cache = {}

    def lenet_image(n_pe, balance):
        if (n_pe, balance) not in cache:
            cache[n_pe, balance] = model_image(n_pe, balance, raw)
        return cache[n_pe, balance]

    rows, _ = sweep(lenet_image, EIE_PES, QUEUE_DEPTH)
    checks = []
    for n_pe, depth, balance in plan.lenet_rtl:
        log(f"   RTL check on Verilator: {n_pe} PEs, queue depth {depth}, rows {_order(balance)}")
        image, inputs = lenet_image(n_pe, balance)
        checks += [{"pes": n_pe, "queue_depth": depth, "balance": balance, **c}
                   for c in rtl_spot_check(image, inputs[:plan.lenet_rtl_samples], depth, simulator="verilator")]
    headline_raw = held_out_digits(plan.lenet_headline_samples, spread=True)
    headline = {}
    for balance in (False, True):
        image, _ = lenet_image(EIE_PES, balance)
        headline[_order(balance)] = efficiency(image, golden.quantize_input(image, headline_raw), QUEUE_DEPTH)
    lenet = {"model": info["model"], "act_frac": info["act_frac"], "samples": plan.lenet_samples,
             "headline_samples": plan.lenet_headline_samples, "rows": rows, "rtl_checks": checks,
             "headline": headline, "seconds": time.perf_counter() - start}
    cache.clear()

    log(f"== EIE sweeps: fc6-sized layer {FC6_ROWS} x {plan.fc6_cols}, {plan.fc6_vectors} input vectors")
    start = time.perf_counter()
    layer = fc6_layer(plan.fc6_cols)
    fc6_raw = relu_inputs(plan.fc6_vectors, plan.fc6_cols)
    image_for = fc6_images(layer, fc6_raw)
    rows, _ = sweep(image_for, FC6_QUEUE_PES, QUEUE_DEPTH)
    checks = []
    # the full layer's Verilator model takes many minutes and 4 GB to compile, the slice's about 1.5 min
    slice_for = image_for if plan.fc6_cols == QUICK_FC6_COLS or not plan.fc6_rtl else \
        fc6_images(fc6_layer(QUICK_FC6_COLS), relu_inputs(1, QUICK_FC6_COLS))
    for n_pe, depth, balance in plan.fc6_rtl:
        log(f"   RTL check on Verilator (fc6 {FC6_ROWS} x {QUICK_FC6_COLS}): {n_pe} PEs, queue depth {depth}, "
            f"rows {_order(balance)}")
        image, inputs = slice_for(n_pe, balance)
        checks += [{"pes": n_pe, "queue_depth": depth, "balance": balance, "cols": QUICK_FC6_COLS, **c}
                   for c in rtl_spot_check(image, inputs[:1], depth, simulator="verilator")]
    fc6 = {"model": "fc6", "rows_out": FC6_ROWS, "cols": plan.fc6_cols, "vectors": plan.fc6_vectors,
           "weights_kept": float(np.mean(layer.weight != 0)), "shared_values": int(len(np.unique(layer.weight)) - 1),
           "activation_density": float(np.mean(to_fixed(fc6_raw, EngineParams()) != 0)),
           "rows": rows, "rtl_checks": checks, "seconds": time.perf_counter() - start}
    ratio = headline["permuted"]["compute_over_ideal"]
    log(f"   LeNet-300-100 at {EIE_PES} PEs, depth {QUEUE_DEPTH}: compute / ideal {ratio:.3f} (median)")
    return {"eie_lenet300_cycle_ratio_8pe": ratio, "lenet300": lenet, "fc6": fc6}


def _order(balance: bool) -> str:
    return "permuted" if balance else "interleaved"


def plot_eie_sweeps(result: dict, path: Path) -> None:
    """Load efficiency vs queue depth and vs PE count (the paper's Fig. 11 and 13), one row of
    panels per model, rows interleaved and permuted."""
    models = [result[name] for name in ("lenet300", "fc6")]
    fig, axes = plt.subplots(len(models), 2, figsize=(10, 3.6 * len(models)), squeeze=False)
    for row, model in zip(axes, models):
        name = "LeNet-300-100" if model["model"] != "fc6" else f"fc6 {model['rows_out']}x{model['cols']}"
        floor = max(0, 10 * math.floor(10 * min(r["efficiency"] for r in model["rows"])) - 10)
        for ax, sweep, label in ((row[0], "queue_depth", "activation queue depth"),
                                 (row[1], "pes", "processing elements")):
            for balance, style in ((False, "o-"), (True, "s--")):
                points = [r for r in model["rows"] if r["sweep"] == sweep and r["balance"] == balance]
                ax.plot([r[sweep] for r in points], [100 * r["efficiency"] for r in points], style,
                        label=f"rows {_order(balance)}")
            ax.set_xscale("log", base=2)
            ax.set_xlabel(label)
            ax.set_ylabel("load efficiency (%)")
            ax.set_ylim(floor, 101)
            ax.grid(alpha=0.3)
            ax.legend(loc="lower right")
            fixed = f"{points[0]['pes']} PEs" if sweep == "queue_depth" else f"queue depth {points[0]['queue_depth']}"
            ax.set_title(f"{name}, {fixed}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- XNOR ----------------------------------------------------------------------------------------

def bnn_image(target_interval: int | None = None, seed: int = 0, sizes=BNN_SIZES):
    """An XNOR image of the BNN MLP's shape with random +1/-1 weights and random thresholds in
    ``[0, K + 1]`` (so every hidden layer's threshold width is the one its ``K`` needs), folded by
    :func:`eiex.sw.images.xnor.export.image_from_folded` for ``target_interval`` (None: its default)."""
    from eiex.sw.images.xnor.export import image_from_folded

    rng = np.random.default_rng(seed)
    arrays = {}
    for l, (k, m) in enumerate(zip(sizes, sizes[1:])):
        arrays[f"w{l}"] = np.where(rng.random((m, k)) < 0.5, -1, 1).astype(np.int8)
        if l < len(sizes) - 2:
            arrays[f"t{l}"] = rng.integers(0, k + 2, size=m)
    arrays.update(scale=np.ones(sizes[-1]), bias=np.zeros(sizes[-1]), input_threshold=np.array(0.5))
    return image_from_folded(arrays, target_interval=target_interval, source="the random BNN")


def random_bits(image, images: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, size=(images, image.inputs))


def xnor_interval(image, images: int, simulator: str = "verilator") -> dict:
    """One folding on ``simulator``: measured steady interval, ideal, the cycle model's interval
    and per-image figures; raises when the RTL's per-image cycles or intervals differ from the
    model's."""
    from eiex.hw.xnor.cycles import pipeline_cycles, steady_interval, unit_timing
    from eiex.hw.xnor.engine import engine_lanes
    from eiex.hw.xnor.memory_map import engine_for
    from eiex.sim.simulate import simulate

    layers = engine_for(image)
    _, run = simulate("xnor", image, random_bits(image, images), simulator=simulator)
    stats = run.as_dict()
    model = pipeline_cycles(layers, images)
    folding = [[g.pe, g.simd] if hasattr(g, "pe") else None for g in layers]
    for key in ("cycles", "intervals"):
        if list(stats[key]) != list(model[key]):
            raise EiexError(f"xnor folding {folding}: the cycle model predicts {key} {model[key]}, "
                            f"{simulator} measured {stats[key]}")
    return {"folding": folding, "lanes": engine_lanes(layers),
            "layer_steps": [unit_timing(g)[0] for g in layers], "ideal_interval": stats["ideal_interval"],
            "interval": stats["interval"], "model_interval": steady_interval(layers),
            "ratio": stats["interval"] / stats["ideal_interval"], "latency": stats["cycles"][0],
            "intervals": stats["intervals"], "images": images, "simulator": simulator,
            "sim_cycles": stats["sim_cycles"], "cycles_per_second": stats["cycles_per_second"],
            "build_seconds": stats["build_seconds"]}


def xnor_intervals(quick: bool, log=None) -> dict:
    """The BNN shape's steady interval on Verilator for each folding of the plan, beside the ideal
    and the cycle model; ``xnor_interval_ratio`` is measured / ideal at the default folding."""
    plan, log = plan_for(quick), log or _quiet
    rows = []
    for target in plan.xnor_targets:
        image = bnn_image(target)
        log(f"== XNOR interval on Verilator: folding {[[l.pe, l.simd] for l in image.layers]}, "
            f"{plan.xnor_images} images")
        rows.append({"target_interval": target, **xnor_interval(image, plan.xnor_images)})
    default = next(r for r in rows if r["target_interval"] is None)
    return {"xnor_interval_ratio": default["ratio"], "layers": list(BNN_SIZES), "rows": rows}


def plot_xnor_intervals(result: dict, path: Path) -> None:
    rows = sorted(result["rows"], key=lambda r: r["lanes"])
    fig, ax = plt.subplots(figsize=(6, 4))
    lanes = [r["lanes"] for r in rows]
    ax.plot(lanes, [r["ideal_interval"] for r in rows], "o-", label="ideal: max NF x SF")
    ax.plot(lanes, [r["interval"] for r in rows], "x--", markersize=10, label="measured on Verilator")
    ax.plot(lanes, [r["model_interval"] for r in rows], "+:", markersize=12, label="cycle model")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("XNOR lanes (sum of P x S)")
    ax.set_ylabel("cycles per image (steady)")
    ax.set_title(f"XNOR engine, BNN {'-'.join(map(str, result['layers']))}")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- simulator speeds ----------------------------------------------------------------------------

def _timed_run(engine: str, image, inputs, simulator: str) -> dict:
    """One preloaded run on ``simulator``, its outputs checked against the golden model."""
    from eiex.sim.engines import get_engine
    from eiex.sim.simulate import simulate

    outputs, stats = simulate(engine, image, inputs, simulator=simulator, queue_depth=QUEUE_DEPTH, preload=True)
    if not np.array_equal(outputs, get_engine(engine).golden(image, inputs)):
        raise EiexError(f"{engine} on {simulator}: the outputs differ from the golden model's")
    return {"sim_cycles": stats.sim_cycles, "sim_seconds": stats.sim_seconds,
            **({"build_seconds": stats.run["build_seconds"]} if "build_seconds" in stats.run else {})}


def simulators() -> list[str]:
    """The simulators compared: Amaranth, Verilator, and Icarus when ``iverilog`` is installed."""
    return ["amaranth", "verilator"] + (["icarus"] if shutil.which("iverilog") else [])


def speed_of(engine: str, image, inputs, simulator: str, repeats: int) -> dict:
    """``repeats`` runs of ``inputs`` on one simulator: each run's figures and the median rate."""
    runs = []
    for _ in range(repeats):
        run = _timed_run(engine, image, inputs, simulator)
        runs.append({**run, "cycles_per_second": run["sim_cycles"] / run["sim_seconds"]})
    return {"cycles_per_second": statistics.median(r["cycles_per_second"] for r in runs),
            "sim_cycles": runs[0]["sim_cycles"], "runs": runs}


def simulator_speeds(lenet300_folder, quick: bool, log=None) -> dict:
    """Simulated cycles per second of each simulator on the same design and inputs, for both
    engines (see the module docstring): per engine each simulator's runs and median rate, the
    ratios to Amaranth's rate, and ``verilator_vs_amaranth_speed``, the smaller ratio."""
    from eiex.hw.eie import golden as eie_golden
    from eiex.sim.benchmarks.eie_balance import held_out_digits
    from eiex.sw.images.eie.export import export_model_folder

    plan, log = plan_for(quick), log or _quiet
    eie_image = export_model_folder(_folder(lenet300_folder), EIE_PES, balance=True)
    xnor_image = bnn_image()
    designs = {
        "eie": (eie_image, eie_golden.quantize_input(eie_image, held_out_digits(SPEED_INPUTS["eie"], spread=True)),
                f"LeNet-300-100 at {EIE_PES} PEs, queue depth {QUEUE_DEPTH}, {SPEED_INPUTS['eie']} held-out digits, "
                "memories preloaded"),
        "xnor": (xnor_image, random_bits(xnor_image, SPEED_INPUTS["xnor"]),
                 f"BNN {'-'.join(map(str, BNN_SIZES))} at the default folding, {SPEED_INPUTS['xnor']} images, "
                 "memories preloaded"),
    }
    result = {"inputs": SPEED_INPUTS, "simulators": simulators(), "engines": {}}
    for engine, (image, inputs, what) in designs.items():
        rates = {}
        for simulator in result["simulators"]:
            log(f"== {engine} on {simulator}: {what}, {plan.repeats[simulator]} run(s)")
            rates[simulator] = speed_of(engine, image, inputs, simulator, plan.repeats[simulator])
        ratios = {f"{s}_vs_amaranth": rates[s]["cycles_per_second"] / rates["amaranth"]["cycles_per_second"]
                  for s in rates if s != "amaranth"}
        result["engines"][engine] = {"design": what, "rates": rates, **ratios}
    result["verilator_vs_amaranth_speed"] = min(e["verilator_vs_amaranth"] for e in result["engines"].values())
    return result


def plot_simulator_speeds(result: dict, path: Path) -> None:
    engines = list(result["engines"])
    sims = result["simulators"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    width = 0.8 / len(sims)
    for s, sim in enumerate(sims):
        values = [result["engines"][e]["rates"][sim]["cycles_per_second"] for e in engines]
        bars = ax.bar(np.arange(len(engines)) + (s - (len(sims) - 1) / 2) * width, values, width, label=sim)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=8)
    ax.set_xticks(np.arange(len(engines)), [result["engines"][e]["design"].split(",")[0] + f"\n({e})"
                                            for e in engines])
    ax.set_yscale("log")
    top = max(r["cycles_per_second"] for e in engines for r in result["engines"][e]["rates"].values())
    ax.set_ylim(top=top * 20)  # room for the legend above the bars
    ax.set_ylabel("simulated cycles per second")
    ax.set_title("Simulator speed, same design and inputs")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="upper left", ncol=len(sims))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- resources -----------------------------------------------------------------------------------

def resources(lenet300_folder, quick: bool, log=None) -> dict:
    """Yosys counts: the XNOR engine for the BNN shape (whole engine and MVTUs only) and, in the
    full plan, the EIE engine at 1, 4 and 8 PEs sized for the LeNet-300-100 image (exported per PE
    count, rows permuted); ``xnor_luts_per_lane`` (MVTUs, xilinx) and ``xnor_luts_per_lane_engine``."""
    from eiex.hw.eie.params import HwParams
    from eiex.hw.xnor.memory_map import engine_for
    from eiex.sim.tools.synth import eie_resources, xnor_resources
    from eiex.sw.images.eie.export import export_model_folder

    plan, log = plan_for(quick), log or _quiet
    folder = _folder(lenet300_folder) if plan.eie_synth_pes else None
    layers = engine_for(bnn_image())
    xnor = []
    for target in plan.xnor_synth_targets:
        for datapath_only in (True, False):
            log(f"   Yosys: XNOR {'MVTUs' if datapath_only else 'engine'} on {target}")
            r = xnor_resources(layers, target, datapath_only=datapath_only)
            xnor.append({"part": "mvtus" if datapath_only else "engine", **r})
    eie = []
    for n_pe in plan.eie_synth_pes:
        hw = HwParams.for_image(export_model_folder(folder, n_pe, balance=True), queue_depth=QUEUE_DEPTH)
        for target in plan.eie_synth_targets:
            log(f"   Yosys: EIE {n_pe} PEs on {target}")
            eie.append(eie_resources(hw, target))

    def per_lane(part, target="xilinx"):
        return next(r["luts_per_lane"] for r in xnor if r["part"] == part and r["target"] == target)

    return {"xnor_luts_per_lane": per_lane("mvtus"), "xnor_luts_per_lane_engine": per_lane("engine"),
            "xnor_luts_per_lane_engine_ecp5": per_lane("engine", "ecp5"),
            "xnor_folding": [[g.pe, g.simd] for g in layers], "xnor": xnor, "eie": eie}


# ---- FPGA builds ---------------------------------------------------------------------------------

#: the part and speed grade of the Fmax figures (the slowest ECP5-85F)
BUILD_PART, BUILD_SPEED = "ecp5-85k", 6
#: FINN's LFC network, folded for one image every 512 cycles: the Verilog generation benchmark
LFC_SIZES, LFC_INTERVAL = (784, 1024, 1024, 1024, 10), 512


def fpga_builds(lenet300_folder, quick: bool, out_dir, log=None) -> dict:
    """Place and route on the ECP5-85F, speed 6, nextpnr's default placer and seed: the EIE engine
    at 8 PEs sized for the LeNet-300-100 image (rows permuted) and the XNOR engine of the BNN MLP
    at the exporter's default folding (:func:`bnn_image`); their Fmax and throughput (Fmax over
    the cycle models' cycles per result). Also times the Verilog generation of FINN's LFC
    (784-1024-1024-1024-10 at ``--target-interval 512``). Without the plan's ``fpga_builds`` the
    keys are None (the quick bench does not place and route)."""
    from eiex.hw.eie.engine import EieEngine
    from eiex.hw.eie.params import HwParams
    from eiex.hw.xnor.engine import XnorEngine, engine_lanes
    from eiex.hw.xnor.memory_map import engine_for, engine_for_sizes
    from eiex.hw.xnor.verilog import to_verilog
    from eiex.sim.tools.build import run_build
    from eiex.sim.tools.parts import get_part
    from eiex.sim.benchmarks.throughput import eie_cycles, xnor_cycles
    from eiex.sw.images.eie.export import export_model_folder

    plan, log = plan_for(quick), log or _quiet
    keys = ("eie_fmax_mhz_ecp5", "xnor_fmax_mhz_ecp5", "eie_lenet300_inferences_per_s_ecp5",
            "xnor_bnn_images_per_s_ecp5", "xnor_verilog_seconds_lfc")
    if not plan.fpga_builds:
        return {**dict.fromkeys(keys), "builds": {}}
    part, out = get_part(BUILD_PART, BUILD_SPEED), Path(out_dir)
    image = export_model_folder(_folder(lenet300_folder), EIE_PES, balance=True)
    hw = HwParams.for_image(image, queue_depth=QUEUE_DEPTH)
    log(f"   nextpnr: EIE {EIE_PES} PEs (LeNet-300-100) on {part.device} speed {BUILD_SPEED}")
    eie = run_build(EieEngine(hw), part, out / "build_eie", speed=BUILD_SPEED, force=True,
                    description={"engine": "eie", "n_pe": EIE_PES, "image": "lenet300"},
                    cycles=eie_cycles(image, hw), log=log)
    layers = engine_for(bnn_image())
    log(f"   nextpnr: XNOR BNN MLP on {part.device} speed {BUILD_SPEED}")
    xnor = run_build(XnorEngine(layers), part, out / "build_xnor", speed=BUILD_SPEED, force=True,
                     description={"engine": "xnor", "image": "bnn-mlp"}, cycles=xnor_cycles(layers), log=log)
    lfc = engine_for_sizes(list(LFC_SIZES), target_interval=LFC_INTERVAL)
    start = time.perf_counter()
    to_verilog(lfc)
    lfc_seconds = time.perf_counter() - start
    return {"eie_fmax_mhz_ecp5": eie["fmax_mhz"]["clk"], "xnor_fmax_mhz_ecp5": xnor["fmax_mhz"]["clk"],
            "eie_lenet300_inferences_per_s_ecp5": eie["throughput"]["inferences_per_s"],
            "xnor_bnn_images_per_s_ecp5": xnor["throughput"]["images_per_s"],
            "xnor_verilog_seconds_lfc": lfc_seconds,
            "lfc_lanes": engine_lanes(lfc), "builds": {"eie": eie, "xnor": xnor}}


def plot_resources(result: dict, path: Path) -> bool:
    """EIE LUTs and FFs against the PE count, per target; False (no file) without EIE counts."""
    if not result["eie"]:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for target, marker in (("xilinx", "o"), ("ice40", "s")):
        rows = sorted((r for r in result["eie"] if r["target"] == target), key=lambda r: r["n_pe"])
        if rows:
            pes = [r["n_pe"] for r in rows]
            ax.plot(pes, [r["luts"] for r in rows], marker + "-", label=f"{target} LUTs")
            ax.plot(pes, [r["ffs"] for r in rows], marker + "--", label=f"{target} FFs")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("processing elements")
    ax.set_ylabel("cells (Yosys, before placement)")
    ax.set_title("EIE engine sized for LeNet-300-100")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---- everything ----------------------------------------------------------------------------------

def _plain(value):
    """``value`` with numpy scalars and arrays as Python numbers and lists, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise EiexError(f"a measurement came out as {value}")
    return value


def check_fc6_compression(fc6_compression) -> dict:
    """The headline keys of ``run_fc6``'s result (empty without one)."""
    if fc6_compression is None:
        return {}
    if not isinstance(fc6_compression, dict):
        raise EiexError(f"fc6_compression must be a dict of {', '.join(FC6_COMPRESSION_KEYS)}, "
                        f"not {type(fc6_compression).__name__}")
    missing = [k for k in FC6_COMPRESSION_KEYS if k not in fc6_compression]
    if missing:
        raise EiexError(f"fc6_compression lacks {', '.join(missing)}")
    return {k: fc6_compression[k] for k in FC6_COMPRESSION_KEYS}


def _timed_hardware(folder, quick, out_dir):
    """:func:`resources`, then :func:`fpga_builds`, and their wall times (what the child process
    of :func:`run_bench` runs)."""
    start = time.perf_counter()
    result = resources(folder, quick)
    middle = time.perf_counter()
    builds = fpga_builds(folder, quick, out_dir)
    return result, builds, middle - start, time.perf_counter() - middle


def run_bench(quick: bool, lenet300_folder, out_dir, log=print, fc6_compression: dict | None = None,
              parallel: bool = True, mnist: dict | None = None) -> dict:
    """All the pieces; plots and ``bench.json`` into ``out_dir`` (created if needed).

    With ``parallel``, :func:`resources` (mostly Yosys) runs in a child process beside the EIE
    sweeps and the XNOR intervals, on the second core; a process rather than a thread, so that
    no two Amaranth conversions share an interpreter. The simulator speeds are timed afterwards,
    with nothing else of the bench running.

    Parameters
    ----------
    quick : bool
        :data:`QUICK` or :data:`FULL`.
    lenet300_folder : path
        An ``eiex compress --model lenet300`` output folder (MNIST-5k).
    out_dir : path
    log : callable
        Progress lines.
    fc6_compression : dict or None
        **The fc6 compression results** (``eiex.sim.benchmarks.fc6.run_fc6``'s result): its
        :data:`FC6_COMPRESSION_KEYS` join the headline keys, the whole record (without
        ``arrays``) goes under ``fc6_compression``; this module does not run it.
    parallel : bool
        Run :func:`resources` in a child process beside the other pieces (else after them).
    mnist : dict or None
        **The full-MNIST compression table** (``eiex.sim.benchmarks.mnist.run_mnist``'s result):
        its :data:`MNIST_KEYS` join the headline keys (None without it), its rows go under
        ``mnist_rows``; this module does not run it.

    Returns
    -------
    dict
        The headline keys (:data:`SUITE_HEADLINE_KEYS`, a few more figures, the fc6 compression keys
        when given) and the pieces' details under ``eie``, ``xnor``, ``simulators``, ``resources``
        (and ``fc6_compression``); ``seconds`` per piece; ``plots``.
    """
    plan = plan_for(quick)
    folder = _folder(lenet300_folder)
    fc6_keys = check_fc6_compression(fc6_compression)
    if not isinstance(parallel, bool):
        raise EiexError(f"parallel must be True or False, not {parallel!r}")
    if not isinstance(out_dir, (str, Path)):
        raise EiexError(f"out_dir must be a path, not {out_dir!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise EiexError(f"output {out} exists and is not a folder")
    log = log or _quiet
    seconds = {}
    start = time.perf_counter()

    def timed(name, fn, *args, **kwargs):
        t = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds[name] = time.perf_counter() - t
        return result

    mode = "quick" if quick else "full"
    if parallel:
        log(f"== bench ({mode}): resources (Yosys) and FPGA builds (nextpnr) in a child process beside the "
            "EIE sweeps and XNOR intervals")
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            synth = pool.submit(_timed_hardware, folder, quick, out)
            eie = timed("eie_sweeps", eie_sweeps, folder, quick, log)
            xnor = timed("xnor_intervals", xnor_intervals, quick, log)
            if not synth.done():
                log("== waiting for the resource estimates (Yosys) and FPGA builds (nextpnr)")
            res, builds, seconds["resources"], seconds["fpga_builds"] = synth.result()
    else:
        log(f"== bench ({mode})")
        eie = timed("eie_sweeps", eie_sweeps, folder, quick, log)
        xnor = timed("xnor_intervals", xnor_intervals, quick, log)
        log("== resource estimates (Yosys)")
        res = timed("resources", resources, folder, quick, log)
        log("== FPGA builds (nextpnr)")
        builds = timed("fpga_builds", fpga_builds, folder, quick, out, log)
    cnv = timed("xnor_cnv", cnv_engine, quick, log) if plan.cnv else None
    speeds = timed("simulator_speeds", simulator_speeds, folder, quick, log)
    seconds["total"] = time.perf_counter() - start

    out.mkdir(parents=True, exist_ok=True)
    plots = ["eie_balance.png", "xnor_intervals.png", "simulator_speeds.png"]
    plot_eie_sweeps(eie, out / plots[0])
    plot_xnor_intervals(xnor, out / plots[1])
    plot_simulator_speeds(speeds, out / plots[2])
    if plot_resources(res, out / "resources.png"):
        plots.append("resources.png")

    lenet_rows, fc6_rows = eie["lenet300"]["rows"], eie["fc6"]["rows"]

    def row(rows, sweep, pes, depth, balance):
        return next(r for r in rows if r["sweep"] == sweep and r["pes"] == pes and r["queue_depth"] == depth
                    and r["balance"] == balance)

    result = {
        "eie_lenet300_cycle_ratio_8pe": eie["eie_lenet300_cycle_ratio_8pe"],
        "xnor_interval_ratio": xnor["xnor_interval_ratio"],
        "verilator_vs_amaranth_speed": speeds["verilator_vs_amaranth_speed"],
        "xnor_luts_per_lane": res["xnor_luts_per_lane"],
        "xnor_luts_per_lane_engine": res["xnor_luts_per_lane_engine"],
        "xnor_luts_per_lane_engine_ecp5": res["xnor_luts_per_lane_engine_ecp5"],
        **{k: v for k, v in builds.items() if k != "builds"},
        "eie_lenet300_efficiency_8pe": eie["lenet300"]["headline"]["permuted"]["efficiency"],
        "eie_fc6_efficiency_64pe": row(fc6_rows, "pes", 64, QUEUE_DEPTH, True)["efficiency"],
        "eie_fc6_efficiency_64pe_depth2": row(fc6_rows, "queue_depth", FC6_QUEUE_PES, 2, True)["efficiency"],
        "eie_lenet300_efficiency_64pe": row(lenet_rows, "pes", 64, QUEUE_DEPTH, True)["efficiency"],
        **{f"{e}_verilator_vs_amaranth_speed": speeds["engines"][e]["verilator_vs_amaranth"]
           for e in speeds["engines"]},
        **fc6_keys,
        **{k: (mnist or {}).get(k) for k in MNIST_KEYS},
        **{k: (cnv or {}).get(k) for k in CNV_KEYS},
        **({"xnor_cnv": cnv} if cnv else {}),
        **({"mnist_rows": mnist["mnist_rows"]} if mnist else {}),
        "quick": bool(quick),
        "plan": asdict(plan),
        "eie": eie, "xnor": xnor, "simulators": speeds, "resources": res, "fpga_builds": builds["builds"],
        # run_fc6's whole record, without the weight arrays it may carry
        **({"fc6_compression": {k: v for k, v in fc6_compression.items() if k != "arrays"}} if fc6_keys else {}),
        "seconds": seconds, "plots": plots,
    }
    result = _plain(result)
    from eiex.sw.atomic import atomic_write

    atomic_write(out / "bench.json", (json.dumps(result, indent=2) + "\n").encode())
    log(f"== bench done in {seconds['total']:.0f} s: "
        + ", ".join(f"{k} {result[k]:.3g}" for k in SUITE_HEADLINE_KEYS))
    return result
