"""XNOR image folders (XNOR spec, EIE spec sections 4 and 9): round trips in every format, the
manifest and the files checked by hand, every tampering named, atomic writes."""

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eiex.hw.xnor import golden
from eiex.sw.images import folder as image_folder
from eiex.sw.images import memfiles
from eiex.errors import EiexError
from eiex.sw.images.xnor.files import load_image, write_image
from eiex.sw.images.xnor.image import XnorImage, XnorLayer

HAND = np.array([[+1, -1, +1, +1, -1],
                 [-1, -1, +1, -1, +1],
                 [+1, +1, -1, -1, +1]], dtype=np.int8)


def random_image(seed, sizes, folding=None, thr_bits=6):
    """Random layers of ``sizes`` (K0, M0, M1, ...), each folded (P, S) by ``folding`` or at random
    (up to two PEs beyond the rows and two lanes beyond the columns, as spec section 4 allows), with
    thresholds over the whole signed range of ``thr_bits``."""
    rng = np.random.default_rng(seed)
    layers = []
    for l in range(len(sizes) - 1):
        k, m = sizes[l], sizes[l + 1]
        p, s = folding[l] if folding else (int(rng.integers(1, m + 3)), int(rng.integers(1, k + 3)))
        hidden = l < len(sizes) - 2
        t = rng.integers(-(2 ** (thr_bits - 1)), 2 ** (thr_bits - 1), m, dtype=np.int64) if hidden else None
        layers.append(XnorLayer(f"fc{l + 1}", k, m, p, s, "hidden" if hidden else "output", thr_bits,
                                rng.choice(np.array([-1, 1], dtype=np.int8), (m, k)), t))
    m = sizes[-1]
    return XnorImage(layers, input_threshold=0.25, output_scale=rng.normal(size=m), output_bias=rng.normal(size=m))

# 10 -> 7 -> 3: layer fc1 (P = 2, S = 4) has NF = 4, SF = 3, a padding row (7) and padding columns (10, 11);
# layer fc2 (P = 2, S = 3) has NF = 2, SF = 3, a padding row (3) and padding columns (7, 8)
FOLDING = [(2, 4), (2, 3)]


def make_image(seed=11):
    return random_image(seed, (10, 7, 3), FOLDING)


def assert_same_image(a, b):
    assert [l.to_json() for l in b.layers] == [l.to_json() for l in a.layers]
    for la, lb in zip(a.layers, b.layers):
        assert np.array_equal(la.weights, lb.weights) and lb.weights.dtype == np.int8
        assert (la.thresholds is None) == (lb.thresholds is None)
        if la.thresholds is not None:
            assert np.array_equal(la.thresholds, lb.thresholds) and lb.thresholds.dtype == np.int64
    assert b.input_threshold == a.input_threshold
    assert np.array_equal(b.output_scale, a.output_scale) and np.array_equal(b.output_bias, a.output_bias)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), sizes=st.lists(st.integers(1, 20), min_size=2, max_size=4),
       thr_bits=st.sampled_from([2, 5, 64]))
def test_round_trip_in_every_format(tmp_path_factory, seed, sizes, thr_bits):
    image = random_image(seed, sizes, thr_bits=thr_bits)
    out = tmp_path_factory.mktemp("img") / "image"
    write_image(image, out, formats=memfiles.FORMATS)
    back = load_image(out)
    assert_same_image(image, back)
    bits = np.random.default_rng(seed).integers(0, 2, (5, sizes[0]))
    assert np.array_equal(golden.run(back, bits), golden.run(image, bits))
    manifest = json.loads((out / "manifest.json").read_text())
    for m in manifest["memories"]:  # every format holds the same words as the hex file
        hexed = memfiles.decode((out / m["files"]["hex"]).read_bytes(), m["width"], "hex", m["depth"])
        for fmt, path in m["files"].items():
            assert memfiles.decode((out / path).read_bytes(), m["width"], fmt, m["depth"]) == hexed


