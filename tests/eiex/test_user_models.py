"""A user's model through the command line and the API: `eiex compress --model FILE.py:FUNCTION
--dataset FILE.npz`, its outputs recomputed with PyTorch and NumPy, the errors (one line, no output
folder), `eiex export eie` refusing what EIE cannot run, `eiex sim eie --raw-input --labels`, and
`eiex.compress` on a module or arrays giving what the CLI gives. Small synthetic data and the
Amaranth simulator keep it fast."""

import json
import tomllib
from importlib import resources

import numpy as np
import pytest
import torch
from torch import nn

import eiex
from eiex.cli import main
from eiex.hw.eie import golden
from eiex.sw.data import InputNorm
from eiex.sw.images.eie.files import load_image

MODEL_PY = """
from torch import nn


def build():  # batch norm right after a Linear (folded), dropout
    return nn.Sequential(nn.Linear(16, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(0.1), nn.Linear(12, 4))


def conv():
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 2 * 2, 4))


def relu_then_norm():  # batch norm after a ReLU: not folded
    return nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.BatchNorm1d(12), nn.Linear(12, 4))


def sigmoid():
    return nn.Sequential(nn.Linear(16, 12), nn.Sigmoid(), nn.Linear(12, 4))


def three_classes():
    return nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))
"""

TINY = """
[train]
epochs = 4
lr = 0.01
batch_size = 32
[prune]
steps = 1
epochs = 1
sensitivity = [0.0, 0.5]
[share]
epochs = 1
"""

# the MLP's layers are "0" and "4" (nn.Sequential's names); a lower threshold keeps both alive
MLP_RECIPE = TINY + '[layers."0"]\nquality = 0.7\n[layers."4"]\nquality = 0.7\n'

OUTPUT_FILES = {"report.json", "report.md", "dense.npz", "compressed.npz", "sensitivity.csv", "sensitivity.png",
                "weights.png", "kept.png"}


def synthetic(n, seed):
    """16 Gaussian features, 4 classes from a fixed linear rule: learnable in a few epochs."""
    rule = np.random.default_rng(0).normal(size=(16, 4))
    x = np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)
    return x, (x @ rule).argmax(axis=1).astype(np.int64)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A folder with model.py, data.npz (320 + 80 samples), images.npz (the same as 4x4 images),
    nan.npz, tiny.toml and mlp.toml."""
    d = tmp_path_factory.mktemp("user")
    (d / "model.py").write_text(MODEL_PY)
    (d / "tiny.toml").write_text(TINY)
    (d / "mlp.toml").write_text(MLP_RECIPE)
    (x_train, y_train), (x_test, y_test) = synthetic(320, 1), synthetic(80, 2)
    np.savez(d / "data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    np.savez(d / "images.npz", x_train=x_train.reshape(-1, 4, 4), y_train=y_train, x_test=x_test.reshape(-1, 4, 4),
             y_test=y_test)
    bad = x_train.copy()
    bad[5, 3] = np.nan
    np.savez(d / "nan.npz", x_train=bad, y_train=y_train, x_test=x_test, y_test=y_test)
    return d


@pytest.fixture(scope="module")
def data(ws):
    with np.load(ws / "data.npz") as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


@pytest.fixture(scope="module")
def mlp_run(ws):
    out = ws / "mlp"
    assert main(["compress", "--model", f"{ws}/model.py:build", "--dataset", str(ws / "data.npz"),
                 "--recipe", str(ws / "mlp.toml"), "--out", str(out)]) == 0
    return out


def read(folder, name):
    with np.load(folder / name) as f:
        return dict(f)


def mlp_forward(architecture, arrays, x):
    """The compressed model recomputed from report.json's architecture and compressed.npz alone."""
    for entry in architecture:
        if entry["op"] == "linear":
            l = entry["key"][1:]
            x = x @ arrays[f"w{l}"].T + arrays[f"b{l}"]
        elif entry["op"] == "relu":
            x = np.maximum(x, 0)
        else:
            assert entry["op"] in ("dropout", "flatten"), entry
    return x


def assert_one_line_error(capsys, code, message):
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("eiex: error:"), err
    assert message in err[0], err[0]


# ---- eiex compress --model FILE.py:FUNCTION ----------------------------------------------------

