"""Reading npz files (weights ``w0, b0, ...``, datasets) with one clear error for every way they fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eiex.errors import EiexError


def read_npz(path: str | Path, what: str = "weights file") -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise EiexError(f"{what} {path} not found") from None
    except (OSError, ValueError, EOFError) as e:
        raise EiexError(f"cannot read {path} as an npz file: {e}") from None
