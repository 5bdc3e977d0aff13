"""EIE image folders (spec sections 4, 8, 9): round trips, the spec's bit order checked by hand,
Huffman streams decoded bit by bit, every tampering named, atomic writes."""

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eiex.hw.eie import golden
from eiex.sw.images import folder as image_folder
from eiex.sw.images import memfiles
from eiex.sw.images.eie.encode import IntLayer, build_image
from eiex.sw.images.eie.files import load_image, write_image
from eiex.sw.images.eie.image import EngineParams
from eiex.errors import EiexError
from eiex.sw.compress.huffman import canonical_codes

PARAMS = dict(idx_bits=3, rel_bits=2, act_bits=8, act_frac=4, weight_bits=8, bias_bits=16, ptr_bits=12,
              entries_per_word=3)


def make_image(seed, n_pe=3, sizes=(10, 7, 2), density=None, with_bias=True):
    """Random sparse layers: an empty column, a long gap (many fillers with rel_bits = 2), negative
    codebook values and biases."""
    rng = np.random.default_rng(seed)
    params = EngineParams(n_pe=n_pe, **PARAMS)
    layers = []
    for i in range(1, len(sizes)):
        rows, cols = sizes[i], sizes[i - 1]
        d = rng.random() if density is None else density
        codes = (rng.random((rows, cols)) < d) * rng.integers(1, 8, (rows, cols))
        codes[:, 0] = 0  # an empty column
        if rows > 1:
            codes[:-1, -1] = 0  # a long gap: only the last row of the last column
            codes[-1, -1] = 5
        bias = rng.integers(-500, 500, rows) if with_bias else np.zeros(rows, dtype=np.int64)
        layers.append(IntLayer(codes, np.r_[0, rng.integers(-128, 128, 7)], bias, relu=i < len(sizes) - 1,
                               weight_frac=3, name=f"fc{i}"))
    return build_image(layers, params, input={"pixel_scale": 1 / 255, "mean": 0.1307, "std": 0.3081})


def assert_same_image(a, b):
    assert b.engine == a.engine and b.layers == a.layers and b.input == a.input and b.row_order == a.row_order
    assert np.array_equal(b.codebook, a.codebook)
    assert len(b.pes) == len(a.pes)
    for pa, pb in zip(a.pes, b.pes):
        for field in ("v", "z", "ptr", "bias"):
            assert np.array_equal(getattr(pa, field), getattr(pb, field)), field


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), n_pe=st.integers(1, 5),
       sizes=st.lists(st.integers(1, 12), min_size=2, max_size=4), huffman=st.booleans())
def test_round_trip_and_golden_outputs(tmp_path_factory, seed, n_pe, sizes, huffman):
    image = make_image(seed, n_pe, tuple(sizes))
    out = tmp_path_factory.mktemp("img") / "image"
    write_image(image, out, formats=memfiles.FORMATS, huffman_max_len=5 if huffman else None)
    back = load_image(out)
    assert_same_image(image, back)
    x = np.random.default_rng(seed).integers(-128, 128, (5, sizes[0]))
    assert np.array_equal(golden.run(back, x), golden.run(image, x))
    # every format of every memory holds the same words as the hex file
    manifest = json.loads((out / "manifest.json").read_text())
    for m in manifest["memories"]:
        hexed = memfiles.decode((out / m["files"]["hex"]).read_bytes(), m["width"], "hex", m["depth"])
        for fmt, path in m["files"].items():
            assert memfiles.decode((out / path).read_bytes(), m["width"], fmt, m["depth"]) == hexed


def test_pe_without_rows_and_row_order(tmp_path):
    image = make_image(7, n_pe=5, sizes=(6, 3, 2))  # PEs 3, 4 own no row of either layer
    image.row_order = {"fc1": [2, 0, 1], "fc2": [0, 1]}
    write_image(image, tmp_path / "img")
    manifest = json.loads((tmp_path / "img" / "manifest.json").read_text())
    pe4 = {m["name"]: m for m in manifest["memories"] if m["pe"] == 4}
    assert pe4["pe4.spmat"]["depth"] == 1  # no entries, still one 0 word
    assert (tmp_path / "img" / "pe4.spmat.hex").read_text() == "0" * 4 + "\n"  # 3 * 5 bits = 15 -> 4 digits
    assert manifest["row_order"] == {"fc1": [2, 0, 1], "fc2": [0, 1]}
    assert_same_image(image, load_image(tmp_path / "img"))


