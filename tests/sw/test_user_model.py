"""A user's PyTorch model as a compressible model: loading FILE.py:FUNCTION, what torch.fx tracing
accepts and refuses, exact batch-norm folding (against the untouched PyTorch module), filter-pruning
successors, state_dict / npz weights and the default recipe."""

import copy
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from eiex.errors import EiexError
from eiex.sw.compress.recipe import load_recipe
from eiex.sw.user_model import TracedModel, load_model_function

DEFAULT_TOML = Path(__file__).resolve().parents[2] / "sw" / "compress" / "recipes" / "default.toml"


def randomize_norms(model, seed):
    """Random gammas (some negative), betas and running statistics, far from the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.weight.copy_(torch.randn(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g))
                m.running_mean.copy_(3 * torch.randn(n, generator=g))
                m.running_var.copy_(0.25 + 4 * torch.rand(n, generator=g))
    return model


def outputs(module, x):
    module.eval()
    with torch.no_grad():
        return module(x)


# ---- load_model_function -----------------------------------------------------------------------

MODEL_FILES = {
    "good.py": "from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))\n",
    "raises.py": "def build():\n    raise ValueError('width must be even')\n",
    "number.py": "def build():\n    return 42\n",
    "attribute.py": "build = 3\n",
    "broken.py": "def build(:\n    pass\n",
    "imports.py": "import no_such_module_for_eiex\n\ndef build():\n    pass\n",
}


@pytest.fixture
def model_files(tmp_path):
    for name, text in MODEL_FILES.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_load_model_function_returns_the_module_the_function_builds(model_files):
    model = load_model_function(f"{model_files}/good.py:build")
    assert isinstance(model, nn.Sequential)
    assert [type(m) for m in model] == [nn.Linear, nn.ReLU, nn.Linear]
    assert model[0].in_features == 4 and model[2].out_features == 2


@pytest.mark.parametrize("spec, message", [
    ("{d}/missing.py:build", r"model file .*missing\.py not found"),
    ("{d}/good.py:nope", r"good\.py does not define nope"),
    ("{d}/raises.py:build", r"raises\.py:build raised ValueError: width must be even"),
    ("{d}/number.py:build", r"number\.py:build returned a int, not a torch\.nn\.Module"),
    ("{d}/attribute.py:build", r"attribute\.py: build is a int, not a function"),
    ("{d}/broken.py:build", r"cannot load .*broken\.py: SyntaxError"),
    ("{d}/imports.py:build", r"cannot load .*imports\.py: ModuleNotFoundError: No module named 'no_such_module_for_eiex'"),
    ("{d}/good.py", "give a built-in model name or FILE.py:FUNCTION"),
    ("{d}/good.txt:build", "give a built-in model name or FILE.py:FUNCTION"),
    ("{d}/good.py:not-a-name", "give a built-in model name or FILE.py:FUNCTION"),
    ("{d}/good.py:", "give a built-in model name or FILE.py:FUNCTION"),
])
def test_load_model_function_errors_are_one_clear_line(model_files, spec, message):
    with pytest.raises(EiexError, match=message) as error:
        load_model_function(spec.format(d=model_files))
    assert "\n" not in str(error.value)


# ---- what tracing refuses ----------------------------------------------------------------------

class SigmoidHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 6)
        self.head = nn.Sequential(nn.Linear(6, 4), nn.Sigmoid())

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.rnn(x)[0])


class SigmoidCall(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return torch.sigmoid(self.fc(x))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        x = self.fc(x)
        return x + x


class Branching(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return self.fc(-x)


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return self.fc(torch.relu(self.fc(x)))


class FunctionalDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(F.dropout(x, 0.5, self.training))


@pytest.mark.parametrize("build, message", [
    (SigmoidHead, r"m: `head\.1` is Sigmoid, which eiex does not compress \(supported: Linear, Conv2d"),
    (Recurrent, r"m: `rnn` is LSTM, which eiex does not compress"),
    (SigmoidCall, r"m: `sigmoid` calls sigmoid \(call_function\), which eiex does not compress"),
    (Residual, r"m: `add` calls add \(call_function\), which eiex does not compress"),
    (Branching, r"m does not trace with torch\.fx: TraceError"),
    (Shared, r"m: `fc` is used twice in the forward pass"),
    (FunctionalDropout, r"`dropout` calls torch\.nn\.functional\.dropout.*use an nn\.Dropout module"),
    (lambda: nn.Sequential(nn.Flatten(), nn.ReLU()), "m has no Linear or Conv2d layer to compress"),
    (lambda: nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4, affine=False)),
     r"batch norm `1` needs affine=True and track_running_stats=True"),
    (lambda: nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4, track_running_stats=False)),
     r"batch norm `1` needs affine=True and track_running_stats=True"),
])
def test_what_eiex_cannot_compress_is_refused_by_name(build, message):
    with pytest.raises(EiexError, match=message) as error:
        TracedModel(build(), "m")
    assert "\n" not in str(error.value)


def test_supported_functions_and_methods_trace():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3)
            self.fc = nn.Linear(3 * 3 * 3, 5)

        def forward(self, x):
            x = F.avg_pool2d(F.relu(self.conv(x)), 2)
            return self.fc(x.view(x.size(0), -1)).relu()

    torch.manual_seed(0)
    model = Functional()
    reference = copy.deepcopy(model)
    traced = TracedModel(model, "f")
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(outputs(traced, x), outputs(reference, x))
    assert [e["op"] for e in traced.architecture] == ["conv2d", "relu", "avgpool2d", "flatten", "linear", "relu"]
    assert list(traced.layers()) == ["conv", "fc"]


# ---- batch norm folding ------------------------------------------------------------------------

def mlp_with_norms():
    return nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(16, 8), nn.BatchNorm1d(8))


def conv_with_norm():
    return nn.Sequential(nn.Conv2d(2, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(5 * 4 * 4, 6))


def dropout_between():  # Linear(bias=False) -> Dropout -> BatchNorm1d(eps=1e-2): folds, eps and all
    return nn.Sequential(nn.Linear(20, 12, bias=False), nn.Dropout(0.3), nn.BatchNorm1d(12, eps=1e-2), nn.ReLU(),
                         nn.Linear(12, 4))


@pytest.mark.parametrize("build, shape, folded, ops", [
    (mlp_with_norms, (64, 20), ["1", "5"], ["linear", "relu", "dropout", "linear"]),
    (conv_with_norm, (64, 2, 8, 8), ["1"], ["conv2d", "relu", "maxpool2d", "flatten", "linear"]),
    (dropout_between, (64, 20), ["2"], ["linear", "dropout", "relu", "linear"]),
])
def test_folding_batch_norm_keeps_the_function_exactly(build, shape, folded, ops):
    torch.manual_seed(0)
    model = randomize_norms(build(), seed=1)
    reference = copy.deepcopy(model).eval()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    traced = TracedModel(model, "m")
    assert "batchnorm" in [e["op"] for e in traced.architecture]
    before = outputs(traced, x)
    assert torch.allclose(before, outputs(reference, x), atol=1e-6)

    assert traced.fold_batch_norms() == folded
    after = outputs(traced, x)
    assert torch.allclose(after, outputs(reference, x), atol=1e-5, rtol=1e-5)
    without = nn.Sequential(*[nn.Identity() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) else m
                              for m in reference])
    assert not torch.allclose(outputs(without, x), after, atol=1e-2)  # the norms matter: a lost one would show
    assert [e["op"] for e in traced.architecture] == ops
    assert not traced.batch_norms()
    assert sorted(traced.state_npz()) == sorted(f"{k}{l}" for l in range(len(traced.layers())) for k in "wb")
    assert traced.fold_batch_norms() == []  # nothing left to fold


def test_batch_norm_after_relu_is_not_folded_and_keeps_its_keys():
    torch.manual_seed(0)
    model = randomize_norms(nn.Sequential(nn.Linear(10, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.BatchNorm1d(8),
                                          nn.Linear(8, 3)), seed=3)
    reference = copy.deepcopy(model).eval()
    x = torch.randn(32, 10, generator=torch.Generator().manual_seed(4))
    traced = TracedModel(model, "m")
    assert list(traced.batch_norms()) == ["1", "3"]
    assert traced.fold_batch_norms() == ["1"]
    assert list(traced.batch_norms()) == ["3"]
    assert torch.allclose(outputs(traced, x), outputs(reference, x), atol=1e-5)
    arrays = traced.state_npz()
    assert sorted(arrays) == ["b0", "b1", "n0_beta", "n0_gamma", "n0_mean", "n0_var", "w0", "w1"]
    bn = reference[3]  # the one left is renumbered n0, and holds that layer's parameters and statistics
    for key, tensor in (("gamma", bn.weight), ("beta", bn.bias), ("mean", bn.running_mean), ("var", bn.running_var)):
        np.testing.assert_array_equal(arrays[f"n0_{key}"], tensor.detach().numpy())
    entry = [e for e in traced.architecture if e["op"] == "batchnorm"]
    assert entry == [{"name": "3", "op": "batchnorm", "key": "n0", "features": 8, "eps": 1e-5}]


# ---- successors (filter pruning) ---------------------------------------------------------------

class TwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3)
        self.flatten = nn.Flatten()
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(6 * 2 * 2, 3)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        return self.fc(self.drop(self.flatten(self.conv2(x))))


class TwoHeads(nn.Module):
    """The conv's output feeds two layers: neither owns its channels."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.head1 = nn.Linear(4 * 4 * 4, 3)
        self.head2 = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x):
        x = self.conv(x)
        return self.head1(torch.flatten(x, 1)), self.head2(torch.flatten(x, 1))


