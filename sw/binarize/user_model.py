"""A user's binarized network, written with eiex's binarized layers, checked and mapped onto
:class:`~eiex.sw.binarize.layers.BnnMlp` or :class:`~eiex.sw.binarize.layers.BnnCnv` for folding
into integer thresholds.

The model reads raw inputs and is, in the order torch.fx traces it::

    [Flatten] BinaryInput(threshold)
    (BinaryConv2d -> BatchNorm2d [-> BinaryActivation] [-> MaxPool2d(p)] [-> Dropout]) per conv layer,
    then Flatten                                                  the conv part, if any
    (BinaryLinear -> BatchNorm1d [-> BinaryActivation] [-> Dropout]) per hidden layer
    BinaryLinear -> BatchNorm1d                                   the output layer: the scores

the way a Larq or Brevitas user writes a BNN. Every binarized layer takes the sign of its input
(``bnn`` or ``xnor`` mode, one mode for the whole model), so the activation module is optional. A
``MaxPool2d`` pools non-overlapping ``p x p`` windows (stride = kernel size, no padding); after the
batch norm or the activation it pools the bits exactly, the sign being monotone (the sign of a
maximum is the maximum of the signs, the OR of the bits). A model with conv layers reads
``(n, C, H, W)`` pixels; :class:`BinaryStructure` records the input shape it was checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.fx
from torch import nn

from eiex.errors import EiexError
from eiex.sw.binarize.layers import (FOLDABLE_MODES, BinaryActivation, BinaryConv2d, BinaryInput, BinaryLinear, BnnCnv,
                                     BnnMlp, FloatCnv, FloatMlp, cnv_notation, map_shapes)

LEAVES = (BinaryLinear, BinaryConv2d, BinaryInput, BinaryActivation)
EXPECTED = ("[Flatten] BinaryInput, then per conv layer BinaryConv2d -> BatchNorm2d [-> BinaryActivation] "
            "[-> MaxPool2d] [-> Dropout] and a Flatten after the last, then per layer BinaryLinear -> BatchNorm1d "
            "[-> BinaryActivation] [-> Dropout], the last layer ending at its BatchNorm1d")
#: what may follow each kind of module in the conv part (``maps``) and in the fully connected part
FOLLOWS = {
    "maps": {"input": ("conv", "linear", "flatten"), "conv": ("norm2d",),
             "norm2d": ("conv", "activation", "pool", "dropout", "flatten"),
             "activation": ("conv", "pool", "dropout", "flatten"), "pool": ("conv", "dropout", "flatten"),
             "dropout": ("conv", "activation", "flatten")},
    "fc": {"flatten": ("linear", "flatten"), "linear": ("norm",),
           "norm": ("linear", "activation", "dropout"), "activation": ("linear", "dropout"),
           "dropout": ("linear", "activation")},
}


class _Tracer(torch.fx.Tracer):
    """Keeps eiex's binarized layers whole: their autograd functions do not trace."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, LEAVES) or super().is_leaf_module(module, qualified_name)


