"""What the commands share: the one-line argument parser, option types and groups, and the engine
sizing options of ``verilog``, ``build`` and ``synth``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from eiex.errors import EiexError
from eiex.hw.eie.params import DEFAULT_MAC, DEFAULT_PES, DEFAULT_QUEUE_DEPTH
from eiex.sw.images.eie.image import MAC_KINDS
from eiex.sw.images.memfiles import FORMATS


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def engine_subparsers(p):
    """``eie`` and ``xnor`` (the engines) under a command."""
    return p.add_subparsers(dest="engine", required=True, parser_class=Parser)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- option types ------------------------------------------------------------------------------

def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"seed must be an integer from 0 to 2**32 - 1, not {text!r}")
    return value


def int_list(text: str) -> list[int]:
    """A comma list of positive integers, one per layer: ``16,16,2``."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected a comma list of positive integers, not {text!r}")
    return values


def formats(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    unknown = [f for f in names if f not in FORMATS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown format(s) {', '.join(unknown) or text!r}; choose from {','.join(FORMATS)}")
    return names


def targets(text: str) -> tuple[str, ...]:
    from eiex.sim.tools.synth import TARGETS

    names = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not names or any(t not in TARGETS for t in names):
        raise argparse.ArgumentTypeError(f"targets must be a comma list of {','.join(TARGETS)}, not {text!r}")
    return names


def read_inputs(path: Path):
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise EiexError(f"input file {path} not found") from None
    except (OSError, ValueError, EOFError) as e:
        raise EiexError(f"cannot read {path} as a .npy array: {e}") from None


def engine_inputs(spec, image, args):
    """The engine's inputs from ``--input`` (its own format) or ``--raw-input`` (converted by the
    image's input section), and the ``--labels`` if given."""
    if args.raw_input is not None:
        inputs = spec.from_raw(image, read_inputs(args.raw_input))
    else:
        inputs = spec.check_inputs(image, read_inputs(args.input))
    labels = None if args.labels is None else spec.check_labels(read_inputs(args.labels), len(inputs))
    return inputs, labels


# ---- option groups -----------------------------------------------------------------------------

def add_output(p, what: str = "output folder", *, required: bool = True, default: Path | None = None) -> None:
    """``--out`` (written atomically) and ``--force`` (replace an existing one)."""
    if required:
        p.add_argument("--out", type=Path, required=True, help=f"{what} (written atomically)")
    else:
        p.add_argument("--out", type=Path, default=default, help=f"{what} (default {default})")
    p.add_argument("--force", action="store_true", help=f"replace an existing {what}")


def model_choice(names) -> Callable[[str], str]:
    """An argparse type: one of ``names`` or ``FILE.py:FUNCTION``."""
    def check(text: str) -> str:
        path, colon, function = text.rpartition(":")
        if text in names or (colon and path.endswith(".py") and function.isidentifier()):
            return text
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(names)} "
                                         "or FILE.py:FUNCTION)")
    return check


def dataset_choice(text: str) -> str:
    """An argparse type: a dataset name or an npz file."""
    from eiex.sw.data import DATASETS

    if text in DATASETS or text.endswith(".npz"):
        return text
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(DATASETS)} or FILE.npz)")


def add_dataset(p) -> None:
    """``--dataset`` (a name or a user's npz) and ``--data-dir`` (IDX files instead of the packaged ones)."""
    from eiex.sw.data import DATASETS

    p.add_argument("--dataset", default="mnist5k", type=dataset_choice, metavar="|".join(DATASETS) + "|FILE.npz",
                   help="mnist5k (bundled, default), mnist (60,000/10,000), fashion (Fashion-MNIST), or an npz "
                        "with x_train, y_train, x_test, y_test")
    p.add_argument("--data-dir", type=Path, help="folder of IDX files to read for mnist or fashion instead")


def add_inputs(p, x_help: str) -> None:
    """``--input`` or ``--raw-input``, and ``--labels``."""
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--input", type=Path, help=f"X.npy: (samples, inputs) {x_help}")
    given.add_argument("--raw-input", type=Path, help="X.npy: (samples, ...) raw pixels, converted by the image's "
                       "input section")
    p.add_argument("--labels", type=Path, help="Y.npy: (samples,) integer labels; prints and records the accuracy")


def add_seed(p) -> None:
    p.add_argument("--seed", type=seed, default=0)


def add_queue_depth(p, prefix: str = "") -> None:
    p.add_argument("--queue-depth", type=int, default=DEFAULT_QUEUE_DEPTH,
                   help=f"{prefix}activation queue entries per PE, at least 2 (default 8)")


