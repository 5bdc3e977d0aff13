"""XNOR images in memory (XNOR spec sections 3 to 7): packing checked by hand and against a literal
reading of the spec, round trips, the golden model against a per-row evaluation, the folding solver
against brute force, and every validation message."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eiex.hw.xnor import golden
from eiex.errors import EiexError
from eiex.sw.images.xnor.export import image_from_folded
from eiex.sw.images.xnor.folding import MAX_PADDED_OVERRIDE, choose_folding, default_target, solve_folding
from eiex.sw.images.xnor.image import (XnorImage, XnorLayer, pack_thresholds, pack_weights, signed_bits, unpack_thresholds,
                                unpack_weights)


def random_layer(rng, m, k, p, s, kind="hidden", thr_bits=6, name="fc1"):
    w = rng.choice(np.array([-1, 1], dtype=np.int8), (m, k))
    t = None
    if kind == "hidden":
        t = rng.integers(-(1 << (thr_bits - 1)), 1 << (thr_bits - 1), m)
    return XnorLayer(name=name, in_features=k, out_features=m, pe=p, simd=s, kind=kind,
                     thr_bits=thr_bits, weights=w, thresholds=t)


def random_image(seed, sizes, folding=None, thr_bits=6):
    """Random layers of ``sizes`` (K0, M0, M1, ...), each folded (P, S) by ``folding`` or at random."""
    rng = np.random.default_rng(seed)
    layers = []
    for l in range(len(sizes) - 1):
        k, m = sizes[l], sizes[l + 1]
        p, s = folding[l] if folding else (int(rng.integers(1, m + 1)), int(rng.integers(1, k + 1)))
        kind = "output" if l == len(sizes) - 2 else "hidden"
        layers.append(random_layer(rng, m, k, p, s, kind, thr_bits, name=f"fc{l + 1}"))
    m = sizes[-1]
    return XnorImage(layers, input_threshold=0.25, output_scale=rng.normal(size=m), output_bias=rng.normal(size=m))


# ---- packing (section 4)

HAND = np.array([[+1, -1, +1, +1, -1],
                 [-1, -1, +1, -1, +1],
                 [+1, +1, -1, -1, +1]], dtype=np.int8)


def test_packing_by_hand():
    # M = 3, K = 5, P = 2, S = 2: NF = 2, SF = 3; PE 0 holds rows 0, 2; PE 1 holds row 1 and padding row 3
    layer = XnorLayer("fc1", 5, 3, 2, 2, "hidden", 4, HAND, np.array([3, -2, 7]))
    assert (layer.nf, layer.sf) == (2, 3)
    assert pack_weights(layer) == [
        # row 0: (+,-) (+,+) (-,pad)   row 2: (+,+) (-,-) (+,pad)
        [0b01, 0b11, 0b00, 0b11, 0b00, 0b01],
        # row 1: (-,-) (+,-) (+,pad)   row 3 is padding
        [0b00, 0b01, 0b01, 0b00, 0b00, 0b00],
    ]
    # thresholds of rows 0, 2 on PE 0 and of row 1 (then padding, 0) on PE 1, 4-bit two's complement
    assert pack_thresholds(layer) == [[3, 7], [0b1110, 0]]


def test_packing_by_hand_more_pes_than_rows_and_lanes_than_columns():
    # M = 3, K = 5, P = 4, S = 7 (spec section 4 allows P > M and S > K): NF = SF = 1; PE p holds row p
    # in lanes 0 .. 4, lanes 5 and 6 are padding columns, PE 3 holds only padding row 3
    layer = XnorLayer("fc1", 5, 3, 4, 7, "hidden", 4, HAND, np.array([3, -2, 7]))
    assert (layer.nf, layer.sf) == (1, 1)
    # row 0: + - + + -   row 1: - - + - +   row 2: + + - - +   (bit i: column i)
    assert pack_weights(layer) == [[0b0001101], [0b0010100], [0b0010011], [0]]
    assert pack_thresholds(layer) == [[3], [0b1110], [7], [0]]
    assert np.array_equal(unpack_weights(pack_weights(layer), 3, 5, 4, 7), HAND)
    assert unpack_thresholds([[3], [0b1110], [7], [0b0101]], 3, 4, 4).tolist() == [3, -2, 7]  # padding: any value


def reference_weight_words(layer):
    """Section 4's table read literally, one bit at a time."""
    m, k, p_count, s = layer.out_features, layer.in_features, layer.pe, layer.simd
    nf_count, sf_count = math.ceil(m / p_count), math.ceil(k / s)
    memories = []
    for p in range(p_count):
        words = []
        for address in range(nf_count * sf_count):
            nf, sf = divmod(address, sf_count)
            word = 0
            for i in range(s):
                row, col = nf * p_count + p, sf * s + i
                if row < m and col < k and layer.weights[row][col] == 1:
                    word |= 1 << i
            words.append(word)
        memories.append(words)
    return memories


