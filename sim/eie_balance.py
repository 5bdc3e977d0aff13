"""EIE load-balance curves (the paper's Fig. 11 and Fig. 13) from the engine's cycle model.

Load efficiency is ``ideal_cycles / compute_cycles`` (spec section 10 over what the engine takes),
averaged over held-out digits, as the activation queue deepens (at a fixed PE count) and as the PE
count grows (at a fixed queue depth), with and without the load-balancing row permutation. The
cycle model is exact against the RTL (tests/test_eie_rtl.py checks it, and every run of the curves
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
from eiex.sw.data import load_dataset  # noqa: E402
from eiex.sw.errors import EiexError  # noqa: E402
from eiex.sw.eie_export import engine_for, export_model, layers_from_npz, read_model_folder  # noqa: E402

QUEUE_DEPTHS = (1, 2, 4, 8, 16, 32)
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


def rtl_spot_check(image, inputs: np.ndarray, queue_depth: int) -> list[dict]:
    """The RTL's compute_cycles (Amaranth simulator) beside the cycle model's, input by input; a
    difference is an error, since the curves stand on the model being exact."""
    from eiex.hw.eie.simulate import simulate

    hw = HwParams.for_image(image, queue_depth=queue_depth)
    _, stats = simulate(image, inputs, hw=hw)
    checks = []
    for i, measured in enumerate(stats):
        predicted = engine_cycles(image, inputs[i:i + 1], hw)["compute_cycles"]
        if measured["compute_cycles"] != predicted:
            raise EiexError(f"cycle model predicts {predicted} compute cycles for digit {i}, the RTL took "
                            f"{measured['compute_cycles']}: the curves would not be the RTL's")
        checks.append({"digit": i, "rtl_compute_cycles": int(measured["compute_cycles"]), "model": predicted})
    return checks


def balance_curves(model_dir: Path, samples: int = 20, default_pes: int = 8, default_depth: int = 8,
                   rtl_samples: int = 2) -> dict:
    """Both sweeps, with and without row permutation, on the first ``samples`` held-out digits;
    the first ``rtl_samples`` of them also run on the RTL at the default configuration."""
    arrays, report = read_model_folder(model_dir)
    layers = layers_from_npz(arrays, str(model_dir / "compressed.npz"))
    if report.get("dataset") != "mnist5k":
        raise EiexError("balance curves run on the MNIST-5k held-out digits; compress on --dataset mnist5k")
    dataset = load_dataset("mnist5k")
    raw = dataset.test.images.reshape(len(dataset.test), -1)[:samples]
    calibration = dataset.train.images.reshape(len(dataset.train), -1)
    # act_frac is calibrated once; every other configuration reuses it
    _, info = export_model(layers, engine_for(layers, default_pes), input_norm=report["input"],
                           calibration=calibration, balance=False, auto_ptr_bits=True)

    def image_for(n_pe, balance):
        params = replace(engine_for(layers, n_pe), act_frac=info["act_frac"])
        image, _ = export_model(layers, params, input_norm=report["input"], calibration=calibration,
                                balance=balance, auto_ptr_bits=True, search_act_frac=False)
        return image, golden.quantize_input(image, raw)

    rows, rtl_checks = [], []
    for balance in (False, True):
        image, inputs = image_for(default_pes, balance)
        if rtl_samples:
            rtl_checks += [{"pes": default_pes, "queue_depth": default_depth, "balance": balance, **check}
                           for check in rtl_spot_check(image, inputs[:rtl_samples], default_depth)]
        for depth in QUEUE_DEPTHS:
            rows.append({"sweep": "queue_depth", "pes": default_pes, "queue_depth": depth, "balance": balance,
                         **efficiency(image, inputs, depth)})
        for n_pe in PE_COUNTS:
            image, inputs = image_for(n_pe, balance)
            rows.append({"sweep": "pes", "pes": n_pe, "queue_depth": default_depth, "balance": balance,
                         **efficiency(image, inputs, default_depth)})
    return {"model": report["model"], "samples": samples, "act_frac": info["act_frac"], "rows": rows,
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