def test_compress_writes_the_outputs_of_a_users_model(ws, mlp_run):
    assert {p.name for p in mlp_run.iterdir()} == OUTPUT_FILES
    report = json.loads((mlp_run / "report.json").read_text())
    assert report["model"] == f"{ws}/model.py:build"
    assert report["dataset"] == str(ws / "data.npz")
    assert report["folded_batch_norms"] == ["1"]
    assert [(e["name"], e["op"]) for e in report["architecture"]] == [
        ("0", "linear"), ("2", "relu"), ("3", "dropout"), ("4", "linear")]
    assert [e.get("key") for e in report["architecture"]] == ["w0", None, None, "w1"]
    assert [layer["name"] for layer in report["layers"]] == ["0", "4"]
    dense, compressed = read(mlp_run, "dense.npz"), read(mlp_run, "compressed.npz")
    # dense.npz is the model as trained, batch norm apart; compressed.npz has it folded away
    assert sorted(dense) == ["b0", "b1", "n0_beta", "n0_gamma", "n0_mean", "n0_var", "w0", "w1"]
    assert sorted(compressed) == ["b0", "b1", "w0", "w1"]
    assert compressed["w0"].shape == (12, 16) and compressed["w1"].shape == (4, 12)


def test_the_reported_accuracies_are_recomputed_from_the_npz_files(ws, mlp_run, data):
    """Dense: the user's own PyTorch module, batch norm and all, given dense.npz. Compressed: NumPy
    on report.json's architecture and compressed.npz."""
    from eiex.sw.user_model import load_model_function

    report = json.loads((mlp_run / "report.json").read_text())
    _, (x_test, y_test) = data
    x = InputNorm(**report["input"]).apply(x_test)
    dense = read(mlp_run, "dense.npz")
    module = load_model_function(f"{ws}/model.py:build")
    state = {"0.weight": dense["w0"], "0.bias": dense["b0"], "1.weight": dense["n0_gamma"], "1.bias": dense["n0_beta"],
             "1.running_mean": dense["n0_mean"], "1.running_var": dense["n0_var"], "4.weight": dense["w1"],
             "4.bias": dense["b1"]}
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    module.eval()
    with torch.no_grad():
        dense_accuracy = float((module(torch.from_numpy(x)).argmax(1).numpy() == y_test).mean())
    assert dense_accuracy == pytest.approx(report["dense_accuracy"])
    scores = mlp_forward(report["architecture"], read(mlp_run, "compressed.npz"), x)
    assert float((scores.argmax(1) == y_test).mean()) == pytest.approx(report["compressed_accuracy"])
    assert report["compressed_accuracy"] > 0.5  # 4 classes: the model learnt something


def test_compressed_weights_are_shared_and_pruned_as_the_recipe_says(mlp_run):
    defaults = tomllib.loads(resources.files("eiex.sw.compress").joinpath("recipes", "default.toml").read_text())
    defaults = defaults["defaults"]
    report = json.loads((mlp_run / "report.json").read_text())
    compressed = read(mlp_run, "compressed.npz")
    for l, (layer, kind) in enumerate(zip(report["layers"], ("linear", "output"))):
        assert layer["bits"] == defaults[kind]["bits"] and layer["index_bits"] == defaults[kind]["index_bits"]
        w = compressed[f"w{l}"]
        assert 0 < len(np.unique(w[w != 0])) <= 2 ** layer["bits"] - 1
        assert layer["kept"] == np.count_nonzero(w) < w.size


