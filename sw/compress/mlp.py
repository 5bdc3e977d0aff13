"""A multi-layer perceptron rebuilt from its weights, for the methods that change a network's shape.

Neuron removal shrinks hidden layers and low-rank factorization splits a layer in two; both need
the network as plain ``(out, in)`` layers with a ReLU flag each, which :func:`as_mlp` takes from any
compressible model whose architecture is fully connected (the built-in ``lenet300``, or a user's
MLP), and :class:`SequentialMlp` runs again as a compressible model.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from eiex.errors import EiexError
from eiex.sw.models import CompressibleModel
from eiex.sw.images.eie.export import relu_flags


class SequentialMlp(CompressibleModel):
    """Linear layers named ``names``, each followed by a ReLU where ``relu`` says so.

    Parameters
    ----------
    names : list of str
        Layer names, in execution order.
    weights, biases : list of numpy arrays
        ``(out, in)`` and ``(out,)`` per layer; each layer's ``in`` is the ``out`` before it.
    relu : list of bool
        Whether a ReLU follows each layer.
    """

    def __init__(self, names: list[str], weights: list[np.ndarray], biases: list[np.ndarray], relu: list[bool]):
        super().__init__()
        if not (len(names) == len(weights) == len(biases) == len(relu)) or not names:
            raise EiexError("an MLP needs one name, weight, bias and ReLU flag per layer")
        for l, (w, b) in enumerate(zip(weights, biases)):
            if w.ndim != 2 or b.shape != (w.shape[0],) or (l and w.shape[1] != weights[l - 1].shape[0]):
                raise EiexError(f"layer {names[l]}: weight {w.shape} and bias {b.shape} do not chain")
        self.names, self.relu = list(names), [bool(r) for r in relu]
        self.linears = nn.ModuleList()
        for w, b in zip(weights, biases):
            linear = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.asarray(w, dtype=np.float32)))
                linear.bias.copy_(torch.from_numpy(np.asarray(b, dtype=np.float32)))
            self.linears.append(linear)
        self.architecture = []
        for l, (name, linear, relu_after) in enumerate(zip(self.names, self.linears, self.relu)):
            self.architecture.append({"name": name, "key": f"w{l}", "op": "linear",
                                      "in": linear.in_features, "out": linear.out_features})
            if relu_after:
                self.architecture.append({"op": "relu"})

    def layers(self):
        return OrderedDict(zip(self.names, self.linears))

    def forward(self, x):
        x = x.flatten(1)
        for linear, relu in zip(self.linears, self.relu):
            x = linear(x)
            if relu:
                x = torch.relu(x)
        return x

    def arrays(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Every layer's weight and bias as float64 numpy arrays."""
        return ([l.weight.detach().numpy().astype(np.float64) for l in self.linears],
                [l.bias.detach().numpy().astype(np.float64) for l in self.linears])


def check_mlp(model: CompressibleModel, name: str, what: str) -> np.ndarray:
    """The ReLU flags of ``model``'s layers; a model with anything but linear layers and ReLUs is
    refused, naming ``what`` needed it."""
    ops = {entry["op"] for entry in model.architecture} - {"linear", "relu", "flatten", "dropout"}
    if ops:
        raise EiexError(f"{what} applies to fully connected networks; {name} has {', '.join(sorted(ops))}")
    try:
        return relu_flags(model.architecture, name)
    except EiexError as e:
        raise EiexError(f"{what}: {e}") from None


def as_mlp(model: CompressibleModel, name: str, what: str) -> SequentialMlp:
    """``model`` as a :class:`SequentialMlp` computing the same function (:func:`check_mlp`)."""
    if isinstance(model, SequentialMlp):
        return model
    relu = check_mlp(model, name, what)
    arrays = model.state_npz()
    n = len(model.layers())
    return SequentialMlp(list(model.layers()), [arrays[f"w{l}"] for l in range(n)],
                         [arrays[f"b{l}"] for l in range(n)], list(relu))