def test_successors_follow_zero_preserving_ops_to_the_next_weight_layer():
    traced = TracedModel(TwoConvs(), "m")
    assert traced.successors == {"conv1": "conv2", "conv2": "fc"}
    assert list(traced.layers()) == ["conv1", "conv2", "fc"]


def test_a_conv_with_two_readers_has_no_successor():
    traced = TracedModel(TwoHeads(), "m")
    assert list(traced.layers()) == ["conv", "head1", "head2"]
    assert traced.successors == {}


def test_a_successor_reads_the_pruned_filters_channels():
    """The layout filter pruning assumes: zeroing a conv1 filter makes exactly the successor's
    columns of that channel irrelevant (checked on the real forward pass)."""
    torch.manual_seed(0)
    traced = TracedModel(TwoConvs(), "m").eval()
    x = torch.randn(8, 1, 10, 10)
    conv1, conv2 = traced.layers()["conv1"], traced.layers()[traced.successors["conv1"]]
    with torch.no_grad():
        conv1.weight[2] = 0
        conv1.bias[2] = 0
        before = traced(x)
        conv2.weight[:, 2] = torch.randn_like(conv2.weight[:, 2])  # what filter pruning masks
        assert torch.equal(traced(x), before)


# ---- bias-free layers --------------------------------------------------------------------------

