"""Binarized layers: BinaryConnect, BNN and XNOR-Net, and the networks built from them (the
binarized MLP, the binarized CNV-style CNN, and their float twins).

Every binarization uses one sign convention, ``+1 if x >= 0 else -1`` (never 0). Gradients pass
straight through the sign: for activations only where ``|x| <= 1`` (the hardtanh estimator of
Hubara et al. 2016), for weights unchanged (BinaryConnect); latent float weights are clipped to
``[-1, 1]`` after every optimizer step (:func:`clip_latent_weights`).

Dropout acts on binary activations, as in BinaryNet: while training, an input that dropout set to 0
stays 0 in a :class:`BinaryLinear` (it is left out of the sum) instead of becoming ``sign(0) = +1``;
the straight-through gradient is unchanged. Outside training the layers apply the sign convention
exactly, which is what folding assumes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from eiex.errors import EiexError
from eiex.sw.binarize.thresholds import INPUT_THRESHOLD, BatchNormParams
from eiex.sw.data import N_CLASSES

MODES = ("binaryconnect", "bnn", "xnor")
FOLDABLE_MODES = ("bnn", "xnor")  # binary activations: what the XNOR engine runs
DEFAULT_HIDDEN = (512, 512)
#: the built-in binarized networks and their fully connected hidden widths; bnn-lfc is the size of
#: FINN's LFC network
MODEL_HIDDEN = {"bnn-mlp": DEFAULT_HIDDEN, "bnn-lfc": (1024, 1024, 1024), "bnn-cnv": (256,)}
#: the conv widths of the built-in CNNs (3x3 valid convs, a 2x2 max-pool of the bits after every
#: second conv, FINN's CNV pattern): on 28x28 inputs 28-26-24-12-10-8-4, 4 * 4 * 64 = 1024 into the FC
MODEL_CHANNELS = {"bnn-cnv": (32, 32, 64, 64)}
MODELS = tuple(MODEL_HIDDEN)
CONV_KERNEL = 3
POOL_SIZE = 2
DEFAULT_MODE = "xnor"


def sign(x: torch.Tensor) -> torch.Tensor:
    """``+1`` where ``x >= 0``, else ``-1``, in ``x``'s dtype (no gradient)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


