"""Binarized layers, straight-through gradients, folding and the binarize pipeline."""

import copy
import json

import numpy as np
import pytest
import torch

from eiex.sw.binarize.layers import BinaryLinear, BnnMlp, binarize_activation, binarize_weight, clip_latent_weights, sign
from eiex.sw.binarize.pipeline import binarize, raw_tensors, run_binarize, train_schedule
from eiex.sw.data import load_dataset
from eiex.errors import EiexError
from eiex.sw.npz import read_npz
from eiex.sw.binarize.thresholds import fold_model, run_folded
from eiex.sw.images.xnor.export import check_folded
from eiex.sw.train import TrainConfig, predict, seed_everything



pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(hidden=(32, 32), binary_schedule=(TrainConfig(epochs=1, lr=1e-2, batch_size=100),),
            float_schedule=(TrainConfig(epochs=1, lr=1e-3, batch_size=100),), threads=1, log=lambda *_: None)


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k")


@pytest.fixture(scope="module")
def trained(mnist5k):
    """A small binarized MLP (784-64-64-10, xnor) after two epochs on MNIST-5k."""
    seed_everything(0)
    model = BnnMlp(hidden=(64, 64), mode="xnor")
    train_schedule(model, raw_tensors(mnist5k.train), (TrainConfig(epochs=2, lr=1e-2, batch_size=100),),
                   seed=0, desc="test", after_step=lambda: clip_latent_weights(model))
    return model


def test_sign_is_plus_one_at_zero_and_never_zero():
    x = torch.tensor([-3.0, -1e-30, -0.0, 0.0, 1e-30, 3.0])
    assert sign(x).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]


def test_activation_gradient_passes_only_where_the_input_is_within_one():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    y = binarize_activation(x)
    y.backward(torch.arange(1.0, 8.0))
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    assert x.grad.tolist() == [0, 2, 3, 4, 5, 6, 0]


def test_weight_gradient_passes_unchanged():
    w = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    y = binarize_weight(w)
    y.backward(torch.arange(1.0, 6.0))
    assert y.tolist() == [-1, -1, 1, 1, 1]
    assert w.grad.tolist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("mode, x, y, x_grad, w_grad", [
    # W = [0.5, -0.25]; sign W = [1, -1]
    ("binaryconnect", [0.3, 2.0], 0.3 - 2.0, [1.0, -1.0], [0.3, 2.0]),
    ("bnn", [0.3, 2.0], 0.0, [1.0, 0.0], [1.0, 1.0]),  # sign x = [1, 1]; |2| > 1 blocks its gradient
    # alpha = mean |W| = 0.375, y = alpha * (x . sign W) = 0.375 * 2; dy/dW = alpha * x + (x . sign W) * sign W / 2
    ("xnor", [1.0, -1.0], 0.75, [0.375, -0.375], [0.375 + 1.0, -0.375 - 1.0]),
])
def test_binary_linear_forward_and_gradients_by_hand(mode, x, y, x_grad, w_grad):
    layer = BinaryLinear(2, 1, mode)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.25]]))
    x = torch.tensor([x], requires_grad=True)
    out = layer(x)
    out.sum().backward()
    assert out.item() == pytest.approx(y)
    assert x.grad[0].tolist() == pytest.approx(x_grad)
    assert layer.weight.grad[0].tolist() == pytest.approx(w_grad)


def test_latent_weights_are_clipped_to_plus_minus_one(mnist5k):
    layer = BinaryLinear(3, 2, "bnn")
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[-3.0, 0.2, 1.5], [1.0, -1.0, -0.99]]))
    clip_latent_weights(torch.nn.Sequential(layer))
    assert layer.weight.flatten().tolist() == pytest.approx([-1.0, 0.2, 1.0, 1.0, -1.0, -0.99])
    # training at a rate that throws weights far past 1, with the clip as fit's after_step
    data = raw_tensors(mnist5k.train)
    data = type(data)(data.x[:300], data.y[:300])
    seed_everything(0)
    model = BnnMlp(hidden=(16,), mode="xnor")
    train_schedule(model, data, (TrainConfig(epochs=1, lr=0.5, batch_size=50),), seed=0, desc="clip",
                   after_step=lambda: clip_latent_weights(model))
    latent = torch.cat([l.weight.detach().flatten() for l in model.linears])
    assert latent.abs().max() <= 1.0
    assert (latent.abs() == 1.0).float().mean() > 0.5  # the clip did bite


