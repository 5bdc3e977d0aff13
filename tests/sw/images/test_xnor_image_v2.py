"""Version 2 of the XNOR image (``xnor-image.md`` section 7): conv and pool layers in the model, its
golden arithmetic against a literal reading of the spec, packing, folders in every format, every
validation message, the interval and the folding solver by hand."""

import hashlib
import json
import math

import numpy as np
import pytest

from eiex.errors import EiexError
from eiex.hw.xnor import golden
from eiex.sw.images import memfiles
from eiex.sw.images.xnor import arithmetic
from eiex.sw.images.xnor.files import load_image, write_image
from eiex.sw.images.xnor.folding import choose_folding, default_target, solve_folding
from eiex.sw.images.xnor.image import (XnorConvLayer, XnorImage, XnorLayer, XnorPoolLayer, pack_thresholds,
                                       pack_weights, unpack_thresholds, unpack_weights)
from factories import XNOR_MAP_NETWORKS as NETWORKS, build_xnor_image as build
from test_xnor_files import PADDED, edit_manifest, make_image, memory, random_image, set_words, with_bits


# ---- the spec read literally (explicit loops; small sizes only)

def spec_conv(x, layer):
    h, w, c = layer.in_shape
    k = layer.kernel
    ho, wo, m = layer.out_shape
    out = [0] * (ho * wo * m)
    for oy in range(ho):
        for ox in range(wo):
            for r in range(m):
                acc = 0
                for ky in range(k):
                    for kx in range(k):
                        for ci in range(c):
                            bit = x[((oy + ky) * w + (ox + kx)) * c + ci]
                            acc += bit == (1 if layer.weights[r][(ky * k + kx) * c + ci] == 1 else 0)
                out[(oy * wo + ox) * m + r] = 1 if acc >= layer.thresholds[r] else 0
    return out


def spec_pool(x, layer):
    h, w, c = layer.in_shape
    p = layer.size
    ho, wo, _ = layer.out_shape
    out = [0] * (ho * wo * c)
    for oy in range(ho):
        for ox in range(wo):
            for ci in range(c):
                window = [x[((oy * p + dy) * w + (ox * p + dx)) * c + ci] for dy in range(p) for dx in range(p)]
                out[(oy * wo + ox) * c + ci] = 1 if any(window) else 0
    return out


def spec_fc(x, layer):
    y = []
    for r in range(layer.out_features):
        acc = sum(1 for col in range(layer.in_features) if x[col] == (1 if layer.weights[r][col] == 1 else 0))
        y.append((1 if acc >= layer.thresholds[r] else 0) if layer.kind == "hidden" else 2 * acc - layer.in_features)
    return y


def spec_layers(image, bits):
    """Every layer's outputs, per sample, by the loops above."""
    steps = {"conv": spec_conv, "pool": spec_pool, "hidden": spec_fc, "output": spec_fc}
    per_layer = [[] for _ in image.layers]
    for x in np.asarray(bits).tolist():
        for l, layer in enumerate(image.layers):
            x = steps[layer.kind](x, layer)
            per_layer[l].append(x)
    return [np.array(outputs, dtype=np.int64) for outputs in per_layer]




@pytest.mark.parametrize("name", NETWORKS)
def test_golden_matches_the_spec_read_literally(name):
    in_shape, plan = NETWORKS[name]
    image = build(in_shape, plan, seed=len(name))
    bits = (np.random.default_rng(1).random((4, math.prod(in_shape))) < 0.1).astype(int)  # sparse: pools vary
    expected = spec_layers(image, bits)
    got = golden.run_layers(image, bits)
    assert [g.shape for g in got] == [(4, layer.output_size) for layer in image.layers]
    for layer, g, e in zip(image.layers, got, expected):
        assert np.array_equal(g, e), layer.name
        if layer.kind != "output":
            assert g.dtype == np.uint8 and set(np.unique(g)) <= {0, 1}
    assert np.array_equal(golden.run(image, bits), expected[-1])
    for g, layer in zip(got, image.layers):  # neither all 0 nor all 1, so the comparison has teeth
        assert layer.kind == "output" or 0 < g.mean() < 1, layer.name


