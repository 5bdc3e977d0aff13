"""The ``eiex`` command line. Every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eiex.sw.binarize.layers import DEFAULT_HIDDEN, DEFAULT_MODE, FOLDABLE_MODES
from eiex.sw.binarize.pipeline import DEFAULT_THREADS
from eiex.sw.binarize.layers import MODELS as BINARY_MODELS
from eiex.flows.demo import QUICK_DIGITS

from eiex.sim.simulate import SIMULATORS
from eiex.sw.data import DATASETS
from eiex.errors import EiexError
from eiex.sw.images.memfiles import FORMATS
from eiex.sw.models import MODELS
from eiex.sim.tools.build import DEFAULT_FREQ
from eiex.sim.tools.parts import PARTS


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"seed must be an integer from 0 to 2**32 - 1, not {text!r}")
    return value


def _int_list(text: str) -> list[int]:
    """A comma list of positive integers, one per layer: ``16,16,2``."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected a comma list of positive integers, not {text!r}")
    return values


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_compress(args) -> int:
    from eiex.sw.compress.pipeline import run_compress

    result = run_compress(
        args.out, force=args.force, model_name=args.model, dataset_name=args.dataset,
        data_dir=args.data_dir, recipe_path=args.recipe, seed=args.seed, dense_weights=args.weights,
        log=_log,
    )
    r = result.report
    print(f"{args.model}: dense {r['dense_accuracy']:.2%}, compressed {r['compressed_accuracy']:.2%}, "
          f"{r['compression_ratio']:.1f}x ({r['dense_bytes']:,} -> {r['compressed_bytes']:,} bytes); "
          f"wrote {args.out}")
    return 0


def cmd_binarize(args) -> int:
    from eiex.sw.binarize.pipeline import run_binarize

    result = run_binarize(
        args.out, force=args.force, model_name=args.model, dataset_name=args.dataset, data_dir=args.data_dir,
        seed=args.seed, mode=args.mode, hidden=tuple(args.hidden), threads=args.threads, log=_log,
    )
    r = result.report
    print(f"{args.model} {'-'.join(map(str, r['layers']))} ({r['mode']}): float {r['float_accuracy']:.2%}, "
          f"binary {r['binary_accuracy']:.2%} from the folded integer network "
          f"({r['accuracy_loss_pp']:.1f} pp below float), {r['seconds']['total']:.0f} s; wrote {args.out}")
    return 0


def _formats(text: str) -> tuple[str, ...]:
    formats = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(
            f"unknown format(s) {', '.join(unknown) or text!r}; choose from {','.join(FORMATS)}")
    return formats


def cmd_export_eie(args) -> int:
    from eiex.sw.atomic import check_output_dir
    from eiex.sw.images.eie.export import engine_for, export_model, export_model_folder, layers_from_npz
    from eiex.sw.images.eie.files import write_image
    from eiex.sw.npz import read_npz

    check_output_dir(args.out, args.force)
    overrides = _engine_overrides(args)
    if args.model is not None:
        image = export_model_folder(args.model, args.pes, balance=args.balance, **overrides)
    else:
        layers = layers_from_npz(read_npz(args.npz), str(args.npz))
        image, _ = export_model(layers, engine_for(layers, args.pes, **overrides), input_norm=None, calibration=None,
                                balance=args.balance, auto_ptr_bits=args.ptr_bits is None,
                                search_act_frac=args.act_frac is None)
    write_image(image, args.out, formats=args.formats, huffman_max_len=args.huffman, force=args.force)
    e = image.engine
    print(f"EIE image for {e.n_pe} PEs in {args.out}: act_frac {e.act_frac}, weight_frac "
          f"{', '.join(str(l.weight_frac) for l in image.layers)}, idx_bits {e.idx_bits}, rel_bits {e.rel_bits}, "
          f"{sum(len(pe.v) for pe in image.pes):,} entries; formats {','.join(args.formats)}"
          f"{', Huffman-coded streams' if args.huffman else ''}{', rows load-balanced' if args.balance else ''}")
    return 0


def _engine_args(p) -> None:
    for name, help_text in (("idx-bits", "weight index width"), ("rel-bits", "relative row index width"),
                            ("act-bits", "activation width"), ("act-frac", "activation fraction bits"),
                            ("weight-bits", "codebook value width"), ("bias-bits", "bias width"),
                            ("ptr-bits", "column pointer width"), ("entries-per-word", "sparse entries per word")):
        p.add_argument(f"--{name}", type=int, help=help_text)