def reference_threshold_words(layer):
    p_count, nf_count, mask = layer.pe, layer.nf, (1 << layer.thr_bits) - 1
    return [[int(layer.thresholds[nf * p_count + p]) & mask if nf * p_count + p < layer.out_features else 0
             for nf in range(nf_count)] for p in range(p_count)]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), m=st.integers(1, 13), k=st.integers(1, 150), data=st.data(),
       thr_bits=st.sampled_from([2, 3, 7, 32, 63, 64]))
def test_pack_matches_spec_and_unpack_inverts(seed, m, k, data, thr_bits):
    # P > M and S > K too (spec section 4: whole PEs and lanes of padding); S > 64: wide words
    p = data.draw(st.one_of(st.integers(1, m), st.integers(m + 1, m + 5)), label="pe")
    s = data.draw(st.one_of(st.integers(1, min(k, 9)), st.integers(1, k), st.integers(k + 1, k + 70)), label="simd")
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, m, k, p, s, thr_bits=thr_bits)
    layer.thresholds[0] = -(1 << (thr_bits - 1))  # the extremes of the width
    layer.thresholds[-1] = (1 << (thr_bits - 1)) - 1
    words = pack_weights(layer)
    assert words == reference_weight_words(layer)
    assert all(type(w) is int and 0 <= w < 1 << s for ws in words for w in ws)
    assert np.array_equal(unpack_weights(words, m, k, p, s), layer.weights)
    t_words = pack_thresholds(layer)
    assert t_words == reference_threshold_words(layer)
    back = unpack_thresholds(t_words, m, p, thr_bits)
    assert back.dtype == np.int64 and np.array_equal(back, layer.thresholds)


def test_unpack_refuses_padding_bits_and_wrong_depths():
    layer = XnorLayer("fc1", 5, 3, 2, 2, "hidden", 4, HAND, np.array([3, -2, 7]))
    words = pack_weights(layer)
    column = [list(ws) for ws in words]
    column[0][2] |= 0b10  # column 5 of row 0
    with pytest.raises(EiexError, match=r"^l3.pe0.weights: padding bit 1 of word 2 is 1 \(row 0, column 5 of a 3 x 5 "
                                        r"layer\); padding bits must be 0$"):
        unpack_weights(column, 3, 5, 2, 2, layer_index=3)
    row = [list(ws) for ws in words]
    row[1][4] = 0b01  # padding row 3, column 2
    with pytest.raises(EiexError, match=r"^l0.pe1.weights: padding bit 0 of word 4 is 1 \(row 3, column 2 "):
        unpack_weights(row, 3, 5, 2, 2)
    with pytest.raises(EiexError, match=r"^l0.pe1.weights: 5 words, expected NF \* SF = 2 \* 3 = 6$"):
        unpack_weights([words[0], words[1][:5]], 3, 5, 2, 2)
    with pytest.raises(EiexError, match=r"^l0.pe0.weights: a word does not fit simd = 2 bits$"):
        unpack_weights([[4] + words[0][1:], words[1]], 3, 5, 2, 2)
    with pytest.raises(EiexError, match=r"^l0.pe0.thresholds: 1 words, expected NF = 2$"):
        unpack_thresholds([[3], [14, 0]], 3, 2, 4)
    # padding thresholds may hold any value
    assert unpack_thresholds([[3, 7], [14, 9]], 3, 2, 4).tolist() == [3, -2, 7]