class _SignActivation(torch.autograd.Function):
    """Sign forward; the gradient passes where ``|x| <= 1`` (hardtanh straight-through)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class _SignWeight(torch.autograd.Function):
    """Sign forward; the gradient passes unchanged (BinaryConnect's straight-through)."""

    @staticmethod
    def forward(ctx, w):
        return sign(w)

    @staticmethod
    def backward(ctx, grad):
        return grad


def binarize_activation(x: torch.Tensor) -> torch.Tensor:
    """Sign of activations with the hardtanh straight-through gradient."""
    return _SignActivation.apply(x)


def binarize_weight(w: torch.Tensor) -> torch.Tensor:
    """Sign of latent weights with the plain straight-through gradient."""
    return _SignWeight.apply(w)


def binary_inputs(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What a binarized layer multiplies: ``x`` itself in BinaryConnect mode, else its sign, where
    while training a zero (dropped) input stays 0 and the straight-through gradient is unchanged."""
    if layer.mode == "binaryconnect":
        return x
    bits = binarize_activation(x)
    return bits - (bits * (x == 0)).detach() if layer.training else bits


def _check_layer_args(layer: str, mode: str, **sizes) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise EiexError(f"{layer} {name} must be a positive integer, not {value!r}")
    if mode not in MODES:
        raise EiexError(f"binarization mode must be one of {', '.join(MODES)}, not {mode!r}")


class BinaryLinear(nn.Module):
    """A linear layer without bias whose weights (and, but for BinaryConnect, inputs) are +-1.

    Parameters
    ----------
    in_features, out_features : int
    mode : ``"binaryconnect"`` (binary weights, float inputs), ``"bnn"`` (binary weights and
        inputs: the layer takes the sign of its input, which leaves +-1 inputs as they are) or
        ``"xnor"`` (bnn, each output scaled by XNOR-Net's ``alpha = mean |W|`` of its latent row).

    Attributes
    ----------
    weight : the latent float weights ``(out_features, in_features)``, kept in ``[-1, 1]``.
    """

    def __init__(self, in_features: int, out_features: int, mode: str = "bnn"):
        super().__init__()
        _check_layer_args("BinaryLinear", mode, in_features=in_features, out_features=out_features)
        self.in_features, self.out_features, self.mode = in_features, out_features, mode
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.uniform_(self.weight, -1.0 / in_features**0.5, 1.0 / in_features**0.5)

    def alpha(self) -> torch.Tensor | None:
        """XNOR-Net's per-output scaling ``mean |W|`` of the latent rows, or None outside xnor mode."""
        return self.weight.abs().mean(dim=1) if self.mode == "xnor" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = binary_inputs(self, x) @ binarize_weight(self.weight).t()
        alpha = self.alpha()
        return y if alpha is None else y * alpha

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, mode={self.mode}"


class BinaryConv2d(nn.Module):
    """A valid (no padding), stride-1 convolution without bias whose weights (and, but for
    BinaryConnect, inputs) are +-1: the ``conv`` layer of ``xnor-image.md`` section 7.

    ``mode`` as for :class:`BinaryLinear`; in xnor mode each output channel is scaled by
    ``alpha = mean |W|`` of its latent kernel. ``weight`` holds the latent float weights
    ``(out_channels, in_channels, k, k)``, kept in ``[-1, 1]``; the image's column order
    ``(ky * k + kx) * C + ci`` is ``weight.permute(0, 2, 3, 1).reshape(M, -1)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mode: str = "bnn"):
        super().__init__()
        _check_layer_args("BinaryConv2d", mode, in_channels=in_channels, out_channels=out_channels,
                          kernel_size=kernel_size)
        self.in_channels, self.out_channels, self.kernel_size, self.mode = in_channels, out_channels, kernel_size, mode
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        bound = 1.0 / (in_channels * kernel_size * kernel_size) ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)

    def alpha(self) -> torch.Tensor | None:
        """XNOR-Net's per-channel scaling ``mean |W|`` of the latent kernels, or None outside xnor mode."""
        return self.weight.abs().mean(dim=(1, 2, 3)) if self.mode == "xnor" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.conv2d(binary_inputs(self, x), binarize_weight(self.weight))
        alpha = self.alpha()
        return y if alpha is None else y * alpha[None, :, None, None]

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"kernel_size={self.kernel_size}, mode={self.mode}")


class BinaryInput(nn.Module):
    """Raw inputs to +-1: ``+1`` where ``x >= threshold`` (a raw pixel value), else ``-1``.

    The first layer of a binarized model: the XNOR engine's input bits (``xnor-image.md``
    section 2) are these, with 1 for ``+1``.
    """

    def __init__(self, threshold: float = 128.0):
        super().__init__()
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not np.isfinite(threshold):
            raise EiexError(f"BinaryInput threshold must be a finite number, not {threshold!r}")
        self.threshold = float(threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sign(x.to(torch.float32) - self.threshold)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold:g}"


class BinaryActivation(nn.Module):
    """Sign of its input with the hardtanh straight-through gradient (a BNN activation).

    A :class:`BinaryLinear` outside BinaryConnect mode takes the sign of its input itself, so this
    module only makes the activation explicit; on +-1 inputs the two agree.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return binarize_activation(x)


@torch.no_grad()
def clip_latent_weights(model: nn.Module) -> None:
    """Clip the latent weights of every :class:`BinaryLinear` and :class:`BinaryConv2d` in ``model``
    to ``[-1, 1]``."""
    for module in model.modules():
        if isinstance(module, (BinaryLinear, BinaryConv2d)):
            module.weight.clamp_(-1.0, 1.0)


def check_dropout(dropout) -> tuple[float, float]:
    """``(p_input, p_hidden)`` checked: two rates in ``[0, 1)``."""
    try:
        rates = tuple(float(p) for p in dropout)
    except (TypeError, ValueError):
        rates = ()
    if len(rates) != 2 or not all(0.0 <= p < 1.0 for p in rates):
        raise EiexError(f"dropout must be two rates (input, hidden) from 0 up to but not including 1, not {dropout!r}")
    return rates


def _check_sizes(n_inputs: int, hidden, n_classes: int) -> tuple[int, ...]:
    sizes = (n_inputs, *hidden, n_classes)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes):
        raise EiexError(f"layer sizes must be positive integers, not {list(sizes)}")
    return sizes


class BnnMlp(nn.Module):
    """A binarized multi-layer perceptron the XNOR engine runs after folding.

    Input bit ``+1`` where the raw pixel (0..255) ``>= input_threshold``, else ``-1``; each hidden
    layer is BinaryLinear -> BatchNorm1d -> sign (the sign is taken by the next BinaryLinear);
    the output layer is BinaryLinear -> BatchNorm1d, whose outputs are the class scores.
    ``dropout``: ``(p_input, p_hidden)``, the dropout rates of the input bits and of each hidden
    layer's bits while training (BinaryNet's MNIST MLP uses 0.2 and 0.5); none by default.
    """

    def __init__(self, hidden=DEFAULT_HIDDEN, mode: str = DEFAULT_MODE, n_inputs: int = 784,
                 n_classes: int = N_CLASSES, input_threshold: float = INPUT_THRESHOLD, dropout=(0.0, 0.0)):
        super().__init__()
        if mode not in FOLDABLE_MODES:
            raise EiexError(f"bnn-mlp needs binary activations: mode must be one of "
                            f"{', '.join(FOLDABLE_MODES)}, not {mode!r}")
        self.sizes = _check_sizes(n_inputs, hidden, n_classes)
        self.mode = mode
        self.input_threshold = float(input_threshold)
        self.dropout = check_dropout(dropout)
        self.linears = nn.ModuleList(BinaryLinear(k, m, mode) for k, m in zip(self.sizes, self.sizes[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(m) for m in self.sizes[1:])
        self.drops = nn.ModuleList(nn.Dropout(self.dropout[l > 0]) for l in range(len(self.linears)))

    def binarize_input(self, raw: torch.Tensor) -> torch.Tensor:
        return sign(raw.flatten(1).to(torch.float32) - self.input_threshold)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = self.binarize_input(raw)
        for drop, linear, norm in zip(self.drops, self.linears, self.norms):
            x = norm(linear(drop(x)))  # the next BinaryLinear takes the sign
        return x

    def describe(self) -> list[int]:
        """The layer sizes, inputs first (``784, 512, 512, 10``)."""
        return list(self.sizes)

    def fold_inputs(self) -> list[tuple[np.ndarray, np.ndarray | None, BatchNormParams]]:
        """Per layer: sign weights (int8 +-1), alpha (float64, or None) and the batch norm."""
        return [(*sign_weights_and_alpha(linear, f"bnn-mlp layer {l}"), batch_norm_params(norm))
                for l, (linear, norm) in enumerate(zip(self.linears, self.norms))]


def sign_weights_and_alpha(layer: nn.Module, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A trained BinaryLinear's or BinaryConv2d's sign weights (int8 +-1, PyTorch's layout) and alpha
    (float64, or None), refusing NaN or infinite latent weights."""
    w = layer.weight.detach().cpu()
    if not torch.isfinite(w).all():
        raise EiexError(f"{what}: latent weights contain NaN or infinite values")
    alpha = layer.alpha()
    return sign(w).to(torch.int8).numpy(), None if alpha is None else alpha.detach().cpu().double().numpy()


def batch_norm_params(norm: nn.modules.batchnorm._BatchNorm) -> BatchNormParams:
    """A BatchNorm1d's or BatchNorm2d's eval-mode parameters in float64."""
    return BatchNormParams.of(norm.weight.detach().cpu().double().numpy(), norm.bias.detach().cpu().double().numpy(),
                              norm.running_mean.cpu().double().numpy(), norm.running_var.cpu().double().numpy(),
                              norm.eps)


class FloatMlp(nn.Module):
    """The float twin of :class:`BnnMlp`: the same layers with float weights and ReLU.

    It reads pixels scaled to ``[0, 1]`` (not thresholded): the float reference of the network.
    """

    def __init__(self, hidden=DEFAULT_HIDDEN, n_inputs: int = 784, n_classes: int = N_CLASSES):
        super().__init__()
        self.sizes = _check_sizes(n_inputs, hidden, n_classes)
        self.linears = nn.ModuleList(nn.Linear(k, m, bias=False) for k, m in zip(self.sizes, self.sizes[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(m) for m in self.sizes[1:])

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = raw.flatten(1).to(torch.float32) / 255.0
        for l, (linear, norm) in enumerate(zip(self.linears, self.norms)):
            x = norm(linear(x))
            if l < len(self.linears) - 1:
                x = torch.relu(x)
        return x


# ---- binarized CNNs (xnor-image.md section 7)

def cnv_maps(channels, kernel: int = CONV_KERNEL, pool: int = POOL_SIZE) -> tuple[tuple[str, int, ...], ...]:
    """FINN's CNV pattern as map steps: ``("conv", channels, kernel)`` per width, ``("pool", size)``
    after every second conv."""
    if isinstance(channels, (str, bytes)) or not hasattr(channels, "__iter__"):
        raise EiexError(f"conv widths must be a list of positive integers, not {channels!r}")
    channels = tuple(channels)
    if not channels or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in channels):
        raise EiexError(f"conv widths must be a list of positive integers, not {list(channels)}")
    steps = []
    for i, c in enumerate(channels):
        steps.append(("conv", c, kernel))
        if i % 2 == 1:
            steps.append(("pool", pool))
    return tuple(steps)


def map_shapes(in_shape, maps, what: str) -> list[tuple[int, int, int]]:
    """``(C, H, W)`` before each map step and after the last: valid stride-1 convs, non-overlapping
    pools (trailing rows and columns dropped); a step that leaves no map is refused, naming it."""
    shape = tuple(in_shape)
    if len(shape) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape):
        raise EiexError(f"{what}: the input shape must be (C, H, W), three positive integers, not {in_shape!r}")
    shapes = [shape]
    for i, step in enumerate(maps):
        c, h, w = shape
        kind, *args = step
        if kind == "conv":
            m, k = args
            if k > h or k > w:
                raise EiexError(f"{what}: conv {k}x{k} (step {i + 1}) does not fit its {h} x {w} input map; use "
                                f"fewer conv layers or larger images")
            shape = (m, h - k + 1, w - k + 1)
        elif kind == "pool":
            (p,) = args
            if p > h or p > w:
                raise EiexError(f"{what}: max-pool {p}x{p} (step {i + 1}) does not fit its {h} x {w} input map; use "
                                f"fewer conv layers or larger images")
            shape = (c, h // p, w // p)
        else:
            raise EiexError(f"{what}: map step {step!r} is neither conv nor pool")
        shapes.append(shape)
    return shapes


def cnv_notation(in_shape, maps, sizes) -> list[str]:
    """A CNN's layers in the BinaryNet/FINN notation: ``28x28x1, 32C3, 32C3, MP2, ..., FC256, FC10``
    (input ``H x W x C``, ``M`` channels of ``k x k`` convs, ``p x p`` max-pools, fully connected widths)."""
    c, h, w = in_shape
    steps = [f"{args[0]}C{args[1]}" if kind == "conv" else f"MP{args[0]}" for kind, *args in maps]
    return [f"{h}x{w}x{c}", *steps, *(f"FC{m}" for m in sizes[1:])]


class _CnvLayout:
    """What :class:`BnnCnv` and :class:`FloatCnv` share: the steps, the map shapes, the fully
    connected sizes and ``(in_channels, out_channels, kernel)`` of every conv."""

    def _layout(self, in_shape, maps, hidden, n_classes: int, name: str) -> list[tuple[int, int, int]]:
        self.maps = tuple(tuple(step) for step in maps)
        self.shapes = map_shapes(in_shape, self.maps, name)
        self.in_shape = self.shapes[0]
        c, h, w = self.shapes[-1]
        self.sizes = _check_sizes(c * h * w, hidden, n_classes)  # the fully connected part
        return [(shape[0], step[1], step[2]) for shape, step in zip(self.shapes, self.maps) if step[0] == "conv"]


class BnnCnv(nn.Module, _CnvLayout):
    """A binarized CNN (FINN's CNV pattern) the XNOR engine runs from a version-2 image after folding.

    Input bit ``+1`` where the raw pixel ``>= input_threshold``, else ``-1``, as a ``(C, H, W)`` map
    (raw inputs ``(n, C * H * W)``, ``(n, H, W)`` or ``(n, C, H, W)``). ``maps``: the steps
    ``("conv", channels, kernel)`` (BinaryConv2d -> BatchNorm2d -> sign, valid, stride 1) and
    ``("pool", size)``, which max-pools the sign bits (``max`` of +-1 is the OR of the bits, so the
    folded network is exact); then the map is flattened and ``hidden`` fully connected layers and
    the output layer follow as in :class:`BnnMlp`. ``dropout``: ``(p_input, p_hidden)`` before the
    first layer and before every later conv or fully connected layer while training.
    """

    def __init__(self, in_shape=(1, 28, 28), maps=cnv_maps(MODEL_CHANNELS["bnn-cnv"]), hidden=MODEL_HIDDEN["bnn-cnv"],
                 mode: str = DEFAULT_MODE, n_classes: int = N_CLASSES, input_threshold: float = INPUT_THRESHOLD,
                 dropout=(0.0, 0.0), name: str = "bnn-cnv"):
        super().__init__()
        if mode not in FOLDABLE_MODES:
            raise EiexError(f"{name} needs binary activations: mode must be one of {', '.join(FOLDABLE_MODES)}, "
                            f"not {mode!r}")
        convs = self._layout(in_shape, maps, hidden, n_classes, name)
        self.mode, self.name = mode, name
        self.input_threshold = float(input_threshold)
        self.dropout = check_dropout(dropout)
        self.convs = nn.ModuleList(BinaryConv2d(c_in, m, k, mode) for c_in, m, k in convs)
        self.convs.to(memory_format=torch.channels_last)  # with channels-last inputs: about 1.4x faster on CPU
        self.conv_norms = nn.ModuleList(nn.BatchNorm2d(m) for _, m, _ in convs)
        self.linears = nn.ModuleList(BinaryLinear(k, m, mode) for k, m in zip(self.sizes, self.sizes[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(m) for m in self.sizes[1:])
        layers = len(self.convs) + len(self.linears)
        self.drops = nn.ModuleList(nn.Dropout(self.dropout[l > 0]) for l in range(layers))

    def binarize_input(self, raw: torch.Tensor) -> torch.Tensor:
        return sign(raw.reshape(len(raw), *self.in_shape).to(torch.float32) - self.input_threshold)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = self.binarize_input(raw).contiguous(memory_format=torch.channels_last)
        drops, convs = iter(self.drops), iter(zip(self.convs, self.conv_norms))
        for kind, *args in self.maps:
            if kind == "conv":
                conv, norm = next(convs)
                x = norm(conv(next(drops)(x)))  # the next layer takes the sign
            else:
                x = nn.functional.max_pool2d(binarize_activation(x), args[0])  # pools the bits
        x = x.flatten(1)
        for drop, linear, norm in zip(drops, self.linears, self.norms):
            x = norm(linear(drop(x)))
        return x

    @property
    def input_map_shape(self) -> tuple[int, int, int]:
        """The input map channels-last, ``(H, W, C)``, as the image records it."""
        c, h, w = self.in_shape
        return (h, w, c)

    def describe(self) -> list[str]:
        """The layers in the BinaryNet/FINN notation (:func:`cnv_notation`)."""
        return cnv_notation(self.in_shape, self.maps, self.sizes)

    def fold_inputs(self) -> list[tuple]:
        """Per layer in execution order: ``("conv", sign kernels (M, C, k, k) int8, alpha, batch norm)``,
        ``("pool", size)`` or ``("linear", sign weights (M, K) int8, alpha, batch norm)``; the first
        fully connected layer's columns are put in the image's channels-last order (``xnor-image.md``
        section 7), PyTorch's flatten being channels-first."""
        layers, convs = [], iter(zip(self.convs, self.conv_norms))
        for l, (kind, *args) in enumerate(self.maps):
            if kind == "conv":
                conv, norm = next(convs)
                weights, alpha = sign_weights_and_alpha(conv, f"{self.name} layer {l}")
                layers.append(("conv", weights, alpha, batch_norm_params(norm)))
            else:
                layers.append(("pool", args[0]))
        c, h, w = self.shapes[-1]
        for i, (linear, norm) in enumerate(zip(self.linears, self.norms)):
            weights, alpha = sign_weights_and_alpha(linear, f"{self.name} layer {len(self.maps) + i}")
            if i == 0:
                weights = weights.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(len(weights), -1)
            layers.append(("linear", weights, alpha, batch_norm_params(norm)))
        return layers


class FloatCnv(nn.Module, _CnvLayout):
    """The float twin of :class:`BnnCnv`: the same layers with float weights and ReLU (max-pool after
    the ReLU), reading pixels scaled to ``[0, 1]``."""

    def __init__(self, in_shape=(1, 28, 28), maps=cnv_maps(MODEL_CHANNELS["bnn-cnv"]), hidden=MODEL_HIDDEN["bnn-cnv"],
                 n_classes: int = N_CLASSES, name: str = "bnn-cnv"):
        super().__init__()
        convs = self._layout(in_shape, maps, hidden, n_classes, name)
        self.convs = nn.ModuleList(nn.Conv2d(c_in, m, k, bias=False) for c_in, m, k in convs)
        self.convs.to(memory_format=torch.channels_last)
        self.conv_norms = nn.ModuleList(nn.BatchNorm2d(m) for _, m, _ in convs)
        self.linears = nn.ModuleList(nn.Linear(k, m, bias=False) for k, m in zip(self.sizes, self.sizes[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(m) for m in self.sizes[1:])

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = raw.reshape(len(raw), *self.in_shape).to(torch.float32) / 255.0
        x = x.contiguous(memory_format=torch.channels_last)
        convs = iter(zip(self.convs, self.conv_norms))
        for kind, *args in self.maps:
            if kind == "conv":
                conv, norm = next(convs)
                x = torch.relu(norm(conv(x)))
            else:
                x = nn.functional.max_pool2d(x, args[0])
        x = x.flatten(1)
        for l, (linear, norm) in enumerate(zip(self.linears, self.norms)):
            x = norm(linear(x))
            if l < len(self.linears) - 1:
                x = torch.relu(x)
        return x