def test_dense_weights_from_a_state_dict_replace_training(ws, data, tmp_path):
    """--weights W.pt of the user's own module: the dense accuracy is that module's, in PyTorch."""
    from eiex.sw.user_model import load_model_function

    torch.manual_seed(3)
    module = load_model_function(f"{ws}/model.py:build")
    with torch.no_grad():
        module[1].running_mean.uniform_(-0.5, 0.5)
        module[1].running_var.uniform_(0.5, 2)
        module[1].weight.uniform_(0.5, 2)
    torch.save(module.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "out"
    assert main(["compress", "--model", f"{ws}/model.py:build", "--dataset", str(ws / "data.npz"),
                 "--recipe", str(ws / "mlp.toml"), "--weights", str(tmp_path / "w.pt"), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    (x_train, _), (x_test, y_test) = data
    module.eval()
    with torch.no_grad():
        expected = (module(torch.from_numpy(InputNorm.fit(x_train).apply(x_test))).argmax(1).numpy() == y_test).mean()
    assert report["dense_accuracy"] == pytest.approx(float(expected))
    dense = read(out, "dense.npz")
    np.testing.assert_array_equal(dense["w0"], module[0].weight.detach().numpy())
    np.testing.assert_array_equal(dense["n0_var"], module[1].running_var.numpy())


# ---- errors ------------------------------------------------------------------------------------

def wrong_shape_state(folder):
    state = nn.Sequential(nn.Linear(16, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(0.1), nn.Linear(12, 4)).state_dict()
    state["0.weight"] = torch.zeros(12, 15)
    torch.save(state, folder / "wrong.pt")
    return ["--weights", str(folder / "wrong.pt")]


@pytest.mark.parametrize("function, dataset, extra, message", [
    ("sigmoid", "data.npz", None, "`1` is Sigmoid, which eiex does not compress"),
    ("nope", "data.npz", None, "model.py does not define nope"),
    ("build", "data.npz", wrong_shape_state, "wrong.pt: 0.weight has shape (12, 15), the model needs (12, 16)"),
    ("build", "nan.npz", None, "nan.npz: x_train contains NaN or infinite values"),
    ("three_classes", "data.npz", None, "scores 3 classes but"),
])
def test_compress_errors_are_one_line_and_write_nothing(ws, tmp_path, capsys, function, dataset, extra, message):
    out = tmp_path / "out"
    args = ["compress", "--model", f"{ws}/model.py:{function}", "--dataset", str(ws / dataset),
            "--recipe", str(ws / "tiny.toml"), "--out", str(out)]
    code = main(args + (extra(tmp_path) if extra else []))
    assert_one_line_error(capsys, code, message)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == (["wrong.pt"] if extra else [])


# ---- eiex export eie: what the engine cannot run -----------------------------------------------

@pytest.mark.parametrize("function, dataset, message", [
    ("conv", "images.npz", ": EIE runs fully connected layers; `0` is Conv2d"),
    ("relu_then_norm", "data.npz", ": batch norm `2` does not directly follow a Linear layer"),
])
def test_export_refuses_what_eie_cannot_run(ws, tmp_path, capsys, function, dataset, message):
    model = tmp_path / "model"
    assert main(["compress", "--model", f"{ws}/model.py:{function}", "--dataset", str(ws / dataset),
                 "--recipe", str(ws / "tiny.toml"), "--out", str(model)]) == 0
    report = json.loads((model / "report.json").read_text())
    assert report["folded_batch_norms"] == []
    capsys.readouterr()
    image = tmp_path / "img"
    assert_one_line_error(capsys, main(["export", "eie", "--model", str(model), "--out", str(image)]),
                          f"eiex: error: {ws}/model.py:{function}{message}")
    assert not image.exists()


# ---- eiex sim eie --raw-input --labels ---------------------------------------------------------

@pytest.fixture(scope="module")
def mlp_image(mlp_run, ws):
    folder = ws / "img"
    assert main(["export", "eie", "--model", str(mlp_run), "--pes", "2", "--out", str(folder)]) == 0
    return folder


def test_sim_on_raw_inputs_equals_sim_on_quantized_inputs(mlp_image, data, tmp_path):
    _, (x_test, y_test) = data
    raw, labels = x_test[:4].reshape(4, 4, 4), y_test[:4]  # any sample shape with the image's 16 inputs
    np.save(tmp_path / "raw.npy", raw)
    np.save(tmp_path / "labels.npy", labels)
    image = load_image(mlp_image)
    quantized = golden.quantize_input(image, raw.reshape(4, -1))
    np.save(tmp_path / "x.npy", quantized)
    assert main(["sim", "eie", "--images", str(mlp_image), "--raw-input", str(tmp_path / "raw.npy"),
                 "--labels", str(tmp_path / "labels.npy"), "--out", str(tmp_path / "y_raw.npy"),
                 "--stats", str(tmp_path / "s.json")]) == 0
    assert main(["sim", "eie", "--images", str(mlp_image), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy")]) == 0
    y_raw, y = np.load(tmp_path / "y_raw.npy"), np.load(tmp_path / "y.npy")
    expected = golden.run(image, quantized)
    np.testing.assert_array_equal(y_raw, y)
    np.testing.assert_array_equal(y, expected)
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["accuracy"] == float(np.mean(expected.argmax(axis=1) == labels))
    assert len(stats["samples"]) == 4


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 1, 2]), "labels must be 4 integers, one per input, not int64 (3,)"),
    (np.array([0.0, 1.0, 2.0, 3.0]), "labels must be 4 integers, one per input, not float64 (4,)"),
    (np.zeros((4, 1), dtype=np.int64), "labels must be 4 integers, one per input, not int64 (4, 1)"),
])
def test_sim_refuses_bad_labels_in_one_line(mlp_image, data, tmp_path, capsys, labels, message):
    _, (x_test, _) = data
    np.save(tmp_path / "raw.npy", x_test[:4])
    np.save(tmp_path / "labels.npy", labels)
    code = main(["sim", "eie", "--images", str(mlp_image), "--raw-input", str(tmp_path / "raw.npy"),
                 "--labels", str(tmp_path / "labels.npy"), "--out", str(tmp_path / "y.npy")])
    assert_one_line_error(capsys, code, message)
    assert not (tmp_path / "y.npy").exists()


# ---- the API -----------------------------------------------------------------------------------

def recipe_dict():
    return tomllib.loads(MLP_RECIPE)


def quiet(message):
    pass


def test_api_on_a_module_and_arrays_writes_what_the_cli_writes(ws, mlp_run, data, tmp_path):
    module = nn.Sequential(nn.Linear(16, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(0.1), nn.Linear(12, 4))
    result = eiex.compress(module, train=data[0], test=data[1], recipe=recipe_dict(), seed=0, log=quiet)
    assert result.save(tmp_path / "api") == tmp_path / "api"
    assert {p.name for p in (tmp_path / "api").iterdir()} == {p.name for p in mlp_run.iterdir()} == OUTPUT_FILES
    report = json.loads((tmp_path / "api" / "report.json").read_text())
    assert report["model"] == "Sequential" and report["dataset"] == "arrays"
    assert report["folded_batch_norms"] == ["1"]
    assert report["architecture"] == json.loads((mlp_run / "report.json").read_text())["architecture"]
    saved = read(tmp_path / "api", "compressed.npz")
    assert sorted(saved) == sorted(result.compressed)
    for l, name in enumerate(["0", "4"]):  # the weights are the shared codebook's values at the kept positions
        np.testing.assert_array_equal(saved[f"w{l}"], result.compressed[f"w{l}"])
        np.testing.assert_array_equal(saved[f"w{l}"], result.shared[name].weights().astype(np.float32))
    with pytest.raises(eiex.EiexError, match="already exists"):
        result.save(tmp_path / "api")


def test_api_and_cli_give_identical_results_for_the_same_seed(ws, mlp_run, data):
    result = eiex.compress(f"{ws}/model.py:build", train=data[0], test=data[1], recipe=recipe_dict(), seed=0, log=quiet)
    for name in ("dense.npz", "compressed.npz"):
        cli = read(mlp_run, name)
        api = result.dense if name == "dense.npz" else result.compressed
        assert sorted(cli) == sorted(api)
        for key in cli:
            assert np.array_equal(cli[key], api[key]), (name, key)
    cli_report = json.loads((mlp_run / "report.json").read_text())
    for key in ("dense_accuracy", "compressed_accuracy", "compressed_bytes", "architecture", "layers"):
        assert result.report[key] == cli_report[key], key


@pytest.mark.parametrize("given", ["dataset and arrays", "train only", "dataset and test"])
def test_api_refuses_a_dataset_and_arrays_together(data, given):
    train, test = data
    kwargs = {"dataset and arrays": dict(dataset="mnist5k", train=train, test=test), "train only": dict(train=train),
              "dataset and test": dict(dataset="mnist5k", test=test)}[given]
    with pytest.raises(eiex.EiexError, match=r"give either dataset, or both train=\(x, y\) and test=\(x, y\)"):
        eiex.compress(nn.Sequential(nn.Linear(16, 4)), log=quiet, **kwargs)
