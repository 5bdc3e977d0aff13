"""Sparsity regularization and the removal of dead neurons (structured pruning of an MLP).

An L1 penalty ``strength * sum |w|`` drives weights to exactly zero (Han et al., "Learning both
Weights and Connections", 2015, section 3.1, compare L1 and L2; Liu et al., "Learning Efficient
Convolutional Networks through Network Slimming", 2017, for the neuron-level view). Pruning then
leaves neurons that do nothing a dense engine should pay for:

- a hidden neuron ``i`` of layer ``l`` whose row of ``W_l`` is all zero outputs the constant
  ``c_i = act(b_i)`` (``max(b_i, 0)`` after a ReLU, ``b_i`` otherwise); it is folded into the next
  layer's bias, ``b_{l+1} += W_{l+1}[:, i] * c_i``, and removed (Han et al. call such neurons dead:
  "neurons with zero input connections or zero output connections may be safely pruned");
- a hidden neuron whose column of ``W_{l+1}`` is all zero is read by nothing and removed.

Removing neuron ``i`` removes row ``i`` and bias ``i`` of layer ``l`` and column ``i`` of layer
``l + 1``. That can empty other rows and columns, so the removal repeats until nothing changes. The
network's inputs (columns of the first layer) and outputs (rows of the last) are never removed, and
the compacted network computes exactly the same function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from eiex.errors import EiexError


def l1_penalty(weights: list[torch.Tensor], strength: float) -> torch.Tensor:
    """``strength * sum |w|`` over every given tensor: a differentiable scalar."""
    strength = float(strength)
    if not np.isfinite(strength) or strength < 0:
        raise EiexError(f"L1 strength must be a finite non-negative number, not {strength}")
    weights = list(weights)
    if not weights:
        raise EiexError("L1 penalty needs at least one weight tensor")
    if not all(isinstance(w, torch.Tensor) and w.is_floating_point() for w in weights):
        raise EiexError("L1 penalty needs floating-point torch tensors")
    return strength * sum(w.abs().sum() for w in weights)


@dataclass(frozen=True)
class Compacted:
    """An MLP after dead-neuron removal.

    Attributes
    ----------
    weights, biases : list of numpy.ndarray
        Per layer, the kept ``(out, in)`` matrix and ``(out,)`` bias (biases with constants folded in).
    kept : list of numpy.ndarray
        Per layer, the original indices of its kept output rows (every row for the last layer).
    removed : list of int
        Per layer, how many neurons were removed (always 0 for the last layer).
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    kept: list[np.ndarray]
    removed: list[int]


def _check_network(weights, biases, relu) -> None:
    if not weights:
        raise EiexError("the network has no layers")
    if len(biases) != len(weights) or len(relu) != len(weights):
        raise EiexError(f"{len(weights)} weight matrices need as many biases and ReLU flags, "
                        f"not {len(biases)} and {len(relu)}")
    for i, (w, b) in enumerate(zip(weights, biases)):
        if w.ndim != 2:
            raise EiexError(f"layer {i}: weights must be a 2-D (out, in) matrix, not {w.ndim}-D")
        if b.shape != (w.shape[0],):
            raise EiexError(f"layer {i}: bias of shape {b.shape} does not match {w.shape[0]} outputs")
        for name, a in (("weights", w), ("bias", b)):
            if not np.issubdtype(a.dtype, np.floating):
                raise EiexError(f"layer {i}: {name} must be floating point, not {a.dtype}")
            if not np.all(np.isfinite(a)):
                verb = "contain" if name == "weights" else "contains"
                raise EiexError(f"layer {i}: {name} {verb} NaN or infinite values")
        if i > 0 and w.shape[1] != weights[i - 1].shape[0]:
            raise EiexError(f"layer {i} reads {w.shape[1]} inputs but layer {i - 1} has {weights[i - 1].shape[0]} outputs")


def remove_dead_neurons(weights: list[np.ndarray], biases: list[np.ndarray], relu: list[bool]) -> Compacted:
    """Remove every hidden neuron with an all-zero row or an all-zero reading column, until none is left."""
    weights = [np.asarray(w) for w in weights]
    biases = [np.asarray(b) for b in biases]
    relu = [bool(r) for r in relu]
    _check_network(weights, biases, relu)
    w = [x.copy() for x in weights]
    b = [x.copy() for x in biases]
    kept = [np.arange(x.shape[0]) for x in weights]
    changed = True
    while changed:
        changed = False
        for k in range(len(w) - 1):
            constant_row = ~np.any(w[k] != 0, axis=1)
            unread = ~np.any(w[k + 1] != 0, axis=0)
            remove = constant_row | unread
            if not remove.any():
                continue
            changed = True
            # an unread neuron's column is zero, so folding it adds nothing
            out = b[k][remove].astype(np.float64)
            if relu[k]:
                out = np.maximum(out, 0.0)
            fold = w[k + 1][:, remove].astype(np.float64) @ out
            b[k + 1] = (b[k + 1].astype(np.float64) + fold).astype(b[k + 1].dtype)
            keep = ~remove
            w[k] = w[k][keep]
            b[k] = b[k][keep]
            w[k + 1] = w[k + 1][:, keep]
            kept[k] = kept[k][keep]
    removed = [orig.shape[0] - len(k) for orig, k in zip(weights, kept)]
    return Compacted(weights=w, biases=b, kept=kept, removed=removed)
