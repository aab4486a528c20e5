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
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from stalwart.config import NamedConfig, StrictModel, set_key
from stalwart.experiments.configs import parse_config
from stalwart.experiments.executors import Executor, Job, LocalExecutor, run_jobs
from stalwart.experiments.kinds import Reporter, register_kind
from stalwart.experiments.run import RunSummary
from stalwart.experiments.store import aggregate, read_runs
from stalwart.io import write_json
from stalwart.report import ResultTable, percent


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


class SweepConfig(NamedConfig):
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
    config: SweepConfig,
    on_done: Callable[[Job, RunSummary], None] | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run every configuration × seed; select on validation; write ``sweep.json``."""
    expanded = expand(config)
    jobs = [job for _, trial_jobs in expanded for job in trial_jobs]
    run_jobs(jobs, executor or LocalExecutor(config.workers), on_done)
    runs = read_runs([job.config.run_dir() for job in jobs])
    runs = runs.assign(trial=[job.label for job in jobs])
    metrics = [f"val.{config.select}", "test.accuracy", "test.worst_group_accuracy"]
    means = aggregate(runs, ["trial"], metrics)
    rows = [
        {
            "trial": number,
            "overrides": overrides,
            "val": row[f"val.{config.select}.mean"],
            "test_accuracy": row["test.accuracy.mean"],
            "test_worst_group_accuracy": row["test.worst_group_accuracy.mean"],
        }
        for number, ((overrides, _), (_, row)) in enumerate(
            zip(expanded, means.iterrows(), strict=True)
        )
    ]
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


def result_table(result: dict[str, Any], title: str = "") -> ResultTable:
    """One row per configuration, the selected one marked and in bold.

    Columns: the mean validation metric selected on, test average and worst-group accuracy.
    """
    table = ResultTable(
        ("trial", "settings", "val %", "test avg %", "test worst %"), title=title, fold={"settings"}
    )
    for row in result["trials"]:
        chosen = row["trial"] == result["selected"]
        table.add(
            f"{row['trial']}{' ←' if chosen else ''}", _settings(row["overrides"]),
            percent(row["val"]), percent(row["test_accuracy"]),
            percent(row["test_worst_group_accuracy"]), bold=chosen,
        )  # fmt: skip
    return table


def run_sweep(
    config: SweepConfig, reporter: Reporter, executor: Executor | None = None
) -> dict[str, Any]:
    """The kind's run function: :func:`sweep`, reporting each finished run."""
    return sweep(config, on_done=reporter.run_finished, executor=executor)


def render(config: SweepConfig, result: dict[str, Any]) -> list[Any]:
    """The trials' table, the selected one marked."""
    return [result_table(result, f"{config.name}: selected by mean val {config.select}").rich()]


def describe(config: SweepConfig) -> str:
    """``name: T configurations × S seeds → ROOT``."""
    return (
        f"[bold]{config.name}[/]: {len(trials(config))} configurations × "
        f"{len(config.seeds)} seeds → {config.root()}"
    )


KIND = register_kind("sweep", config=SweepConfig, run=run_sweep, render=render, describe=describe)