def test_unpack_refuses_padding_bits_of_padding_pes_and_lanes():
    """P > M, S > K: a 1 in a PE that holds only padding rows, or in a lane beyond K, is refused."""
    words = pack_weights(XnorLayer("fc1", 5, 3, 4, 7, "hidden", 4, HAND, np.array([3, -2, 7])))
    pe = [list(ws) for ws in words]
    pe[3][0] = 0b100  # PE 3 holds only padding row 3
    with pytest.raises(EiexError, match=r"^l1.pe3.weights: padding bit 2 of word 0 is 1 \(row 3, column 2 of a 3 x 5 "
                                        r"layer\); padding bits must be 0$"):
        unpack_weights(pe, 3, 5, 4, 7, layer_index=1)
    lane = [list(ws) for ws in words]
    lane[1][0] |= 0b1000000  # lane 6 of row 1: a padding column
    with pytest.raises(EiexError, match=r"^l0.pe1.weights: padding bit 6 of word 0 is 1 \(row 1, column 6 "):
        unpack_weights(lane, 3, 5, 4, 7)
    with pytest.raises(EiexError, match=r"^layer 0: 3 weight memories, expected pe = 4$"):
        unpack_weights(words[:3], 3, 5, 4, 7)


def test_signed_bits():
    assert [signed_bits(v) for v in ([0], [1], [2], [-1], [-2], [-3], [127], [-128], [128], [0, 785])] == \
        [2, 2, 3, 2, 2, 3, 8, 8, 9, 11]
    assert signed_bits(np.array([-(2**63), 2**63 - 1])) == 64


# ---- golden model (sections 2, 5, 6, 7)

def reference_run(image, bits):
    """Section 5 read literally: per sample, per layer, per row, per column."""
    results = []
    for x in bits.tolist():
        for layer in image.layers:
            y = []
            for r in range(layer.out_features):
                acc = sum(1 for c in range(layer.in_features) if x[c] == (1 if layer.weights[r][c] == 1 else 0))
                if layer.kind == "hidden":
                    y.append(1 if acc >= layer.thresholds[r] else 0)
                else:
                    y.append(2 * acc - layer.in_features)
            x = y
        results.append(x)
    return np.array(results, dtype=np.int64)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), sizes=st.lists(st.integers(1, 11), min_size=2, max_size=4))
def test_golden_matches_per_row_evaluation(seed, sizes):
    image = random_image(seed, sizes, thr_bits=5)  # thresholds -16 .. 15: below 0 and above K too
    bits = np.random.default_rng(seed + 1).integers(0, 2, (6, sizes[0]))
    y = golden.run(image, bits)
    assert y.dtype == np.int64 and y.shape == (6, sizes[-1])
    assert np.array_equal(y, reference_run(image, bits))
    hidden = golden.run_layers(image, bits)[:-1]
    assert all(set(np.unique(h)) <= {0, 1} for h in hidden)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), sizes=st.lists(st.integers(1, 40), min_size=2, max_size=4))
def test_golden_on_unpacked_memories(seed, sizes):
    """Packing and unpacking every memory gives an image that computes the same outputs."""
    image = random_image(seed, sizes)
    layers = []
    for l, layer in enumerate(image.layers):
        m, k, p, s = layer.out_features, layer.in_features, layer.pe, layer.simd
        w = unpack_weights(pack_weights(layer), m, k, p, s, l)
        t = unpack_thresholds(pack_thresholds(layer), m, p, layer.thr_bits, l) if layer.kind == "hidden" else None
        layers.append(XnorLayer(layer.name, k, m, p, s, layer.kind, layer.thr_bits, w, t))
    back = XnorImage(layers, image.input_threshold, image.output_scale, image.output_bias)
    raw = np.random.default_rng(seed).normal(size=(20, sizes[0]))
    bits = golden.binarize_input(image, raw)
    assert np.array_equal(golden.run(back, bits), golden.run(image, bits))
    assert np.array_equal(golden.predict(back, raw), golden.predict(image, raw))


