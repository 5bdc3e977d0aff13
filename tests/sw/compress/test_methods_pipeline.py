"""The other compression methods through ``compress``: each run on a small MLP and 600 MNIST-5k
digits, its compressed weights checked against what the method promises (TWN's {-a, 0, +a}, INQ's
powers of two, one scale's integer multiples, SVD factors, removed neurons), the saved folder
exported to an EIE image and run on the golden model, and the recipe's new tables refused when
wrong. Independent references: numpy's SVD, a hand-zeroed network, the golden model."""

import functools
import json

import numpy as np
import pytest
import torch
from torch import nn

import eiex
from eiex.errors import EiexError
from eiex.sim.engines import get_engine
from eiex.sw.compress.mlp import SequentialMlp
from eiex.sw.compress.pipeline import factorize_layers, l1_penalty_of, remove_neurons, resolve_model
from eiex.sw.compress.pruning import Masks
from eiex.sw.compress.recipe import load_recipe
from eiex.sw.data import InputNorm, load_dataset
from eiex.sw.images.eie import arithmetic as golden
from eiex.sw.images.eie.export import export_model_folder
from eiex.sw.models import build_model
from eiex.sw.train import Tensors, TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HIDDEN = (48, 24)
LAYERS = ("0", "2", "4")  # nn.Sequential's names of the three Linear layers
#: three dense epochs, one for each later stage, one pruning step, no sensitivity sweep; quality 1.0 keeps
#: every layer alive
TINY = {"train": {"epochs": 3}, "prune": {"epochs": 1, "steps": 1, "sensitivity": [0.0]}, "share": {"epochs": 1},
        "layers": {name: {"quality": 1.0} for name in LAYERS}}


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, HIDDEN[0]), nn.ReLU(), nn.Linear(*HIDDEN), nn.ReLU(), nn.Linear(HIDDEN[1], 10))


def merged(*tables):
    out = {}
    for table in tables:
        for key, value in table.items():
            out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


@pytest.fixture(scope="module")
def digits():
    """600 training and 200 test digits of MNIST-5k drawn at random (its files are sorted by
    class), flattened to 784 pixels."""
    ds = load_dataset("mnist5k")
    i = np.random.default_rng(0).permutation(len(ds.train.labels))[:600]
    j = np.random.default_rng(1).permutation(len(ds.test.labels))[:200]
    return ((ds.train.images[i].reshape(600, -1), ds.train.labels[i]),
            (ds.test.images[j].reshape(200, -1), ds.test.labels[j]))


@pytest.fixture(scope="module")
def run(digits):
    """``run(key)``: the MLP compressed with one method's tables over TINY, computed once."""
    train, test = digits
    tables = {
        "ternary": {"quantize": {"method": "ternary", "epochs": 1}},
        "pow2": {"quantize": {"method": "pow2", "epochs": 1, "steps": [0.5, 1.0]}},
        "linear": {"quantize": {"method": "linear", "epochs": 1}},
        "linear_pow2": {"quantize": {"method": "linear", "epochs": 1, "scale": "pow2"}},
        "lowrank": {"lowrank": {"error": 0.3}},
        # a harsh threshold on the first layer leaves hidden neurons without inputs
        "neurons": {"sparsity": {"l1": 1e-4, "remove_neurons": True}, "layers": {"0": {"quality": 2.5}}},
    }

    @functools.cache
    def compressed(key):
        return eiex.compress(mlp(), train=train, test=test, recipe=merged(TINY, tables[key]), log=lambda *_: None)

    return compressed


def weights(result):
    return [result.compressed[f"w{l}"] for l in range(sum(k[0] == "w" for k in result.compressed))]


def torch_predictions(result, images):
    """The compressed model's classes, recomputed with a SequentialMlp built from the npz."""
    ws = weights(result)
    relu = result.compressed.get("relu", np.array([True] * (len(ws) - 1) + [False]))
    model = SequentialMlp([str(l) for l in range(len(ws))], ws, [result.compressed[f"b{l}"] for l in range(len(ws))],
                          list(relu))
    x = torch.from_numpy(InputNorm(**result.report["input"]).apply(images))
    with torch.no_grad():
        return model(x).argmax(1).numpy()


def export_files(result, folder):
    """The two files of ``result.save(folder)`` that export reads (save also draws plots: seconds)."""
    np.savez(folder / "compressed.npz", **result.compressed)
    (folder / "report.json").write_text(json.dumps(result.report))
    return folder


