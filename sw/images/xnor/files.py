"""XNOR images on disk: ``manifest.json`` plus one file per memory and format (XNOR spec, EIE spec 4 and 9).

``write_image`` writes atomically; ``load_image`` checks everything it reads (format, version,
input, layer table, sha256 of every file, every memory's kind, PE, width and depth against the
layer geometry, padding bits, output scores) and names exactly what is wrong in one line.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from eiex.errors import EiexError
from eiex.sw.images.folder import MANIFEST, file_formats, read_manifest, read_memory, require, write_folder
from eiex.sw.images.xnor.image import (FORMAT, VERSION, XnorImage, XnorLayer, check_geometry, check_layer_chain,
                                memory_name, pack_thresholds, pack_weights, unpack_thresholds, unpack_weights)

LAYER_KEYS = ("name", "in_features", "out_features", "pe", "simd", "kind", "thr_bits")


def memory_words(image: XnorImage) -> list[tuple[dict, list[int]]]:
    """Every memory of the image as (manifest entry without depth and files, words): per layer, the
    weight memories of PE 0 .. P-1, then (hidden layers) their threshold memories."""
    memories = []
    for l, layer in enumerate(image.layers):
        for p, words in enumerate(pack_weights(layer)):
            memories.append(({"name": memory_name(l, p, "weights"), "kind": "weights", "pe": p, "width": layer.simd},
                             words))
        if layer.kind == "hidden":
            for p, words in enumerate(pack_thresholds(layer)):
                memories.append(({"name": memory_name(l, p, "thresholds"), "kind": "thresholds", "pe": p,
                                  "width": layer.thr_bits}, words))
    return memories


def write_image(image: XnorImage, out, formats=("hex",), force: bool = False) -> dict:
    """Write the image folder atomically (``hex`` always, plus ``formats``); returns the manifest."""
    formats = file_formats(formats)
    manifest = {
        "format": FORMAT, "version": VERSION,
        "input": {"kind": "binary", "threshold": image.input_threshold},
        "layers": [layer.to_json() for layer in image.layers],
        "output": {"scale": image.output_scale.tolist(), "bias": image.output_bias.tolist()},
        "memories": [],
    }
    return write_folder(out, force, manifest, memory_words(image), formats)


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EiexError(f"{where} must be a finite number, not {value!r}")
    return float(value)


def _numbers(values, count: int, where: str) -> np.ndarray:
    if not isinstance(values, list) or len(values) != count:
        raise EiexError(f"{where} must be a list of {count} numbers (one per output)")
    return np.array([_number(v, f"{where}[{i}]") for i, v in enumerate(values)], dtype=np.float64)


def _layer_table(manifest: dict) -> list[SimpleNamespace]:
    rows = manifest["layers"]
    if not isinstance(rows, list) or not rows:
        raise EiexError(f"{MANIFEST}: layers must be a non-empty list")
    table = []
    for l, row in enumerate(rows):
        require(row, LAYER_KEYS, f"{MANIFEST}: layer {l}")
        check_geometry(*(row[k] for k in LAYER_KEYS))
        table.append(SimpleNamespace(**{k: row[k] for k in LAYER_KEYS}))
    check_layer_chain(table)
    return table


def _memory_entries(manifest: dict, table: list[SimpleNamespace]) -> dict[str, dict]:
    if not isinstance(manifest["memories"], list):
        raise EiexError(f"{MANIFEST}: memories must be a list")
    entries = {}
    for entry in manifest["memories"]:
        require(entry, ("name", "kind", "pe", "width", "depth", "files", "sha256"), "a memory entry")
        name = entry["name"]
        if name in entries:
            raise EiexError(f"{MANIFEST}: memory {name} is listed twice")
        m = re.fullmatch(r"l(\d+)\.pe(\d+)\.(weights|thresholds)", str(name))
        if not m or int(m.group(1)) >= len(table) or int(m.group(2)) >= table[int(m.group(1))].pe:
            raise EiexError(f"{MANIFEST}: memory {name!r} is not part of this image's layers and PEs")
        layer = table[int(m.group(1))]
        if m.group(3) == "thresholds" and layer.kind == "output":
            raise EiexError(f"{name}: layer {layer.name} is the output layer, which has no thresholds")
        if not isinstance(entry["files"], dict) or not isinstance(entry["sha256"], dict):
            raise EiexError(f"{name}: files and sha256 must be JSON objects")
        entries[name] = entry
    return entries


def _check_entry(entry: dict, kind: str, p: int, width: int, depth: int, layer, what: str) -> None:
    name = entry["name"]
    if entry["kind"] != kind:
        raise EiexError(f"{name}: kind {entry['kind']!r}, expected {kind!r}")
    if entry["pe"] != p:
        raise EiexError(f"{name}: pe {entry['pe']!r}, expected {p}")
    if entry["width"] != width:
        raise EiexError(f"{name}: width {entry['width']!r}, layer {layer.name} has {what[0]} = {width}")
    if entry["depth"] != depth:
        raise EiexError(f"{name}: depth {entry['depth']!r}, layer {layer.name} needs {what[1]} = {depth}")


def _load_layer(folder: Path, l: int, row: SimpleNamespace, entries: dict[str, dict]) -> XnorLayer:
    nf, sf = math.ceil(row.out_features / row.pe), math.ceil(row.in_features / row.simd)
    kinds = ("weights", "thresholds") if row.kind == "hidden" else ("weights",)
    words = {kind: [] for kind in kinds}
    for kind in kinds:
        for p in range(row.pe):
            name = memory_name(l, p, kind)
            if name not in entries:
                raise EiexError(f"{MANIFEST}: memory {name} is missing")
            if kind == "weights":
                _check_entry(entries[name], kind, p, row.simd, nf * sf, row, ("simd", f"NF * SF = {nf} * {sf}"))
            else:
                _check_entry(entries[name], kind, p, row.thr_bits, nf, row, ("thr_bits", "NF"))
            words[kind].append(read_memory(folder, entries[name]))
    weights = unpack_weights(words["weights"], row.out_features, row.in_features, row.pe, row.simd, l)
    thresholds = None
    if row.kind == "hidden":
        thresholds = unpack_thresholds(words["thresholds"], row.out_features, row.pe, row.thr_bits, l)
    return XnorLayer(**vars(row), weights=weights, thresholds=thresholds)


def load_image(folder) -> XnorImage:
    """Read and validate an XNOR image folder."""
    folder = Path(folder)
    manifest = read_manifest(folder, "XNOR", FORMAT, VERSION, ("input", "layers", "output", "memories"))
    require(manifest["input"], ("kind", "threshold"), f"{MANIFEST}: input")
    if manifest["input"]["kind"] != "binary":
        raise EiexError(f"{MANIFEST}: input kind {manifest['input']['kind']!r} is not supported (this eiex reads 'binary')")
    input_threshold = _number(manifest["input"]["threshold"], f"{MANIFEST}: input threshold")
    table = _layer_table(manifest)
    require(manifest["output"], ("scale", "bias"), f"{MANIFEST}: output")
    m = table[-1].out_features
    scale = _numbers(manifest["output"]["scale"], m, f"{MANIFEST}: output scale")
    bias = _numbers(manifest["output"]["bias"], m, f"{MANIFEST}: output bias")
    entries = _memory_entries(manifest, table)
    layers = [_load_layer(folder, l, row, entries) for l, row in enumerate(table)]
    return XnorImage(layers=layers, input_threshold=input_threshold, output_scale=scale, output_bias=bias)
