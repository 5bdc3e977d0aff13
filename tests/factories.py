"""Shared test factories: random EIE and XNOR images and inputs, and a brute-force XNOR reference."""

import math

import numpy as np

from eiex.sw.images.eie.encode import IntLayer, build_image
from eiex.sw.images.eie.image import EngineParams
from eiex.sw.images.xnor.image import XnorConvLayer, XnorImage, XnorLayer, XnorPoolLayer, signed_bits


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


def build_xnor_image(in_shape, plan, seed=0, thr_bits=8):
    """An image over an ``in_shape`` map from ``plan``: ``("conv", M, k, P, S)``, ``("pool", p)``,
    ``("hidden", M, P, S)``, ``("output", M, P, S)``; random +1/-1 weights and thresholds from -2
    to K + 2 (some never or always fire), ``thr_bits`` widened where they need it."""
    rng = np.random.default_rng(seed)
    shape, size, layers = tuple(in_shape), math.prod(in_shape), []
    for l, (kind, *args) in enumerate(plan):
        name = f"{kind}{l}"
        if kind == "pool":
            layer = XnorPoolLayer(name, shape, args[0])
        elif kind == "conv":
            m, k, p, s = args
            columns = k * k * shape[2]
            t = rng.integers(-2, columns + 3, m)
            layer = XnorConvLayer(name, shape, m, k, p, s, max(thr_bits, signed_bits(t)),
                                  rng.choice([-1, 1], (m, columns)), t)
        else:
            m, p, s = args
            t = rng.integers(-2, size + 3, m) if kind == "hidden" else None
            layer = XnorLayer(name, size, m, p, s, kind, max(thr_bits, signed_bits(t)) if kind == "hidden" else 2,
                              rng.choice([-1, 1], (m, size)), t)
        shape = getattr(layer, "out_shape", None)
        size = layer.output_size
        layers.append(layer)
    m = layers[-1].out_features
    return XnorImage(layers, 0.5, rng.normal(size=m), rng.normal(size=m), input_shape=in_shape)


#: version-2 XNOR networks (conv and pool layers): input shape and a plan for :func:`build_xnor_image`
XNOR_MAP_NETWORKS = {
    # k = 1, 2, 3, 5; C = 3 not a multiple of S; P = M and P = 1; padding PEs (P > M) and lanes (S > K);
    # pools with remainders (7 -> 3 by 2, 5 x 8 -> 1 x 2 by 3, 6 -> 2 by 3 exactly); a pool first; two convs
    "k1": ([5, 4, 3], [("conv", 4, 1, 4, 2), ("hidden", 6, 2, 7), ("output", 3, 1, 5)]),
    "k2_pool_remainder": ([8, 7, 3], [("conv", 5, 2, 1, 4), ("pool", 2), ("output", 4, 2, 16)]),
    "k3_p_is_m": ([7, 7, 3], [("conv", 6, 3, 6, 5), ("pool", 2), ("hidden", 5, 3, 10), ("output", 2, 2, 3)]),
    "k5": ([6, 7, 2], [("conv", 3, 5, 2, 8), ("output", 3, 3, 4)]),
    "padding_pes_and_lanes": ([4, 5, 2], [("conv", 3, 2, 5, 11), ("pool", 2), ("output", 2, 4, 9)]),
    "pool_first_5x8": ([5, 8, 2], [("pool", 3), ("conv", 3, 1, 2, 3), ("output", 2, 1, 2)]),
    "two_convs": ([8, 8, 1], [("conv", 4, 3, 2, 3), ("conv", 3, 2, 3, 7), ("pool", 3), ("output", 4, 4, 5)]),
    "pool_exact": ([6, 6, 1], [("pool", 3), ("output", 3, 2, 3)]),
}


