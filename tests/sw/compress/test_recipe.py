"""Recipes: the built-in ones parse, overrides apply, and every bad value is named."""

import pytest

from eiex.errors import EiexError
from eiex.sw.models import MODELS, build_model
from eiex.sw.compress.recipe import load_recipe


@pytest.mark.parametrize("name", sorted(MODELS))
def test_builtin_recipes_cover_every_layer(name):
    model = build_model(name)
    recipe = load_recipe(name, model)
    assert list(recipe.layers) == list(model.layers())


def test_override_changes_only_what_it_names(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[layers.fc2]\nbits = 3\n[prune]\nsteps = 2\n")
    base = load_recipe("lenet300", build_model("lenet300"))
    recipe = load_recipe("lenet300", build_model("lenet300"), path)
    assert recipe.layers["fc2"].bits == 3 and recipe.prune_steps == 2
    assert recipe.layers["fc2"].quality == base.layers["fc2"].quality
    assert recipe.layers["fc1"] == base.layers["fc1"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_full_mnist_tuning_is_merged_over_the_builtin_recipe(name):
    import tomllib
    from importlib import resources

    tuning = tomllib.loads(resources.files("eiex.sw.compress").joinpath("recipes", f"{name}@mnist.toml").read_text())
    base, tuned = load_recipe(name, build_model(name)), load_recipe(name, build_model(name), dataset="mnist")
    assert load_recipe(name, build_model(name), dataset="mnist5k") == base
    for section in ("train", "prune", "share"):
        for key, value in tuning.get(section, {}).items():
            assert getattr(getattr(tuned, section), key) == value
    for layer, table in tuning["layers"].items():
        for key, value in table.items():
            assert getattr(tuned.layers[layer], key) == value
    untouched = [l for l in base.layers if l not in tuning["layers"]]
    assert all(tuned.layers[l] == base.layers[l] for l in untouched)


@pytest.mark.parametrize("text, message", [
    ("[layers.fc9]\nbits = 4\n", "unknown layer.*fc9.*fc1, fc2, fc3"),
    ("[layers.fc1]\nbits = 0\n", r"\[layers.fc1\] bits must be an integer from 1 to 12, not 0"),
    ("[layers.fc1]\nbits = 40\n", "bits must be an integer from 1 to 12, not 40"),
    ("[layers.fc1]\nbits = 4.5\n", "bits must be an integer"),
    ("[layers.fc1]\nindex_bits = -1\n", "index_bits must be"),
    ("[layers.fc1]\nquality = nan\n", "quality = nan is out of range"),
    ("[layers.fc1]\nfilters = 0.5\n", "filters applies to convolutions only"),
    ("[layers.fc1]\ncolour = 1\n", "unknown key.*colour"),
    ("[huffman]\nmax_len = 3\n", "max_len = 3 cannot code"),
    ("[train]\nlr = 0\n", r"\[train\] lr = 0 is out of range"),
    ("[share]\nmethod = 'magic'\n", "method must be one of optimal, lloyd"),
    ("[prune]\nsensitivity = [1.5]\n", "sensitivity must be a list of fractions"),
    ("[surprise]\nx = 1\n", "unknown key.*surprise"),
    ("this is = = not toml", "not valid TOML"),
])
def test_bad_recipes(tmp_path, text, message):
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(EiexError, match=message):
        load_recipe("lenet300", build_model("lenet300"), path)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(EiexError, match="not found"):
        load_recipe("lenet300", build_model("lenet300"), tmp_path / "none.toml")


def test_filter_fraction_allowed_on_convolutions(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[layers.conv2]\nfilters = 0.2\n")
    assert load_recipe("lenet5", build_model("lenet5"), path).layers["conv2"].filters == 0.2
