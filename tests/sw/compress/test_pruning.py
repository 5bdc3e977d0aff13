"""Pruning: Han's threshold, masks that survive retraining, filter pruning, sensitivity."""

import numpy as np
import pytest
import torch

from eiex.errors import EiexError
from eiex.sw.models import build_model
from eiex.sw.compress.pruning import Masks, filter_prune, iterative_prune, retrain, sensitivity, threshold_masks
from eiex.sw.train import TrainConfig, accuracy, fit, seed_everything


@pytest.fixture
def trained300(mnist_small):
    seed_everything(0)
    model = build_model("lenet300")
    fit(model, mnist_small[0], TrainConfig(epochs=2, lr=1e-3), seed=0)
    return model


def test_threshold_is_quality_times_std_of_dense_weights(trained300, mnist_small):
    dense = {n: l.weight.detach().clone() for n, l in trained300.layers().items()}
    quality = {"fc1": 1.0, "fc2": 0.5, "fc3": 0.25}
    masks = iterative_prune(trained300, quality, mnist_small[0], TrainConfig(epochs=0, lr=1e-3), steps=1, seed=0)
    for name, w in dense.items():
        w = w.numpy()
        expected = np.abs(w) > quality[name] * w.std(ddof=1)
        assert np.array_equal(masks.weight[name].numpy(), expected)
        kept_values = trained300.layers()[name].weight.detach().numpy()
        # survivors keep their trained values exactly, the pruned are exactly zero
        assert np.array_equal(kept_values[expected], w[expected])
        assert np.all(kept_values[~expected] == 0)


def test_iterative_schedule_ramps_to_the_final_threshold(trained300, mnist_small):
    w = trained300.fc1.weight.detach().clone()
    masks = iterative_prune(trained300, {"fc1": 1.2}, mnist_small[0], TrainConfig(epochs=1, lr=1e-3), steps=3, seed=0)
    final = trained300.fc1.weight.detach()
    # after the last step nothing at or below 1.2 std of the original weights survives
    assert torch.all(final[masks.weight["fc1"]].abs() > 0)
    assert torch.all((final == 0) == ~masks.weight["fc1"])
    assert masks.kept_fraction()["fc1"] < float((w.abs() > 1.2 * w.std()).float().mean()) + 0.02
    assert masks.kept_fraction()["fc2"] == 1.0  # layers without a quality are left alone


def test_masks_survive_retraining(trained300, mnist_small):
    masks = threshold_masks(trained300, {"fc1": 0.03, "fc2": 0.03, "fc3": 0.03}, Masks.dense(trained300))
    masks.apply(trained300)
    before = {n: l.weight.detach().clone() for n, l in trained300.layers().items()}
    config = TrainConfig(epochs=1, lr=1e-3, batch_size=50)
    retrain(trained300, masks, mnist_small[0], config, seed=1, desc="test")
    steps = 500 // 50
    for name, layer in trained300.layers().items():
        w, m = layer.weight.detach(), masks.weight[name]
        assert torch.all(w[~m] == 0), "a pruned weight came back"
        # survivors moved only by optimizer steps (Adam moves each by about lr per step),
        # so they were kept, not re-initialized
        assert torch.max((w - before[name])[m].abs()) <= steps * config.lr * 1.5


def test_gradients_of_pruned_weights_are_masked(trained300, mnist_small):
    masks = threshold_masks(trained300, {"fc1": 0.03}, Masks.dense(trained300))
    x, y = mnist_small[0].x[:32], mnist_small[0].y[:32]
    torch.nn.functional.cross_entropy(trained300(x), y).backward()
    masks.mask_gradients(trained300)
    grad = trained300.fc1.weight.grad
    assert torch.all(grad[~masks.weight["fc1"]] == 0)
    assert torch.any(grad[masks.weight["fc1"]] != 0)


def test_filter_pruning_removes_smallest_l1_filters_and_their_inputs():
    seed_everything(0)
    model = build_model("lenet5")
    masks = filter_prune(model, {"conv2": 0.2}, Masks.dense(model))
    norms = np.abs(model.conv2.weight.detach().numpy()).sum(axis=(1, 2, 3))
    dropped = set(np.argsort(norms, kind="stable")[:10])
    kept_filters = masks.weight["conv2"].reshape(50, -1).all(dim=1).numpy()
    assert set(np.flatnonzero(~kept_filters)) == dropped
    assert set(np.flatnonzero(~masks.bias["conv2"].numpy())) == dropped
    # fc1 reads conv2's output flattened channel-major: 16 columns per channel
    fc1 = masks.weight["fc1"].numpy().reshape(500, 50, 16)
    for c in range(50):
        assert fc1[:, c].all() == (c not in dropped) and fc1[:, c].any() == (c not in dropped)
    masks.apply(model)
    assert model.conv2.weight.detach()[list(dropped)].abs().sum() == 0


def test_filter_pruning_refuses_to_remove_everything():
    model = build_model("lenet5")
    with pytest.raises(EiexError, match="would remove all 20 filters"):
        filter_prune(model, {"conv1": 0.99}, Masks.dense(model))
    with pytest.raises(EiexError, match="not one"):
        filter_prune(model, {"fc1": 0.5}, Masks.dense(model))


def test_sensitivity_curves(trained300, mnist_small):
    test = mnist_small[1]
    dense_acc = accuracy(trained300, test)
    before = trained300.fc1.weight.detach().clone()
    curves = sensitivity(trained300, test, [0.0, 0.5, 1.0 - 1e-9])
    assert torch.equal(trained300.fc1.weight.detach(), before)  # weights restored
    for name, curve in curves.items():
        assert curve[0] == dense_acc
        assert curve[-1] < dense_acc  # a layer pruned away ruins the network
