"""The engine registry: the one place that names eiex's engines.

Each :class:`Engine` says how to read its image, check inputs, compute the golden outputs, describe
and generate the hardware for an image, and run it on each simulator. The CLI, the demo, the
benchmarks and the builds look an engine up here (:func:`get_engine`) instead of branching on its
name; adding an engine means adding one entry to :data:`ENGINES`.

Everything heavy (Amaranth, the cores) is imported when a function runs, so looking an engine up
stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from eiex.errors import EiexError
from eiex.hw.eie.params import DEFAULT_MAC, DEFAULT_QUEUE_DEPTH


@dataclass(frozen=True)
class CocotbJob:
    """What a cocotb bench feeds the engine's Verilog in one run."""

    loads: list[int]  # load-interface payloads, packed as the Amaranth load layout
    inputs: list[list[int]]  # per sample, the input stream's words
    stall_cycles: int  # default watchdog: the longest quiet stretch of a correct run, with margin


@dataclass(frozen=True)
class Engine:
    """What the rest of eiex needs to know of one engine."""

    name: str
    title: str
    #: the image class (from :mod:`eiex.sw.images`) this engine runs
    image_type: Callable[[], type]
    #: ``load_image(folder)``: read and validate an image folder
    load_image: Callable
    #: ``write_image(image, out, formats=("hex",), force=False)``: write an image folder; its manifest
    write_image: Callable
    #: ``check_inputs(image, x)``: ``x`` as the engine's input integers, or an EiexError
    check_inputs: Callable
    #: ``from_raw(image, raw)``: raw samples (pixels, any shape per sample) as the engine's inputs,
    #: converted by the image's own input section
    from_raw: Callable
    #: ``golden(image, x)``: the bit-exact outputs
    golden: Callable
    #: ``classes(image, outputs)``: the predicted class of each output vector
    classes: Callable
    #: ``hardware(image, queue_depth, mac)``: the elaboration parameters of an engine sized for the
    #: image (``queue_depth`` and ``mac``: EIE's activation queue and MAC kind)
    hardware: Callable
    #: ``resize(image, **knobs)``: ``(image, hardware)`` of one design point of ``eiex explore``, the
    #: same network laid out anew; outputs unchanged
    resize: Callable
    #: the keyword arguments of ``resize`` that ``eiex explore`` sweeps
    knobs: tuple
    #: ``memory_contents(image, hardware)``: the memories' initial contents (``--preload``)
    memory_contents: Callable
    #: ``to_verilog(hardware, init=None, name=...)``
    to_verilog: Callable
    #: ``component(hardware, init=None)``: the Amaranth engine itself
    component: Callable
    #: ``throughput(image, hardware, inputs=None)``: cycles per result from the cycle model, as
    #: :func:`eiex.sim.tools.build.run_build` reports them
    throughput: Callable
    #: ``amaranth(image, x, **options)``: ``(outputs, samples, figures)`` on Amaranth's simulator
    amaranth: Callable
    #: ``cocotb_job(image, x, hardware, preload)``: the :class:`CocotbJob` of a run on the Verilog
    cocotb_job: Callable
    #: ``cocotb_stats(image, x, results)``: ``(samples, figures)`` from the bench's results
    cocotb_stats: Callable
    #: the cocotb bench module and the top-level name its Verilog gets
    cocotb_bench: str
    top: str

    @staticmethod
    def check_labels(labels, n: int) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise EiexError(f"labels must be {n} integers, one per input, not {labels.dtype} {labels.shape}")
        return labels

    def accuracy(self, image, outputs, labels) -> float:
        """The fraction of ``outputs`` whose predicted class is the label."""
        return float(np.mean(self.classes(image, outputs) == self.check_labels(labels, len(outputs))))

    def check_image(self, image) -> None:
        if not isinstance(image, self.image_type()):
            raise EiexError(f"the {self.name} engine runs an {self.image_type().__name__}, "
                            f"not a {type(image).__name__}")


# ---- EIE --------------------------------------------------------------------------------------

def _eie_image_type():
    from eiex.sw.images.eie.image import EieImage

    return EieImage


def _eie_load(folder):
    from eiex.sw.images.eie.files import load_image

    return load_image(folder)


def _eie_write(image, out, formats=("hex",), force: bool = False):
    from eiex.sw.images.eie.files import write_image

    return write_image(image, out, formats=formats, force=force)


def _eie_check(image, x):
    from eiex.hw.eie import golden

    return golden.check_inputs(image, x)