def test_convolution_and_pooling_by_hand():
    # a 3 x 3 x 2 map, channels-last: channel 0 is the pattern below, channel 1 all ones
    ch0 = np.array([[1, 0, 0],
                    [0, 1, 0],
                    [0, 0, 1]])
    x = np.stack([ch0, np.ones((3, 3), int)], axis=-1).reshape(1, -1)
    # one output channel, k = 2: +1 where (ky, kx) == (0, 0) or (1, 1) in channel 0, -1 elsewhere, and
    # -1 on channel 1: column (ky * 2 + kx) * 2 + ci
    w = np.array([[+1, -1, -1, -1, -1, -1, +1, -1]])
    # acc counts matches, none on channel 1 (ones against -1): the (0, 0) patch of channel 0 is 1 0 / 0 1
    # (4 matches), (0, 1) is 0 0 / 1 0 and (1, 0) is 0 1 / 0 0 (1 match each: the 0 against -1), (1, 1) 4
    acc = np.array([[4, 1], [1, 4]])
    for t in (-1, 0, 1, 2, 4, 5):
        got = golden.convolve(x, (3, 3, 2), 2, w, np.array([t]))
        assert got.tolist() == [(acc.reshape(-1) >= t).astype(int).tolist()], t
    # pool 2 over a 5 x 5 x 1 map: only the top-left 4 x 4 counts, row 4 and column 4 are dropped
    m = np.zeros((5, 5), int)
    m[1, 2] = m[4, 0] = m[0, 4] = 1
    assert golden.pool(m.reshape(1, -1), (5, 5, 1), 2).tolist() == [[0, 1, 0, 0]]
    # channels-last: a pool keeps each channel separate
    two = np.zeros((2, 2, 2), int)
    two[1, 1, 1] = 1
    assert golden.pool(two.reshape(1, -1), (2, 2, 2), 2).tolist() == [[0, 1]]


def test_convolution_chunks_give_the_same_outputs(monkeypatch):
    image = build([9, 9, 3], [("conv", 7, 3, 2, 5), ("output", 2, 1, 8)], seed=4)
    conv = image.layers[0]
    bits = np.random.default_rng(2).integers(0, 2, (11, 9 * 9 * 3))
    whole = golden.convolve(bits, conv.in_shape, conv.kernel, conv.weights, conv.thresholds)
    monkeypatch.setattr(arithmetic, "CONV_CHUNK_BYTES", 49 * 27 * 8 * 3)  # three images per chunk, one left over
    assert np.array_equal(golden.convolve(bits, conv.in_shape, conv.kernel, conv.weights, conv.thresholds), whole)
    monkeypatch.setattr(arithmetic, "CONV_CHUNK_BYTES", 1)  # one image per chunk
    assert np.array_equal(golden.convolve(bits, conv.in_shape, conv.kernel, conv.weights, conv.thresholds), whole)
    assert np.array_equal(whole, spec_layers(image, bits)[0])


def test_raw_input_of_a_map_and_predict():
    image = build([4, 5, 1], [("conv", 3, 2, 1, 2), ("output", 3, 3, 4)], seed=9)
    raw = np.random.default_rng(3).normal(size=(6, 4, 5))
    bits = golden.binarize_input(image, raw.reshape(6, -1))  # C = 1: row-major pixels are channels-last
    assert np.array_equal(bits, (raw.reshape(6, -1) >= 0.5).astype(np.uint8))
    y = golden.run(image, bits)
    expected = np.argmax(image.output_scale * y + image.output_bias, axis=1)
    assert np.array_equal(golden.predict(image, raw.reshape(6, -1)), expected)
    with pytest.raises(EiexError, match=r"^raw inputs must be shaped \(samples, 20\), not \(6, 4, 5\)$"):
        golden.binarize_input(image, raw)
    with pytest.raises(EiexError, match=r"^input bits must be shaped \(samples, 20\), not \(1, 19\)$"):
        golden.run(image, np.zeros((1, 19), int))


# ---- packing of conv memories (section 4 with K = k * k * C, M = out_channels)