def power_of_two_eie_image(params, sizes, density, seed, relu=(True, False), weight_frac=None):
    """Random layers whose codebooks are all 0 or signed powers of two (what ``mac="shift"`` runs):
    every layer's codebook holds, at shuffled codes, 0 at a non-zero code, +1, -1, the largest
    positive power ``2**(weight_bits - 2)`` and the most negative ``-2**(weight_bits - 1)``, then
    random ``+-2**k``."""
    rng = np.random.default_rng(seed)
    wb = params.weight_bits
    frac = wb - 2 if weight_frac is None else weight_frac  # the largest power is 1.0
    special = [0, 1, -1, 1 << (wb - 2), -(1 << (wb - 1))]
    layers = []
    for l, (rows, cols) in enumerate(zip(sizes[1:], sizes[:-1])):
        extra = (rng.choice([-1, 1], params.codebook_size) * (1 << rng.integers(0, wb - 1, params.codebook_size)))
        values = np.r_[special, extra][:params.codebook_size - 1]
        codebook = np.r_[0, rng.permutation(values)]
        codes = (rng.random((rows, cols)) < density) * rng.integers(1, params.codebook_size, (rows, cols))
        b_max = min(1000, 1 << (params.bias_bits - 1))
        layers.append(IntLayer(codes, codebook, rng.integers(-b_max, b_max, rows), relu=relu[l % len(relu)],
                               weight_frac=frac))
    return build_image(layers, params)


def run_eie_reloaded(hw, images, x) -> list[np.ndarray]:
    """Each EIE image loaded word by word (zeros included) through the load interface of one
    engine, one after the other without a reset, each then run on the inputs ``x``: the outputs
    per image."""
    from amaranth.sim import Simulator

    from eiex.hw.eie.engine import EieEngine
    from eiex.hw.eie.memory_map import load_writes

    dut = EieEngine(hw)
    results = []

    async def bench(ctx):
        ctx.set(dut.output.ready, 1)
        for image in images:
            for w in load_writes(image, hw):
                ctx.set(dut.load.payload, w)
                ctx.set(dut.load.valid, 1)
                await ctx.tick().until(dut.load.ready)
            ctx.set(dut.load.valid, 0)
            out = []
            for vec in x:
                for v in vec:
                    ctx.set(dut.input.payload, int(v))
                    ctx.set(dut.input.valid, 1)
                    await ctx.tick().until(dut.input.ready)
                ctx.set(dut.input.valid, 0)
                for _ in range(image.outputs):
                    (value,) = await ctx.tick().sample(dut.output.payload).until(dut.output.valid)
                    out.append(value)
            results.append(np.array(out).reshape(len(x), -1))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


def identity_eie_image(params, sizes, density, seed, relu=(True, False), weight_frac=3):
    """Random layers with identity codebooks (what ``mac="index"`` runs): ``codebook[v] = signed(v)``
    (``idx_bits`` two's complement) for every code, and codes drawn over the whole range
    ``0 .. 2**idx_bits - 1``; every layer uses the most negative code ``2**(idx_bits - 1)``, the
    largest positive ``2**(idx_bits - 1) - 1``, and ``-1`` (code ``2**idx_bits - 1``)."""
    rng = np.random.default_rng(seed)
    b = params.idx_bits
    v = np.arange(1 << b)
    identity = np.where(v >= 1 << (b - 1), v - (1 << b), v)  # written out, not the library's signed_codes
    layers = []
    for l, (rows, cols) in enumerate(zip(sizes[1:], sizes[:-1])):
        codes = (rng.random((rows, cols)) < density) * rng.integers(1, 1 << b, (rows, cols))
        special = [1 << (b - 1), (1 << (b - 1)) - 1, (1 << b) - 1]
        cells = rng.choice(rows * cols, size=len(special), replace=False)
        codes.flat[cells] = special
        b_max = min(1000, 1 << (params.bias_bits - 1))
        layers.append(IntLayer(codes, identity.copy(), rng.integers(-b_max, b_max, rows), relu=relu[l % len(relu)],
                               weight_frac=weight_frac))
    return build_image(layers, params)
