"""Weight sharing: code 0 for pruned weights, k-means codebooks, and eq. 3 against autograd."""

import numpy as np
import pytest
import torch

from eiex.errors import EiexError
from eiex.sw.compress.kmeans import optimal
from eiex.sw.models import build_model
from eiex.sw.compress.pruning import Masks, threshold_masks
from eiex.sw.compress.sharing import centroid_gradient, finetune_centroids, share_layer, share_weights
from eiex.sw.train import TrainConfig, accuracy, fit, seed_everything


def test_share_layer_reserves_code_zero_for_pruned_weights():
    rng = np.random.default_rng(0)
    w = rng.laplace(size=(30, 40)).astype(np.float32)
    w[np.abs(w) < 0.7] = 0
    shared = share_layer(w, bits=3, method="optimal")
    assert shared.codebook[0] == 0 and len(shared.codebook) == 8
    assert np.array_equal(shared.codes == 0, w == 0)
    values = shared.weights()
    assert len(np.unique(values[values != 0])) <= 7
    # the shared values are the optimal 7-means of the survivors
    reference = optimal(w[w != 0].astype(np.float64), 7)
    assert np.allclose(np.sort(shared.codebook[1:]), reference.centroids.astype(np.float32))
    assert np.isclose(((values - w) ** 2).sum(), reference.inertia, rtol=1e-5)


def test_share_layer_with_fewer_distinct_values_than_codes():
    w = np.array([[0, 1.5, 1.5], [-2.0, 0, 1.5]], dtype=np.float32)
    shared = share_layer(w, bits=4, method="lloyd")
    assert np.array_equal(shared.weights(), w)


def test_share_layer_rejects_nan():
    with pytest.raises(EiexError, match="NaN"):
        share_layer(np.array([[np.nan, 1.0]]), bits=2, method="optimal")


def test_centroid_gradient_is_eq3_as_autograd_computes_it():
    """d loss / d codebook, by autograd through codebook[codes], equals the summed weight grads."""
    torch.manual_seed(0)
    codes = torch.randint(0, 8, (20, 30))
    codebook = torch.randn(8, requires_grad=True)
    x = torch.randn(5, 30)
    weight = torch.where(codes == 0, torch.zeros(()), codebook[codes])
    weight.retain_grad()
    (x @ weight.T).pow(2).sum().backward()
    expected = codebook.grad.clone()
    expected[0] = 0
    assert torch.allclose(centroid_gradient(codes, weight.grad, 8), expected, atol=1e-5)


def test_finetuning_keeps_codes_and_zeros(mnist_small):
    train, test = mnist_small
    seed_everything(0)
    model = build_model("lenet300")
    fit(model, train, TrainConfig(epochs=2, lr=1e-3), seed=0)
    thresholds = {n: float(l.weight.detach().std()) for n, l in model.layers().items()}
    masks = threshold_masks(model, thresholds, Masks.dense(model))
    masks.apply(model)
    shared = share_weights(model, {"fc1": 3, "fc2": 3, "fc3": 3}, "optimal")
    tuned = finetune_centroids(model, shared, masks, train, TrainConfig(epochs=2, lr=1e-3), seed=0)
    for name, layer in model.layers().items():
        assert np.array_equal(tuned[name].codes, shared[name].codes)
        assert tuned[name].codebook[0] == 0
        assert not np.array_equal(tuned[name].codebook, shared[name].codebook)  # it trained
        assert np.array_equal(layer.weight.detach().numpy(), tuned[name].weights())
    assert accuracy(model, test) > 0.5