def test_a_layer_without_bias_gets_a_fixed_zero_bias():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5, bias=False), nn.ReLU(), nn.Linear(5, 3))
    reference = copy.deepcopy(model)
    traced = TracedModel(model, "m")
    bias = traced.layers()["0"].bias
    assert bias is not None and bias.shape == (5,) and not bias.requires_grad
    arrays = traced.state_npz()
    np.testing.assert_array_equal(arrays["b0"], np.zeros(5, dtype=np.float32))
    assert arrays["b0"].dtype == np.float32
    x = torch.randn(7, 6)
    assert torch.equal(outputs(traced, x), outputs(reference, x))


# ---- weights from a state_dict or an npz -------------------------------------------------------

def users_model():
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3, bias=False))


@pytest.fixture
def saved_state(tmp_path):
    torch.manual_seed(5)
    original = randomize_norms(users_model(), seed=6)
    state = original.state_dict()
    torch.save(state, tmp_path / "w.pt")
    return original, state, tmp_path


def test_a_saved_state_dict_reproduces_the_users_model(saved_state):
    original, _, folder = saved_state
    torch.manual_seed(99)  # other initial weights
    traced = TracedModel(users_model(), "m")
    x = torch.randn(16, 3, 4, generator=torch.Generator().manual_seed(7))
    assert not torch.allclose(outputs(traced, x), outputs(original, x))
    traced.load_state_file(folder / "w.pt")
    assert torch.equal(outputs(traced, x), outputs(original, x))
    traced.fold_batch_norms()
    assert torch.allclose(outputs(traced, x), outputs(original, x), atol=1e-5)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.__setitem__("1.weight", torch.zeros(6, 13)), r"1\.weight has shape \(6, 13\), the model needs \(6, 12\)"),
    (lambda s: s.__setitem__("2.running_mean", torch.zeros(7)), r"2\.running_mean has shape \(7,\), the model needs \(6,\)"),
    (lambda s: s.pop("2.running_var"), r"lacks 2\.running_var \(shape \(6,\)\) that the model has"),
    (lambda s: s.__setitem__("extra.weight", torch.zeros(2)), r"holds extra\.weight \(shape \(2,\)\), which the model does not have"),
    (lambda s: s["1.bias"].__setitem__(0, float("nan")), r"1\.bias contains NaN or infinite values"),
])
def test_a_state_dict_that_does_not_match_is_named(saved_state, change, message):
    _, state, folder = saved_state
    state = {k: v.clone() for k, v in state.items()}
    change(state)
    torch.save(state, folder / "bad.pt")
    traced = TracedModel(users_model(), "m")
    with pytest.raises(EiexError, match=message) as error:
        traced.load_state_file(folder / "bad.pt")
    assert str(folder / "bad.pt") in str(error.value) and "\n" not in str(error.value)


