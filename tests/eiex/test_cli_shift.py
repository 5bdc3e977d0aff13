"""``--mac shift`` on the command line: ``eiex export eie`` refuses a codebook that is not all powers
of two (one line, nothing written) and otherwise writes the usual image; ``sim``, ``verilog`` and
``build`` run the shift MAC or refuse such an image in one line."""

import numpy as np
import pytest

from eiex.cli import main
from eiex.hw.eie import golden
from eiex.sw.images.eie.files import load_image
from eiex.sw.images.eie.powers import is_power_of_two_codebook

MESSAGE = "--mac shift needs every codebook entry to be 0 or a signed power of two; layer fc"


def write_npz(path, powers_only: bool, seed=0):
    """A 12-8-4 perceptron; weights +-2**-k (k 1..6), with ``powers_only=False`` one 3/16 among them."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for l, (rows, cols) in enumerate([(8, 12), (4, 8)]):
        w = rng.choice([-1, 1], (rows, cols)) * 2.0 ** -rng.integers(1, 7, (rows, cols))
        w[rng.random((rows, cols)) < 0.4] = 0
        arrays[f"w{l}"], arrays[f"b{l}"] = w.astype(np.float32), rng.normal(0, 0.1, rows).astype(np.float32)
    if not powers_only:
        arrays["w1"][2, 3] = 3 / 16
    np.savez(path, **arrays)
    return path


def one_line_error(capsys, text):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and text in err[0], err


@pytest.fixture
def images(tmp_path):
    """An image of powers of two (exported with --mac shift) and one with a 3/16 (without)."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    assert main(["export", "eie", "--npz", str(write_npz(tmp_path / "p.npz", True)), "--pes", "2", "--mac", "shift",
                 "--out", str(good)]) == 0
    assert main(["export", "eie", "--npz", str(write_npz(tmp_path / "n.npz", False)), "--pes", "2",
                 "--out", str(bad)]) == 0
    return good, bad


def test_export_refuses_a_codebook_not_all_powers_of_two(tmp_path, capsys):
    npz = write_npz(tmp_path / "w.npz", powers_only=False)
    assert main(["export", "eie", "--npz", str(npz), "--mac", "shift", "--out", str(tmp_path / "img")]) == 1
    one_line_error(capsys, MESSAGE + "2 code ")
    assert not (tmp_path / "img").exists()


def test_export_with_mac_shift_writes_the_usual_image(tmp_path, images, capsys):
    good, _ = images
    npz = tmp_path / "p.npz"
    assert main(["export", "eie", "--npz", str(npz), "--pes", "2", "--out", str(tmp_path / "plain")]) == 0
    # the option is a check: the same files
    for f in sorted(p.name for p in good.iterdir()):
        assert (good / f).read_bytes() == (tmp_path / "plain" / f).read_bytes(), f
    image = load_image(good)
    assert is_power_of_two_codebook(image.codebook, image.engine.weight_bits).all()
    assert len(set(image.codebook.tolist())) > 4


def test_sim_and_verilog_with_mac_shift(tmp_path, images, capsys):
    good, bad = images
    image = load_image(good)
    rng = np.random.default_rng(1)
    lo, hi = image.engine.act_range()
    x = rng.integers(lo, hi + 1, (2, image.inputs))
    np.save(tmp_path / "x.npy", x)
    assert main(["sim", "eie", "--images", str(good), "--input", str(tmp_path / "x.npy"), "--mac", "shift",
                 "--out", str(tmp_path / "y.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "y.npy"), golden.run(image, x))
    capsys.readouterr()
    assert main(["sim", "eie", "--images", str(bad), "--input", str(tmp_path / "x.npy"), "--mac", "shift",
                 "--out", str(tmp_path / "z.npy")]) == 1
    one_line_error(capsys, MESSAGE)
    assert not (tmp_path / "z.npy").exists()

    assert main(["verilog", "eie", "--images", str(good), "--mac", "shift", "-o", str(tmp_path / "s.v")]) == 0
    assert main(["verilog", "eie", "--images", str(good), "-o", str(tmp_path / "m.v")]) == 0
    # the multiplier is gone: Yosys writes the product, made in hw/eie/mac.py, as `*`
    products = {name: [line for line in (tmp_path / f"{name}.v").read_text().splitlines()
                       if " * " in line and "mac.py" in line] for name in "sm"}
    assert not products["s"] and len(products["m"]) == image.engine.n_pe
    assert main(["verilog", "eie", "--images", str(bad), "--mac", "shift", "-o", str(tmp_path / "b.v")]) == 1
    one_line_error(capsys, MESSAGE)
    assert not (tmp_path / "b.v").exists()


def test_build_refuses_before_building(tmp_path, images, capsys):
    _, bad = images
    assert main(["build", "eie", "--images", str(bad), "--mac", "shift", "--part", "ecp5-85k",
                 "--out", str(tmp_path / "build")]) == 1
    one_line_error(capsys, MESSAGE)
    assert not (tmp_path / "build").exists()


def test_simulated_link_refuses_too(images):
    from eiex.errors import EiexError
    from eiex.flows.run import simulated_link

    _, bad = images
    with pytest.raises(EiexError, match="^--mac shift needs"):
        simulated_link("eie", load_image(bad), mac="shift")


def test_an_unknown_mac_is_an_argument_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["verilog", "eie", "--pes", "2", "--mac", "add", "-o", str(tmp_path / "e.v")])
    assert exit_.value.code == 2
    one_line_error(capsys, "argument --mac: invalid choice: 'add' (choose from 'multiply', 'shift', 'index')")
