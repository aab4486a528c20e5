"""Compare training methods on clean and adversarially robust accuracy, over seeds.

The experiment of the RST paper's Table 1 (Raghunathan et al., arXiv 2002.10716): standard
training, PGD adversarial training, TRADES and robust self-training on the same labelled set,
each attacked after training with the same PGD budget. Training goes through a comparison
(``stalwart.experiments.compare``): same runs, same directories, same reuse of finished runs.
Robust accuracy is the pointwise worst case over attacks and restarts
(:func:`stalwart.attacks.robust_accuracy`) on the first ``examples`` test points.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import Field
from rich.table import Table

from stalwart.attacks import robust_accuracy
from stalwart.attacks.pgd import check_budget
from stalwart.config import StrictModel
from stalwart.errors import ConfigError
from stalwart.experiments.compare import CompareConfig, compare
from stalwart.experiments.executor import Job
from stalwart.experiments.run import RunSummary, load_run
from stalwart.io import write_json


class AttackConfig(StrictModel):
    """The evaluation attack: a budget, the attacks, and how hard they try."""

    eps: float
    norm: Literal["linf", "l2"] = "linf"
    attacks: list[str] = Field(default=["pgd"], min_length=1)
    steps: int = Field(40, ge=1)
    restarts: int = Field(5, ge=1)
    step_size: float | None = None
    queries: int = Field(1000, ge=1, description="Square Attack queries per example")
    lower: float = 0.0
    upper: float = 1.0
    examples: int | None = Field(1000, ge=1, description="first test points attacked")


class RobustnessConfig(CompareConfig):
    """A comparison whose runs are also attacked after training (``attack:``)."""

    kind: Literal["robustness"]  # type: ignore[assignment]
    name: str = "robustness"
    attack: AttackConfig

    def validate_runs(self) -> None:
        """Check the attack budget and every method entry before anything runs."""
        check_budget(self.attack.eps, self.attack.norm, self.attack.lower, self.attack.upper)
        check_attack_names(self.attack)
        super().validate_runs()


def attack_run(run_dir, attack: AttackConfig) -> dict[str, float]:
    """Clean and robust test accuracy of one finished run's selected model."""
    _, splits, model = load_run(run_dir)
    test = splits.test
    if attack.examples is not None and attack.examples < len(test):
        test = test.subset(torch.arange(attack.examples))
    result = robust_accuracy(
        model, test, attack=attack.attacks, norm=attack.norm, eps=attack.eps,
        steps=attack.steps, step_size=attack.step_size, restarts=attack.restarts,
        lower=attack.lower, upper=attack.upper, queries=attack.queries,
    )  # fmt: skip
    return {"clean": result.clean.accuracy, "robust": result.robust.accuracy, "n": len(test)}


def robustness(
    config: RobustnessConfig, on_done: Callable[[Job, RunSummary], None] | None = None
) -> dict[str, Any]:
    """Train every method × seed, attack each, write ``robustness.json`` and ``.md``."""
    runs: dict[str, list[Job]] = {}

    def record(job: Job, summary: RunSummary) -> None:
        runs.setdefault(job.label, []).append(job)
        if on_done is not None:
            on_done(job, summary)

    compare(config, on_done=record)
    methods = {}
    for label in config.methods:
        scores = [attack_run(job.config.run_dir(), config.attack) for job in runs[label]]
        methods[label] = {
            "seeds": len(scores),
            "clean": _mean_std([s["clean"] for s in scores]),
            "robust": _mean_std([s["robust"] for s in scores]),
            "per_seed": scores,
        }
    table = {"attack": config.attack.model_dump(), "methods": methods}
    write_json(config.root() / "robustness.json", table)
    (config.root() / "robustness.md").write_text(markdown_table(table))
    return table


def _mean_std(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


COLUMNS = ("method", "clean %", "robust %", "seeds")


def _rows(table: dict[str, Any]) -> list[list[str]]:
    def cell(stat: dict[str, float]) -> str:
        return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"

    return [
        [label, cell(row["clean"]), cell(row["robust"]), str(row["seeds"])]
        for label, row in table["methods"].items()
    ]


def describe_attack(attack: dict[str, Any]) -> str:
    """One line naming the evaluation budget."""
    return (
        f"{'+'.join(attack['attacks'])} {attack['norm']} ε={attack['eps']}, {attack['steps']} "
        f"steps × {attack['restarts']} restarts, first {attack['examples']} test points"
    )


def rich_table(table: dict[str, Any], title: str = "") -> Table:
    """Methods as rows: clean and robust test accuracy (mean ± std over seeds)."""
    out = Table(title=title or None, title_justify="left")
    for column in COLUMNS:
        out.add_column(column, justify="left" if column == "method" else "right")
    for row in _rows(table):
        out.add_row(*row)
    return out


def markdown_table(table: dict[str, Any]) -> str:
    """The same table in Markdown, with the attack named above it."""
    lines = [f"Attack: {describe_attack(table['attack'])}.", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(table)]
    return "\n".join(lines) + "\n"


def check_attack_names(attack: AttackConfig) -> None:
    """Reject an unknown attack name before training starts."""
    from stalwart.attacks import ATTACKS

    for name in attack.attacks:
        if name not in ATTACKS:
            raise ConfigError(f"attack.attacks: unknown attack {name!r}; choose from {ATTACKS}")
