"""An image laid out anew for a design point of ``eiex explore``: an EIE image re-encoded for another
PE count equals the direct encoding for that count; an XNOR image refolded for a target interval
meets it with the folding solver's choice. The network, and so the golden outputs, never change."""

import numpy as np
import pytest

from eiex.errors import EiexError
from eiex.hw.eie import golden as eie_golden
from eiex.hw.xnor import golden as xnor_golden
from eiex.sw.images.eie.encode import IntLayer, build_image, with_pes
from eiex.sw.images.eie.files import load_image as load_eie, write_image as write_eie
from eiex.sw.images.xnor.export import refold
from eiex.sw.images.xnor.files import load_image as load_xnor, write_image as write_xnor
from eiex.sw.images.xnor.folding import choose_folding, xnor_lanes
from factories import P, XNOR_MAP_NETWORKS, build_xnor_image, random_xnor_image


def int_layers(seed):
    """Three layers 13 -> 11 -> 7 -> 5, about 40% of the weights non-zero."""
    rng = np.random.default_rng(seed)
    params = P(1)
    layers = []
    for l, (rows, cols) in enumerate([(11, 13), (7, 11), (5, 7)]):
        codes = (rng.random((rows, cols)) < 0.4) * rng.integers(1, params.codebook_size, (rows, cols))
        layers.append(IntLayer(codes, np.r_[0, rng.integers(-90, 90, params.codebook_size - 1)],
                               rng.integers(-2000, 2000, rows), relu=l < 2, weight_frac=3, name=f"fc{l + 1}"))
    return layers


@pytest.mark.parametrize("n_from, n_to", [(1, 4), (4, 1), (3, 5), (2, 16), (8, 3)])
def test_with_pes_equals_the_direct_encoding(n_from, n_to, tmp_path):
    layers = int_layers(n_from * 10 + n_to)
    image = build_image(layers, P(n_from), input={"pixel_scale": 1.0, "mean": 0.0, "std": 1.0})
    resized = with_pes(image, n_to)
    direct = build_image(layers, P(n_to), input=image.input)
    assert resized.engine == direct.engine and resized.input == image.input
    assert resized.layers == direct.layers
    for mine, theirs in zip(resized.pes, direct.pes):
        for memory in ("v", "z", "ptr", "bias"):
            np.testing.assert_array_equal(getattr(mine, memory), getattr(theirs, memory))
    np.testing.assert_array_equal(resized.codebook, direct.codebook)
    x = np.random.default_rng(0).integers(-200, 200, (12, 13))
    np.testing.assert_array_equal(eie_golden.run(resized, x), eie_golden.run(image, x))
    write_eie(resized, tmp_path / "img")  # a valid image on disk too
    np.testing.assert_array_equal(eie_golden.run(load_eie(tmp_path / "img"), x), eie_golden.run(image, x))


def test_with_pes_keeps_the_row_order_and_refuses_what_the_format_cannot_hold():
    image = build_image(int_layers(1), P(2))
    image.row_order = {"fc1": list(range(11))[::-1]}
    assert with_pes(image, 3).row_order == image.row_order
    assert with_pes(image, 2) is image
    with pytest.raises(EiexError, match="n_pe"):
        with_pes(image, 5000)


XNOR_IMAGES = {name: build_xnor_image(shape, plan, seed=1) for name, (shape, plan) in XNOR_MAP_NETWORKS.items()}
XNOR_IMAGES["mlp"] = random_xnor_image([40, 24, 10], [(3, 8), (5, 7)], 2)


@pytest.mark.parametrize("name", sorted(XNOR_IMAGES))
def test_refold_meets_the_target_with_the_solvers_folding(name, tmp_path):
    image = XNOR_IMAGES[name]
    weighted = [layer for layer in image.layers if layer.kind != "pool"]
    largest = max(layer.positions * layer.rows * layer.columns for layer in weighted)
    x = np.random.default_rng(3).integers(0, 2, (6, image.inputs))
    fastest = max(layer.positions for layer in weighted)  # a conv layer takes a cycle per output position
    for target in (largest, max(largest // 3, fastest), fastest):
        resized = refold(image, target_interval=target)
        shapes = [None if layer.kind == "pool" else
                  (layer.rows, layer.columns, layer.positions) if layer.kind == "conv" else (layer.rows, layer.columns)
                  for layer in image.layers]
        expected = choose_folding(shapes, target_interval=target)
        assert [None if l.kind == "pool" else (l.pe, l.simd) for l in resized.layers] == expected
        for layer in resized.layers:
            if layer.kind != "pool":
                assert layer.positions * layer.nf * layer.sf <= target
        np.testing.assert_array_equal(xnor_golden.run(resized, x), xnor_golden.run(image, x))
        assert [l.kind for l in resized.layers] == [l.kind for l in image.layers]
        assert xnor_lanes(resized.layers) == sum(min(p, m) * min(s, k) for (p, s), (m, k, *_) in
                                                 zip(filter(None, expected), filter(None, shapes)))
    # on disk, the memories are packed for the new folding and read back as the same network
    write_xnor(resized, tmp_path / "img")
    loaded = load_xnor(tmp_path / "img")
    for before, after in zip(image.layers, loaded.layers):
        if before.kind != "pool":
            assert (after.pe, after.simd) == (resized.layers[image.layers.index(before)].pe,
                                              resized.layers[image.layers.index(before)].simd)
            np.testing.assert_array_equal(after.weights, before.weights)
    np.testing.assert_array_equal(xnor_golden.run(loaded, x), xnor_golden.run(image, x))

