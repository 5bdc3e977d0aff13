"""Seeded, deterministic training and evaluation on in-memory tensors."""

from __future__ import annotations

import time

import math
import random
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from eiex.sw.data import InputNorm, Split
from eiex.errors import EiexError


#: ``constant``: ``lr`` throughout; ``cosine``: from ``lr`` down to 0 over the run, a step per batch
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    lr: float
    batch_size: int = 64
    weight_decay: float = 0.0
    schedule: str = "constant"
    #: move each training image by a random whole number of pixels, up to ``shift`` along each axis
    #: (zeros shifted in); 0 trains on the images as they are
    shift: int = 0


@dataclass(frozen=True)
class Tensors:
    x: torch.Tensor  # float32, normalised: (n, 1, H, W) for single-channel images, else as stored
    y: torch.Tensor  # int64 (n,)

    @classmethod
    def of(cls, split: Split, norm: InputNorm) -> "Tensors":
        x = torch.from_numpy(norm.apply(split.images))
        if x.dim() == 3:  # (n, H, W) images get their channel axis, as Conv2d expects
            x = x.unsqueeze(1)
        return cls(x, torch.from_numpy(split.labels))


def random_shifts(x: torch.Tensor, image_shape: tuple[int, int], shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each sample of ``x`` (its trailing values ``(..., H, W)`` images) moved by a random
    ``(dy, dx)`` in ``[-shift, shift]``, zeros filling what moves in; ``x``'s shape is kept."""
    h, w = image_shape
    n = len(x)
    images = x.reshape(n, -1, h, w)
    padded = torch.nn.functional.pad(images, (shift, shift, shift, shift))
    dy, dx = torch.randint(0, 2 * shift + 1, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    moved = padded[torch.arange(n)[:, None, None, None], torch.arange(images.shape[1])[None, :, None, None], rows, cols]
    return moved.reshape(x.shape)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])


def accuracy(model: nn.Module, data: Tensors) -> float:
    return float((predict(model, data.x) == data.y).float().mean())


def fit(
    model: nn.Module,
    data: Tensors,
    config: TrainConfig,
    *,
    seed: int,
    params: list[torch.Tensor] | None = None,
    before_step: Callable[[], None] | None = None,
    after_step: Callable[[], None] | None = None,
    desc: str = "train",
    image_shape: tuple[int, int] | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    penalty: Callable[[], torch.Tensor] | None = None,
) -> None:
    """Adam with cross-entropy over shuffled mini-batches.

    ``params`` are the tensors to optimise (default: all of the model's). ``before_step`` runs
    after the backward pass (to mask or redirect gradients), ``after_step`` after each update
    (to re-impose masks or shared values). ``image_shape`` ``(H, W)``: what the samples' trailing
    values are, for ``config.shift``. ``loss(logits, labels, batch, x)`` replaces cross-entropy
    (``batch`` holds the samples' indexes and ``x`` the inputs as the model saw them, shifted or
    not, for a distillation teacher); ``penalty()`` is added to every batch's loss (a sparsity
    regularizer).
    """
    if config.shift and image_shape is None:
        raise EiexError(f"{desc}: shift needs images; these samples have no (H, W) shape")
    params = list(model.parameters()) if params is None else params
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    n = len(data.y)
    steps = config.epochs * math.ceil(n / config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1)) \
        if config.schedule == "cosine" else None
    for _ in tqdm(range(config.epochs), desc=desc, leave=False, disable=None):
        model.train()
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            if len(batch) == 1 and n > 1:
                continue  # batch norm cannot train on one sample; the next epoch's order differs
            optimizer.zero_grad(set_to_none=True)
            x = data.x[batch]
            if config.shift:
                x = random_shifts(x, image_shape, config.shift, generator)
            logits = model(x)
            value = loss_fn(logits, data.y[batch]) if loss is None else loss(logits, data.y[batch], batch, x)
            if penalty is not None:
                value = value + penalty()
            if not math.isfinite(value.item()):
                raise EiexError(f"{desc}: the loss became {value.item()} (lower the learning rate, {config.lr})")
            value.backward()
            if before_step is not None:
                before_step()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if after_step is not None:
                after_step()


class StageClock:
    """Wall time of each stage of a pipeline: ``lap(stage)`` books the time since the last lap."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = now - self._last
        self._last = now
