"""Where data lives on disk, and the cache of converted arrays.

Everything stalwart writes about data goes under one folder, ``$STALWART_DATA`` (default
``~/.cache/stalwart``). Sources convert their raw files (JSON, gzipped IDX, CSV) once into a
compressed ``.npz`` in ``cache/``, so the second load only reads arrays.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np


def data_home() -> Path:
    """The data folder: ``$STALWART_DATA`` if set, else ``~/.cache/stalwart``."""
    configured = os.environ.get("STALWART_DATA")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "stalwart"


def cached_arrays(key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Return the arrays stored under ``key``, building and saving them on the first call.

    The write is atomic (a temporary file renamed into place), so an interrupted conversion
    never leaves a half-written cache behind. A cache file that cannot be read is rebuilt.
    """
    path = data_home() / "cache" / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
            path.unlink(missing_ok=True)  # corrupt cache: rebuild from the raw files below
    arrays = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
        np.savez_compressed(handle, **arrays)
    os.replace(handle.name, path)
    return arrays
