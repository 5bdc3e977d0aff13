"""Weight sharing and trained quantization (Deep Compression, section 3).

Per layer the surviving weights are clustered into ``2**bits - 1`` shared values; code 0 is
reserved for exact zero (pruned), so ``codebook[0] == 0``. Fine-tuning then trains the shared
values: the gradient of centroid ``k`` is the sum of the gradients of every weight that uses it
(eq. 3), while every weight's code stays fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from eiex.errors import EiexError
from eiex.sw.compress.kmeans import kmeans1d
from eiex.sw.models import CompressibleModel
from eiex.sw.compress.pruning import Masks
from eiex.sw.train import Tensors, TrainConfig, fit


@dataclass(frozen=True)
class SharedLayer:
    codes: np.ndarray  # int64, the weight's shape; 0 where pruned
    codebook: np.ndarray  # float32, 2**bits values, codebook[0] == 0
    bits: int

    def weights(self) -> np.ndarray:
        return self.codebook[self.codes]


def share_layer(weight: np.ndarray, bits: int, method: str) -> SharedLayer:
    """Cluster the non-zero weights of one layer into ``2**bits - 1`` shared values."""
    if not 1 <= bits <= 16:
        raise EiexError(f"weight bits must lie in 1..16, not {bits}")
    weight = np.asarray(weight, dtype=np.float32)
    if not np.all(np.isfinite(weight)):
        raise EiexError("weights contain NaN or infinite values")
    codes = np.zeros(weight.shape, dtype=np.int64)
    codebook = np.zeros(2**bits, dtype=np.float32)
    survivors = weight != 0
    if survivors.any():
        result = kmeans1d(weight[survivors].astype(np.float64), 2**bits - 1, method=method)
        codebook[1 : 1 + len(result.centroids)] = result.centroids
        codes[survivors] = result.labels + 1
        # a centroid that lands on exactly 0 would turn its weights into pruned ones
        codebook[1:][codebook[1:] == 0] = np.float32(np.finfo(np.float32).tiny)
    return SharedLayer(codes=codes, codebook=codebook, bits=bits)


def share_weights(model: CompressibleModel, bits: dict[str, int], method: str) -> dict[str, SharedLayer]:
    shared = {}
    for name, layer in model.layers().items():
        shared[name] = share_layer(layer.weight.detach().cpu().numpy(), bits[name], method)
    load_shared(model, shared)
    return shared


@torch.no_grad()
def load_shared(model: CompressibleModel, shared: dict[str, SharedLayer]) -> None:
    for name, layer in model.layers().items():
        layer.weight.copy_(torch.from_numpy(shared[name].weights()))


def centroid_gradient(codes: torch.Tensor, weight_grad: torch.Tensor, n_codes: int) -> torch.Tensor:
    """Deep Compression eq. 3: each shared value's gradient is the sum of its weights' gradients.

    Code 0 (pruned) gets no gradient, so it stays exactly zero.
    """
    grad = torch.zeros(n_codes, dtype=weight_grad.dtype)
    grad.index_add_(0, codes.reshape(-1), weight_grad.reshape(-1))
    grad[0] = 0
    return grad


def finetune_centroids(
    model: CompressibleModel,
    shared: dict[str, SharedLayer],
    masks: Masks,
    data: Tensors,
    config: TrainConfig,
    *,
    seed: int,
    loss=None,
) -> dict[str, SharedLayer]:
    """Train the shared values (and the surviving biases) with the codes held fixed; ``loss``
    replaces cross-entropy (:func:`eiex.sw.train.fit`)."""
    layers = model.layers()
    codes = {n: torch.from_numpy(s.codes.reshape(-1)) for n, s in shared.items()}
    codebooks = {n: torch.tensor(s.codebook, requires_grad=True) for n, s in shared.items()}

    def set_weights():
        with torch.no_grad():
            for name, layer in layers.items():
                codebooks[name][0] = 0
                layer.weight.copy_(codebooks[name][codes[name]].view_as(layer.weight))
                layer.bias.mul_(masks.bias[name])

    def centroid_gradients():
        for name, layer in layers.items():
            codebooks[name].grad = centroid_gradient(codes[name], layer.weight.grad, len(codebooks[name]))
            layer.bias.grad.mul_(masks.bias[name])

    set_weights()
    params = list(codebooks.values()) + [layer.bias for layer in layers.values()]
    fit(model, data, config, seed=seed, params=params, before_step=centroid_gradients,
        after_step=set_weights, desc="fine-tune centroids", loss=loss)
    return {
        n: SharedLayer(codes=s.codes, codebook=codebooks[n].detach().numpy().copy(), bits=s.bits)
        for n, s in shared.items()
    }
