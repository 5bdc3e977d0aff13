"""Neurons: the L1 penalty, dead-neuron removal that keeps the network's function exactly."""

from itertools import pairwise

import numpy as np
import pytest
import torch

from eiex.errors import EiexError
from eiex.sw.compress.methods.neurons import Compacted, l1_penalty, remove_dead_neurons


def forward(weights, biases, relu, x):
    h = x
    for w, b, r in zip(weights, biases, relu):
        h = h @ w.T + b
        if r:
            h = np.maximum(h, 0)
    return h


def test_l1_penalty_value_and_gradient():
    a = torch.tensor([[1.0, -2.0], [0.0, 3.0]], requires_grad=True)
    b = torch.tensor([-0.5, 0.25], requires_grad=True)
    penalty = l1_penalty([a, b], 0.1)
    assert penalty.dim() == 0
    assert penalty.item() == pytest.approx(0.1 * 6.75)
    penalty.backward()
    torch.testing.assert_close(a.grad, 0.1 * torch.sign(a.detach()))
    torch.testing.assert_close(b.grad, torch.tensor([-0.1, 0.1]))


def test_dead_row_folds_its_constant_into_the_next_bias():
    # hidden neuron 1 has no inputs: it outputs relu(2) = 2 for every x
    w0 = np.array([[1.0, -1.0], [0.0, 0.0], [0.5, 2.0]])
    b0 = np.array([0.0, 2.0, -1.0])
    w1 = np.array([[1.0, 3.0, 1.0]])
    b1 = np.array([0.5])
    c = remove_dead_neurons([w0, w1], [b0, b1], [True, False])
    assert isinstance(c, Compacted)
    assert c.removed == [1, 0]
    assert c.kept[0].tolist() == [0, 2] and c.kept[1].tolist() == [0]
    np.testing.assert_array_equal(c.weights[0], w0[[0, 2]])
    np.testing.assert_array_equal(c.weights[1], w1[:, [0, 2]])
    assert c.biases[1].tolist() == [0.5 + 3.0 * 2.0]
    # the same neuron without a ReLU: b = -2 is folded as is; with a ReLU it would be 0
    b0[1] = -2.0
    assert remove_dead_neurons([w0, w1], [b0, b1], [False, False]).biases[1].tolist() == [0.5 - 6.0]
    assert remove_dead_neurons([w0, w1], [b0, b1], [True, False]).biases[1].tolist() == [0.5]


