"""What every image folder shares (eie-image.md sections 4 and 9, reused by xnor-image.md): memory
files in the requested formats with their sha256, written into an atomic folder beside
``manifest.json``, and memories read back with their digests and geometry checked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from eiex.sw.images import memfiles
from eiex.sw.atomic import atomic_output_dir
from eiex.errors import EiexError

MANIFEST = "manifest.json"


def file_formats(formats) -> tuple[str, ...]:
    """``hex`` first (always written), then the other requested formats, each known."""
    formats = ("hex",) + tuple(f for f in dict.fromkeys(formats) if f != "hex")
    for fmt in formats:
        if fmt not in memfiles.FORMATS:
            raise EiexError(f"unknown memory file format {fmt!r}; choose from {', '.join(memfiles.FORMATS)}")
    return formats


def write_folder(out, force: bool, manifest: dict, memories, formats) -> dict:
    """Every memory ``(entry, words)`` in every format, then ``manifest.json`` with the memory
    records (depth, files, sha256) appended to ``manifest["memories"]``; atomic."""
    with atomic_output_dir(out, force) as folder:
        for entry, words in memories:
            entry = {**entry, "depth": len(words), "files": {}, "sha256": {}}
            for fmt in formats:
                name = f"{entry['name']}.{fmt}"
                content = memfiles.encode(words, entry["width"], fmt)
                (folder / name).write_bytes(content)
                entry["files"][fmt] = name
                entry["sha256"][fmt] = hashlib.sha256(content).hexdigest()
            manifest["memories"].append(entry)
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_manifest(folder, kind: str, format_name: str, version, keys) -> dict:
    """The manifest of an image folder of ``kind`` ("EIE", "XNOR"), its format and version (one
    integer, or a tuple of the versions read) checked and its top-level ``keys`` present."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise EiexError(f"{folder} is not an {kind} image: {MANIFEST} not found")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EiexError(f"{path}: not valid JSON ({' '.join(str(e).split())})") from None
    require(manifest, ("format", "version", *keys), MANIFEST)
    if manifest["format"] != format_name:
        raise EiexError(f"{MANIFEST}: format {manifest['format']!r} is not {format_name!r}")
    versions = version if isinstance(version, tuple) else (version,)
    if isinstance(manifest["version"], bool) or manifest["version"] not in versions:
        read = " or ".join(str(v) for v in versions)
        raise EiexError(f"{MANIFEST}: version {manifest['version']!r} is not supported (this eiex reads {read})")
    return manifest


def require(table: dict, keys, where: str) -> None:
    """``table`` is a JSON object holding ``keys``."""
    if not isinstance(table, dict):
        raise EiexError(f"{where} must be a JSON object")
    missing = [k for k in keys if k not in table]
    if missing:
        raise EiexError(f"{where} lacks {', '.join(missing)}")


def read_memory(folder: Path, entry: dict) -> list[int]:
    """A memory's words from its hex file, after every listed file's sha256 is checked."""
    name = entry["name"]
    files, digests = entry.get("files", {}), entry.get("sha256", {})
    if "hex" not in files:
        raise EiexError(f"{name}: the manifest lists no hex file")
    for fmt, relpath in files.items():
        path = folder / relpath
        if not path.is_file():
            raise EiexError(f"{name}: file {relpath} is missing")
        if fmt not in digests or hashlib.sha256(path.read_bytes()).hexdigest() != digests[fmt]:
            raise EiexError(f"{relpath}: sha256 mismatch (the file was changed after export)")
    if not isinstance(entry["width"], int) or entry["width"] < 1:
        raise EiexError(f"{name}: width {entry['width']!r} is not a positive integer")
    if not isinstance(entry["depth"], int) or entry["depth"] < 1:
        raise EiexError(f"{name}: depth {entry['depth']!r} is not a positive integer")
    return memfiles.decode((folder / files["hex"]).read_bytes(), entry["width"], "hex", entry["depth"], where=files["hex"])