def add_mac(p, prefix: str = "") -> None:
    p.add_argument("--mac", choices=MAC_KINDS, default=DEFAULT_MAC,
                   help=f"{prefix}what each PE does with a weight's code: multiply by its codebook entry (a DSP "
                        "block, the default), shift by it (no multiplier; every codebook entry must be 0 or a signed "
                        "power of two), or multiply by the code itself (index: no codebook memory; the image's "
                        "codebooks must be the identity, as export eie --mac index writes them)")


ENGINE_PARAMS = (("idx-bits", "weight index width"), ("rel-bits", "relative row index width"),
                 ("act-bits", "activation width"), ("act-frac", "activation fraction bits"),
                 ("weight-bits", "codebook value width"), ("bias-bits", "bias width"),
                 ("ptr-bits", "column pointer width"), ("entries-per-word", "sparse entries per word"))


def add_engine_params(p) -> None:
    """EIE's image parameters (eie-image.md section 2)."""
    for name, help_text in ENGINE_PARAMS:
        p.add_argument(f"--{name}", type=int, help=help_text)


def engine_overrides(args) -> dict:
    names = [name.replace("-", "_") for name, _ in ENGINE_PARAMS]
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def add_folding(p) -> None:
    p.add_argument("--pe", type=int_list, help="PEs (rows in parallel) per layer with weights, e.g. 16,16,2 (conv "
                   "layers count, pool layers take no value)")
    p.add_argument("--simd", type=int_list, help="SIMD lanes (columns in parallel) per layer with weights, e.g. "
                   "49,32,32 (conv layers count, pool layers take no value)")
    p.add_argument("--target-interval", type=int, help="cycles per image (max NF*SF, times the output positions of "
                   "a conv layer) to fold for with the fewest lanes (default: what 64 lanes give the largest layer)")


def add_eie_engine(p) -> None:
    """The EIE engine's sizing options: an image, or the engine parameters."""
    p.add_argument("--images", type=Path, help="size the engine for this image (and --preload its memories)")
    p.add_argument("--pes", type=int, default=DEFAULT_PES,
                   help=f"processing elements, without --images (default {DEFAULT_PES})")
    add_engine_params(p)
    for name, default in (("max-width", 1024), ("max-layers", 4), ("spmat-depth", 4096), ("ptr-depth", 2048),
                          ("bias-depth", 512)):
        p.add_argument(f"--{name}", type=int, default=default, help=f"without --images (default {default})")
    add_queue_depth(p)
    add_mac(p)
    p.add_argument("--preload", action="store_true", help="initialize the memories from --images")


def add_xnor_engine(p) -> None:
    """The XNOR engine's sizing options: an image, or layer sizes and a folding."""
    p.add_argument("--images", type=Path, help="size the engine for this image (and --preload its memories)")
    p.add_argument("--layers", type=int_list, help="without --images: layer sizes, inputs first (784,512,512,10)")
    add_folding(p)
    p.add_argument("--thr-bits", type=int_list, help="with --layers: threshold width per hidden layer "
                   "(default: enough for any threshold 0 .. K+1)")
    p.add_argument("--preload", action="store_true", help="initialize the memories from --images")


# ---- engines from the options ------------------------------------------------------------------

def describe_layer(g) -> str:
    """One engine layer's geometry in a few words."""
    from eiex.hw.xnor.conv import ConvGeometry
    from eiex.hw.xnor.pool import PoolGeometry

    if isinstance(g, PoolGeometry):
        return f"pool {g.size} of {'x'.join(map(str, g.in_shape))}"
    if isinstance(g, ConvGeometry):
        return (f"conv {g.kernel}x{g.kernel} {'x'.join(map(str, g.in_shape))}->{g.out_channels} pe {g.pe} "
                f"simd {g.simd} (positions*T {g.positions}*{g.position_cycles})")
    return (f"{g.in_features}->{g.out_features} pe {g.pe} simd {g.simd} "
            f"(NF*SF {-(-g.out_features // g.pe) * -(-g.in_features // g.simd)})")


def describe_folding(layers) -> str:
    """One line: per layer its size, folding and cycles per image (conv: output positions x NF*SF);
    ``layers``: image layers or the engine's geometries."""
    from eiex.hw.xnor.engine import GEOMETRIES, engine_lanes
    from eiex.sw.images.xnor.folding import xnor_lanes

    if all(isinstance(layer, GEOMETRIES) for layer in layers):
        return ", ".join(map(describe_layer, layers)) + f"; {engine_lanes(layers)} lanes"

    def describe(layer) -> str:
        kind = getattr(layer, "kind", None)
        if kind == "pool":
            return f"{layer.name} max-pool {layer.size}x{layer.size}"
        if kind == "conv":
            (h, w, c), (ho, wo, m) = layer.in_shape, layer.out_shape
            return (f"{layer.name} {h}x{w}x{c}->{ho}x{wo}x{m} ({layer.kernel}x{layer.kernel}) pe {layer.pe} simd "
                    f"{layer.simd} (positions*NF*SF {layer.positions}*{layer.nf}*{layer.sf})")
        return (f"{layer.in_features}->{layer.out_features} pe {layer.pe} simd {layer.simd} "
                f"(NF*SF {-(-layer.out_features // layer.pe) * -(-layer.in_features // layer.simd)})")

    return ", ".join(describe(layer) for layer in layers) + f"; {xnor_lanes(layers)} lanes"