# ---- quantizers ----------------------------------------------------------------------------------


def test_ternary_layers_hold_plus_and_minus_one_scale_and_two_bit_codes(run):
    result = run("ternary")
    assert result.report["methods"]["quantize"] == "ternary"
    for w in weights(result):
        values = np.unique(w[w != 0])
        assert len(values) == 2 and values[1] == -values[0] > 0
    assert [layer["bits"] for layer in result.report["layers"]] == [2, 2, 2]


def test_ternary_codes_are_twns_threshold_on_the_retrained_weights(run):
    """TWN: delta = 0.7 mean|w| over the survivors, a = mean of the |w| above it; re-ternarizing the
    result by hand gives it back (a fixed point of the projection)."""
    for w in weights(run("ternary")):
        w = w.astype(np.float64)
        survivors = np.abs(w[w != 0])
        delta = 0.7 * survivors.mean()
        a = survivors[survivors > delta].mean()
        np.testing.assert_allclose(np.where(np.abs(w) > delta, np.sign(w) * a, 0.0), w, rtol=1e-6, atol=0)


def test_pow2_weights_are_signed_powers_of_two_with_few_exponents(run):
    result = run("pow2")
    for w, layer in zip(weights(result), result.report["layers"]):
        exponents = np.log2(np.abs(w[w != 0]).astype(np.float64))
        assert exponents.size and np.array_equal(exponents, np.round(exponents))
        assert len(np.unique(exponents)) <= 2 ** (layer["bits"] - 1) - 1


def test_pow2_image_codebook_holds_signed_powers_of_two(run, tmp_path):
    image = export_model_folder(export_files(run("pow2"), tmp_path), n_pe=2)
    for l in range(len(image.layers)):
        values = np.abs(np.asarray(image.layer_codebook(l), dtype=np.int64))
        values = values[values != 0]
        assert values.size and np.all(values & (values - 1) == 0), f"layer {l}: {values}"


def test_linear_weights_are_integer_multiples_of_one_scale_per_layer(run):
    result = run("linear")
    for w, layer in zip(weights(result), result.report["layers"]):
        levels = 2 ** (layer["bits"] - 1) - 1
        w = w.astype(np.float64)
        scale = np.abs(w).max() / levels  # the largest survivor sits on the top level
        steps = w[w != 0] / scale
        np.testing.assert_allclose(steps, np.round(steps), rtol=1e-4, atol=1e-4)
        assert np.abs(np.round(steps)).max() <= levels
        assert len(np.unique(w[w > 0])) <= levels and len(np.unique(w[w < 0])) <= levels


def power_of_two_grid(w: np.ndarray) -> tuple[int, np.ndarray]:
    """``(f, q)``: the smallest ``f`` with every ``w * 2**f`` an integer (exact: every finite float is
    ``m * 2**e``, found from frexp's mantissa and exponent, ``f`` may be negative), and those integers."""
    nonzero = w[w != 0].astype(np.float64)
    mantissa, exponent = np.frexp(nonzero)  # w = mantissa * 2**exponent, the mantissa 53 bits at most
    m = np.ldexp(mantissa, 53).astype(np.int64)  # odd part below
    trailing = np.array([(int(x) & -int(x)).bit_length() - 1 for x in m])
    f = int(np.max(53 - exponent - trailing))
    return f, np.ldexp(w.astype(np.float64), f)


