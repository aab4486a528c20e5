"""Stages of multi-stage recipes: what a recipe composes, and one helper to train a stage.

A recipe (JTT, DFR, RST) is a plain function that calls ``fit`` more than once. A stage that
several runs share (JTT's identification model across upweighting factors, DFR's ERM base,
RST's standard model) is trained in a directory named by a hash of everything it depends on,
under an exclusive file lock, and resumed from its checkpoints: parallel runs train it once,
an interrupted one picks up where it stopped, and later runs reuse it.

Under torchrun (``stalwart.engine.distributed``) every rank runs the recipe: each stage's
``fit`` trains data-parallel, what a recipe computes between stages (JTT's error set, RST's
pseudo-labels) comes out the same on every rank from the same model, and rank 0 alone holds
the locks and writes the records (``StageContext.writes``).
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
from stalwart.data.samplers import Sampler
from stalwart.engine.distributed import world
from stalwart.engine.evaluators import Evaluator
from stalwart.engine.fit import FitResult, fit
from stalwart.engine.method import Method


@dataclass(frozen=True)
class StageContext:
    """The data, a model factory and the training settings a recipe composes.

    Attributes:
        splits: the data.
        build_model: returns a freshly initialised model (same seed, same weights).
        train: training settings of the final stage.
        run_dir: where the final stage writes its run (None: in memory only).
        shared_dir: where stages reusable across runs live (None: under ``run_dir``).
        identity: what, beyond the training settings, determines a stage's result (the data
            and model configs); part of the shared stage's directory name.
        reuse: finished runs this one may start from, by method name (``{"erm": path}``): the
            run of the method its registry entry names in ``reuses``.
        on_epoch_end: passed to ``fit`` for every stage.
        evaluator: passed to ``fit`` for every stage (default: per-group classification).
    """

    splits: Splits
    build_model: Callable[[], nn.Module]
    train: TrainConfig
    run_dir: Path | None = None
    shared_dir: Path | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    reuse: dict[str, Path] = field(default_factory=dict)
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None
    evaluator: Evaluator | None = None

    def __post_init__(self) -> None:
        for name in ("run_dir", "shared_dir"):  # accept strings from users
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's records (a run directory, and rank 0)."""
        return self.run_dir is not None and world().main

    def stage_dir(self, stage: str, train: TrainConfig) -> Path | None:
        """The directory of a shareable stage trained with ``train``."""
        root = self.shared_dir or (self.run_dir / "stages" if self.run_dir else None)
        if root is None:
            return None
        key = json.dumps({"identity": self.identity, "train": train.model_dump()}, sort_keys=True)
        return root / f"{stage}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


@contextmanager
def locked(directory: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (no-op for None) while a stage trains there.

    Under torchrun rank 0 holds it for the process group: the other ranks train the stage
    with it, so waiting for the lock would stop them all.
    """
    if directory is None or not world().main:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shared_stage(
    context: StageContext,
    stage: str,
    method: Method,
    train: TrainConfig,
    *,
    reuse: str | None = None,
) -> tuple[FitResult, Path | None]:
    """Train (or resume, or reuse) a stage that other runs may share; return it and its folder.

    Args:
        context: the recipe's context.
        stage: the stage's name, the prefix of its directory (``jtt-identification``).
        method: the stage's training objective.
        train: the stage's training settings (part of its directory's hash).
        reuse: a method name; if ``context.reuse`` holds a finished run of it, that run is
            resumed instead (it already holds the same stage, trained by someone else).
    """
    reused = context.reuse.get(reuse) if reuse else None
    directory = reused or context.stage_dir(stage, train)
    with locked(None if reused else directory):
        result = fit(
            context.build_model(), method, context.splits, train, run_dir=directory, resume=True,
            on_epoch_end=context.on_epoch_end, evaluator=context.evaluator,
        )  # fmt: skip
    return result, directory


def final_stage(
    context: StageContext,
    method: Method,
    *,
    splits: Splits | None = None,
    sampler: Sampler | None = None,
) -> FitResult:
    """Train the recipe's last stage into the run's own directory (resuming it if started)."""
    return fit(
        context.build_model(), method, splits or context.splits, context.train, sampler=sampler,
        run_dir=context.run_dir, resume=True, on_epoch_end=context.on_epoch_end,
        evaluator=context.evaluator,
    )  # fmt: skip
