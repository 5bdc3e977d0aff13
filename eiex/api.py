"""The Python API: what the command line does, as functions (re-exported by :mod:`eiex`).

    import eiex

    result = eiex.compress("lenet300", "mnist5k", seed=0)          # Deep Compression
    result.save("out/lenet300")                                    # what eiex compress writes
    image = eiex.export_eie("out/lenet300", n_pe=8)                # an EIE image
    outputs, stats = eiex.simulate("eie", image, x, simulator="verilator")
    report = eiex.build("eie", image, part="ecp5-85k", out="out/build")

Every function raises :class:`eiex.EiexError` with one clear line on bad input.
"""

from __future__ import annotations

from pathlib import Path

from eiex.errors import EiexError
from eiex.hw.eie.params import DEFAULT_MAC, DEFAULT_PES, DEFAULT_QUEUE_DEPTH
from eiex.sim.engines import ENGINES, Engine, engine_of, get_engine
from eiex.sim.simulate import SIMULATORS, Stats, simulate

__all__ = ["ENGINES", "SIMULATORS", "Engine", "Stats", "binarize", "build", "compress", "export_eie", "export_xnor",
           "get_engine", "load_image", "simulate", "to_verilog", "write_binarized", "write_compressed",
           "write_image"]


def compress(model, dataset=None, *, train=None, test=None, recipe=None, seed: int = 0, weights=None,
             data_dir=None, log=print):
    """Deep Compression of ``model``: a built-in name (``lenet300``, ``lenet5``), ``FILE.py:FUNCTION``
    or a ``torch.nn.Module`` built from the layers eiex compresses.

    The data is ``dataset`` (``mnist5k``, ``mnist``, ``fashion`` or an npz path; default
    ``mnist5k``) or the arrays ``train=(x, y)`` and ``test=(x, y)``. ``recipe``: a TOML path or a
    dict of its tables, over the model's recipe; its ``quantize`` (``kmeans``, ``linear`` with a
    ``scale`` of ``real`` or ``pow2``, ``ternary``, ``pow2``), ``distill``, ``sparsity`` and
    ``lowrank`` tables choose the other compression methods (README, "Other compression methods").
    ``weights``: a state_dict file or an npz of ``w0, b0, ...`` that replaces dense training. The
    result's ``save(out)`` writes what ``eiex compress`` writes.
    """
    from eiex.sw.compress.pipeline import compress as run_pipeline

    return run_pipeline(model, _dataset(dataset, train, test), data_dir=data_dir, recipe_path=recipe, seed=seed,
                        dense_weights=weights, log=log)


def binarize(model="bnn-mlp", dataset=None, *, train=None, test=None, seed: int = 0, mode: str | None = None,
             hidden=None, channels=None, dropout=None, threads: int | None = None, teacher: str | None = None,
             temperature: float = 4.0, alpha: float = 0.9, log=print):
    """Train a binarized network and fold it into integer thresholds: ``model`` is a built-in name
    (``bnn-mlp``, ``bnn-lfc``, the CNN ``bnn-cnv``), ``FILE.py:FUNCTION`` or a module built from
    ``eiex.BinaryInput``, ``eiex.BinaryLinear``, ``torch.nn.BatchNorm1d`` (and ``eiex.BinaryActivation``,
    dropout), with conv blocks of ``eiex.BinaryConv2d``, ``torch.nn.BatchNorm2d`` and ``torch.nn.MaxPool2d``
    before a ``Flatten``. The data as for :func:`compress` (uint8 pixels). ``hidden`` and
    ``channels``: a built-in model's fully connected and conv widths. ``dropout``: ``(p_input,
    p_hidden)`` for a built-in model (default: its tuning for the dataset, else none). ``teacher``:
    knowledge distillation from ``"float"`` (the float twin), ``FILE.py:FUNCTION`` or an output
    folder, at ``temperature`` with the teacher's term weighted ``alpha``. The result's
    ``save(out)`` writes what ``eiex binarize`` writes (``binary.npz``, ``report.json``)."""
    from eiex.sw.binarize.pipeline import DEFAULT_MODE, DEFAULT_THREADS
    from eiex.sw.binarize.pipeline import binarize as run_pipeline
    from eiex.sw.teacher import Distill

    return run_pipeline(model, _dataset(dataset, train, test), seed=seed, mode=DEFAULT_MODE if mode is None else mode,
                        hidden=hidden, channels=channels, dropout=dropout,
                        threads=DEFAULT_THREADS if threads is None else threads,
                        distill=None if teacher is None else Distill(teacher, temperature, alpha), log=log)


