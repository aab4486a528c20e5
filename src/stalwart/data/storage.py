"""Where data lives on disk, and the cache of converted arrays.

Everything stalwart writes about data goes under one folder, ``$STALWART_DATA`` (default
``~/.cache/stalwart``), or beside the data it was converted from. Sources convert their raw
files (JSON, gzipped IDX, CSV, images) once into a compressed ``.npz``, so the second load
only reads arrays: data from a package is cached in ``$STALWART_DATA/cache``; a user's own copy
read from a folder (Waterbirds, CelebA, ...) is cached in that folder's ``.stalwart-cache/``,
so that loading a copy elsewhere never writes into the default data folder.

A cache is a convenience, never a requirement: where the folder cannot be written (read-only,
full disk), a load reads what is cached already, and what it converts it keeps in memory only,
with a warning. A data folder that is a file is a mistake and raises ``DataError``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stalwart.errors import DataError

LOCAL_CACHE = ".stalwart-cache"
"""The folder, inside a user's own copy of a dataset, that holds its converted arrays."""


class CacheNotWritten(UserWarning):
    """Converted arrays could not be saved; the next load converts them again."""


def data_home() -> Path:
    """The data folder: ``$STALWART_DATA`` if set, else ``~/.cache/stalwart``."""
    configured = os.environ.get("STALWART_DATA")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "stalwart"


def check_data_home() -> Path:
    """The data folder, after checking that nothing on its path is a file.

    It need not exist yet (it is created when first written to).

    Raises:
        DataError: ``$STALWART_DATA`` (or a folder above it) exists but is not a folder.
    """
    home = data_home()
    blocking = _file_on_path(home)
    if blocking is not None:
        where = "$STALWART_DATA" if os.environ.get("STALWART_DATA") else "the default data folder"
        raise DataError(
            f"{where} is {home}, but {blocking} is a file, not a folder; point STALWART_DATA at "
            "a folder (it is created if missing), or unset it to use ~/.cache/stalwart"
        )
    return home


def _file_on_path(path: Path) -> Path | None:
    """The first existing entry of ``path`` or its parents that is not a folder, if any."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
        if candidate.is_symlink():  # a dangling link: it cannot be created as a folder
            return candidate
    return None


def local_cache(folder: Path) -> Path:
    """Where the arrays converted from a user's own copy in ``folder`` are cached."""
    return folder / LOCAL_CACHE


def make_folder(folder: Path, purpose: str) -> Path:
    """Create ``folder`` (and its parents) for ``purpose``, or say in one line why it cannot be.

    Raises:
        DataError: a file stands where a folder must go, or the folder cannot be created
            (permissions, read-only file system); the message names the path and the reason.
    """
    blocking = _file_on_path(folder)
    if blocking is not None:
        raise DataError(
            f"cannot create {folder} for {purpose}: {blocking} is a file, not a folder; move "
            "it away or choose another folder (STALWART_DATA sets the data folder)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"cannot create {folder} for {purpose}: {error.strerror or error}; choose a "
            "writable folder (STALWART_DATA sets the data folder)"
        ) from None
    return folder


def cached_arrays(
    key: str, build: Callable[[], dict[str, np.ndarray]], folder: Path | None = None
) -> dict[str, np.ndarray]:
    """Return the arrays stored under ``key``, building and saving them on the first call.

    Args:
        key: the cache file's name (without ``.npz``); it must change whenever the arrays
            would.
        build: makes the arrays when no readable cache exists.
        folder: where the cache lives: ``local_cache(copy)`` for a user's own copy; default
            ``$STALWART_DATA/cache``.

    The write is atomic (a temporary file renamed into place), so an interrupted conversion
    never leaves a half-written cache behind. A cache file that cannot be read is rebuilt. A
    folder that cannot be written leaves the arrays uncached, with a ``CacheNotWritten``
    warning.

    Raises:
        DataError: the data folder, or the cache folder, is a file.
    """
    folder = check_data_home() / "cache" if folder is None else folder
    path = folder / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
            pass  # corrupt cache: rebuilt from the raw files below, and replaced if possible
    arrays = build()
    _save(path, arrays)
    return arrays


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    blocking = _file_on_path(path.parent)
    if blocking is not None:
        raise DataError(
            f"cannot cache converted data in {path.parent}: {blocking} is a file, not a "
            "folder; move it away (STALWART_DATA sets the data folder)"
        )
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
            temporary = handle.name
            np.savez_compressed(handle, **arrays)
        os.replace(temporary, path)
    except OSError as error:
        if temporary is not None:
            with contextlib.suppress(OSError):
                Path(temporary).unlink(missing_ok=True)
        warnings.warn(
            f"cannot write the cache {path} ({error.strerror or error}); the data is used "
            "without caching, so the next load converts it again. Make the folder writable, or "
            "set STALWART_DATA to a writable folder",
            CacheNotWritten,
            stacklevel=3,
        )
