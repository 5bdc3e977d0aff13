"""Results of built design points, kept by the hash of what was built.

A result is one JSON file named by its :func:`~eiex.sim.explore.evaluate.cache_key` (the top's
RTLIL, the part, nextpnr's options, the tool versions), written whole as soon as it arrives, so
an interrupted sweep keeps every finished point and a rerun builds only the rest. Only results a
rerun would reproduce are kept: placed and routed (``ok``) and too large for the part (``unfit``);
a failed point is tried again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eiex.sw.atomic import atomic_write

#: environment variable naming the cache folder
CACHE_ENV = "EIEX_EXPLORE_CACHE"
#: statuses a rerun would reproduce
KEPT = ("ok", "unfit")


def default_cache_dir() -> Path:
    """``$EIEX_EXPLORE_CACHE``, else ``~/.cache/eiex/explore``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "eiex" / "explore")


class ResultCache:
    """The results in ``folder`` (created on the first write)."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def keys(self) -> frozenset[str]:
        if not self.folder.is_dir():
            return frozenset()
        return frozenset(path.stem for path in self.folder.glob("*.json"))

    def get(self, key: str) -> dict | None:
        """The result stored under ``key``; None when absent or unreadable (it is then rebuilt)."""
        try:
            return json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, result: dict) -> bool:
        """Store ``result`` if a rerun would reproduce it; True if stored."""
        if result.get("status") not in KEPT:
            return False
        atomic_write(self._path(key), (json.dumps(result, indent=1) + "\n").encode())
        return True
