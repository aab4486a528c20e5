"""Simplicity bias on slab data: the table of Shah et al. (arXiv 2006.07710), over seeds.

Each dataset entry trains the same network (each may override the model and training) for
every seed as an ordinary run directory, then diagnoses it (``stalwart.experiments.diagnose``):
standard, S-randomized and Sᶜ-randomized AUC with S the data's simple block, test accuracy
and, with ``uap``, a universal perturbation's accuracy and the share of its budget on S. The
table reports mean ± std over seeds. Extreme simplicity bias reads: standard AUC ≈ 1,
S-randomized ≈ 0.5, Sᶜ-randomized ≈ 1.

    kind: simplicity
    datasets:
      lms5: {name: lms, slabs: 5}
      ms57: {name: ms, simple_slabs: 5, slabs: 7}
    model: {name: mlp, hidden: [100, 100]}
    train: {epochs: 12, batch_size: 256, optimizer: sgd, lr: 0.1, weight_decay: 5.0e-5}
    seeds: [0, 1, 2]
    uap: {eps: 1.0}
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from stalwart.config import ComponentConfig, NamedConfig, StrictModel, TrainConfig, check_plain_name
from stalwart.errors import ConfigError
from stalwart.experiments.configs import parse_config
from stalwart.experiments.diagnose import diagnose_run
from stalwart.experiments.executors import Executor, Job, LocalExecutor, run_jobs
from stalwart.experiments.kinds import Reporter, register_kind
from stalwart.io import atomic_write_text, write_json
from stalwart.report import ResultTable, mean_std

OVERRIDES = ("model", "train", "label")


class UapConfig(StrictModel):
    """A universal adversarial perturbation per run (ℓ2, one per class by default)."""

    eps: float = Field(gt=0)
    per_class: bool = True
    steps: int = Field(200, ge=1)


class SimplicityConfig(NamedConfig):
    """Datasets × seeds, one network; each run diagnosed for simplicity bias.

    ``datasets`` maps a folder label to a data source and its parameters; an entry may also
    override ``model:`` and ``train:`` and give a display ``label:`` (e.g. ``L̂MS-7``).
    """

    kind: Literal["simplicity"]
    name: str = "simplicity"
    datasets: dict[str, dict[str, Any]] = Field(min_length=1)
    model: ComponentConfig = ComponentConfig(name="mlp", hidden=[100, 100])
    train: TrainConfig = TrainConfig(
        epochs=12, batch_size=256, optimizer="sgd", lr=0.1, weight_decay=5e-5, select="last"
    )
    seeds: list[int] = Field(default=[0, 1, 2], min_length=1)
    blocks: list[str] | None = None
    uap: UapConfig | None = None
    workers: int = Field(2, ge=1, description="parallel worker processes")
    out: str | None = None

    @field_validator("datasets")
    @classmethod
    def _labels_are_folder_names(cls, datasets: dict[str, dict[str, Any]]) -> dict:
        for label, entry in datasets.items():
            check_plain_name(label, "datasets label")
            if not isinstance(entry, dict) or "name" not in entry:
                raise ValueError(f"datasets.{label}: give the data source as name: SOURCE")
        return datasets

    def root(self) -> Path:
        """The experiment's directory."""
        return Path(self.out) if self.out else Path("runs") / self.name

    def validate_runs(self) -> None:
        """Check every dataset entry as a run config before anything runs."""
        expand(self)


def expand(config: SimplicityConfig) -> list[Job]:
    """One run per dataset and seed, in ``ROOT/<label>/seed<k>``."""
    root = config.root()
    base = config.model_dump(include={"model", "train"}, mode="json")
    jobs = []
    for label, entry in config.datasets.items():
        entry = dict(entry)
        data = {k: v for k, v in entry.items() if k not in OVERRIDES}
        model = {**base["model"], **entry.get("model", {})}
        train = {**base["train"], **entry.get("train", {})}
        for seed in config.seeds:
            raw = {
                "name": f"{config.name}/{label}", "data": data,
                "model": model, "method": {"name": "erm"}, "train": {**train, "seed": seed},
                "out": str(root / label / f"seed{seed}"),
            }  # fmt: skip
            try:
                jobs.append(Job(parse_config(raw, f"{config.name}: datasets.{label}"), label=label))
            except ConfigError as error:
                raise ConfigError(str(error)) from None
    return jobs