def test_input_scores_predict_and_interval():
    layer = XnorLayer("fc1", 3, 3, 1, 1, "output", 2, np.array([[1, 1, 1], [1, 1, 1], [-1, -1, -1]]))
    image = XnorImage([layer], input_threshold=0.5, output_scale=np.array([1.0, 1.0, 0.5]),
                      output_bias=np.array([0.0, 0.0, 2.0]))
    raw = np.array([[0.5, 0.49, 1.0], [0, 0, 0]])
    bits = golden.binarize_input(image, raw)
    assert bits.tolist() == [[1, 0, 1], [0, 0, 0]]  # >= threshold gives 1
    y = golden.run(image, bits)
    assert y.tolist() == [[1, 1, -1], [-3, -3, 3]]
    assert golden.scores(image, y).tolist() == [[1.0, 1.0, 1.5], [-3.0, -3.0, 3.5]]
    assert golden.predict(image, raw).tolist() == [2, 2]
    tie = XnorImage([layer], 0.5, np.array([1.0, 1.0, -1.0]), np.zeros(3))
    assert golden.predict(tie, raw[:1]).tolist() == [0]  # scores 1, 1, 1: the lowest index wins
    assert golden.ideal_interval(image) == 9
    assert golden.ideal_interval(random_image(0, (10, 7, 3), [(2, 4), (3, 3)])) == max(4 * 3, 1 * 3)
    with pytest.raises(EiexError, match=r"input bits must be shaped \(samples, 3\), not \(2, 4\)"):
        golden.run(image, np.zeros((2, 4), dtype=int))
    with pytest.raises(EiexError, match="input bits must be integers 0 or 1"):
        golden.run(image, np.full((1, 3), 2))
    with pytest.raises(EiexError, match="raw inputs contain NaN"):
        golden.binarize_input(image, np.array([np.nan, 0, 0]))


# ---- folding solver

def brute_force_folding(m, k, target):
    candidates = [(p * s, math.ceil(m / p) * p * math.ceil(k / s) * s - m * k, p, s)
                  for p in range(1, m + 1) for s in range(1, k + 1) if math.ceil(m / p) * math.ceil(k / s) <= target]
    best = min(candidates)
    return best[2], best[3]


@settings(max_examples=200, deadline=None)
@given(m=st.integers(1, 24), k=st.integers(1, 30), data=st.data())
def test_solver_matches_brute_force(m, k, data):
    target = data.draw(st.integers(1, m * k + 3))
    assert solve_folding([(m, k)], target) == [brute_force_folding(m, k, target)]


def test_solver_examples_and_errors():
    assert solve_folding([(256, 784), (256, 256), (10, 256)], 3136) == [(4, 16), (1, 22), (1, 1)]
    assert solve_folding([(7, 10)], 1) == [(7, 10)]
    assert solve_folding([(7, 10)], 1000) == [(1, 1)]
    for bad in (0, -3, 2.5, True):
        with pytest.raises(EiexError, match=f"target interval must be an integer of at least 1 cycle, not {bad!r}"):
            solve_folding([(7, 10)], bad)


@pytest.mark.parametrize("shapes", [[(256, 784), (256, 256), (10, 256)], [(7, 10), (3, 7)], [(1, 1)], [(100, 3)]])
def test_default_target_gives_the_largest_layer_at_most_64_lanes(shapes):
    target = default_target(shapes)
    m, k = max(shapes, key=lambda s: s[0] * s[1])
    best = min(math.ceil(m / p) * math.ceil(k / s) for p in range(1, m + 1) for s in range(1, k + 1) if p * s <= 64)
    assert target == best
    folding = choose_folding(shapes)
    assert folding == solve_folding(shapes, target)
    (p, s), = [f for f, shape in zip(folding, shapes) if shape == (m, k)][:1]
    assert p * s <= 64


