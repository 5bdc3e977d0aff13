"""EIE load-balance curves (the paper's Fig. 11 and Fig. 13) from the engine's cycle model.

Load efficiency is ``ideal_cycles / compute_cycles`` (spec section 10 over what the engine takes),
averaged over held-out digits, as the activation queue deepens (at a fixed PE count) and as the PE
count grows (at a fixed queue depth), with and without the load-balancing row permutation. The
cycle model is exact against the RTL (tests/hw/eie/test_eie_rtl.py checks it, and every run of the curves
simulates a few digits on the RTL and compares), so the curves are the RTL's.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from eiex.hw.eie import golden  # noqa: E402
from eiex.hw.eie.cycles import engine_cycles  # noqa: E402
from eiex.hw.eie.params import HwParams  # noqa: E402
from eiex.sim.simulate import check_simulator, simulate  # noqa: E402
from eiex.sw.data import load_dataset  # noqa: E402
from eiex.errors import EiexError  # noqa: E402
from eiex.sw.images.eie.export import engine_for, export_model, layers_from_npz, read_model_folder  # noqa: E402

QUEUE_DEPTHS = (2, 4, 8, 16, 32)  # the registered broadcast stall needs two places
PE_COUNTS = (1, 2, 4, 8, 16, 32, 64)


def efficiency(image, inputs: np.ndarray, queue_depth: int) -> dict:
    """Mean ideal/compute, median compute/ideal (also with the fixed pipeline latency taken off
    compute) and mean cycles over the input vectors."""
    hw = HwParams.for_image(image, queue_depth=queue_depth)
    stats = [engine_cycles(image, inputs[i : i + 1], hw) for i in range(len(inputs))]
    compute = np.array([s["compute_cycles"] for s in stats], dtype=float)
    ideal = np.array([s["ideal_cycles"] for s in stats], dtype=float)
    latency = stats[0]["latency"]
    return {"efficiency": float(np.mean(ideal / compute)), "compute_over_ideal": float(np.median(compute / ideal)),
            "beyond_latency_over_ideal": float(np.median((compute - latency) / ideal)),
            "compute_cycles": float(compute.mean()), "ideal_cycles": float(ideal.mean()), "latency": latency}


def rtl_spot_check(image, inputs: np.ndarray, queue_depth: int, simulator: str = "amaranth") -> list[dict]:
    """The RTL's compute_cycles beside the cycle model's, input by input; a difference is an error,
    since the curves stand on the model being exact.

    ``simulator``: ``"amaranth"`` (Amaranth's simulator) or ``"verilator"`` / ``"icarus"`` (the
    generated Verilog under cocotb, :func:`eiex.sim.simulate.simulate`; much faster on many inputs)."""
    check_simulator(simulator)
    hw = HwParams.for_image(image, queue_depth=queue_depth)
    # memories preloaded: loading them through the load interface would be most of the run
    _, run = simulate("eie", image, inputs, simulator=simulator, queue_depth=queue_depth, preload=True)
    stats = run.samples
    checks = []
    for i, measured in enumerate(stats):
        predicted = engine_cycles(image, inputs[i:i + 1], hw)["compute_cycles"]
        if measured["compute_cycles"] != predicted:
            raise EiexError(f"cycle model predicts {predicted} compute cycles for digit {i}, the RTL took "
                            f"{measured['compute_cycles']}: the curves would not be the RTL's")
        checks.append({"digit": i, "rtl_compute_cycles": int(measured["compute_cycles"]), "model": predicted})
    return checks


def sweep(image_for, default_pes: int = 8, default_depth: int = 8, pe_counts=PE_COUNTS,
          queue_depths=QUEUE_DEPTHS, balances=(False, True), check=None) -> tuple[list[dict], list[dict]]:
    """Both sweeps of one model: rows of :func:`efficiency` and the RTL checks.

    Parameters
    ----------
    image_for : callable
        ``image_for(n_pe, balance) -> (image, inputs)``: the image at ``n_pe`` PEs, rows permuted
        or not, and the input vectors in its fixed point.
    default_pes, default_depth : int
        The PE count of the queue-depth sweep and the queue depth of the PE sweep.
    check : callable or None
        ``check(image, inputs, queue_depth) -> list of dicts`` (such as :func:`rtl_spot_check`),
        called once per row order at the default configuration.
    """
    rows, checks = [], []
    for balance in balances:
        default = image_for(default_pes, balance)
        if check is not None:
            checks += [{"pes": default_pes, "queue_depth": default_depth, "balance": balance, **c}
                       for c in check(*default, default_depth)]
        for depth in queue_depths:
            rows.append({"sweep": "queue_depth", "pes": default_pes, "queue_depth": depth, "balance": balance,
                         **efficiency(*default, depth)})
        for n_pe in pe_counts:
            image, inputs = default if n_pe == default_pes else image_for(n_pe, balance)
            rows.append({"sweep": "pes", "pes": n_pe, "queue_depth": default_depth, "balance": balance,
                         **efficiency(image, inputs, default_depth)})
    return rows, checks


def held_out_digits(samples: int, spread: bool = False) -> np.ndarray:
    """Raw pixels ``(samples, 784)`` of MNIST-5k held-out digits: the first ``samples``, or with
    ``spread`` every ``1000 / samples``-th (the split is sorted by class, so the first digits are
    all zeros)."""
    test = load_dataset("mnist5k").test
    raw = test.images.reshape(len(test), -1)
    if not isinstance(samples, (int, np.integer)) or isinstance(samples, bool) or not 1 <= samples <= len(raw):
        raise EiexError(f"samples must be between 1 and the {len(raw)} held-out digits, not {samples!r}")
    return raw[np.arange(samples) * len(raw) // samples] if spread else raw[:samples]


def model_images(model_dir: Path, default_pes: int = 8):
    """``image_for(n_pe, balance, raw) -> (image, quantized raw)`` for an ``eiex compress`` folder
    of an MLP trained on MNIST-5k, and the model's name and ``act_frac``. ``act_frac`` is calibrated
    once on the training split, at ``default_pes`` PEs without row permutation; every other
    configuration reuses it."""
    arrays, report = read_model_folder(model_dir)
    layers = layers_from_npz(arrays, str(Path(model_dir) / "compressed.npz"))
    if report.get("dataset") != "mnist5k":
        raise EiexError("balance curves run on the MNIST-5k held-out digits; compress on --dataset mnist5k")
    dataset = load_dataset("mnist5k")
    calibration = dataset.train.images.reshape(len(dataset.train), -1)
    _, info = export_model(layers, engine_for(layers, default_pes), input_norm=report["input"],
                           calibration=calibration, balance=False, auto_ptr_bits=True)

    def image_for(n_pe, balance, raw):
        params = replace(engine_for(layers, n_pe), act_frac=info["act_frac"])
        image, _ = export_model(layers, params, input_norm=report["input"], calibration=calibration,
                                balance=balance, auto_ptr_bits=True, search_act_frac=False)
        return image, golden.quantize_input(image, raw)

    return image_for, {"model": report["model"], "act_frac": info["act_frac"]}


def balance_curves(model_dir: Path, samples: int = 20, default_pes: int = 8, default_depth: int = 8,
                   rtl_samples: int = 2, *, spread: bool = False, simulator: str = "amaranth",
                   pe_counts=PE_COUNTS, queue_depths=QUEUE_DEPTHS) -> dict:
    """Both sweeps, with and without row permutation, on ``samples`` held-out digits (the first
    ones, or with ``spread`` spread over the split); the first ``rtl_samples`` of them also run on
    the RTL (``simulator``, see :func:`rtl_spot_check`) at the default configuration."""
    model_image, info = model_images(Path(model_dir), default_pes)
    raw = held_out_digits(samples, spread)
    check = None
    if rtl_samples:
        def check(image, inputs, depth):
            return rtl_spot_check(image, inputs[:rtl_samples], depth, simulator=simulator)

    rows, rtl_checks = sweep(lambda n_pe, balance: model_image(n_pe, balance, raw), default_pes, default_depth,
                             pe_counts, queue_depths, check=check)
    return {"model": info["model"], "samples": samples, "act_frac": info["act_frac"], "rows": rows,
            "rtl_checks": rtl_checks}


def write_curves(result: dict, out: Path) -> None:
    """balance.json, balance.csv and balance.png (two panels) into the folder ``out``."""
    rows = result["rows"]
    (out / "balance.json").write_text(json.dumps(result, indent=2) + "\n")
    with open(out / "balance.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, sweep, key, label in ((axes[0], "queue_depth", "queue_depth", "activation queue depth"),
                                  (axes[1], "pes", "pes", "processing elements")):
        for balance, style in ((False, "o-"), (True, "s--")):
            points = [r for r in rows if r["sweep"] == sweep and r["balance"] == balance]
            ax.plot([r[key] for r in points], [100 * r["efficiency"] for r in points], style,
                    label="rows permuted" if balance else "rows interleaved")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(label)
        ax.set_ylabel("load efficiency (%)")
        ax.set_ylim(0, 105)
        ax.grid(alpha=0.3)
        ax.legend()
    fixed = [r for r in rows if r["sweep"] == "pes"][0]["queue_depth"]
    axes[0].set_title(f"{result['model']}, {[r for r in rows if r['sweep'] == 'queue_depth'][0]['pes']} PEs")
    axes[1].set_title(f"{result['model']}, queue depth {fixed}")
    fig.tight_layout()
    fig.savefig(out / "balance.png", dpi=110)
    plt.close(fig)
