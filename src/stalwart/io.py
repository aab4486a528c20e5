"""Atomic writes, JSON and checkpoints: the leaf every subsystem writes files through.

Writes go to a temporary file in the same folder and are renamed into place, so a run killed
mid-write keeps its previous checkpoint intact. Checkpoints load with ``weights_only=True``:
a checkpoint handed to us can hold tensors and plain values, never code to run.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from stalwart.errors import CheckpointError

# The version of the dict a training checkpoint holds (``fit`` writes it, every reader checks it).
CHECKPOINT_FORMAT = 1


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call ``write(handle)`` on a temporary file, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not a `with` block: the file must be closed before the rename, yet removed on failure.
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115
        dir=path.parent, prefix=f".{path.name}.", delete=False
    )
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        # Temporary files are created private (0600); give the result the usual permissions.
        os.chmod(handle.name, 0o666 & ~_umask())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, lambda handle: handle.write(text.encode()))


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(value, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Save ``state`` (tensors and plain values) atomically."""
    atomic_write_bytes(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint saved by ``save_checkpoint``.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, or holds something other
            than tensors and plain values.
    """
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(error).__name__}: {str(error)[:200]}); "
            "it is corrupt or not a stalwart checkpoint. Delete it to start that run over."
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    return state


def load_state(module: torch.nn.Module, state: dict[str, Any], what: str, path: Path) -> None:
    """``module.load_state_dict(state)``, with a clear error when the two do not match."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as error:
        first = str(error).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {path} does not match this {what}: {' '.join(first)[:300]}. "
            "Was it written for another model or config?"
        ) from None