def test_folding_overrides():
    shapes = [(256, 784), (10, 256)]
    assert choose_folding(shapes, pe=[8, 2], simd=[32, 4]) == [(8, 32), (2, 4)]
    # pe fixed: the smallest simd that meets the target; simd fixed: the smallest pe
    assert choose_folding(shapes, pe=[8, 1], target_interval=1000) == [(8, math.ceil(784 / (1000 // 32))), (1, 3)]
    assert choose_folding(shapes, simd=[16, 256], target_interval=1000) == [(13, 16), (1, 256)]
    with pytest.raises(EiexError, match="^pe gives 1 values for 2 layers$"):
        choose_folding(shapes, pe=[8])
    # above a layer's size (spec section 4: padding PEs and lanes), up to MAX_PADDED_OVERRIDE
    assert choose_folding(shapes, pe=[8, 16], simd=[32, 300]) == [(8, 32), (16, 300)]
    assert choose_folding(shapes, pe=[300, 16], target_interval=10) == [(300, 79), (16, 26)]  # NF = 1: SF <= 10
    assert choose_folding(shapes, simd=[1000, 512], target_interval=10) == [(26, 1000), (1, 512)]  # SF = 1
    assert choose_folding([(5000, 3)], pe=[5000], simd=[MAX_PADDED_OVERRIDE]) == [(5000, MAX_PADDED_OVERRIDE)]
    with pytest.raises(EiexError, match=r"^layer fc2: simd must be an integer from 1 to 4096 \(the larger of "
                                        r"in_features 256 and 4096\), not 4097$"):
        choose_folding(shapes, simd=[1, MAX_PADDED_OVERRIDE + 1])
    with pytest.raises(EiexError, match=r"^layer fc1: pe must be an integer from 1 to 5000 \(the larger of "
                                        r"out_features 5000 and 4096\), not 5001$"):
        choose_folding([(5000, 3)], pe=[5001])
    with pytest.raises(EiexError, match=r"^layer fc1: pe must be an integer from 1 to 4096 \(the larger of "
                                        r"out_features 256 and 4096\), not 0$"):
        choose_folding(shapes, pe=[0, 1])
    with pytest.raises(EiexError, match="^layer fc1: with pe 1, NF = 256 already exceeds the target interval 100; "):
        choose_folding(shapes, pe=[1, 1], target_interval=100)
    with pytest.raises(EiexError, match="^layer fc1: pe 1 and simd 1 take 200704 cycles, more than the target interval 10$"):
        choose_folding(shapes, pe=[1, 1], simd=[1, 1], target_interval=10)


# ---- exporter

def folded(seed=0, sizes=(10, 7, 3)):
    rng = np.random.default_rng(seed)
    arrays = {"scale": rng.random(sizes[-1]) + 0.5, "bias": rng.normal(size=sizes[-1]), "input_threshold": np.float64(0.3)}
    for l in range(len(sizes) - 1):
        arrays[f"w{l}"] = rng.choice(np.array([-1, 1], dtype=np.int8), (sizes[l + 1], sizes[l]))
        if l < len(sizes) - 2:
            arrays[f"t{l}"] = rng.integers(-5, sizes[l] + 6, sizes[l + 1])
    return arrays


def test_image_from_folded():
    arrays = folded()
    arrays["t0"][:3] = [-10**12, 10**12, 4]
    image = image_from_folded(arrays, pe=[7, 1], simd=[5, 7])
    fc1, fc2 = image.layers
    assert [l.to_json() for l in image.layers] == [
        {"name": "fc1", "in_features": 10, "out_features": 7, "pe": 7, "simd": 5, "kind": "hidden", "thr_bits": 5},
        {"name": "fc2", "in_features": 7, "out_features": 3, "pe": 1, "simd": 7, "kind": "output", "thr_bits": 2}]
    # clamped to [0, K + 1] = [0, 11]: the same function with thresholds that fit 5 bits
    assert fc1.thresholds[:3].tolist() == [0, 11, 4] and fc2.thresholds is None
    assert np.array_equal(fc1.weights, arrays["w0"]) and fc1.weights.dtype == np.int8
    assert image.input_threshold == 0.3 and np.array_equal(image.output_scale, arrays["scale"])
    unclamped = XnorLayer("fc1", 10, 7, 7, 5, "hidden", 64, arrays["w0"], arrays["t0"])
    raw_image = XnorImage([unclamped, fc2], 0.3, arrays["scale"], arrays["bias"])
    bits = np.array(list(itertools.product([0, 1], repeat=10)))
    assert np.array_equal(golden.run(image, bits), golden.run(raw_image, bits))
    # thr_bits is the smallest signed width, at least 2
    arrays["t0"][:] = 1
    assert image_from_folded(arrays).layers[0].thr_bits == 2
    # no folding given: default target
    image = image_from_folded(folded())
    assert [(l.pe, l.simd) for l in image.layers] == solve_folding([(7, 10), (3, 7)], default_target([(7, 10), (3, 7)]))
    single = {k: v for k, v in folded().items() if k in ("w0", "scale", "bias", "input_threshold")}
    single["w0"], single["scale"], single["bias"] = single["w0"][:3], np.ones(3), np.zeros(3)
    assert [l.kind for l in image_from_folded(single).layers] == ["output"]
    # one pe for every layer, above fc2's 3 rows (spec section 4): NF = 1, padding PEs 3 .. 7
    assert [(l.pe, l.nf) for l in image_from_folded(folded(), pe=[8, 8]).layers] == [(8, 1), (8, 1)]


def drop(key):
    return lambda a: a.pop(key)


def put(key, value):
    return lambda a: a.__setitem__(key, value)


def set_item(key, index, value):
    def change(a):
        a[key] = a[key].astype(np.float64) if isinstance(value, float) else a[key].copy()
        a[key][index] = value
    return change


FOLDED_ERRORS = [
    (lambda a: a.clear(), "^src holds no w0"),
    (drop("t0"), "^src lacks t0$"),
    (drop("scale"), "^src lacks scale$"),
    (drop("input_threshold"), "^src lacks input_threshold$"),
    (put("w3", np.ones((1, 1))), "^src: w3 is present but w2 is missing$"),
    (put("t1", np.ones(3, dtype=np.int64)), r"^src: t1 is present but the output layer w1 takes no thresholds \(expected t0 .. t0\)$"),
    (put("w0", np.ones(10)), r"^src: w0 has shape \(10,\); expected a non-empty \(out, in\) matrix$"),
    (put("w0", np.ones((7, 0))), r"^src: w0 has shape \(7, 0\)"),
    (set_item("w0", (2, 3), 0), "^src: w0 must hold only \\+1 and -1, found 0 at row 2, column 3$"),
    (set_item("w1", (0, 1), np.nan), "^src: w1 contains NaN or infinite values$"),
    (put("w0", np.ones((7, 10), dtype=bool)), "^src: w0 must hold real numbers, not bool$"),
    (put("w1", np.ones((3, 6))), "^src: w1 takes 6 inputs but w0 gives 7$"),
    (put("t0", np.ones(6, dtype=np.int64)), r"^src: t0 has shape \(6,\), w0 needs \(7,\)$"),
    (put("t0", np.ones(7)), "^src: t0 must hold integers, not float64$"),
    (put("scale", np.ones(4)), r"^src: scale has shape \(4,\), w1 needs \(3,\)$"),
    (set_item("bias", 1, np.inf), "^src: bias contains NaN or infinite values$"),
    (put("input_threshold", np.array(np.nan)), "^src: input_threshold contains NaN or infinite values$"),
    (put("input_threshold", np.zeros(2)), r"^src: input_threshold must be a scalar, not shape \(2,\)$"),
]


@pytest.mark.parametrize("change, message", FOLDED_ERRORS)
def test_folded_arrays_validated(change, message):
    arrays = folded()
    image_from_folded(arrays, source="src")  # sound before the change
    change(arrays)
    with pytest.raises(EiexError, match=message) as info:
        image_from_folded(arrays, source="src")
    assert "\n" not in str(info.value)


# ---- layer and image validation (one message each)

def layer_args(**changes):
    args = dict(name="fc1", in_features=5, out_features=3, pe=2, simd=2, kind="hidden", thr_bits=4,
                weights=HAND, thresholds=np.array([3, -2, 7]))
    return {**args, **changes}


LAYER_ERRORS = [
    (dict(name=""), "^layer name must be a non-empty string, not ''$"),
    (dict(in_features=0), "^layer fc1: in_features must be a positive integer, not 0$"),
    (dict(pe=2.0), "^layer fc1: pe must be a positive integer, not 2.0$"),
    (dict(simd=0), "^layer fc1: simd must be a positive integer, not 0$"),
    (dict(kind="input"), "^layer fc1: kind 'input' is not 'hidden' or 'output'$"),
    (dict(thr_bits=1), "^layer fc1: thr_bits must be an integer from 2 to 64, not 1$"),
    (dict(thr_bits=65), "^layer fc1: thr_bits must be an integer from 2 to 64, not 65$"),
    (dict(kind="output", thr_bits=0, thresholds=None), "^layer fc1: thr_bits must be an integer from 2 to 64, not 0$"),
    (dict(kind="output"), "^layer fc1: an output layer has no thresholds$"),
    (dict(thresholds=None), "^layer fc1: a hidden layer needs thresholds$"),
    (dict(weights=HAND.T), r"^layer fc1: weights have shape \(5, 3\), expected \(3, 5\) \(out_features, in_features\)$"),
    (dict(weights=HAND * 2), "^layer fc1: weights must be \\+1 or -1, found 2 at row 0, column 0$"),
    (dict(thresholds=np.array([3, -2])), r"^layer fc1: thresholds have shape \(2,\), expected \(3,\)$"),
    (dict(thresholds=np.array([3.0, 1.0, 2.0])), "^layer fc1: thresholds must be integers, not float64$"),
    (dict(thresholds=np.array([3, -9, 7])), r"^layer fc1: threshold -9 of row 1 does not fit thr_bits 4 \(signed, -8 .. 7\)$"),
]


@pytest.mark.parametrize("changes, message", LAYER_ERRORS)
def test_layer_validated(changes, message):
    with pytest.raises(EiexError, match=message):
        XnorLayer(**layer_args(**changes))


@pytest.mark.parametrize("pe, simd", [(4, 2), (2, 6), (3, 5), (64, 100)])
def test_more_pes_than_rows_and_lanes_than_columns_are_valid(pe, simd):
    """Spec section 4 allows P > M and S > K (NF or SF is then 1); they used to be refused."""
    layer = XnorLayer(**layer_args(pe=pe, simd=simd))
    assert (layer.nf, layer.sf) == (math.ceil(3 / pe), math.ceil(5 / simd))
    assert layer.to_json()["pe"] == pe and layer.to_json()["simd"] == simd


def test_image_validated():
    hidden = XnorLayer(**layer_args())
    output = XnorLayer(**layer_args(name="fc2", in_features=3, out_features=2, pe=1, simd=3, kind="output", thr_bits=2,
                                    weights=HAND[:2, :3], thresholds=None))
    ok = dict(layers=[hidden, output], input_threshold=0.5, output_scale=np.ones(2), output_bias=np.zeros(2))
    XnorImage(**ok)
    cases = [
        (dict(layers=[]), "^an XNOR image needs at least one layer$"),
        (dict(layers=[hidden, hidden, output]), "^two layers are named fc1$"),
        (dict(layers=[hidden]), "^the last layer fc1 must be an output layer, not 'hidden'$"),
        (dict(layers=[XnorLayer(**layer_args(name="fc0", kind="output", thr_bits=2, thresholds=None)), output]),
         "^layer fc0 is an output layer but only the last layer may be$"),
        (dict(layers=[hidden, XnorLayer(**layer_args(name="fc2", in_features=5, out_features=2, pe=1, simd=5,
                                                     kind="output", thr_bits=2, weights=HAND[:2], thresholds=None))]),
         "^layer fc2 has in_features 5 but fc1 has out_features 3$"),
        (dict(input_threshold=float("nan")), "^input_threshold must be a finite number, not nan$"),
        (dict(output_scale=np.ones(3)), r"^output_scale must be 2 real numbers, not float64 \(3,\)$"),
        (dict(output_bias=np.array([0.0, np.inf])), "^output_bias contains NaN or infinite values$"),
    ]
    for changes, message in cases:
        with pytest.raises(EiexError, match=message):
            XnorImage(**{**ok, **changes})
