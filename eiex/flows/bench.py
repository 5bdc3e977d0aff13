"""``eiex bench``: every benchmark in one output folder, with a LeNet-300-100 compressed for it
when none is given."""

from __future__ import annotations

from pathlib import Path

from eiex.sw.atomic import atomic_output_dir, check_output_dir


def run_full_bench(out, *, quick: bool = False, model: Path | None = None, force: bool = False,
                   log=print) -> dict:
    """fc6-scale compression, Deep Compression's MNIST table on full MNIST (full plan only), then
    the suite (EIE sweeps, XNOR intervals, simulator speeds, resources;
    :func:`eiex.sim.benchmarks.suite.run_bench`) into ``out``, written atomically;
    ``model``: an ``eiex compress --model lenet300`` folder to reuse. Returns the results
    (also ``bench.json``)."""
    from eiex.sim.benchmarks.fc6 import run_fc6
    from eiex.sim.benchmarks.suite import run_bench

    check_output_dir(out, force)
    with atomic_output_dir(out, force) as folder:
        lenet300 = model
        if lenet300 is None:
            from eiex.sw.compress.pipeline import compress, write_outputs

            log("== compressing lenet300 on MNIST-5k (seed 0; --model DIR reuses a compress output)")
            lenet300 = folder / "lenet300"
            lenet300.mkdir()
            write_outputs(compress("lenet300", "mnist5k", seed=0, log=log), lenet300)
        log("== fc6-sized layer: prune, share, encode for 64 PEs, Huffman-code, write; beside scikit-learn "
            "and plain-Python Huffman")
        fc6 = run_fc6(out=folder / "fc6_image", log=log)
        mnist = None
        if not quick:
            from eiex.sim.benchmarks.mnist import run_mnist

            (folder / "mnist").mkdir()
            mnist = run_mnist(folder / "mnist", log=log)
        return run_bench(quick, lenet300, folder, log=log, fc6_compression=fc6, mnist=mnist)  # writes bench.json
