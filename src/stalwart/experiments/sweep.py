"""Hyperparameter search: a grid, random draws, or both, selected on validation.

Every configuration runs for every seed; the selected configuration is the one with the best
mean validation metric (worst-group accuracy by default), and only then is its test metric
read. Random draws are seeded by the sweep's name, the trial and the key (as DomainBed's
``hparams_registry`` does), so the same sweep draws the same values on any machine, and adding
a key leaves the draws of the others unchanged.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator
from rich.table import Table

from stalwart.config import StrictModel, set_key
from stalwart.experiments.configs import parse_config
from stalwart.experiments.executor import Job, run_jobs
from stalwart.experiments.run import RunSummary
from stalwart.io import write_json


class Distribution(StrictModel):
    """Where a random draw comes from: ``choices``, or a range ``[low, high]``."""

    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Distribution:
        has_range = self.low is not None and self.high is not None
        if (self.choices is None) == (not has_range):
            raise ValueError("give either choices, or low and high")
        if has_range and (self.low > self.high or (self.log and self.low <= 0)):
            raise ValueError("need low <= high, and low > 0 for a log scale")
        return self

    def draw(self, rng: np.random.Generator) -> Any:
        """One value."""
        if self.choices is not None:
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return round(value) if self.integer else float(value)


class SweepConfig(StrictModel):
    """A base run config, the values to try (``grid``, ``random`` × ``samples``) and seeds."""

    kind: Literal["sweep"]
    name: str = "sweep"
    base: dict[str, Any]
    grid: dict[str, list[Any]] = {}
    random: dict[str, Distribution] = {}
    samples: int = Field(0, ge=0, description="random draws (each combined with the grid)")
    seeds: list[int] = Field(default=[0], min_length=1)
    select: Literal["worst_group_accuracy", "accuracy"] = "worst_group_accuracy"
    workers: int = Field(2, ge=1)
    out: str | None = None

    def root(self) -> Path:
        """The sweep's directory."""
        return Path(self.out) if self.out else Path("runs") / self.name

    def validate_runs(self) -> None:
        """Check every configuration as a run config before anything runs."""
        expand(self)


def draw_seed(*parts: Any) -> int:
    """A seed from names, stable across machines and Python versions (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def trials(config: SweepConfig) -> list[dict[str, Any]]:
    """The configurations: every grid point, times ``samples`` random draws if any."""
    keys = list(config.grid)
    points = [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*config.grid.values())
    ]
    if not config.random:
        return points
    drawn = []
    for trial in range(max(config.samples, 1)):
        values = {
            key: spec.draw(np.random.default_rng(draw_seed(config.name, trial, key)))
            for key, spec in config.random.items()
        }
        drawn += [{**point, **values} for point in points]
    return drawn


def expand(config: SweepConfig) -> list[tuple[dict[str, Any], list[Job]]]:
    """Each configuration's overrides and its jobs, one per seed."""
    root = config.root()
    expanded = []
    for number, overrides in enumerate(trials(config)):
        jobs = []
        for seed in config.seeds:
            raw = copy.deepcopy(config.base)
            for key, value in {**overrides, "train.seed": seed}.items():
                set_key(raw, key, value)
            raw["name"] = f"{config.name}/trial{number}"
            raw["out"] = str(root / f"trial{number}" / f"seed{seed}")
            run_config = parse_config(raw, f"{config.name}: trial {number} {overrides}")
            jobs.append(Job(run_config, shared_dir=root / "shared", label=f"trial{number}"))
        expanded.append((overrides, jobs))
    return expanded


def sweep(
    config: SweepConfig, on_done: Callable[[Job, RunSummary], None] | None = None
) -> dict[str, Any]:
    """Run every configuration × seed; select on validation; write ``sweep.json``."""
    expanded = expand(config)
    jobs = [job for _, trial_jobs in expanded for job in trial_jobs]
    summaries = iter(run_jobs(jobs, config.workers, on_done))
    rows = []
    for number, (overrides, trial_jobs) in enumerate(expanded):
        runs = [next(summaries) for _ in trial_jobs]
        rows.append({
            "trial": number,
            "overrides": overrides,
            "val": statistics.fmean(r.metrics["val"].value(config.select) for r in runs),
            "test_accuracy": statistics.fmean(r.metrics["test"].accuracy for r in runs),
            "test_worst_group_accuracy": statistics.fmean(
                r.metrics["test"].worst_group_accuracy for r in runs
            ),
        })  # fmt: skip
    best = max(rows, key=lambda row: row["val"])
    result = {"select": config.select, "selected": best["trial"], "trials": rows}
    write_json(config.root() / "sweep.json", result)
    return result


def _settings(overrides: dict[str, Any]) -> str:
    """``upweight=20 lr=0.0412``: leaf names, unless two keys share one."""
    leaves = [key.rsplit(".", 1)[-1] for key in overrides]
    names = leaves if len(set(leaves)) == len(leaves) else list(overrides)
    return " ".join(
        f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in zip(names, overrides.values(), strict=True)
    )


def rich_table(result: dict[str, Any], title: str = "") -> Table:
    """One row per configuration, the selected one marked.

    Columns: the mean validation metric selected on, test average and worst-group accuracy.
    """
    table = Table(title=title or None, title_justify="left")
    table.add_column("trial")
    table.add_column("settings", overflow="fold")
    for column in ("val %", "test avg %", "test worst %"):
        table.add_column(column, justify="right")
    for row in result["trials"]:
        chosen = row["trial"] == result["selected"]
        table.add_row(
            f"{row['trial']}{' ←' if chosen else ''}",
            _settings(row["overrides"]),
            f"{100 * row['val']:.1f}",
            f"{100 * row['test_accuracy']:.1f}",
            f"{100 * row['test_worst_group_accuracy']:.1f}",
            style="bold" if chosen else None,
        )
    return table
