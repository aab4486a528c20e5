"""Compare methods on one dataset over several seeds: one table, one per-group bar chart.

Every method trains the same model on the same data with the same training settings (each
method may override some), is selected by the same validation metric, and is reported on the
test set as mean ± standard deviation over seeds, together with whether it read group labels
during training. This is the comparison of Idrissi et al. 2022 (arXiv 2110.14503) and of the
JTT paper's Table 1 (arXiv 2107.09044), run on data that ships offline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field, field_validator

from stalwart.config import (
    ComponentConfig,
    NamedConfig,
    RunConfig,
    TrainConfig,
    check_plain_name,
)
from stalwart.errors import ConfigError
from stalwart.experiments.configs import parse_config
from stalwart.experiments.executors import Executor, Job, LocalExecutor, run_jobs
from stalwart.experiments.kinds import Reporter, register_kind
from stalwart.experiments.run import RunSummary
from stalwart.experiments.store import read_runs
from stalwart.io import atomic_write_text, write_json
from stalwart.methods import method_info
from stalwart.report import ResultTable, mean_std, percent_cell
from stalwart.report.plots import per_group_bars


class CompareConfig(NamedConfig):
    """Methods × seeds on one dataset and model.

    ``methods`` maps a label to the method's parameters; an entry may name its method with
    ``method:`` (default: the label) and override training settings with ``train:``.
    """

    kind: Literal["compare"]
    name: str = "compare"
    data: ComponentConfig
    model: ComponentConfig
    train: TrainConfig = TrainConfig()
    methods: dict[str, dict[str, Any]] = Field(min_length=1)
    seeds: list[int] = Field(default=[0, 1, 2], min_length=1)
    workers: int = Field(1, ge=1, description="parallel worker processes")
    out: str | None = None

    @field_validator("methods")
    @classmethod
    def _labels_are_folder_names(cls, methods: dict[str, dict[str, Any]]) -> dict:
        for label in methods:  # each label is the folder of its runs
            check_plain_name(label, "methods label")
        return methods

    def root(self) -> Path:
        """The comparison's directory."""
        return Path(self.out) if self.out else Path("runs") / self.name

    def validate_runs(self) -> None:
        """Check every method entry as a run config before anything runs."""
        expand(self)


def _reusable(config: RunConfig, same_seed: list[RunConfig]) -> dict[str, Path]:
    """The finished run a method declares it can start from (``MethodInfo.reuses``), if here.

    DFR retrains the last layer of an ERM model: when the comparison trains ERM on the same
    data and model with the same training settings and seed, DFR starts from that run.
    """
    wanted = method_info(config.method.name).reuses
    for other in same_seed:
        if (
            wanted is not None
            and other.method.name == wanted
            and not other.method.params
            and (other.data, other.model, other.train) == (config.data, config.model, config.train)
        ):
            return {wanted: other.run_dir()}
    return {}


def expand(config: CompareConfig) -> list[list[Job]]:
    """The runs of a comparison, in waves: a later wave reuses runs of an earlier one."""
    root = config.root()
    base = config.model_dump(include={"data", "model", "train"}, mode="json")
    jobs: dict[tuple[str, int], RunConfig] = {}
    for label, entry in config.methods.items():
        entry = dict(entry)
        method = {
            "name": entry.pop("method", label),
            **{k: v for k, v in entry.items() if k != "train"},
        }
        train = {**base["train"], **entry.get("train", {})}
        for seed in config.seeds:
            raw = {
                **base, "name": f"{config.name}/{label}", "method": method,
                "train": {**train, "seed": seed}, "out": str(root / label / f"seed{seed}"),
            }  # fmt: skip
            try:
                jobs[label, seed] = parse_config(raw, f"{config.name}: methods.{label}")
            except ConfigError as error:
                raise ConfigError(str(error)) from None
    first, second = [], []
    for (label, seed), run_config in jobs.items():
        reuse = _reusable(run_config, [c for (_, s), c in jobs.items() if s == seed])
        job = Job(run_config, shared_dir=root / "shared", reuse=reuse, label=label)
        (second if reuse else first).append(job)
    return [wave for wave in (first, second) if wave]