def describe_eie(hw, init, images=None) -> str:
    return (f"EIE engine, {hw.n_pe} PEs, queue depth {hw.queue_depth}, {hw.mac} MAC, layers up to {hw.max_width} "
            f"wide, {hw.max_layers} layers{', memories initialized from the image' if init else ''}")


def describe_xnor(layers, init, images=None) -> str:
    """The XNOR engine's line; with ``images`` (``eiex verilog``) it names the image it preloads."""
    return (f"XNOR engine, {describe_folding(layers)}"
            f"{f', memories initialized from {images}' if init and images is not None else ''}")


def xnor_engine(args):
    """(image or None, layer geometry, memory init or None) from ``--images`` (``--preload``: its
    memory contents) or from ``--layers`` and the folding options."""
    from eiex.hw.xnor.memory_map import engine_for, engine_for_sizes, memory_contents

    if (args.images is None) == (args.layers is None):
        raise EiexError("give either --images or --layers (engine parameters)")
    preload = getattr(args, "preload", False)
    if args.images is None:
        if preload:
            raise EiexError("--preload needs --images: the memories are initialized from an image")
        return None, engine_for_sizes(args.layers, args.pe, args.simd, args.target_interval, args.thr_bits), None
    from eiex.sw.images.xnor.files import load_image

    if args.pe or args.simd or args.target_interval or args.thr_bits:
        raise EiexError("--pe, --simd, --target-interval and --thr-bits go with --layers; an image fixes them")
    image = load_image(args.images)
    return image, engine_for(image), memory_contents(image) if preload else None


def eie_engine(args):
    """(image or None, HwParams, memory init or None) from ``--images`` or the engine parameters."""
    from eiex.hw.eie.memory_map import memory_contents
    from eiex.hw.eie.params import HwParams
    from eiex.sw.images.eie.image import EngineParams

    if args.images is not None:
        from eiex.sw.images.eie.files import load_image

        image = load_image(args.images)
        hw = HwParams.for_image(image, queue_depth=args.queue_depth, mac=args.mac)
        hw.check_image(image)
        return image, hw, memory_contents(image, hw) if args.preload else None
    if args.preload:
        raise EiexError("--preload needs --images: the memories are initialized from an image")
    engine = EngineParams(n_pe=args.pes, **engine_overrides(args))
    hw = HwParams(engine=engine, queue_depth=args.queue_depth, mac=args.mac, max_width=args.max_width,
                  max_layers=args.max_layers, spmat_depth=args.spmat_depth, ptr_depth=args.ptr_depth,
                  bias_depth=args.bias_depth)
    return None, hw, None


def eie_params(hw) -> dict:
    return {"engine": "eie", "n_pe": hw.n_pe, "queue_depth": hw.queue_depth, "mac": hw.mac, "max_width": hw.max_width,
            "max_layers": hw.max_layers, "spmat_depth": hw.spmat_depth, "ptr_depth": hw.ptr_depth,
            "bias_depth": hw.bias_depth}


def xnor_params(layers) -> dict:
    from eiex.hw.xnor.engine import engine_lanes

    kinds = {"LayerGeometry": "fc", "ConvGeometry": "conv", "PoolGeometry": "pool"}
    return {"engine": "xnor", "layers": [{"kind": kinds[type(g).__name__], **vars(g)} for g in layers],
            "lanes": engine_lanes(layers)}


@dataclass(frozen=True)
class EngineOptions:
    """How the commands that size an engine (verilog, build, synth) read it from their options."""

    help: str
    add: Callable  # add_*_engine: the sizing options
    from_args: Callable  # args -> (image or None, elaboration parameters, memory init or None)
    describe: Callable  # (parameters, init, images=None) -> one line
    params: Callable  # parameters -> the build report's description


ENGINE_OPTIONS = {
    "eie": EngineOptions("the EIE sparse engine", add_eie_engine, eie_engine, describe_eie, eie_params),
    "xnor": EngineOptions("the XNOR binary engine", add_xnor_engine, xnor_engine, describe_xnor, xnor_params),
}
