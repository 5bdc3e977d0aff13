"""EIE images on disk: ``manifest.json`` plus one file per memory and format (spec sections 4, 8, 9).

``write_image`` writes atomically; ``load_image`` checks everything it reads (format, version,
sha256 of every file, widths, depths, pointers, row indices, codebooks, the Huffman streams) and
names exactly what is wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from bitarray import bitarray

from eiex.sw.images.eie.image import FORMAT, VERSION, EieImage, EieLayer, EngineParams, PeMemories, unpack_entries
from eiex.errors import EiexError
from eiex.sw.images.folder import MANIFEST, file_formats, read_manifest, read_memory, require, write_folder
from eiex.sw.compress.huffman import HuffmanCode
from eiex.sw.images.eie.sparse import SparseColumns, decode_columns
from eiex.sw.images.words import to_signed, to_unsigned


def _entries(pe: PeMemories, params: EngineParams) -> np.ndarray:
    return (pe.z << params.idx_bits) | pe.v


def _huffman_words(bits: bitarray, width: int) -> list[int]:
    padded = bits + bitarray(-len(bits) % width)
    return [int(padded[i : i + width].to01() or "0", 2) for i in range(0, len(padded), width)] or [0]


def memory_words(image: EieImage, huffman: HuffmanCode | None = None) -> list[tuple[dict, list[int]]]:
    """Every memory of the image as (manifest entry without files, words)."""
    e = image.engine
    memories = []
    for p, pe in enumerate(image.pes):
        spmat = pe.spmat_words(e)
        memories.append(({"name": f"pe{p}.spmat", "kind": "spmat", "pe": p, "width": e.spmat_width}, spmat))
        memories.append(({"name": f"pe{p}.ptr", "kind": "ptr", "pe": p, "width": e.ptr_bits},
                         to_unsigned(pe.ptr, e.ptr_bits) or [0]))
        memories.append(({"name": f"pe{p}.bias", "kind": "bias", "pe": p, "width": e.bias_bits},
                         to_unsigned(pe.bias, e.bias_bits) or [0]))
        if huffman is not None:
            entries = _entries(pe, e)
            bits = huffman.encode(entries) if len(entries) else bitarray()
            memories.append(({"name": f"pe{p}.spmat_huff", "kind": "spmat_huff", "pe": p, "width": e.spmat_width,
                              "bits": len(bits), "symbols": len(entries)}, _huffman_words(bits, e.spmat_width)))
    memories.append(({"name": "codebook", "kind": "codebook", "pe": None, "width": e.weight_bits},
                     to_unsigned(image.codebook, e.weight_bits)))
    return memories


def write_image(image: EieImage, out_dir, formats=("hex",), huffman_max_len: int | None = None,
                force: bool = False) -> dict:
    """Write the image folder atomically; returns the manifest."""
    formats = file_formats(formats)
    huffman = None
    if huffman_max_len is not None:
        symbols = np.concatenate([_entries(pe, image.engine) for pe in image.pes])
        try:
            huffman = HuffmanCode.fit(symbols, 1 << image.engine.entry_bits, huffman_max_len)
        except EiexError as e:
            raise EiexError(f"Huffman-coded streams with codes of at most {huffman_max_len} bits: {e}") from None
    manifest = {
        "format": FORMAT, "version": VERSION, "engine": image.engine.to_json(),
        "layers": [layer.to_json() for layer in image.layers], "input": image.input, "memories": [],
    }
    if huffman is not None:
        manifest["huffman"] = {"max_len": huffman_max_len, "lengths": huffman.lengths.tolist()}
    if image.row_order:
        manifest["row_order"] = image.row_order
    return write_folder(out_dir, force, manifest, memory_words(image, huffman), formats)


def load_image(folder) -> EieImage:
    """Read and validate an image folder."""
    folder = Path(folder)
    manifest = read_manifest(folder, "EIE", FORMAT, VERSION, ("engine", "layers", "memories"))
    try:
        engine = EngineParams(**manifest["engine"])
        layers = [EieLayer(**layer) for layer in manifest["layers"]]
    except TypeError as e:
        raise EiexError(f"{MANIFEST}: bad engine or layer fields ({e})") from None
    if not layers:
        raise EiexError(f"{MANIFEST}: no layers")
    memories = {}
    for entry in manifest["memories"]:
        require(entry, ("name", "kind", "pe", "width", "depth", "files", "sha256"), "a memory entry")
        memories[entry["name"]] = (entry, read_memory(folder, entry))
    _check_layout(engine, layers)
    pes = [_load_pe(engine, layers, memories, p) for p in range(engine.n_pe)]
    if "codebook" not in memories:
        raise EiexError(f"{MANIFEST}: the codebook memory is missing")
    entry, words = memories["codebook"]
    _check_width(entry, engine.weight_bits)
    if len(words) < len(layers) * engine.codebook_size:
        raise EiexError(f"codebook: depth {len(words)} holds fewer than {len(layers)} codebooks")
    codebook = to_signed(words[: len(layers) * engine.codebook_size], engine.weight_bits)
    image = EieImage(engine=engine, layers=layers, pes=pes, codebook=codebook, input=manifest.get("input"),
                     row_order=manifest.get("row_order") or {})
    for l, layer in enumerate(layers):
        if image.layer_codebook(l)[0] != 0:
            raise EiexError(f"codebook of layer {layer.name}: entry 0 is {image.layer_codebook(l)[0]}, must be 0")
        _check_rows(image, l)
    if "huffman" in manifest:
        _check_huffman(manifest["huffman"], memories, image)
    return image


def _check_width(entry: dict, width: int) -> None:
    if entry["width"] != width:
        raise EiexError(f"{entry['name']}: width {entry['width']}, the engine parameters say {width}")


def _check_layout(engine: EngineParams, layers: list[EieLayer]) -> None:
    ptr_base = bias_base = 0
    for l, layer in enumerate(layers):
        if l and layer.cols != layers[l - 1].rows:
            raise EiexError(f"layer {layer.name} has {layer.cols} columns but {layers[l - 1].name} has {layers[l - 1].rows} rows")
        expected = (ptr_base, bias_base, l * engine.codebook_size)
        if (layer.ptr_base, layer.bias_base, layer.codebook_base) != expected:
            raise EiexError(f"layer {layer.name}: bases {layer.ptr_base}, {layer.bias_base}, {layer.codebook_base} "
                            f"do not follow the layout (expected {expected[0]}, {expected[1]}, {expected[2]})")
        ptr_base += layer.cols + 1
        bias_base += layer.slots(engine.n_pe)


def _load_pe(engine: EngineParams, layers: list[EieLayer], memories: dict, p: int) -> PeMemories:
    for kind in ("spmat", "ptr", "bias"):
        if f"pe{p}.{kind}" not in memories:
            raise EiexError(f"{MANIFEST}: memory pe{p}.{kind} is missing")
    (s_entry, s_words), (p_entry, p_words), (b_entry, b_words) = (
        memories[f"pe{p}.spmat"], memories[f"pe{p}.ptr"], memories[f"pe{p}.bias"])
    _check_width(s_entry, engine.spmat_width)
    _check_width(p_entry, engine.ptr_bits)
    _check_width(b_entry, engine.bias_bits)
    n_ptr = sum(layer.cols + 1 for layer in layers)
    n_bias = sum(layer.slots(engine.n_pe) for layer in layers)
    if len(p_words) < n_ptr or len(b_words) < n_bias:
        raise EiexError(f"pe{p}: pointer or bias memory too shallow for the layer table")
    ptr = np.array(p_words[:n_ptr], dtype=np.int64)
    for layer in layers:
        own = ptr[layer.ptr_base : layer.ptr_base + layer.cols + 1]
        if np.any(np.diff(own) < 0):
            raise EiexError(f"pe{p}.ptr: pointers of layer {layer.name} decrease")
    n_entries = int(ptr[layers[-1].ptr_base + layers[-1].cols])
    if n_entries > len(s_words) * engine.entries_per_word:
        raise EiexError(f"pe{p}.ptr points past the {len(s_words) * engine.entries_per_word} entries of pe{p}.spmat")
    beyond = np.flatnonzero(ptr > n_entries)
    if beyond.size:
        raise EiexError(f"pe{p}.ptr: pointer {int(beyond[0])} is {int(ptr[beyond[0]])}, past the {n_entries} entries "
                        f"of pe{p} (the last pointer of the last layer)")
    entries = unpack_entries(s_words, engine, n_entries)
    return PeMemories(v=entries & ((1 << engine.idx_bits) - 1), z=entries >> engine.idx_bits, ptr=ptr,
                      bias=to_signed(b_words[:n_bias], engine.bias_bits))


def _check_rows(image: EieImage, l: int) -> None:
    layer, n_pe = image.layers[l], image.engine.n_pe
    for p in range(n_pe):
        v, z, ptr = image.layer_entries(l, p)
        if len(ptr) and ptr[0] < 0:
            raise EiexError(f"pe{p}.ptr: layer {layer.name} starts before entry 0")
        try:
            decode_columns(SparseColumns(v=v, z=z, ptr=ptr, rows=layer.local_rows(p, n_pe), rel_bits=image.engine.rel_bits))
        except EiexError as e:
            raise EiexError(f"pe{p}, layer {layer.name}: {e}") from None


def _check_huffman(table: dict, memories: dict, image: EieImage) -> None:
    require(table, ("max_len", "lengths"), "huffman")
    if len(table["lengths"]) != 1 << image.engine.entry_bits:
        raise EiexError(f"huffman: {len(table['lengths'])} code lengths, expected 2**{image.engine.entry_bits}")
    try:
        code = HuffmanCode.from_lengths(np.asarray(table["lengths"], dtype=np.int64), int(table["max_len"]))
    except (EiexError, TypeError, ValueError) as e:
        raise EiexError(f"huffman: {e}") from None
    for p, pe in enumerate(image.pes):
        name = f"pe{p}.spmat_huff"
        if name not in memories:
            raise EiexError(f"{MANIFEST}: memory {name} is missing")
        entry, words = memories[name]
        require(entry, ("bits", "symbols"), name)
        if not 0 <= entry["bits"] <= len(words) * entry["width"]:
            raise EiexError(f"{name}: {entry['bits']} bits do not fit {len(words)} words of {entry['width']} bits")
        stream = bitarray("".join(format(w, f"0{entry['width']}b") for w in words))[: entry["bits"]]
        try:
            decoded = code.decode(stream, entry["symbols"])
        except EiexError as e:
            raise EiexError(f"{name}: {e}") from None
        if not np.array_equal(decoded, _entries(pe, image.engine)):
            raise EiexError(f"{name}: the Huffman stream does not decode to the entries of pe{p}.spmat")