@dataclass
class BinaryStructure:
    """What a user's binarized network is made of, in order: ``maps`` holds the conv part as
    ``("conv", BinaryConv2d, BatchNorm2d)`` and ``("pool", size)`` steps, read from ``in_shape``
    ``(C, H, W)`` (None without conv layers)."""

    input_threshold: float
    linears: list[BinaryLinear]
    norms: list[nn.BatchNorm1d]
    mode: str
    maps: list = field(default_factory=list)
    in_shape: tuple[int, int, int] | None = None

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.linears[0].in_features, *(l.out_features for l in self.linears))

    @property
    def steps(self) -> tuple[tuple, ...]:
        """The conv part as :class:`BnnCnv` takes it: ``("conv", channels, kernel)``, ``("pool", size)``."""
        return tuple(("conv", step[1].out_channels, step[1].kernel_size) if step[0] == "conv" else step
                     for step in self.maps)

    def describe(self) -> list:
        """The report's ``layers``: an MLP's sizes, a CNN's notation (``28x28x1, 16C3, MP2, ..., FC10``)."""
        return cnv_notation(self.in_shape, self.steps, self.sizes) if self.maps else list(self.sizes)

    def to_foldable(self) -> BnnMlp | BnnCnv:
        """The same network as the model eiex folds (:meth:`to_bnn_mlp` or :meth:`to_bnn_cnv`)."""
        return self.to_bnn_cnv() if self.maps else self.to_bnn_mlp()

    def float_twin(self) -> FloatMlp | FloatCnv:
        """A float network of the same shape (for ``float_accuracy``)."""
        sizes = self.sizes
        if self.maps:
            return FloatCnv(self.in_shape, self.steps, sizes[1:-1], sizes[-1], name="the model")
        return FloatMlp(sizes[1:-1], n_inputs=sizes[0], n_classes=sizes[-1])

    def to_bnn_mlp(self) -> BnnMlp:
        """The same network as a :class:`BnnMlp` (shared parameters copied), which folds."""
        sizes = self.sizes
        bnn = BnnMlp(sizes[1:-1], self.mode, n_inputs=sizes[0], n_classes=sizes[-1],
                     input_threshold=self.input_threshold)
        _copy(zip(self.linears, self.norms), zip(bnn.linears, bnn.norms))
        return bnn.eval()

    def to_bnn_cnv(self) -> BnnCnv:
        """The same network as a :class:`BnnCnv` (shared parameters copied), which folds."""
        sizes = self.sizes
        bnn = BnnCnv(self.in_shape, self.steps, sizes[1:-1], self.mode, n_classes=sizes[-1],
                     input_threshold=self.input_threshold, name="the model")
        _copy([step[1:] for step in self.maps if step[0] == "conv"], zip(bnn.convs, bnn.conv_norms))
        _copy(zip(self.linears, self.norms), zip(bnn.linears, bnn.norms))
        return bnn.eval()


@torch.no_grad()
def _copy(theirs, ours) -> None:
    for (layer, norm), (own_layer, own_norm) in zip(theirs, ours):
        own_layer.weight.copy_(layer.weight)
        own_norm.load_state_dict(norm.state_dict())
        own_norm.eps = norm.eps


def _pool_size(module: nn.MaxPool2d, where: str) -> int:
    """``p`` of a MaxPool2d over non-overlapping ``p x p`` windows, or one line saying what differs."""
    def square(value):
        value = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
        return value[0] if len(value) == 2 and value[0] == value[1] else None

    size = square(module.kernel_size)
    if size is None or square(module.stride) != size or square(module.padding) != 0 or square(module.dilation) != 1 \
            or module.ceil_mode or module.return_indices:
        raise EiexError(f"{where} is {module}; the XNOR image pools non-overlapping p x p windows: MaxPool2d(p) with "
                        f"stride p (the default), no padding, dilation 1, ceil_mode=False")
    return int(size)


