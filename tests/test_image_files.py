"""Memory files and EIE image folders: exact formats, round trips, tampering, atomic writes."""

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eiex.hw.eie import golden
from eiex.sw import eie_files, memfiles
from eiex.sw.eie_encode import IntLayer, build_image
from eiex.sw.eie_files import load_image, write_image
from eiex.sw.eie_image import EngineParams
from eiex.sw.errors import EiexError
from eiex.sw.huffman import canonical_codes


def test_exact_text_of_each_format():
    words, width = [0x0, 0xABC, 0x7], 12
    assert memfiles.encode(words, width, "hex") == b"000\nabc\n007\n"
    assert memfiles.encode(words, width, "bin") == bytes([0, 0, 0xBC, 0x0A, 7, 0])
    assert memfiles.encode(words, width, "coe") == (
        b"memory_initialization_radix=16;\nmemory_initialization_vector=\n000,\nabc,\n007;\n")
    assert memfiles.encode(words, width, "mif") == (
        b"WIDTH=12;\nDEPTH=3;\nADDRESS_RADIX=UNS;\nDATA_RADIX=HEX;\nCONTENT BEGIN\n"
        b"0 : 000;\n1 : abc;\n2 : 007;\nEND;\n")
    ihex = memfiles.encode(words, width, "ihex").decode().split()
    payload = bytes([0, 0, 0xBC, 0x0A, 7, 0])
    record = bytes([6, 0, 0, 0]) + payload
    assert ihex[0] == ":" + (record + bytes([-sum(record) & 0xFF])).hex().upper()
    assert ihex[-1] == ":00000001FF"


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 100), fmt=st.sampled_from(memfiles.FORMATS), data=st.data())
def test_round_trip(width, fmt, data):
    words = data.draw(st.lists(st.integers(0, 2**width - 1), min_size=1, max_size=20))
    assert memfiles.decode(memfiles.encode(words, width, fmt), width, fmt) == words


@pytest.mark.parametrize("fmt, content, message", [
    ("hex", b"00g\n", "not hexadecimal"),
    ("hex", b"1000\n", "wider than 12 bits"),
    ("bin", b"\x00\x00\x00", "not a whole number"),
    ("coe", b"memory_initialization_radix=10;\nmemory_initialization_vector=1;", "radix-16 COE"),
    ("mif", b"WIDTH=8;\nDEPTH=1;\nADDRESS_RADIX=UNS;\nDATA_RADIX=HEX;\nCONTENT BEGIN\n0 : 00;\nEND;\n", "WIDTH=8"),
    ("ihex", b":0100000000FE\n:00000001FF\n", "invalid Intel HEX"),
])
def test_malformed_files(fmt, content, message):
    with pytest.raises(EiexError, match=message):
        memfiles.decode(content, 12, fmt)


def random_image(seed, n_pe=3, rows=(7, 2), cols=10):
    rng = np.random.default_rng(seed)
    params = EngineParams(n_pe=n_pe, idx_bits=3, rel_bits=2, act_bits=8, act_frac=4, weight_bits=8,
                          bias_bits=16, entries_per_word=3)
    layers, previous = [], cols
    for i, r in enumerate(rows):
        codes = (rng.random((r, previous)) < rng.random()) * rng.integers(1, 8, (r, previous))
        codes[:, 0] = 0  # an empty column
        layers.append(IntLayer(codes, np.r_[0, rng.integers(-100, 100, 7)], rng.integers(-500, 500, r),
                               relu=i == 0, weight_frac=3))
        previous = r
    return build_image(layers, params, input={"pixel_scale": 1.0, "mean": 0.0, "std": 1.0})


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), n_pe=st.integers(1, 9))
def test_image_round_trip(tmp_path_factory, seed, n_pe):
    image = random_image(seed, n_pe=n_pe)
    out = tmp_path_factory.mktemp("img") / "image"
    write_image(image, out, formats=memfiles.FORMATS, huffman_max_len=6)
    back = load_image(out)
    assert back.engine == image.engine and back.layers == image.layers and back.input == image.input
    for a, b in zip(image.pes, back.pes):
        for field in ("v", "z", "ptr", "bias"):
            assert np.array_equal(getattr(a, field), getattr(b, field))
    x = np.random.default_rng(seed).integers(-128, 128, (4, 10))
    assert np.array_equal(golden.run(back, x), golden.run(image, x))