def run_simplicity(
    config: SimplicityConfig, reporter: Reporter, executor: Executor | None = None
) -> dict[str, Any]:
    """Train every run, diagnose each, write ``simplicity.json`` and ``simplicity.md``."""
    jobs = expand(config)
    summaries = run_jobs(jobs, executor or LocalExecutor(config.workers), reporter.run_finished)
    per_run: dict[str, list[dict[str, Any]]] = {label: [] for label in config.datasets}
    for job, summary in zip(jobs, summaries, strict=True):
        found = diagnose_run(
            job.config.run_dir(), config.blocks, seed=job.config.train.seed,
            uap_eps=config.uap.eps if config.uap else None,
            uap_per_class=config.uap.per_class if config.uap else True,
            uap_steps=config.uap.steps if config.uap else 200,
        )  # fmt: skip
        per_run[job.label].append({**found, "seconds": summary.seconds})
    table = {"datasets": {label: summarise(runs) for label, runs in per_run.items()}}
    for label, entry in config.datasets.items():
        table["datasets"][label]["label"] = entry.get("label", label)
    write_json(config.root() / "simplicity.json", table)
    atomic_write_text(config.root() / "simplicity.md", result_table(table).markdown())
    return table


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds of one dataset's diagnostics; S is the data's simple block."""
    first = runs[0]
    simple = first["simple"] or first["blocks"][0]

    def stat(pick) -> dict[str, float]:
        return mean_std(pick(run) for run in runs)

    found = {
        "simple": simple,
        "seeds": len(runs),
        "auc": stat(lambda r: r["report"]["standard"]["auc"]),
        "s_randomized_auc": stat(lambda r: r["report"]["randomized"][simple]["auc"]),
        "sc_randomized_auc": stat(lambda r: r["report"]["complement"][simple]["auc"]),
        "accuracy": stat(lambda r: r["accuracy"]),
        "s_randomized_accuracy": stat(lambda r: r["report"]["randomized"][simple]["accuracy"]),
        "worst_group_accuracy": stat(lambda r: r["worst_group_accuracy"]),
        "seconds": stat(lambda r: r["seconds"]),
    }
    if first["uap"] is not None:
        found["uap_accuracy"] = stat(lambda r: r["uap"]["perturbed_accuracy"])
        found["uap_share"] = stat(lambda r: r["uap"]["share"][simple])
        found["uap_eps"] = first["uap"]["eps"]
    return found


def _cell(stat: dict[str, float], digits: int = 3) -> str:
    if math.isnan(stat["mean"]):
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def result_table(table: dict[str, Any], title: str = "") -> ResultTable:
    """Datasets as rows: AUCs (standard, S- and Sᶜ-randomized), accuracies, UAP, seconds."""
    with_uap = any("uap_accuracy" in row for row in table["datasets"].values())
    headers = ["data", "AUC", "S-rand AUC", "Sc-rand AUC", "test acc %", "S-rand acc %"]
    headers += ["UAP acc %", "UAP share on S"] if with_uap else []
    headers += ["s / run"]
    out = ResultTable(headers, title=title)
    for row in table["datasets"].values():
        cells = [row["label"], _cell(row["auc"]), _cell(row["s_randomized_auc"]),
                 _cell(row["sc_randomized_auc"]), _percent(row["accuracy"]),
                 _percent(row["s_randomized_accuracy"])]  # fmt: skip
        if with_uap:
            has = "uap_accuracy" in row
            cells += [_percent(row["uap_accuracy"]), _cell(row["uap_share"])] if has else ["-", "-"]
        cells.append(f"{row['seconds']['mean']:.1f}")
        out.add(*cells)
    return out


def _percent(stat: dict[str, float]) -> str:
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def render(config: SimplicityConfig, table: dict[str, Any]) -> list[Any]:
    """The table, mean ± std over seeds."""
    title = (
        f"{config.name}: simplicity bias, mean ± std over {len(config.seeds)} seeds (S: the "
        "simple block; extreme SB: AUC ≈ 1, S-randomized ≈ 0.5, Sc-randomized ≈ 1)"
    )
    return [result_table(table, title).rich(), f"written: {config.root() / 'simplicity.md'}"]


def describe(config: SimplicityConfig) -> str:
    """``name: D datasets × S seeds = N runs → ROOT``."""
    runs = len(config.datasets) * len(config.seeds)
    return (
        f"[bold]{config.name}[/]: {len(config.datasets)} datasets × {len(config.seeds)} seeds = "
        f"{runs} runs → {config.root()}"
    )


KIND = register_kind(
    "simplicity", config=SimplicityConfig, run=run_simplicity, render=render, describe=describe
)
