"""``eiex export eie|xnor``: a trained model's memory images (eie-image.md, xnor-image.md)."""

from __future__ import annotations

from pathlib import Path

from eiex.cli.common import add_engine_params, add_folding, add_output, describe_folding, engine_overrides, \
    engine_subparsers, formats
from eiex.hw.eie.params import DEFAULT_MAC, DEFAULT_PES
from eiex.sw.images.eie.image import MAC_KINDS

FORMATS_HELP = "comma list of hex,bin,coe,mif,ihex (hex always)"
#: what the summary line says of the image for each engine MAC
MAC_NOTES = {"multiply": "", "shift": ", every codebook entry 0 or a signed power of two (--mac shift)",
             "index": ", identity codebooks: the code is the weight (--mac index)"}


def add_parser(sub) -> None:
    engines = engine_subparsers(sub.add_parser("export", help="write memory images for an accelerator"))
    p = engines.add_parser("eie", help="EIE sparse engine image (shared/spec/eie-image.md)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="an eiex compress output folder")
    source.add_argument("--npz", type=Path, help="weights w0, b0, w1, b1, ... (optional boolean relu)")
    p.add_argument("--pes", type=int, default=DEFAULT_PES, help=f"processing elements (default {DEFAULT_PES})")
    p.add_argument("--formats", type=formats, default=("hex",), help=FORMATS_HELP)
    p.add_argument("--huffman", type=int, nargs="?", const=16, default=None, metavar="MAX_LEN",
                   help="also write Huffman-coded entry streams (longest code, default 16)")
    p.add_argument("--balance", action="store_true", help="reorder hidden rows so PEs get equal work")
    p.add_argument("--mac", choices=MAC_KINDS, default=DEFAULT_MAC,
                   help="the engine the image is for: with shift, refuse (writing nothing) unless every codebook "
                        "entry is 0 or a signed power of two, the image itself the same; with index, write identity "
                        "codebooks (the code is the weight), refusing weights that are not integers times one power "
                        "of two per layer (default multiply)")
    add_engine_params(p)  # unset: idx_bits from the distinct values, act_frac calibrated, ptr_bits as needed
    add_output(p, "image folder")
    p.set_defaults(func=run_eie)

    p = engines.add_parser("xnor", help="XNOR binary engine image (shared/spec/xnor-image.md)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="an eiex binarize output folder")
    source.add_argument("--npz", type=Path, help="folded arrays w0, w1, ..., t0, ..., scale, bias, input_threshold")
    add_folding(p)
    p.add_argument("--fire", choices=("ge", "gt"), default="ge",
                   help="what the thresholds mean: a row fires on acc >= T (eiex, the default) or acc > T "
                        "(finn-hlslib)")
    p.add_argument("--formats", type=formats, default=("hex",), help=FORMATS_HELP)
    add_output(p, "image folder")
    p.set_defaults(func=run_xnor)


def run_eie(args) -> int:
    from eiex.sw.atomic import check_output_dir
    from eiex.sw.images.eie.export import engine_for, export_model, export_model_folder, layers_from_npz
    from eiex.sw.images.eie.files import write_image
    from eiex.sw.npz import read_npz

    check_output_dir(args.out, args.force)
    overrides = engine_overrides(args)
    if args.model is not None:
        image = export_model_folder(args.model, args.pes, balance=args.balance, mac=args.mac, **overrides)
    else:
        layers = layers_from_npz(read_npz(args.npz), str(args.npz))
        image, _ = export_model(layers, engine_for(layers, args.pes, mac=args.mac, **overrides), input_norm=None,
                                calibration=None, balance=args.balance, auto_ptr_bits=args.ptr_bits is None,
                                search_act_frac=args.act_frac is None, mac=args.mac)
    write_image(image, args.out, formats=args.formats, huffman_max_len=args.huffman, force=args.force)
    e = image.engine
    print(f"EIE image for {e.n_pe} PEs in {args.out}: act_frac {e.act_frac}, weight_frac "
          f"{', '.join(str(l.weight_frac) for l in image.layers)}, idx_bits {e.idx_bits}, rel_bits {e.rel_bits}, "
          f"{sum(len(pe.v) for pe in image.pes):,} entries; formats {','.join(args.formats)}"
          f"{', Huffman-coded streams' if args.huffman else ''}{', rows load-balanced' if args.balance else ''}"
          f"{MAC_NOTES[args.mac]}")
    return 0


def run_xnor(args) -> int:
    from eiex.hw.xnor.golden import ideal_interval
    from eiex.sw.atomic import check_output_dir
    from eiex.sw.images.xnor.export import image_from_folded, read_binarized_folder
    from eiex.sw.images.xnor.files import write_image
    from eiex.sw.npz import read_npz

    check_output_dir(args.out, args.force)
    if args.model is not None:
        arrays, source = read_binarized_folder(args.model)
    else:
        arrays, source = read_npz(args.npz), str(args.npz)
    image = image_from_folded(arrays, pe=args.pe, simd=args.simd, target_interval=args.target_interval, source=source,
                              fire=args.fire)
    write_image(image, args.out, formats=args.formats, force=args.force)
    print(f"XNOR image in {args.out}: {describe_folding(image.layers)}; ideal interval {ideal_interval(image)} "
          f"cycles per image; formats {','.join(args.formats)}")
    return 0