def _engine_overrides(args) -> dict:
    names = ("idx_bits", "rel_bits", "act_bits", "act_frac", "weight_bits", "bias_bits", "ptr_bits",
             "entries_per_word")
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def cmd_export_xnor(args) -> int:
    from eiex.hw.xnor.golden import ideal_interval
    from eiex.sw.atomic import check_output_dir
    from eiex.sw.npz import read_npz
    from eiex.sw.images.xnor.export import image_from_folded, read_binarized_folder
    from eiex.sw.images.xnor.files import write_image

    check_output_dir(args.out, args.force)
    if args.model is not None:
        arrays, source = read_binarized_folder(args.model)
    else:
        arrays, source = read_npz(args.npz), str(args.npz)
    image = image_from_folded(arrays, pe=args.pe, simd=args.simd, target_interval=args.target_interval, source=source)
    write_image(image, args.out, formats=args.formats, force=args.force)
    print(f"XNOR image in {args.out}: {_describe_folding(image.layers)}; ideal interval {ideal_interval(image)} "
          f"cycles per image; formats {','.join(args.formats)}")
    return 0


def _describe_folding(layers) -> str:
    lanes = sum(layer.pe * layer.simd for layer in layers)
    return (", ".join(f"{layer.in_features}->{layer.out_features} pe {layer.pe} simd {layer.simd} "
                      f"(NF*SF {-(-layer.out_features // layer.pe) * -(-layer.in_features // layer.simd)})"
                      for layer in layers) + f"; {lanes} lanes")


def _xnor_engine(args):
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


def cmd_verilog_xnor(args) -> int:
    from eiex.hw.xnor.verilog import to_verilog
    from eiex.sw.atomic import atomic_write

    _, layers, init = _xnor_engine(args)
    atomic_write(args.output, to_verilog(layers, init=init).encode())
    print(f"wrote {args.output}: XNOR engine, {_describe_folding(layers)}"
          f"{', memories initialized from ' + str(args.images) if init else ''}")
    return 0


def _eie_engine(args):
    """(image or None, HwParams, memory init or None) from ``--images`` or the engine parameters."""
    from eiex.hw.eie.memory_map import memory_contents
    from eiex.hw.eie.params import HwParams
    from eiex.sw.images.eie.image import EngineParams

    if args.images is not None:
        from eiex.sw.images.eie.files import load_image

        image = load_image(args.images)
        hw = HwParams.for_image(image, queue_depth=args.queue_depth)
        return image, hw, memory_contents(image, hw) if args.preload else None
    if args.preload:
        raise EiexError("--preload needs --images: the memories are initialized from an image")
    engine = EngineParams(n_pe=args.pes, **_engine_overrides(args))
    hw = HwParams(engine=engine, queue_depth=args.queue_depth, max_width=args.max_width,
                  max_layers=args.max_layers, spmat_depth=args.spmat_depth, ptr_depth=args.ptr_depth,
                  bias_depth=args.bias_depth)
    return None, hw, None


def _describe_eie(hw, init) -> str:
    return (f"EIE engine, {hw.n_pe} PEs, queue depth {hw.queue_depth}, layers up to {hw.max_width} wide, "
            f"{hw.max_layers} layers{', memories initialized from the image' if init else ''}")


def cmd_verilog_eie(args) -> int:
    from eiex.hw.eie.verilog import to_verilog
    from eiex.sw.atomic import atomic_write

    _, hw, init = _eie_engine(args)
    atomic_write(args.output, to_verilog(hw, init=init).encode())
    print(f"wrote {args.output}: {_describe_eie(hw, init)}")
    return 0