def _kind(graph: torch.fx.GraphModule, node: torch.fx.Node, name: str) -> tuple[str, nn.Module | None]:
    if node.op == "call_module":
        module = graph.get_submodule(node.target)
        for cls, kind in ((BinaryInput, "input"), (BinaryLinear, "linear"), (BinaryConv2d, "conv"),
                          (nn.BatchNorm1d, "norm"), (nn.BatchNorm2d, "norm2d"), (BinaryActivation, "activation"),
                          (nn.MaxPool2d, "pool"), ((nn.Dropout, nn.Dropout2d), "dropout"), (nn.Flatten, "flatten"),
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


def binary_structure(model: nn.Module, name: str, in_shape=None) -> BinaryStructure:
    """Check ``model`` against the pattern above and return its layers, or one clear error.
    ``in_shape``: ``(C, H, W)`` of the images the model reads, needed when it has conv layers."""
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
    linears, norms, maps = [], [], []
    previous, part = "input", "maps"
    for node, kind, module in ops[first + 1:]:
        if kind not in FOLLOWS[part][previous]:
            raise EiexError(f"{name}: `{node.name}` ({kind}) cannot follow a {previous} layer: {EXPECTED}")
        if kind in ("linear", "flatten"):
            part = "fc"
        if kind == "linear":
            linears.append(module)
        elif kind == "norm":
            norms.append(module)
        elif kind == "conv":
            maps.append(["conv", module, None])
        elif kind == "norm2d":
            maps[-1][2] = module
        elif kind == "pool":
            maps.append(("pool", _pool_size(module, f"{name}: `{node.target}`")))
        previous = kind
    if previous != "norm" or not linears:
        raise EiexError(f"{name}: the output layer ends with BinaryLinear -> BatchNorm1d, whose outputs are the "
                        f"scores: {EXPECTED}")
    maps = [tuple(step) for step in maps]
    convs = [step[1] for step in maps if step[0] == "conv"]
    modes = {layer.mode for layer in convs + linears}
    if len(modes) != 1 or next(iter(modes)) not in FOLDABLE_MODES:
        raise EiexError(f"{name}: every BinaryLinear and BinaryConv2d needs one mode of {', '.join(FOLDABLE_MODES)} "
                        f"(binary activations, what the XNOR engine runs), not {', '.join(sorted(modes))}")
    if maps:
        _check_maps(name, maps, linears[0], in_shape)
    for l, (linear, norm) in enumerate(zip(linears, norms)):
        if l and linear.in_features != linears[l - 1].out_features:
            raise EiexError(f"{name}: BinaryLinear {l} takes {linear.in_features} inputs but layer {l - 1} gives "
                            f"{linears[l - 1].out_features}")
        if norm.num_features != linear.out_features or not (norm.affine and norm.track_running_stats):
            raise EiexError(f"{name}: the BatchNorm1d after BinaryLinear {l} needs {linear.out_features} features, "
                            "affine=True and track_running_stats=True")
    threshold = graph.get_submodule(ops[first][0].target).threshold
    return BinaryStructure(threshold, linears, norms, next(iter(modes)), maps,
                           tuple(in_shape) if maps else None)


def _check_maps(name: str, maps: list, first_linear: BinaryLinear, in_shape) -> None:
    """The conv part against the images it reads: channels, batch norms, map sizes, and the first
    fully connected layer's inputs against the flattened map."""
    if in_shape is None:
        raise EiexError(f"{name} has conv layers, which read images (n, C, H, W); the data's samples are not images")
    steps = [("conv", step[1].out_channels, step[1].kernel_size) if step[0] == "conv" else step for step in maps]
    shapes = map_shapes(in_shape, steps, name)
    for c, (kind, *step) in enumerate(maps):
        if kind != "conv":
            continue
        conv, norm = step
        if conv.in_channels != shapes[c][0]:
            raise EiexError(f"{name}: BinaryConv2d({conv.in_channels}, {conv.out_channels}, {conv.kernel_size}) takes "
                            f"{conv.in_channels} channels but its input map has {shapes[c][0]} (input shape C, H, W "
                            f"{list(in_shape)})")
        if norm.num_features != conv.out_channels or not (norm.affine and norm.track_running_stats):
            raise EiexError(f"{name}: the BatchNorm2d after BinaryConv2d({conv.in_channels}, {conv.out_channels}, "
                            f"{conv.kernel_size}) needs {conv.out_channels} features, affine=True and "
                            f"track_running_stats=True")
    c, h, w = shapes[-1]
    if first_linear.in_features != c * h * w:
        raise EiexError(f"{name}: BinaryLinear 0 takes {first_linear.in_features} inputs but the flattened map gives "
                        f"{c * h * w} ({c} x {h} x {w}, from input shape C, H, W {list(in_shape)})")
