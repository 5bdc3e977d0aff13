"""End to end on Verilator: the compressed LeNet-300-100 on the EIE engine (8 PEs) and the BNN MLP on
the XNOR engine, over held-out MNIST-5k digits, bit-exact against the golden models, with PyTorch's
float accuracy, the golden model's and the RTL's side by side."""

import json
import shutil

import numpy as np
import pytest

from eiex.cli import main
from eiex.hw.eie import golden as eie_golden
from eiex.hw.xnor import golden as xnor_golden
from eiex.sim import simulate as simulation
from eiex.sw.data import load_dataset
from eiex.sw.images.eie.files import load_image as load_eie_image
from eiex.sw.images.xnor.files import load_image as load_xnor_image


def simulate(engine, image, x, simulator):
    outputs, stats = simulation.simulate(engine, image, x, simulator=simulator)
    return outputs, stats.as_dict()


DIGITS = 200  # every fifth held-out digit: all ten classes, 200 x ~1,700 EIE cycles
ICARUS_DIGITS = 3  # Icarus runs these designs at about 10,000 cycles/s


@pytest.fixture(scope="module")
def held_out():
    test = load_dataset("mnist5k").test
    pick = slice(0, None, len(test) // DIGITS)
    return test.images[pick].reshape(DIGITS, -1), test.labels[pick]


def accuracy(scores, labels):
    return float(np.mean(np.asarray(scores).argmax(1) == labels))


def test_compressed_lenet300_on_verilator_equals_the_golden_model(compressed_lenet300, held_out, tmp_path, capsys):
    from eiex.sw.images.eie.export import float_forward, layers_from_npz
    from eiex.sw.npz import read_npz

    lenet300 = compressed_lenet300
    raw, labels = held_out
    assert main(["export", "eie", "--model", str(lenet300), "--pes", "8", "--balance", "--out", str(tmp_path / "img")]) == 0
    image = load_eie_image(tmp_path / "img")
    inputs = eie_golden.quantize_input(image, raw)
    outputs, stats = simulate("eie", image, inputs, simulator="verilator")
    golden = eie_golden.run(image, inputs)
    assert np.array_equal(outputs, golden)
    report = json.loads((lenet300 / "report.json").read_text())
    layers = layers_from_npz(read_npz(lenet300 / "compressed.npz"), "lenet300")
    float_accuracy = accuracy(float_forward(layers, raw, report["input"]), labels)
    fixed, rtl = accuracy(golden, labels), accuracy(outputs, labels)
    with capsys.disabled():
        print(f"\nLeNet-300-100, EIE 8 PEs, {DIGITS} held-out digits: PyTorch float {float_accuracy:.1%}, "
              f"golden fixed point {fixed:.1%}, RTL on Verilator {rtl:.1%}")
    assert abs(fixed - float_accuracy) <= 0.01 and rtl == fixed
    assert all(s["compute_cycles"] >= s["ideal_cycles"] for s in stats["samples"])
    if shutil.which("iverilog"):  # a sample on Icarus: the same outputs and cycle counts
        icarus, icarus_stats = simulate("eie", image, inputs[:ICARUS_DIGITS], simulator="icarus")
        assert np.array_equal(icarus, golden[:ICARUS_DIGITS])
        assert icarus_stats["samples"] == stats["samples"][:ICARUS_DIGITS]


def test_bnn_mlp_on_verilator_equals_the_golden_model(binarized_bnn, held_out, tmp_path, capsys):
    raw, labels = held_out
    assert main(["export", "xnor", "--model", str(binarized_bnn), "--out", str(tmp_path / "img")]) == 0
    image = load_xnor_image(tmp_path / "img")
    bits = xnor_golden.binarize_input(image, raw)
    outputs, stats = simulate("xnor", image, bits, simulator="verilator")
    golden = xnor_golden.run(image, bits)
    assert np.array_equal(outputs, golden)
    report = json.loads((binarized_bnn / "report.json").read_text())
    # the class is the argmax of the scores scale * y + bias (xnor-image.md section 6)
    binary = accuracy(xnor_golden.scores(image, golden), labels)
    rtl = accuracy(xnor_golden.scores(image, outputs), labels)
    with capsys.disabled():
        print(f"\nBNN MLP, XNOR engine, {DIGITS} held-out digits: PyTorch float twin "
              f"{report['float_accuracy']:.1%} (all 1,000), golden {binary:.1%}, RTL on Verilator {rtl:.1%}")
    assert rtl == binary and abs(binary - report["binary_accuracy"]) <= 0.05  # 200 of the 1,000 digits
    assert stats["interval"] <= 1.05 * stats["ideal_interval"] + 2
    if shutil.which("iverilog"):
        icarus, icarus_stats = simulate("xnor", image, bits[:ICARUS_DIGITS], simulator="icarus")
        assert np.array_equal(icarus, golden[:ICARUS_DIGITS])
        assert icarus_stats["cycles"] == stats["cycles"][:ICARUS_DIGITS]