def cmd_build(args) -> int:
    """Synthesize, place and route an engine for a part, or behind the host link for a board to a
    bitstream; write the report (sim/tools/build.py)."""
    from eiex.sim.tools.build import run_build
    from eiex.sim.tools.parts import get_part
    from eiex.sw.atomic import check_output_dir

    if args.board is not None:
        return _build_board(args)
    if args.baud is not None:
        raise EiexError("--baud goes with --board: a --part build has no UART")
    part = get_part(args.part, args.speed)
    check_output_dir(args.out, args.force)
    if args.freq is not None and not args.freq > 0:
        raise EiexError(f"--freq must be a positive number of MHz, not {args.freq}")
    if args.engine == "eie":
        from eiex.hw.eie.engine import EieEngine
        from eiex.sim.benchmarks.throughput import eie_cycles

        image, hw, init = _eie_engine(args)
        engine = EieEngine(hw, init=init)
        inputs = None if args.input is None else _read_inputs(args.input)
        cycles = eie_cycles(image, hw, inputs) if image is not None else None
        what = _describe_eie(hw, init)
        params = {"engine": "eie", "n_pe": hw.n_pe, "queue_depth": hw.queue_depth, "max_width": hw.max_width,
                  "max_layers": hw.max_layers, "spmat_depth": hw.spmat_depth, "ptr_depth": hw.ptr_depth,
                  "bias_depth": hw.bias_depth}
    else:
        from eiex.hw.xnor.engine import XnorEngine
        from eiex.sim.benchmarks.throughput import xnor_cycles

        _, layers, init = _xnor_engine(args)
        engine = XnorEngine(layers, init=init)
        cycles = xnor_cycles(layers)
        what = f"XNOR engine, {_describe_folding(layers)}"
        params = {"engine": "xnor", "layers": [vars(g) for g in layers],
                  "lanes": sum(g.pe * g.simd for g in layers)}
    if args.images is not None:
        params["images"] = str(args.images)
    params["preload"] = bool(init)
    _log(f"building the {what} for {part.name} ({part.device}); this takes minutes")
    report = run_build(engine, part, args.out, speed=args.speed, freq=args.freq, seed=args.seed,
                       description=params, cycles=cycles, force=args.force, log=_log)
    use = report["utilization"]
    print(f"{part.name}: " + ", ".join(f"{name} {row['used']:,} ({row['percent']}%)" for name, row in use.items()))
    for clock, mhz in report["fmax_mhz"].items():
        print(f"Fmax {clock}: {mhz} MHz (target {report['target_mhz'][clock]:g} MHz, "
              f"{'met' if report['met'][clock] else 'NOT met'})")
    t = report.get("throughput")
    if t:
        print(f"{t[t['unit'] + 's_per_s']:,.0f} {t['unit']}s/s ({t['cycles']:,} cycles per {t['unit']}, {t['what']})")
    print(f"report in {args.out}/build.md and build.json")
    return 0


def _build_board(args) -> int:
    """``eiex build --board``: the engine sized for ``--images``, behind the host link, on the board."""
    from eiex.hw.link.engines import link_for
    from eiex.sim.tools.boards import board_clock_hz, get_board
    from eiex.sim.tools.build import run_board_build
    from eiex.sw.atomic import check_output_dir

    board = get_board(args.board)
    clock_hz = board_clock_hz(board)
    if args.speed is not None or args.freq is not None:
        raise EiexError(f"--speed and --freq go with --part; the {board.title} runs at {clock_hz / 1e6:g} MHz"
                        f"{f' on a speed {board.speed} chip' if board.speed else ''}")
    if args.images is None:
        raise EiexError("--board needs --images: the link is built around the engine an image sizes")
    baud = args.baud or board.baud
    check_output_dir(args.out, args.force)
    if args.engine == "eie":
        from eiex.hw.eie.params import HwParams
        from eiex.sim.benchmarks.throughput import eie_cycles
        from eiex.sw.images.eie.files import load_image

        image = load_image(args.images)
        hw = HwParams.for_image(image, queue_depth=args.queue_depth)
        inputs = None if args.input is None else _read_inputs(args.input)
        cycles = eie_cycles(image, hw, inputs)
        what = _describe_eie(hw, args.preload)
        params = {"engine": "eie", "n_pe": hw.n_pe, "queue_depth": hw.queue_depth, "max_width": hw.max_width,
                  "max_layers": hw.max_layers, "spmat_depth": hw.spmat_depth, "ptr_depth": hw.ptr_depth,
                  "bias_depth": hw.bias_depth}
        link = link_for("eie", image, clock_hz=clock_hz, baud=baud, preload=args.preload,
                        queue_depth=args.queue_depth, max_payload=board.max_payload)
    else:
        from eiex.hw.xnor.memory_map import engine_for
        from eiex.sim.benchmarks.throughput import xnor_cycles
        from eiex.sw.images.xnor.files import load_image

        if args.layers is not None or args.pe or args.simd or args.target_interval or args.thr_bits:
            raise EiexError("--layers, --pe, --simd, --target-interval and --thr-bits go with --part; "
                            "with --board the image fixes the engine")
        image = load_image(args.images)
        layers = engine_for(image)
        cycles = xnor_cycles(layers)
        what = f"XNOR engine, {_describe_folding(layers)}"
        params = {"engine": "xnor", "layers": [vars(g) for g in layers],
                  "lanes": sum(g.pe * g.simd for g in layers)}
        link = link_for("xnor", image, clock_hz=clock_hz, baud=baud, preload=args.preload,
                        max_payload=board.max_payload)
    params.update(images=str(args.images), preload=bool(args.preload))
    _log(f"building the {what} behind the host link for the {board.title} ({board.chip}); this takes minutes")
    report = run_board_build(link, board, args.out, seed=args.seed, description=params, cycles=cycles,
                             force=args.force, log=_log)
    use = report["utilization"]
    print(f"{board.name} ({board.chip}): "
          + ", ".join(f"{name} {row['used']:,} ({row['percent']}%)" for name, row in use.items()))
    for clock, mhz in report["fmax_mhz"].items():
        print(f"Fmax {clock}: {mhz} MHz (board clock {report['target_mhz'][clock]:g} MHz, "
              f"{'met' if report['met'][clock] else 'NOT met: the bitstream may misbehave'})")
    t = report.get("throughput")
    if t:
        print(f"{t[t['unit'] + 's_per_s']:,.0f} {t['unit']}s/s at {t['at_mhz']:g} MHz ({t['cycles']:,} cycles per "
              f"{t['unit']}, {t['what']}; the UART limits the rate over the link)")
    bitstream = report["bitstream"]
    print(f"bitstream {args.out}/{bitstream['file']} ({bitstream['bytes']:,} bytes); to load it: {report['flash']}")
    print(f"report in {args.out}/build.md and build.json")
    return 0


