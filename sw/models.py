"""The networks of the Deep Compression paper's MNIST experiments.

``lenet300`` is LeNet-300-100 (784-300-100-10, ReLU). ``lenet5`` is Caffe's LeNet-5 as Han et al.
used it (431K parameters): conv 20@5x5, max-pool 2, conv 50@5x5, max-pool 2, fc 800-500, ReLU,
fc 500-10. Caffe's LeNet has no non-linearity after its convolutions and eiex keeps that.

Every model lists its weight layers in execution order; weight ``l`` and bias ``l`` are saved as
``w{l}``, ``b{l}`` (float32, ``w`` shaped ``(out, in)`` or ``(out, in, kh, kw)``).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from eiex.errors import EiexError
from eiex.sw.npz import read_npz


class CompressibleModel(nn.Module):
    """A model whose weight layers are named, ordered and exchangeable as ``w0, b0, ...``."""

    #: how the forward pass is built, recorded in report.json so others can rerun the npz files
    architecture: list[dict]
    #: conv layer -> the layer that reads its output channels (for filter pruning)
    successors: dict[str, str] = {}

    def layers(self) -> "OrderedDict[str, nn.Module]":
        raise NotImplementedError

    def named_tensors(self) -> dict[str, torch.Tensor]:
        """Every array the npz files hold, by key: ``w{l}``, ``b{l}`` per weight layer."""
        tensors = {}
        for l, layer in enumerate(self.layers().values()):
            tensors[f"w{l}"], tensors[f"b{l}"] = layer.weight, layer.bias
        return tensors

    def state_npz(self) -> dict[str, np.ndarray]:
        return {k: t.detach().cpu().numpy().astype(np.float32) for k, t in self.named_tensors().items()}

    def load_npz(self, arrays: dict[str, np.ndarray], source: str) -> None:
        """Load ``w0, b0, ...``; wrong keys, shapes or non-finite values are refused."""
        tensors = self.named_tensors()
        missing = [k for k in tensors if k not in arrays]
        if missing:
            raise EiexError(f"{source} lacks {', '.join(missing)} (this model needs {', '.join(tensors)})")
        for key, tensor in tensors.items():
            value = np.asarray(arrays[key])
            if value.shape != tuple(tensor.shape):
                raise EiexError(f"{source}: {key} has shape {value.shape}, the model needs {tuple(tensor.shape)}")
            if not np.issubdtype(value.dtype, np.floating) and not np.issubdtype(value.dtype, np.integer):
                raise EiexError(f"{source}: {key} is not numeric ({value.dtype})")
            if not np.all(np.isfinite(value)):
                raise EiexError(f"{source}: {key} contains NaN or infinite values")
        with torch.no_grad():
            for key, tensor in tensors.items():
                tensor.copy_(torch.from_numpy(np.asarray(arrays[key], dtype=np.float32)))

    def load_state_file(self, path: str | Path) -> None:
        """Trained weights from ``STATE.pt`` (a ``state_dict``, as ``torch.save`` writes it) or from
        an npz of eiex's keys; the first key that does not match is named, with both shapes."""
        path = Path(path)
        if not path.is_file():
            raise EiexError(f"weights file {path} not found")
        if path.suffix == ".npz":
            self.load_npz(read_npz(path), str(path))
            return
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many kinds for a file that is not a state_dict
            raise EiexError(f"cannot read {path} as a PyTorch state_dict ({type(e).__name__}); save one with "
                            "torch.save(model.state_dict(), path)") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise EiexError(f"{path} does not hold a state_dict (a dict of tensors)")
        self.load_state(state, str(path))

    def state_target(self) -> nn.Module:
        """The module whose ``state_dict`` keys a weights file uses."""
        return self

    def load_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        own = self.state_target().state_dict()
        for key, tensor in own.items():
            if key not in state:
                if key.endswith(".bias") and key[: -len("bias")] + "weight" in state:
                    continue  # a layer built without bias gets eiex's fixed zero bias
                raise EiexError(f"{source} lacks {key} (shape {tuple(tensor.shape)}) that the model has")
            if tuple(state[key].shape) != tuple(tensor.shape):
                raise EiexError(f"{source}: {key} has shape {tuple(state[key].shape)}, "
                                f"the model needs {tuple(tensor.shape)}")
            if state[key].is_floating_point() and not torch.isfinite(state[key]).all():
                raise EiexError(f"{source}: {key} contains NaN or infinite values")
        unexpected = [k for k in state if k not in own]
        if unexpected:
            raise EiexError(f"{source} holds {unexpected[0]} (shape {tuple(state[unexpected[0]].shape)}), "
                            "which the model does not have")
        with torch.no_grad():
            for key, tensor in own.items():
                if key in state:
                    tensor.copy_(state[key])


class LeNet300(CompressibleModel):
    architecture = [
        {"name": "fc1", "key": "w0", "op": "linear", "in": 784, "out": 300}, {"op": "relu"},
        {"name": "fc2", "key": "w1", "op": "linear", "in": 300, "out": 100}, {"op": "relu"},
        {"name": "fc3", "key": "w2", "op": "linear", "in": 100, "out": 10},
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
        {"name": "conv1", "key": "w0", "op": "conv2d", "in": 1, "out": 20, "kernel": 5, "stride": 1, "padding": 0},
        {"op": "maxpool2d", "kernel": 2, "stride": 2},
        {"name": "conv2", "key": "w1", "op": "conv2d", "in": 20, "out": 50, "kernel": 5, "stride": 1, "padding": 0},
        {"op": "maxpool2d", "kernel": 2, "stride": 2},
        {"op": "flatten", "order": "channel, row, column"},
        {"name": "fc1", "key": "w2", "op": "linear", "in": 800, "out": 500}, {"op": "relu"},
        {"name": "fc2", "key": "w3", "op": "linear", "in": 500, "out": 10},
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
        raise EiexError(f"unknown model {name!r}; choose from {', '.join(MODELS)} or give FILE.py:FUNCTION") from None