@pytest.mark.parametrize("name", NETWORKS)
def test_conv_memories_pack_per_section_4_and_unpack(name):
    in_shape, plan = NETWORKS[name]
    image = build(in_shape, plan, seed=len(name) + 1)
    for l, conv in enumerate(image.layers):
        if conv.kind != "conv":
            continue
        m, k, p, s = conv.rows, conv.columns, conv.pe, conv.simd
        assert (k, conv.nf, conv.sf) == (conv.kernel ** 2 * conv.in_shape[2], -(-m // p), -(-k // s))
        words = pack_weights(conv)
        assert len(words) == p and all(len(ws) == conv.nf * conv.sf for ws in words)
        for q, ws in enumerate(words):
            for address, word in enumerate(ws):
                nf, sf = divmod(address, conv.sf)
                for i in range(s):
                    row, col = nf * p + q, sf * s + i
                    bit = int(row < m and col < k and conv.weights[row][col] == 1)
                    assert (word >> i) & 1 == bit, (q, address, i)
        assert np.array_equal(unpack_weights(words, m, k, p, s, l), conv.weights)
        t = pack_thresholds(conv)
        assert [len(ts) for ts in t] == [conv.nf] * p
        assert np.array_equal(unpack_thresholds(t, m, p, conv.thr_bits, l), conv.thresholds)


# ---- folders

def test_manifest_of_a_version_2_image(tmp_path):
    image = build([7, 7, 3], [("conv", 6, 3, 4, 5), ("pool", 2), ("hidden", 5, 3, 10), ("output", 2, 2, 3)])
    folder = tmp_path / "img"
    manifest = write_image(image, folder, formats=("coe",))
    assert manifest == json.loads((folder / "manifest.json").read_text())
    assert list(manifest) == ["format", "version", "input", "layers", "output", "memories"]
    assert manifest["version"] == 2
    assert manifest["input"] == {"kind": "binary", "threshold": 0.5, "shape": [7, 7, 3]}
    assert manifest["layers"] == [
        {"name": "conv0", "kind": "conv", "in_shape": [7, 7, 3], "out_channels": 6, "kernel": 3, "pe": 4, "simd": 5,
         "thr_bits": 8},
        {"name": "pool1", "kind": "pool", "in_shape": [5, 5, 6], "size": 2},
        {"name": "hidden2", "in_features": 24, "out_features": 5, "pe": 3, "simd": 10, "kind": "hidden", "thr_bits": 8},
        {"name": "output3", "in_features": 5, "out_features": 2, "pe": 2, "simd": 3, "kind": "output", "thr_bits": 2}]
    assert [list(layer) for layer in manifest["layers"][:2]] == \
        [["name", "kind", "in_shape", "out_channels", "kernel", "pe", "simd", "thr_bits"],
         ["name", "kind", "in_shape", "size"]]
    # conv K = 27: NF = 2, SF = 6; the pool (layer 1) has no memories, so fc layers are l2 and l3
    assert [(m["name"], m["kind"], m["pe"], m["width"], m["depth"]) for m in manifest["memories"]] == \
        [(f"l0.pe{p}.weights", "weights", p, 5, 12) for p in range(4)] + \
        [(f"l0.pe{p}.thresholds", "thresholds", p, 8, 2) for p in range(4)] + \
        [(f"l2.pe{p}.weights", "weights", p, 10, 6) for p in range(3)] + \
        [(f"l2.pe{p}.thresholds", "thresholds", p, 8, 2) for p in range(3)] + \
        [(f"l3.pe{p}.weights", "weights", p, 3, 2) for p in range(2)]
    assert (folder / "l0.pe3.weights.hex").read_text().splitlines() == \
        [format(w, "02x") for w in pack_weights(image.layers[0])[3]]  # 5-bit words: two hex digits


@pytest.mark.parametrize("name", NETWORKS)
def test_round_trip_in_every_format(tmp_path, name):
    in_shape, plan = NETWORKS[name]
    image = build(in_shape, plan, seed=len(name) + 2, thr_bits=6)
    folder = tmp_path / "img"
    write_image(image, folder, formats=memfiles.FORMATS)
    back = load_image(folder)
    assert back.input_shape == tuple(in_shape)
    assert [layer.to_json() for layer in back.layers] == [layer.to_json() for layer in image.layers]
    assert [type(layer) for layer in back.layers] == [type(layer) for layer in image.layers]
    for a, b in zip(image.layers, back.layers):
        if a.kind != "pool":
            assert np.array_equal(a.weights, b.weights) and b.weights.dtype == np.int8
            assert (a.thresholds is None) == (b.thresholds is None)
            assert a.thresholds is None or np.array_equal(a.thresholds, b.thresholds)
    assert np.array_equal(back.output_scale, image.output_scale) and np.array_equal(back.output_bias, image.output_bias)
    bits = np.random.default_rng(5).integers(0, 2, (8, math.prod(in_shape)))
    for a, b in zip(golden.run_layers(back, bits), golden.run_layers(image, bits)):
        assert np.array_equal(a, b)
    manifest = json.loads((folder / "manifest.json").read_text())
    for m in manifest["memories"]:  # every format holds the hex file's words, every digest matches
        hexed = memfiles.decode((folder / m["files"]["hex"]).read_bytes(), m["width"], "hex", m["depth"])
        assert set(m["files"]) == set(memfiles.FORMATS)
        for fmt, path in m["files"].items():
            assert memfiles.decode((folder / path).read_bytes(), m["width"], fmt, m["depth"]) == hexed
            assert m["sha256"][fmt] == hashlib.sha256((folder / path).read_bytes()).hexdigest()


def test_version_1_networks_still_write_version_1(tmp_path):
    image = make_image()
    manifest = write_image(image, tmp_path / "img")
    assert image.version == 1 and manifest["version"] == 1 and manifest["input"] == {"kind": "binary", "threshold": 0.25}
    # an input shape is allowed for a fully connected network, but version 1 (the spec's choice for
    # such networks) does not record it
    shaped = XnorImage(image.layers, 0.25, image.output_scale, image.output_bias, input_shape=[5, 2, 1])
    assert write_image(shaped, tmp_path / "shaped")["input"] == {"kind": "binary", "threshold": 0.25}
    assert load_image(tmp_path / "shaped").input_shape is None


def folder_digest(folder):
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("name, image, digest", [
    ("make", lambda: make_image(), "cfc488ed06999a4cb2bfebdd5017c362d01d63ed45ea0ab56733b59759fcbc66"),
    ("padded", lambda: random_image(3, (6, 3, 2), PADDED),
     "6d364e7a1015732749ab9567c8805d7e6b7803a9070468ebfc26b3235a26dd7e"),
    ("deep", lambda: random_image(7, (30, 17, 9, 4), thr_bits=9),
     "67f403c954487727f27dc3c359d9bb82b2b8b917b282f5c3a01b23c7c1723cf3"),
])
def test_version_1_folders_are_byte_identical_to_before_version_2(tmp_path, name, image, digest):
    """Digests of whole folders (names and bytes, every format) written by the code before version 2."""
    write_image(image(), tmp_path / name, formats=memfiles.FORMATS)
    assert folder_digest(tmp_path / name) == digest


def test_a_version_2_manifest_without_maps_loads(tmp_path):
    """Section 7: a version-1 image is also a valid version-2 image, with or without input.shape."""
    folder = tmp_path / "img"
    image = make_image()
    write_image(image, folder)
    edit_manifest(folder, lambda m: m.__setitem__("version", 2))
    assert load_image(folder).input_shape is None
    edit_manifest(folder, lambda m: m["input"].__setitem__("shape", [2, 5, 1]))
    back = load_image(folder)
    assert back.input_shape == (2, 5, 1)
    bits = np.random.default_rng(0).integers(0, 2, (5, 10))
    assert np.array_equal(golden.run(back, bits), golden.run(image, bits))


# ---- validation: one line each

def conv_args(**changes):
    rng = np.random.default_rng(0)
    args = dict(name="conv1", in_shape=(3, 5, 2), out_channels=4, kernel=2, pe=2, simd=3, thr_bits=4,
                weights=rng.choice([-1, 1], (4, 8)), thresholds=np.array([3, -2, 7, 0]))
    return {**args, **changes}


MODEL_ERRORS = [
    (lambda: XnorConvLayer(**conv_args(weights=np.ones((4, 9)))),
     r"^layer conv1: weights have shape \(4, 9\), expected \(4, 8\) \(out_channels, K = kernel \* kernel \* C = "
     r"2 \* 2 \* 2\)$"),
    (lambda: XnorConvLayer(**conv_args(kernel=4)), "^layer conv1: kernel 4 is larger than its 3 x 5 input map$"),
    (lambda: XnorConvLayer(**conv_args(kernel=0)), "^layer conv1: kernel must be a positive integer, not 0$"),
    (lambda: XnorConvLayer(**conv_args(weights=np.zeros((4, 8)))),
     "^layer conv1: weights must be \\+1 or -1, found 0.0 at row 0, column 0$"),
    (lambda: XnorConvLayer(**conv_args(thresholds=np.array([3, -2, 8, 0]))),
     r"^layer conv1: threshold 8 of row 2 does not fit thr_bits 4 \(signed, -8 .. 7\)$"),
    (lambda: XnorConvLayer(**conv_args(thresholds=None)), "^layer conv1: a conv layer needs thresholds$"),
    (lambda: XnorConvLayer(**conv_args(in_shape=(3, 5))),
     r"^layer conv1: in_shape must be \[H, W, C\], three positive integers, not \(3, 5\)$"),
    (lambda: XnorConvLayer(**conv_args(out_channels=-1)), "^layer conv1: out_channels must be a positive integer, not -1$"),
    (lambda: XnorConvLayer(**conv_args(thr_bits=1)), "^layer conv1: thr_bits must be an integer from 2 to 64, not 1$"),
    (lambda: XnorPoolLayer("pool1", (3, 5, 2), 0), "^layer pool1: size must be a positive integer, not 0$"),
    (lambda: XnorPoolLayer("pool1", (3, 5, 2), 4),
     r"^layer pool1: pooling a 3 x 5 map by 4 leaves nothing \(size must be at most 3\)$"),
    (lambda: XnorPoolLayer("pool1", [3, 0, 2], 1),
     r"^layer pool1: in_shape must be \[H, W, C\], three positive integers, not \[3, 0, 2\]$"),
]


@pytest.mark.parametrize("make, message", MODEL_ERRORS)
def test_layer_errors(make, message):
    with pytest.raises(EiexError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def out(name, k, m=2):
    return XnorLayer(name, k, m, 1, k, "output", 2, np.ones((m, k)))


def hidden(name, k, m=3):
    return XnorLayer(name, k, m, 1, k, "hidden", 4, np.ones((m, k)), np.zeros(m, int))


CONV = XnorConvLayer(**conv_args())  # (3, 5, 2) -> (2, 4, 4): 32 bits
POOL = XnorPoolLayer("pool1", (2, 4, 4), 2)  # -> (1, 2, 4): 8 bits


@pytest.mark.parametrize("layers, input_shape, message", [
    ([CONV, POOL, out("fc", 9)], (3, 5, 2), "^layer fc has in_features 9 but pool1 gives a \\[1, 2, 4\\] map of 8 bits$"),
    ([CONV, XnorPoolLayer("pool1", (2, 4, 3), 2), out("fc", 6)], (3, 5, 2),
     r"^layer pool1 has in_shape \[2, 4, 3\] but conv1 gives a \[2, 4, 4\] map$"),
    ([hidden("fc0", 30, 5), XnorPoolLayer("pool1", (2, 2, 2), 2), out("fc", 2)], None,
     r"^layer pool1 has in_shape \[2, 2, 2\] \(8 bits\) but fc0 has out_features 5$"),
    ([CONV, POOL], (3, 5, 2), "^the last layer pool1 must be an output layer, not 'pool'$"),
    ([CONV], (3, 5, 2), "^the last layer conv1 must be an output layer, not 'conv'$"),
    ([CONV, POOL, out("fc", 8)], None, r"^the input shape \[H, W, C\] is required: the first layer conv1 is a conv layer$"),
    ([CONV, POOL, out("fc", 8)], (6, 5, 1), r"^the input shape \[6, 5, 1\] is not the first layer conv1's in_shape "
                                            r"\[3, 5, 2\]$"),
    ([CONV, POOL, out("fc", 8)], (3, 5, 3), r"^the input shape \[3, 5, 3\] holds 45 bits but the first layer conv1 reads 30$"),
    ([hidden("fc0", 30), out("fc", 3)], (4, 4, 2), r"^the input shape \[4, 4, 2\] holds 32 bits but the first layer fc0 reads 30$"),
    ([hidden("fc0", 30), out("fc", 3)], (30, 1), r"^the input shape must be \[H, W, C\], three positive integers, not \(30, 1\)$"),
    ([CONV, POOL, XnorPoolLayer("pool1", (1, 2, 4), 1), out("fc", 8)], (3, 5, 2), "^two layers are named pool1$"),
])
def test_image_errors(layers, input_shape, message):
    m = layers[-1].out_features if layers[-1].kind == "output" else 2
    with pytest.raises(EiexError, match=message) as info:
        XnorImage(layers, 0.5, np.ones(m), np.zeros(m), input_shape=input_shape)
    assert "\n" not in str(info.value)


def test_map_layers_chain_and_a_map_may_follow_a_fully_connected_layer():
    image = XnorImage([CONV, POOL, out("fc", 8)], 0.5, np.ones(2), np.zeros(2), input_shape=[3, 5, 2])
    assert image.input_shape == (3, 5, 2) and image.inputs == 30 and image.version == 2
    # fc0 gives 8 bits, read by the pool as a [2, 2, 2] map in channels-last order
    after_fc = XnorImage([hidden("fc0", 30, 8), XnorPoolLayer("pool1", (2, 2, 2), 2), out("fc", 2)], 0.5,
                         np.ones(2), np.zeros(2))
    bits = np.random.default_rng(0).integers(0, 2, (3, 30))
    assert np.array_equal(golden.run_layers(after_fc, bits)[1], spec_layers(after_fc, bits)[1])


def two_layer_folder(tmp_path):
    folder = tmp_path / "img"
    image = build([5, 5, 2], [("conv", 3, 2, 2, 3), ("pool", 2), ("output", 2, 1, 5)], thr_bits=5)
    write_image(image, folder, formats=("bin",))
    load_image(folder)  # sound before tampering
    return folder


def layer_field(index, key, value):
    return lambda f: edit_manifest(f, lambda m: m["layers"][index].__setitem__(key, value))


# conv0: (5, 5, 2) -> (4, 4, 3), K = 8, P = 2, S = 3: NF = 2, SF = 3; pool1 -> (2, 2, 3); output2: 12 -> 2
LOAD_ERRORS = [
    (lambda f: edit_manifest(f, lambda m: m.__setitem__("version", 1)),
     "^manifest.json: layer 0 is a conv layer, which needs version 2$"),
    (lambda f: edit_manifest(f, lambda m: m["input"].pop("shape")),
     r"^manifest.json: the input shape \[H, W, C\] is required: the first layer conv0 is a conv layer$"),
    (lambda f: edit_manifest(f, lambda m: m["input"].__setitem__("shape", [5, 5, 3])),
     r"^manifest.json: the input shape \[5, 5, 3\] holds 75 bits but the first layer conv0 reads 50$"),
    (lambda f: edit_manifest(f, lambda m: m["layers"][0].pop("kernel")), "^manifest.json: layer 0 lacks kernel$"),
    (layer_field(0, "kernel", 6), "^layer conv0: kernel 6 is larger than its 5 x 5 input map$"),
    (layer_field(0, "kernel", 3), r"^layer pool1 has in_shape \[4, 4, 3\] but conv0 gives a \[3, 3, 3\] map$"),
    (layer_field(1, "size", 0), "^layer pool1: size must be a positive integer, not 0$"),
    (layer_field(1, "size", 5), r"^layer pool1: pooling a 4 x 4 map by 5 leaves nothing \(size must be at most 4\)$"),
    (layer_field(1, "size", 1), "^layer output2 has in_features 12 but pool1 gives a \\[4, 4, 3\\] map of 48 bits$"),
    (lambda f: edit_manifest(f, lambda m: m["layers"].pop()),
     "^the last layer pool1 must be an output layer, not 'pool'$"),
    (layer_field(0, "in_shape", [5, 5]), r"^layer conv0: in_shape must be \[H, W, C\], three positive integers, not \[5, 5\]$"),
    (layer_field(0, "simd", 4), r"^l0.pe0.weights: width 3, layer conv0 has simd = 4$"),
    (lambda f: edit_manifest(f, lambda m: memory(m, "l0.pe1.weights").__setitem__("depth", 5)),
     r"^l0.pe1.weights: depth 5, layer conv0 needs NF \* SF = 2 \* 3 = 6$"),
    (lambda f: edit_manifest(f, lambda m: m["memories"].remove(memory(m, "l0.pe1.thresholds"))),
     "^manifest.json: memory l0.pe1.thresholds is missing$"),
    (lambda f: edit_manifest(f, lambda m: memory(m, "l2.pe0.weights").__setitem__("name", "l1.pe0.weights")),
     "^manifest.json: memory 'l1.pe0.weights' is not part of this image's layers and PEs$"),
    (lambda f: set_words(f, "l0.pe0.weights", lambda w: with_bits(w, 2, 0b100)),
     r"^l0.pe0.weights: padding bit 2 of word 2 is 1 \(row 0, column 8 of a 3 x 8 layer\); padding bits must be 0$"),
    (lambda f: set_words(f, "l0.pe1.weights", lambda w: with_bits(w, 3, 0b1)),
     r"^l0.pe1.weights: padding bit 0 of word 3 is 1 \(row 3, column 0 of a 3 x 8 layer\)"),
    (lambda f: (f / "l0.pe1.thresholds.bin").write_bytes(b"\x01\x02"), "^l0.pe1.thresholds.bin: sha256 mismatch"),
]


@pytest.mark.parametrize("tamper, message", LOAD_ERRORS)
def test_tampered_version_2_image_is_named(tmp_path, tamper, message):
    folder = two_layer_folder(tmp_path)
    tamper(folder)
    with pytest.raises(EiexError, match=message) as info:
        load_image(folder)
    assert "\n" not in str(info.value)


# ---- interval and folding (section 7)

# [6, 6, 2] -> conv (M 4, k 3: K 18, 4 x 4 positions) -> pool 2 -> [2, 2, 4] -> fc 16 -> 5 -> output 3
HAND = ([6, 6, 2], [("conv", 4, 3, 2, 6), ("pool", 2), ("hidden", 5, 1, 4), ("output", 3, 3, 5)])
HAND_SHAPES = [(4, 18, 16), None, (5, 16), (3, 5)]


def test_ideal_interval_by_hand():
    image = build(*HAND)
    # conv: 16 positions * NF 2 * SF 3 = 96; fc: NF 5 * SF 4 = 20; output: 1 * 1; the pool never limits it
    assert [(layer.positions, layer.nf, layer.sf) for layer in image.layers if layer.kind != "pool"] == \
        [(16, 2, 3), (1, 5, 4), (1, 1, 1)]
    assert golden.ideal_interval(image) == 96
    fc_bound = build(HAND[0], [("conv", 4, 3, 4, 18), ("pool", 2), ("hidden", 5, 1, 1), ("output", 3, 3, 5)])
    assert golden.ideal_interval(fc_bound) == 80  # conv 16 * 1 * 1, fc 5 * 16
    pool_only = build([9, 9, 4], [("pool", 3), ("output", 2, 1, 1)])
    assert golden.ideal_interval(pool_only) == 2 * 36


def brute_force_folding(m, k, positions, target):
    candidates = [(p * s, math.ceil(m / p) * p * math.ceil(k / s) * s - m * k, p, s)
                  for p in range(1, m + 1) for s in range(1, k + 1)
                  if positions * math.ceil(m / p) * math.ceil(k / s) <= target]
    return min(candidates)[2:]


def test_folding_by_hand():
    # target 96: the conv may take 96 / 16 = 6 folds; 12 lanes either as P 2, S 6 or P 4, S 3 (no padding
    # either way): the smaller P wins; the fc layers fit with one lane
    assert solve_folding(HAND_SHAPES, 96) == [(2, 6), None, (1, 1), (1, 1)]
    # target 95: 5 folds; P 4, S 4 (NF 1, SF 5, 16 lanes) beats P 2, S 9 and P 1, S 18 (18 lanes)
    assert solve_folding(HAND_SHAPES, 95) == [(4, 4), None, (1, 1), (1, 1)]
    # target 16: one fold per conv position; fc 5 x 16 in 16 folds: P 5, S 1 (5 lanes) beats P 1, S 6
    assert solve_folding(HAND_SHAPES, 16) == [(4, 18), None, (5, 1), (1, 1)]
    for target in (16, 40, 95, 96, 500):
        assert solve_folding(HAND_SHAPES, target)[0] == brute_force_folding(4, 18, 16, target)
        folding = solve_folding(HAND_SHAPES, target)
        plan = [(kind, *args[:-2], *fold) if fold else (kind, *args)
                for (kind, *args), fold in zip(HAND[1], folding)]
        assert golden.ideal_interval(build(HAND[0], plan)) <= target
    with pytest.raises(EiexError, match="^layer 0: its 16 output positions take at least 16 cycles, more than the "
                                        "target interval 15$"):
        solve_folding(HAND_SHAPES, 15)
    # the conv (4 * 18 weights at 16 positions) is the largest; at most 64 lanes give it NF * SF = 2
    assert default_target(HAND_SHAPES) == 32
    assert default_target([(5, 16), (3, 5)]) == default_target([(5, 16), None, (3, 5)]) == 2
    # choose_folding folds conv and pool layers too (it refused them before issue 15's bnn-cnv)
    assert choose_folding(HAND_SHAPES) == solve_folding(HAND_SHAPES, 32)


# CNV-like shapes: conv 8@26x26 (K 9), conv 8@24x24 (K 72), pool, conv 16@10x10 (K 72), pool, fc 64 x 400, out 10 x 64
CNV_SHAPES = [(8, 9, 676), (8, 72, 576), None, (16, 72, 100), None, (64, 400), (10, 64)]


@pytest.mark.parametrize("target", [676, 700, 2000, 5000, 20_000, 100_000])
def test_choose_folding_gives_conv_layers_the_fewest_lanes_within_the_target(target):
    folding = choose_folding(CNV_SHAPES, target_interval=target)
    assert [fold is None for fold in folding] == [shape is None for shape in CNV_SHAPES]
    for shape, fold in zip(CNV_SHAPES, folding):
        if shape is not None:
            m, k, positions = (*shape, 1)[:3]
            assert fold == brute_force_folding(m, k, positions, target)


def brute_force_one_dimension(m, k, positions, target, p=None, s=None):
    """The smallest S (given P) or P (given S) with positions * NF * SF <= target."""
    if p is not None:
        return p, min(s for s in range(1, k + 1) if positions * math.ceil(m / p) * math.ceil(k / s) <= target)
    return min(p for p in range(1, m + 1) if positions * math.ceil(m / p) * math.ceil(k / s) <= target), s


def test_pe_and_simd_give_one_value_per_layer_with_weights_and_pools_take_none():
    pe, simd = [2, 4, 8, 16, 5], [3, 8, 24, 40, 64]
    folding = choose_folding(CNV_SHAPES, pe=pe, simd=simd)
    assert folding == [(2, 3), (4, 8), None, (8, 24), None, (16, 40), (5, 64)]
    target = 20_000
    weighted = [shape for shape in CNV_SHAPES if shape is not None]
    by_pe = [fold for fold in choose_folding(CNV_SHAPES, pe=pe, target_interval=target) if fold]
    by_simd = [fold for fold in choose_folding(CNV_SHAPES, simd=simd, target_interval=target) if fold]
    for shape, p, s, got_p, got_s in zip(weighted, pe, simd, by_pe, by_simd):
        m, k, positions = (*shape, 1)[:3]
        assert got_p == brute_force_one_dimension(m, k, positions, target, p=p)
        assert got_s == brute_force_one_dimension(m, k, positions, target, s=s)
    for kwargs, message in [
        (dict(pe=[1, 1, 1]), r"^pe gives 3 values for 5 layers with weights \(the 2 pool layers take none\)$"),
        (dict(pe=[1] * 7), r"^pe gives 7 values for 5 layers with weights"),
        (dict(pe=[1, 1, 1, 1, 1], target_interval=1000),
         r"^layer conv1: with pe 1, 676 positions x NF = 8 already exceeds the target interval 1000; give simd too"),
        (dict(simd=[9, 1, 1, 1, 1], target_interval=5000),
         r"^layer conv2: with simd 1, 576 positions x SF = 72 already exceeds the target interval 5000"),
        (dict(pe=[8] * 5, simd=[9, 72, 72, 1, 1], target_interval=1000),
         r"^layer fc1: pe 8 and simd 1 take 3200 cycles, more than the target interval 1000$"),
        (dict(target_interval=600), r"^layer 0: its 676 output positions take at least 676 cycles"),
        (dict(pe=[0, 1, 1, 1, 1]), r"^layer conv1: pe must be an integer from 1 to 4096"),
    ]:
        with pytest.raises(EiexError, match=message) as e:
            choose_folding(CNV_SHAPES, **kwargs)
        assert "\n" not in str(e.value)
    with pytest.raises(EiexError, match=r"^layer 1: a layer shape is \(M, K\) \(fully connected\), \(M, K, "):
        choose_folding([(3, 4), (2, 3, 4, 5)])
    with pytest.raises(EiexError, match="at least one layer with weights"):
        choose_folding([None])


# ---- folded arrays of a conv network (binary.npz) to a version-2 image

def folded_cnv(seed=0):
    """binary.npz arrays of 9x9x2 -> conv 3@3x3 -> pool 2 (3x3x3) -> conv 4@2x2 (2x2x4) -> fc 5 -> out 3."""
    rng = np.random.default_rng(seed)
    return {"kinds": np.array(["conv", "pool", "conv", "hidden", "output"]), "input_shape": np.array([9, 9, 2]),
            "pool_sizes": np.array([2]), "input_threshold": np.array(0.5),
            "w0": rng.choice([-1, 1], (3, 3, 3, 2)).astype(np.int8), "t0": rng.integers(-2, 21, 3),
            "w1": rng.choice([-1, 1], (4, 2, 2, 3)).astype(np.int8), "t1": rng.integers(-2, 15, 4),
            "w2": rng.choice([-1, 1], (5, 16)).astype(np.int8), "t2": rng.integers(-2, 19, 5),
            "w3": rng.choice([-1, 1], (3, 5)).astype(np.int8), "scale": rng.uniform(0.5, 2, 3),
            "bias": rng.normal(size=3)}


def test_folded_conv_arrays_become_the_image_the_spec_reads(tmp_path):
    from eiex.sw.binarize.thresholds import run_folded
    from eiex.sw.images.xnor.export import image_from_folded

    arrays = folded_cnv()
    image = image_from_folded(arrays)
    assert image.version == 2 and image.input_shape == (9, 9, 2)
    assert [layer.name for layer in image.layers] == ["conv1", "pool1", "conv2", "fc1", "fc2"]
    assert np.array_equal(image.layers[0].weights, arrays["w0"].reshape(3, 18))
    raw = np.random.default_rng(1).uniform(0, 1, (30, 162))
    bits = golden.binarize_input(image, raw)
    # the spec read literally, on the image, equals the folded network run with the golden model's layers
    literal = spec_layers(image, bits)[-1]
    assert np.array_equal(golden.run(image, bits), literal)
    np.testing.assert_array_equal(run_folded(arrays, raw), golden.scores(image, literal))
    # (n, C, H, W) raw samples are read channels-last, as the image's input is
    np.testing.assert_array_equal(run_folded(arrays, raw.reshape(30, 9, 9, 2).transpose(0, 3, 1, 2)),
                                  run_folded(arrays, raw))
    write_image(image, tmp_path / "img")
    assert np.array_equal(golden.run(load_image(tmp_path / "img"), bits), literal)


def with_arrays(**changes):
    arrays = folded_cnv()
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    return arrays


@pytest.mark.parametrize("arrays, message", [
    (with_arrays(kinds=np.array(["conv", "pool", "conv", "dense", "output"])), r"kinds must list the layer kinds"),
    (with_arrays(kinds=np.array([1, 2])), r"kinds must list the layer kinds"),
    (with_arrays(kinds=np.array(["conv", "pool", "conv", "output", "hidden"])), "kinds must end with the one output"),
    (with_arrays(kinds=np.array(["conv", "pool", "hidden", "conv", "output"])),
     "conv and pool layers come before the fully connected ones"),
    (with_arrays(kinds=np.array(["conv", "pool", "hidden", "output"])), r"kinds name 3 layers with weights but the "
                                                                         r"arrays hold w0 \.\. w3"),
    (with_arrays(input_shape=None), "lacks input_shape, which a network with conv or pool layers records"),
    (with_arrays(input_shape=np.array([9, 9])), r"input_shape must be \[H, W, C\], three positive integers, not "
                                                r"\[9, 9\]"),
    (with_arrays(pool_sizes=np.array([2, 2])),
     r"pool_sizes must list one positive integer per pool layer \(1 in all\), not \[2, 2\]"),
    (with_arrays(pool_sizes=np.array([10])), r"layer pool1: pooling a 7 x 7 map by 10 leaves nothing"),
    (with_arrays(w0=np.ones((3, 18), np.int8)), r"layer conv1: w0 has shape \(3, 18\); a conv layer's weights are "
                                                 r"\(out, k, k, in_channels\)"),
    (with_arrays(w0=np.ones((3, 3, 3, 1), np.int8)), "layer conv1: w0 reads 1 channels but its input map has 2"),
    (with_arrays(w1=np.ones((4, 4, 4, 3), np.int8)), r"layer conv2: kernel 4 is larger than its 3 x 3 input map"),
    (with_arrays(w0=np.zeros((3, 3, 3, 2), np.int8)), r"w0 must hold only \+1 and -1, found 0 at row 0, ky 0, kx 0, "
                                                       r"channel 0"),
    (with_arrays(t1=np.arange(3)), r"t1 has shape \(3,\), w1 needs \(4,\) \(one per channel\)"),
    (with_arrays(w2=np.ones((5, 17), np.int8)), "w2 takes 17 inputs but the layer before gives 16"),
    (with_arrays(t2=None), "lacks t2"),
    (with_arrays(scale=np.ones(4)), r"scale has shape \(4,\), w3 needs \(3,\)"),
])
def test_bad_folded_conv_arrays_are_named_in_one_line(arrays, message):
    from eiex.sw.images.xnor.export import image_from_folded

    with pytest.raises(EiexError, match=message) as e:
        image_from_folded(arrays, source="src")
    assert "\n" not in str(e.value) and str(e.value).startswith("src")


def test_the_engines_hardware_refuses_a_map_after_a_fully_connected_layer_in_one_line():
    from eiex.hw.xnor.memory_map import engine_for

    after_fc = XnorImage([hidden("fc0", 30, 8), XnorPoolLayer("pool1", (2, 2, 2), 2), out("fc", 2)], 0.5,
                         np.ones(2), np.zeros(2))
    with pytest.raises(EiexError, match="layer 1 takes a map but layer 0 is fully connected") as e:
        engine_for(after_fc)
    assert "\n" not in str(e.value)