def cmd_run(args) -> int:
    """An image's inputs through an engine over the host link: a board on a serial port, or the link
    top under Verilator; every output checked against the golden model (eiex/flows/run.py)."""
    import io
    import json

    import numpy as np

    from eiex.driver import Device
    from eiex.flows.run import check_inputs, run_over_link, simulated_link, summary_line
    from eiex.sw.atomic import atomic_write

    if args.engine == "eie":
        from eiex.sw.images.eie.files import load_image
    else:
        from eiex.sw.images.xnor.files import load_image
    image = load_image(args.images)
    inputs = check_inputs(args.engine, image, _read_inputs(args.input))
    labels = None if args.labels is None else _read_inputs(args.labels)
    if args.port is not None:
        if args.preload:
            raise EiexError("--preload goes with --sim: a board's bitstream holds its image or not already")
        from eiex.driver.serial_port import SerialTransport

        transport = SerialTransport(args.port, args.baud)
        baud = args.baud
    else:
        from eiex.sim.testbenches.verilator_link import VerilatorTransport
        from eiex.hw.uart import BAUD_DEFAULT

        link = simulated_link(args.engine, image, preload=args.preload,
                              queue_depth=getattr(args, "queue_depth", 8))
        _log("building the link top for Verilator (cached after the first run)")
        transport = VerilatorTransport(link, link.divisor)
        baud = BAUD_DEFAULT  # the figures are the board's; the simulated line runs faster
    with Device(transport) as device:
        outputs, report = run_over_link(args.engine, image, inputs, device, baud=baud, labels=labels, log=_log)
    buffer = io.BytesIO()
    np.save(buffer, outputs)
    atomic_write(args.out, buffer.getvalue())
    if args.stats is not None:
        atomic_write(args.stats, (json.dumps(report, indent=2) + "\n").encode())
    print(summary_line(report))
    print(f"outputs in {args.out}" + (f", report in {args.stats}" if args.stats else ""))
    return 0


def _read_inputs(path: Path):
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise EiexError(f"input file {path} not found") from None
    except (OSError, ValueError, EOFError) as e:
        raise EiexError(f"cannot read {path} as a .npy array: {e}") from None


def _simulate(engine: str, args):
    """Run ``args.images`` on ``args.input`` on the chosen simulator; write Y.npy and S.json; compare
    with the golden model."""
    import io
    import json

    import numpy as np

    from eiex.sim.engines import get_engine
    from eiex.sim.simulate import simulate
    from eiex.sw.atomic import atomic_write

    spec = get_engine(engine)
    image = spec.load_image(args.images)
    inputs = spec.check_inputs(image, _read_inputs(args.input))
    outputs, stats = simulate(engine, image, inputs, simulator=args.sim, queue_depth=getattr(args, "queue_depth", 8))
    buffer = io.BytesIO()
    np.save(buffer, outputs)
    atomic_write(args.out, buffer.getvalue())
    if args.stats is not None:
        atomic_write(args.stats, (json.dumps(stats.as_dict(), indent=2) + "\n").encode())
    matches = bool(np.array_equal(outputs, spec.golden(image, inputs)))
    interval = f"interval {stats.interval} cycles (ideal {stats.figures['ideal_interval']}); " if stats.interval else ""
    print(f"{len(inputs)} input vectors on {args.sim}: {interval}{stats.cycles_per_second:,.0f} simulated "
          f"cycles/s; outputs in {args.out}; golden model {'agrees' if matches else 'DISAGREES'}")
    return 0 if matches else 1