def _flat_raw(raw, inputs: int) -> np.ndarray:
    raw = np.asarray(raw)
    if raw.ndim < 2 or int(np.prod(raw.shape[1:])) != inputs:
        raise EiexError(f"raw inputs must be (samples, ...) with {inputs} values per sample, not {raw.shape}")
    if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise EiexError(f"raw inputs must be real numbers, not {raw.dtype}")
    if np.issubdtype(raw.dtype, np.floating) and not np.all(np.isfinite(raw)):
        raise EiexError("raw inputs contain NaN or infinite values")
    return raw.reshape(len(raw), inputs)


def _eie_raw(image, raw):
    from eiex.hw.eie import golden

    return golden.quantize_input(image, _flat_raw(raw, image.inputs))


def _eie_golden(image, x):
    from eiex.hw.eie import golden

    return golden.run(image, x)


def _eie_classes(image, y):
    return np.argmax(y, axis=1)


def _eie_hardware(image, queue_depth: int = DEFAULT_QUEUE_DEPTH, mac: str = DEFAULT_MAC):
    from eiex.hw.eie.params import HwParams

    hw = HwParams.for_image(image, queue_depth=queue_depth, mac=mac)
    hw.check_image(image)
    return hw


def _eie_resize(image, n_pe: int | None = None, queue_depth: int = DEFAULT_QUEUE_DEPTH, mac: str = DEFAULT_MAC):
    from eiex.sw.images.eie.encode import with_pes

    image = image if n_pe is None else with_pes(image, n_pe)
    return image, _eie_hardware(image, queue_depth, mac)


def _eie_memory(image, hw):
    from eiex.hw.eie.memory_map import memory_contents

    return memory_contents(image, hw)


def _eie_verilog(hw, init=None, name: str = "eie_engine"):
    from eiex.hw.eie.verilog import to_verilog

    return to_verilog(hw, name=name, init=init)


def _eie_component(hw, init=None):
    from eiex.hw.eie.engine import EieEngine

    return EieEngine(hw, init=init)


def _eie_throughput(image, hw, inputs=None):
    from eiex.sim.benchmarks.throughput import eie_cycles

    return None if image is None else eie_cycles(image, hw, inputs)  # the work depends on the image


def _eie_amaranth(image, x, *, queue_depth=8, mac=DEFAULT_MAC, timing=None, **options):
    from eiex.sim.pysim.eie import simulate

    outputs, samples = simulate(image, x, queue_depth=queue_depth, mac=mac, timing=timing, **options)
    return outputs, [{k: int(v) for k, v in s.items()} for s in samples], {}


def _eie_cocotb_job(image, a, hw, preload: bool) -> CocotbJob:
    from eiex.hw.eie.cycles import column_lengths
    from eiex.hw.eie.engine import load_layout
    from eiex.hw.eie.memory_map import load_writes
    from eiex.sim.testbenches.runner import pack_payloads

    loads = [] if preload else pack_payloads(load_layout(hw), load_writes(image, hw, skip_zero=True))
    mask = (1 << image.engine.act_bits) - 1
    # the longest quiet stretch: one vector's computation, bounded by every entry of every layer
    work = sum(l.cols + l.rows + int(column_lengths(image, i).sum()) for i, l in enumerate(image.layers))
    return CocotbJob(loads, (a & mask).tolist(), 4 * work + 1000)


def _eie_cocotb_stats(image, a, results: dict):
    from eiex.hw.eie.cycles import ideal_cycles_batch

    ideal = ideal_cycles_batch(image, a)
    return [{"cycles": int(c), "compute_cycles": int(k), "ideal_cycles": int(i)}
            for c, k, i in zip(results["cycles"], results["compute_cycles"], ideal)], {}


# ---- XNOR -------------------------------------------------------------------------------------

def _xnor_image_type():
    from eiex.sw.images.xnor.image import XnorImage

    return XnorImage


def _xnor_load(folder):
    from eiex.sw.images.xnor.files import load_image

    return load_image(folder)


def _xnor_write(image, out, formats=("hex",), force: bool = False):
    from eiex.sw.images.xnor.files import write_image

    return write_image(image, out, formats=formats, force=force)


def _xnor_check(image, x):
    from eiex.hw.xnor import golden

    return golden.check_bits(image, x)


def _xnor_raw(image, raw):
    from eiex.hw.xnor import golden

    return golden.binarize_input(image, _flat_raw(raw, image.inputs))


def _xnor_golden(image, x):
    from eiex.hw.xnor import golden

    return golden.run(image, x)


def _xnor_classes(image, y):
    from eiex.hw.xnor import golden

    return np.argmax(golden.scores(image, y), axis=1)  # scale * y + bias, xnor-image.md section 6


def _xnor_check_mac(mac) -> None:
    if mac != DEFAULT_MAC:
        raise EiexError(f"the XNOR engine has no multiplier to replace: mac must be {DEFAULT_MAC}, not {mac!r}")