def test_manifest_structure(tmp_path):
    image = make_image(3, n_pe=2)
    write_image(image, tmp_path / "img", formats=("mif", "bin"), huffman_max_len=6)
    folder = tmp_path / "img"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "eiex-eie-image" and manifest["version"] == 1
    assert manifest["engine"] == {"n_pe": 2, **PARAMS}
    assert manifest["layers"] == [layer.to_json() for layer in image.layers]
    assert manifest["layers"][1]["ptr_base"] == 10 + 1 and manifest["layers"][1]["bias_base"] == 4  # ceil(7/2)
    assert manifest["input"] == image.input
    assert set(manifest["huffman"]) == {"max_len", "lengths"} and len(manifest["huffman"]["lengths"]) == 2**5
    names = [m["name"] for m in manifest["memories"]]
    assert sorted(names) == sorted([f"pe{p}.{k}" for p in range(2) for k in ("spmat", "ptr", "bias", "spmat_huff")]
                                   + ["codebook"])
    e = image.engine
    for m in manifest["memories"]:
        assert set(m["files"]) == {"hex", "mif", "bin"}  # hex always written
        for fmt, path in m["files"].items():
            assert path == f"{m['name']}.{fmt}"
            assert m["sha256"][fmt] == hashlib.sha256((folder / path).read_bytes()).hexdigest()
        expected = {
            "spmat": (e.spmat_width, max(1, -(-len(image.pes[m["pe"] or 0].v) // 3))),
            "ptr": (12, 11 + 8), "bias": (16, 4 + 1), "codebook": (8, 2 * 8),
        }.get(m["kind"])
        if expected:
            assert (m["width"], m["depth"]) == expected, m["name"]
        assert (m["pe"] is None) == (m["kind"] == "codebook")
    # signed values are stored as their two's complement, masked to width
    bias_words = [int(x, 16) for x in (folder / "pe0.bias.hex").read_text().split()]
    expected_bias = image.pes[0].bias.tolist()
    assert bias_words == [b & 0xFFFF for b in expected_bias]
    cb_words = [int(x, 16) for x in (folder / "codebook.hex").read_text().split()]
    assert cb_words == [c & 0xFF for c in image.codebook.tolist()]


def test_spmat_bit_order_by_hand(tmp_path):
    image = make_image(1, n_pe=1, sizes=(6, 5))
    write_image(image, tmp_path / "img")
    pe = image.pes[0]
    lines = (tmp_path / "img" / "pe0.spmat.hex").read_text().split("\n")
    assert lines[-1] == "" and all(len(x) == 4 and x == x.lower() for x in lines[:-1])  # 15 bits -> 4 digits
    # entry k of a word at bits [k*5, (k+1)*5): v in the low 3 bits, z in the high 2
    decoded = []
    for line in lines[:-1]:
        bits = format(int(line, 16), "015b")[::-1]  # bits[i] is bit i
        for k in range(3):
            field = bits[k * 5 : (k + 1) * 5]
            v = sum(int(field[i]) << i for i in range(3))
            z = sum(int(field[3 + i]) << i for i in range(2))
            decoded.append((v, z))
    n = len(pe.v)
    assert decoded[:n] == list(zip(pe.v.tolist(), pe.z.tolist()))
    assert all(entry == (0, 0) for entry in decoded[n:])


@pytest.mark.parametrize("seed, n_pe, max_len", [(5, 3, 4), (6, 1, 8), (8, 2, 31)])
def test_huffman_stream_decoded_bit_by_bit(tmp_path, seed, n_pe, max_len):
    image = make_image(seed, n_pe, sizes=(12, 9, 3))
    write_image(image, tmp_path / "img", huffman_max_len=max_len)
    folder = tmp_path / "img"
    manifest = json.loads((folder / "manifest.json").read_text())
    lengths = manifest["huffman"]["lengths"]
    assert manifest["huffman"]["max_len"] == max_len and max(lengths) <= max_len
    # canonical codes rebuilt here from the lengths (RFC 1951 3.2.2), independently of the library
    code, table = 0, {}
    for length in range(1, max(lengths) + 1):
        for s in range(len(lengths)):
            if lengths[s] == length:
                table[format(code, f"0{length}b")] = s
                code += 1
        code <<= 1
    assert {v: k for k, v in table.items()} == {s: format(int(c), f"0{lengths[s]}b")
                                                for s, c in enumerate(canonical_codes(np.array(lengths))) if lengths[s]}
    e = image.engine
    for p, pe in enumerate(image.pes):
        m = next(m for m in manifest["memories"] if m["name"] == f"pe{p}.spmat_huff")
        assert m["kind"] == "spmat_huff" and m["pe"] == p and m["width"] == e.spmat_width
        words = [int(x, 16) for x in (folder / m["files"]["hex"]).read_text().split()]
        stream = "".join(format(w, f"0{m['width']}b") for w in words)  # MSB of word 0 first
        assert len(words) == m["depth"] == max(1, -(-m["bits"] // m["width"]))
        assert set(stream[m["bits"] :]) <= {"0"}  # unused bits are 0
        decoded, current = [], ""
        for bit in stream[: m["bits"]]:
            current += bit
            if current in table:
                decoded.append(table[current])
                current = ""
        assert current == ""
        expected = ((pe.z << e.idx_bits) | pe.v).tolist()
        assert decoded == expected and m["symbols"] == len(expected)


def test_huffman_single_symbol_gets_one_bit(tmp_path):
    image = make_image(2, n_pe=1, sizes=(4, 3), density=0.0)  # only the long-gap entries of the last column
    write_image(image, tmp_path / "img", huffman_max_len=3)
    manifest = json.loads((tmp_path / "img" / "manifest.json").read_text())
    assert sorted(set(manifest["huffman"]["lengths"]) - {0}) in ([1], [1, 1])
    assert_same_image(image, load_image(tmp_path / "img"))


def test_huffman_too_short_max_len_is_refused(tmp_path):
    image = make_image(9, n_pe=1, sizes=(12, 12), density=0.9)
    with pytest.raises(EiexError, match="codes of at most 1 bits"):
        write_image(image, tmp_path / "img", huffman_max_len=1)
    assert not (tmp_path / "img").exists()


# ---- tampering: each check fires with its own one-line message

def set_words(folder, name, change):
    """Rewrite the hex file of memory ``name`` through ``change(words) -> words``, fixing its sha256."""
    manifest = json.loads((folder / "manifest.json").read_text())
    m = next(m for m in manifest["memories"] if m["name"] == name)
    words = memfiles.decode((folder / m["files"]["hex"]).read_bytes(), m["width"], "hex")
    words = change(words)
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


def swap(words, i, j):
    words = list(words)
    words[i], words[j] = words[j], words[i]
    return words


def with_item(words, i, value):
    words = list(words)
    words[i] = value
    return words


def memory(m, name):
    return next(x for x in m["memories"] if x["name"] == name)


TAMPERS = [
    (lambda f: flip_digit(f, "pe2.ptr.hex"), "^pe2.ptr.hex: sha256 mismatch"),
    (lambda f: flip_digit(f, "pe0.spmat.mif"), "^pe0.spmat.mif: sha256 mismatch"),
    (lambda f: flip_digit(f, "pe1.spmat_huff.hex"), "^pe1.spmat_huff.hex: sha256 mismatch"),
    (lambda f: (f / "pe0.bias.hex").unlink(), "^pe0.bias: file pe0.bias.hex is missing"),
    (lambda f: (f / "manifest.json").unlink(), "manifest.json not found"),
    (lambda f: (f / "manifest.json").write_text("{"), "manifest.json: not valid JSON"),
    (lambda f: edit_manifest(f, lambda m: m.__setitem__("version", 2)), "version 2 is not supported"),
    (lambda f: edit_manifest(f, lambda m: m.__setitem__("format", "other")), "format 'other' is not 'eiex-eie-image'"),
    (lambda f: edit_manifest(f, lambda m: m.pop("memories")), "manifest.json lacks memories"),
    (lambda f: edit_manifest(f, lambda m: m["engine"].__setitem__("idx_bits", 0)), "idx_bits must be an integer from 1"),
    (lambda f: edit_manifest(f, lambda m: m["engine"].pop("n_pe") and m["engine"].__setitem__("x", 1)),
     "bad engine or layer fields"),
    (lambda f: edit_manifest(f, lambda m: m["memories"].remove(memory(m, "pe1.ptr"))), "memory pe1.ptr is missing"),
    (lambda f: edit_manifest(f, lambda m: m["memories"].remove(memory(m, "codebook"))), "codebook memory is missing"),
    (lambda f: edit_manifest(f, lambda m: memory(m, "pe0.bias").__setitem__("width", 17)),
     "pe0.bias: width 17, the engine parameters say 16"),
    (lambda f: edit_manifest(f, lambda m: memory(m, "pe0.ptr").__setitem__("depth", 5)), "pe0.ptr.hex: 19 words, expected 5"),
    (lambda f: edit_manifest(f, lambda m: m["layers"][1].__setitem__("cols", 6)), "fc2 has 6 columns but fc1 has 7 rows"),
    (lambda f: edit_manifest(f, lambda m: m["layers"][1].__setitem__("bias_base", 2)), "do not follow the layout"),
    (lambda f: edit_manifest(f, lambda m: memory(m, "pe0.spmat_huff").__setitem__("symbols", 1)),
     "pe0.spmat_huff: the Huffman stream does not decode to the entries"),
    (lambda f: edit_manifest(f, lambda m: m["huffman"]["lengths"].pop()), "huffman: 31 code lengths, expected 2\\*\\*5"),
    # decreasing pointers in the first layer (words 3 and 8 differ for this seed)
    (lambda f: set_words(f, "pe0.ptr", lambda w: swap(w, 3, 8)), "^pe0.ptr: pointers of layer fc1 decrease"),
    (lambda f: set_words(f, "pe0.ptr", lambda w: with_item(w, 3, 4000)), "pe0.ptr: pointers of layer fc1 decrease"),
    (lambda f: set_words(f, "pe0.ptr", lambda w: with_item(w, 10, 4000)),
     "^pe0.ptr: pointer 10 is 4000, past the \\d+ entries of pe0 \\(the last pointer of the last layer\\)$"),
    (lambda f: set_words(f, "pe0.ptr", lambda w: with_item(w, 18, 4000)), "^pe0.ptr points past the \\d+ entries of pe0.spmat$"),
    (lambda f: set_words(f, "codebook", lambda w: with_item(w, 8, 7)), "codebook of layer fc2: entry 0 is 7, must be 0"),
    (lambda f: set_words(f, "codebook", lambda w: w[:-1]), "codebook: depth 15 holds fewer than 2 codebooks"),
    (lambda f: set_words(f, "pe0.spmat", lambda w: [x | (0b11 << 3) | (0b11 << 8) | (0b11 << 13) for x in w]),
     "^pe0, layer fc1: .*outside"),
]


@pytest.mark.parametrize("tamper, message", TAMPERS)
def test_tampered_image_is_named(tmp_path, tamper, message):
    folder = tmp_path / "img"
    write_image(make_image(11, n_pe=3, density=0.5), folder, formats=("mif",), huffman_max_len=8)
    load_image(folder)  # sound before tampering
    tamper(folder)
    with pytest.raises(EiexError, match=message) as info:
        load_image(folder)
    assert "\n" not in str(info.value)


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
        write_image(make_image(4), tmp_path / "img", formats=memfiles.FORMATS)
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_refused_before_writing(tmp_path):
    with pytest.raises(EiexError, match="unknown memory file format 'txt'"):
        write_image(make_image(4), tmp_path / "img", formats=("txt",))
    assert list(tmp_path.iterdir()) == []
