"""One memory's words as files (spec section 9): exact text, round trips, every malformed input."""

import pytest
from hypothesis import given, settings, strategies as st

from eiex.sw.images import memfiles
from eiex.errors import EiexError

WORDS, WIDTH = [0x0, 0xABC, 0x7], 12
BIN = bytes([0x00, 0x00, 0xBC, 0x0A, 0x07, 0x00])  # 2 bytes per 12-bit word, little-endian


def test_hex_text():
    assert memfiles.encode(WORDS, WIDTH, "hex") == b"000\nabc\n007\n"


def test_bin_bytes():
    assert memfiles.encode(WORDS, WIDTH, "bin") == BIN


def test_coe_text():
    assert memfiles.encode(WORDS, WIDTH, "coe") == (
        b"memory_initialization_radix=16;\nmemory_initialization_vector=\n000,\nabc,\n007;\n")


def test_mif_text():
    assert memfiles.encode(WORDS, WIDTH, "mif") == (
        b"WIDTH=12;\nDEPTH=3;\nADDRESS_RADIX=UNS;\nDATA_RADIX=HEX;\nCONTENT BEGIN\n"
        b"0 : 000;\n1 : abc;\n2 : 007;\nEND;\n")


def test_ihex_records_of_the_bin_image():
    lines = memfiles.encode(WORDS, WIDTH, "ihex").decode().split()
    record = bytes([len(BIN), 0x00, 0x00, 0x00]) + BIN  # count, address 0, type 00 (data)
    checksum = (-sum(record)) & 0xFF
    assert lines == [":" + (record + bytes([checksum])).hex().upper(), ":00000001FF"]


def test_wide_words_hex_digits_and_bytes():
    word = (1 << 95) | 0x1234
    assert memfiles.encode([word], 96, "hex") == (format(word, "024x") + "\n").encode()
    assert memfiles.encode([word], 96, "bin") == word.to_bytes(12, "little")
    assert memfiles.encode([1], 1, "hex") == b"1\n"
    assert memfiles.encode([1], 9, "bin") == b"\x01\x00"


@settings(max_examples=80, deadline=None)
@given(width=st.integers(1, 100), fmt=st.sampled_from(memfiles.FORMATS), data=st.data())
def test_round_trip(width, fmt, data):
    words = data.draw(st.lists(st.integers(0, 2**width - 1), min_size=0, max_size=30))
    content = memfiles.encode(words, width, fmt)
    assert memfiles.decode(content, width, fmt) == words
    assert memfiles.decode(content, width, fmt, depth=len(words)) == words


def test_decode_accepts_uppercase_and_crlf():
    assert memfiles.decode(b"000\r\nABC\r\n007\r\n", WIDTH, "hex") == WORDS


MIF_HEAD = b"WIDTH=12;\nDEPTH=2;\nADDRESS_RADIX=UNS;\nDATA_RADIX=HEX;\nCONTENT BEGIN\n"


@pytest.mark.parametrize("fmt, content, message", [
    ("hex", b"000\n0g0\n", "hex: word 1 '0g0' is not hexadecimal"),
    ("hex", b"1000\n", "hex: word 0 \\(0x1000\\) is wider than 12 bits"),
    ("hex", b"\xff\n", "hex: not a text file"),
    ("bin", b"\x00\x00\x00", "bin: 3 bytes is not a whole number of 2-byte words"),
    ("bin", b"\x00\x10", "bin: word 0 \\(0x1000\\) is wider than 12 bits"),
    ("coe", b"memory_initialization_radix=10;\nmemory_initialization_vector=1;", "COE radix 10 is not supported"),
    ("coe", b"memory_initialization_radix=16;\nmemory_initialization_vector=1,2", "not a radix-16 COE file"),
    ("coe", b"memory_initialization_radix=16;\nmemory_initialization_vector=1,,2;", "word 1 '' is not hexadecimal"),
    ("mif", b"DEPTH=1;\nCONTENT BEGIN\n0 : 0;\nEND;\n", "malformed MIF header"),
    ("mif", MIF_HEAD.replace(b"12", b"8") + b"0 : 0;\n1 : 0;\nEND;\n", "MIF WIDTH=8, expected 12"),
    ("mif", MIF_HEAD + b"0 : 0;\n1 : 0;\n", "malformed MIF header or missing END;"),
    ("mif", MIF_HEAD + b"0 : 0;\nEND;\n", "MIF DEPTH=2 but address 1 has no word"),
    ("mif", MIF_HEAD + b"0 : 0;\n2 : 0;\nEND;\n", "bad MIF content line '2 : 0'"),
    ("mif", MIF_HEAD + b"0 : 0;\n0 : 1;\nEND;\n", "MIF address 0 given twice"),
    ("mif", MIF_HEAD + b"0 : 0;\n1 : x;\nEND;\n", "bad MIF content line '1 : x'"),
    ("ihex", b":0100000000FE\n:00000001FF\n", "invalid Intel HEX \\(Record at line 1 has invalid checksum\\)"),
    ("ihex", b":0100050000FA\n:00000001FF\n", "must cover addresses 0 .. 0 without holes"),
    ("ihex", b"junk\n", "invalid Intel HEX"),
])
def test_malformed_input(fmt, content, message):
    with pytest.raises(EiexError, match=message):
        memfiles.decode(content, WIDTH, fmt, where=f"f.{fmt}")


@pytest.mark.parametrize("fmt", memfiles.FORMATS)
def test_wrong_word_count(fmt):
    with pytest.raises(EiexError, match=f"f.{fmt}: 3 words, expected 4"):
        memfiles.decode(memfiles.encode(WORDS, WIDTH, fmt), WIDTH, fmt, depth=4, where=f"f.{fmt}")


def test_encode_refuses_words_that_do_not_fit_and_unknown_formats():
    with pytest.raises(EiexError, match="word 1 \\(4096\\) does not fit 12 bits"):
        memfiles.encode([0, 4096], WIDTH, "hex")
    with pytest.raises(EiexError, match="word 0 \\(-1\\) does not fit 12 bits"):
        memfiles.encode([-1], WIDTH, "bin")
    with pytest.raises(EiexError, match="unknown memory file format 'txt'"):
        memfiles.encode(WORDS, WIDTH, "txt")
    with pytest.raises(EiexError, match="unknown memory file format 'txt'"):
        memfiles.decode(b"", WIDTH, "txt")
