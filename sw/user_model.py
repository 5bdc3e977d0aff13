"""A user's PyTorch model as a compressible model: loaded from ``FILE.py:FUNCTION``, traced with
torch.fx, checked layer by layer, and given the named, ordered weight layers the pipeline prunes
and shares.

Supported: Linear, Conv2d, BatchNorm1d/2d, ReLU, MaxPool2d, AvgPool2d, Flatten and Dropout (as
modules, or but for dropout as their ``torch`` / ``torch.nn.functional`` calls), in any order
torch.fx traces.
Batch norm that directly follows a Linear or Conv2d layer (dropout between them allowed) is folded
into that layer's weights and bias after dense training, exactly, so pruning and weight sharing see
the weights the hardware will hold. Batch norm anywhere else stays a float layer of its own.
"""

from __future__ import annotations

import builtins
import copy
import importlib.util
import operator
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.fx
from torch import nn
from torch.nn import functional as F

from eiex.errors import EiexError
from eiex.sw.models import CompressibleModel

WEIGHT_OPS = ("linear", "conv2d")
MODULE_OPS = {
    nn.Linear: "linear", nn.Conv2d: "conv2d", nn.BatchNorm1d: "batchnorm", nn.BatchNorm2d: "batchnorm",
    nn.ReLU: "relu", nn.MaxPool2d: "maxpool2d", nn.AvgPool2d: "avgpool2d", nn.Flatten: "flatten",
    nn.Dropout: "dropout", nn.Identity: "identity",
}
FUNCTION_OPS = {
    torch.relu: "relu", F.relu: "relu", torch.flatten: "flatten", F.max_pool2d: "maxpool2d",
    F.avg_pool2d: "avgpool2d",
}
METHOD_OPS = {"relu": "relu", "flatten": "flatten", "view": "flatten", "reshape": "flatten", "size": "size"}
#: ops a pruned filter's zeros pass through unchanged, on the way to the layer that reads them
ZERO_PRESERVING = ("relu", "maxpool2d", "avgpool2d", "flatten", "dropout", "identity")
SUPPORTED = "Linear, Conv2d, BatchNorm1d/2d, ReLU, MaxPool2d, AvgPool2d, Flatten, Dropout"


def is_model_file(spec: str) -> bool:
    return ":" in spec and spec.rpartition(":")[0].endswith(".py")