def test_manifest_structure(tmp_path):
    image = make_image()
    folder = tmp_path / "img"
    returned = write_image(image, folder, formats=("mif", "bin"))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest == returned
    assert list(manifest) == ["format", "version", "input", "layers", "output", "memories"]
    assert manifest["format"] == "eiex-xnor-image" and manifest["version"] == 1
    assert manifest["input"] == {"kind": "binary", "threshold": 0.25}
    assert manifest["layers"] == [
        {"name": "fc1", "in_features": 10, "out_features": 7, "pe": 2, "simd": 4, "kind": "hidden", "thr_bits": 6},
        {"name": "fc2", "in_features": 7, "out_features": 3, "pe": 2, "simd": 3, "kind": "output", "thr_bits": 6}]
    assert manifest["output"] == {"scale": image.output_scale.tolist(), "bias": image.output_bias.tolist()}
    geometry = [(m["name"], m["kind"], m["pe"], m["width"], m["depth"]) for m in manifest["memories"]]
    assert geometry == [
        ("l0.pe0.weights", "weights", 0, 4, 12), ("l0.pe1.weights", "weights", 1, 4, 12),
        ("l0.pe0.thresholds", "thresholds", 0, 6, 4), ("l0.pe1.thresholds", "thresholds", 1, 6, 4),
        ("l1.pe0.weights", "weights", 0, 3, 6), ("l1.pe1.weights", "weights", 1, 3, 6)]
    for m in manifest["memories"]:
        assert set(m) == {"name", "kind", "pe", "width", "depth", "files", "sha256"}
        assert set(m["files"]) == {"hex", "mif", "bin"}  # hex always written
        for fmt, path in m["files"].items():
            assert path == f"{m['name']}.{fmt}"
            assert m["sha256"][fmt] == hashlib.sha256((folder / path).read_bytes()).hexdigest()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["manifest.json"] + [f"{m['name']}.{fmt}" for m in manifest["memories"] for fmt in ("hex", "mif", "bin")])


def test_files_by_hand(tmp_path):
    # the packing example of test_xnor_image, as files: 2-bit weight words, 4-bit thresholds
    fc1 = XnorLayer("fc1", 5, 3, 2, 2, "hidden", 4, HAND, np.array([3, -2, 7]))
    fc2 = XnorLayer("fc2", 3, 1, 1, 3, "output", 2, np.array([[1, -1, 1]]))
    image = XnorImage([fc1, fc2], 0.5, np.array([2.0]), np.array([-1.5]))
    write_image(image, tmp_path / "img", formats=("bin", "coe"))
    folder = tmp_path / "img"
    assert (folder / "l0.pe0.weights.hex").read_text() == "1\n3\n0\n3\n0\n1\n"
    assert (folder / "l0.pe1.weights.hex").read_text() == "0\n1\n1\n0\n0\n0\n"
    assert (folder / "l0.pe0.thresholds.hex").read_text() == "3\n7\n"
    assert (folder / "l0.pe1.thresholds.hex").read_text() == "e\n0\n"  # -2 in 4 bits; padding row 3 holds 0
    assert (folder / "l1.pe0.weights.hex").read_text() == "5\n"  # +1, -1, +1 -> bits 0 and 2
    assert (folder / "l0.pe1.thresholds.bin").read_bytes() == bytes([0x0E, 0x00])
    assert (folder / "l0.pe0.weights.coe").read_text() == \
        "memory_initialization_radix=16;\nmemory_initialization_vector=\n1,\n3,\n0,\n3,\n0,\n1;\n"
    assert not (folder / "l1.pe0.thresholds.hex").exists()
    assert_same_image(image, load_image(folder))


# ---- tampering: each check fires with its own one-line message