def _targets(text: str) -> tuple[str, ...]:
    from eiex.sim.tools.synth import TARGETS

    targets = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not targets or any(t not in TARGETS for t in targets):
        raise argparse.ArgumentTypeError(f"targets must be a comma list of {','.join(TARGETS)}, not {text!r}")
    return targets


def cmd_synth_xnor(args) -> int:
    import json

    from eiex.sim.tools.synth import xnor_resources
    from eiex.sw.atomic import atomic_write

    _, layers, _ = _xnor_engine(args)
    print(f"XNOR engine: {_describe_folding(layers)}")
    results = []
    for target in args.targets:
        for datapath_only in (False, True):
            _log(f"synthesizing {'the MVTUs' if datapath_only else 'the engine'} for {target}")
            r = xnor_resources(layers, target, datapath_only=datapath_only)
            r.pop("units", None)
            results.append({**r, "part": "mvtus" if datapath_only else "engine"})
            print(f"{target:<7} {'MVTUs only' if datapath_only else 'whole engine':<13} "
                  f"LUTs {r['luts']:>7,}  FFs {r['ffs']:>7,}  BRAM {r['bram']:>5}  LUTRAM {r['lutram']:>5}  "
                  f"DSP {r['dsp']}  {r['luts_per_lane']:.2f} LUTs per lane (FINN-R: {r['finn_r_luts_per_lane']})  "
                  f"{r['seconds']:.0f} s")
    if args.json is not None:
        record = {"layers": [vars(g) for g in layers], "results": results}
        atomic_write(args.json, (json.dumps(record, indent=2) + "\n").encode())
    return 0


def cmd_bench(args) -> int:
    """The whole bench: fc6-scale compression, EIE sweeps, XNOR intervals, simulator speeds, resources."""
    import json

    from eiex.sim.benchmarks.suite import run_bench
    from eiex.sim.benchmarks.fc6 import run_fc6
    from eiex.sw.atomic import atomic_output_dir, atomic_write, check_output_dir

    check_output_dir(args.out, args.force)
    with atomic_output_dir(args.out, args.force) as folder:
        lenet300 = args.model
        if lenet300 is None:
            from eiex.sw.compress.pipeline import compress, write_outputs

            _log("== compressing lenet300 on MNIST-5k (seed 0; --model DIR reuses a compress output)")
            lenet300 = folder / "lenet300"
            lenet300.mkdir()
            write_outputs(compress("lenet300", "mnist5k", seed=0, log=_log), lenet300)
        _log("== fc6-sized layer: prune, share, encode for 64 PEs, Huffman-code, write; beside scikit-learn "
             "and plain-Python Huffman")
        fc6 = run_fc6(out=folder / "fc6_image", log=_log)
        result = run_bench(args.quick, lenet300, folder, log=_log, fc6_compression=fc6)  # writes bench.json
    if args.json is not None:
        atomic_write(args.json, (json.dumps(result, indent=2) + "\n").encode())
    from eiex.sim.benchmarks.suite import HEADLINE_KEYS

    width = max(len(k) for k in HEADLINE_KEYS)
    for key in HEADLINE_KEYS:
        value = result[key]
        if value is None:
            value = "not measured (place and route runs in the full bench only)"
        print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    print(f"plots and bench.json in {args.out}/")
    return 0


def cmd_bench_eie_balance(args) -> int:
    from eiex.sim.benchmarks.eie_balance import balance_curves, write_curves
    from eiex.sw.atomic import atomic_output_dir, check_output_dir

    check_output_dir(args.out, args.force)
    if not 1 <= args.samples <= 1000:
        raise EiexError(f"--samples must be between 1 and the 1,000 held-out digits, not {args.samples}")
    if not 0 <= args.rtl_samples <= args.samples:
        raise EiexError(f"--rtl-samples must be between 0 and --samples ({args.samples}), not {args.rtl_samples}")
    result = balance_curves(args.model, samples=args.samples, rtl_samples=args.rtl_samples)
    with atomic_output_dir(args.out, args.force) as folder:
        write_curves(result, folder)
    for row in result["rows"]:
        print(f"{row['sweep']:<12} pes {row['pes']:>3}  depth {row['queue_depth']:>3}  "
              f"{'permuted' if row['balance'] else 'interleaved':<11}  efficiency {row['efficiency']:.1%}  "
              f"compute/ideal {row['compute_over_ideal']:.3f} "
              f"({row['beyond_latency_over_ideal']:.3f} beyond the {row['latency']}-cycle latency)  "
              f"cycles {row['compute_cycles']:.0f}")
    if result["rtl_checks"]:
        print(f"RTL spot check: {len(result['rtl_checks'])} runs on the Amaranth simulator, compute_cycles "
              "equal to the cycle model's")
    print(f"curves in {args.out}/balance.png, data in balance.csv and balance.json")
    return 0


