"""XNOR images on disk: ``manifest.json`` plus one file per memory and format (XNOR spec, EIE spec 4 and 9).

``write_image`` writes atomically; ``load_image`` checks everything it reads (format, version,
input, layer table, sha256 of every file, every memory's kind, PE, width and depth against the
layer geometry, padding bits, output scores) and names exactly what is wrong in one line.

Version 2 (XNOR spec section 7) is written only for a network with a ``conv`` or ``pool`` layer;
any other network gets exactly the version-1 manifest and files. The loader reads both.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from eiex.errors import EiexError
from eiex.sw.images.folder import MANIFEST, file_formats, read_manifest, read_memory, require, write_folder
from eiex.sw.images.xnor.image import (FORMAT, MAP_KINDS, MAP_VERSION, VERSION, XnorConvLayer, XnorImage, XnorLayer,
                                XnorPoolLayer, check_conv_geometry, check_geometry, check_input_shape,
                                check_layer_chain, check_pool_geometry, memory_name, pack_thresholds, pack_weights,
                                unpack_thresholds, unpack_weights)

LAYER_KEYS = ("name", "in_features", "out_features", "pe", "simd", "kind", "thr_bits")
CONV_KEYS = ("name", "kind", "in_shape", "out_channels", "kernel", "pe", "simd", "thr_bits")
POOL_KEYS = ("name", "kind", "in_shape", "size")


def memory_words(image: XnorImage) -> list[tuple[dict, list[int]]]:
    """Every memory of the image as (manifest entry without depth and files, words): per layer, the
    weight memories of PE 0 .. P-1, then (hidden and conv layers) their threshold memories; pool
    layers have none."""
    memories = []
    for l, layer in enumerate(image.layers):
        if layer.kind == "pool":
            continue
        for p, words in enumerate(pack_weights(layer)):
            memories.append(({"name": memory_name(l, p, "weights"), "kind": "weights", "pe": p, "width": layer.simd},
                             words))
        if layer.thresholds is not None:
            for p, words in enumerate(pack_thresholds(layer)):
                memories.append(({"name": memory_name(l, p, "thresholds"), "kind": "thresholds", "pe": p,
                                  "width": layer.thr_bits}, words))
    return memories


def write_image(image: XnorImage, out, formats=("hex",), force: bool = False) -> dict:
    """Write the image folder atomically (``hex`` always, plus ``formats``); returns the manifest.

    Version 2 with ``input.shape`` when a layer is ``conv`` or ``pool``, else version 1 (which does
    not record an input shape)."""
    formats = file_formats(formats)
    version = image.version
    source = {"kind": "binary", "threshold": image.input_threshold}
    if version == MAP_VERSION and image.input_shape is not None:
        source["shape"] = list(image.input_shape)
    manifest = {
        "format": FORMAT, "version": version,
        "input": source,
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


def _table_row(l: int, row, version: int) -> SimpleNamespace:
    """One layer-table row, checked on its own, with the attributes of its layer class."""
    kind = row.get("kind") if isinstance(row, dict) else None
    if kind in MAP_KINDS and version < MAP_VERSION:
        raise EiexError(f"{MANIFEST}: layer {l} is a {kind} layer, which needs version {MAP_VERSION}")
    if kind == "conv":
        require(row, CONV_KEYS, f"{MANIFEST}: layer {l}")
        fields = {k: row[k] for k in CONV_KEYS}
        fields["in_shape"] = check_conv_geometry(*(row[k] for k in CONV_KEYS if k != "kind"))
    elif kind == "pool":
        require(row, POOL_KEYS, f"{MANIFEST}: layer {l}")
        fields = {k: row[k] for k in POOL_KEYS}
        fields["in_shape"] = check_pool_geometry(*(row[k] for k in POOL_KEYS if k != "kind"))
    else:
        require(row, LAYER_KEYS, f"{MANIFEST}: layer {l}")
        check_geometry(*(row[k] for k in LAYER_KEYS))
        fields = {k: row[k] for k in LAYER_KEYS}
    return SimpleNamespace(**fields)


def _layer_table(manifest: dict) -> list[SimpleNamespace]:
    rows = manifest["layers"]
    if not isinstance(rows, list) or not rows:
        raise EiexError(f"{MANIFEST}: layers must be a non-empty list")
    table = [_table_row(l, row, manifest["version"]) for l, row in enumerate(rows)]
    check_layer_chain(table)
    return table


def _matrix(row: SimpleNamespace) -> tuple[int, int]:
    """``(M, K)`` of a layer with weights: the fully connected sizes, or a conv layer's channels and patch."""
    if row.kind == "conv":
        return row.out_channels, row.kernel * row.kernel * row.in_shape[2]
    return row.out_features, row.in_features


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
        layer = table[int(m.group(1))] if m and int(m.group(1)) < len(table) else None
        if layer is None or layer.kind == "pool" or int(m.group(2)) >= layer.pe:
            raise EiexError(f"{MANIFEST}: memory {name!r} is not part of this image's layers and PEs")
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