def set_words(folder, name, change):
    """Rewrite the hex file of memory ``name`` through ``change(words) -> words``, fixing its sha256."""
    manifest = json.loads((folder / "manifest.json").read_text())
    m = memory(manifest, name)
    words = change(memfiles.decode((folder / m["files"]["hex"]).read_bytes(), m["width"], "hex"))
    content = memfiles.encode(words, m["width"], "hex")
    (folder / m["files"]["hex"]).write_bytes(content)
    m["sha256"]["hex"], m["depth"] = hashlib.sha256(content).hexdigest(), len(words)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def edit_manifest(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def flip_digit(folder, name):
    text = (folder / name).read_text()
    (folder / name).write_text(("1" if text[0] != "1" else "2") + text[1:])


def with_bits(words, i, bits):
    words = list(words)
    words[i] |= bits
    return words


def memory(manifest, name):
    return next(x for x in manifest["memories"] if x["name"] == name)


def add_output_thresholds(folder):
    """A thresholds memory for the output layer fc2, with a real file and digest."""
    content = memfiles.encode([0, 0], 6, "hex")
    (folder / "l1.pe0.thresholds.hex").write_bytes(content)
    edit_manifest(folder, lambda m: m["memories"].append(
        {"name": "l1.pe0.thresholds", "kind": "thresholds", "pe": 0, "width": 6, "depth": 2,
         "files": {"hex": "l1.pe0.thresholds.hex"}, "sha256": {"hex": hashlib.sha256(content).hexdigest()}}))


def layer(index, key, value):
    return lambda f: edit_manifest(f, lambda m: m["layers"][index].__setitem__(key, value))


def mem(name, key, value):
    return lambda f: edit_manifest(f, lambda m: memory(m, name).__setitem__(key, value))


TAMPERS = [
    # files changed or gone
    (lambda f: flip_digit(f, "l0.pe1.weights.hex"), "^l0.pe1.weights.hex: sha256 mismatch"),
    (lambda f: flip_digit(f, "l1.pe0.weights.mif"), "^l1.pe0.weights.mif: sha256 mismatch"),
    (mem("l0.pe0.thresholds", "sha256", {"hex": "0" * 64, "mif": "0" * 64}), "^l0.pe0.thresholds.hex: sha256 mismatch"),
    (lambda f: (f / "l0.pe0.thresholds.hex").unlink(), "^l0.pe0.thresholds: file l0.pe0.thresholds.hex is missing$"),
    (lambda f: (f / "manifest.json").unlink(), "is not an XNOR image: manifest.json not found$"),
    (lambda f: (f / "manifest.json").write_text("{"), "manifest.json: not valid JSON"),
    # manifest header
    (lambda f: edit_manifest(f, lambda m: m.__setitem__("version", 3)),
     r"^manifest.json: version 3 is not supported \(this eiex reads 1 or 2\)$"),
    (lambda f: edit_manifest(f, lambda m: m.__setitem__("format", "eiex-eie-image")),
     "^manifest.json: format 'eiex-eie-image' is not 'eiex-xnor-image'$"),
    (lambda f: edit_manifest(f, lambda m: m.pop("output")), "^manifest.json lacks output$"),
    (lambda f: edit_manifest(f, lambda m: m["input"].__setitem__("kind", "bitplanes")),
     r"^manifest.json: input kind 'bitplanes' is not supported \(this eiex reads 'binary'\)$"),
    (lambda f: edit_manifest(f, lambda m: m["input"].__setitem__("threshold", "0.5")),
     "^manifest.json: input threshold must be a finite number, not '0.5'$"),
    (lambda f: edit_manifest(f, lambda m: m["output"].__setitem__("scale", [1.0, 2.0])),
     r"^manifest.json: output scale must be a list of 3 numbers \(one per output\)$"),
    (lambda f: edit_manifest(f, lambda m: m["output"]["bias"].__setitem__(1, float("nan"))),
     r"^manifest.json: output bias\[1\] must be a finite number, not nan$"),
    # layer table
    (lambda f: edit_manifest(f, lambda m: m["layers"][0].pop("simd")), "^manifest.json: layer 0 lacks simd$"),
    (layer(1, "in_features", 8), "^layer fc2 has in_features 8 but fc1 has out_features 7$"),
    (layer(0, "kind", "output"), "^layer fc1 is an output layer but only the last layer may be$"),
    (layer(1, "kind", "hidden"), "^the last layer fc2 must be an output layer, not 'hidden'$"),
    (layer(1, "thr_bits", 1), "^layer fc2: thr_bits must be an integer from 2 to 64, not 1$"),
    # pe 4 > out_features 3 is valid (NF = 1), but then the memories are those of pe 2
    (layer(1, "pe", 4), r"^l1.pe0.weights: depth 6, layer fc2 needs NF \* SF = 1 \* 3 = 3$"),
    (layer(0, "pe", 0), "^layer fc1: pe must be a positive integer, not 0$"),
    (lambda f: edit_manifest(f, lambda m: m.__setitem__("layers", [])), "^manifest.json: layers must be a non-empty list$"),
    # memory table
    (lambda f: edit_manifest(f, lambda m: m["memories"].remove(memory(m, "l1.pe1.weights"))),
     "^manifest.json: memory l1.pe1.weights is missing$"),
    (lambda f: edit_manifest(f, lambda m: m["memories"].remove(memory(m, "l0.pe1.thresholds"))),
     "^manifest.json: memory l0.pe1.thresholds is missing$"),
    (add_output_thresholds, "^l1.pe0.thresholds: layer fc2 is the output layer, which has no thresholds$"),
    (lambda f: edit_manifest(f, lambda m: m["memories"].append(dict(memory(m, "l0.pe0.weights")))),
     "^manifest.json: memory l0.pe0.weights is listed twice$"),
    (lambda f: edit_manifest(f, lambda m: memory(m, "l0.pe0.weights").__setitem__("name", "l0.pe2.weights")),
     "^manifest.json: memory 'l0.pe2.weights' is not part of this image's layers and PEs$"),
    (lambda f: edit_manifest(f, lambda m: m["memories"][0].pop("sha256")), "^a memory entry lacks sha256$"),
    (mem("l0.pe0.weights", "width", 5), "^l0.pe0.weights: width 5, layer fc1 has simd = 4$"),
    (mem("l0.pe1.thresholds", "width", 8), "^l0.pe1.thresholds: width 8, layer fc1 has thr_bits = 6$"),
    (mem("l1.pe0.weights", "depth", 7), r"^l1.pe0.weights: depth 7, layer fc2 needs NF \* SF = 2 \* 3 = 6$"),
    (mem("l0.pe0.thresholds", "depth", 3), "^l0.pe0.thresholds: depth 3, layer fc1 needs NF = 4$"),
    (mem("l0.pe1.weights", "kind", "thresholds"), "^l0.pe1.weights: kind 'thresholds', expected 'weights'$"),
    (mem("l0.pe1.weights", "pe", 0), "^l0.pe1.weights: pe 0, expected 1$"),
    (lambda f: set_words(f, "l1.pe0.weights", lambda w: w[:-1]), "^l1.pe0.weights: depth 5, layer fc2 needs"),
    # contents
    (lambda f: set_words(f, "l0.pe0.weights", lambda w: with_bits(w, 2, 0b1000)),
     r"^l0.pe0.weights: padding bit 3 of word 2 is 1 \(row 0, column 11 of a 7 x 10 layer\); padding bits must be 0$"),
    (lambda f: set_words(f, "l0.pe1.weights", lambda w: with_bits(w, 9, 0b0001)),
     r"^l0.pe1.weights: padding bit 0 of word 9 is 1 \(row 7, column 0 of a 7 x 10 layer\)"),
    (lambda f: set_words(f, "l1.pe1.weights", lambda w: with_bits(w, 5, 0b100)),
     r"^l1.pe1.weights: padding bit 2 of word 5 is 1 \(row 3, column 8 of a 3 x 7 layer\)"),
]


@pytest.mark.parametrize("tamper, message", TAMPERS)
def test_tampered_image_is_named(tmp_path, tamper, message):
    folder = tmp_path / "img"
    write_image(make_image(), folder, formats=("mif",))
    load_image(folder)  # sound before tampering
    tamper(folder)
    with pytest.raises(EiexError, match=message) as info:
        load_image(folder)
    assert "\n" not in str(info.value)


def test_padding_thresholds_may_hold_anything(tmp_path):
    folder = tmp_path / "img"
    image = make_image()
    write_image(image, folder)
    set_words(folder, "l0.pe1.thresholds", lambda w: w[:3] + [0b111111])  # row 7 of 7 rows is padding
    assert_same_image(image, load_image(folder))


# ---- more PEs than rows, more lanes than columns (spec section 4: P > M, S > K)

# 6 -> 3 -> 2: fc1 (P = 5, S = 9) has NF = SF = 1, PEs 3 and 4 hold only padding rows, lanes 6 .. 8
# only padding columns; fc2 (P = 4, S = 2) has NF = 1, SF = 2, PEs 2 and 3 hold only padding rows
PADDED = [(5, 9), (4, 2)]


def section4_bit(layer, p, address, i):
    """Section 4's table read literally: bit ``i`` of word ``nf * SF + sf`` of PE ``p`` is the weight of
    row ``nf * P + p``, column ``sf * S + i`` (1 for +1), and 0 for a padding row or column."""
    sf_count = -(-layer.in_features // layer.simd)
    nf, sf = divmod(address, sf_count)
    row, col = nf * layer.pe + p, sf * layer.simd + i
    return int(row < layer.out_features and col < layer.in_features and layer.weights[row][col] == 1)


def test_round_trip_with_more_pes_than_rows_and_lanes_than_columns(tmp_path):
    image = random_image(3, (6, 3, 2), PADDED)
    folder = tmp_path / "img"
    manifest = write_image(image, folder, formats=memfiles.FORMATS)
    assert [(m["name"], m["width"], m["depth"]) for m in manifest["memories"]] == \
        [(f"l0.pe{p}.weights", 9, 1) for p in range(5)] + [(f"l0.pe{p}.thresholds", 6, 1) for p in range(5)] + \
        [(f"l1.pe{p}.weights", 2, 2) for p in range(4)]
    for m in manifest["memories"]:  # every word of every file, bit by bit
        l, p = int(m["name"][1]), m["pe"]
        layer = image.layers[l]
        for fmt, path in m["files"].items():
            words = memfiles.decode((folder / path).read_bytes(), m["width"], fmt, m["depth"])
            if m["kind"] == "weights":
                assert [[(w >> i) & 1 for i in range(m["width"])] for w in words] == \
                    [[section4_bit(layer, p, a, i) for i in range(m["width"])] for a in range(m["depth"])], m["name"]
            else:  # a real row's threshold in 6-bit two's complement, a padding row's 0
                assert words == [int(layer.thresholds[p]) & 0b111111 if p < layer.out_features else 0], m["name"]
    back = load_image(folder)
    assert_same_image(image, back)
    assert [(l.pe, l.simd, l.nf, l.sf) for l in back.layers] == [(5, 9, 1, 1), (4, 2, 1, 2)]
    bits = np.array(list(np.ndindex(*[2] * 6)))  # all 64 inputs
    assert np.array_equal(golden.run(back, bits), golden.run(image, bits))


@pytest.mark.parametrize("tamper, message", [
    (lambda f: set_words(f, "l0.pe4.weights", lambda w: with_bits(w, 0, 0b1)),
     r"^l0.pe4.weights: padding bit 0 of word 0 is 1 \(row 4, column 0 of a 3 x 6 layer\); padding bits must be 0$"),
    (lambda f: set_words(f, "l0.pe1.weights", lambda w: with_bits(w, 0, 0b100000000)),
     r"^l0.pe1.weights: padding bit 8 of word 0 is 1 \(row 1, column 8 of a 3 x 6 layer\)"),
    (lambda f: set_words(f, "l1.pe2.weights", lambda w: with_bits(w, 1, 0b10)),
     r"^l1.pe2.weights: padding bit 1 of word 1 is 1 \(row 2, column 3 of a 2 x 3 layer\)"),
    (lambda f: edit_manifest(f, lambda m: m["memories"].remove(memory(m, "l0.pe4.thresholds"))),
     "^manifest.json: memory l0.pe4.thresholds is missing$"),
])
def test_padding_pes_and_lanes_are_checked(tmp_path, tamper, message):
    folder = tmp_path / "img"
    write_image(random_image(3, (6, 3, 2), PADDED), folder)
    tamper(folder)
    with pytest.raises(EiexError, match=message):
        load_image(folder)


def test_thresholds_of_padding_pes_may_hold_anything(tmp_path):
    folder = tmp_path / "img"
    image = random_image(3, (6, 3, 2), PADDED)
    write_image(image, folder)
    set_words(folder, "l0.pe3.thresholds", lambda w: [0b011111])
    set_words(folder, "l0.pe4.thresholds", lambda w: [0b100000])
    assert_same_image(image, load_image(folder))


# ---- atomic writes

def test_existing_folder_refused_without_force(tmp_path):
    folder = tmp_path / "img"
    write_image(make_image(4), folder)
    before = (folder / "manifest.json").read_bytes()
    with pytest.raises(EiexError, match="already exists"):
        write_image(make_image(5), folder)
    assert (folder / "manifest.json").read_bytes() == before
    write_image(make_image(5), folder, force=True)
    assert_same_image(make_image(5), load_image(folder))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img"]


@pytest.mark.parametrize("target", ["memfiles.encode", "json.dumps"])
def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch, target):
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3 or target == "json.dumps":
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    module, name = target.split(".")
    owner = getattr(image_folder, module)
    real = getattr(owner, name)
    monkeypatch.setattr(owner, name, broken)
    with pytest.raises(OSError, match="No space left"):
        write_image(make_image(), tmp_path / "img", formats=memfiles.FORMATS)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_overwrite_keeps_the_old_image(tmp_path, monkeypatch):
    folder = tmp_path / "img"
    write_image(make_image(4), folder)
    monkeypatch.setattr(image_folder.json, "dumps", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        write_image(make_image(5), folder, force=True)
    monkeypatch.undo()
    assert_same_image(make_image(4), load_image(folder))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img"]


def test_unknown_format_refused_before_writing(tmp_path):
    with pytest.raises(EiexError, match="unknown memory file format 'txt'"):
        write_image(make_image(), tmp_path / "img", formats=("txt",))
    assert list(tmp_path.iterdir()) == []