def cmd_demo(args) -> int:
    from eiex.flows.demo import run_demo, summary_table

    summary = run_demo(args.out, quick=args.quick, seed=args.seed, force=args.force, simulator=args.sim, log=_log)
    print("\n" + summary_table(summary, args.out))
    return 0


def _folding_args(p) -> None:
    p.add_argument("--pe", type=_int_list, help="PEs (rows in parallel) per layer, e.g. 16,16,2")
    p.add_argument("--simd", type=_int_list, help="SIMD lanes (columns in parallel) per layer, e.g. 49,32,32")
    p.add_argument("--target-interval", type=int, help="cycles per image (max NF*SF) to fold for with the "
                   "fewest lanes (default: what 64 lanes give the largest layer)")


def _eie_engine_args(p) -> None:
    """The EIE engine's sizing options: an image, or the engine parameters."""
    p.add_argument("--images", type=Path, help="size the engine for this image (and --preload its memories)")
    p.add_argument("--pes", type=int, default=8, help="processing elements, without --images (default 8)")
    _engine_args(p)
    for name, default in (("max-width", 1024), ("max-layers", 4), ("spmat-depth", 4096), ("ptr-depth", 2048),
                          ("bias-depth", 512)):
        p.add_argument(f"--{name}", type=int, default=default, help=f"without --images (default {default})")
    p.add_argument("--queue-depth", type=int, default=8, help="activation queue entries per PE, at least 2 (default 8)")
    p.add_argument("--preload", action="store_true", help="initialize the memories from --images")


