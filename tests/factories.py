"""Shared test factories: random EIE and XNOR images and inputs, and a brute-force XNOR reference."""

import numpy as np

from eiex.sw.images.eie.encode import IntLayer, build_image
from eiex.sw.images.eie.image import EngineParams
from eiex.sw.images.xnor.image import XnorImage, XnorLayer


def random_eie_image(params, sizes, density, seed, relu=(True, False), weight_frac=3, uneven=False,
                 empty_cols=0, gaps=False, full_range=False):
    """Random integer layers: ``density`` of non-zero codes; ``uneven``: PE 0's rows are dense,
    the rest sparse; ``empty_cols`` zero columns per layer; ``gaps``: a few non-zeros per column far
    apart (many fillers); ``full_range``: codebook and biases span their whole widths."""
    rng = np.random.default_rng(seed)
    layers = []
    for l, (rows, cols) in enumerate(zip(sizes[1:], sizes[:-1])):
        p_nz = np.full((rows, 1), density)
        if uneven:
            p_nz[::params.n_pe] = min(1.0, 4 * density)
            p_nz[np.arange(rows) % params.n_pe != 0] = density / 4
        codes = (rng.random((rows, cols)) < p_nz) * rng.integers(1, params.codebook_size, (rows, cols))
        if gaps:
            codes[:] = 0
            for c in range(cols):
                for r in rng.choice(rows, size=min(rows, 2), replace=False):
                    codes[r, c] = rng.integers(1, params.codebook_size)
        if empty_cols:
            codes[:, rng.choice(cols, size=min(cols, empty_cols), replace=False)] = 0
        w_max = 1 << (params.weight_bits - 1) if full_range else min(40, 1 << (params.weight_bits - 1))
        codebook = np.r_[0, rng.integers(-w_max, w_max, params.codebook_size - 1)]
        b_max = 1 << (params.bias_bits - 1) if full_range else min(1000, 1 << (params.bias_bits - 1))
        layers.append(IntLayer(codes, codebook, rng.integers(-b_max, b_max, rows),
                               relu=relu[l % len(relu)], weight_frac=weight_frac))
    return build_image(layers, params)


def random_inputs(params, n, samples, seed, zeros=0.4):
    rng = np.random.default_rng(seed + 1000)
    lo, hi = params.act_range()
    return rng.integers(lo, hi + 1, (samples, n)) * (rng.random((samples, n)) >= zeros)


def P(n_pe, idx_bits=3, rel_bits=2, act_bits=10, act_frac=3, weight_bits=8, bias_bits=16, epw=3):
    return EngineParams(n_pe=n_pe, idx_bits=idx_bits, rel_bits=rel_bits, act_bits=act_bits,
                        act_frac=act_frac, weight_bits=weight_bits, bias_bits=bias_bits, ptr_bits=12,
                        entries_per_word=epw)


def brute_force(image, bits):
    """Spec section 5 row by row: count matching columns, then threshold or 2 * acc - K."""
    x = np.asarray(bits)
    for layer in image.layers:
        w = (np.asarray(layer.weights) > 0).astype(int)
        acc = np.array([[sum(int(xi == wi) for xi, wi in zip(row, w_r)) for w_r in w] for row in x])
        x = (acc >= layer.thresholds).astype(int) if layer.kind == "hidden" else 2 * acc - layer.in_features
    return x


def random_xnor_image(sizes, folds, seed):
    """Random ±1 weights and thresholds around K / 2, some beyond 0 and K (always / never fire)."""
    rng = np.random.default_rng(seed)
    layers = []
    for l, ((k, m), (p, s)) in enumerate(zip(zip(sizes[:-1], sizes[1:]), folds)):
        output = l == len(folds) - 1
        thresholds = None if output else rng.integers(-2, k + 3, m)
        layers.append(XnorLayer(f"fc{l + 1}", k, m, p, s, "output" if output else "hidden", (k + 3).bit_length() + 1,
                                rng.choice([-1, 1], (m, k)), thresholds))
    return XnorImage(layers, 128.0, np.ones(sizes[-1]), np.zeros(sizes[-1]))


def tiny_xnor_image(seed=0):
    """An XNOR MLP 20-7-5, folds (3, 8) and (5, 7): the host-link tests' network."""
    return random_xnor_image([20, 7, 5], [(3, 8), (5, 7)], seed)


def tiny_eie_image(seed=0):
    """A 2-PE EIE network 9-6-3: half the weights non-zero, 10-bit activations, ReLU after the first layer."""
    params = EngineParams(n_pe=2, idx_bits=3, rel_bits=2, act_bits=10, act_frac=3, weight_bits=8, bias_bits=16,
                          ptr_bits=12, entries_per_word=3)
    rng = np.random.default_rng(seed)
    layers = []
    for l, (rows, cols) in enumerate([(6, 9), (3, 6)]):
        codes = (rng.random((rows, cols)) < 0.5) * rng.integers(1, params.codebook_size, (rows, cols))
        layers.append(IntLayer(codes, np.r_[0, rng.integers(-40, 40, params.codebook_size - 1)],
                               rng.integers(-1000, 1000, rows), relu=l == 0, weight_frac=3))
    return build_image(layers, params)


#: XNOR networks with more PEs than rows or more lanes than columns (spec section 4 padding): sizes, (P, S) per layer
PADDING_XNOR_CASES = [
    ([20, 3, 5], [(8, 4), (2, 3)]),  # P > M in a hidden layer: PEs 3 .. 7 padding, NF = 1
    ([20, 7, 3], [(3, 8), (8, 7)]),  # P > M in the output layer: the scores of PEs 3 .. 7 dropped
    ([5, 7, 3], [(3, 8), (2, 3)]),  # S > K in the first layer: input lanes 5 .. 7 ignored, SF = 1
    ([20, 3, 4], [(4, 8), (2, 8)]),  # P > M, then S > K in the next layer (3 bits in an 8-lane word)
    ([3, 2, 2], [(5, 9), (7, 6)]),  # both in every layer: one step a layer
    ([64, 10, 10], [(16, 16), (16, 16)]),  # one P and S for every layer (`--pe 16,16 --simd 16,16`)
    ([9, 12, 5], [(5, 3), (7, 16)]),  # P > M and S > K in the output layer after padding rows (12 % 5)
]