def test_linear_pow2_weights_are_integers_times_one_power_of_two_and_export_with_mac_index(run, digits, tmp_path):
    """``[quantize] scale = "pow2"``: every layer's non-zero weights are exactly ``q * 2**-f``,
    ``0 < |q| <= 2**(bits - 1) - 1`` with the top level at least half used (the scale rounds up by less
    than 2); the folder exports with ``mac="index"`` to identity codebooks at ``idx_bits`` = the bits,
    whose golden model classifies the digits as PyTorch does."""
    result = run("linear_pow2")
    assert result.report["recipe"]["quantize"]["scale"] == "pow2"
    bits = [layer["bits"] for layer in result.report["layers"]]
    fracs = []
    for w, b in zip(weights(result), bits):
        levels = 2 ** (b - 1) - 1
        f, q = power_of_two_grid(w)
        assert np.array_equal(q, np.round(q)), "not integers at the grid"
        top = int(np.abs(q).max())
        assert levels // 2 < top <= levels, (b, top)
        assert len(np.unique(q[q != 0])) > min(levels, 3)
        fracs.append(f)
    image = export_model_folder(export_files(result, tmp_path), n_pe=2, mac="index")
    assert image.engine.idx_bits == max(bits)
    for l, f in enumerate(fracs):
        assert image.layers[l].weight_frac == f
        v = np.arange(2**image.engine.idx_bits)
        assert image.layer_codebook(l).tolist() == np.where(v >= v.size // 2, v - v.size, v).tolist()
    _, (images, _) = digits
    engine = golden.run(image, golden.quantize_input(image, images)).argmax(1)
    assert np.mean(engine == torch_predictions(result, images)) >= 0.9


# ---- low-rank factorization ----------------------------------------------------------------------


def test_lowrank_splits_layers_into_factors_without_relu_between(run):
    result = run("lowrank")
    ranks = result.report["methods"]["lowrank_ranks"]
    assert ranks and set(ranks) <= set(LAYERS)
    ws, relu = weights(result), list(result.compressed["relu"])
    assert len(ws) == len(LAYERS) + len(ranks) == len(relu)
    names = [n for name in LAYERS for n in ((f"{name}_v", f"{name}_u") if name in ranks else (name,))]
    assert [layer["name"] for layer in result.report["layers"]] == names
    for w, name, after in zip(ws, names, relu):
        if name.endswith("_v"):
            assert w.shape[0] == ranks[name[:-2]] and not after
        if name.endswith("_u"):
            assert w.shape[1] == ranks[name[:-2]]
    assert not relu[-1] and sum(relu) == len(LAYERS) - 1
    # the storage accounting keeps the original dense model's size
    assert result.report["dense_bytes"] == 4 * sum(a.size for a in result.dense.values())


def test_factorized_model_is_the_truncated_svd_of_each_layer():
    model, name = resolve_model(mlp())
    recipe = load_recipe(name, model, {"lowrank": {"error": 0.3}})
    original = model.state_npz()
    factored, recipe2, ranks = factorize_layers(model, name, recipe)
    assert ranks and list(recipe2.layers)[:2] == ["0_v", "0_u"]
    arrays = dict(zip(factored.names, factored.linears))
    for l, layer in enumerate(LAYERS):
        if layer not in ranks:
            continue
        w = original[f"w{l}"].astype(np.float64)
        u, s, vt = np.linalg.svd(w, full_matrices=False)
        r = ranks[layer]
        assert np.linalg.norm(s[r:]) <= 0.3 * np.linalg.norm(s) < np.linalg.norm(s[r - 1:])  # smallest rank in budget
        product = arrays[f"{layer}_u"].weight.detach().double() @ arrays[f"{layer}_v"].weight.detach().double()
        np.testing.assert_allclose(product.numpy(), (u[:, :r] * s[:r]) @ vt[:r], atol=1e-5)
        assert not arrays[f"{layer}_v"].bias.detach().any()
    x = torch.randn(64, 784, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model(x), factored(x)
    # a loose bound: the two factorized layers are each within 30 % of their weights
    assert torch.linalg.norm(a - b) <= 0.6 * torch.linalg.norm(a)


def test_lowrank_refuses_convolutions_in_one_line():
    model = build_model("lenet5")
    recipe = load_recipe("lenet5", model, {"lowrank": {"error": 0.3}})
    with pytest.raises(EiexError, match="fully connected") as e:
        factorize_layers(model, "lenet5", recipe)
    assert "\n" not in str(e.value) and "lenet5" in str(e.value)


def test_compress_refuses_lowrank_on_lenet5_in_one_line(digits):
    (x, y), (tx, ty) = digits
    with pytest.raises(EiexError, match="low-rank factorization applies to fully connected networks; lenet5 has") as e:
        eiex.compress("lenet5", train=(x.reshape(-1, 28, 28), y), test=(tx.reshape(-1, 28, 28), ty),
                      recipe={"train": {"epochs": 1}, "lowrank": {"error": 0.3}}, log=lambda *_: None)
    assert "\n" not in str(e.value)


def test_lowrank_on_lenet5_is_refused_before_training(digits, monkeypatch):
    from eiex.sw.compress import pipeline

    def no_training(*args, **kwargs):
        raise AssertionError("trained before refusing")

    monkeypatch.setattr(pipeline, "fit", no_training)
    (x, y), (tx, ty) = digits
    with pytest.raises(EiexError, match="fully connected"):
        eiex.compress("lenet5", train=(x.reshape(-1, 28, 28), y), test=(tx.reshape(-1, 28, 28), ty),
                      recipe={"lowrank": {"error": 0.3}}, log=lambda *_: None)


# ---- L1 and neuron removal -----------------------------------------------------------------------


def test_removed_neurons_shrink_the_layers_exactly(run):
    result = run("neurons")
    removed = result.report["methods"]["neurons_removed"]
    assert result.report["methods"]["l1"] == 1e-4
    assert sum(removed.values()) > 0 and removed[LAYERS[-1]] == 0
    outs = [HIDDEN[0] - removed["0"], HIDDEN[1] - removed["2"], 10]
    assert [w.shape for w in weights(result)] == list(zip(outs, [784] + outs[:-1]))
    for w in weights(result)[:-1]:  # no neuron left without an input or a reader
        assert np.all(np.any(w != 0, axis=1))
    # the storage accounting keeps the dense model's size from before the removal
    assert result.report["dense_bytes"] == 4 * (784 * 48 + 48 + 48 * 24 + 24 + 24 * 10 + 10)


def test_removing_neurons_keeps_the_pruned_models_function():
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=(8, 6)), rng.normal(size=(5, 8)), rng.normal(size=(3, 5))]
    bs = [rng.normal(size=8), rng.normal(size=5), rng.normal(size=3)]
    ws[0][[1, 4]] = 0  # neurons 1 and 4 of the first layer: constant ReLU(b)
    ws[1][:, 6] = 0  # neuron 6 is read by nobody
    ws[1][2] = 0  # neuron 2 of the second layer: constant
    ws[2][:, 2] = 0
    pruned = SequentialMlp(["a", "b", "c"], ws, bs, [True, True, False])
    smaller, masks, removed = remove_neurons(pruned, "mlp", Masks.dense(pruned))
    assert removed == {"a": 3, "b": 1, "c": 0}
    assert [tuple(l.weight.shape) for l in smaller.linears] == [(5, 6), (4, 5), (3, 4)]
    assert all(torch.equal(masks.weight[n], l.weight != 0) for n, l in smaller.layers().items())
    x = torch.randn(100, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(smaller(x), pruned(x), rtol=0, atol=1e-5)


def test_shrunk_folder_exports_and_the_golden_model_agrees_with_pytorch(run, digits, tmp_path):
    """`eiex export eie --model DIR` on the saved folder; its image runs the digits as PyTorch does."""
    from eiex.cli import main

    result = run("neurons")
    result.save(tmp_path / "neurons")
    assert main(["export", "eie", "--model", str(tmp_path / "neurons"), "--pes", "2",
                 "--out", str(tmp_path / "image")]) == 0
    image = get_engine("eie").load_image(tmp_path / "image")
    assert [(layer.rows, layer.cols) for layer in image.layers] == [w.shape for w in weights(result)]
    _, (images, labels) = digits
    engine = golden.run(image, golden.quantize_input(image, images)).argmax(1)
    torch_classes = torch_predictions(result, images)
    assert np.isclose(np.mean(torch_classes == labels), result.report["compressed_accuracy"], atol=1e-6)
    assert np.mean(engine == torch_classes) >= 0.9


def test_a_layer_pruned_to_nothing_before_neuron_removal_is_named(digits):
    from collections import OrderedDict

    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(784, 48), relu1=nn.ReLU(), fc2=nn.Linear(48, 24),
                                      relu2=nn.ReLU(), out=nn.Linear(24, 10)))
    # one epoch leaves fc1 near its uniform initialisation, all within 1.8 std: quality 2.5 prunes all of it
    recipe = {**TINY, "train": {"epochs": 1}, "layers": {"fc1": {"quality": 2.5}}, "sparsity": {"remove_neurons": True}}
    train, test = digits
    with pytest.raises(EiexError, match="fc1") as e:
        eiex.compress(model, train=train, test=test, recipe=recipe, log=lambda *_: None)
    assert "\n" not in str(e.value)