def _xnor_engine_args(p) -> None:
    """The XNOR engine's sizing options: an image, or layer sizes and a folding."""
    p.add_argument("--images", type=Path, help="size the engine for this image (and --preload its memories)")
    p.add_argument("--layers", type=_int_list, help="without --images: layer sizes, inputs first (784,512,512,10)")
    _folding_args(p)
    p.add_argument("--thr-bits", type=_int_list, help="with --layers: threshold width per hidden layer "
                   "(default: enough for any threshold 0 .. K+1)")
    p.add_argument("--preload", action="store_true", help="initialize the memories from --images")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="eiex", description="Compressed neural networks on FPGAs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("compress", help="Deep Compression: prune, share weights, Huffman-code")
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--dataset", default="mnist5k", choices=DATASETS)
    p.add_argument("--data-dir", type=Path, help="folder of the MNIST IDX files (--dataset mnist)")
    p.add_argument("--recipe", type=Path, help="TOML file overriding the built-in recipe")
    p.add_argument("--weights", type=Path, help="npz of trained dense weights (w0, b0, ...): skip dense training")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", type=Path, required=True, help="output folder (written atomically)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("binarize", help="train a binarized network and fold it to integer thresholds")
    p.add_argument("--model", required=True, choices=BINARY_MODELS)
    p.add_argument("--dataset", default="mnist5k", choices=DATASETS)
    p.add_argument("--data-dir", type=Path, help="folder of the MNIST IDX files (--dataset mnist)")
    p.add_argument("--mode", default=DEFAULT_MODE, choices=FOLDABLE_MODES,
                   help=f"bnn (sign weights) or xnor (plus XNOR-Net scaling alpha); default {DEFAULT_MODE}")
    p.add_argument("--hidden", type=_int_list, default=list(DEFAULT_HIDDEN),
                   help=f"hidden layer widths (default {','.join(map(str, DEFAULT_HIDDEN))})")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help=f"torch threads; pinned because results depend on it (default {DEFAULT_THREADS})")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", type=Path, required=True, help="output folder (written atomically)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_binarize)

    p = sub.add_parser("export", help="write memory images for an accelerator")
    engines = p.add_subparsers(dest="engine", required=True, parser_class=_Parser)
    p = engines.add_parser("eie", help="EIE sparse engine image (shared/spec/eie-image.md)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="an eiex compress output folder")
    source.add_argument("--npz", type=Path, help="weights w0, b0, w1, b1, ... (optional boolean relu)")
    p.add_argument("--pes", type=int, default=8, help="processing elements (default 8)")
    p.add_argument("--formats", type=_formats, default=("hex",), help="comma list of hex,bin,coe,mif,ihex (hex always)")
    p.add_argument("--huffman", type=int, nargs="?", const=16, default=None, metavar="MAX_LEN",
                   help="also write Huffman-coded entry streams (longest code, default 16)")
    p.add_argument("--balance", action="store_true", help="reorder hidden rows so PEs get equal work")
    _engine_args(p)  # unset: idx_bits from the distinct values, act_frac calibrated, ptr_bits as needed
    p.add_argument("--out", type=Path, required=True, help="image folder (written atomically)")
    p.add_argument("--force", action="store_true", help="replace an existing image folder")
    p.set_defaults(func=cmd_export_eie)
    p = engines.add_parser("xnor", help="XNOR binary engine image (shared/spec/xnor-image.md)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="an eiex binarize output folder")
    source.add_argument("--npz", type=Path, help="folded arrays w0, w1, ..., t0, ..., scale, bias, input_threshold")
    _folding_args(p)
    p.add_argument("--formats", type=_formats, default=("hex",), help="comma list of hex,bin,coe,mif,ihex (hex always)")
    p.add_argument("--out", type=Path, required=True, help="image folder (written atomically)")
    p.add_argument("--force", action="store_true", help="replace an existing image folder")
    p.set_defaults(func=cmd_export_xnor)

    p = sub.add_parser("verilog", help="generate an engine's Verilog")
    engines = p.add_subparsers(dest="engine", required=True, parser_class=_Parser)
    p = engines.add_parser("eie", help="the EIE sparse engine")
    _eie_engine_args(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="Verilog file to write")
    p.set_defaults(func=cmd_verilog_eie)
    p = engines.add_parser("xnor", help="the XNOR binary engine")
    _xnor_engine_args(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="Verilog file to write")
    p.set_defaults(func=cmd_verilog_xnor)

    from eiex.sim.tools.boards import BOARDS

    p = sub.add_parser("build", help="synthesize, place and route an engine for an FPGA part or a board "
                       "(Yosys, nextpnr)")
    engines = p.add_subparsers(dest="engine", required=True, parser_class=_Parser)
    for name, help_text, engine_args in (("eie", "the EIE sparse engine", _eie_engine_args),
                                         ("xnor", "the XNOR binary engine", _xnor_engine_args)):
        p = engines.add_parser(name, help=help_text)
        engine_args(p)
        if name == "eie":
            p.add_argument("--input", type=Path, help="X.npy of engine-format inputs for the throughput "
                           "(default: 100 held-out MNIST-5k digits for a 784-input image)")
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("--part", choices=sorted(PARTS), help="the FPGA part: the engine alone, for its "
                            "resources and Fmax")
        target.add_argument("--board", choices=BOARDS, help="a board: the engine behind the host link "
                            "(docs/host-protocol.md), to a bitstream")
        p.add_argument("--baud", type=int, help="with --board: the UART's baud rate (default 3000000, 115200 on "
                       "the OrangeCrab, whose USB-serial adapter is the user's)")
        p.add_argument("--speed", type=int, choices=(6, 7, 8), help="with --part: ECP5 speed grade (default 6, "
                       "the slowest)")
        p.add_argument("--freq", type=float, help=f"with --part: target clock in MHz for nextpnr (default "
                       f"{DEFAULT_FREQ:g})")
        p.add_argument("--seed", type=int, help="nextpnr placer seed (default: nextpnr's)")
        p.add_argument("--out", type=Path, required=True, help="build folder (written atomically)")
        p.add_argument("--force", action="store_true", help="replace an existing build folder")
        p.set_defaults(func=cmd_build)

    p = sub.add_parser("sim", help="run an image on a simulated engine")
    engines = p.add_subparsers(dest="engine", required=True, parser_class=_Parser)
    p = engines.add_parser("eie", help="the EIE sparse engine")
    p.add_argument("--images", type=Path, required=True, help="an EIE image folder")
    p.add_argument("--input", type=Path, required=True, help="X.npy: (samples, inputs) integers in act_bits fixed point")
    p.add_argument("--out", type=Path, required=True, help="Y.npy to write: (samples, outputs) integers")
    p.add_argument("--stats", type=Path, help="S.json to write: cycles, compute_cycles, ideal_cycles")
    p.add_argument("--sim", choices=SIMULATORS, default="amaranth",
                   help="Amaranth's simulator, or the generated Verilog under cocotb (default amaranth)")
    p.add_argument("--queue-depth", type=int, default=8, help="activation queue entries per PE, at least 2 (default 8)")
    p.set_defaults(func=lambda args: _simulate("eie", args))
    p = engines.add_parser("xnor", help="the XNOR binary engine")
    p.add_argument("--images", type=Path, required=True, help="an XNOR image folder")
    p.add_argument("--input", type=Path, required=True, help="X.npy: (samples, inputs) bits, 0 or 1")
    p.add_argument("--out", type=Path, required=True, help="Y.npy to write: (samples, outputs) scores 2*acc - K")
    p.add_argument("--stats", type=Path, help="S.json to write: cycles per image, interval, ideal_interval")
    p.add_argument("--sim", choices=SIMULATORS, default="amaranth",
                   help="Amaranth's simulator, or the generated Verilog under cocotb (default amaranth)")
    p.set_defaults(func=lambda args: _simulate("xnor", args))

    p = sub.add_parser("run", help="run inputs on an engine over the host link: a board, or its top on Verilator")
    engines = p.add_subparsers(dest="engine", required=True, parser_class=_Parser)
    for name, help_text, x_help in (("eie", "the EIE sparse engine", "integers in act_bits fixed point"),
                                    ("xnor", "the XNOR binary engine", "bits, 0 or 1")):
        p = engines.add_parser(name, help=help_text)
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--port", help="the board's serial port (/dev/ttyUSB0)")
        where.add_argument("--sim", choices=("verilator",), help="the board's link top under Verilator")
        p.add_argument("--baud", type=int, default=3_000_000, help="with --port: the line's baud rate (default "
                       "3000000, what eiex build --board makes)")
        p.add_argument("--images", type=Path, required=True, help=f"an {name.upper()} image folder")
        p.add_argument("--input", type=Path, required=True, help=f"X.npy: (samples, inputs) {x_help}")
        p.add_argument("--out", type=Path, required=True, help="Y.npy to write: (samples, outputs)")
        p.add_argument("--labels", type=Path, help="L.npy: (samples,) labels, for the accuracy")
        p.add_argument("--stats", type=Path, help="S.json to write: wire bytes, link and engine rates, counters")
        p.add_argument("--preload", action="store_true", help="with --sim: the image in the simulated "
                       "bitstream (nothing to load over the link)")
        if name == "eie":
            p.add_argument("--queue-depth", type=int, default=8, help="with --sim: activation queue entries per "
                           "PE, at least 2 (default 8)")
        p.set_defaults(func=cmd_run)

    p = sub.add_parser("synth", help="FPGA resource estimate from Yosys synthesis")
    engines = p.add_subparsers(dest="engine", required=True, parser_class=_Parser)
    p = engines.add_parser("xnor", help="the XNOR binary engine: whole engine and MVTUs, LUTs per lane")
    p.add_argument("--images", type=Path, help="an XNOR image folder (its folding)")
    p.add_argument("--layers", type=_int_list, help="without --images: layer sizes, inputs first (784,512,512,10)")
    _folding_args(p)
    p.add_argument("--thr-bits", type=_int_list, help="with --layers: threshold width per hidden layer")
    p.add_argument("--targets", type=_targets, default=("ecp5", "xilinx"), help="comma list of ecp5,ice40,xilinx "
                   "(default ecp5,xilinx)")
    p.add_argument("--json", type=Path, help="also write the counts to this JSON file")
    p.set_defaults(func=cmd_synth_xnor)

    p = sub.add_parser("bench", help="measurements: eiex bench [--quick] [--json FILE], or one bench by name")
    p.add_argument("--quick", action="store_true", help="the short run (within 5 minutes): no full sweeps")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--model", type=Path, help="an eiex compress --model lenet300 output folder (default: compress one)")
    p.add_argument("--out", type=Path, default=Path("out/bench"), help="output folder (default out/bench)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_bench)
    benches = p.add_subparsers(dest="bench", required=False, parser_class=_Parser)
    p = benches.add_parser("eie-balance", help="EIE load efficiency vs queue depth and PE count (paper Fig. 11, 13)")
    p.add_argument("--model", type=Path, required=True, help="an eiex compress output folder (an MLP)")
    p.add_argument("--samples", type=int, default=20, help="held-out digits to average over (default 20)")
    p.add_argument("--rtl-samples", type=int, default=2,
                   help="digits also run on the RTL to check the cycle model, per row order (default 2)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_bench_eie_balance)

    p = sub.add_parser("demo", help="the main job end to end on the bundled MNIST subset")
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--quick", action="store_true",
                   help=f"LeNet-300-100 only (no LeNet-5), and the first {QUICK_DIGITS} held-out digits on the RTL")
    p.add_argument("--sim", choices=["verilator", "icarus"], default="verilator",
                   help="simulator for the held-out digits (default verilator)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EiexError as e:
        print(f"eiex: error: {e}", file=sys.stderr)
    except OSError as e:
        print(f"eiex: error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
    except KeyboardInterrupt:
        print("eiex: interrupted; no output was written", file=sys.stderr)
        return 130
    return 1
