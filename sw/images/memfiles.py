"""One memory's words as a file, in the formats boards and tools load (EIE spec section 9).

``hex`` ($readmemh: a word per line, lowercase, zero-padded), ``bin`` (little-endian words),
``coe`` (Xilinx), ``mif`` (Intel) and ``ihex`` (Intel HEX records of the ``bin`` bytes, through the
``intelhex`` package). Words are Python ints, any width; parsing is strict and every failure is one
line.
"""

from __future__ import annotations

import io
import re

from intelhex import IntelHex, IntelHexError

from eiex.errors import EiexError

FORMATS = ("hex", "bin", "coe", "mif", "ihex")


def _digits(width: int) -> int:
    return -(-width // 4)


def _bytes_per_word(width: int) -> int:
    return -(-width // 8)


def _check_words(words: list[int], width: int) -> None:
    limit = 1 << width
    for address, word in enumerate(words):
        if not 0 <= word < limit:
            raise EiexError(f"word {address} ({word}) does not fit {width} bits")


def encode(words: list[int], width: int, fmt: str) -> bytes:
    """The file content of ``words`` (unsigned, each below ``2**width``) in format ``fmt``."""
    _check_words(words, width)
    digits = _digits(width)
    hexed = [format(w, f"0{digits}x") for w in words]
    if fmt == "hex":
        return "".join(h + "\n" for h in hexed).encode()
    if fmt == "bin":
        return _to_bin(words, width)
    if fmt == "coe":
        return ("memory_initialization_radix=16;\nmemory_initialization_vector=\n" + ",\n".join(hexed) + ";\n").encode()
    if fmt == "mif":
        lines = [f"WIDTH={width};", f"DEPTH={len(words)};", "ADDRESS_RADIX=UNS;", "DATA_RADIX=HEX;", "CONTENT BEGIN"]
        lines += [f"{a} : {h};" for a, h in enumerate(hexed)]
        return ("\n".join(lines + ["END;"]) + "\n").encode()
    if fmt == "ihex":
        ih = IntelHex()
        ih.frombytes(_to_bin(words, width), offset=0)
        text = io.StringIO()
        ih.write_hex_file(text)
        return text.getvalue().encode()
    raise EiexError(f"unknown memory file format {fmt!r}; choose from {', '.join(FORMATS)}")


def _to_bin(words: list[int], width: int) -> bytes:
    n = _bytes_per_word(width)
    return b"".join(w.to_bytes(n, "little") for w in words)


def _from_bin(data: bytes, width: int, where: str) -> list[int]:
    n = _bytes_per_word(width)
    if len(data) % n:
        raise EiexError(f"{where}: {len(data)} bytes is not a whole number of {n}-byte words")
    words = [int.from_bytes(data[i : i + n], "little") for i in range(0, len(data), n)]
    _check_parsed(words, width, where)
    return words


def _parse_hex_words(tokens: list[str], width: int, where: str) -> list[int]:
    words = []
    for i, token in enumerate(tokens):
        if not re.fullmatch(r"[0-9a-fA-F]+", token):
            raise EiexError(f"{where}: word {i} {token!r} is not hexadecimal")
        words.append(int(token, 16))
    _check_parsed(words, width, where)
    return words


def _check_parsed(words: list[int], width: int, where: str) -> None:
    for address, word in enumerate(words):
        if word >> width:
            raise EiexError(f"{where}: word {address} (0x{word:x}) is wider than {width} bits")


def decode(data: bytes, width: int, fmt: str, depth: int | None = None, where: str = "memory file") -> list[int]:
    """The words of a file in format ``fmt``.

    Parameters
    ----------
    depth : int, optional
        Number of words the file must hold; any count when None.
    where : str
        Names the file in error messages.
    """
    words = _decode(data, width, fmt, where)
    if depth is not None and len(words) != depth:
        raise EiexError(f"{where}: {len(words)} words, expected {depth}")
    return words


def _decode(data: bytes, width: int, fmt: str, where: str) -> list[int]:
    if fmt == "bin":
        return _from_bin(data, width, where)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise EiexError(f"{where}: not a text file") from None
    if fmt == "hex":
        return _parse_hex_words(text.split(), width, where)
    if fmt == "coe":
        radix = re.match(r"\s*memory_initialization_radix\s*=\s*(\w+)\s*;", text, flags=re.IGNORECASE)
        if radix and radix.group(1) != "16":
            raise EiexError(f"{where}: COE radix {radix.group(1)} is not supported (a radix-16 COE file is expected)")
        match = re.fullmatch(
            r"\s*memory_initialization_radix\s*=\s*16\s*;\s*memory_initialization_vector\s*=([^;]*);\s*",
            text, flags=re.IGNORECASE)
        if not match:
            raise EiexError(f"{where}: not a radix-16 COE file")
        vector = match.group(1).strip()
        return _parse_hex_words([t.strip() for t in vector.split(",")] if vector else [], width, where)
    if fmt == "mif":
        header = re.match(r"\s*WIDTH=(\d+);\s*DEPTH=(\d+);\s*ADDRESS_RADIX=UNS;\s*DATA_RADIX=HEX;\s*CONTENT\s+BEGIN\s*(.*?)END;\s*$",
                          text, flags=re.DOTALL)
        if not header:
            raise EiexError(f"{where}: malformed MIF header or missing END;")
        if int(header.group(1)) != width:
            raise EiexError(f"{where}: MIF WIDTH={header.group(1)}, expected {width}")
        mif_depth = int(header.group(2))
        entries = [e.strip() for e in header.group(3).split(";") if e.strip()]
        words: list[int | None] = [None] * mif_depth
        for entry in entries:
            m = re.fullmatch(r"(\d+)\s*:\s*([0-9a-fA-F]+)", entry)
            if not m or int(m.group(1)) >= mif_depth:
                raise EiexError(f"{where}: bad MIF content line {entry!r}")
            if words[int(m.group(1))] is not None:
                raise EiexError(f"{where}: MIF address {m.group(1)} given twice")
            words[int(m.group(1))] = int(m.group(2), 16)
        if None in words:
            raise EiexError(f"{where}: MIF DEPTH={mif_depth} but address {words.index(None)} has no word")
        _check_parsed(words, width, where)
        return words
    if fmt == "ihex":
        ih = IntelHex()
        try:
            ih.loadhex(io.StringIO(text))
        except (IntelHexError, ValueError) as e:
            raise EiexError(f"{where}: invalid Intel HEX ({' '.join(str(e).split())})") from None
        if len(ih) and (ih.minaddr() != 0 or ih.maxaddr() + 1 != len(ih)):
            raise EiexError(f"{where}: Intel HEX data must cover addresses 0 .. {len(ih) - 1} without holes")
        return _from_bin(ih.tobinstr() if len(ih) else b"", width, where)
    raise EiexError(f"unknown memory file format {fmt!r}; choose from {', '.join(FORMATS)}")