def test_an_l1_penalty_shrinks_the_weights_l1_norm():
    data = Tensors(torch.randn(256, 784, generator=torch.Generator().manual_seed(0)),
                   torch.randint(0, 10, (256,), generator=torch.Generator().manual_seed(1)))
    config = TrainConfig(epochs=2, lr=1e-3)
    norms = {}
    for l1 in (0.0, 1e-2):
        model, name = resolve_model(mlp())
        recipe = load_recipe(name, model, {"sparsity": {"l1": l1}})
        penalty = l1_penalty_of(model, recipe)
        assert (penalty is None) == (l1 == 0)
        if penalty is not None:  # the penalty watches the model's own weights: strength * sum |w|
            total = sum(layer.weight.detach().abs().sum() for layer in model.layers().values())
            torch.testing.assert_close(penalty().detach(), l1 * total)
        fit(model, data, config, seed=0, penalty=penalty)
        norms[l1] = sum(float(layer.weight.detach().abs().sum()) for layer in model.layers().values())
    # Adam moves each weight about lr per step, so 8 steps cannot do more than this
    assert norms[1e-2] < 0.8 * norms[0.0]


# ---- the recipe's new tables ---------------------------------------------------------------------


@pytest.mark.parametrize("tables, message", [
    ({"quantize": {"method": "binary"}}, r"\[quantize\] method must be one of kmeans, linear, ternary, pow2"),
    ({"quantize": {"method": "pow2", "steps": [0.5, 0.75]}}, r"\[quantize\] steps must be .* ending at 1"),
    ({"quantize": {"method": "pow2", "steps": [0.75, 0.5, 1.0]}}, r"\[quantize\] steps"),
    ({"quantize": {"epochs": -1}}, r"\[quantize\] epochs"),
    ({"distill": {"teacher": "dense", "temperature": 0}}, r"\[distill\] temperature = 0 is out of range"),
    ({"distill": {"alpha": 1.5}}, r"\[distill\] alpha = 1.5 is out of range"),
    ({"distill": {"teacher": 3}}, r"\[distill\] teacher must be a string"),
    ({"sparsity": {"l1": -1e-3}}, r"\[sparsity\] l1"),
    ({"sparsity": {"remove_neurons": "yes"}}, r"\[sparsity\] remove_neurons must be true or false"),
    ({"sparsity": {"dropout": 0.5}}, r"\[sparsity\] has unknown key\(s\) 'dropout'"),
    ({"lowrank": {"error": 1.0}}, r"\[lowrank\] error = 1.0 is out of range"),
    ({"lowrank": {"rank": 4}}, r"\[lowrank\] has unknown key\(s\) 'rank'"),
])
def test_bad_method_tables_are_one_line_errors_naming_the_key(tables, message):
    with pytest.raises(EiexError, match=message) as e:
        load_recipe("lenet300", build_model("lenet300"), tables)
    assert "\n" not in str(e.value)


