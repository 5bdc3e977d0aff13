"""The Python API re-exported by `eiex`: the same results as the modules it wraps."""

import numpy as np
import pytest
from factories import P, brute_force, power_of_two_eie_image, tiny_eie_image, tiny_xnor_image

import eiex
from eiex.hw.eie import golden as eie_golden


def test_the_api_is_importable_from_eiex():
    for name in eiex.__all__:
        assert getattr(eiex, name) is not None, name
    with pytest.raises(AttributeError):
        eiex.no_such_function  # noqa: B018


@pytest.mark.parametrize("engine, image", [("eie", tiny_eie_image()), ("xnor", tiny_xnor_image())])
def test_write_load_simulate_round_trip(tmp_path, engine, image):
    manifest = eiex.write_image(image, tmp_path / "image", formats=("hex", "bin"))
    assert isinstance(manifest, dict) and (tmp_path / "image" / "manifest.json").is_file()
    assert any(p.suffix == ".bin" for p in (tmp_path / "image").iterdir())
    loaded = eiex.load_image(engine, tmp_path / "image")
    rng = np.random.default_rng(1)
    if engine == "eie":
        lo, hi = image.engine.act_range()
        x = rng.integers(0, hi + 1, (3, image.inputs))
        expected = eie_golden.run(image, x)
    else:
        x = rng.integers(0, 2, (3, image.inputs))
        expected = brute_force(image, x)
    outputs, stats = eiex.simulate(engine, loaded, x)
    np.testing.assert_array_equal(outputs, expected)
    assert isinstance(stats, eiex.Stats) and stats.simulator == "amaranth" and len(stats.samples) == 3
    assert stats.as_dict()["total"]["cycles"] == sum(s["cycles"] for s in stats.samples)
    assert "module" in eiex.to_verilog(engine, loaded, preload=True)


def test_bad_calls_are_one_line_errors():
    with pytest.raises(eiex.EiexError, match="engine must be one of eie, xnor, not 'tpu'"):
        eiex.load_image("tpu", ".")
    with pytest.raises(eiex.EiexError, match="the xnor engine runs an XnorImage, not a EieImage"):
        eiex.to_verilog("xnor", tiny_eie_image())
    with pytest.raises(eiex.EiexError, match="simulator must be one of amaranth, verilator, icarus"):
        eiex.simulate("eie", tiny_eie_image(), np.zeros((1, 9), dtype=int), simulator="modelsim")
    with pytest.raises(eiex.EiexError, match="--mac shift needs every codebook entry to be 0 or a signed power of two"):
        eiex.to_verilog("eie", tiny_eie_image(), mac="shift")
    with pytest.raises(eiex.EiexError, match="the XNOR engine has no multiplier to replace: mac must be multiply"):
        eiex.simulate("xnor", tiny_xnor_image(), np.zeros((1, 20), dtype=int), mac="shift")


def test_the_shift_mac_through_the_api():
    image = power_of_two_eie_image(P(2), [6, 5, 3], density=0.6, seed=4)
    x = np.random.default_rng(4).integers(-512, 512, (2, 6))
    outputs, stats = eiex.simulate("eie", image, x, mac="shift")
    np.testing.assert_array_equal(outputs, eie_golden.run(image, x))
    assert stats.samples == eiex.simulate("eie", image, x)[1].samples  # the same cycles as the multiplier
    assert "module" in eiex.to_verilog("eie", image, mac="shift")
