"""Output folders that appear whole or not at all.

Work is written into a hidden temporary folder beside the target and renamed into place only
when everything succeeded; an error or an interrupt removes the temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from eiex.errors import EiexError


def check_output_dir(out: str | Path, force: bool) -> Path:
    """Refuse an existing output unless ``force``; call before any long work starts."""
    out = Path(out)
    if out.exists() and not force:
        raise EiexError(f"output {out} already exists (use --force to replace it)")
    if out.exists() and not out.is_dir():
        raise EiexError(f"output {out} exists and is not a folder")
    if out.parent.exists() and not out.parent.is_dir():
        raise EiexError(f"{out.parent} is not a folder, so it cannot hold {out.name}")
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output_dir(out: str | Path, force: bool = False) -> Iterator[Path]:
    out = check_output_dir(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield tmp
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            out.rename(trash / out.name)
            tmp.rename(out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write(path: str | Path, data: bytes, force: bool = True) -> None:
    """Write one file whole: into a temporary file beside it, then renamed over it."""
    path = Path(path)
    if path.exists() and not force:
        raise EiexError(f"output {path} already exists (use --force to replace it)")
    if path.exists() and path.is_dir():
        raise EiexError(f"output {path} is a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