def test_spmat_bit_order_and_huffman_stream_by_hand(tmp_path):
    image = random_image(1, n_pe=1)
    write_image(image, tmp_path / "img", huffman_max_len=6)
    folder = tmp_path / "img"
    manifest = json.loads((folder / "manifest.json").read_text())
    e = image.engine
    words = [int(line, 16) for line in (folder / "pe0.spmat.hex").read_text().split()]
    entries = [(w >> (k * e.entry_bits)) & (2**e.entry_bits - 1) for w in words for k in range(e.entries_per_word)]
    pe = image.pes[0]
    expected = ((pe.z << e.idx_bits) | pe.v).tolist()
    assert entries[: len(expected)] == expected and not any(entries[len(expected):])
    # Huffman: rebuild the canonical code from the lengths and read the stream MSB first
    lengths = manifest["huffman"]["lengths"]
    codes = canonical_codes(np.array(lengths))
    table = {format(int(codes[s]), f"0{lengths[s]}b"): s for s in range(len(lengths)) if lengths[s]}
    entry = next(m for m in manifest["memories"] if m["name"] == "pe0.spmat_huff")
    bits = "".join(format(int(line, 16), f"0{entry['width']}b")
                   for line in (folder / "pe0.spmat_huff.hex").read_text().split())[: entry["bits"]]
    decoded, current = [], ""
    for bit in bits:
        current += bit
        if current in table:
            decoded.append(table[current])
            current = ""
    assert decoded == expected and current == ""


def rewrite(folder, name, content):
    """Replace a file and fix its sha256 in the manifest, so a deeper check is what fires."""
    (folder / name).write_bytes(content)
    manifest = json.loads((folder / "manifest.json").read_text())
    for m in manifest["memories"]:
        for fmt, path in m["files"].items():
            if path == name:
                m["sha256"][fmt] = hashlib.sha256(content).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))


def edit_manifest(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("tamper, message", [
    (lambda f: (f / "pe1.ptr.hex").write_text((f / "pe1.ptr.hex").read_text().replace("0", "1", 1)), "pe1.ptr.hex: sha256 mismatch"),
    (lambda f: (f / "pe0.bias.hex").unlink(), "pe0.bias: file pe0.bias.hex is missing"),
    (lambda f: edit_manifest(f, lambda m: m.__setitem__("version", 2)), "version 2 is not supported"),
    (lambda f: edit_manifest(f, lambda m: m.__setitem__("format", "other")), "format 'other'"),
    (lambda f: rewrite(f, "pe0.ptr.hex", b"".join(b"%04x\n" % v for v in [5, 2] + [9] * 17)), "pointers of layer fc1 decrease"),
    (lambda f: rewrite(f, "codebook.hex", b"".join(b"%02x\n" % v for v in [7] + [0] * 15)), "entry 0 is 7, must be 0"),
    (lambda f: edit_manifest(f, lambda m: m["layers"][1].__setitem__("ptr_base", 3)), "do not follow the layout"),
    (lambda f: (f / "manifest.json").write_text("{"), "not valid JSON"),
])
def test_tampered_images(tmp_path, tamper, message):
    folder = tmp_path / "img"
    write_image(random_image(2), folder)
    tamper(folder)
    with pytest.raises(EiexError, match=message):
        load_image(folder)


def test_row_out_of_range_is_named(tmp_path):
    folder = tmp_path / "img"
    image = random_image(3, n_pe=1)
    write_image(image, folder)
    words = [int(line, 16) for line in (folder / "pe0.spmat.hex").read_text().split()]
    words[0] |= 3 << image.engine.idx_bits  # the first entry's z at its largest: rows run off the end
    rewrite(folder, "pe0.spmat.hex", b"".join(b"%06x\n" % w for w in words))
    with pytest.raises(EiexError, match="outside the matrix"):
        load_image(folder)


def test_existing_folder_refused_and_failed_write_leaves_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "img"
    write_image(random_image(4), folder)
    with pytest.raises(EiexError, match="already exists"):
        write_image(random_image(4), folder)

    def broken(words, width, fmt):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(eie_files.memfiles, "encode", broken)
    with pytest.raises(OSError):
        write_image(random_image(4), tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img"]
