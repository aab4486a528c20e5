"""What a multi-stage method needs to run its stages, and where reusable stages are kept.

Multi-stage methods (JTT, DFR) are plain functions that call ``fit`` more than once. A stage
that several runs share (JTT's identification model across upweighting factors, DFR's ERM
base) is kept in a directory named by a hash of everything it depends on, and guarded by a
file lock, so that parallel runs train it once and then reuse it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from stalwart.config import TrainConfig
from stalwart.data.core import Splits


@dataclass(frozen=True)
class StageContext:
    """The data, a model factory and the training settings a staged method composes.

    Attributes:
        splits: the data.
        build_model: returns a freshly initialised model (same seed, same weights).
        train: training settings of the final stage.
        run_dir: where the final stage writes its run (None: in memory only).
        shared_dir: where stages reusable across runs live (None: nothing is shared).
        identity: what, beyond the training settings, determines a stage's result (the data
            and model configs); part of the shared stage's directory name.
        reuse: finished runs this one may reuse, by method name (``{"erm": path}``).
        on_epoch_end: passed to ``fit`` for every stage.
    """

    splits: Splits
    build_model: Callable[[], nn.Module]
    train: TrainConfig
    run_dir: Path | None = None
    shared_dir: Path | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    reuse: dict[str, Path] = field(default_factory=dict)
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None

    def __post_init__(self) -> None:
        for name in ("run_dir", "shared_dir"):  # accept strings from users
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))

    def stage_dir(self, stage: str, train: TrainConfig) -> Path | None:
        """The directory of a shareable stage trained with ``train``."""
        root = self.shared_dir or (self.run_dir / "stages" if self.run_dir else None)
        if root is None:
            return None
        key = json.dumps({"identity": self.identity, "train": train.model_dump()}, sort_keys=True)
        return root / f"{stage}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


@contextmanager
def locked(directory: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (no-op for None) while a stage trains there."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