def load_model_function(spec: str) -> nn.Module:
    """Call ``FUNCTION`` of ``FILE.py`` (``FILE.py:FUNCTION``) and return the module it builds."""
    path_text, _, function = spec.rpartition(":")
    if not is_model_file(spec) or not function.isidentifier():
        raise EiexError(f"--model {spec!r}: give a built-in model name or FILE.py:FUNCTION")
    path = Path(path_text)
    if not path.is_file():
        raise EiexError(f"model file {path} not found")
    module_name = f"eiex_user_model_{abs(hash(path.resolve()))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look their module up here
    try:
        loader_spec.loader.exec_module(module)
    except Exception as e:  # the user's file may raise anything while it loads
        del sys.modules[module_name]
        raise EiexError(f"cannot load {path}: {type(e).__name__}: {_first_line(e)}") from None
    build = getattr(module, function, None)
    if build is None:
        raise EiexError(f"{path} does not define {function}")
    if not callable(build):
        raise EiexError(f"{path}: {function} is a {type(build).__name__}, not a function")
    try:
        model = build()
    except Exception as e:
        raise EiexError(f"{spec} raised {type(e).__name__}: {_first_line(e)}") from None
    if not isinstance(model, nn.Module):
        raise EiexError(f"{spec} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "(no message)"


@dataclass(frozen=True)
class Op:
    """One step of the traced forward pass: ``kind`` is an entry of the op tables above."""

    node: torch.fx.Node
    kind: str
    name: str  # the module's qualified name, or the node's for a function call
    module: nn.Module | None = None


def trace(model: nn.Module, name: str) -> torch.fx.GraphModule:
    try:
        return torch.fx.symbolic_trace(model)
    except Exception as e:
        raise EiexError(f"{name} does not trace with torch.fx: {type(e).__name__}: {_first_line(e)}") from None


def graph_ops(graph: torch.fx.GraphModule, name: str) -> list[Op]:
    """The forward pass as ops, every node checked against what eiex compresses."""
    ops, called = [], set()
    for node in graph.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op == "call_module":
            module = graph.get_submodule(node.target)
            kind = MODULE_OPS.get(type(module))
            if kind is None:
                raise EiexError(f"{name}: `{node.target}` is {type(module).__name__}, which eiex does not compress "
                                f"(supported: {SUPPORTED})")
            if node.target in called and kind in WEIGHT_OPS + ("batchnorm",):
                raise EiexError(f"{name}: `{node.target}` is used twice in the forward pass; eiex needs one use "
                                "per layer")
            called.add(node.target)
            ops.append(Op(node, kind, node.target, module))
        elif node.op == "call_function" and node.target is F.dropout:
            raise EiexError(f"{name}: `{node.name}` calls torch.nn.functional.dropout, which torch.fx traces with "
                            "its training flag frozen; use an nn.Dropout module")
        elif node.op == "call_function" and node.target in FUNCTION_OPS:
            ops.append(Op(node, FUNCTION_OPS[node.target], node.name))
        elif node.op == "call_function" and (node.target is operator.getitem and _reads_size(node)
                                             or node.target is builtins.getattr and node.args[1:] == ("shape",)):
            ops.append(Op(node, "size", node.name))
        elif node.op == "call_method" and node.target in METHOD_OPS:
            ops.append(Op(node, METHOD_OPS[node.target], node.name))
        else:
            what = getattr(node.target, "__name__", str(node.target))
            raise EiexError(f"{name}: `{node.name}` calls {what} ({node.op}), which eiex does not compress "
                            f"(supported: {SUPPORTED})")
    for op in ops:
        if op.kind == "batchnorm" and not (op.module.affine and op.module.track_running_stats):
            raise EiexError(f"{name}: batch norm `{op.name}` needs affine=True and track_running_stats=True")
    if not any(op.kind in WEIGHT_OPS for op in ops):
        raise EiexError(f"{name} has no Linear or Conv2d layer to compress")
    return ops


def _is_size(node: torch.fx.Node) -> bool:
    """``x.size()`` or ``x.shape``: reads a tensor's shape, not its values."""
    return (node.op == "call_method" and node.target == "size"
            or node.op == "call_function" and node.target is builtins.getattr and node.args[1:] == ("shape",))


def _reads_size(node: torch.fx.Node) -> bool:
    source = node.args[0]
    return isinstance(source, torch.fx.Node) and _is_size(source)


def _single_user(node: torch.fx.Node) -> torch.fx.Node | None:
    """The one node that reads ``node``'s values (shape reads aside), or None."""
    users = [u for u in node.users if not _is_size(u)]
    return users[0] if len(users) == 1 else None


class TracedModel(CompressibleModel):
    """A user's model, traced; its weight layers in execution order are ``w0, b0, w1, b1, ...``,
    its batch norms (those not folded) ``n0_gamma, n0_beta, n0_mean, n0_var, ...``."""

    def __init__(self, model: nn.Module, name: str):
        super().__init__()
        self.name = name
        self.net = trace(copy.deepcopy(model), name)  # the caller's module stays as it was
        self._refresh()
        for layer in self.layers().values():
            if layer.bias is None:  # a fixed zero bias keeps every layer's w/b pair uniform
                layer.bias = nn.Parameter(torch.zeros(layer.weight.shape[0]), requires_grad=False)

    def _refresh(self) -> None:
        self.ops = graph_ops(self.net, self.name)
        self.architecture = self._architecture()
        self.successors = self._successors()

    def forward(self, x):
        return self.net(x)

    def state_target(self) -> nn.Module:
        return self.net  # the traced copy keeps the user's module paths, so state_dict keys match

    def layers(self) -> "OrderedDict[str, nn.Module]":
        return OrderedDict((op.name, op.module) for op in self.ops if op.kind in WEIGHT_OPS)

    def batch_norms(self) -> "OrderedDict[str, nn.Module]":
        return OrderedDict((op.name, op.module) for op in self.ops if op.kind == "batchnorm")

    def named_tensors(self) -> dict[str, torch.Tensor]:
        tensors = super().named_tensors()
        for k, bn in enumerate(self.batch_norms().values()):
            tensors.update({f"n{k}_gamma": bn.weight, f"n{k}_beta": bn.bias, f"n{k}_mean": bn.running_mean,
                            f"n{k}_var": bn.running_var})
        return tensors

    def _architecture(self) -> list[dict]:
        keys = {name: f"w{l}" for l, name in enumerate(self.layers())}
        norms = {name: f"n{k}" for k, name in enumerate(self.batch_norms())}
        entries = []
        for op in self.ops:
            m = op.module
            if op.kind in ("size", "identity"):
                continue
            entry = {"name": op.name, "op": op.kind}
            if op.kind == "linear":
                entry.update(key=keys[op.name], **{"in": m.in_features, "out": m.out_features})
            elif op.kind == "conv2d":
                entry.update(key=keys[op.name], **{"in": m.in_channels, "out": m.out_channels},
                             kernel=list(m.kernel_size), stride=list(m.stride), padding=m.padding
                             if isinstance(m.padding, str) else list(m.padding), groups=m.groups)
            elif op.kind == "batchnorm":
                entry.update(key=norms[op.name], features=m.num_features, eps=m.eps)
            elif op.kind in ("maxpool2d", "avgpool2d") and m is not None:
                entry.update(kernel=m.kernel_size, stride=m.stride, padding=m.padding)
            elif op.kind == "flatten" and m is not None:
                entry.update(start_dim=m.start_dim)
            elif m is None:  # a function or method call: its arguments after the input, as given
                entry.update(args=[a for a in op.node.args[1:] if isinstance(a, (int, float, str, bool))],
                             **{k: v for k, v in op.node.kwargs.items() if isinstance(v, (int, float, str, bool))})
            entries.append(entry)
        return entries

    def _successors(self) -> dict[str, str]:
        """Conv layer -> the weight layer that reads its channels through zero-preserving ops only."""
        kinds = {op.node: op for op in self.ops}
        successors = {}
        for op in self.ops:
            if op.kind != "conv2d":
                continue
            node = _single_user(op.node)
            while node in kinds and kinds[node].kind in ZERO_PRESERVING:
                node = _single_user(node)
            if node in kinds and kinds[node].kind in WEIGHT_OPS:
                successors[op.name] = kinds[node].name
        return successors

    @torch.no_grad()
    def fold_batch_norms(self) -> list[str]:
        """Fold every batch norm that directly follows a Linear or Conv2d layer (dropout between
        allowed) into that layer: ``W' = s W``, ``b' = s (b - mean) + beta`` with
        ``s = gamma / sqrt(var + eps)`` per output. Returns the names folded."""
        kinds = {op.node: op for op in self.ops}
        folded = []
        for op in [o for o in self.ops if o.kind == "batchnorm"]:
            source = op.node.args[0]
            while source in kinds and kinds[source].kind == "dropout" and _single_user(source) is not None:
                source = kinds[source].node.args[0]
            producer = kinds.get(source)
            if producer is None or producer.kind not in WEIGHT_OPS or _single_user(source) is None:
                continue
            bn, layer = op.module, producer.module
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            layer.weight.mul_(scale.view(-1, *([1] * (layer.weight.dim() - 1))))
            layer.bias.copy_(scale * (layer.bias - bn.running_mean) + bn.bias)
            layer.bias.requires_grad_(True)
            op.node.replace_all_uses_with(op.node.args[0])
            self.net.graph.erase_node(op.node)
            folded.append(op.name)
        if folded:
            self.net.delete_all_unused_submodules()
            self.net.recompile()
            self._refresh()
        return folded
