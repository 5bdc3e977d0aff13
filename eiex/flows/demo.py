"""``eiex demo``: the whole flow on the bundled MNIST-5k, ending in one table.

Compress LeNet-300-100 (and LeNet-5), binarize the BNN MLP and the conv BNN (``bnn-cnv``); export
the engines' images in every file format; generate their Verilog; run the held-out digits through
the EIE engine and both XNOR engines on Verilator (or Icarus), check every output against the golden
models, and time Amaranth's simulator on a few of the same digits of the EIE and MLP designs for the
speed comparison (and send a few over the simulated UART). Everything lands in one output folder,
written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from eiex.sw.atomic import atomic_output_dir, check_output_dir
from eiex.errors import EiexError
from eiex.hw.eie.params import DEFAULT_PES, DEFAULT_QUEUE_DEPTH
from eiex.sim.engines import get_engine
from eiex.sim.simulate import simulate
from eiex.sw.images.memfiles import FORMATS

EIE_PES = DEFAULT_PES
QUEUE_DEPTH = DEFAULT_QUEUE_DEPTH
QUICK_DIGITS = 100  # every tenth held-out digit
AMARANTH_DIGITS = 2  # Amaranth's simulator runs the EIE engine at about 1,000 cycles/s
#: digits over the simulated UART: each bit of an EIE digit's 1,568 input bytes is a cocotb wake-up
UART_DIGITS = 20
#: the conv BNN's folding (:data:`eiex.sim.benchmarks.cnv.FOLDINGS`): 2,696 lanes, a digit every 5,184 cycles
CNV_FOLDING = "B"


def _save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def _run(engine: str, image, inputs, folder: Path, simulator: str, log, label: str | None = None) -> dict:
    """The engine on ``simulator`` over ``inputs``, bit-exact against the golden model or an error."""
    log(f"== {label or engine}: {len(inputs)} digits on {simulator}")
    outputs, stats = simulate(engine, image, inputs, simulator=simulator, queue_depth=QUEUE_DEPTH)
    expected = get_engine(engine).golden(image, inputs)
    if not np.array_equal(outputs, expected):
        sample, column = np.argwhere(outputs != expected)[0]
        raise EiexError(f"{engine} on {simulator}: output {column} of digit {sample} is {outputs[sample, column]}, "
                        f"the golden model says {expected[sample, column]}")
    stats = stats.as_dict()
    _save_npy(folder / "x.npy", inputs)
    _save_npy(folder / "y.npy", outputs)
    (folder / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return {"outputs": outputs, "stats": stats}


def _run_uart(engine: str, image, inputs, labels, sim_outputs, folder: Path, log) -> dict:
    """The inputs through the link top (engine, host link, UART; image preloaded) under Verilator,
    driven by eiex.driver over the simulated UART pins: outputs equal to ``sim_outputs`` or an error."""
    from eiex.driver import Device
    from eiex.flows.run import run_over_link, simulated_link
    from eiex.hw.uart import BAUD_DEFAULT
    from eiex.sim.testbenches.verilator_link import VerilatorTransport

    log(f"== {engine}: {len(inputs)} digits over the UART (link top on verilator)")
    link = simulated_link(engine, image, preload=True, queue_depth=QUEUE_DEPTH)
    with Device(VerilatorTransport(link)) as device:
        outputs, report = run_over_link(engine, image, inputs, device, baud=BAUD_DEFAULT, labels=labels, log=log)
    if not np.array_equal(outputs, sim_outputs):
        raise EiexError(f"{engine}: the outputs over the UART differ from the engine's own simulation")
    (folder / "uart.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _amaranth_speed(engine: str, image, inputs) -> dict:
    """Simulated cycles per second of Amaranth's simulator on the first digits, memories loaded
    through the load interface as on Verilator."""
    _, stats = simulate(engine, image, inputs, simulator="amaranth", queue_depth=QUEUE_DEPTH)
    return {"sim_cycles": stats.sim_cycles, "sim_seconds": stats.sim_seconds,
            "cycles_per_second": stats.cycles_per_second, "digits": len(inputs)}


def _train(folder: Path, models, seed: int, log):
    """Compress ``models`` and binarize the BNN MLP and the conv BNN into ``folder``: (compressed
    results, BNN result, conv BNN result)."""
    from eiex.sw.binarize import pipeline as binarize
    from eiex.sw.compress import pipeline as compress

    compressed = {}
    for name in models:
        log(f"== compressing {name} on MNIST-5k")
        compressed[name] = compress.compress(name, "mnist5k", seed=seed, log=log)
        (folder / name).mkdir()
        compress.write_outputs(compressed[name], folder / name)
    log("== binarizing the BNN MLP on MNIST-5k")
    bnn = binarize.binarize("bnn-mlp", "mnist5k", seed=seed, log=log)
    binarize.write_outputs(bnn, folder / "bnn")
    log("== binarizing the conv BNN (bnn-cnv) on MNIST-5k")
    cnv = binarize.binarize("bnn-cnv", "mnist5k", seed=seed, log=log)
    binarize.write_outputs(cnv, folder / "cnv")
    return compressed, bnn, cnv


def _export(folder: Path, bnn, cnv, log) -> dict:
    """The engines' images in every file format and their Verilog: ``{"eie", "xnor", "xnor-cnv"}``."""
    from eiex.hw.xnor.memory_map import engine_for
    from eiex.hw.xnor.verilog import to_verilog
    from eiex.sim.benchmarks.cnv import folding_overrides
    from eiex.sw.images.eie import files as eie_files
    from eiex.sw.images.eie.export import export_model_folder
    from eiex.sw.images.xnor import files as xnor_files
    from eiex.sw.images.xnor.export import image_from_folded

    log("== exporting images (every format) and Verilog")
    images = {"eie": export_model_folder(folder / "lenet300", EIE_PES, balance=True),
              "xnor": image_from_folded(bnn.arrays, source="the binarized MLP"),
              "xnor-cnv": image_from_folded(cnv.arrays, source="the conv BNN", **folding_overrides(CNV_FOLDING))}
    eie_files.write_image(images["eie"], folder / "lenet300" / "image", formats=FORMATS, huffman_max_len=16)
    xnor_files.write_image(images["xnor"], folder / "bnn" / "image", formats=FORMATS)
    xnor_files.write_image(images["xnor-cnv"], folder / "cnv" / "image", formats=FORMATS)
    (folder / "verilog").mkdir()
    for name in ("eie", "xnor"):
        engine = get_engine(name)
        (folder / "verilog" / f"{engine.top}.v").write_text(engine.to_verilog(engine.hardware(images[name],
                                                                                                QUEUE_DEPTH)))
    (folder / "verilog" / "xnor_cnv_engine.v").write_text(to_verilog(engine_for(images["xnor-cnv"]),
                                                                      name="xnor_cnv_engine"))
    return images


