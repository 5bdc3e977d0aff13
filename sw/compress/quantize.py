"""The quantization stage of ``compress``: surviving weights to codes, by the recipe's method.

- ``kmeans``: Deep Compression's trained weight sharing (:mod:`eiex.sw.compress.sharing`).
- ``linear``: uniform symmetric levels per layer (:mod:`.methods.linear`), then retrained with
  straight-through gradients: the forward pass sees the quantized weights, the update goes to
  latent float weights (Courbariaux et al.'s BinaryConnect rule, here for ``bits``-bit levels).
- ``ternary``: TWN's ``{-a, 0, +a}`` (:mod:`.methods.ternary`), the threshold and scale recomputed
  from the latent weights at every step, trained the same way.
- ``pow2``: INQ (:mod:`.methods.inq`): at each step of the schedule a larger fraction of every
  layer's surviving weights, largest magnitudes first, is fixed to powers of two, and the rest is
  retrained.

Pruned weights stay exactly zero throughout; a weight quantized to zero is pruned from then on.
"""

from __future__ import annotations

from typing import Callable

import torch

from eiex.sw.compress.methods.inq import inq_partition, pow2_exponents, pow2_shared, pow2_tensor
from eiex.sw.compress.methods.linear import linear_quantize, scale_of
from eiex.sw.compress.methods.ternary import ternarize, ternary_tensor
from eiex.sw.compress.pruning import Masks
from eiex.sw.compress.recipe import Recipe
from eiex.sw.compress.sharing import SharedLayer, finetune_centroids, load_shared, share_weights
from eiex.sw.models import CompressibleModel
from eiex.sw.train import Tensors, TrainConfig, accuracy, fit

#: a layer's quantizer for straight-through training: latent weights (masked) to quantized ones
Projection = Callable[[torch.Tensor], torch.Tensor]


def train_straight_through(model: CompressibleModel, masks: Masks, project: dict[str, Projection], data: Tensors,
                           config: TrainConfig, *, seed: int, desc: str, loss=None,
                           frozen: dict[str, torch.Tensor] | None = None) -> None:
    """Train latent float weights whose projections the forward pass uses.

    Before each update the layer holds its latent weights, so the optimizer moves those by the
    gradient taken at the projected ones (the straight-through estimator); after it, the layer
    holds the projection again. Gradients of pruned (and ``frozen``) weights are zeroed.
    """
    layers = model.layers()
    latent = {n: l.weight.detach().clone() for n, l in layers.items()}
    keep = {n: masks.weight[n] & ~frozen[n] if frozen else masks.weight[n] for n in layers}

    @torch.no_grad()
    def to_latent():
        for name, layer in layers.items():
            layer.weight.copy_(latent[name])
            layer.weight.grad.mul_(keep[name])
            if layer.bias.grad is not None:
                layer.bias.grad.mul_(masks.bias[name])

    @torch.no_grad()
    def to_projection():
        for name, layer in layers.items():
            latent[name].copy_(layer.weight)
            layer.weight.copy_(project[name](latent[name] * masks.weight[name]) * masks.weight[name])
            layer.bias.mul_(masks.bias[name])

    with torch.no_grad():
        for name, layer in layers.items():
            layer.weight.copy_(project[name](latent[name] * masks.weight[name]) * masks.weight[name])
    fit(model, data, config, seed=seed, desc=desc, before_step=to_latent, after_step=to_projection, loss=loss)


def _linear_projection(bits: int, mask: torch.Tensor, kind: str) -> Projection:
    levels = 2 ** (bits - 1) - 1

    def project(w: torch.Tensor) -> torch.Tensor:
        top = w[mask].abs().max() if mask.any() else w.new_zeros(())
        if top == 0:
            return torch.zeros_like(w)
        scale = top / levels if kind == "real" else scale_of(float(top), bits, kind)
        return torch.round(w / scale).clamp(-levels, levels) * scale

    return project


