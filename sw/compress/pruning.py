"""Magnitude pruning with retraining (Han et al., "Learning both Weights and Connections", 2015).

A layer's threshold is its quality parameter times the standard deviation of its trained dense
weights. The iterative schedule raises the threshold in equal steps up to that value and retrains
after every step with the masks enforced: pruned weights stay exactly zero, their gradients are
zeroed, and survivors keep their trained values. Masks only ever lose entries.

Filter pruning (Li et al., "Pruning Filters for Efficient ConvNets", 2017) removes a convolution's
whole output filters of smallest L1 norm, with their biases and the input slices of the layer that
reads those channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from eiex.errors import EiexError
from eiex.sw.models import CompressibleModel
from eiex.sw.train import Tensors, TrainConfig, accuracy, fit


@dataclass
class Masks:
    """Per layer: which weights survive, and for filter pruning which biases survive."""

    weight: dict[str, torch.Tensor]
    bias: dict[str, torch.Tensor]

    @classmethod
    def dense(cls, model: CompressibleModel) -> "Masks":
        layers = model.layers()
        return cls(
            weight={n: torch.ones_like(l.weight, dtype=torch.bool) for n, l in layers.items()},
            bias={n: torch.ones_like(l.bias, dtype=torch.bool) for n, l in layers.items()},
        )

    @torch.no_grad()
    def apply(self, model: CompressibleModel) -> None:
        for name, layer in model.layers().items():
            layer.weight.mul_(self.weight[name])
            layer.bias.mul_(self.bias[name])

    def mask_gradients(self, model: CompressibleModel) -> None:
        for name, layer in model.layers().items():
            if layer.weight.grad is not None:
                layer.weight.grad.mul_(self.weight[name])
            if layer.bias.grad is not None:
                layer.bias.grad.mul_(self.bias[name])

    def kept_fraction(self) -> dict[str, float]:
        return {n: float(m.float().mean()) for n, m in self.weight.items()}


def layer_std(model: CompressibleModel) -> dict[str, float]:
    return {n: float(l.weight.detach().std()) for n, l in model.layers().items()}


def threshold_masks(model: CompressibleModel, thresholds: dict[str, float], masks: Masks) -> Masks:
    """Masks that also drop every weight with ``|w| <= threshold`` (layers not named keep theirs)."""
    weight = dict(masks.weight)
    for name, layer in model.layers().items():
        if name in thresholds:
            weight[name] = masks.weight[name] & (layer.weight.detach().abs() > thresholds[name])
    return Masks(weight=weight, bias=dict(masks.bias))


def retrain(model: CompressibleModel, masks: Masks, data: Tensors, config: TrainConfig, *, seed: int, desc: str,
            loss=None, penalty=None) -> None:
    masks.apply(model)
    fit(
        model, data, config, seed=seed, desc=desc,
        before_step=lambda: masks.mask_gradients(model),
        after_step=lambda: masks.apply(model),
        loss=loss, penalty=penalty,
    )


def iterative_prune(
    model: CompressibleModel,
    quality: dict[str, float],
    data: Tensors,
    config: TrainConfig,
    *,
    steps: int,
    seed: int,
    masks: Masks | None = None,
    loss=None,
    penalty=None,
) -> Masks:
    """Han's schedule: step ``s`` of ``steps`` prunes at ``s / steps * quality * std`` and retrains.

    The standard deviations are taken once, from the weights as they stand when pruning starts.
    ``loss`` replaces retraining's cross-entropy and ``penalty`` is added to it (:func:`eiex.sw.train.fit`).
    """
    if steps < 1:
        raise EiexError(f"prune steps must be a positive integer, not {steps}")
    masks = Masks.dense(model) if masks is None else masks
    std = layer_std(model)
    for step in range(1, steps + 1):
        thresholds = {n: step / steps * q * std[n] for n, q in quality.items()}
        masks = threshold_masks(model, thresholds, masks)
        retrain(model, masks, data, config, seed=seed + step, desc=f"prune {step}/{steps}", loss=loss,
                penalty=penalty)
    return masks


def filter_prune(model: CompressibleModel, fractions: dict[str, float], masks: Masks) -> Masks:
    """Remove, per conv layer, ``fraction`` of its filters with the smallest L1 norm."""
    weight, bias = dict(masks.weight), dict(masks.bias)
    layers = model.layers()
    for name, fraction in fractions.items():
        if fraction <= 0:
            continue
        layer = layers[name]
        if layer.weight.dim() != 4:
            raise EiexError(f"filter pruning applies to convolutions; {name} is not one")
        n_filters = layer.weight.shape[0]
        n_drop = int(round(fraction * n_filters))
        if n_drop >= n_filters:
            raise EiexError(f"filter pruning {fraction:.0%} of {name} would remove all {n_filters} filters")
        norms = (layer.weight.detach() * masks.weight[name]).abs().sum(dim=(1, 2, 3))
        dropped = torch.argsort(norms, stable=True)[:n_drop]
        keep = torch.ones(n_filters, dtype=torch.bool)
        keep[dropped] = False
        weight[name] = weight[name] & keep.view(-1, 1, 1, 1)
        bias[name] = bias[name] & keep
        successor = model.successors.get(name)
        if successor is not None:
            w_next = weight[successor]
            per_channel = w_next.reshape(w_next.shape[0], n_filters, -1)
            weight[successor] = (per_channel & keep.view(1, -1, 1)).reshape(w_next.shape)
    return Masks(weight=weight, bias=bias)


@torch.no_grad()
def sensitivity(model: CompressibleModel, data: Tensors, fractions: list[float]) -> dict[str, list[float]]:
    """Accuracy when one layer at a time loses the given fraction of its smallest weights, no retraining."""
    curves = {}
    for name, layer in model.layers().items():
        original = layer.weight.detach().clone()
        magnitudes = original.abs().flatten()
        order = torch.argsort(magnitudes, stable=True)
        curve = []
        for fraction in fractions:
            pruned = original.flatten().clone()
            pruned[order[: int(round(fraction * len(order)))]] = 0
            layer.weight.copy_(pruned.view_as(original))
            curve.append(accuracy(model, data))
        layer.weight.copy_(original)
        curves[name] = curve
    return curves


def check_finite(model: CompressibleModel, what: str) -> None:
    for name, layer in model.layers().items():
        for pname, p in (("weight", layer.weight), ("bias", layer.bias)):
            if not torch.isfinite(p).all():
                raise EiexError(f"{what}: {name}.{pname} contains NaN or infinite values")

