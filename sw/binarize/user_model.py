"""A user's binarized MLP, written with eiex's binarized layers, checked and mapped onto
:class:`~eiex.sw.binarize.layers.BnnMlp` for folding into integer thresholds.

The model reads raw inputs and is, in the order torch.fx traces it::

    [Flatten] BinaryInput(threshold)
    (BinaryLinear -> BatchNorm1d [-> BinaryActivation] [-> Dropout]) per hidden layer
    BinaryLinear -> BatchNorm1d                                   the output layer: the scores

the way a Larq or Brevitas user writes a BNN. Every BinaryLinear binarizes its input (``bnn`` or
``xnor`` mode, one mode for the whole model), so the activation module is optional.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx
from torch import nn

from eiex.errors import EiexError
from eiex.sw.binarize.layers import FOLDABLE_MODES, BinaryActivation, BinaryInput, BinaryLinear, BnnMlp

LEAVES = (BinaryLinear, BinaryInput, BinaryActivation)
EXPECTED = ("[Flatten] BinaryInput, then per layer BinaryLinear -> BatchNorm1d [-> BinaryActivation] [-> Dropout], "
            "the last layer ending at its BatchNorm1d")


class _Tracer(torch.fx.Tracer):
    """Keeps eiex's binarized layers whole: their autograd functions do not trace."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, LEAVES) or super().is_leaf_module(module, qualified_name)


@dataclass
class BinaryStructure:
    """What a user's binarized MLP is made of, in order."""

    input_threshold: float
    linears: list[BinaryLinear]
    norms: list[nn.BatchNorm1d]
    mode: str

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.linears[0].in_features, *(l.out_features for l in self.linears))

    def to_bnn_mlp(self) -> BnnMlp:
        """The same network as a :class:`BnnMlp` (shared parameters copied), which folds."""
        sizes = self.sizes
        bnn = BnnMlp(sizes[1:-1], self.mode, n_inputs=sizes[0], n_classes=sizes[-1],
                     input_threshold=self.input_threshold)
        with torch.no_grad():
            for linear, norm, own_linear, own_norm in zip(self.linears, self.norms, bnn.linears, bnn.norms):
                own_linear.weight.copy_(linear.weight)
                own_norm.load_state_dict(norm.state_dict())
                own_norm.eps = norm.eps
        return bnn.eval()


def _kind(graph: torch.fx.GraphModule, node: torch.fx.Node, name: str) -> tuple[str, nn.Module | None]:
    if node.op == "call_module":
        module = graph.get_submodule(node.target)
        for cls, kind in ((BinaryInput, "input"), (BinaryLinear, "linear"), (nn.BatchNorm1d, "norm"),
                          (BinaryActivation, "activation"), (nn.Dropout, "dropout"), (nn.Flatten, "flatten"),
                          (nn.Identity, "skip")):
            if isinstance(module, cls):
                return kind, module
        raise EiexError(f"{name}: `{node.target}` is {type(module).__name__}; a binarized model is built from "
                        f"eiex's binarized layers: {EXPECTED}")
    if node.op == "call_method" and node.target in ("flatten", "view", "reshape", "size"):
        return ("flatten" if node.target != "size" else "skip"), None
    if node.op == "call_function" and node.target is torch.flatten:
        return "flatten", None
    what = getattr(node.target, "__name__", str(node.target))
    raise EiexError(f"{name}: `{node.name}` calls {what}; a binarized model is built from eiex's binarized layers: "
                    f"{EXPECTED}")


def binary_structure(model: nn.Module, name: str) -> BinaryStructure:
    """Check ``model`` against the pattern above and return its layers, or one clear error."""
    try:
        graph = torch.fx.GraphModule(model, _Tracer().trace(model))
    except Exception as e:  # a user's forward may fail to trace in many ways
        raise EiexError(f"{name} does not trace with torch.fx: {type(e).__name__}: {e}") from None
    ops = [(node, *_kind(graph, node, name)) for node in graph.graph.nodes if node.op not in ("placeholder", "output")]
    ops = [op for op in ops if op[1] != "skip"]
    kinds = [kind for _, kind, _ in ops]
    first = kinds.index("input") if "input" in kinds else -1
    if first < 0 or any(k != "flatten" for k in kinds[:first]):
        raise EiexError(f"{name}: a binarized model starts with eiex.BinaryInput(threshold) (optionally after "
                        f"Flatten): {EXPECTED}")
    linears, norms = [], []
    previous = "input"
    for node, kind, module in ops[first + 1:]:
        allowed = {"input": ("linear", "flatten"), "flatten": ("linear", "flatten"), "linear": ("norm",),
                   "norm": ("linear", "activation", "dropout"), "activation": ("linear", "dropout"),
                   "dropout": ("linear", "activation")}[previous]
        if kind not in allowed:
            raise EiexError(f"{name}: `{node.name}` ({kind}) cannot follow a {previous} layer: {EXPECTED}")
        if kind == "linear":
            linears.append(module)
        elif kind == "norm":
            norms.append(module)
        previous = kind
    if previous != "norm" or not linears:
        raise EiexError(f"{name}: the output layer ends with BinaryLinear -> BatchNorm1d, whose outputs are the "
                        f"scores: {EXPECTED}")
    modes = {l.mode for l in linears}
    if len(modes) != 1 or next(iter(modes)) not in FOLDABLE_MODES:
        raise EiexError(f"{name}: every BinaryLinear needs one mode of {', '.join(FOLDABLE_MODES)} (binary "
                        f"activations, what the XNOR engine runs), not {', '.join(sorted(modes))}")
    for l, (linear, norm) in enumerate(zip(linears, norms)):
        if l and linear.in_features != linears[l - 1].out_features:
            raise EiexError(f"{name}: BinaryLinear {l} takes {linear.in_features} inputs but layer {l - 1} gives "
                            f"{linears[l - 1].out_features}")
        if norm.num_features != linear.out_features or not (norm.affine and norm.track_running_stats):
            raise EiexError(f"{name}: the BatchNorm1d after BinaryLinear {l} needs {linear.out_features} features, "
                            "affine=True and track_running_stats=True")
    threshold = graph.get_submodule(ops[first][0].target).threshold
    return BinaryStructure(threshold, linears, norms, next(iter(modes)))
