"""Cycles per result of each engine, from its cycle model, for the throughput a clock gives.

A build report turns these into results per second (Fmax / cycles). Both figures come from the
cycle models, which equal the RTL cycle for cycle on every test.
"""

from __future__ import annotations

import numpy as np

from eiex.errors import EiexError

#: held-out MNIST-5k digits the EIE figure averages over when no inputs are given (every tenth)
EIE_DIGITS = 100


def eie_cycles(image, hw, inputs: np.ndarray | None = None) -> dict:
    """Mean cycles per inference of ``image`` on the engine ``hw``, input transfer to last output.

    ``inputs`` are engine-format integers; without them a 784-input image with an input conversion
    runs :data:`EIE_DIGITS` held-out MNIST-5k digits (the engine's work depends on the input's
    non-zeros). Returns ``{"cycles", "unit", "what", "compute_cycles", "ideal_cycles"}`` (the last
    two: the mean of the cycle model's compute cycles and of the spec's ideal, section 10)."""
    from eiex.hw.eie import golden
    from eiex.hw.eie.cycles import engine_cycles, ideal_cycles_batch

    if inputs is None:
        if image.inputs != 784 or image.input is None:
            raise EiexError("the EIE throughput needs --input X.npy: this image does not take 28x28 digits")
        from eiex.sw.data import load_dataset

        raw = load_dataset("mnist5k").test.images.reshape(-1, 784)
        inputs = golden.quantize_input(image, raw[::len(raw) // EIE_DIGITS][:EIE_DIGITS])
        what = f"mean over {len(inputs)} held-out MNIST-5k digits"
    else:
        inputs = golden.check_inputs(image, inputs)
        what = f"mean over {len(inputs)} given inputs"
    runs = [engine_cycles(image, a, hw) for a in inputs]
    return {"cycles": round(float(np.mean([r["cycles"] for r in runs])), 1), "unit": "inference",
            "what": f"{what}, cycle model, input transfer to last output",
            "compute_cycles": round(float(np.mean([r["compute_cycles"] for r in runs])), 1),
            "ideal_cycles": round(float(np.mean(ideal_cycles_batch(image, inputs))), 1)}


def xnor_cycles(layers) -> dict:
    """Cycles between images in a steady stream, and one image's latency, for the engine ``layers``."""
    from eiex.hw.xnor.cycles import pipeline_cycles, steady_interval

    return {"cycles": steady_interval(layers), "unit": "image",
            "what": "steady interval of a stream of images, cycle model",
            "latency_cycles": pipeline_cycles(layers, 1)["cycles"][0]}
