"""Knowledge distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015).

A small student learns from a trained teacher's soft targets as well as from the labels:

    loss = alpha * T**2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE(z_s, y)

with the KL divergence averaged over the batch. The ``T**2`` keeps the soft term's gradients on the
scale of the hard term's as the temperature changes (section 2). The teacher's logits are computed
once, before training, and indexed by sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from eiex.errors import EiexError


def _check_temperature(temperature) -> float:
    temperature = float(temperature)
    if not math.isfinite(temperature) or temperature <= 0:
        raise EiexError(f"distillation temperature must be a finite positive number, not {temperature}")
    return temperature


def _check_alpha(alpha) -> float:
    alpha = float(alpha)
    if not 0 <= alpha <= 1:
        raise EiexError(f"distillation alpha must lie in [0, 1], not {alpha}")
    return alpha


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """``alpha * T**2 * KL(teacher || student at T)`` (batch mean) ``+ (1 - alpha) * CE(student, labels)``."""
    temperature = _check_temperature(temperature)
    alpha = _check_alpha(alpha)
    for name, tensor in (("student logits", student_logits), ("teacher logits", teacher_logits)):
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point() or tensor.dim() != 2:
            raise EiexError(f"{name} must be a 2-D (batch, classes) floating-point tensor")
    if student_logits.shape != teacher_logits.shape:
        raise EiexError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                        f"{tuple(teacher_logits.shape)} differ in shape")
    if not isinstance(labels, torch.Tensor) or labels.shape != student_logits.shape[:1] or labels.is_floating_point():
        raise EiexError(f"labels must be a 1-D integer tensor of {student_logits.shape[0]} class indices")
    soft_targets = F.softmax(teacher_logits.detach().to(student_logits.dtype) / temperature, dim=1)
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1), soft_targets, reduction="batchmean")
    hard = F.cross_entropy(student_logits, labels)
    return alpha * temperature**2 * soft + (1 - alpha) * hard


@dataclass(frozen=True)
class Distillation:
    """A teacher's logits for every training sample, with the loss's temperature and weight.

    Attributes
    ----------
    logits : torch.Tensor
        ``(n, classes)`` float32 teacher logits; row ``i`` belongs to training sample ``i``.
    temperature : float
        The softmax temperature ``T`` (> 0).
    alpha : float
        The weight of the soft (teacher) term, in ``[0, 1]``.
    """

    logits: torch.Tensor
    temperature: float
    alpha: float

    def __post_init__(self):
        logits = self.logits
        if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() != 2:
            raise EiexError("teacher logits must be a 2-D (samples, classes) floating-point tensor")
        if not torch.isfinite(logits).all():
            raise EiexError("teacher logits contain NaN or infinite values")
        _check_temperature(self.temperature)
        _check_alpha(self.alpha)

    def loss(self, student_logits: torch.Tensor, labels: torch.Tensor, index: torch.Tensor,
             inputs: torch.Tensor | None = None) -> torch.Tensor:
        """The distillation loss of a batch whose samples are ``index`` into the training set."""
        return distillation_loss(student_logits, self.logits[index], labels, self.temperature, self.alpha)


@dataclass(frozen=True)
class LiveDistillation:
    """A teacher asked about every batch as the student sees it: for training on augmented
    samples (randomly shifted digits), where logits computed once would describe other inputs.

    Attributes
    ----------
    teacher : callable
        Student inputs ``(batch, ...)`` to ``(batch, classes)`` logits.
    temperature, alpha : float
        As in :class:`Distillation`.
    """

    teacher: object
    temperature: float
    alpha: float

    def __post_init__(self):
        if not callable(self.teacher):
            raise EiexError("a live distillation teacher must map a batch of inputs to logits")
        _check_temperature(self.temperature)
        _check_alpha(self.alpha)

    def loss(self, student_logits: torch.Tensor, labels: torch.Tensor, index: torch.Tensor,
             inputs: torch.Tensor | None = None) -> torch.Tensor:
        """The distillation loss of a batch, the teacher's logits taken on the batch's ``inputs``."""
        if inputs is None:
            raise EiexError("live distillation needs the batch's inputs")
        with torch.no_grad():
            logits = self.teacher(inputs)
        return distillation_loss(student_logits, logits, labels, self.temperature, self.alpha)


def teacher_logits(model: torch.nn.Module, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """The model's float32 logits on ``x``, in eval mode and without gradient, ``batch`` samples at a time.

    Every submodule's training flag is restored afterwards.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise EiexError(f"teacher batch size must be a positive integer, not {batch}")
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] == 0:
        raise EiexError("teacher inputs must be a non-empty tensor of samples")
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            logits = torch.cat([model(part) for part in torch.split(x, batch)])
    finally:
        for module, training in modes:
            module.training = training
    if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        raise EiexError(f"the teacher gave logits of shape {tuple(logits.shape)} for {x.shape[0]} samples")
    if not torch.isfinite(logits).all():
        raise EiexError("teacher logits contain NaN or infinite values")
    return logits.detach().to(torch.float32)