def compare(
    config: CompareConfig,
    on_done: Callable[[Job, RunSummary], None] | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run every method × seed, then write ``comparison.json``, ``comparison.md`` and a chart."""
    executor = executor or LocalExecutor(config.workers)
    labels: dict[str, str] = {}
    for wave in expand(config):
        run_jobs(wave, executor, on_done)
        labels.update({str(job.config.run_dir()): job.label for job in wave})
    table = summarise(read_runs(list(labels)), labels)
    root = config.root()
    write_json(root / "comparison.json", table)
    atomic_write_text(root / "comparison.md", result_table(table).markdown())
    per_group_bars(
        table["group_names"],
        {label: row["group_accuracy"] for label, row in table["methods"].items()},
        root / "per_group_accuracy.png",
        title=config.name,
    )
    return table


def summarise(runs: pd.DataFrame, labels: dict[str, str]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of test metrics, per method.

    Args:
        runs: the comparison's runs, read by the run store.
        labels: each run directory's method label, in the comparison's order.
    """
    runs = runs.assign(label=runs["run"].map(labels))
    group_names = [
        c.removeprefix("test.group_accuracy.")
        for c in runs.columns
        if c.startswith("test.group_accuracy.")
    ]
    methods = {}
    for label in dict.fromkeys(labels.values()):
        rows = runs[runs["label"] == label]
        methods[label] = {
            "group_labels": rows["group_labels"].iloc[0],
            "seeds": len(rows),
            "accuracy": mean_std(rows["test.accuracy"]),
            "worst_group_accuracy": mean_std(rows["test.worst_group_accuracy"]),
            "val_worst_group_accuracy": mean_std(rows["val.worst_group_accuracy"]),
            "group_accuracy": [mean_std(rows[f"test.group_accuracy.{g}"]) for g in group_names],
            "seconds": sum(rows["seconds"]),
        }
    if "erm" in methods and "group_dro" in methods:
        # The JTT paper's summary: how much of the worst-group gap between ERM and group DRO
        # a method closes (1 = all of it), from mean test worst-group accuracies.
        low = methods["erm"]["worst_group_accuracy"]["mean"]
        high = methods["group_dro"]["worst_group_accuracy"]["mean"]
        for row in methods.values():
            gain = row["worst_group_accuracy"]["mean"] - low
            row["gap_closed"] = gain / (high - low) if high != low else None
    return {"group_names": group_names, "methods": methods}


def _gap(row: dict[str, Any]) -> str:
    """Share of the ERM → group DRO worst-group gap closed (see ``summarise``)."""
    share = row.get("gap_closed")
    return "-" if share is None else f"{100 * share:.0f}%"


COLUMNS = (
    "method", "test avg %", "test worst group %", "gap closed", "group labels in training", "seeds"
)  # fmt: skip


def result_table(table: dict[str, Any], title: str = "") -> ResultTable:
    """Methods as rows: test accuracies (%), share of the gap closed, group-label use."""
    out = ResultTable(COLUMNS, title=title)
    for label, row in table["methods"].items():
        out.add(label, percent_cell(row["accuracy"]), percent_cell(row["worst_group_accuracy"]),
                _gap(row), row["group_labels"], str(row["seeds"]))  # fmt: skip
    return out


def run_compare(
    config: CompareConfig, reporter: Reporter, executor: Executor | None = None
) -> dict[str, Any]:
    """The kind's run function: :func:`compare`, reporting each finished run."""
    return compare(config, on_done=reporter.run_finished, executor=executor)


def render(config: CompareConfig, table: dict[str, Any]) -> list[Any]:
    """The comparison's table and where its per-group chart is."""
    title = (
        f"{config.name}: test accuracy, mean ± std over seeds; each "
        f"method selected by val {config.train.select}"
    )
    return [
        result_table(table, title).rich(),
        f"per-group chart: {config.root() / 'per_group_accuracy.png'}",
    ]


def describe(config: CompareConfig) -> str:
    """``name: M methods × S seeds = N runs on DATA → ROOT``."""
    runs = len(config.methods) * len(config.seeds)
    return (
        f"[bold]{config.name}[/]: {len(config.methods)} methods × {len(config.seeds)} "
        f"seeds = {runs} runs on {config.data.name} → {config.root()}"
    )


KIND = register_kind(
    "compare", config=CompareConfig, run=run_compare, render=render, describe=describe
)
