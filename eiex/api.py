"""The Python API: what the command line does, as functions (re-exported by :mod:`eiex`).

    import eiex

    result = eiex.compress("lenet300", "mnist5k", seed=0)          # Deep Compression
    eiex.write_compressed(result, "out/lenet300")
    image = eiex.export_eie("out/lenet300", n_pe=8)                # an EIE image
    outputs, stats = eiex.simulate("eie", image, x, simulator="verilator")
    report = eiex.build("eie", image, part="ecp5-85k", out="out/build")

Every function raises :class:`eiex.EiexError` with one clear line on bad input.
"""

from __future__ import annotations

from pathlib import Path

from eiex.sim.engines import ENGINES, Engine, engine_of, get_engine
from eiex.sim.simulate import SIMULATORS, Stats, simulate
from eiex.sw.binarize.pipeline import binarize
from eiex.sw.binarize.pipeline import write_outputs as write_binarized
from eiex.sw.compress.pipeline import compress
from eiex.sw.compress.pipeline import write_outputs as write_compressed_folder

__all__ = ["ENGINES", "SIMULATORS", "Engine", "Stats", "binarize", "build", "compress", "export_eie", "export_xnor",
           "get_engine", "load_image", "simulate", "to_verilog", "write_binarized", "write_compressed",
           "write_image"]


def write_compressed(result, out, force: bool = False) -> Path:
    """Write a :func:`compress` result as an ``eiex compress`` output folder, whole or not at all."""
    from eiex.sw.atomic import atomic_output_dir

    with atomic_output_dir(out, force) as folder:
        write_compressed_folder(result, folder)
    return Path(out)


def export_eie(model_folder, n_pe: int = 8, *, balance: bool = False, **engine_params):
    """The EIE image of an ``eiex compress`` output folder (``engine_params``: ``idx_bits``,
    ``act_bits``, ...; see ``eie-image.md``)."""
    from eiex.sw.images.eie.export import export_model_folder

    return export_model_folder(model_folder, n_pe, balance=balance, **engine_params)


def export_xnor(model_folder, *, pe=None, simd=None, target_interval=None):
    """The XNOR image of an ``eiex binarize`` output folder, folded per layer by ``pe``/``simd``
    or to a target interval (default: the exporter's choice for 64 lanes)."""
    from eiex.sw.images.xnor.export import image_from_folded, read_binarized_folder

    arrays, source = read_binarized_folder(model_folder)
    return image_from_folded(arrays, pe=pe, simd=simd, target_interval=target_interval, source=source)


def write_image(image, out, formats=("hex",), force: bool = False) -> dict:
    """Write ``image`` as an image folder in ``formats`` (hex, bin, coe, mif, ihex); the manifest."""
    return engine_of(image).write_image(image, out, formats=formats, force=force)


def load_image(engine: str, folder):
    """Read and validate an image folder of ``engine``."""
    return get_engine(engine).load_image(folder)


def to_verilog(engine: str, image, *, queue_depth: int = 8, preload: bool = False) -> str:
    """The Verilog of ``engine`` sized for ``image``; ``preload``: memories initialized from it."""
    spec = get_engine(engine)
    spec.check_image(image)
    hw = spec.hardware(image, queue_depth)
    return spec.to_verilog(hw, init=spec.memory_contents(image, hw) if preload else None)


def build(engine: str, image, *, part: str, out, queue_depth: int = 8, preload: bool = False,
          speed: int | None = None, freq: float | None = None, seed: int | None = None, force: bool = False,
          log=print) -> dict:
    """Synthesize, place and route ``engine`` sized for ``image`` on ``part`` (``eiex build
    --part``); the report (``build.json``), written with the build into ``out``."""
    from eiex.sim.tools.build import run_build
    from eiex.sim.tools.parts import get_part

    spec = get_engine(engine)
    spec.check_image(image)
    target = get_part(part, speed)
    hw = spec.hardware(image, queue_depth)
    init = spec.memory_contents(image, hw) if preload else None
    description = {"engine": spec.name, "hardware": repr(hw), "preload": preload}
    return run_build(spec.component(hw, init), target, Path(out), speed=speed, freq=freq, seed=seed,
                     description=description, cycles=spec.throughput(image, hw), force=force, log=log)