def _xnor_hardware(image, queue_depth: int = DEFAULT_QUEUE_DEPTH, mac: str = DEFAULT_MAC):
    from eiex.hw.xnor.memory_map import engine_for

    _xnor_check_mac(mac)
    return engine_for(image)


def _xnor_resize(image, target_interval: int | None = None):
    from eiex.sw.images.xnor.export import refold

    image = image if target_interval is None else refold(image, target_interval=target_interval)
    return image, _xnor_hardware(image)


def _xnor_memory(image, layers):
    from eiex.hw.xnor.memory_map import memory_contents

    return memory_contents(image)


def _xnor_verilog(layers, init=None, name: str = "xnor_engine"):
    from eiex.hw.xnor.verilog import to_verilog

    return to_verilog(layers, name=name, init=init)


def _xnor_component(layers, init=None):
    from eiex.hw.xnor.engine import XnorEngine

    return XnorEngine(layers, init=init)


def _xnor_throughput(image, layers, inputs=None):
    from eiex.sim.benchmarks.throughput import xnor_cycles
    from eiex.sw.images.xnor.arithmetic import ideal_interval

    cycles = xnor_cycles(layers)
    return cycles if image is None else {**cycles, "ideal_cycles": ideal_interval(image)}


def _xnor_amaranth(image, x, *, queue_depth=8, mac=DEFAULT_MAC, timing=None, **options):
    from eiex.sim.pysim.xnor import simulate

    _xnor_check_mac(mac)
    outputs, figures = simulate(image, x, timing=timing, **options)
    return outputs, [{"cycles": c} for c in figures["cycles"]], figures


def _xnor_cocotb_job(image, bits, layers, preload: bool) -> CocotbJob:
    from eiex.hw.xnor.cycles import unit_timing
    from eiex.hw.xnor.engine import input_beats, load_layout
    from eiex.hw.xnor.memory_map import load_writes, pack_input
    from eiex.sim.testbenches.runner import pack_payloads

    loads = [] if preload else pack_payloads(load_layout(layers), load_writes(image))
    work = sum(unit_timing(g)[0] for g in layers) + input_beats(layers[0])[0] + layers[-1].out_features
    return CocotbJob(loads, [[int(w) for w in beats] for beats in pack_input(image, bits)], 4 * work + 1000)


def _xnor_cocotb_stats(image, bits, results: dict):
    from eiex.sim.pysim.xnor import statistics

    figures = statistics(image, results["first_in"], results["last_out"])
    return [{"cycles": c} for c in figures["cycles"]], figures


ENGINES: dict[str, Engine] = {
    "eie": Engine(
        name="eie", title="EIE sparse engine", image_type=_eie_image_type, load_image=_eie_load, write_image=_eie_write,
        check_inputs=_eie_check, from_raw=_eie_raw, golden=_eie_golden, classes=_eie_classes, hardware=_eie_hardware,
        resize=_eie_resize, knobs=("n_pe", "queue_depth", "mac"),
        memory_contents=_eie_memory, to_verilog=_eie_verilog, component=_eie_component,
        throughput=_eie_throughput, amaranth=_eie_amaranth, cocotb_job=_eie_cocotb_job,
        cocotb_stats=_eie_cocotb_stats, cocotb_bench="eiex.sim.testbenches.eie", top="eie_engine"),
    "xnor": Engine(
        name="xnor", title="XNOR binary engine", image_type=_xnor_image_type, load_image=_xnor_load, write_image=_xnor_write,
        check_inputs=_xnor_check, from_raw=_xnor_raw, golden=_xnor_golden, classes=_xnor_classes, hardware=_xnor_hardware,
        resize=_xnor_resize, knobs=("target_interval",),
        memory_contents=_xnor_memory, to_verilog=_xnor_verilog, component=_xnor_component,
        throughput=_xnor_throughput, amaranth=_xnor_amaranth,
        cocotb_job=_xnor_cocotb_job, cocotb_stats=_xnor_cocotb_stats, cocotb_bench="eiex.sim.testbenches.xnor",
        top="xnor_engine"),
}


def get_engine(name) -> Engine:
    """The registered engine called ``name``, or one clear error."""
    try:
        return ENGINES[name]
    except (KeyError, TypeError):
        raise EiexError(f"engine must be one of {', '.join(ENGINES)}, not {name!r}") from None


def engine_of(image) -> Engine:
    """The engine that runs ``image``."""
    for engine in ENGINES.values():
        if isinstance(image, engine.image_type()):
            return engine
    raise EiexError(f"no engine runs a {type(image).__name__}")

