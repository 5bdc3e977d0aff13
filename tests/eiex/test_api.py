"""The Python API re-exported by `eiex`: the same results as the modules it wraps."""

import numpy as np
import pytest
from factories import brute_force, tiny_eie_image, tiny_xnor_image

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