def _without_kind(row: SimpleNamespace) -> dict:
    """A map layer's row as constructor arguments: its class fixes the kind."""
    return {k: v for k, v in vars(row).items() if k != "kind"}


def _load_layer(folder: Path, l: int, row: SimpleNamespace, entries: dict[str, dict]):
    if row.kind == "pool":
        return XnorPoolLayer(**_without_kind(row))
    rows, columns = _matrix(row)
    nf, sf = math.ceil(rows / row.pe), math.ceil(columns / row.simd)
    kinds = ("weights",) if row.kind == "output" else ("weights", "thresholds")
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
    weights = unpack_weights(words["weights"], rows, columns, row.pe, row.simd, l)
    thresholds = None
    if "thresholds" in words:
        thresholds = unpack_thresholds(words["thresholds"], rows, row.pe, row.thr_bits, l)
    if row.kind == "conv":
        return XnorConvLayer(**_without_kind(row), weights=weights, thresholds=thresholds)
    return XnorLayer(**vars(row), weights=weights, thresholds=thresholds)


def _input_shape(manifest: dict, table: list[SimpleNamespace]):
    """Section 7: ``input.shape`` of a version-2 manifest (None when absent); version 1 has none."""
    shape = manifest["input"].get("shape") if manifest["version"] >= MAP_VERSION else None
    try:
        return check_input_shape(shape, table[0])
    except EiexError as e:
        raise EiexError(f"{MANIFEST}: {e}") from None


def load_image(folder) -> XnorImage:
    """Read and validate an XNOR image folder of version 1 or 2."""
    folder = Path(folder)
    manifest = read_manifest(folder, "XNOR", FORMAT, (VERSION, MAP_VERSION), ("input", "layers", "output", "memories"))
    require(manifest["input"], ("kind", "threshold"), f"{MANIFEST}: input")
    if manifest["input"]["kind"] != "binary":
        raise EiexError(f"{MANIFEST}: input kind {manifest['input']['kind']!r} is not supported (this eiex reads 'binary')")
    input_threshold = _number(manifest["input"]["threshold"], f"{MANIFEST}: input threshold")
    table = _layer_table(manifest)
    input_shape = _input_shape(manifest, table)
    require(manifest["output"], ("scale", "bias"), f"{MANIFEST}: output")
    m = table[-1].out_features
    scale = _numbers(manifest["output"]["scale"], m, f"{MANIFEST}: output scale")
    bias = _numbers(manifest["output"]["bias"], m, f"{MANIFEST}: output bias")
    entries = _memory_entries(manifest, table)
    layers = [_load_layer(folder, l, row, entries) for l, row in enumerate(table)]
    return XnorImage(layers=layers, input_threshold=input_threshold, output_scale=scale, output_bias=bias,
                     input_shape=input_shape)
