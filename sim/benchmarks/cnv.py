"""The XNOR engine on a CNV-shaped network (issue 15): interval against the ideal on Verilator and
Yosys resources per folding.

The network has ``bnn-cnv``'s shape (:data:`CNV_INPUT`, :data:`CNV_PLAN`) with random +1/-1
weights and thresholds (the timing and the resources do not depend on the values). Two foldings,
FINN-style (``S`` divides ``C`` wherever it can, so the patch and map buffers need no shifting
gearbox): :data:`FOLDINGS` ``"A"`` one image every 20,736 cycles, ``"B"`` four times faster.
Per folding: the steady interval on Verilator over a few images beside ``ideal_interval`` (spec
section 7) and the cycle model (a difference is an error), and Yosys' LUTs per lane for ECP5.
"""

from __future__ import annotations

import math

import numpy as np

#: ``bnn-cnv``'s shape: a 28x28 grey image, then (kind, M, k) / (kind, p) / (kind, M) per layer
CNV_INPUT = (28, 28, 1)
CNV_PLAN = (("conv", 32, 3), ("conv", 32, 3), ("pool", 2), ("conv", 64, 3), ("conv", 64, 3), ("pool", 2),
            ("hidden", 256), ("output", 10))
#: (P, S) per layer (None for a pool)
FOLDINGS = {
    "A": [(4, 9), (8, 32), None, (4, 32), (4, 32), None, (4, 32), (1, 32)],
    "B": [(8, 9), (32, 32), None, (16, 32), (16, 32), None, (16, 32), (2, 32)],
}
QUICK_IMAGES, FULL_IMAGES = 4, 8


def folding_overrides(name: str) -> dict:
    """``{"pe": [...], "simd": [...]}`` of a folding, per layer with weights (pools skipped), as
    :func:`eiex.sw.images.xnor.export.image_from_folded` and ``eiex export xnor --pe/--simd`` take them."""
    folds = [fold for fold in FOLDINGS[name] if fold is not None]
    return {"pe": [p for p, _ in folds], "simd": [s for _, s in folds]}


def cnv_image(folding, seed: int = 0):
    """An XNOR image of the CNV shape folded as ``folding``, random weights and thresholds in
    ``[0, K + 1]``."""
    from eiex.sw.images.xnor.image import XnorConvLayer, XnorImage, XnorLayer, XnorPoolLayer, signed_bits

    rng = np.random.default_rng(seed)
    shape, layers = CNV_INPUT, []
    for l, ((kind, *args), fold) in enumerate(zip(CNV_PLAN, folding)):
        name = f"{kind}{l}"
        if kind == "pool":
            layer = XnorPoolLayer(name, shape, args[0])
        else:
            m = args[0]
            k = args[1] * args[1] * shape[2] if kind == "conv" else math.prod(shape)
            weights = np.where(rng.random((m, k)) < 0.5, -1, 1).astype(np.int8)
            thresholds = rng.integers(0, k + 2, size=m) if kind != "output" else None
            bits = signed_bits([k + 1]) if thresholds is not None else 2
            if kind == "conv":
                layer = XnorConvLayer(name, shape, m, args[1], *fold, bits, weights, thresholds)
            else:
                layer = XnorLayer(name, k, m, *fold, kind, bits, weights, thresholds)
        shape = getattr(layer, "out_shape", (1, 1, layer.output_size))
        layers.append(layer)
    m = CNV_PLAN[-1][1]
    return XnorImage(layers, 128.0, np.ones(m), np.zeros(m), input_shape=CNV_INPUT)


def cnv_engine(quick: bool, log=None, synth_target: str | None = "ecp5") -> dict:
    """Per folding: the interval on Verilator (``ratio`` = measured / ideal) and, with
    ``synth_target``, the whole engine's LUTs per lane from Yosys. ``xnor_cnv_interval_ratio`` is the
    larger ratio of the two foldings, ``xnor_cnv_luts_per_lane_engine_ecp5`` the larger LUTs per lane."""
    from eiex.hw.xnor.memory_map import engine_for
    from eiex.sim.benchmarks.suite import xnor_interval
    from eiex.sim.tools.synth import xnor_resources

    log = log or (lambda message: None)
    rows = []
    for name, folding in FOLDINGS.items():
        image = cnv_image(folding)
        images = QUICK_IMAGES if quick else FULL_IMAGES
        log(f"== XNOR CNV folding {name}: interval on Verilator, {images} images")
        row = {"folding_name": name, **xnor_interval(image, images)}
        if synth_target:
            log(f"   Yosys: XNOR CNV engine, folding {name}, on {synth_target}")
            r = xnor_resources(engine_for(image), synth_target)
            row["resources"] = {key: r[key] for key in ("target", "luts", "ffs", "bram", "lanes", "luts_per_lane")}
        rows.append(row)
    return {"xnor_cnv_interval_ratio": max(r["ratio"] for r in rows),
            "xnor_cnv_luts_per_lane_engine_ecp5": (max(r["resources"]["luts_per_lane"] for r in rows)
                                                   if synth_target == "ecp5" else None),
            "input": list(CNV_INPUT), "plan": [list(step) for step in CNV_PLAN], "rows": rows}