def _simulate_all(folder: Path, images: dict, inputs: dict, labels, simulator: str, log) -> dict:
    """Every digit on ``simulator`` on each engine; the first few of the EIE engine and the BNN MLP
    over the UART and on Amaranth."""
    runs = {name: _run(name.split("-")[0], images[name], inputs[name], folder / "sim" / name, simulator, log, name)
            for name in images}
    batch, linked = slice(UART_DIGITS), ("eie", "xnor")
    uart = {name: _run_uart(name, images[name], inputs[name][batch], labels[batch], runs[name]["outputs"][batch],
                            folder / "sim" / name, log) for name in linked}
    log(f"== timing Amaranth's simulator on {AMARANTH_DIGITS} digits of the EIE engine and the BNN MLP")
    amaranth = {name: _amaranth_speed(name, images[name], inputs[name][:AMARANTH_DIGITS]) for name in linked}
    return {"runs": runs, "uart": uart, "amaranth": amaranth}


def run_demo(out, *, quick: bool = False, seed: int = 0, force: bool = False, simulator: str = "verilator",
             log=print) -> dict:
    """Run the demo into ``out``; returns the summary (also written as ``summary.json`` / ``summary.md``)."""
    from eiex.hw.eie import golden as eie_golden
    from eiex.hw.xnor import golden as xnor_golden
    from eiex.sw.data import load_dataset

    check_output_dir(out, force)
    test = load_dataset("mnist5k").test
    pick = slice(None, None, len(test) // QUICK_DIGITS if quick else 1)  # the split is sorted by class
    raw, labels = test.images[pick].reshape(-1, test.images[0].size), test.labels[pick]
    models = ["lenet300"] if quick else ["lenet300", "lenet5"]
    with atomic_output_dir(out, force) as folder:
        compressed, bnn, cnv = _train(folder, models, seed, log)
        images = _export(folder, bnn, cnv, log)
        inputs = {"eie": eie_golden.quantize_input(images["eie"], raw),
                  **{name: xnor_golden.binarize_input(images[name], raw) for name in ("xnor", "xnor-cnv")}}
        runs = _simulate_all(folder, images, inputs, labels, simulator, log)
        summary = _summary(compressed["lenet300"], bnn, cnv, images, inputs, raw, labels, runs, simulator)
        (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (folder / "summary.md").write_text(summary_table(summary, out) + "\n")
    return summary


def _binarized_summary(model_name: str, result, image, inputs, raw, labels, run: dict) -> dict:
    """A binarized network's column: accuracy at every level, its folding and its engine's cycles."""
    from eiex.hw.xnor import golden as xnor_golden
    from eiex.hw.xnor.engine import engine_lanes
    from eiex.hw.xnor.memory_map import engine_for
    from eiex.sw.train import predict

    def accuracy(outputs):
        return float(np.mean(outputs.argmax(1) == labels))

    raw_tensor = torch.from_numpy(raw.astype(np.float32))
    float_predictions, torch_predictions = (predict(model, raw_tensor).numpy()
                                            for model in (result.float_model, result.model))
    stats = run["stats"]
    return {
        "model": model_name, "layers": result.report["layers"],
        "folding": [[layer.pe, layer.simd] for layer in image.layers if layer.kind != "pool"],
        "lanes": engine_lanes(engine_for(image)),
        "float_accuracy": float(np.mean(float_predictions == labels)),
        "torch_binary_accuracy": float(np.mean(torch_predictions == labels)),
        # the class is the argmax of the scores scale * y + bias (xnor-image.md section 6)
        "binary_accuracy": accuracy(xnor_golden.scores(image, xnor_golden.run(image, inputs))),
        "rtl_accuracy": accuracy(xnor_golden.scores(image, run["outputs"])),
        "weight_compression_ratio": 32.0,  # float32 weights to 1 bit
        "interval": stats["interval"], "ideal_interval": stats["ideal_interval"],
        "latency": stats["cycles"][0],  # the first image, through an empty pipeline
        "simulator_cycles_per_second": stats["cycles_per_second"],
    }


def _summary(lenet300, bnn, cnv, images: dict, inputs: dict, raw, labels, runs: dict, simulator: str) -> dict:
    """The demo's figures: accuracy at every level, compression, cycles and simulator speeds."""
    from eiex.hw.eie import golden as eie_golden
    from eiex.hw.eie.cycles import pipeline_latency
    from eiex.sw.images.eie.export import float_forward, layers_from_npz

    eie_image = images["eie"]
    eie, amaranth = runs["runs"]["eie"], runs["amaranth"]

    def float_accuracy(arrays):
        layers = layers_from_npz(arrays, "lenet300")
        return float(np.mean(float_forward(layers, raw, lenet300.report["input"]).argmax(1) == labels))

    def accuracy(outputs):
        return float(np.mean(outputs.argmax(1) == labels))

    per_digit = eie["stats"]["samples"]
    compute = np.array([s["compute_cycles"] for s in per_digit], dtype=float)
    ideal = np.array([s["ideal_cycles"] for s in per_digit], dtype=float)
    summary = {
        "digits": len(labels),
        "simulator": simulator,
        "eie": {
            "model": "lenet300", "pes": EIE_PES, "queue_depth": QUEUE_DEPTH,
            "dense_accuracy": float_accuracy(lenet300.dense),
            "compressed_float_accuracy": float_accuracy(lenet300.compressed),
            "fixed_point_accuracy": accuracy(eie_golden.run(eie_image, inputs["eie"])),
            "rtl_accuracy": accuracy(eie["outputs"]),
            "compression_ratio": lenet300.report["compression_ratio"],
            "mean_cycles": float(np.mean([s["cycles"] for s in per_digit])),
            "mean_compute_cycles": float(compute.mean()), "mean_ideal_cycles": float(ideal.mean()),
            "median_compute_over_ideal": float(np.median(compute / ideal)),
            "pipeline_latency": pipeline_latency(eie_image, get_engine("eie").hardware(eie_image, QUEUE_DEPTH)),
            "simulator_cycles_per_second": eie["stats"]["cycles_per_second"],
            "amaranth_cycles_per_second": amaranth["eie"]["cycles_per_second"],
        },
        "xnor": {**_binarized_summary("bnn-mlp", bnn, images["xnor"], inputs["xnor"], raw, labels,
                                      runs["runs"]["xnor"]),
                 "amaranth_cycles_per_second": amaranth["xnor"]["cycles_per_second"]},
        "xnor_cnv": _binarized_summary("bnn-cnv", cnv, images["xnor-cnv"], inputs["xnor-cnv"], raw, labels,
                                       runs["runs"]["xnor-cnv"]),
        "amaranth": amaranth,
        "uart": runs["uart"],
        "seconds": {f"{name}_sim": run["stats"]["sim_seconds"] for name, run in runs["runs"].items()},
    }
    for engine in ("eie", "xnor"):
        column = summary[engine]
        column["speedup_vs_amaranth"] = column["simulator_cycles_per_second"] / column["amaranth_cycles_per_second"]
    return summary


def _uart_rows(uart: dict) -> list[tuple[str, str, str, str]]:
    """Throughput over the host link beside the engine's own, as the board would run them."""
    def link(r):
        return (f"{r['link_inferences_per_s']:,.0f}/s at {r['baud'] / 1e6:g} Mbaud "
                f"({r['wire_bytes_per_inference']:,.0f} bytes each), accuracy {r['accuracy']:.2%}")

    def engine(r):
        return (f"{r['engine_inferences_per_s']:,.0f}/s at {r['clock_hz'] / 1e6:g} MHz "
                f"({r['engine_cycles_per_inference']:,.0f} cycles each, counted by the device)")

    n = uart["eie"]["inputs"]
    return [(f"{n} digits over the UART (link top on verilator), link-limited", link(uart["eie"]), link(uart["xnor"]),
             "not run"),
            ("device-limited, same run (the engine fed a byte a cycle from the link's buffer)", engine(uart["eie"]),
             engine(uart["xnor"]), "not run")]


def _binarized_cells(x: dict, amaranth: bool) -> dict:
    """The rows of a binarized network's column."""
    speed = f"{x['simulator_cycles_per_second']:,.0f} cycles/s"
    return {
        "float": f"{x['float_accuracy']:.2%} (float twin)",
        "binarized": f"{x['torch_binary_accuracy']:.2%}",
        "golden": f"{x['binary_accuracy']:.2%} (folded integer)",
        "rtl": f"{x['rtl_accuracy']:.2%}",
        "weights": f"{x['weight_compression_ratio']:.0f}x smaller (1 bit)",
        "cycles": f"one result every {x['interval']:,} cycles (ideal {x['ideal_interval']:,}), latency "
                  f"{x['latency']:,}; {x['lanes']:,} lanes",
        "speed": f"{speed}, {x['speedup_vs_amaranth']:.0f}x Amaranth" if amaranth else speed,
    }


def summary_table(summary: dict, out) -> str:
    """The demo's one table (Markdown): one column per engine and network."""
    e, sim = summary["eie"], summary["simulator"]
    x, c = _binarized_cells(summary["xnor"], True), _binarized_cells(summary["xnor_cnv"], False)
    mlp = "-".join(map(str, summary["xnor"]["layers"]))
    rows = [
        ("", f"EIE, LeNet-300-100, {e['pes']} PEs", f"XNOR, BNN {mlp}",
         "XNOR, conv BNN (bnn-cnv: conv 32, 32, pool, 64, 64, pool, fc 256, 10)"),
        ("accuracy, PyTorch float", f"{e['dense_accuracy']:.2%} (dense)", x["float"], c["float"]),
        ("accuracy, PyTorch compressed / binarized", f"{e['compressed_float_accuracy']:.2%}", x["binarized"],
         c["binarized"]),
        ("accuracy, golden model", f"{e['fixed_point_accuracy']:.2%} (fixed point)", x["golden"], c["golden"]),
        (f"accuracy, RTL on {sim}", f"{e['rtl_accuracy']:.2%}", x["rtl"], c["rtl"]),
        ("weights", f"{e['compression_ratio']:.1f}x smaller (pruned, shared, Huffman)", x["weights"], c["weights"]),
        ("cycles per inference", f"{e['mean_compute_cycles']:.0f} compute (ideal {e['mean_ideal_cycles']:.0f}), "
         f"{e['mean_cycles']:.0f} with input and output", x["cycles"], c["cycles"]),
        (f"{sim} speed", f"{e['simulator_cycles_per_second']:,.0f} cycles/s, {e['speedup_vs_amaranth']:.0f}x Amaranth",
         x["speed"], c["speed"]),
        *_uart_rows(summary["uart"]),
        ("outputs", f"{out}/lenet300/, sim/eie/", f"{out}/bnn/, sim/xnor/", f"{out}/cnv/, sim/xnor-cnv/"),
    ]
    lines = [f"| {' | '.join(row)} |" for row in rows]
    lines.insert(1, "|---|---|---|---|")
    return "\n".join(lines) + (f"\n\n{summary['digits']} held-out MNIST-5k digits; every RTL output equals the golden "
                               f"model's, on the engines and over the UART. Images in <model>/image/ (hex, bin, coe, "
                               f"mif, ihex), Verilog in {out}/verilog/.")
