"""Training helpers: random shifts of training images."""

import numpy as np
import pytest
import torch
from torch import nn

from eiex.errors import EiexError
from eiex.sw.train import Tensors, TrainConfig, fit, random_shifts


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` (C, H, W) moved down by ``dy`` and right by ``dx``, zeros shifted in: by slicing."""
    out = np.zeros_like(image)
    h, w = image.shape[1:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_each_sample_is_its_image_moved_by_at_most_shift_pixels_and_every_move_occurs():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.permutation(400 * 2 * 5 * 6).reshape(400, 2 * 5 * 6).astype(np.float32) + 1)
    out = random_shifts(x, (5, 6), 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    seen = set()
    for before, after in zip(x.numpy().reshape(-1, 2, 5, 6), out.numpy().reshape(-1, 2, 5, 6)):
        moves = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(shifted(before, dy, dx), after)]
        assert len(moves) == 1  # distinct values: exactly one move explains the sample
        seen.add(moves[0])
    assert len(seen) == 25


def test_shift_needs_image_samples():
    data = Tensors(torch.zeros(4, 10), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(EiexError, match="shift needs images"):
        fit(nn.Linear(10, 2), data, TrainConfig(epochs=1, lr=1e-3, shift=1), seed=0)