def test_recipe_json_holds_the_method_tables():
    tables = {"quantize": {"method": "pow2", "steps": [0.5, 1.0], "epochs": 2},
              "distill": {"teacher": "dense", "temperature": 2.0, "alpha": 0.5},
              "sparsity": {"l1": 1e-5, "remove_neurons": True}, "lowrank": {"error": 0.2}}
    recipe = load_recipe("lenet300", build_model("lenet300"), tables)
    assert recipe.quantizer == "pow2"
    j = recipe.to_json()
    assert j["quantize"]["method"] == "pow2" and j["quantize"]["steps"] == [0.5, 1.0] and j["quantize"]["epochs"] == 2
    assert j["quantize"]["lr"] == j["prune"]["lr"]  # unset keys of [quantize] default to [prune]'s
    assert j["distill"] == {"teacher": "dense", "temperature": 2.0, "alpha": 0.5}
    assert j["sparsity"] == {"l1": 1e-5, "remove_neurons": True}
    assert j["lowrank"] == {"error": 0.2}
    plain = load_recipe("lenet300", build_model("lenet300")).to_json()
    assert plain["quantize"] == {"method": "kmeans"} and plain["distill"]["teacher"] == ""


def test_the_report_records_the_recipe_of_the_run(run):
    recipe = run("ternary").report["recipe"]
    assert recipe["quantize"]["method"] == "ternary" and recipe["quantize"]["epochs"] == 1


def test_lowrank_folder_exports_with_a_relu_after_each_u_factor_only(run, digits, tmp_path):
    result = run("lowrank")
    image = export_model_folder(export_files(result, tmp_path), n_pe=2)
    assert [layer.relu for layer in image.layers] == list(result.compressed["relu"])
    _, (images, _) = digits
    engine = golden.run(image, golden.quantize_input(image, images)).argmax(1)
    assert np.mean(engine == torch_predictions(result, images)) >= 0.9