def test_removals_cascade_both_ways():
    # layer 1's neuron 0 reads only layer 0's neuron 0, whose row is zero: once neuron 0 goes,
    # layer 1's neuron 0 has a zero row and goes too; layer 2 reads nothing of layer 1's neuron 2,
    # so it goes, and then layer 0's neuron 2, read only by it, has nobody reading it.
    w0 = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]])
    b0 = np.array([1.0, 0.0, 0.5])
    w1 = np.array([[4.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    b1 = np.array([-1.0, 0.0, 1.0])
    w2 = np.array([[1.0, 1.0, 0.0], [2.0, -1.0, 0.0]])
    b2 = np.array([0.0, 1.0])
    relu = [True, True, False]
    c = remove_dead_neurons([w0, w1, w2], [b0, b1, b2], relu)
    assert c.kept[0].tolist() == [1] and c.kept[1].tolist() == [1] and c.kept[2].tolist() == [0, 1]
    assert c.removed == [2, 2, 0]
    # layer 1's neuron 0 became relu(4 * 1 - 1) = 3 for every input, folded into layer 2
    assert c.biases[2].tolist() == [3.0, 1.0 + 6.0]
    x = np.random.default_rng(0).normal(size=(50, 2))
    np.testing.assert_array_equal(forward(c.weights, c.biases, relu, x), forward([w0, w1, w2], [b0, b1, b2], relu, x))


def test_inputs_and_outputs_are_never_removed():
    w0 = np.zeros((3, 4))
    w0[:, 0] = 1.0  # inputs 1..3 are read by nothing: they stay
    w1 = np.zeros((2, 3))
    w1[0, 0] = 1.0  # output 1 reads nothing: it stays, as its bias
    c = remove_dead_neurons([w0, w1], [np.zeros(3), np.array([0.0, 7.0])], [True, False])
    assert c.weights[0].shape == (1, 4) and c.weights[1].shape == (2, 1)
    assert c.removed == [2, 0] and c.kept[1].tolist() == [0, 1]


def test_everything_dead_leaves_a_constant_network():
    w = [np.zeros((3, 2)), np.ones((2, 3))]
    b = [np.array([1.0, -1.0, 2.0]), np.array([0.0, 1.0])]
    c = remove_dead_neurons(w, b, [True, False])
    assert c.weights[0].shape == (0, 2) and c.weights[1].shape == (2, 0)
    assert c.biases[1].tolist() == [3.0, 4.0]
    x = np.random.default_rng(1).normal(size=(5, 2))
    np.testing.assert_array_equal(forward(c.weights, c.biases, [True, False], x), forward(w, b, [True, False], x))


@pytest.mark.parametrize("seed", range(12))
def test_random_sparse_networks_compute_the_same_function(seed):
    rng = np.random.default_rng(seed)
    sizes = [int(n) for n in rng.integers(3, 12, size=int(rng.integers(2, 6)))]
    relu = [bool(r) for r in rng.random(len(sizes) - 1) > 0.3]
    weights, biases = [], []
    for n_in, n_out in pairwise(sizes):
        # small integers: every float64 sum is exact, so the function must match bit for bit
        w = rng.integers(-3, 4, size=(n_out, n_in)).astype(np.float64) * (rng.random((n_out, n_in)) < 0.35)
        w[rng.random(n_out) < 0.3] = 0  # whole dead rows
        w[:, rng.random(n_in) < 0.3] = 0  # whole unread columns
        weights.append(w)
        biases.append(rng.integers(-3, 4, size=n_out).astype(np.float64))
    c = remove_dead_neurons(weights, biases, relu)
    x = rng.integers(-5, 6, size=(200, sizes[0])).astype(np.float64)
    np.testing.assert_array_equal(forward(c.weights, c.biases, relu, x), forward(weights, biases, relu, x))
    xr = rng.normal(size=(200, sizes[0]))
    np.testing.assert_allclose(forward(c.weights, c.biases, relu, xr), forward(weights, biases, relu, xr),
                               rtol=1e-12, atol=1e-12)
    # the counts, the kept rows, and nothing dead left behind
    for k, (orig, kept) in enumerate(zip(weights, c.kept)):
        assert c.removed[k] == orig.shape[0] - len(kept)
        np.testing.assert_array_equal(c.weights[k], orig[kept][:, c.kept[k - 1]] if k else orig[kept])
    assert c.removed[-1] == 0 and c.weights[0].shape[1] == sizes[0] and c.weights[-1].shape[0] == sizes[-1]
    for k in range(len(weights) - 1):
        assert np.all(np.any(c.weights[k] != 0, axis=1))
        assert np.all(np.any(c.weights[k + 1] != 0, axis=0))
    # the input is not changed
    assert all(w.shape == (n_out, n_in) for w, n_in, n_out in zip(weights, sizes, sizes[1:]))


def test_float32_networks_keep_their_dtype():
    rng = np.random.default_rng(5)
    w = [rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(3, 6)).astype(np.float32)]
    w[0][2] = 0
    b = [rng.normal(size=6).astype(np.float32), rng.normal(size=3).astype(np.float32)]
    c = remove_dead_neurons(w, b, [True, False])
    assert c.removed == [1, 0]
    assert all(a.dtype == np.float32 for a in c.weights + c.biases)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    np.testing.assert_allclose(forward(c.weights, c.biases, [True, False], x), forward(w, b, [True, False], x),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call, message", [
    (lambda: l1_penalty([torch.ones(2)], -1.0), "L1 strength must be a finite non-negative number, not -1.0"),
    (lambda: l1_penalty([], 0.1), "L1 penalty needs at least one weight tensor"),
    (lambda: l1_penalty([np.ones(2)], 0.1), "L1 penalty needs floating-point torch tensors"),
    (lambda: remove_dead_neurons([], [], []), "the network has no layers"),
    (lambda: remove_dead_neurons([np.ones((2, 3))], [np.ones(2)], [True, False]),
     "1 weight matrices need as many biases and ReLU flags, not 1 and 2"),
    (lambda: remove_dead_neurons([np.ones((2, 3)), np.ones((4, 3))], [np.ones(2), np.ones(4)], [True, False]),
     "layer 1 reads 3 inputs but layer 0 has 2 outputs"),
    (lambda: remove_dead_neurons([np.ones((2, 3))], [np.ones(3)], [False]),
     r"layer 0: bias of shape \(3,\) does not match 2 outputs"),
    (lambda: remove_dead_neurons([np.ones(3)], [np.ones(3)], [False]), "layer 0: weights must be a 2-D"),
    (lambda: remove_dead_neurons([np.array([[np.nan]])], [np.ones(1)], [False]),
     "layer 0: weights contain NaN or infinite values"),
    (lambda: remove_dead_neurons([np.ones((1, 1))], [np.array([np.inf])], [False]),
     "layer 0: bias contains NaN or infinite values"),
    (lambda: remove_dead_neurons([np.ones((1, 1), dtype=np.int64)], [np.ones(1)], [False]),
     "layer 0: weights must be floating point, not int64"),
])
def test_bad_input(call, message):
    with pytest.raises(EiexError, match=message):
        call()