def test_files_that_are_not_state_dicts(saved_state):
    original, _, folder = saved_state
    traced = TracedModel(users_model(), "m")
    torch.save([torch.zeros(2)], folder / "list.pt")
    torch.save({"weights": {"nested": torch.zeros(2)}}, folder / "nested.pt")
    torch.save(original, folder / "module.pt")  # a pickled module, which weights_only refuses to run
    (folder / "text.pt").write_text("not a torch file")
    for name, message in (("list.pt", "does not hold a state_dict"), ("nested.pt", "does not hold a state_dict"),
                          ("module.pt", "cannot read .* as a PyTorch state_dict"),
                          ("text.pt", "cannot read .* as a PyTorch state_dict"),
                          ("missing.pt", "weights file .* not found")):
        with pytest.raises(EiexError, match=message) as error:
            traced.load_state_file(folder / name)
        assert "\n" not in str(error.value)


def test_an_npz_of_eiex_keys_loads(saved_state):
    original, _, folder = saved_state
    source = TracedModel(copy.deepcopy(original), "m")
    arrays = source.state_npz()
    assert sorted(arrays) == ["b0", "b1", "n0_beta", "n0_gamma", "n0_mean", "n0_var", "w0", "w1"]
    np.savez(folder / "w.npz", **arrays)
    torch.manual_seed(98)
    traced = TracedModel(users_model(), "m")
    traced.load_state_file(folder / "w.npz")
    x = torch.randn(16, 12)
    assert torch.equal(outputs(traced, x), outputs(original, x))
    del arrays["n0_var"]
    np.savez(folder / "short.npz", **arrays)
    with pytest.raises(EiexError, match="lacks n0_var"):
        traced.load_state_file(folder / "short.npz")


# ---- the default recipe ------------------------------------------------------------------------

