"""Where tunesift keeps files between runs: one cache folder for features, scores and models."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tunesift``, else ``~/.cache/tunesift``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tunesift"
