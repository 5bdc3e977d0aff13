"""The networks of the Deep Compression paper's MNIST experiments.

``lenet300`` is LeNet-300-100 (784-300-100-10, ReLU). ``lenet5`` is Caffe's LeNet-5 as Han et al.
used it (431K parameters): conv 20@5x5, max-pool 2, conv 50@5x5, max-pool 2, fc 800-500, ReLU,
fc 500-10. Caffe's LeNet has no non-linearity after its convolutions and eiex keeps that.

Every model lists its weight layers in execution order; weight ``l`` and bias ``l`` are saved as
``w{l}``, ``b{l}`` (float32, ``w`` shaped ``(out, in)`` or ``(out, in, kh, kw)``).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from eiex.errors import EiexError


class CompressibleModel(nn.Module):
    """A model whose weight layers are named, ordered and exchangeable as ``w0, b0, ...``."""

    #: how the forward pass is built, recorded in report.json so others can rerun the npz files
    architecture: list[dict]
    #: conv layer -> the layer that reads its output channels (for filter pruning)
    successors: dict[str, str] = {}

    def layers(self) -> "OrderedDict[str, nn.Module]":
        raise NotImplementedError

    def state_npz(self) -> dict[str, np.ndarray]:
        arrays = {}
        for l, layer in enumerate(self.layers().values()):
            arrays[f"w{l}"] = layer.weight.detach().cpu().numpy().astype(np.float32)
            arrays[f"b{l}"] = layer.bias.detach().cpu().numpy().astype(np.float32)
        return arrays

    def load_npz(self, arrays: dict[str, np.ndarray], source: str) -> None:
        """Load ``w0, b0, ...``; wrong keys, shapes or non-finite values are refused."""
        expected = {}
        for l, layer in enumerate(self.layers().values()):
            expected[f"w{l}"] = tuple(layer.weight.shape)
            expected[f"b{l}"] = tuple(layer.bias.shape)
        missing = sorted(set(expected) - set(arrays))
        if missing:
            raise EiexError(f"{source} lacks {', '.join(missing)} (this model needs {', '.join(expected)})")
        for key, shape in expected.items():
            value = np.asarray(arrays[key])
            if value.shape != shape:
                raise EiexError(f"{source}: {key} has shape {value.shape}, the model needs {shape}")
            if not np.issubdtype(value.dtype, np.floating) and not np.issubdtype(value.dtype, np.integer):
                raise EiexError(f"{source}: {key} is not numeric ({value.dtype})")
            if not np.all(np.isfinite(value)):
                raise EiexError(f"{source}: {key} contains NaN or infinite values")
        with torch.no_grad():
            for l, layer in enumerate(self.layers().values()):
                layer.weight.copy_(torch.from_numpy(np.asarray(arrays[f"w{l}"], dtype=np.float32)))
                layer.bias.copy_(torch.from_numpy(np.asarray(arrays[f"b{l}"], dtype=np.float32)))


class LeNet300(CompressibleModel):
    architecture = [
        {"key": "w0", "op": "linear", "in": 784, "out": 300}, {"op": "relu"},
        {"key": "w1", "op": "linear", "in": 300, "out": 100}, {"op": "relu"},
        {"key": "w2", "op": "linear", "in": 100, "out": 10},
    ]

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, 10)

    def layers(self):
        return OrderedDict(fc1=self.fc1, fc2=self.fc2, fc3=self.fc3)

    def forward(self, x):
        x = x.flatten(1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(CompressibleModel):
    architecture = [
        {"key": "w0", "op": "conv2d", "in": 1, "out": 20, "kernel": 5, "stride": 1, "padding": 0},
        {"op": "maxpool2d", "kernel": 2, "stride": 2},
        {"key": "w1", "op": "conv2d", "in": 20, "out": 50, "kernel": 5, "stride": 1, "padding": 0},
        {"op": "maxpool2d", "kernel": 2, "stride": 2},
        {"op": "flatten", "order": "channel, row, column"},
        {"key": "w2", "op": "linear", "in": 800, "out": 500}, {"op": "relu"},
        {"key": "w3", "op": "linear", "in": 500, "out": 10},
    ]
    successors = {"conv1": "conv2", "conv2": "fc1"}

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)

    def layers(self):
        return OrderedDict(conv1=self.conv1, conv2=self.conv2, fc1=self.fc1, fc2=self.fc2)

    def forward(self, x):
        x = nn.functional.max_pool2d(self.conv1(x), 2)
        x = nn.functional.max_pool2d(self.conv2(x), 2)
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


MODELS = {"lenet300": LeNet300, "lenet5": LeNet5}


def build_model(name: str) -> CompressibleModel:
    try:
        return MODELS[name]()
    except KeyError:
        raise EiexError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None