class Features(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * 3 * 3, 8), nn.ReLU(), nn.Linear(8, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def test_default_recipe_gives_each_layer_its_kinds_defaults():
    defaults = tomllib.loads(DEFAULT_TOML.read_text())["defaults"]
    traced = TracedModel(Features(), "Features")
    recipe = load_recipe("Features", traced)
    assert list(recipe.layers) == ["features.0", "classifier.1", "classifier.3"]
    for name, kind in (("features.0", "conv2d"), ("classifier.1", "linear"), ("classifier.3", "output")):
        layer = recipe.layers[name]
        assert (layer.quality, layer.bits, layer.index_bits) == (
            defaults[kind]["quality"], defaults[kind]["bits"], defaults[kind]["index_bits"]), name
        assert layer.filters == 0


def test_recipe_overrides_name_dotted_layers(tmp_path):
    traced = TracedModel(Features(), "Features")
    base = load_recipe("Features", traced)
    from_dict = load_recipe("Features", traced, {"layers": {"features.0": {"bits": 3, "filters": 0.25}},
                                                "train": {"epochs": 2}})
    assert from_dict.layers["features.0"].bits == 3 and from_dict.layers["features.0"].filters == 0.25
    assert from_dict.layers["features.0"].quality == base.layers["features.0"].quality
    assert from_dict.layers["classifier.1"] == base.layers["classifier.1"]
    assert from_dict.train.epochs == 2 and from_dict.train.lr == base.train.lr
    path = tmp_path / "r.toml"
    path.write_text('[layers."features.0"]\nbits = 3\nfilters = 0.25\n[train]\nepochs = 2\n')
    assert load_recipe("Features", traced, path) == from_dict
    sequential = TracedModel(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), "Sequential")
    assert load_recipe("Sequential", sequential, {"layers": {"0": {"quality": 0.5}}}).layers["0"].quality == 0.5


@pytest.mark.parametrize("override, message", [
    ({"layers": {"fc9": {"bits": 3}}}, r"unknown layer\(s\) fc9; the model has features\.0, classifier\.1, classifier\.3"),
    ({"layers": {"features": {"bits": 3}}}, r"unknown layer\(s\) features;"),
    ({"layers": {"classifier.1": {"filters": 0.5}}}, r"\[layers\.classifier\.1\] filters applies to convolutions only"),
    ({"defaults": {"linear": {"bits": 3}}}, "unknown key.*defaults"),
])
def test_bad_recipe_overrides_for_a_users_model(override, message):
    with pytest.raises(EiexError, match=message):
        load_recipe("Features", TracedModel(Features(), "Features"), override)


# ---- regressions: each failed before its fix ---------------------------------------------------

class ConvNet(nn.Module):
    def __init__(self, flatten):
        super().__init__()
        self.conv, self.fc, self.flatten = nn.Conv2d(1, 3, 3), nn.Linear(3 * 3 * 3, 4), flatten

    def forward(self, x):
        return self.fc(self.flatten(F.max_pool2d(torch.relu(self.conv(x)), 2)))


@pytest.mark.parametrize("flatten", [lambda x: x.view(x.shape[0], -1), lambda x: x.view(x.size(0), -1)])
def test_shape_reads_are_accepted_and_do_not_hide_the_successor(flatten):
    traced = TracedModel(ConvNet(flatten), "m")  # x.shape[0] was refused as "calls getattr"
    assert traced.successors == {"conv": "fc"}  # the size() read counted as a second reader
    pool = next(e for e in traced.architecture if e["op"] == "maxpool2d")
    assert pool["args"] == [2]  # the pooling's window was not recorded


def test_the_callers_module_is_left_untouched():
    model = nn.Sequential(nn.Linear(5, 4, bias=False), nn.BatchNorm1d(4), nn.Linear(4, 2))
    randomize_norms(model, 0)
    before = copy.deepcopy(model.state_dict())
    traced = TracedModel(model, "m")
    traced.fold_batch_norms()
    with torch.no_grad():
        traced.layers()["0"].weight.mul_(2)
    assert model[0].bias is None and isinstance(model[1], nn.BatchNorm1d)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_last_batch_of_one_sample_trains_with_batch_norm():
    from eiex.sw.train import Tensors, TrainConfig, fit

    model = TracedModel(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)), "m")
    data = Tensors(torch.randn(129, 3), torch.randint(0, 2, (129,)))
    fit(model, data, TrainConfig(epochs=1, lr=1e-3, batch_size=64), seed=0)  # raised torch's ValueError