@pytest.mark.parametrize("negate_gammas", [False, True])
def test_folded_integer_network_equals_the_torch_model(trained, mnist5k, negate_gammas):
    if negate_gammas:  # trained gammas stay positive; negate every other one so that rows get flipped
        trained = copy.deepcopy(trained)
        with torch.no_grad():
            for norm in trained.norms:
                norm.weight[::2] *= -1
    arrays = fold_model(trained)
    images = mnist5k.test.images
    folded = run_folded(arrays, images)
    x = raw_tensors(mnist5k.test).x
    with torch.no_grad():
        trained.eval()
        torch_scores = trained(x).double().numpy()
    torch_predictions = predict(trained, x).numpy()
    # float32 PyTorch against float64 folding: only a y within rounding of 0 may flip a hidden bit,
    # so at most 3 of the 1,000 held-out digits may be classified differently
    assert np.sum(folded.argmax(1) != torch_predictions) <= 3
    close = np.all(np.abs(folded - torch_scores) <= 1e-4 * (1 + np.abs(torch_scores)), axis=1)
    assert close.mean() >= 0.99
    # the hidden bits themselves agree almost everywhere
    h = np.where(images.reshape(len(images), -1) >= 128, 1.0, -1.0)
    with torch.no_grad():
        t = trained.binarize_input(x)
        t = sign(trained.norms[0](trained.linears[0](t))).numpy()
    acc = (np.rint(h @ arrays["w0"].T.astype(float)).astype(int) + 784) // 2
    folded_bits = np.where(acc >= arrays["t0"], 1.0, -1.0)
    assert np.mean(folded_bits == t) >= 0.9999


def test_nan_weights_are_refused_with_one_line(trained):
    model = BnnMlp(hidden=(8,), mode="bnn")
    with torch.no_grad():
        model.linears[1].weight[0, 0] = float("nan")
    with pytest.raises(EiexError, match="bnn-mlp layer 1: latent weights contain NaN") as e:
        fold_model(model)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("call, message", [
    (lambda: BinaryLinear(3, 0, "bnn"), "out_features must be a positive integer, not 0"),
    (lambda: BinaryLinear(3, 2, "ternary"), "mode must be one of binaryconnect, bnn, xnor, not 'ternary'"),
    (lambda: BnnMlp(mode="binaryconnect"), "bnn-mlp needs binary activations"),
    (lambda: BnnMlp(hidden=(64, -1)), "layer sizes must be positive integers"),
    (lambda: binarize("lenet300"), "unknown binarized model 'lenet300'"),
    (lambda: binarize(threads=0), "threads must be an integer from 1 to 256, not 0"),
    (lambda: BnnMlp(dropout=(0.2, 1.0)), "dropout must be two rates"),
    (lambda: binarize(dropout=(0.5,)), "dropout must be two rates"),
    (lambda: binarize(BnnMlp(hidden=(8,)), dropout=(0.2, 0.2)), "dropout is set for built-in models"),
])
def test_bad_arguments_are_refused_with_one_line(call, message):
    with pytest.raises(EiexError, match=message) as e:
        call()
    assert "\n" not in str(e.value)


def test_dropped_inputs_leave_the_sum_while_training_and_nothing_drops_in_eval():
    layer = BinaryLinear(4, 1, "bnn")
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -1.0, 1.0, 1.0]]))
    x = torch.tensor([[2.0, 0.0, -0.5, 0.0]])  # as dropout leaves them: two inputs dropped
    # training: sign(2) * 1 + sign(-0.5) * 1 = 0, the zeros add nothing (sign(0) = +1 would add 0 + 1)
    assert layer.train()(x).item() == 0.0
    assert layer.eval()(x).item() == 1.0 - 1.0 - 1.0 + 1.0  # eval: the sign convention, 0 -> +1
    # BnnMlp's dropout is BinaryNet's: in training some hidden bits leave the sums, in eval none do
    seed_everything(0)
    model = BnnMlp(hidden=(16,), mode="bnn", dropout=(0.0, 0.5)).train()
    raw = torch.randint(0, 256, (64, 784)).float()
    hidden = model.norms[0](model.linears[0](model.binarize_input(raw)))
    full = BinaryLinear.forward(model.linears[1].eval(), hidden)
    assert not torch.equal(model.linears[1].train()(model.drops[1](hidden)), full)
    model.eval()
    assert torch.equal(model.linears[1](model.drops[1](hidden)), full)


def test_short_binarize_run_writes_report_and_npz(tmp_path):
    out = tmp_path / "bnn"
    result = run_binarize(out, seed=0, **TINY)
    report = json.loads((out / "report.json").read_text())
    assert report["layers"] == [784, 32, 32, 10]
    for key in ("model", "dataset", "mode", "float_accuracy", "binary_accuracy", "torch_binary_accuracy",
                "agreement", "seed", "seconds"):
        assert key in report
    assert report["binary_accuracy"] > 0.5 and report["float_accuracy"] > 0.5
    arrays = read_npz(out / "binary.npz")
    assert len(check_folded(arrays)[0]) == 3
    assert sorted(arrays) == ["bias", "input_threshold", "scale", "t0", "t1", "w0", "w1", "w2"]
    # binary_accuracy is the folded integer network's, recomputed here from the file
    test = load_dataset("mnist5k").test
    folded = run_folded(arrays, test.images).argmax(1)
    assert report["binary_accuracy"] == np.mean(folded == test.labels)
    # seeded and deterministic: a second run folds to the same integers, and the thread count
    # binarize pins is given back
    torch.set_num_threads(2)
    again = binarize(seed=0, **TINY)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
    assert all(np.array_equal(again.arrays[k], result.arrays[k]) for k in result.arrays)
    # an existing output is refused before any training, and left as it was
    with pytest.raises(EiexError, match="already exists"):
        run_binarize(out, seed=0, **TINY)
    assert sorted(p.name for p in out.iterdir()) == ["binary.npz", "report.json"]
