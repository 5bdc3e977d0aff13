"""``eiex run``: the CLI over the simulated host link, and its one-line errors."""

import json

import numpy as np
import pytest

from eiex.cli import main
from eiex.hw.xnor import golden
from eiex.sw.images.xnor import files as xnor_files
from eiex.sw.images.xnor.image import XnorImage, XnorLayer


@pytest.fixture
def image_dir(tmp_path):
    rng = np.random.default_rng(4)
    sizes, folds = [24, 8, 4], [(4, 8), (2, 4)]
    layers = []
    for l, ((k, m), (p, s)) in enumerate(zip(zip(sizes[:-1], sizes[1:]), folds)):
        output = l == len(folds) - 1
        layers.append(XnorLayer(f"fc{l + 1}", k, m, p, s, "output" if output else "hidden", (k + 3).bit_length() + 1,
                                rng.choice([-1, 1], (m, k)), None if output else rng.integers(0, k + 2, m)))
    image = XnorImage(layers, 128.0, np.array([1.0, 2.0, 0.5, 1.0]), np.array([0.0, -3.0, 1.0, 2.0]))
    xnor_files.write_image(image, tmp_path / "img")
    return tmp_path / "img"


def one_line_error(capsys, text):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and text in err, err


def test_run_over_the_simulated_link(image_dir, tmp_path, capsys):
    image = xnor_files.load_image(image_dir)
    x = np.random.default_rng(0).integers(0, 2, (30, 24))
    y_expected = golden.run(image, x)
    labels = np.argmax(golden.scores(image, y_expected), axis=1)
    labels[:3] = (labels[:3] + 1) % 4  # three wrong: 90% accuracy
    for name, array in (("x", x), ("labels", labels)):
        np.save(tmp_path / f"{name}.npy", array)
    args = ["run", "xnor", "--sim", "verilator", "--images", str(image_dir), "--input", str(tmp_path / "x.npy"),
            "--labels", str(tmp_path / "labels.npy"), "--out", str(tmp_path / "y.npy"),
            "--stats", str(tmp_path / "s.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), y_expected)
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["loaded_image"] and report["matches_golden"] and report["accuracy"] == pytest.approx(0.9)
    # the request: frame (6 bytes), hash (8) and 3 beats of 8 bits an input; the reply: the frame
    # and 4 scores of 5 bits (2 * acc - 8), a byte each
    frames = -(-30 // report["device_stats"]["run_samples"])  # the batches (the last one's size is counted)
    assert report["wire_bytes"] == {"bytes_sent": frames * 14 + 30 * 3, "bytes_received": frames * 6 + 30 * 4}
    assert "accuracy 90.00%" in out and "inferences/s at 3 Mbaud" in out


@pytest.mark.parametrize("extra, message", [
    (["--port", "/dev/eiex-no-such-port", "--preload"], "--preload goes with --sim"),
    (["--port", "/dev/eiex-no-such-port"], "/dev/eiex-no-such-port"),
])
def test_errors_are_one_line(image_dir, tmp_path, capsys, extra, message):
    np.save(tmp_path / "x.npy", np.zeros((2, 24), dtype=np.int64))
    assert main(["run", "xnor", *extra, "--images", str(image_dir), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy")]) != 0
    one_line_error(capsys, message)
    assert not (tmp_path / "y.npy").exists()


def test_inputs_of_the_wrong_width_are_refused_before_anything_runs(image_dir, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 23), dtype=np.int64))
    assert main(["run", "xnor", "--sim", "verilator", "--images", str(image_dir), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy")]) != 0
    one_line_error(capsys, "23")
