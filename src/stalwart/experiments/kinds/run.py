"""``kind: run`` (the default): one training run of one method on one dataset and model."""

from __future__ import annotations

from typing import Any

from stalwart.config import RunConfig
from stalwart.experiments.executors import Executor
from stalwart.experiments.kinds import Reporter, register_kind
from stalwart.experiments.run import RunSummary, run
from stalwart.report import group_table


def run_one(config: RunConfig, reporter: Reporter, executor: Executor | None = None) -> RunSummary:
    """Train and evaluate ``config`` in its run directory (here: one run needs no executor)."""
    return run(config, on_epoch_end=reporter.epoch)


def render(config: RunConfig, summary: RunSummary) -> list[Any]:
    """Whether the run was reused or resumed, then its per-group table of every split."""
    lines: list[Any] = []
    if summary.reused:
        lines.append(f"already finished in {summary.run_dir}; showing its results")
    elif summary.resumed_from:
        lines.append(f"resumed after epoch {summary.resumed_from}")
    title = f"{config.name}: selected epoch {summary.best_epoch} by val {config.train.select}"
    lines.append(group_table(summary.metrics, title))
    return lines


def describe(config: RunConfig) -> str:
    """``name: data · model · method → run directory``."""
    return (
        f"[bold]{config.name}[/]: {config.data.name} · {config.model.name} · "
        f"{config.method.name} → {config.run_dir()}"
    )


KIND = register_kind("run", config=RunConfig, run=run_one, render=render, describe=describe)
