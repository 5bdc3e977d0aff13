"""Tiny images the host-link tests share: an XNOR MLP 20-7-5 and a 2-PE EIE network 9-6-3."""

import numpy as np

from eiex.sw.eie_encode import IntLayer, build_image
from eiex.sw.eie_image import EngineParams
from eiex.sw.xnor_image import XnorImage, XnorLayer


def xnor_image(seed=0):
    """Random ±1 weights; thresholds around K / 2, some beyond 0 and K (always / never fire)."""
    rng = np.random.default_rng(seed)
    sizes, folds = [20, 7, 5], [(3, 8), (5, 7)]
    layers = []
    for l, ((k, m), (p, s)) in enumerate(zip(zip(sizes[:-1], sizes[1:]), folds)):
        output = l == len(folds) - 1
        layers.append(XnorLayer(f"fc{l + 1}", k, m, p, s, "output" if output else "hidden", (k + 3).bit_length() + 1,
                                rng.choice([-1, 1], (m, k)), None if output else rng.integers(-2, k + 3, m)))
    return XnorImage(layers, 128.0, np.ones(sizes[-1]), np.zeros(sizes[-1]))


def eie_image(seed=0):
    """Half the weights non-zero, 10-bit activations, ReLU after the first layer."""
    params = EngineParams(n_pe=2, idx_bits=3, rel_bits=2, act_bits=10, act_frac=3, weight_bits=8, bias_bits=16,
                          ptr_bits=12, entries_per_word=3)
    rng = np.random.default_rng(seed)
    layers = []
    for l, (rows, cols) in enumerate([(6, 9), (3, 6)]):
        codes = (rng.random((rows, cols)) < 0.5) * rng.integers(1, params.codebook_size, (rows, cols))
        layers.append(IntLayer(codes, np.r_[0, rng.integers(-40, 40, params.codebook_size - 1)],
                               rng.integers(-1000, 1000, rows), relu=l == 0, weight_frac=3))
    return build_image(layers, params)
