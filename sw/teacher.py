"""Distillation teachers: whose logits a student learns from, computed once over the training set.

A teacher is named by one string:

- ``dense`` (``compress``) or ``float`` (``binarize``): the run's own dense model or float twin,
  trained before the student's stages;
- ``FILE.py:FUNCTION``: a function returning a trained ``torch.nn.Module``, fed the same tensors as
  the student;
- a ``compress`` output folder: its model rebuilt with ``dense.npz``, fed the raw training images
  through the folder's own input normalization;
- a ``binarize`` output folder: its folded integer network (``binary.npz``) on the raw images, its
  integer scores taken as logits (the temperature absorbs their scale).

The logits are computed once, in the order of the training samples; a student's batch picks its
rows by index (:class:`eiex.sw.compress.methods.distill.Distillation`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from eiex.errors import EiexError
from eiex.sw.compress.methods.distill import teacher_logits
from eiex.sw.data import InputNorm
from eiex.sw.models import MODELS, build_model
from eiex.sw.npz import read_npz
from eiex.sw.user_model import TracedModel, is_model_file, load_model_function

#: the names of a run's own model as teacher, per command
OWN_TEACHERS = ("dense", "float")


@dataclass(frozen=True)
class Distill:
    """Knowledge distillation settings: ``teacher`` is "" (off) or a teacher named as above (a run's
    own model teaches the stages after its own training, any other teacher every stage);
    ``temperature`` softens both distributions, ``alpha`` weighs the teacher's term against
    cross-entropy."""

    teacher: str = ""
    temperature: float = 4.0
    alpha: float = 0.9

    def __post_init__(self):
        if not isinstance(self.teacher, str):
            raise EiexError(f"teacher must be a string, not {self.teacher!r}")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) \
                or not 0 < self.temperature < float("inf"):
            raise EiexError(f"distillation temperature must be a positive number, not {self.temperature!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 <= self.alpha <= 1:
            raise EiexError(f"distillation alpha must lie in [0, 1], not {self.alpha!r}")


def _report(folder: Path) -> dict:
    try:
        return json.loads((folder / "report.json").read_text())
    except FileNotFoundError:
        raise EiexError(f"teacher {folder} has no report.json: give a compress or binarize output folder") from None
    except (OSError, ValueError) as e:
        raise EiexError(f"teacher {folder}: cannot read report.json ({e})") from None


def folder_teacher(folder: Path, sample_shape: tuple[int, ...]):
    """A ``compress`` or ``binarize`` output folder's network as a function of raw samples
    (a tensor ``(n, *sample_shape)`` or ``(n, values)``) to float32 logits."""
    report = _report(folder)
    if (folder / "binary.npz").is_file():
        from eiex.sw.binarize.thresholds import run_folded

        arrays = read_npz(folder / "binary.npz")
        return lambda x: torch.from_numpy(np.asarray(run_folded(arrays, x.detach().numpy()), dtype=np.float32))
    if not (folder / "dense.npz").is_file():
        raise EiexError(f"teacher {folder} holds neither dense.npz (compress) nor binary.npz (binarize)")
    name = report.get("model")
    if name in MODELS:
        model = build_model(name)
    elif isinstance(name, str) and is_model_file(name):
        model = TracedModel(load_model_function(name), name)
    else:
        raise EiexError(f"teacher {folder}: cannot rebuild its model {name!r} (a built-in name or FILE.py:FUNCTION)")
    model.load_npz(read_npz(folder / "dense.npz"), str(folder / "dense.npz"))
    try:
        norm = InputNorm(**report["input"])
    except (KeyError, TypeError):
        raise EiexError(f"teacher {folder}: report.json lacks its input normalization") from None
    # as compress feeds it: normalized, single-channel images with their channel axis
    shape = (1, *sample_shape) if len(sample_shape) == 2 else tuple(sample_shape)

    def logits(x: torch.Tensor) -> torch.Tensor:
        x = ((x.to(torch.float64) * norm.pixel_scale - norm.mean) / norm.std).to(torch.float32)
        return _checked(teacher_logits(model, x.reshape(len(x), *shape)), str(folder))

    return logits


def _checked(logits: torch.Tensor, source: str) -> torch.Tensor:
    if logits.dim() != 2:
        raise EiexError(f"teacher {source} returns {tuple(logits.shape)} per batch, not (batch, classes) logits")
    return logits


def _is_folder_teacher(spec: str) -> bool:
    return spec not in OWN_TEACHERS and not is_model_file(spec) and Path(spec).is_dir()


def teacher_function(spec: str, *, sample_shape: tuple[int, ...], own: nn.Module | None = None):
    """The teacher as a function of the student's inputs to logits: a model is fed the student's
    tensors, an output folder raw samples of ``sample_shape`` (so, in ``binarize``, both are the
    raw pixels the student reads, shifted or not)."""
    if spec in OWN_TEACHERS:
        if own is None:
            raise EiexError(f"teacher {spec!r} is this run's own model, which is not trained yet at this stage")
        return lambda x: _checked(teacher_logits(own, x), spec)
    if is_model_file(spec):
        model = load_model_function(spec)
        return lambda x: _checked(teacher_logits(model, x), spec)
    if _is_folder_teacher(spec):
        return folder_teacher(Path(spec), sample_shape)
    raise EiexError(f"teacher {spec!r} is neither {' nor '.join(OWN_TEACHERS)}, FILE.py:FUNCTION nor an output folder")


def resolve_teacher(spec: str, *, student_x: torch.Tensor, raw_images: np.ndarray, n_classes: int,
                    own: nn.Module | None = None) -> torch.Tensor:
    """The teacher's logits for every training sample (``student_x`` and ``raw_images`` are the
    same samples in the student's and in raw form); ``own`` is the run's own model."""
    raw = np.asarray(raw_images)
    teacher = teacher_function(spec, sample_shape=raw.shape[1:], own=own)
    logits = teacher(torch.from_numpy(raw)) if _is_folder_teacher(spec) else teacher(student_x)
    if len(logits) != len(student_x):
        raise EiexError(f"teacher {spec} gave {len(logits)} rows of logits for {len(student_x)} training samples")
    if logits.shape[1] < n_classes:
        raise EiexError(f"teacher {spec} scores {logits.shape[1]} classes; the data has {n_classes}")
    return logits