def _ternary_projection(mask: torch.Tensor) -> Projection:
    return lambda w: ternary_tensor(w, mask)


def quantize_straight_through(model, masks, recipe: Recipe, data, *, seed, loss=None) -> dict[str, SharedLayer]:
    """``linear`` or ``ternary``: project, retrain through the projection, then take the codes."""
    method = recipe.quantizer
    layers = model.layers()
    kind = recipe.quantize.scale
    project = {n: _linear_projection(recipe.layers[n].bits, masks.weight[n], kind) if method == "linear"
               else _ternary_projection(masks.weight[n]) for n in layers}
    train_straight_through(model, masks, project, data, recipe.quantize.train, seed=seed, desc=f"{method} quantized",
                           loss=loss)
    shared = {}
    for name, layer in layers.items():
        w, mask = layer.weight.detach().numpy(), masks.weight[name].numpy()
        shared[name] = linear_quantize(w, recipe.layers[name].bits, mask, kind) if method == "linear" \
            else ternarize(w, mask)
    return shared


def quantize_incremental(model, masks, recipe: Recipe, data, *, seed, loss=None, log=print) -> dict[str, SharedLayer]:
    """INQ: freeze a growing fraction of each layer to powers of two, retraining the rest."""
    layers = model.layers()
    exponents = {}
    for name, layer in layers.items():
        survivors = layer.weight.detach()[masks.weight[name]]
        top = float(survivors.abs().max()) if survivors.numel() else 0.0
        exponents[name] = pow2_exponents(top, recipe.layers[name].bits) if top > 0 else None
    frozen = {n: torch.zeros_like(masks.weight[n]) for n in layers}
    fixed = {n: torch.zeros_like(l.weight) for n, l in layers.items()}
    for step, fraction in enumerate(recipe.quantize.steps):
        with torch.no_grad():
            for name, layer in layers.items():
                if exponents[name] is None:
                    continue
                w = layer.weight.detach()
                grown = torch.from_numpy(inq_partition(w.numpy(), frozen[name].numpy(), masks.weight[name].numpy(),
                                                       fraction))
                fresh = grown & ~frozen[name]
                fixed[name][fresh] = pow2_tensor(w, *exponents[name])[fresh]
                frozen[name] = grown
                layer.weight.copy_(torch.where(frozen[name], fixed[name], w) * masks.weight[name])
        if fraction < 1 and recipe.quantize.train.epochs:
            project = {n: (lambda f, v: lambda w: torch.where(f, v, w))(frozen[n], fixed[n]) for n in layers}
            train_straight_through(model, masks, project, data, recipe.quantize.train, seed=seed + step,
                                   desc=f"INQ step {step + 1}", loss=loss, frozen=frozen)
        log(f"INQ step {step + 1}: {fraction:.1%} of the surviving weights are powers of two, "
            f"accuracy {accuracy(model, data):.2%} on the training data")
    return {n: pow2_shared(l.weight.detach().numpy(), recipe.layers[n].bits, masks.weight[n].numpy())
            for n, l in layers.items()}


def quantize(model: CompressibleModel, masks: Masks, recipe: Recipe, data: Tensors, *, seed: int, loss=None,
             log=print) -> dict[str, SharedLayer]:
    """Quantize every layer of ``model`` by ``recipe.quantizer``; returns the shared layers (the
    model then holds exactly their weights)."""
    method = recipe.quantizer
    if method == "kmeans":
        shared = share_weights(model, {n: l.bits for n, l in recipe.layers.items()}, recipe.share_method)
        return finetune_centroids(model, shared, masks, data, recipe.share, seed=seed, loss=loss)
    if method == "pow2":
        shared = quantize_incremental(model, masks, recipe, data, seed=seed, loss=loss, log=log)
    else:
        shared = quantize_straight_through(model, masks, recipe, data, seed=seed, loss=loss)
    load_shared(model, shared)
    return shared