def write_binarized(result, out, force: bool = False) -> Path:
    """Write a :func:`binarize` result as an ``eiex binarize`` output folder (``result.save``)."""
    return result.save(out, force)


def _dataset(dataset, train, test):
    """``dataset`` (a name or npz path, default mnist5k) or a dataset of the arrays ``train``, ``test``."""
    from eiex.sw.data import dataset_from_arrays

    if train is None and test is None:
        return "mnist5k" if dataset is None else dataset
    if dataset is not None or train is None or test is None:
        raise EiexError("give either dataset, or both train=(x, y) and test=(x, y)")
    return dataset_from_arrays(_split_arrays(train, "train") | _split_arrays(test, "test"), "arrays")


def _split_arrays(pair, split: str) -> dict:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise EiexError(f"{split} must be a pair (x, y) of inputs and labels")
    return {f"x_{split}": pair[0], f"y_{split}": pair[1]}


def write_compressed(result, out, force: bool = False) -> Path:
    """Write a :func:`compress` result as an ``eiex compress`` output folder (``result.save``)."""
    return result.save(out, force)


def export_eie(model_folder, n_pe: int = DEFAULT_PES, *, balance: bool = False, mac: str = DEFAULT_MAC,
               **engine_params):
    """The EIE image of an ``eiex compress`` output folder for an engine whose MAC is ``mac``
    (``"index"``: identity codebooks; ``"shift"``: refused unless every codebook entry is 0 or a signed
    power of two), ``engine_params``: ``idx_bits``, ``act_bits``, ...; see ``eie-image.md``."""
    from eiex.sw.images.eie.export import export_model_folder

    return export_model_folder(model_folder, n_pe, balance=balance, mac=mac, **engine_params)


def export_xnor(model_folder, *, pe=None, simd=None, target_interval=None, fire: str = "ge"):
    """The XNOR image of an ``eiex binarize`` output folder (version 2 for a network with conv and
    pool layers), folded per layer with weights by ``pe``/``simd`` (pool layers take no value) or
    to a target interval (default: the exporter's choice for 64 lanes); ``fire="gt"`` reads
    thresholds as finn-hlslib's ``acc > T``."""
    from eiex.sw.images.xnor.export import image_from_folded, read_binarized_folder

    arrays, source = read_binarized_folder(model_folder)
    return image_from_folded(arrays, pe=pe, simd=simd, target_interval=target_interval, source=source, fire=fire)


def write_image(image, out, formats=("hex",), force: bool = False) -> dict:
    """Write ``image`` as an image folder in ``formats`` (hex, bin, coe, mif, ihex); the manifest."""
    return engine_of(image).write_image(image, out, formats=formats, force=force)


def load_image(engine: str, folder):
    """Read and validate an image folder of ``engine``."""
    return get_engine(engine).load_image(folder)


def to_verilog(engine: str, image, *, queue_depth: int = DEFAULT_QUEUE_DEPTH, mac: str = DEFAULT_MAC,
               preload: bool = False) -> str:
    """The Verilog of ``engine`` sized for ``image``; ``preload``: memories initialized from it;
    ``mac``: EIE's MAC, ``"multiply"``, ``"shift"`` (a codebook of powers of two, no multiplier) or
    ``"index"`` (identity codebooks, no codebook memory)."""
    spec = get_engine(engine)
    spec.check_image(image)
    hw = spec.hardware(image, queue_depth, mac)
    return spec.to_verilog(hw, init=spec.memory_contents(image, hw) if preload else None)


def build(engine: str, image, *, part: str, out, queue_depth: int = DEFAULT_QUEUE_DEPTH, mac: str = DEFAULT_MAC,
          preload: bool = False, speed: int | None = None, freq: float | None = None, seed: int | None = None,
          force: bool = False, log=print) -> dict:
    """Synthesize, place and route ``engine`` sized for ``image`` on ``part`` (``eiex build
    --part``); the report (``build.json``), written with the build into ``out``. ``mac`` as for
    :func:`to_verilog`."""
    from eiex.sim.tools.build import run_build
    from eiex.sim.tools.parts import get_part

    spec = get_engine(engine)
    spec.check_image(image)
    target = get_part(part, speed)
    hw = spec.hardware(image, queue_depth, mac)
    init = spec.memory_contents(image, hw) if preload else None
    description = {"engine": spec.name, "hardware": repr(hw), "preload": preload}
    return run_build(spec.component(hw, init), target, Path(out), speed=speed, freq=freq, seed=seed,
                     description=description, cycles=spec.throughput(image, hw), force=force, log=log)
